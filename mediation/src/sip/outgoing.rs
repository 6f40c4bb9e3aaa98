//! Writing the SIP messages the B2BUA sends: requests on a leg (INVITE, ACK, BYE, CANCEL) and
//! responses to a received INVITE or in-dialog request, as text with a correct Content-Length;
//! headers passed through from the other leg are written byte for byte as received.

use bytes::Bytes;
use rand::Rng;

use super::fields::param;
use super::trace::Redacted;
#[cfg(doc)]
use super::Header;
use super::Message;

/// The methods we handle (UPDATE: session refreshes and re-offers, RFC 3311; INFO, NOTIFY,
/// MESSAGE and OPTIONS inside a call are carried to the other party).
pub(crate) const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO, NOTIFY, MESSAGE";

/// The SIP extensions (option tags) we implement: a request that requires any other gets
/// `420 Bad Extension` (RFC 3261 §8.2.2.3).
pub(crate) const SUPPORTED: &[&str] = &["timer"];

/// The option tags of `require` we do not implement (the `Unsupported` of a 420), as written.
pub(crate) fn unsupported(require: &[String]) -> Vec<&str> {
    require
        .iter()
        .map(String::as_str)
        .filter(|tag| !SUPPORTED.iter().any(|s| s.eq_ignore_ascii_case(tag)))
        .collect()
}

/// What we call ourselves in `Server` and `User-Agent`.
pub(crate) const SERVER: &str = concat!("mediation/", env!("CARGO_PKG_VERSION"));

/// The headers the B2BUA writes itself on each leg, which are never passed through from the
/// other leg (`[sip] pass_headers` cannot name them): a second Via, Call-ID or Content-Length
/// would break the dialog or the framing.
pub(crate) const MANAGED_HEADERS: &[&str] = &[
    "Via",
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Max-Forwards",
    "Contact",
    "Route",
    "Record-Route",
    "Content-Type",
    "Content-Length",
    "Content-Encoding",
    "Supported",
    "Require",
    "Proxy-Require",
    "Allow",
    "Session-Expires",
    "Min-SE",
    "RSeq",
    "RAck",
    "Server",
    "User-Agent",
];

/// A message being written: start line, headers in order, optional body (SDP, or a body
/// carried from the other leg). `Debug` shows the body with its keys redacted.
#[derive(Clone)]
pub struct Outgoing {
    start: String,
    /// (name, value); a name of "" holds a whole field passed through as received.
    headers: Vec<(&'static str, String)>,
    /// The body and its Content-Type.
    body: Option<(Option<String>, Bytes)>,
}

impl Outgoing {
    /// A request with its start line.
    pub(crate) fn request(method: &str, uri: &str) -> Self {
        Self {
            start: format!("{method} {uri} SIP/2.0"),
            headers: Vec::new(),
            body: None,
        }
    }

    /// A response with its status line.
    pub(crate) fn response(code: u16, reason: &str) -> Self {
        Self {
            start: format!("SIP/2.0 {code} {reason}"),
            headers: Vec::new(),
            body: None,
        }
    }

    /// Appends a header.
    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Appends a received header field byte for byte ([`Header::raw`], a header passed
    /// through to the other leg).
    pub(crate) fn raw_header(mut self, field: String) -> Self {
        self.headers.push(("", field));
        self
    }

    /// Adds a session timer's `Session-Expires` value (RFC 4028), and `Require: timer` when
    /// the peer supports timers and must know.
    pub(crate) fn session_expires(mut self, value: Option<String>, require: bool) -> Self {
        if let Some(v) = value {
            self = self.header("Session-Expires", v);
            if require {
                self = self.header("Require", "timer");
            }
        }
        self
    }

    /// The `branch` of our Via, once added.
    pub(crate) fn via_branch(&self) -> Option<&str> {
        let (_, via) = self.headers.iter().find(|(n, _)| *n == "Via")?;
        via.split(';')
            .find_map(|p| p.trim().strip_prefix("branch="))
    }

    /// Sets an `application/sdp` body.
    pub(crate) fn sdp(mut self, body: String) -> Self {
        self.body = Some((Some("application/sdp".into()), Bytes::from(body)));
        self
    }

    /// Sets a body carried from the other leg, with its Content-Type as received (none, and
    /// no body, when it is empty).
    pub(crate) fn body(mut self, content_type: Option<&str>, body: Bytes) -> Self {
        self.body = (!body.is_empty()).then(|| (content_type.map(str::to_string), body));
        self
    }

    /// The bytes on the wire.
    pub fn encode(&self) -> Bytes {
        let body_len = self.body.as_ref().map_or(0, |(_, b)| b.len());
        let mut out = Vec::with_capacity(512 + body_len);
        out.extend_from_slice(self.start.as_bytes());
        out.extend_from_slice(b"\r\n");
        for (n, v) in &self.headers {
            if !n.is_empty() {
                out.extend_from_slice(n.as_bytes());
                out.extend_from_slice(b": ");
            }
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if let Some((Some(content_type), _)) = &self.body {
            out.extend_from_slice(b"Content-Type: ");
            out.extend_from_slice(content_type.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("Content-Length: {body_len}\r\n\r\n").as_bytes());
        if let Some((_, body)) = &self.body {
            out.extend_from_slice(body);
        }
        Bytes::from(out)
    }
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgoing")
            .field("start", &self.start)
            .field("headers", &self.headers)
            .field("body", &self.body.as_ref().map(|(_, b)| Redacted(b)))
            .finish()
    }
}

/// A fresh random token for tags, branches and Call-IDs, drawn from `rng` (the engine's, seeded
/// from the operating system in service and fixed in tests).
pub(crate) fn token(rng: &mut impl Rng, len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// A fresh RFC 3261 branch.
pub(crate) fn branch(rng: &mut impl Rng) -> String {
    format!("z9hG4bK-{}", token(rng, 16))
}

/// The parts of a received request needed to answer it (RFC 3261 §8.2.6.2).
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    vias: Vec<String>,
    from: String,
    to: String,
    call_id: String,
    cseq: String,
}

impl ReceivedRequest {
    /// Keeps what a response to `msg` must echo.
    pub fn of(msg: &Message) -> Option<Self> {
        let value = |name| Some(msg.headers_named(name).next()?.value().to_string());
        Some(Self {
            vias: msg
                .headers_named("Via")
                .map(|h| h.value().to_string())
                .collect(),
            from: value("From")?,
            to: value("To")?,
            call_id: value("Call-ID")?,
            cseq: value("CSeq")?,
        })
    }

    /// A response; `to_tag` is added to To when it has none (never to 100 Trying).
    pub fn respond(&self, code: u16, reason: &str, to_tag: &str) -> Outgoing {
        let mut r = Outgoing::response(code, reason);
        for via in &self.vias {
            r = r.header("Via", via.clone());
        }
        let to = if code > 100 && param(&self.to, "tag").is_none() {
            format!("{};tag={to_tag}", self.to)
        } else {
            self.to.clone()
        };
        r.header("From", self.from.clone())
            .header("To", to)
            .header("Call-ID", self.call_id.clone())
            .header("CSeq", self.cseq.clone())
            .header("Server", SERVER)
    }

    /// The request's From value.
    pub(crate) fn from(&self) -> &str {
        &self.from
    }

    /// The request's To value.
    pub(crate) fn to(&self) -> &str {
        &self.to
    }
}

/// Strips the `;tag=` parameter from a From/To value (to reuse its name-addr on another leg).
pub(crate) fn without_tag(value: &str) -> String {
    match param(value, "tag") {
        Some(tag) => value.replace(&format!(";tag={tag}"), "").trim().to_string(),
        None => value.trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_keys_in_the_body() {
        let key = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNk";
        let m = Outgoing::response(200, "OK")
            .header("CSeq", "1 INVITE")
            .sdp(format!(
                "m=audio 4000 RTP/SAVP 0\r\na=crypto:1 X Inline:{key}|2^31\r\n"
            ));
        let shown = format!("{m:?}");
        assert!(!shown.contains(key), "{shown}");
        assert!(shown.contains("Inline:<redacted>|2^31"), "{shown}");
        assert!(shown.contains("1 INVITE"), "{shown}");
    }

    #[test]
    fn encodes_with_content_length() {
        let m = Outgoing::request("BYE", "sip:a@b")
            .header("Via", "SIP/2.0/TCP h:5060;branch=z9hG4bK1")
            .header("Max-Forwards", "70")
            .header("From", "<sip:a@b>;tag=1")
            .header("To", "<sip:c@d>;tag=2")
            .header("Call-ID", "x")
            .header("CSeq", "2 BYE")
            .sdp("v=0\r\n".into())
            .encode();
        let text = std::str::from_utf8(&m).unwrap();
        assert!(
            text.starts_with("BYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h:5060;branch=z9hG4bK1\r\n")
        );
        assert!(text.ends_with("Content-Length: 5\r\n\r\nv=0\r\n"));
        let parsed = crate::sip::parse(&m).unwrap();
        assert_eq!(parsed.body().as_ref(), b"v=0\r\n");
    }

    #[test]
    fn a_carried_body_keeps_its_content_type_and_bytes() {
        let body = bytes::Bytes::from_static(b"Signal=5\r\nDuration=160\r\n\x00\xff");
        let m = Outgoing::request("INFO", "sip:a@b")
            .header("Via", "SIP/2.0/TCP h:5060;branch=z9hG4bK1")
            .header("Max-Forwards", "70")
            .header("From", "<sip:a@b>;tag=1")
            .header("To", "<sip:c@d>;tag=2")
            .header("Call-ID", "x")
            .header("CSeq", "2 INFO")
            .body(Some("application/dtmf-relay"), body.clone())
            .encode();
        let parsed = crate::sip::parse(&m).unwrap();
        assert_eq!(parsed.body(), &body);
        assert_eq!(
            parsed.view().content_type.as_deref(),
            Some("application/dtmf-relay")
        );
        let empty = Outgoing::request("INFO", "sip:a@b")
            .body(Some("application/dtmf-relay"), bytes::Bytes::new())
            .encode();
        assert!(empty.ends_with(b"\r\nContent-Length: 0\r\n\r\n"));
        assert!(!empty.windows(12).any(|w| w == b"Content-Type"));
    }

    #[test]
    fn unsupported_names_every_required_tag_but_timer() {
        let require = ["foo".to_string(), "Timer".into(), "100rel".into()];
        assert_eq!(unsupported(&require), ["foo", "100rel"]);
        assert!(unsupported(&["timer".to_string()]).is_empty());
    }

    #[test]
    fn tags_stripped_and_added() {
        assert_eq!(without_tag("<sip:a@b>;tag=12"), "<sip:a@b>");
        assert_eq!(without_tag("<sip:a@b;tag=x>"), "<sip:a@b;tag=x>");
        let req = ReceivedRequest {
            vias: vec!["SIP/2.0/TCP h;branch=z9hG4bK1".into()],
            from: "<sip:a@b>;tag=f".into(),
            to: "<sip:c@d>".into(),
            call_id: "c".into(),
            cseq: "1 INVITE".into(),
        };
        let ringing = req.respond(180, "Ringing", "t1").encode();
        assert!(std::str::from_utf8(&ringing)
            .unwrap()
            .contains("To: <sip:c@d>;tag=t1\r\n"));
        let trying = req.respond(100, "Trying", "t1").encode();
        assert!(std::str::from_utf8(&trying)
            .unwrap()
            .contains("To: <sip:c@d>\r\n"));
    }
}
