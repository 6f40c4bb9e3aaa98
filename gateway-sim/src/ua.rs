//! SIP over one stream connection (TCP or TLS), shared by every call on it as a gateway does: a
//! reader task frames bytes with `mediation::sip::StreamFramer`, parses them and demultiplexes
//! by Call-ID to the call tasks; a writer task owns the write half. New INVITEs go to the
//! answering side; keep-alives, stray requests and unparsable messages are answered here.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use mediation::sip::{Frame, ResponseExtras, StreamFramer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::options::Transport;
use crate::sip_msg::{self, SipMsg};

/// What a call task hears from its connection.
#[derive(Debug, Clone)]
pub(crate) enum Event {
    /// A request or response with the call's Call-ID.
    Message(SipMsg),
    /// The connection is gone, and why (a TLS alert from the far end shows up here).
    Closed(String),
}

/// An INVITE with a Call-ID not seen before on this connection, with the channel on which the
/// rest of its dialog arrives (already registered, so the ACK cannot be missed).
#[derive(Debug)]
pub(crate) struct NewDialog {
    /// The INVITE.
    pub(crate) invite: SipMsg,
    /// Later messages with its Call-ID.
    pub(crate) events: mpsc::UnboundedReceiver<Event>,
}

enum WriterCommand {
    Data(Vec<u8>),
    Close,
}

struct Routes {
    calls: HashMap<String, mpsc::UnboundedSender<Event>>,
    closed: Option<String>,
}

struct Inner {
    writer: mpsc::UnboundedSender<WriterCommand>,
    routes: Mutex<Routes>,
    reader: Mutex<Option<AbortHandle>>,
    local: SocketAddr,
    peer: SocketAddr,
    transport: Transport,
}

/// One SIP connection, cheap to clone; every clone talks to the same tasks.
#[derive(Clone)]
pub(crate) struct SipConnection {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SipConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipConnection")
            .field("local", &self.inner.local)
            .field("peer", &self.inner.peer)
            .field("transport", &self.inner.transport)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Inner {
    /// Marks the connection closed and tells every registered call.
    fn close(&self, reason: String) {
        let calls = {
            let mut routes = lock(&self.routes);
            if routes.closed.is_some() {
                return;
            }
            routes.closed = Some(reason.clone());
            std::mem::take(&mut routes.calls)
        };
        for (_, tx) in calls {
            let _ = tx.send(Event::Closed(reason.clone()));
        }
    }

    fn send(&self, bytes: Vec<u8>) {
        let _ = self.writer.send(WriterCommand::Data(bytes));
    }
}

impl SipConnection {
    /// Starts the reader and writer tasks on `stream`. With `new_dialogs`, INVITEs with unknown
    /// Call-IDs are handed over there (answering side); without, they get 481.
    pub(crate) fn spawn<S>(
        stream: S,
        local: SocketAddr,
        peer: SocketAddr,
        transport: Transport,
        new_dialogs: Option<mpsc::UnboundedSender<NewDialog>>,
    ) -> Self
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (read_half, write_half) = tokio::io::split(stream);
        let (writer_tx, writer_rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            writer: writer_tx,
            routes: Mutex::new(Routes {
                calls: HashMap::new(),
                closed: None,
            }),
            reader: Mutex::new(None),
            local,
            peer,
            transport,
        });
        tokio::spawn(write_loop(write_half, writer_rx, Arc::downgrade(&inner)));
        let reader = tokio::spawn(read_loop(read_half, inner.clone(), new_dialogs));
        *lock(&inner.reader) = Some(reader.abort_handle());
        Self { inner }
    }

    /// Our end of the connection.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.inner.local
    }

    /// The far end.
    pub(crate) fn peer_addr(&self) -> SocketAddr {
        self.inner.peer
    }

    /// TCP or TLS.
    pub(crate) fn transport(&self) -> Transport {
        self.inner.transport
    }

    /// Why the connection is closed, if it is.
    pub(crate) fn closed_reason(&self) -> Option<String> {
        lock(&self.inner.routes).closed.clone()
    }

    /// Routes messages with `call_id` to the returned channel; `Err` with the reason if the
    /// connection is already closed.
    pub(crate) fn register(&self, call_id: &str) -> Result<mpsc::UnboundedReceiver<Event>, String> {
        let mut routes = lock(&self.inner.routes);
        if let Some(reason) = &routes.closed {
            return Err(reason.clone());
        }
        let (tx, rx) = mpsc::unbounded_channel();
        routes.calls.insert(call_id.to_string(), tx);
        Ok(rx)
    }

    /// Stops routing `call_id` (the call is over).
    pub(crate) fn unregister(&self, call_id: &str) {
        lock(&self.inner.routes).calls.remove(call_id);
    }

    /// Queues a message for sending; `Err` with the reason if the connection is closed.
    pub(crate) fn send(&self, bytes: Vec<u8>) -> Result<(), String> {
        if let Some(reason) = self.closed_reason() {
            return Err(reason);
        }
        self.inner
            .writer
            .send(WriterCommand::Data(bytes))
            .map_err(|_| "connection writer stopped".to_string())
    }

    /// Shuts the connection down (TLS close_notify, then FIN) and stops reading.
    pub(crate) fn close(&self) {
        let _ = self.inner.writer.send(WriterCommand::Close);
        self.inner.close("connection closed by us".into());
        if let Some(reader) = lock(&self.inner.reader).take() {
            reader.abort();
        }
    }
}

async fn write_loop<W: AsyncWrite>(
    write_half: W,
    mut commands: mpsc::UnboundedReceiver<WriterCommand>,
    inner: std::sync::Weak<Inner>,
) {
    tokio::pin!(write_half);
    while let Some(command) = commands.recv().await {
        let data = match command {
            WriterCommand::Data(data) => data,
            WriterCommand::Close => break,
        };
        let result = async {
            write_half.write_all(&data).await?;
            write_half.flush().await
        }
        .await;
        if let Err(e) = result {
            if let Some(inner) = inner.upgrade() {
                inner.close(format!("write failed: {e}"));
            }
            return;
        }
    }
    let _ = write_half.shutdown().await;
}

async fn read_loop<R: AsyncRead>(
    read_half: R,
    inner: Arc<Inner>,
    new_dialogs: Option<mpsc::UnboundedSender<NewDialog>>,
) {
    tokio::pin!(read_half);
    let mut framer = StreamFramer::new();
    let mut buf = vec![0u8; 16 * 1024];
    let reason = loop {
        let n = match read_half.read(&mut buf).await {
            Ok(0) => break "connection closed by the far end".to_string(),
            Ok(n) => n,
            Err(e) => break format!("connection failed: {e}"),
        };
        framer.push(&buf[..n]);
        if let Err(reason) = drain(&mut framer, &inner, new_dialogs.as_ref()) {
            break reason;
        }
    };
    inner.close(reason);
}

/// Handles every complete frame buffered; `Err` when the stream cannot go on.
fn drain(
    framer: &mut StreamFramer,
    inner: &Inner,
    new_dialogs: Option<&mpsc::UnboundedSender<NewDialog>>,
) -> Result<(), String> {
    loop {
        match framer.next_message() {
            Ok(None) => return Ok(()),
            Ok(Some(Frame::KeepAlive(ping))) => {
                if let Some(reply) = ping.reply() {
                    inner.send(reply.to_vec());
                }
            }
            Ok(Some(Frame::Message(bytes))) => match SipMsg::parse(&bytes) {
                Ok(message) => dispatch(message, inner, new_dialogs),
                Err(e) => {
                    let (code, reason) = e.response_status();
                    if let Some(answer) = mediation::sip::response_for(
                        &bytes,
                        code,
                        &reason,
                        &ResponseExtras::default(),
                    ) {
                        inner.send(answer);
                    }
                }
            },
            Err(e) => {
                let (code, reason) = e.response_status();
                if let Some(answer) = e.head().and_then(|head| {
                    mediation::sip::response_for(head, code, reason, &ResponseExtras::default())
                }) {
                    inner.send(answer);
                }
                if e.is_fatal() {
                    return Err(format!("SIP framing error: {e}"));
                }
            }
        }
    }
}

/// Routes one message by Call-ID, or answers it here.
fn dispatch(
    message: SipMsg,
    inner: &Inner,
    new_dialogs: Option<&mpsc::UnboundedSender<NewDialog>>,
) {
    let Some(call_id) = message.call_id().map(str::to_string) else {
        return;
    };
    let mut routes = lock(&inner.routes);
    if let Some(tx) = routes.calls.get(&call_id) {
        if tx.send(Event::Message(message)).is_ok() {
            return;
        }
        // The call task is gone: treat the message as out of dialog.
        routes.calls.remove(&call_id);
        return;
    }
    let Some(method) = message.method() else {
        return; // A response nobody waits for (a retransmission after the call ended).
    };
    match (method, new_dialogs) {
        ("INVITE", Some(new_dialogs)) if message.to_tag().is_none() => {
            let (tx, rx) = mpsc::unbounded_channel();
            routes.calls.insert(call_id, tx);
            drop(routes);
            let _ = new_dialogs.send(NewDialog {
                invite: message,
                events: rx,
            });
        }
        ("ACK", _) => {}
        ("OPTIONS", _) => {
            drop(routes);
            inner.send(sip_msg::response(
                &message,
                200,
                Some(&sip_msg::token(10)),
                &[("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS".into())],
                None,
            ));
        }
        _ => {
            drop(routes);
            inner.send(sip_msg::response(&message, 481, None, &[], None));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::*;

    fn request(method: &str, call_id: &str, to_tag: Option<&str>) -> String {
        let to = match to_tag {
            Some(tag) => format!("<sip:b@x>;tag={tag}"),
            None => "<sip:b@x>".into(),
        };
        format!(
            "{method} sip:b@x SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK1\r\n\
             Max-Forwards: 70\r\nFrom: <sip:a@x>;tag=a1\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
             CSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
        )
    }

    async fn read_some(peer: &mut DuplexStream) -> String {
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(2), peer.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    fn spawn(
        new_dialogs: Option<mpsc::UnboundedSender<NewDialog>>,
    ) -> (SipConnection, DuplexStream) {
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let addr = "127.0.0.1:5060".parse().unwrap();
        (
            SipConnection::spawn(ours, addr, addr, Transport::Tcp, new_dialogs),
            theirs,
        )
    }

    #[tokio::test]
    async fn demultiplexes_by_call_id() {
        let (tx, mut dialogs) = mpsc::unbounded_channel();
        let (conn, mut peer) = spawn(Some(tx));
        let mut outgoing = conn.register("mine").unwrap();

        // Two messages in one read: a new INVITE, and a response for our own call.
        let response = "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK2\r\n\
                        From: <sip:a@x>;tag=a1\r\nTo: <sip:b@x>;tag=b1\r\nCall-ID: mine\r\n\
                        CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        let both = format!("{}{response}", request("INVITE", "theirs", None));
        peer.write_all(both.as_bytes()).await.unwrap();
        let mut new = dialogs.recv().await.unwrap();
        assert_eq!(new.invite.call_id(), Some("theirs"));
        match outgoing.recv().await.unwrap() {
            Event::Message(m) => assert_eq!(m.status(), Some(180)),
            other => panic!("{other:?}"),
        }
        // The ACK of the new dialog goes to its channel.
        peer.write_all(request("ACK", "theirs", Some("t")).as_bytes())
            .await
            .unwrap();
        match new.events.recv().await.unwrap() {
            Event::Message(m) => assert_eq!(m.method(), Some("ACK")),
            other => panic!("{other:?}"),
        }

        // Out of dialog: 481 to a BYE, 200 to OPTIONS, a pong to a ping.
        peer.write_all(request("BYE", "nobody", Some("t")).as_bytes())
            .await
            .unwrap();
        assert!(read_some(&mut peer).await.starts_with("SIP/2.0 481 "));
        peer.write_all(request("OPTIONS", "probe", None).as_bytes())
            .await
            .unwrap();
        assert!(read_some(&mut peer).await.starts_with("SIP/2.0 200 OK"));
        peer.write_all(b"\r\n\r\n").await.unwrap();
        assert_eq!(read_some(&mut peer).await, "\r\n");

        // Closing tells every registered call why.
        drop(peer);
        match outgoing.recv().await.unwrap() {
            Event::Closed(reason) => assert!(reason.contains("closed"), "{reason}"),
            other => panic!("{other:?}"),
        }
        assert!(conn.register("later").is_err());
        assert!(conn.send(b"x".to_vec()).is_err());
    }

    #[tokio::test]
    async fn caller_side_refuses_new_invites() {
        let (_conn, mut peer) = spawn(None);
        peer.write_all(request("INVITE", "x", None).as_bytes())
            .await
            .unwrap();
        assert!(read_some(&mut peer).await.starts_with("SIP/2.0 481 "));
    }

    #[tokio::test]
    async fn unparsable_request_gets_400() {
        let (_conn, mut peer) = spawn(None);
        // No Call-ID: the mandatory-header check refuses it.
        let bad = "OPTIONS sip:b@x SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK3\r\n\
                   Max-Forwards: 70\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\n\
                   CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        peer.write_all(bad.as_bytes()).await.unwrap();
        // response_for needs a Call-ID to echo, so nothing may come back; the connection must
        // stay usable either way.
        peer.write_all(request("OPTIONS", "ok", None).as_bytes())
            .await
            .unwrap();
        let answer = read_some(&mut peer).await;
        assert!(answer.contains("SIP/2.0 200 OK"), "{answer}");
    }
}
