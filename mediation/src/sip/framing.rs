//! Sans-IO message framing for SIP over stream transports (TCP/TLS, RFC 3261 §18.3): bytes go
//! in as they arrive, complete messages and RFC 5626 CRLF keep-alives come out, with bounded
//! buffering and errors that say whether the connection can continue.

use bytes::{Buf, Bytes, BytesMut};

use super::head;

/// Limits applied by [`StreamFramer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramingLimits {
    /// Largest accepted message, header section plus body, in bytes. Also bounds how much of an
    /// unfinished header section is buffered. Default 65535.
    pub max_message_bytes: usize,
    /// Largest accepted number of header fields (continuation lines do not count). Default 128.
    pub max_headers: usize,
    /// When a rejected message announced a valid Content-Length, a body of at most this many
    /// bytes is skipped (without buffering) so the stream can continue; a longer one makes the
    /// error fatal. Default 1 MiB.
    pub max_discard_bytes: usize,
}

impl Default for FramingLimits {
    fn default() -> Self {
        Self {
            max_message_bytes: 65_535,
            max_headers: 128,
            max_discard_bytes: 1 << 20,
        }
    }
}

/// An RFC 5626 §4.4.1 keep-alive seen between messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAlive {
    /// A double CRLF: the sender expects a single CRLF back.
    Ping,
    /// A single CRLF: the answer to a ping we sent (or a stray CRLF, RFC 3261 §7.5).
    Pong,
}

impl KeepAlive {
    /// What to write back to the peer, if anything: `"\r\n"` for a ping.
    pub fn reply(self) -> Option<&'static [u8]> {
        match self {
            Self::Ping => Some(b"\r\n"),
            Self::Pong => None,
        }
    }
}

/// One unit cut from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A CRLF keep-alive between messages.
    KeepAlive(KeepAlive),
    /// A complete message: header section, blank line and exactly Content-Length body bytes.
    Message(Bytes),
}

/// Why the framer rejected input. Check [`FramingError::is_fatal`] before reading on, and use
/// [`FramingError::head`] to answer a rejected request (see `response_for`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// The header section or the whole message exceeds `max_message_bytes`.
    #[error("SIP message larger than {limit} bytes")]
    Oversized {
        /// The configured limit.
        limit: usize,
        /// The message was skipped and the next one can be read.
        resync: bool,
        /// The complete header section, when it was received.
        head: Option<Vec<u8>>,
    },
    /// More header fields than `max_headers`.
    #[error("SIP message has more than {limit} header fields")]
    TooManyHeaders {
        /// The configured limit.
        limit: usize,
        /// The message was skipped and the next one can be read.
        resync: bool,
        /// The complete header section.
        head: Vec<u8>,
    },
    /// No Content-Length header: mandatory on streams, so the end of the message is unknown.
    #[error("SIP message on a stream transport without Content-Length")]
    MissingContentLength {
        /// The complete header section.
        head: Vec<u8>,
    },
    /// Content-Length is not a number, or several Content-Length headers disagree.
    #[error("SIP message with an invalid Content-Length")]
    BadContentLength {
        /// The complete header section.
        head: Vec<u8>,
    },
    /// The header section is not UTF-8. The message (with its body) was skipped.
    #[error("SIP header section is not valid UTF-8")]
    NotUtf8 {
        /// The complete header section.
        head: Vec<u8>,
    },
    /// An earlier fatal error lost the stream position; nothing more can be read.
    #[error("SIP stream unusable after an earlier framing error")]
    Desynchronized,
}

impl FramingError {
    /// The stream position is lost: the connection should be closed (after answering, if
    /// [`head`](Self::head) allows). When `false`, the framer has consumed exactly the rejected
    /// message and reading can go on.
    pub fn is_fatal(&self) -> bool {
        match self {
            Self::Oversized { resync, .. } | Self::TooManyHeaders { resync, .. } => !resync,
            Self::NotUtf8 { .. } => false,
            Self::MissingContentLength { .. } | Self::BadContentLength { .. } => true,
            Self::Desynchronized => true,
        }
    }

    /// The raw header section of the rejected message (start line through the blank line), when
    /// it was received completely.
    pub fn head(&self) -> Option<&[u8]> {
        match self {
            Self::Oversized { head, .. } => head.as_deref(),
            Self::TooManyHeaders { head, .. }
            | Self::MissingContentLength { head }
            | Self::BadContentLength { head }
            | Self::NotUtf8 { head } => Some(head),
            Self::Desynchronized => None,
        }
    }

    /// Status code and reason phrase suited to answering a rejected request.
    pub fn response_status(&self) -> (u16, &'static str) {
        match self {
            Self::Oversized { .. } => (513, "Message Too Large"),
            Self::TooManyHeaders { .. } => (400, "Too Many Headers"),
            Self::MissingContentLength { .. } => (400, "Missing Content-Length"),
            Self::BadContentLength { .. } => (400, "Bad Content-Length"),
            Self::NotUtf8 { .. } | Self::Desynchronized => (400, "Bad Request"),
        }
    }
}

/// Incremental SIP stream framer: [`push`](Self::push) received bytes, then call
/// [`next_message`](Self::next_message) until it returns `Ok(None)`.
///
/// Leading CRLFs are reported as keep-alives: `"\r\n\r\n"` as [`KeepAlive::Ping`], a lone
/// `"\r\n"` as [`KeepAlive::Pong`]. A lone CRLF at the end of the buffered bytes is reported
/// at once (so that pongs to our own pings are seen); a ping split by the sender between its
/// two CRLFs therefore reads as two pongs — senders write the 4 bytes at once in practice.
///
/// Memory: besides complete messages not yet taken, the framer buffers at most one unfinished
/// message of up to `max_message_bytes` plus whatever the last `push` added; bodies of rejected
/// messages are dropped as they arrive.
#[derive(Debug, Default)]
pub struct StreamFramer {
    limits: FramingLimits,
    buf: BytesMut,
    /// Offset in `buf` up to which no end of header section was found.
    scanned: usize,
    /// Total length of the message at the front of `buf`, once its head was validated.
    pending_total: Option<usize>,
    /// Body bytes of a rejected message still to drop.
    discard: usize,
    desynchronized: bool,
}

impl StreamFramer {
    /// A framer with [`FramingLimits::default`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A framer with the given limits.
    pub fn with_limits(limits: FramingLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// Bytes buffered and not yet returned.
    pub fn buffered_len(&self) -> usize {
        self.buf.len()
    }

    /// A fatal error happened; the framer ignores further input.
    pub fn is_desynchronized(&self) -> bool {
        self.desynchronized
    }

    /// Appends bytes read from the connection.
    pub fn push(&mut self, data: &[u8]) {
        if self.desynchronized {
            return;
        }
        let mut data = data;
        if self.discard > 0 && self.buf.is_empty() {
            let n = self.discard.min(data.len());
            self.discard -= n;
            data = data.get(n..).unwrap_or(&[]);
        }
        self.buf.extend_from_slice(data);
    }

    /// The next keep-alive or complete message, `Ok(None)` when more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Frame>, FramingError> {
        if self.desynchronized {
            return Err(FramingError::Desynchronized);
        }
        if self.discard > 0 {
            let n = self.discard.min(self.buf.len());
            self.buf.advance(n);
            self.discard -= n;
            if self.discard > 0 {
                return Ok(None);
            }
        }
        if let Some(total) = self.pending_total {
            return Ok(self.take_message(total));
        }
        if let Some(frame) = self.take_keepalive() {
            return Ok(Some(frame));
        }
        if self.buf.first() == Some(&b'\r') && self.buf.len() < 4 && self.crlf_prefix_possible() {
            // "\r" or "\r\n\r": wait to see whether this is a keep-alive.
            return Ok(None);
        }
        if self.buf.is_empty() {
            return Ok(None);
        }

        let from = self.scanned.saturating_sub(head::HEAD_END.len() - 1);
        let found = self
            .buf
            .get(from..)
            .and_then(|tail| head::find(tail, head::HEAD_END))
            .and_then(|i| from.checked_add(i)?.checked_add(head::HEAD_END.len()));
        let Some(head_len) = found else {
            self.scanned = self.buf.len();
            if self.buf.len() > self.limits.max_message_bytes {
                return Err(self.fail(FramingError::Oversized {
                    limit: self.limits.max_message_bytes,
                    resync: false,
                    head: None,
                }));
            }
            return Ok(None);
        };
        self.scanned = 0;
        self.check_head(head_len)
    }

    /// Validates a complete header section of `head_len` bytes at the front of the buffer.
    fn check_head(&mut self, head_len: usize) -> Result<Option<Frame>, FramingError> {
        let head_bytes = self.buf.get(..head_len).unwrap_or(&[]);
        let info = inspect_head(head_bytes);
        let limits = self.limits;
        let total = info
            .content_length
            .ok()
            .and_then(|cl| head_len.checked_add(cl));
        // The message can be skipped if its body length is known and small enough.
        let skippable = matches!(info.content_length, Ok(cl) if cl <= limits.max_discard_bytes);

        let error = if info.header_count > limits.max_headers {
            Some(FramingError::TooManyHeaders {
                limit: limits.max_headers,
                resync: skippable,
                head: head_bytes.to_vec(),
            })
        } else if head_len > limits.max_message_bytes
            || total.is_some_and(|t| t > limits.max_message_bytes)
        {
            Some(FramingError::Oversized {
                limit: limits.max_message_bytes,
                resync: skippable,
                head: Some(head_bytes.to_vec()),
            })
        } else {
            match info.content_length {
                Err(ClProblem::Missing) => Some(FramingError::MissingContentLength {
                    head: head_bytes.to_vec(),
                }),
                Err(ClProblem::Invalid) => Some(FramingError::BadContentLength {
                    head: head_bytes.to_vec(),
                }),
                Ok(_) if std::str::from_utf8(head_bytes).is_err() => Some(FramingError::NotUtf8 {
                    head: head_bytes.to_vec(),
                }),
                Ok(_) => None,
            }
        };

        match (error, total) {
            (None, Some(total)) => {
                self.pending_total = Some(total);
                Ok(self.take_message(total))
            }
            (Some(err), _) if !err.is_fatal() => {
                // Skip exactly this message: the head now, the body as it arrives.
                self.buf.advance(head_len);
                self.discard = info.content_length.unwrap_or(0);
                let n = self.discard.min(self.buf.len());
                self.buf.advance(n);
                self.discard -= n;
                Err(err)
            }
            (Some(err), _) => Err(self.fail(err)),
            // Content-Length valid but head_len + Content-Length overflows usize.
            (None, None) => Err(self.fail(FramingError::Oversized {
                limit: limits.max_message_bytes,
                resync: false,
                head: Some(self.buf.get(..head_len).unwrap_or(&[]).to_vec()),
            })),
        }
    }

    /// Returns the pending message if all `total` bytes are buffered.
    fn take_message(&mut self, total: usize) -> Option<Frame> {
        if self.buf.len() < total {
            return None;
        }
        self.pending_total = None;
        self.scanned = 0;
        Some(Frame::Message(self.buf.split_to(total).freeze()))
    }

    /// Consumes a keep-alive at the front of the buffer.
    fn take_keepalive(&mut self) -> Option<Frame> {
        if self.buf.starts_with(b"\r\n\r\n") {
            self.buf.advance(4);
            return Some(Frame::KeepAlive(KeepAlive::Ping));
        }
        // A lone CRLF: not followed by "\r", or followed by "\r" and then something else.
        let lone = !matches!(
            (self.buf.get(2), self.buf.get(3)),
            (Some(b'\r'), None | Some(b'\n'))
        );
        if self.buf.starts_with(b"\r\n") && lone {
            self.buf.advance(2);
            return Some(Frame::KeepAlive(KeepAlive::Pong));
        }
        None
    }

    /// The (short) buffer is a prefix of `"\r\n\r\n"`.
    fn crlf_prefix_possible(&self) -> bool {
        b"\r\n\r\n".starts_with(&self.buf)
    }

    /// Enters the desynchronized state and returns `err`.
    fn fail(&mut self, err: FramingError) -> FramingError {
        self.desynchronized = true;
        self.buf = BytesMut::new();
        self.pending_total = None;
        self.discard = 0;
        self.scanned = 0;
        err
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClProblem {
    Missing,
    Invalid,
}

struct HeadInfo {
    header_count: usize,
    content_length: Result<usize, ClProblem>,
}

/// Counts header fields and reads Content-Length (long or compact form, case-insensitive).
/// Several Content-Length headers are accepted only if they agree.
fn inspect_head(block: &[u8]) -> HeadInfo {
    let headers = head::logical_headers(block);
    let mut content_length: Result<usize, ClProblem> = Err(ClProblem::Missing);
    for field in headers.iter().flatten() {
        if !(field.name.eq_ignore_ascii_case(b"content-length")
            || field.name.eq_ignore_ascii_case(b"l"))
        {
            continue;
        }
        let parsed = parse_decimal(&field.value).ok_or(ClProblem::Invalid);
        content_length = match (content_length, parsed) {
            (Err(ClProblem::Missing), v) => v,
            (Ok(a), Ok(b)) if a == b => Ok(a),
            _ => Err(ClProblem::Invalid),
        };
    }
    HeadInfo {
        header_count: headers.len(),
        content_length,
    }
}

/// `1*DIGIT` into a usize, `None` on anything else or overflow.
pub(super) fn parse_decimal(s: &[u8]) -> Option<usize> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0usize, |acc, &b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(usize::from(b - b'0'))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::head::XorShift;

    const SDP: &str = "v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

    fn invite_compact() -> Vec<u8> {
        format!(
            "INVITE sip:bob@example.com SIP/2.0\r\n\
             v: SIP/2.0/TCP pc33.example.com;branch=z9hG4bK776asdhds\r\n\
             v: SIP/2.0/TCP proxy.example.com;branch=z9hG4bK1\r\n\
             Max-Forwards: 70\r\n\
             t: Bob <sip:bob@example.com>\r\n\
             f: Alice <sip:alice@example.com>;tag=1928301774\r\n\
             i: a84b4c76e66710@pc33.example.com\r\n\
             CSeq: 314159 INVITE\r\n\
             m: <sip:alice@pc33.example.com;transport=tcp>\r\n\
             c: application/sdp\r\n\
             l: {}\r\n\r\n{}",
            SDP.len(),
            SDP
        )
        .into_bytes()
    }

    fn options(call_id: &str) -> Vec<u8> {
        format!(
            "OPTIONS sip:gw.example.com SIP/2.0\r\n\
             Via: SIP/2.0/TLS client.example.com;branch=z9hG4bK{call_id}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=x\r\nTo: <sip:gw.example.com>\r\n\
             Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    fn drain(f: &mut StreamFramer) -> Vec<Result<Frame, FramingError>> {
        let mut out = Vec::new();
        loop {
            match f.next_message() {
                Ok(Some(frame)) => out.push(Ok(frame)),
                Ok(None) => return out,
                Err(e) => {
                    let fatal = e.is_fatal();
                    out.push(Err(e));
                    if fatal {
                        return out;
                    }
                }
            }
        }
    }

    fn feed_in_chunks(data: &[u8], chunk: usize) -> Vec<Result<Frame, FramingError>> {
        let mut f = StreamFramer::new();
        let mut out = Vec::new();
        for piece in data.chunks(chunk) {
            f.push(piece);
            out.extend(drain(&mut f));
        }
        assert_eq!(f.buffered_len(), 0);
        out
    }

    #[test]
    fn whole_message_in_any_chunking() {
        let msg = invite_compact();
        for chunk in [1, 2, 3, 7, 64, 500, msg.len()] {
            let frames = feed_in_chunks(&msg, chunk);
            assert_eq!(
                frames,
                vec![Ok(Frame::Message(Bytes::from(msg.clone())))],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn two_messages_in_one_push() {
        let mut data = options("one");
        data.extend_from_slice(&invite_compact());
        let mut f = StreamFramer::new();
        f.push(&data);
        let frames = drain(&mut f);
        assert_eq!(
            frames,
            vec![
                Ok(Frame::Message(Bytes::from(options("one")))),
                Ok(Frame::Message(Bytes::from(invite_compact()))),
            ]
        );
    }

    #[test]
    fn keepalives_between_messages() {
        let mut data = b"\r\n\r\n".to_vec();
        data.extend_from_slice(&options("a"));
        data.extend_from_slice(b"\r\n");
        data.extend_from_slice(&options("b"));
        data.extend_from_slice(b"\r\n\r\n\r\n\r\n");
        let mut f = StreamFramer::new();
        f.push(&data);
        let frames = drain(&mut f);
        assert_eq!(
            frames,
            vec![
                Ok(Frame::KeepAlive(KeepAlive::Ping)),
                Ok(Frame::Message(Bytes::from(options("a")))),
                Ok(Frame::KeepAlive(KeepAlive::Pong)),
                Ok(Frame::Message(Bytes::from(options("b")))),
                Ok(Frame::KeepAlive(KeepAlive::Ping)),
                Ok(Frame::KeepAlive(KeepAlive::Ping)),
            ]
        );
        assert_eq!(KeepAlive::Ping.reply(), Some(&b"\r\n"[..]));
        assert_eq!(KeepAlive::Pong.reply(), None);
    }

    #[test]
    fn keepalives_byte_by_byte_do_not_disturb_messages() {
        let mut data = b"\r\n\r\n".to_vec();
        data.extend_from_slice(&options("a"));
        data.extend_from_slice(b"\r\n\r\n");
        data.extend_from_slice(&invite_compact());
        let frames = feed_in_chunks(&data, 1);
        let messages: Vec<_> = frames
            .iter()
            .filter_map(|f| match f {
                Ok(Frame::Message(m)) => Some(m.clone()),
                Ok(Frame::KeepAlive(_)) => None,
                Err(e) => panic!("unexpected error {e}"),
            })
            .collect();
        assert_eq!(
            messages,
            vec![Bytes::from(options("a")), Bytes::from(invite_compact())]
        );
        // A ping split in the middle of "\r\n\r" is held back until the fourth byte.
        let mut f = StreamFramer::new();
        f.push(b"\r\n\r");
        assert_eq!(f.next_message(), Ok(None));
        f.push(b"\n");
        assert_eq!(
            f.next_message(),
            Ok(Some(Frame::KeepAlive(KeepAlive::Ping)))
        );
        f.push(b"\r");
        assert_eq!(f.next_message(), Ok(None));
        f.push(b"\n");
        assert_eq!(
            f.next_message(),
            Ok(Some(Frame::KeepAlive(KeepAlive::Pong)))
        );
    }

    #[test]
    fn content_length_header_forms() {
        for header in [
            "content-length: 3",
            "CONTENT-LENGTH:3",
            "Content-Length \t:  3  ",
            "L: 3",
            "l:\r\n 3",
        ] {
            let msg = format!("MESSAGE sip:x SIP/2.0\r\n{header}\r\n\r\nabc");
            let frames = feed_in_chunks(msg.as_bytes(), 5);
            assert_eq!(
                frames,
                vec![Ok(Frame::Message(Bytes::from(msg.clone())))],
                "{header}"
            );
        }
    }

    #[test]
    fn missing_content_length_is_fatal_with_head() {
        let msg = b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n\r\n";
        let mut f = StreamFramer::new();
        f.push(msg);
        let err = f.next_message().unwrap_err();
        assert!(matches!(err, FramingError::MissingContentLength { .. }));
        assert!(err.is_fatal());
        assert_eq!(err.head(), Some(&msg[..]));
        assert_eq!(err.response_status().0, 400);
        assert!(f.is_desynchronized());
        f.push(&options("x"));
        assert_eq!(f.next_message(), Err(FramingError::Desynchronized));
    }

    #[test]
    fn bad_content_length_is_fatal() {
        for value in ["abc", "-1", "", "1 2", "99999999999999999999999999", "+5"] {
            let msg = format!("OPTIONS sip:x SIP/2.0\r\nContent-Length: {value}\r\n\r\n");
            let mut f = StreamFramer::new();
            f.push(msg.as_bytes());
            let err = f.next_message().unwrap_err();
            assert!(
                matches!(err, FramingError::BadContentLength { .. }),
                "{value}: {err:?}"
            );
            assert!(err.is_fatal());
        }
        // Disagreeing duplicates are bad, agreeing ones are fine.
        let mut f = StreamFramer::new();
        f.push(b"OPTIONS sip:x SIP/2.0\r\nl: 1\r\nContent-Length: 2\r\n\r\nab");
        assert!(matches!(
            f.next_message(),
            Err(FramingError::BadContentLength { .. })
        ));
        let mut f = StreamFramer::new();
        f.push(b"OPTIONS sip:x SIP/2.0\r\nl: 2\r\nContent-Length: 2\r\n\r\nab");
        assert!(matches!(f.next_message(), Ok(Some(Frame::Message(_)))));
    }

    #[test]
    fn oversized_with_valid_length_resyncs() {
        let limits = FramingLimits {
            max_message_bytes: 300,
            ..FramingLimits::default()
        };
        let big_body = "x".repeat(1000);
        let big = format!(
            "MESSAGE sip:x SIP/2.0\r\nCall-ID: big\r\nContent-Length: {}\r\n\r\n{big_body}",
            big_body.len()
        );
        let mut data = big.into_bytes();
        data.extend_from_slice(&options("after"));
        for chunk in [1, 13, 4096] {
            let mut f = StreamFramer::with_limits(limits);
            let mut out = Vec::new();
            for piece in data.chunks(chunk) {
                f.push(piece);
                out.extend(drain(&mut f));
            }
            assert_eq!(out.len(), 2, "chunk {chunk}: {out:?}");
            let err = out[0].clone().unwrap_err();
            assert!(matches!(err, FramingError::Oversized { resync: true, .. }));
            assert!(!err.is_fatal());
            assert!(err
                .head()
                .unwrap()
                .ends_with(b"Content-Length: 1000\r\n\r\n"));
            assert_eq!(err.response_status(), (513, "Message Too Large"));
            assert_eq!(out[1], Ok(Frame::Message(Bytes::from(options("after")))));
        }
    }

    #[test]
    fn oversized_beyond_discard_limit_is_fatal() {
        let limits = FramingLimits {
            max_message_bytes: 300,
            max_headers: 128,
            max_discard_bytes: 500,
        };
        let mut f = StreamFramer::with_limits(limits);
        f.push(b"MESSAGE sip:x SIP/2.0\r\nContent-Length: 501\r\n\r\n");
        let err = f.next_message().unwrap_err();
        assert!(matches!(
            err,
            FramingError::Oversized {
                resync: false,
                head: Some(_),
                ..
            }
        ));
        assert!(err.is_fatal());
    }

    #[test]
    fn unterminated_head_over_limit_is_fatal() {
        let limits = FramingLimits {
            max_message_bytes: 200,
            ..FramingLimits::default()
        };
        let mut f = StreamFramer::with_limits(limits);
        let mut out = Vec::new();
        for _ in 0..100 {
            f.push(b"X-Filler: aaaa\r\n");
            match f.next_message() {
                Ok(None) => {}
                other => {
                    out.push(other);
                    break;
                }
            }
        }
        assert_eq!(
            out,
            vec![Err(FramingError::Oversized {
                limit: 200,
                resync: false,
                head: None
            })]
        );
        assert!(f.buffered_len() == 0 && f.is_desynchronized());
        f.push(&[b'a'; 10_000]);
        assert_eq!(f.buffered_len(), 0);
    }

    #[test]
    fn too_many_headers() {
        let limits = FramingLimits {
            max_headers: 7,
            ..FramingLimits::default()
        };
        let mut msg = String::from("OPTIONS sip:x SIP/2.0\r\n");
        for i in 0..8 {
            msg.push_str(&format!("X-H{i}: v\r\n"));
        }
        let with_len = format!("{msg}Content-Length: 2\r\n\r\nab");
        let mut f = StreamFramer::with_limits(limits);
        f.push(with_len.as_bytes());
        f.push(&options("next"));
        let out = drain(&mut f);
        assert!(
            matches!(&out[0], Err(e @ FramingError::TooManyHeaders { resync: true, .. }) if !e.is_fatal())
        );
        assert_eq!(out[1], Ok(Frame::Message(Bytes::from(options("next")))));

        let without_len = format!("{msg}\r\n");
        let mut f = StreamFramer::with_limits(limits);
        f.push(without_len.as_bytes());
        let err = f.next_message().unwrap_err();
        assert!(matches!(
            err,
            FramingError::TooManyHeaders { resync: false, .. }
        ));
        assert!(err.is_fatal());
    }

    #[test]
    fn non_utf8_head_is_skipped() {
        let mut msg =
            b"MESSAGE sip:x SIP/2.0\r\nSubject: caf\xe9\r\nContent-Length: 3\r\n\r\n".to_vec();
        let head_len = msg.len();
        msg.extend_from_slice(b"\xff\xfe\x00");
        msg.extend_from_slice(&options("ok"));
        let mut f = StreamFramer::new();
        f.push(&msg);
        let out = drain(&mut f);
        let err = out[0].clone().unwrap_err();
        assert!(matches!(err, FramingError::NotUtf8 { .. }));
        assert!(!err.is_fatal());
        assert_eq!(err.head().map(<[u8]>::len), Some(head_len));
        assert_eq!(out[1], Ok(Frame::Message(Bytes::from(options("ok")))));
    }

    #[test]
    fn binary_body_is_fine() {
        let mut msg = b"MESSAGE sip:x SIP/2.0\r\nContent-Length: 4\r\n\r\n".to_vec();
        msg.extend_from_slice(b"\r\n\r\n");
        let frames = feed_in_chunks(&msg, 1);
        assert_eq!(frames, vec![Ok(Frame::Message(Bytes::from(msg)))]);
    }

    #[test]
    fn decimal_parsing() {
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"0012"), Some(12));
        assert_eq!(parse_decimal(b""), None);
        assert_eq!(parse_decimal(b"1a"), None);
        assert_eq!(parse_decimal(b"184467440737095516160"), None);
    }

    #[test]
    fn random_input_never_panics() {
        let alphabet: &[u8] = b"\r\n\r\n :lL0123456789Content-Length\t\xff";
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let limits = FramingLimits {
            max_message_bytes: 512,
            max_headers: 8,
            max_discard_bytes: 1024,
        };
        for round in 0..2000 {
            let mut f = StreamFramer::with_limits(limits);
            let len = (rng.next() % 2048) as usize;
            let biased = round % 2 == 0;
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    let r = rng.next();
                    if biased {
                        alphabet[(r as usize) % alphabet.len()]
                    } else {
                        r as u8
                    }
                })
                .collect();
            let mut pos = 0;
            while pos < data.len() {
                let step = 1 + (rng.next() % 300) as usize;
                let end = (pos + step).min(data.len());
                f.push(&data[pos..end]);
                pos = end;
                for _ in 0..10_000 {
                    match f.next_message() {
                        Ok(Some(Frame::Message(m))) => assert!(m.len() <= limits.max_message_bytes),
                        Ok(Some(Frame::KeepAlive(_))) => {}
                        Ok(None) => break,
                        Err(e) if e.is_fatal() => break,
                        Err(_) => {}
                    }
                }
                assert!(f.buffered_len() <= limits.max_message_bytes + 300 + 4);
            }
        }
    }
}
