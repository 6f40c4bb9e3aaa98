//! One SIP connection (TCP or TLS, either direction): frames the byte stream, answers what the
//! transport itself can (CRLF keep-alive pings, `OPTIONS` probes, `400`/`513` for messages that
//! cannot be parsed), and hands every other message to the call layer. A writer task owns the
//! write half; the call layer sends bytes to it through a channel.

use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::peer::{ConnId, PeerIdentity};
use crate::sip::{self, Frame, FramingLimits, StreamFramer};

/// What connections tell the call layer. `Debug` shows a message with its keys redacted.
// Moved once per SIP message, never per media packet: boxing the message would buy nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum SipEvent {
    /// A peer was admitted; `out` writes to it.
    Opened {
        /// The connection.
        conn: ConnId,
        /// Who the peer proved to be.
        peer: Arc<PeerIdentity>,
        /// Bytes sent here are written to the peer in order.
        out: mpsc::Sender<Bytes>,
    },
    /// A parsed message arrived.
    Message {
        /// The connection it came on.
        conn: ConnId,
        /// The message.
        msg: sip::Message,
    },
    /// The connection is gone.
    Closed {
        /// The connection.
        conn: ConnId,
    },
}

impl std::fmt::Debug for SipEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SipEvent::Opened { conn, peer, .. } => f
                .debug_struct("Opened")
                .field("conn", conn)
                .field("peer", peer)
                .finish_non_exhaustive(),
            SipEvent::Message { conn, msg } => f
                .debug_struct("Message")
                .field("conn", conn)
                .field("msg", &sip::trace::Redacted(&msg.encode()))
                .finish(),
            SipEvent::Closed { conn } => f.debug_struct("Closed").field("conn", conn).finish(),
        }
    }
}

/// Written to a connection's `out`, an empty message closes it (after what was queued before).
pub(crate) const CLOSE: Bytes = Bytes::new();

/// Messages queued toward one peer before the sender waits (the engine's driver drops the
/// connection instead). One connection carries every call of a gateway or next hop: at a few
/// hundred calls set up per second that is over a thousand messages a second, and on a busy
/// host (media of a thousand calls on two cores) the writer task can lag a few hundred ms
/// behind; 256 then dropped both connections and every call on them (tests/scale.sh). The
/// channel allocates as it fills, so room unused costs nothing.
pub(super) const OUT_QUEUE: usize = 4096;

/// Serves one admitted connection until either side closes it. Sends `Opened` first and
/// `Closed` last to `events`.
pub(super) async fn serve<S>(
    stream: S,
    conn: ConnId,
    peer: Arc<PeerIdentity>,
    limits: FramingLimits,
    events: mpsc::Sender<SipEvent>,
    metrics: Metrics,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(OUT_QUEUE);
    let sent = metrics.clone();
    let (closing_tx, mut closing) = tokio::sync::oneshot::channel::<()>();
    let writer = tokio::spawn(async move {
        let _closing = closing_tx; // dropped when the writer ends: the reader stops too
        while let Some(bytes) = out_rx.recv().await {
            if bytes.is_empty() {
                break; // CLOSE: the call layer ends the connection
            }
            if let Some(code) = status_code(&bytes) {
                sent.sip_responses.with_label_values(&["sent", code]).inc();
            }
            if wr.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    if events
        .send(SipEvent::Opened {
            conn,
            peer: peer.clone(),
            out: out_tx.clone(),
        })
        .await
        .is_err()
    {
        return;
    }
    let listener = peer.listener.label();
    let mut framer = StreamFramer::with_limits(limits);
    let mut buf = vec![0u8; 16 * 1024];
    'read: loop {
        let n = tokio::select! {
            r = rd.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            _ = &mut closing => break,
        };
        framer.push(&buf[..n]);
        loop {
            match framer.next_message() {
                Ok(None) => break,
                Ok(Some(Frame::KeepAlive(k))) => {
                    if let Some(reply) = k.reply() {
                        let _ = out_tx.send(Bytes::from_static(reply)).await;
                    }
                }
                Ok(Some(Frame::Message(bytes))) => match sip::parse(&bytes) {
                    Ok(msg) => {
                        if let Some(code) = status_code(&bytes) {
                            metrics
                                .sip_responses
                                .with_label_values(&["received", code])
                                .inc();
                        }
                        if let Some(reply) = answer_locally(&msg) {
                            let _ = out_tx.send(reply).await;
                            continue;
                        }
                        if events.send(SipEvent::Message { conn, msg }).await.is_err() {
                            break 'read;
                        }
                    }
                    Err(e) => {
                        metrics
                            .sip_malformed
                            .with_label_values(&[listener, e.part()])
                            .inc();
                        tracing::warn!(peer = %peer, error = %e, "malformed SIP message");
                        if let Some(reply) = answer_malformed(&bytes, &e) {
                            let _ = out_tx.send(Bytes::from(reply)).await;
                        }
                    }
                },
                Err(e) => {
                    metrics
                        .sip_malformed
                        .with_label_values(&[listener, "framing"])
                        .inc();
                    tracing::warn!(peer = %peer, error = %e, fatal = e.is_fatal(), "unframeable SIP input");
                    let (code, reason) = e.response_status();
                    if let Some(reply) = e
                        .head()
                        .and_then(|head| sip::response_for(head, code, reason, &extras()))
                    {
                        let _ = out_tx.send(Bytes::from(reply)).await;
                    }
                    if e.is_fatal() {
                        break 'read;
                    }
                }
            }
        }
    }
    drop(out_tx);
    let _ = events.send(SipEvent::Closed { conn }).await;
    let _ = writer.await;
}

/// The answer to a request we could not parse: the status naming what was wrong (`400 Bad
/// Via`) and a Warning with the details; `None` for a response or a head with nothing to echo.
pub(super) fn answer_malformed(bytes: &[u8], e: &sip::ParseError) -> Option<Vec<u8>> {
    let (code, reason) = e.response_status();
    let warning = e.warning();
    let extras = sip::ResponseExtras {
        headers: &[("Warning", &warning)],
        ..extras()
    };
    sip::response_for(bytes, code, &reason, &extras)
}

/// Requests the transport answers itself: an out-of-dialog `OPTIONS` (a liveness probe).
pub(super) fn answer_locally(req: &sip::Message) -> Option<Bytes> {
    if req.method() != Some(&sip::Method::Options) || req.view().to_tag().is_some() {
        return None;
    }
    let extras = sip::ResponseExtras {
        headers: &[("Allow", sip::ALLOW), ("Accept", "application/sdp")],
        ..extras()
    };
    sip::response_for_request(req, 200, "OK", &extras).map(Bytes::from)
}

/// The Server header and a To tag on everything the transport answers itself.
pub(super) fn extras() -> sip::ResponseExtras<'static> {
    sip::ResponseExtras {
        to_tag: Some("mediation"),
        server: Some(sip::SERVER),
        headers: &[],
    }
}

/// The status code of a response on the wire, as text (`"200"`), or `None` for a request.
pub(super) fn status_code(bytes: &[u8]) -> Option<&str> {
    let code = bytes.strip_prefix(b"SIP/2.0 ")?.get(..3)?;
    if code.iter().all(u8::is_ascii_digit) {
        std::str::from_utf8(code).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod debug_tests {
    use super::*;

    #[test]
    fn debug_of_a_message_event_redacts_its_keys() {
        let key = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNk";
        let body = format!("a=crypto:1 X INLINE:{key}\r\n");
        let text = format!(
            "INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n\
             From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\
             Max-Forwards: 70\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let event = SipEvent::Message {
            conn: ConnId(3),
            msg: sip::parse(text.as_bytes()).expect("parses"),
        };
        let shown = format!("{event:?}");
        assert!(!shown.contains(key), "{shown}");
        assert!(shown.contains("INLINE:<redacted>"), "{shown}");
    }
}
