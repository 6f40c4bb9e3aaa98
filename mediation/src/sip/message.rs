//! Turns framed bytes into an [`rsip::SipMessage`] with the RFC 3261 §8.1.1 mandatory-header
//! checks rsip 0.4 does not make, and builds minimal stateless responses (400, 501, 200 to
//! OPTIONS, ...) even from a header section that rsip refused.

use std::borrow::Cow;

use rsip::prelude::*;
use rsip::{Header, SipMessage};

use super::{compact, framing::parse_decimal, head};

/// Request methods rsip 0.4 can represent (RFC method names are case-sensitive).
const KNOWN_METHODS: &[&[u8]] = &[
    b"ACK",
    b"BYE",
    b"CANCEL",
    b"INFO",
    b"INVITE",
    b"MESSAGE",
    b"NOTIFY",
    b"OPTIONS",
    b"PRACK",
    b"PUBLISH",
    b"REFER",
    b"REGISTER",
    b"SUBSCRIBE",
    b"UPDATE",
];

/// Largest CSeq sequence number allowed by RFC 3261 §8.1.1.5 (below 2**31).
const MAX_CSEQ: u32 = (1 << 31) - 1;

/// Longest rsip error text kept in [`ParseError::Syntax`].
const MAX_ERROR_TEXT: usize = 200;

/// Why a framed message could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// rsip could not tokenize or parse the message (including non-UTF-8 headers, IPv6 or
    /// `tel:` URIs it does not support). Holds rsip's error text, shortened and escaped.
    #[error("malformed SIP message: {0}")]
    Syntax(String),
    /// A request with a method this stack does not know (or a wrongly-cased known one).
    #[error("unsupported SIP method {0:?}")]
    UnknownMethod(String),
    /// A mandatory header (RFC 3261 §8.1.1) is absent.
    #[error("missing mandatory header {0}")]
    MissingHeader(&'static str),
    /// A header that must appear once appears several times.
    #[error("header {0} appears more than once")]
    DuplicateHeader(&'static str),
    /// A mandatory header is present but unusable.
    #[error("invalid {name} header: {reason}")]
    InvalidHeader {
        /// Long name of the header.
        name: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The body is shorter than Content-Length announces.
    #[error("body has {actual} bytes, Content-Length says {declared}")]
    BodyTooShort {
        /// The Content-Length value.
        declared: usize,
        /// Bytes actually present.
        actual: usize,
    },
}

impl ParseError {
    /// Status code and reason phrase suited to answering a rejected request.
    pub fn response_status(&self) -> (u16, &'static str) {
        match self {
            Self::UnknownMethod(_) => (501, "Not Implemented"),
            Self::MissingHeader(_) => (400, "Missing Mandatory Header"),
            Self::DuplicateHeader(_) | Self::InvalidHeader { .. } => (400, "Bad Header"),
            Self::Syntax(_) | Self::BodyTooShort { .. } => (400, "Bad Request"),
        }
    }
}

/// Parses one complete SIP message (as cut by the stream framer, or one datagram).
///
/// Leading CRLFs are skipped, compact header forms, folded lines and whitespace before colons
/// are normalized ([`compact::expand`]), then rsip parses. Afterwards:
///
/// * Via, From, To, Call-ID, CSeq — and Max-Forwards in requests — must be present; From, To,
///   Call-ID, CSeq, Max-Forwards appear once; several Content-Length headers must agree;
/// * CSeq must be `number method` with number below 2**31 and, in requests, the method of the
///   request line;
/// * rsip keeps everything after the blank line as body whatever Content-Length says, so here a
///   longer body is cut to Content-Length (RFC 3261 §18.3) and a shorter one is an error. With no
///   Content-Length (allowed on datagrams) the body is kept as is.
///
/// A request whose method rsip cannot represent yields [`ParseError::UnknownMethod`] (answer
/// 501). Header values are not parsed further (rsip's typed Via/From/To parsers reject IPv6
/// hosts, so callers should treat typed-parse failures of Via as non-fatal).
pub fn parse(bytes: &[u8]) -> Result<SipMessage, ParseError> {
    let mut bytes = bytes;
    while let Some(rest) = bytes.strip_prefix(b"\r\n") {
        bytes = rest;
    }
    let start = head::start_line(bytes);
    if !head::is_status_line(start) {
        if let Some(method) = head::request_method(start) {
            if !KNOWN_METHODS.contains(&method) {
                return Err(ParseError::UnknownMethod(
                    String::from_utf8_lossy(method).into_owned(),
                ));
            }
        }
    }
    let Some(head_len) = head::head_len(bytes) else {
        return Err(ParseError::Syntax(
            "header section not ended by an empty line".into(),
        ));
    };
    let head_bytes = bytes.get(..head_len).unwrap_or(bytes);
    // Control characters are not allowed in header fields, nor a CR that does not end a line
    // (a bare LF is tolerated as a line ending and normalized by `compact::expand`).
    let bad_ctl = head_bytes.iter().enumerate().any(|(i, &b)| {
        (is_ctl(b) && b != b'\r' && b != b'\n')
            || (b == b'\r' && head_bytes.get(i.saturating_add(1)) != Some(&b'\n'))
    });
    if bad_ctl {
        return Err(ParseError::Syntax(
            "control character in header section".into(),
        ));
    }
    let expanded = compact::expand(bytes);
    let mut message =
        SipMessage::try_from(expanded.as_ref()).map_err(|e| ParseError::Syntax(short_text(&e)))?;
    validate(&mut message)?;
    Ok(message)
}

/// rsip's error text (which quotes the whole message) with its SDES keys redacted, shortened
/// and with control characters escaped, fit for logs.
fn short_text(err: &rsip::Error) -> String {
    let full = super::trace::Redacted(err.to_string().as_bytes()).to_string();
    let mut out = String::new();
    for c in full.chars() {
        if out.len() >= MAX_ERROR_TEXT {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The RFC 3261 checks rsip does not make; also trims the body to Content-Length.
fn validate(message: &mut SipMessage) -> Result<(), ParseError> {
    let is_request = message.is_request();
    let mut vias = 0usize;
    let mut from: Vec<&str> = Vec::new();
    let mut to: Vec<&str> = Vec::new();
    let mut call_id: Vec<&str> = Vec::new();
    let mut cseq: Vec<&rsip::headers::CSeq> = Vec::new();
    let mut max_forwards: Vec<&str> = Vec::new();
    let mut content_length: Vec<&str> = Vec::new();
    for header in message.headers().iter() {
        match header {
            Header::Via(_) => vias = vias.saturating_add(1),
            Header::From(h) => from.push(h.value()),
            Header::To(h) => to.push(h.value()),
            Header::CallId(h) => call_id.push(h.value()),
            Header::CSeq(h) => cseq.push(h),
            Header::MaxForwards(h) => max_forwards.push(h.value()),
            Header::ContentLength(h) => content_length.push(h.value()),
            _ => {}
        }
    }

    if vias == 0 {
        return Err(ParseError::MissingHeader("Via"));
    }
    let single = [
        ("From", from.len()),
        ("To", to.len()),
        ("Call-ID", call_id.len()),
        ("CSeq", cseq.len()),
        (
            "Max-Forwards",
            if is_request { max_forwards.len() } else { 1 },
        ),
    ];
    for (name, count) in single {
        match count {
            0 => return Err(ParseError::MissingHeader(name)),
            1 => {}
            _ => return Err(ParseError::DuplicateHeader(name)),
        }
    }
    if max_forwards.len() > 1 {
        return Err(ParseError::DuplicateHeader("Max-Forwards"));
    }
    for (name, values) in [("From", &from), ("To", &to), ("Call-ID", &call_id)] {
        if values.iter().any(|v| v.trim().is_empty()) {
            return Err(ParseError::InvalidHeader {
                name,
                reason: "empty value",
            });
        }
    }
    if let Some(mf) = max_forwards.first() {
        if parse_decimal(mf.trim().as_bytes()).is_none() {
            return Err(ParseError::InvalidHeader {
                name: "Max-Forwards",
                reason: "not a number",
            });
        }
    }
    if let Some(cseq) = cseq.first() {
        let typed = cseq.typed().map_err(|_| ParseError::InvalidHeader {
            name: "CSeq",
            reason: "not a sequence number and known method",
        })?;
        if typed.seq > MAX_CSEQ {
            return Err(ParseError::InvalidHeader {
                name: "CSeq",
                reason: "sequence number not below 2**31",
            });
        }
        if let SipMessage::Request(request) = &*message {
            if request.method != typed.method {
                return Err(ParseError::InvalidHeader {
                    name: "CSeq",
                    reason: "method differs from the request line",
                });
            }
        }
    }

    let mut declared: Option<usize> = None;
    for value in &content_length {
        let n = parse_decimal(value.trim().as_bytes()).ok_or(ParseError::InvalidHeader {
            name: "Content-Length",
            reason: "not a number",
        })?;
        if declared.is_some_and(|d| d != n) {
            return Err(ParseError::DuplicateHeader("Content-Length"));
        }
        declared = Some(n);
    }
    if let Some(declared) = declared {
        let body = message.body_mut();
        let actual = body.len();
        if actual < declared {
            return Err(ParseError::BodyTooShort { declared, actual });
        }
        body.truncate(declared);
    }
    Ok(())
}

/// Optional parts of a response built by [`response_for`] / [`response_for_request`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ResponseExtras<'a> {
    /// Tag to add to the To header when the request's To has none. Not added to 100 (Trying);
    /// ignored unless it is a non-empty RFC 3261 token.
    pub to_tag: Option<&'a str>,
    /// Value of a `Server` header; no Server header when `None`.
    pub server: Option<&'a str>,
    /// Further `(name, value)` headers, e.g. Allow/Accept/Supported for a 200 to OPTIONS or
    /// Allow for a 405. Names must be tokens; Via, From, To, Call-ID, CSeq and Content-Length
    /// (in any form) are skipped, control characters in values become spaces.
    pub headers: &'a [(&'a str, &'a str)],
}

/// Builds a response to the request whose header section is `request_head`, by line scanning
/// only, so it works for header sections rsip rejects. `request_head` may be the whole message;
/// scanning stops at the blank line. Compact forms and folded lines are understood.
///
/// The response copies every Via (in order), From, To (adding `extras.to_tag` if it has no
/// tag), Call-ID and CSeq, then the optional Server and extra headers, and `Content-Length: 0`.
///
/// Returns `None` when no response may or can be sent: the head is a response, the request is
/// an ACK (by request line or CSeq), `code` is outside 100..=699, or one of Via, From, To,
/// Call-ID, CSeq is missing or contains control characters.
pub fn response_for(
    request_head: &[u8],
    code: u16,
    reason: &str,
    extras: &ResponseExtras<'_>,
) -> Option<Vec<u8>> {
    let mut block = request_head;
    while let Some(rest) = block.strip_prefix(b"\r\n") {
        block = rest;
    }
    let start = head::start_line(block);
    if head::is_status_line(start) {
        return None;
    }
    let mut echo = Echo {
        is_ack: head::request_method(start).is_some_and(|m| m.eq_ignore_ascii_case(b"ACK")),
        ..Echo::default()
    };
    for field in head::logical_headers(block).into_iter().flatten() {
        echo.offer(field.name, field.value);
    }
    echo.build(code, reason, extras)
}

/// Builds a response to a parsed request; same rules as [`response_for`]. Headers left in
/// compact form (`Header::Other("v", ..)`) are recognized too.
pub fn response_for_request(
    request: &rsip::Request,
    code: u16,
    reason: &str,
    extras: &ResponseExtras<'_>,
) -> Option<Vec<u8>> {
    let mut echo = Echo {
        is_ack: request.method == rsip::Method::Ack,
        ..Echo::default()
    };
    for header in request.headers.iter() {
        let (name, value): (&[u8], &str) = match header {
            Header::Via(h) => (b"Via", h.value()),
            Header::From(h) => (b"From", h.value()),
            Header::To(h) => (b"To", h.value()),
            Header::CallId(h) => (b"Call-ID", h.value()),
            Header::CSeq(h) => (b"CSeq", h.value()),
            Header::Other(name, value) => (name.as_bytes(), value.as_str()),
            _ => continue,
        };
        echo.offer(name, Cow::Borrowed(head::trim_wsp(value.as_bytes())));
    }
    echo.build(code, reason, extras)
}

/// The header values a response echoes from its request.
#[derive(Debug, Default)]
struct Echo<'a> {
    vias: Vec<Cow<'a, [u8]>>,
    from: Option<Cow<'a, [u8]>>,
    to: Option<Cow<'a, [u8]>>,
    call_id: Option<Cow<'a, [u8]>>,
    cseq: Option<Cow<'a, [u8]>>,
    is_ack: bool,
    /// A needed header had control characters in its value.
    tainted: bool,
}

impl<'a> Echo<'a> {
    /// Records one header of the request if the response needs it (first one wins, except Via).
    fn offer(&mut self, name: &[u8], value: Cow<'a, [u8]>) {
        let name = compact::canonical_name(name);
        let slot = if name.eq_ignore_ascii_case(b"Via") {
            None
        } else if name.eq_ignore_ascii_case(b"From") {
            Some(&mut self.from)
        } else if name.eq_ignore_ascii_case(b"To") {
            Some(&mut self.to)
        } else if name.eq_ignore_ascii_case(b"Call-ID") {
            Some(&mut self.call_id)
        } else if name.eq_ignore_ascii_case(b"CSeq") {
            Some(&mut self.cseq)
        } else {
            return;
        };
        if value.iter().any(|&b| is_ctl(b)) {
            self.tainted = true;
            return;
        }
        match slot {
            None => self.vias.push(value),
            Some(slot) => {
                if slot.is_none() {
                    *slot = Some(value);
                }
            }
        }
    }

    fn build(&self, code: u16, reason: &str, extras: &ResponseExtras<'_>) -> Option<Vec<u8>> {
        if !(100..=699).contains(&code) || self.tainted || self.vias.is_empty() {
            return None;
        }
        let (from, to, call_id, cseq) = (
            self.from.as_deref()?,
            self.to.as_deref()?,
            self.call_id.as_deref()?,
            self.cseq.as_deref()?,
        );
        let cseq_is_ack = cseq
            .split(|&b| head::is_wsp(b))
            .filter(|t| !t.is_empty())
            .nth(1)
            .is_some_and(|m| m.eq_ignore_ascii_case(b"ACK"));
        if self.is_ack || cseq_is_ack || from.is_empty() || to.is_empty() || call_id.is_empty() {
            return None;
        }

        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(format!("SIP/2.0 {code} ").as_bytes());
        out.extend_from_slice(sanitize(reason).as_bytes());
        out.extend_from_slice(b"\r\n");
        for via in &self.vias {
            push_header(&mut out, b"Via", via);
        }
        push_header(&mut out, b"From", from);
        out.extend_from_slice(b"To: ");
        out.extend_from_slice(to);
        if let Some(tag) = extras.to_tag {
            if code > 100 && head::is_token(tag.as_bytes()) && !has_tag_param(to) {
                out.extend_from_slice(b";tag=");
                out.extend_from_slice(tag.as_bytes());
            }
        }
        out.extend_from_slice(b"\r\n");
        push_header(&mut out, b"Call-ID", call_id);
        push_header(&mut out, b"CSeq", cseq);
        if let Some(server) = extras.server {
            push_header(&mut out, b"Server", sanitize(server).as_bytes());
        }
        for (name, value) in extras.headers {
            let name = name.trim();
            if head::is_token(name.as_bytes()) && !is_managed(name.as_bytes()) {
                push_header(&mut out, name.as_bytes(), sanitize(value).as_bytes());
            }
        }
        out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
        Some(out)
    }
}

/// Control characters other than HTAB.
fn is_ctl(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

/// Replaces control characters (CR and LF included) by spaces and trims.
fn sanitize(text: &str) -> Cow<'_, str> {
    let trimmed = text.trim();
    if trimmed.bytes().any(is_ctl) {
        Cow::Owned(
            trimmed
                .chars()
                .map(|c| if c.is_control() && c != '\t' { ' ' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(trimmed)
    }
}

/// Headers the response builder writes itself.
fn is_managed(name: &[u8]) -> bool {
    let name = compact::canonical_name(name);
    ["Via", "From", "To", "Call-ID", "CSeq", "Content-Length"]
        .iter()
        .any(|m| name.eq_ignore_ascii_case(m.as_bytes()))
}

fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The header parameters of a name-addr / addr-spec value (`;tag=..;x`), skipping quoted
/// display names and the bracketed URI.
fn header_params(value: &[u8]) -> &[u8] {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, &b) in value.iter().enumerate() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_quotes = false;
            }
            continue;
        }
        match b {
            b'"' => in_quotes = true,
            b'<' => {
                let after = value.get(i..).unwrap_or(&[]);
                return match after.iter().position(|&c| c == b'>') {
                    Some(close) => after.get(close.saturating_add(1)..).unwrap_or(&[]),
                    None => &[],
                };
            }
            b';' => return value.get(i..).unwrap_or(&[]),
            _ => {}
        }
    }
    &[]
}

/// The value carries a `tag` header parameter.
fn has_tag_param(value: &[u8]) -> bool {
    header_params(value).split(|&b| b == b';').any(|param| {
        let name = param.split(|&b| b == b'=').next().unwrap_or(&[]);
        head::trim_wsp(name).eq_ignore_ascii_case(b"tag")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::framing::{Frame, StreamFramer};
    use crate::sip::head::XorShift;

    const SDP: &str = "v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

    fn compact_invite() -> String {
        format!(
            "INVITE sip:bob@example.com SIP/2.0\r\n\
             v: SIP/2.0/TLS pc33.example.com;branch=z9hG4bK776asdhds\r\n\
             V : SIP/2.0/TLS proxy.example.com;branch=z9hG4bK1, SIP/2.0/TCP p2.example.com;branch=z9hG4bK2\r\n\
             max-forwards: 70\r\n\
             t: Bob <sip:bob@example.com>\r\n\
             f: Alice <sip:alice@example.com>;tag=1928301774\r\n\
             i: a84b4c76e66710@pc33.example.com\r\n\
             CSEQ: 314159 INVITE\r\n\
             m: <sip:alice@pc33.example.com;transport=tls>\r\n\
             Subject: folded\r\n  subject\r\n\
             c: application/sdp\r\n\
             l: {}\r\n\r\n{}",
            SDP.len(),
            SDP
        )
    }

    fn long_options() -> &'static str {
        "OPTIONS sip:gw.example.com SIP/2.0\r\n\
         Via: SIP/2.0/TLS client.example.com:5061;branch=z9hG4bKopt\r\n\
         Via: SIP/2.0/TLS edge.example.com;branch=z9hG4bKedge\r\n\
         Max-Forwards: 70\r\n\
         From: \"Mon\" <sip:monitor@example.com>;tag=m1\r\n\
         To: <sip:gw.example.com>\r\n\
         Call-ID: opt-1@client\r\n\
         CSeq: 7 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    }

    #[test]
    fn compact_invite_byte_by_byte_through_framer_and_parser() {
        let wire = compact_invite();
        let mut framer = StreamFramer::new();
        let mut messages = Vec::new();
        for b in wire.as_bytes() {
            framer.push(std::slice::from_ref(b));
            while let Some(frame) = framer.next_message().unwrap() {
                if let Frame::Message(m) = frame {
                    messages.push(m);
                }
            }
        }
        assert_eq!(messages.len(), 1);
        let msg = parse(&messages[0]).unwrap();
        let SipMessage::Request(req) = &msg else {
            panic!("not a request")
        };
        assert_eq!(req.method, rsip::Method::Invite);
        assert_eq!(req.uri.to_string(), "sip:bob@example.com");
        assert_eq!(
            msg.call_id_header().unwrap().value(),
            "a84b4c76e66710@pc33.example.com"
        );
        let vias: Vec<_> = msg
            .headers()
            .iter()
            .filter(|h| matches!(h, Header::Via(_)))
            .collect();
        assert_eq!(
            vias.len(),
            2,
            "two Via header lines (the second with two values)"
        );
        assert_eq!(
            msg.via_header()
                .unwrap()
                .typed()
                .unwrap()
                .branch()
                .unwrap()
                .to_string(),
            "z9hG4bK776asdhds"
        );
        assert_eq!(msg.body(), SDP.as_bytes());
        assert_eq!(msg.cseq_header().unwrap().seq().unwrap(), 314159);
        assert_eq!(msg.max_forwards_header().unwrap().num().unwrap(), 70);
        let from = msg.from_header().unwrap().typed().unwrap();
        assert_eq!(from.tag().map(|t| t.to_string()), Some("1928301774".into()));
        let subject = msg.headers().iter().find_map(|h| match h {
            Header::Subject(s) => Some(s.value().to_string()),
            _ => None,
        });
        assert_eq!(subject.as_deref(), Some("folded subject"));
        assert!(msg
            .headers()
            .iter()
            .any(|h| matches!(h, Header::ContentType(_))));
        assert!(msg
            .headers()
            .iter()
            .any(|h| matches!(h, Header::Contact(_))));
    }

    #[test]
    fn the_error_text_quoting_the_message_has_its_keys_redacted() {
        // rsip quotes the message it could not tokenize (here: `Via` without a colon).
        let key = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNk";
        for mark in ["inline:", "INLINE:", "Inline:"] {
            let bad = format!(
                "INVITE sip:a@b SIP/2.0\r\nX-Key: {mark}{key}|2^31\r\nVia SIP/2.0/TCP h\r\n\r\n"
            );
            let Err(ParseError::Syntax(text)) = parse(bad.as_bytes()) else {
                panic!("{bad} parses")
            };
            assert!(!text.contains(key), "{text}");
            assert!(text.contains(&format!("{mark}<redacted>|2^31")), "{text}");
        }
    }

    #[test]
    fn header_case_is_irrelevant() {
        for (call_id, cseq) in [
            ("call-id", "cseq"),
            ("CALL-ID", "CSEQ"),
            ("Call-Id", "CSeq"),
            ("i", "CSeq"),
        ] {
            let msg = format!(
                "OPTIONS sip:x SIP/2.0\r\nvia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nFROM: <sip:a@b>;tag=1\r\nto: <sip:x>\r\n{call_id}: c1\r\n{cseq}: 1 OPTIONS\r\nMAX-FORWARDS: 70\r\n\r\n"
            );
            let parsed = parse(msg.as_bytes()).unwrap();
            assert_eq!(parsed.call_id_header().unwrap().value(), "c1", "{call_id}");
        }
    }

    #[test]
    fn response_parses() {
        let msg = "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/TLS h;branch=z9hG4bK1\r\nf: <sip:a@b>;tag=1\r\nt: <sip:c@d>;tag=2\r\ni: x\r\nCSeq: 1 INVITE\r\nl: 0\r\n\r\n";
        let parsed = parse(msg.as_bytes()).unwrap();
        let SipMessage::Response(resp) = parsed else {
            panic!("not a response")
        };
        assert_eq!(resp.status_code.code(), 180);
    }

    #[test]
    fn body_versus_content_length() {
        let base = "MESSAGE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nMax-Forwards: 70\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x>\r\nCall-ID: c\r\nCSeq: 2 MESSAGE\r\n";
        // Longer body: cut to Content-Length (rsip alone would keep "hello world").
        let parsed =
            parse(format!("{base}Content-Length: 5\r\n\r\nhello world").as_bytes()).unwrap();
        assert_eq!(parsed.body(), b"hello");
        // Shorter body: error.
        assert_eq!(
            parse(format!("{base}Content-Length: 50\r\n\r\nhello").as_bytes()),
            Err(ParseError::BodyTooShort {
                declared: 50,
                actual: 5
            })
        );
        // No Content-Length (datagram): body kept.
        let parsed = parse(format!("{base}\r\nhello").as_bytes()).unwrap();
        assert_eq!(parsed.body(), b"hello");
        // Bad or conflicting Content-Length.
        assert!(matches!(
            parse(format!("{base}Content-Length: x\r\n\r\n").as_bytes()),
            Err(ParseError::InvalidHeader {
                name: "Content-Length",
                ..
            })
        ));
        assert_eq!(
            parse(format!("{base}l: 1\r\nContent-Length: 2\r\n\r\nab").as_bytes()),
            Err(ParseError::DuplicateHeader("Content-Length"))
        );
    }

    #[test]
    fn mandatory_headers() {
        let full = [
            "Via: SIP/2.0/TCP h;branch=z9hG4bK1",
            "From: <sip:a@b>;tag=1",
            "To: <sip:x>",
            "Call-ID: c",
            "CSeq: 1 OPTIONS",
            "Max-Forwards: 70",
        ];
        let names = ["Via", "From", "To", "Call-ID", "CSeq", "Max-Forwards"];
        for (skip, name) in names.iter().enumerate() {
            let mut msg = String::from("OPTIONS sip:x SIP/2.0\r\n");
            for (i, h) in full.iter().enumerate() {
                if i != skip {
                    msg.push_str(h);
                    msg.push_str("\r\n");
                }
            }
            msg.push_str("\r\n");
            let err = parse(msg.as_bytes()).unwrap_err();
            assert_eq!(err, ParseError::MissingHeader(name));
            assert_eq!(err.response_status().0, 400);
            // ... and still answerable, except when a header the answer echoes is missing.
            let answer = response_for(msg.as_bytes(), 400, "Bad Request", &Default::default());
            assert_eq!(answer.is_some(), *name == "Max-Forwards", "{name}");
        }
        // Responses need no Max-Forwards.
        let resp = "SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x>;tag=2\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n";
        assert!(parse(resp.as_bytes()).is_ok());
    }

    #[test]
    fn semantic_checks() {
        let head = "Via: SIP/2.0/TCP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x>\r\nMax-Forwards: 70\r\n";
        let cases: &[(&str, ParseError)] = &[
            (
                "OPTIONS sip:x SIP/2.0\r\nCall-ID: c\r\nCall-ID: d\r\nCSeq: 1 OPTIONS\r\n",
                ParseError::DuplicateHeader("Call-ID"),
            ),
            (
                "OPTIONS sip:x SIP/2.0\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n",
                ParseError::InvalidHeader {
                    name: "CSeq",
                    reason: "method differs from the request line",
                },
            ),
            (
                "OPTIONS sip:x SIP/2.0\r\nCall-ID: c\r\nCSeq: 2147483648 OPTIONS\r\n",
                ParseError::InvalidHeader {
                    name: "CSeq",
                    reason: "sequence number not below 2**31",
                },
            ),
            (
                "OPTIONS sip:x SIP/2.0\r\nCall-ID: c\r\nCSeq: one OPTIONS\r\n",
                ParseError::InvalidHeader {
                    name: "CSeq",
                    reason: "not a sequence number and known method",
                },
            ),
            (
                "OPTIONS sip:x SIP/2.0\r\nCall-ID:   \r\nCSeq: 1 OPTIONS\r\n",
                ParseError::InvalidHeader {
                    name: "Call-ID",
                    reason: "empty value",
                },
            ),
        ];
        for (start, expected) in cases {
            let (first, rest) = start.split_once("\r\n").unwrap();
            let msg = format!("{first}\r\n{head}{rest}\r\n");
            assert_eq!(
                parse(msg.as_bytes()).as_ref().err(),
                Some(expected),
                "{msg}"
            );
        }
    }

    #[test]
    fn unknown_and_miscased_methods() {
        let tail = " sip:x SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n\r\n";
        for method in ["FOO", "invite", "Options"] {
            let err = parse(format!("{method}{tail}").as_bytes()).unwrap_err();
            assert_eq!(err, ParseError::UnknownMethod(method.into()));
            assert_eq!(err.response_status(), (501, "Not Implemented"));
        }
    }

    #[test]
    fn syntax_errors() {
        for bad in [
            &b""[..],
            b"\r\n\r\n",
            b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n",
            b"OPTIONS sip:x SIP/2.0\r\nVia SIP/2.0/TCP h\r\n\r\n",
            b"OPTIONS sip:x SIP/2.0\r\nSubject: caf\xe9\r\n\r\n",
            b"OPTIONS sip:x SIP/2.0\r\n Via: a\r\n\r\n",
            b"\x00\x01\x02",
        ] {
            assert!(matches!(parse(bad), Err(ParseError::Syntax(_))), "{bad:?}");
        }
        let Err(ParseError::Syntax(text)) =
            parse(b"OPTIONS sip:x SIP/2.0\r\nVia SIP/2.0/TCP h\r\n\r\n")
        else {
            panic!()
        };
        assert!(!text.contains('\r') && text.len() <= MAX_ERROR_TEXT + 16);
    }

    #[test]
    fn garbage_head_still_gets_400() {
        // rsip rejects this (space in a header name, a line without colon, bad request-URI),
        // yet everything a response echoes is there.
        let garbage = "INVITE sip:[bad uri SIP/2.0\r\n\
                       v: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bKg1\r\n\
                       Via: SIP/2.0/TCP 192.0.2.2;branch=z9hG4bKg2\r\n\
                       this line is junk\r\n\
                       Bad Header: x\r\n\
                       f: <sip:a@example.com>;tag=abc\r\n\
                       To: \"Semi;<colon>\" <sip:b@example.com>\r\n\
                       Call-ID: garbage-1\r\n\
                       CSeq: 9 INVITE\r\n\
                       l: 0\r\n\r\n";
        assert!(parse(garbage.as_bytes()).is_err());
        let extras = ResponseExtras {
            to_tag: Some("srv1"),
            ..Default::default()
        };
        let answer = response_for(garbage.as_bytes(), 400, "Bad Request", &extras).unwrap();
        let expected = "SIP/2.0 400 Bad Request\r\n\
                        Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bKg1\r\n\
                        Via: SIP/2.0/TCP 192.0.2.2;branch=z9hG4bKg2\r\n\
                        From: <sip:a@example.com>;tag=abc\r\n\
                        To: \"Semi;<colon>\" <sip:b@example.com>;tag=srv1\r\n\
                        Call-ID: garbage-1\r\n\
                        CSeq: 9 INVITE\r\n\
                        Content-Length: 0\r\n\r\n";
        assert_eq!(String::from_utf8(answer.clone()).unwrap(), expected);
        // Our own answer is a valid response.
        let parsed = parse(&answer).unwrap();
        assert!(parsed.is_response());
        // (rsip's typed To parser cannot handle this quoted display name, so look at the text.)
        assert!(parsed.to_header().unwrap().value().ends_with(";tag=srv1"));
    }

    #[test]
    fn framing_error_head_gets_answer() {
        let msg = b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n";
        let mut framer = StreamFramer::new();
        framer.push(msg);
        let err = framer.next_message().unwrap_err();
        let (code, reason) = err.response_status();
        let answer = response_for(err.head().unwrap(), code, reason, &Default::default()).unwrap();
        assert!(answer.starts_with(
            b"SIP/2.0 400 Missing Content-Length\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n"
        ));
    }

    #[test]
    fn options_200_from_parsed_request() {
        let msg = parse(long_options().as_bytes()).unwrap();
        let SipMessage::Request(req) = msg else {
            panic!()
        };
        let extras = ResponseExtras {
            to_tag: Some("t1"),
            server: Some("mediation/0.1\r\nX-Injected: 1"),
            headers: &[
                ("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS"),
                ("Content-Length", "99"),
                ("bad name", "x"),
                ("Accept", "application/sdp"),
            ],
        };
        let answer = response_for_request(&req, 200, "OK", &extras).unwrap();
        let text = String::from_utf8(answer).unwrap();
        assert_eq!(
            text,
            "SIP/2.0 200 OK\r\n\
             Via: SIP/2.0/TLS client.example.com:5061;branch=z9hG4bKopt\r\n\
             Via: SIP/2.0/TLS edge.example.com;branch=z9hG4bKedge\r\n\
             From: \"Mon\" <sip:monitor@example.com>;tag=m1\r\n\
             To: <sip:gw.example.com>;tag=t1\r\n\
             Call-ID: opt-1@client\r\n\
             CSeq: 7 OPTIONS\r\n\
             Server: mediation/0.1  X-Injected: 1\r\n\
             Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n\
             Accept: application/sdp\r\n\
             Content-Length: 0\r\n\r\n"
        );
        // Same answer from the raw bytes.
        assert_eq!(
            response_for(long_options().as_bytes(), 200, "OK", &extras).map(String::from_utf8),
            Some(Ok(text))
        );
    }

    #[test]
    fn to_tag_rules() {
        let with_tag = long_options().replace(
            "To: <sip:gw.example.com>",
            "To: <sip:gw.example.com> ; TAG = have",
        );
        let extras = ResponseExtras {
            to_tag: Some("new"),
            ..Default::default()
        };
        let answer = String::from_utf8(
            response_for(with_tag.as_bytes(), 486, "Busy Here", &extras).unwrap(),
        )
        .unwrap();
        assert!(answer.contains("\r\nTo: <sip:gw.example.com> ; TAG = have\r\n"));
        // A tag inside the URI is not the To tag.
        let uri_tag = long_options().replace(
            "To: <sip:gw.example.com>",
            "To: <sip:gw.example.com;tag=uri>",
        );
        let answer =
            String::from_utf8(response_for(uri_tag.as_bytes(), 486, "Busy Here", &extras).unwrap())
                .unwrap();
        assert!(answer.contains("\r\nTo: <sip:gw.example.com;tag=uri>;tag=new\r\n"));
        // No tag on 100 Trying, none if the tag is not a token.
        let trying = String::from_utf8(
            response_for(long_options().as_bytes(), 100, "Trying", &extras).unwrap(),
        )
        .unwrap();
        assert!(trying.contains("\r\nTo: <sip:gw.example.com>\r\n"));
        let bad = ResponseExtras {
            to_tag: Some("a b"),
            ..Default::default()
        };
        let answer =
            String::from_utf8(response_for(long_options().as_bytes(), 400, "Bad", &bad).unwrap())
                .unwrap();
        assert!(answer.contains("\r\nTo: <sip:gw.example.com>\r\n"));
        // addr-spec without brackets: params after the URI are header params.
        assert!(has_tag_param(b"sip:a@b;tag=1"));
        assert!(!has_tag_param(b"\"x;tag=1\" <sip:a@b>"));
        assert!(has_tag_param(b"\"x\\\"<\" <sip:a@b>;tag=1"));
    }

    #[test]
    fn no_answer_cases() {
        let d = ResponseExtras::default();
        // Responses and ACKs are never answered.
        let resp = "SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP h\r\nFrom: a\r\nTo: b\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n";
        assert_eq!(response_for(resp.as_bytes(), 400, "Bad Request", &d), None);
        let ack = long_options()
            .replace("OPTIONS sip", "ACK sip")
            .replace("7 OPTIONS", "7 ACK");
        assert_eq!(response_for(ack.as_bytes(), 400, "Bad Request", &d), None);
        let ack_by_cseq = long_options()
            .replace("OPTIONS sip", "XXX sip")
            .replace("7 OPTIONS", "7 ACK");
        assert_eq!(
            response_for(ack_by_cseq.as_bytes(), 400, "Bad Request", &d),
            None
        );
        let parsed_ack = parse(ack.as_bytes()).unwrap();
        let SipMessage::Request(parsed_ack) = parsed_ack else {
            panic!()
        };
        assert_eq!(
            response_for_request(&parsed_ack, 400, "Bad Request", &d),
            None
        );
        // Bad status codes.
        assert_eq!(response_for(long_options().as_bytes(), 99, "x", &d), None);
        assert_eq!(response_for(long_options().as_bytes(), 700, "x", &d), None);
        // Control characters in an echoed header.
        let nul = long_options().replace("Call-ID: opt-1@client", "Call-ID: opt\u{0}1");
        assert_eq!(response_for(nul.as_bytes(), 400, "Bad Request", &d), None);
        // Reason phrase cannot inject lines.
        let answer = response_for(long_options().as_bytes(), 400, "Bad\r\nX: y", &d).unwrap();
        assert!(answer.starts_with(b"SIP/2.0 400 Bad  X: y\r\nVia:"));
    }

    #[test]
    fn random_input_never_panics() {
        let mut rng = XorShift(0xD1B5_4A32_D192_ED03);
        let seeds = [long_options().to_string(), compact_invite()];
        let d = ResponseExtras {
            to_tag: Some("t"),
            server: Some("s"),
            headers: &[("Allow", "INVITE")],
        };
        for round in 0..3000 {
            let data: Vec<u8> = if round % 3 == 0 {
                let len = (rng.next() % 600) as usize;
                (0..len).map(|_| rng.next() as u8).collect()
            } else {
                // Mutate a valid message: flip, delete and insert bytes.
                let mut m = seeds[round % 2].clone().into_bytes();
                for _ in 0..(1 + rng.next() % 8) {
                    if m.is_empty() {
                        break;
                    }
                    let pos = (rng.next() as usize) % m.len();
                    match rng.next() % 4 {
                        0 => m[pos] = rng.next() as u8,
                        1 => {
                            m.remove(pos);
                        }
                        2 => m.insert(pos, b"\r\n :;<>\"\\"[(rng.next() % 9) as usize]),
                        _ => m.truncate(pos),
                    }
                }
                m
            };
            let _ = parse(&data);
            let _ = response_for(&data, 400, "Bad Request", &d);
            if let Ok(SipMessage::Request(req)) = parse(&data) {
                assert!(
                    response_for_request(&req, 200, "OK", &d).is_some()
                        || req.method == rsip::Method::Ack,
                    "{:?}",
                    String::from_utf8_lossy(&data)
                );
            }
        }
    }
}
