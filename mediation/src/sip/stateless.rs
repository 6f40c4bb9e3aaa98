//! Stateless answers built from a request's raw head (400 to a message we could not parse, 513,
//! 408 for a transaction that timed out) or from a parsed request (200 to OPTIONS, 503 while
//! overloaded): the RFC 3261 §8.2.6 echo of Via, From, To, Call-ID and CSeq, a To tag, and
//! nothing a peer could inject.

use std::borrow::Cow;

use super::{compact, head, Message, Method};

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
/// only, so it works for header sections the parser refused. `request_head` may be the whole message;
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

/// Builds a response to a parsed request; same rules as [`response_for`]. `None` for a
/// response or an ACK.
pub fn response_for_request(
    request: &Message,
    code: u16,
    reason: &str,
    extras: &ResponseExtras<'_>,
) -> Option<Vec<u8>> {
    let mut echo = Echo {
        is_ack: request.method()? == &Method::Ack,
        ..Echo::default()
    };
    for header in request.headers() {
        // Via values are echoed line by line as received, the others once.
        echo.offer(
            header.name().as_bytes(),
            Cow::Borrowed(header.value().as_bytes()),
        );
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
    use crate::sip::message::tests::long_options;
    use crate::sip::parse;
    use crate::sip::StreamFramer;

    #[test]
    fn garbage_head_still_gets_400() {
        // The parser refuses this (a line without colon, a bad Request-URI),
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
        assert_eq!(parsed.code(), Some(400));
        assert_eq!(parsed.view().to_tag(), Some("srv1"));
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
        let req = parse(long_options().as_bytes()).unwrap();
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
}
