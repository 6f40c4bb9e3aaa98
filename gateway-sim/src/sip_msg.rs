//! SIP messages as the simulator handles them: a parsed message reduced to its start line,
//! header fields (name, value) and body, with the few accessors a user agent needs (Call-ID,
//! CSeq, tags, Contact), and builders for the requests and responses it sends.
//!
//! Parsing is `mediation::sip::parse`, the appliance's own parser: the simulator reads what the
//! appliance would (tel: URIs, IPv6 hosts, compact forms).

use std::fmt::Write as _;

/// Start line of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StartLine {
    /// `METHOD uri SIP/2.0`
    Request {
        /// Method, e.g. `INVITE`.
        method: String,
        /// Request-URI.
        uri: String,
    },
    /// `SIP/2.0 code reason`
    Response {
        /// Status code.
        code: u16,
    },
}

/// A received SIP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SipMsg {
    /// Request or status line.
    pub(crate) start: StartLine,
    /// Header fields in order, long names (`Call-ID`, `CSeq`, ...), values unfolded.
    pub(crate) headers: Vec<(String, String)>,
    /// Body (exactly Content-Length bytes).
    pub(crate) body: Vec<u8>,
}

impl From<mediation::sip::Message> for SipMsg {
    fn from(message: mediation::sip::Message) -> Self {
        let headers = message
            .headers()
            .iter()
            .map(|h| (h.name().to_string(), h.value().to_string()))
            .collect();
        let start = match message.start() {
            mediation::sip::Start::Request { method, uri } => StartLine::Request {
                method: method.to_string(),
                uri: uri.to_string(),
            },
            mediation::sip::Start::Response { code, .. } => StartLine::Response { code: *code },
        };
        SipMsg {
            start,
            headers,
            body: message.body().to_vec(),
        }
    }
}

impl SipMsg {
    /// Parses one framed message with `mediation::sip::parse`.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, mediation::sip::ParseError> {
        mediation::sip::parse(bytes).map(Self::from)
    }

    /// The first value of header `name` (case-insensitive).
    pub(crate) fn header<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.all(name).next()
    }

    /// Every value of header `name`, in order.
    pub(crate) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The request method, `None` for a response.
    pub(crate) fn method(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The status code, `None` for a request.
    pub(crate) fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// Call-ID.
    pub(crate) fn call_id(&self) -> Option<&str> {
        self.header("Call-ID")
    }

    /// CSeq number and method.
    pub(crate) fn cseq(&self) -> Option<(u32, &str)> {
        let value = self.header("CSeq")?;
        let mut parts = value.split_whitespace();
        let number = parts.next()?.parse().ok()?;
        Some((number, parts.next()?))
    }

    /// The `tag` parameter of To.
    pub(crate) fn to_tag(&self) -> Option<&str> {
        self.header("To").and_then(tag_param)
    }

    /// The `tag` parameter of From.
    #[cfg(test)]
    #[allow(clippy::wrong_self_convention, reason = "the tag of the From header")]
    pub(crate) fn from_tag(&self) -> Option<&str> {
        self.header("From").and_then(tag_param)
    }

    /// The URI of the first Contact.
    pub(crate) fn contact_uri(&self) -> Option<&str> {
        self.header("Contact").map(uri_of)
    }

    /// Record-Route values, in order (each may hold several, comma-separated).
    pub(crate) fn record_routes(&self) -> Vec<String> {
        self.all("Record-Route")
            .flat_map(|v| v.split(','))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect()
    }
}

/// The `tag` parameter of a From/To value (outside any `<...>`).
pub(crate) fn tag_param(value: &str) -> Option<&str> {
    let params = match value.rfind('>') {
        Some(end) => &value[end + 1..],
        None => value,
    };
    params.split(';').skip(1).find_map(|p| {
        let (name, v) = p.split_once('=')?;
        name.trim().eq_ignore_ascii_case("tag").then(|| v.trim())
    })
}

/// The URI of a name-addr (`"x" <sip:a@b>;p`) or addr-spec (`sip:a@b;p`) value.
pub(crate) fn uri_of(value: &str) -> &str {
    if let (Some(start), Some(end)) = (value.find('<'), value.find('>')) {
        if start < end {
            return &value[start + 1..end];
        }
    }
    value.split(';').next().unwrap_or(value).trim()
}

/// A random token of `n` hex digits for tags, branches and Call-IDs.
pub(crate) fn token(n: usize) -> String {
    let mut out = String::with_capacity(n);
    while out.len() < n {
        let _ = write!(out, "{:016x}", rand::random::<u64>());
    }
    out.truncate(n);
    out
}

/// A new Via branch (RFC 3261 magic cookie first).
pub(crate) fn branch() -> String {
    format!("z9hG4bK{}", token(16))
}

/// A body and its Content-Type.
pub(crate) type Body<'a> = Option<(&'a str, &'a [u8])>;

/// Serializes a message: start line, the headers in order, Content-Type and Content-Length.
pub(crate) fn serialize(start_line: &str, headers: &[(&str, String)], body: Body<'_>) -> Vec<u8> {
    let mut head = String::with_capacity(512);
    head.push_str(start_line);
    head.push_str("\r\n");
    for (name, value) in headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    let body_bytes = body.map(|(_, b)| b).unwrap_or(&[]);
    if let Some((content_type, _)) = body {
        let _ = write!(head, "Content-Type: {content_type}\r\n");
    }
    let _ = write!(head, "Content-Length: {}\r\n\r\n", body_bytes.len());
    let mut out = head.into_bytes();
    out.extend_from_slice(body_bytes);
    out
}

/// Standard reason phrase for the codes this simulator sends.
pub(crate) fn reason(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        603 => "Decline",
        _ => "",
    }
}

/// A response to `request`: Via, From, To (with `to_tag` added if To has none), Call-ID and CSeq
/// copied, Record-Route too in a response that makes a dialog (101-299 to an INVITE, RFC 3261
/// §12.1.1, so a record-routing proxy stays on the path of the ACK and BYE), then `extra`
/// headers and the body.
pub(crate) fn response(
    request: &SipMsg,
    code: u16,
    to_tag: Option<&str>,
    extra: &[(&str, String)],
    body: Body<'_>,
) -> Vec<u8> {
    let mut headers: Vec<(&str, String)> = Vec::with_capacity(8 + extra.len());
    for via in request.all("Via") {
        headers.push(("Via", via.to_string()));
    }
    if let Some(from) = request.header("From") {
        headers.push(("From", from.to_string()));
    }
    if let Some(to) = request.header("To") {
        let to = match (tag_param(to), to_tag) {
            (None, Some(tag)) if code != 100 => format!("{to};tag={tag}"),
            _ => to.to_string(),
        };
        headers.push(("To", to));
    }
    if let Some(call_id) = request.call_id() {
        headers.push(("Call-ID", call_id.to_string()));
    }
    if let Some(cseq) = request.header("CSeq") {
        headers.push(("CSeq", cseq.to_string()));
    }
    if (101..300).contains(&code) && request.method() == Some("INVITE") {
        for route in request.all("Record-Route") {
            headers.push(("Record-Route", route.to_string()));
        }
    }
    headers.extend(extra.iter().cloned());
    let phrase = match reason(code) {
        "" => "Unknown",
        known => known,
    };
    serialize(&format!("SIP/2.0 {code} {phrase}"), &headers, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:+15551234@gw1.example.test SIP/2.0\r\n\
        Via: SIP/2.0/TLS 127.0.0.1:5067;branch=z9hG4bKabc;rport\r\n\
        Via: SIP/2.0/TLS 10.0.0.1:5061;branch=z9hG4bKdef\r\n\
        Max-Forwards: 70\r\n\
        From: \"Alice\" <sip:alice@example.test>;tag=aa11\r\n\
        To: <sip:+15551234@gw1.example.test>\r\n\
        Call-ID: c1@example.test\r\n\
        CSeq: 7 INVITE\r\n\
        Contact: <sip:mediation@127.0.0.1:5067;transport=tls>\r\n\
        Record-Route: <sip:p1;lr>, <sip:p2;lr>\r\n\
        Content-Type: application/sdp\r\n\
        Content-Length: 4\r\n\r\nv=0\n";

    #[test]
    fn reads_what_a_user_agent_needs() {
        let m = SipMsg::parse(INVITE.as_bytes()).unwrap();
        assert_eq!(m.method(), Some("INVITE"));
        assert_eq!(m.call_id(), Some("c1@example.test"));
        assert_eq!(m.cseq(), Some((7, "INVITE")));
        assert_eq!(m.from_tag(), Some("aa11"));
        assert_eq!(m.to_tag(), None);
        assert_eq!(
            m.contact_uri(),
            Some("sip:mediation@127.0.0.1:5067;transport=tls")
        );
        assert_eq!(m.record_routes(), vec!["<sip:p1;lr>", "<sip:p2;lr>"]);
        assert_eq!(m.body, b"v=0\n");
    }

    #[test]
    fn response_echoes_and_tags() {
        let m = SipMsg::parse(INVITE.as_bytes()).unwrap();
        let bytes = response(
            &m,
            200,
            Some("bb22"),
            &[("Contact", "<sip:gw@127.0.0.1>".into())],
            Some(("application/sdp", b"v=0\r\n")),
        );
        let r = SipMsg::parse(&bytes).unwrap();
        assert_eq!(r.status(), Some(200));
        assert_eq!(r.all("Via").count(), 2);
        assert_eq!(r.to_tag(), Some("bb22"));
        assert_eq!(r.from_tag(), Some("aa11"));
        assert_eq!(r.cseq(), Some((7, "INVITE")));
        assert_eq!(r.body, b"v=0\r\n");
        // The dialog's route set comes back to the caller (RFC 3261 §12.1.1).
        assert_eq!(r.record_routes(), vec!["<sip:p1;lr>", "<sip:p2;lr>"]);
        let ringing = SipMsg::parse(&response(&m, 180, Some("bb22"), &[], None)).unwrap();
        assert_eq!(ringing.record_routes().len(), 2);
        // No tag on 100 Trying, and no route set on what makes no dialog.
        let trying = SipMsg::parse(&response(&m, 100, Some("bb22"), &[], None)).unwrap();
        assert_eq!(trying.to_tag(), None);
        assert!(trying.record_routes().is_empty());
        let busy = SipMsg::parse(&response(&m, 486, Some("bb22"), &[], None)).unwrap();
        assert!(busy.record_routes().is_empty());
    }

    #[test]
    fn uri_and_tag_forms() {
        assert_eq!(uri_of("sip:a@b;transport=tcp"), "sip:a@b");
        assert_eq!(uri_of("\"x;y\" <sip:a@b;lr>;expires=5"), "sip:a@b;lr");
        assert_eq!(tag_param("sip:a@b;tag=1"), Some("1"));
        assert_eq!(tag_param("<sip:a@b;tag=no>;TAG=yes"), Some("yes"));
        assert_eq!(tag_param("<sip:a@b;tag=no>"), None);
        assert_eq!(token(24).len(), 24);
        assert!(branch().starts_with("z9hG4bK"));
    }
}
