//! One SIP message as it came off the wire, and the typed view of it the B2BUA reads, both made
//! once at the door by [`Message::parse`]:
//!
//! * the start line, the header list in order and byte for byte (names compared
//!   case-insensitively, compact forms mapped to long names, folded lines kept as written),
//!   and the body as bytes, so [`Message::encode`] gives back what was received;
//! * a [`View`] of the headers the B2BUA uses (Via, From, To, Call-ID, CSeq, Max-Forwards,
//!   Contact, Route, Record-Route, option tags, ...) parsed and checked; a header it cannot
//!   read is refused with a [`ParseError`] naming it (`400 Bad Via`).
//!
//! Nothing here allocates per byte or panics on input.

use std::borrow::Cow;

use bytes::Bytes;

use super::fields::{split_list, CSeq, NameAddr, Via};
use super::uri::{Uri, UriError};
use super::{compact, framing::parse_decimal, head, Method};

/// The most hops a request may still travel (RFC 3261 §20.22: 0 to 255).
pub(super) const MAX_HOPS: u32 = 255;

/// Why a framed message could not be accepted. Every variant names what was wrong, and
/// [`ParseError::response_status`] gives the answer a request gets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The message is not SIP at all, or its head is broken beyond any header (no blank line,
    /// a control character, a line that is not `name: value`, not UTF-8).
    #[error("malformed SIP message: {0}")]
    Syntax(&'static str),
    /// The request line or status line does not follow the grammar.
    #[error("bad start line: {0}")]
    StartLine(&'static str),
    /// The protocol version is not SIP/2.0.
    #[error("SIP version {0:?} is not SIP/2.0")]
    Version(String),
    /// The Request-URI does not parse (or carries headers, RFC 3261 §19.1.5).
    #[error("malformed Request-URI: {0}")]
    RequestUri(&'static str),
    /// The Request-URI's scheme is neither sip, sips nor tel (the message is well formed; we
    /// do not route such a URI).
    #[error("Request-URI scheme is not sip, sips or tel")]
    UriScheme,
    /// A request with a method this stack does not know (or a wrongly-cased known one).
    #[error("unsupported SIP method {0:?}")]
    UnknownMethod(String),
    /// A mandatory header (RFC 3261 §8.1.1) is absent.
    #[error("missing mandatory header {0}")]
    MissingHeader(&'static str),
    /// A header that must appear once appears several times.
    #[error("header {0} appears more than once")]
    DuplicateHeader(&'static str),
    /// A header the B2BUA reads is present but unusable.
    #[error("invalid {name} header: {reason}")]
    InvalidHeader {
        /// Long name of the header.
        name: &'static str,
        /// What is wrong with it.
        reason: Cow<'static, str>,
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
    /// Status code and reason phrase for answering a rejected request; the phrase names the
    /// header or part at fault (`400 Bad Via`, `400 Missing Call-ID`).
    pub fn response_status(&self) -> (u16, Cow<'static, str>) {
        match self {
            Self::UnknownMethod(_) => (501, "Not Implemented".into()),
            Self::Version(_) => (505, "Version Not Supported".into()),
            Self::UriScheme => (416, "Unsupported URI Scheme".into()),
            Self::RequestUri(_) => (400, "Malformed Request-URI".into()),
            Self::StartLine(_) => (400, "Bad Request-Line".into()),
            Self::MissingHeader(name) => (400, format!("Missing {name}").into()),
            Self::DuplicateHeader(name) | Self::InvalidHeader { name, .. } => {
                (400, format!("Bad {name}").into())
            }
            Self::BodyTooShort { .. } => (400, "Bad Content-Length".into()),
            Self::Syntax(_) => (400, "Bad Request".into()),
        }
    }

    /// A `Warning` value (RFC 3261 §20.43) saying what was wrong, for the 4xx.
    pub(crate) fn warning(&self) -> String {
        let text: String = self
            .to_string()
            .chars()
            .map(|c| {
                if c == '"' || c == '\\' || c.is_control() {
                    '\''
                } else {
                    c
                }
            })
            .collect();
        format!("399 mediation \"{text}\"")
    }

    /// The header or part at fault, a label of `sip_messages_malformed_total`.
    pub fn part(&self) -> &'static str {
        match self {
            Self::Syntax(_) => "message",
            Self::StartLine(_) | Self::Version(_) => "start-line",
            Self::RequestUri(_) | Self::UriScheme => "request-uri",
            Self::UnknownMethod(_) => "method",
            Self::MissingHeader(name)
            | Self::DuplicateHeader(name)
            | Self::InvalidHeader { name, .. } => name,
            Self::BodyTooShort { .. } => "Content-Length",
        }
    }
}

/// One header field as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    raw: Box<str>,
    name: Cow<'static, str>,
    value: Value,
}

/// Where a header's value is: a range of its raw text, or (folded over lines) its own copy.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    In(usize, usize),
    Unfolded(Box<str>),
}

impl Header {
    /// The long name (`v` and `VIA` give `Via`); unknown names as written.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value, folding replaced by a space and outer white space trimmed.
    pub fn value(&self) -> &str {
        match &self.value {
            Value::In(start, end) => self.raw.get(*start..*end).unwrap_or(""),
            Value::Unfolded(v) => v,
        }
    }

    /// The whole field as received (name, colon, value, continuation lines).
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// True when this header is `name` (a long name, compared case-insensitively).
    pub(crate) fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

/// The first line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// `METHOD Request-URI SIP/2.0`.
    Request {
        /// The method.
        method: Method,
        /// The Request-URI.
        uri: Uri,
    },
    /// `SIP/2.0 code reason`.
    Response {
        /// Status code, 100..=699.
        code: u16,
        /// Reason phrase as written.
        reason: String,
    },
}

/// What the B2BUA reads from a message, parsed once at the door.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// Call-ID.
    pub call_id: String,
    /// From.
    pub from: NameAddr,
    /// To.
    pub to: NameAddr,
    /// CSeq.
    pub cseq: CSeq,
    /// Every Via value, top first.
    pub vias: Vec<Via>,
    /// Max-Forwards, at most `MAX_HOPS`; `None` when absent.
    pub max_forwards: Option<u32>,
    /// Contact values (none when absent or `*`).
    pub contacts: Vec<NameAddr>,
    /// Record-Route values as written, top first.
    pub(crate) record_route: Vec<String>,
    /// Route values as written, top first.
    pub route: Vec<String>,
    /// Option tags in Supported.
    pub(crate) supported: Vec<String>,
    /// Option tags in Require.
    pub(crate) require: Vec<String>,
    /// Methods in Allow.
    pub(crate) allow: Vec<String>,
    /// Session-Expires as written (RFC 4028; read by the session timer).
    pub(crate) session_expires: Option<String>,
    /// Content-Type as written.
    pub content_type: Option<String>,
}

impl View {
    /// The `tag` of From.
    pub fn from_tag(&self) -> Option<&str> {
        self.from.tag()
    }

    /// The `tag` of To.
    pub fn to_tag(&self) -> Option<&str> {
        self.to.tag()
    }

    /// The `branch` of the top Via.
    pub(crate) fn branch(&self) -> Option<&str> {
        self.vias.first().and_then(Via::branch)
    }

    /// True when Supported lists `tag`.
    pub fn supports(&self, tag: &str) -> bool {
        self.supported.iter().any(|t| t.eq_ignore_ascii_case(tag))
    }

    /// True when Allow lists `method`.
    pub(crate) fn allows(&self, method: &str) -> bool {
        self.allow.iter().any(|m| m.eq_ignore_ascii_case(method))
    }
}

/// A parsed SIP message. `Debug` prints it as received with its SDES keys redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    start_raw: Box<str>,
    start: Start,
    headers: Vec<Header>,
    body: Bytes,
    view: View,
}

impl Message {
    /// Parses one complete message (as cut by the stream framer, or one datagram), with the
    /// RFC 3261 checks: mandatory headers present once, CSeq matching the request line and
    /// below 2**31, Content-Length agreeing with the body (a longer body is cut to it, §18.3; a
    /// datagram may omit it). Any method token is accepted here; [`parse`] is the door that
    /// also refuses methods we do not know.
    pub fn parse(bytes: &[u8]) -> Result<Self, ParseError> {
        let mut bytes = bytes;
        while let Some(rest) = bytes.strip_prefix(b"\r\n") {
            bytes = rest;
        }
        let head_len = head::head_len(bytes).ok_or(ParseError::Syntax(
            "header section not ended by an empty line",
        ))?;
        let (head_bytes, body) = bytes.split_at(head_len);
        // A control character may only appear escaped in a quoted string (a quoted-pair, RFC
        // 3261 §25.1), and a CR only before LF (a bare LF is tolerated as a line ending).
        let bad_ctl = head_bytes.iter().enumerate().any(|(i, &b)| {
            let escaped = i > 0 && head_bytes.get(i - 1) == Some(&b'\\');
            (is_ctl(b) && b != b'\r' && b != b'\n' && !escaped)
                || (b == b'\r' && head_bytes.get(i.saturating_add(1)) != Some(&b'\n'))
        });
        if bad_ctl {
            return Err(ParseError::Syntax("control character in header section"));
        }
        let head_text = std::str::from_utf8(head_bytes)
            .map_err(|_| ParseError::Syntax("header section is not UTF-8"))?;
        let mut lines = head::lines(head_bytes);
        let first = lines.next();
        let start_raw = first.map_or("", |l| text(head_text, l.text));
        let start = parse_start(start_raw)?;

        let mut headers: Vec<Header> = Vec::with_capacity(16);
        // (byte offset of the field's first line, its length so far) while a field is open.
        let mut open: Option<(usize, usize)> = None;
        let finish = |open: Option<(usize, usize)>, headers: &mut Vec<Header>| {
            if let Some((at, len)) = open {
                let raw = head_text.get(at..at + len).unwrap_or("");
                headers.push(make_header(raw)?);
            }
            Ok::<(), ParseError>(())
        };
        let mut at = first.map_or(0, |l| l.raw_len);
        for line in lines {
            let line_at = at;
            at += line.raw_len;
            if line.text.is_empty() {
                break;
            }
            if line.text.first().is_some_and(|&b| head::is_wsp(b)) {
                match &mut open {
                    Some((start, len)) => *len = line_at + line.text.len() - *start,
                    None => return Err(ParseError::Syntax("continuation line before any header")),
                }
                continue;
            }
            finish(open.take(), &mut headers)?;
            open = Some((line_at, line.text.len()));
        }
        finish(open, &mut headers)?;

        let view = build_view(&start, &headers)?;
        let body = body_within_length(&headers, body)?;
        Ok(Message {
            start_raw: start_raw.into(),
            start,
            headers,
            body: Bytes::copy_from_slice(body),
            view,
        })
    }

    /// The start line.
    pub fn start(&self) -> &Start {
        &self.start
    }

    /// The method of a request.
    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            Start::Request { method, .. } => Some(method),
            Start::Response { .. } => None,
        }
    }

    /// The Request-URI of a request.
    pub fn request_uri(&self) -> Option<&Uri> {
        match &self.start {
            Start::Request { uri, .. } => Some(uri),
            Start::Response { .. } => None,
        }
    }

    /// The status code of a response.
    pub fn code(&self) -> Option<u16> {
        match &self.start {
            Start::Response { code, .. } => Some(*code),
            Start::Request { .. } => None,
        }
    }

    /// The reason phrase of a response.
    pub(crate) fn reason(&self) -> Option<&str> {
        match &self.start {
            Start::Response { reason, .. } => Some(reason),
            Start::Request { .. } => None,
        }
    }

    /// True for a request.
    pub(crate) fn is_request(&self) -> bool {
        matches!(self.start, Start::Request { .. })
    }

    /// Every header, in order.
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// The headers named `name` (long name, case-insensitive), in order.
    pub(crate) fn headers_named<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Header> + 'a {
        self.headers.iter().filter(move |h| h.is(name))
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The typed view.
    pub fn view(&self) -> &View {
        &self.view
    }

    /// The message as received: start line and headers byte for byte, CRLF line ends, the
    /// body (cut to Content-Length).
    pub fn encode(&self) -> Vec<u8> {
        let size = self.start_raw.len()
            + self.headers.iter().map(|h| h.raw.len() + 2).sum::<usize>()
            + self.body.len()
            + 4;
        let mut out = Vec::with_capacity(size);
        out.extend_from_slice(self.start_raw.as_bytes());
        out.extend_from_slice(b"\r\n");
        for h in &self.headers {
            out.extend_from_slice(h.raw.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", super::trace::Redacted(&self.encode()))
    }
}

/// The door: [`Message::parse`], and a request whose method this stack does not know (or a
/// wrongly-cased known one) is refused with [`ParseError::UnknownMethod`] (answer `501`), one
/// whose Request-URI is neither sip, sips nor tel with [`ParseError::UriScheme`] (`416`).
pub fn parse(bytes: &[u8]) -> Result<Message, ParseError> {
    // The method is checked first: an unknown method with a mismatched CSeq is a 501 (RFC 4475
    // §3.1.2.18 prefers it to a 400).
    let mut b = bytes;
    while let Some(rest) = b.strip_prefix(b"\r\n") {
        b = rest;
    }
    if let Some(method) = head::request_method(head::start_line(b)) {
        let method = Method::from(std::str::from_utf8(method).unwrap_or(""));
        if !method.is_known() {
            return Err(ParseError::UnknownMethod(method.as_str().to_string()));
        }
    }
    let message = Message::parse(bytes)?;
    if let Some(Uri::Other(_)) = message.request_uri() {
        return Err(ParseError::UriScheme);
    }
    Ok(message)
}

/// The `&str` of `part`, a subslice of `whole`'s bytes.
fn text<'a>(whole: &'a str, part: &[u8]) -> &'a str {
    let start = (part.as_ptr() as usize).saturating_sub(whole.as_ptr() as usize);
    whole.get(start..start + part.len()).unwrap_or("")
}

fn is_ctl(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

fn parse_start(line: &str) -> Result<Start, ParseError> {
    if head::is_status_line(line.as_bytes()) {
        let mut parts = line.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        check_version(version)?;
        let code = parts.next().unwrap_or("");
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::StartLine("status code is not three digits"));
        }
        let code: u16 = code.parse().unwrap_or(0);
        if !(100..=699).contains(&code) {
            return Err(ParseError::StartLine("status code outside 100..699"));
        }
        return Ok(Start::Response {
            code,
            reason: parts.next().unwrap_or("").to_string(),
        });
    }
    // Request-Line = Method SP Request-URI SP SIP-Version: exactly one SP each (RFC 4475
    // §3.1.2.9, §3.1.2.10).
    let (method, rest) = line
        .split_once(' ')
        .ok_or(ParseError::StartLine("not a request line or status line"))?;
    let (uri, version) = rest
        .rsplit_once(' ')
        .ok_or(ParseError::StartLine("no SIP version"))?;
    if !head::is_token(method.as_bytes()) {
        return Err(ParseError::StartLine("method is not a token"));
    }
    if version.is_empty() {
        return Err(ParseError::StartLine("white space after the SIP version"));
    }
    if uri.is_empty() || uri.starts_with(' ') {
        return Err(ParseError::StartLine(
            "more than one space between elements",
        ));
    }
    check_version(version)?;
    if uri.contains(char::is_whitespace) {
        return Err(ParseError::RequestUri("white space inside"));
    }
    let uri = match Uri::parse(uri) {
        Ok(Uri::Sip(s)) if s.headers.is_some() => {
            return Err(ParseError::RequestUri(
                "headers are not allowed in a Request-URI",
            ))
        }
        Ok(u) => u,
        Err(UriError("bad scheme")) if uri.starts_with('<') => {
            return Err(ParseError::RequestUri("enclosed in < >"))
        }
        Err(UriError(e)) => return Err(ParseError::RequestUri(e)),
    };
    Ok(Start::Request {
        method: Method::from(method),
        uri,
    })
}

fn check_version(version: &str) -> Result<(), ParseError> {
    if version.eq_ignore_ascii_case("SIP/2.0") {
        Ok(())
    } else if version.len() > 4
        && version
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
    {
        Err(ParseError::Version(version.chars().take(16).collect()))
    } else {
        Err(ParseError::StartLine("no SIP version"))
    }
}

/// Headers the B2BUA names, with their usual spelling: a received name is mapped to it
/// case-insensitively, so `CALL-ID`, `call-id` and `i` all read as `Call-ID`.
const KNOWN_NAMES: &[&str] = &[
    "Via",
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Max-Forwards",
    "Contact",
    "Content-Length",
    "Content-Type",
    "Record-Route",
    "Route",
    "Supported",
    "Require",
    "Proxy-Require",
    "Unsupported",
    "Allow",
    "Session-Expires",
    "Min-SE",
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "Privacy",
    "RSeq",
    "RAck",
    "Refer-To",
    "Referred-By",
    "Event",
    "Subscription-State",
    "Reason",
    "Warning",
    "Retry-After",
    "Server",
    "User-Agent",
    "Subject",
    "Expires",
];

fn make_header(raw: &str) -> Result<Header, ParseError> {
    let field = head::split_field(raw.as_bytes()).ok_or(ParseError::Syntax(
        "a header line is not `name: value` with a token name",
    ))?;
    let written = text(raw, field.name);
    let long = compact::long_form(field.name).unwrap_or(written);
    let name = KNOWN_NAMES
        .iter()
        .find(|k| k.eq_ignore_ascii_case(long))
        .map_or_else(|| Cow::Owned(written.to_string()), |k| Cow::Borrowed(*k));
    let after = text(raw, field.after_colon);
    let value = if after.contains('\n') {
        // Folded: each line ending and the white space around it become one space (§7.3.1).
        let mut v = String::with_capacity(after.len());
        for part in after.split('\n') {
            let part = part.trim_end_matches('\r').trim_matches([' ', '\t']);
            if !part.is_empty() {
                if !v.is_empty() {
                    v.push(' ');
                }
                v.push_str(part);
            }
        }
        Value::Unfolded(v.into())
    } else {
        let trimmed = after.trim_matches([' ', '\t']);
        let start = (trimmed.as_ptr() as usize).saturating_sub(raw.as_ptr() as usize);
        Value::In(start, start + trimmed.len())
    };
    Ok(Header {
        raw: raw.into(),
        name,
        value,
    })
}

fn invalid(name: &'static str, reason: impl Into<Cow<'static, str>>) -> ParseError {
    ParseError::InvalidHeader {
        name,
        reason: reason.into(),
    }
}

/// The one value of a header that must appear exactly once.
fn single<'a>(headers: &'a [Header], name: &'static str) -> Result<&'a str, ParseError> {
    let mut found = headers.iter().filter(|h| h.is(name));
    let first = found.next().ok_or(ParseError::MissingHeader(name))?;
    if found.next().is_some() {
        return Err(ParseError::DuplicateHeader(name));
    }
    if first.value().is_empty() {
        return Err(invalid(name, "empty value"));
    }
    Ok(first.value())
}

/// The items of every header named `name`, split at list commas.
fn list<'a>(headers: &'a [Header], name: &'static str) -> Result<Vec<&'a str>, ParseError> {
    let mut out = Vec::new();
    for h in headers.iter().filter(|h| h.is(name)) {
        if h.value().is_empty() {
            continue;
        }
        out.extend(split_list(h.value()).map_err(|e| invalid(name, e))?);
    }
    Ok(out)
}

fn tokens(headers: &[Header], name: &'static str) -> Result<Vec<String>, ParseError> {
    list(headers, name)?
        .into_iter()
        .map(|t| {
            if head::is_token(t.as_bytes()) {
                Ok(t.to_string())
            } else {
                Err(invalid(name, "an item is not a token"))
            }
        })
        .collect()
}

fn name_addrs(headers: &[Header], name: &'static str) -> Result<Vec<NameAddr>, ParseError> {
    list(headers, name)?
        .into_iter()
        .map(|v| NameAddr::parse(v).map_err(|e| invalid(name, e)))
        .collect()
}

fn build_view(start: &Start, headers: &[Header]) -> Result<View, ParseError> {
    let vias = list(headers, "Via")?
        .into_iter()
        .map(|v| Via::parse(v).map_err(|e| invalid("Via", e)))
        .collect::<Result<Vec<_>, _>>()?;
    if vias.is_empty() {
        return Err(ParseError::MissingHeader("Via"));
    }
    let from = NameAddr::parse(single(headers, "From")?).map_err(|e| invalid("From", e))?;
    let to = NameAddr::parse(single(headers, "To")?).map_err(|e| invalid("To", e))?;
    let call_id = single(headers, "Call-ID")?;
    if call_id.contains(char::is_whitespace) {
        return Err(invalid("Call-ID", "white space inside"));
    }
    let cseq = CSeq::parse(single(headers, "CSeq")?).map_err(|e| invalid("CSeq", e))?;
    let mut max_forwards = None;
    if let Start::Request { method, .. } = start {
        if &cseq.method != method {
            return Err(invalid("CSeq", "method differs from the request line"));
        }
        // Mandatory since RFC 3261, but an RFC 2543 element leaves it out (RFC 4475 §3.4.1):
        // absent reads as `None`, and the engine then uses 70.
        max_forwards = match single(headers, "Max-Forwards") {
            Err(ParseError::MissingHeader(_)) => None,
            Err(e) => return Err(e),
            Ok(mf) if !mf.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(invalid("Max-Forwards", "not a number"))
            }
            // A huge value neither overflows nor resets to 70 (which would let a loop run on).
            Ok(mf) => {
                let digits = mf.trim_start_matches('0');
                Some(if digits.len() > 3 {
                    MAX_HOPS
                } else {
                    digits.parse::<u32>().unwrap_or(0).min(MAX_HOPS)
                })
            }
        };
    }
    let star = headers.iter().any(|h| h.is("Contact") && h.value() == "*");
    let contacts = if star {
        Vec::new()
    } else {
        name_addrs(headers, "Contact")?
    };
    let routes = |name| -> Result<Vec<String>, ParseError> {
        let items = list(headers, name)?;
        for item in &items {
            NameAddr::parse(item).map_err(|e| invalid(name, e))?;
        }
        Ok(items.into_iter().map(str::to_string).collect())
    };
    let one = |name| {
        headers
            .iter()
            .find(|h| h.is(name))
            .map(|h| h.value().to_string())
    };
    Ok(View {
        call_id: call_id.to_string(),
        from,
        to,
        cseq,
        vias,
        max_forwards,
        contacts,
        record_route: routes("Record-Route")?,
        route: routes("Route")?,
        supported: tokens(headers, "Supported")?,
        require: tokens(headers, "Require")?,
        allow: tokens(headers, "Allow")?,
        session_expires: one("Session-Expires"),
        content_type: one("Content-Type"),
    })
}

/// The body cut to Content-Length; all Content-Length headers must agree, and a body shorter
/// than announced is an error. Without Content-Length (a datagram) the body is kept.
fn body_within_length<'a>(headers: &[Header], body: &'a [u8]) -> Result<&'a [u8], ParseError> {
    let mut declared: Option<usize> = None;
    for h in headers.iter().filter(|h| h.is("Content-Length")) {
        let n =
            parse_decimal(h.value().as_bytes()).ok_or(invalid("Content-Length", "not a number"))?;
        if declared.is_some_and(|d| d != n) {
            return Err(ParseError::DuplicateHeader("Content-Length"));
        }
        declared = Some(n);
    }
    match declared {
        None => Ok(body),
        Some(declared) => body.get(..declared).ok_or(ParseError::BodyTooShort {
            declared,
            actual: body.len(),
        }),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::sip::framing::{Frame, StreamFramer};
    use crate::sip::head::XorShift;
    use crate::sip::uri::Host;

    const SDP: &str = "v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

    pub(crate) fn compact_invite() -> String {
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

    pub(crate) fn long_options() -> &'static str {
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
        assert_eq!(msg.method(), Some(&Method::Invite));
        assert_eq!(
            msg.request_uri().unwrap().to_string(),
            "sip:bob@example.com"
        );
        let v = msg.view();
        assert_eq!(v.call_id, "a84b4c76e66710@pc33.example.com");
        assert_eq!(v.vias.len(), 3, "two Via lines, the second with two values");
        assert_eq!(v.branch(), Some("z9hG4bK776asdhds"));
        assert_eq!(v.vias[2].host, Host::Name("p2.example.com".into()));
        assert_eq!(msg.body().as_ref(), SDP.as_bytes());
        assert_eq!(
            v.cseq,
            CSeq {
                seq: 314159,
                method: Method::Invite
            }
        );
        assert_eq!(v.max_forwards, Some(70));
        assert_eq!(v.from_tag(), Some("1928301774"));
        assert_eq!(v.content_type.as_deref(), Some("application/sdp"));
        assert_eq!(v.contacts.len(), 1);
        let subject = msg.headers_named("Subject").next().unwrap();
        assert_eq!(subject.value(), "folded subject");
        assert_eq!(subject.raw(), "Subject: folded\r\n  subject");
        assert_eq!(msg.headers()[1].name(), "Via");
        assert_eq!(msg.headers()[1].raw(), "V : SIP/2.0/TLS proxy.example.com;branch=z9hG4bK1, SIP/2.0/TCP p2.example.com;branch=z9hG4bK2");
        assert_eq!(msg.encode(), wire.as_bytes());
    }

    #[test]
    fn tel_and_ipv6_everywhere() {
        let m = "INVITE tel:+1-555-123-4567;npdi;rn=+15550000000 SIP/2.0\r\n\
                 Via: SIP/2.0/TCP [::1]:41127;branch=z9hG4bK1;received=::1;rport=5060\r\n\
                 Max-Forwards: 70\r\n\
                 From: <tel:+15559876543>;tag=a\r\n\
                 To: <tel:+1-555-123-4567>\r\n\
                 Call-ID: c@[::1]\r\n\
                 CSeq: 1 INVITE\r\n\
                 Contact: <sip:+15559876543@[2001:db8::5]:5060;transport=tcp>\r\n\
                 Record-Route: <sip:[2001:db8::9];lr>\r\n\
                 P-Asserted-Identity: <tel:+15559876543>\r\n\
                 Content-Length: 0\r\n\r\n";
        let msg = parse(m.as_bytes()).unwrap();
        assert_eq!(
            msg.request_uri().unwrap().number().as_deref(),
            Some("+15551234567")
        );
        let v = msg.view();
        assert_eq!(v.vias[0].host, Host::V6(std::net::Ipv6Addr::LOCALHOST));
        assert_eq!(v.vias[0].received(), Some("::1"));
        assert_eq!(
            v.contacts[0].uri.host(),
            Some(&Host::V6("2001:db8::5".parse().unwrap()))
        );
        assert_eq!(v.record_route, vec!["<sip:[2001:db8::9];lr>"]);
        assert_eq!(msg.encode(), m.as_bytes());
    }

    #[test]
    fn debug_shows_no_key() {
        let key = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNk";
        let body = format!(
            "m=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}\r\n"
        );
        let m = long_options().replace(
            "Content-Length: 0\r\n\r\n",
            &format!("Content-Length: {}\r\n\r\n{body}", body.len()),
        );
        let shown = format!("{:?}", parse(m.as_bytes()).unwrap());
        assert!(
            !shown.contains(key) && shown.contains("inline:<redacted>"),
            "{shown}"
        );
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
            assert_eq!(parsed.view().call_id, "c1", "{call_id}");
        }
    }

    #[test]
    fn response_parses() {
        let msg = "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/TLS h;branch=z9hG4bK1\r\nf: <sip:a@b>;tag=1\r\nt: <sip:c@d>;tag=2\r\ni: x\r\nCSeq: 1 INVITE\r\nl: 0\r\n\r\n";
        let parsed = parse(msg.as_bytes()).unwrap();
        assert_eq!(parsed.code(), Some(180));
        assert_eq!(parsed.view().to_tag(), Some("2"));
        for bad in ["SIP/2.0 4294967301 Big", "SIP/2.0 99 Low", "SIP/2.0 7000 X"] {
            let m = msg.replace("SIP/2.0 180 Ringing", bad);
            assert!(
                matches!(parse(m.as_bytes()), Err(ParseError::StartLine(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn body_versus_content_length() {
        let base = "MESSAGE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nMax-Forwards: 70\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x>\r\nCall-ID: c\r\nCSeq: 2 MESSAGE\r\n";
        let parsed =
            parse(format!("{base}Content-Length: 5\r\n\r\nhello world").as_bytes()).unwrap();
        assert_eq!(parsed.body().as_ref(), b"hello");
        assert_eq!(
            parse(format!("{base}Content-Length: 50\r\n\r\nhello").as_bytes()),
            Err(ParseError::BodyTooShort {
                declared: 50,
                actual: 5
            })
        );
        let parsed = parse(format!("{base}\r\nhello").as_bytes()).unwrap();
        assert_eq!(parsed.body().as_ref(), b"hello");
        for bad in ["x", "-1"] {
            let err = parse(format!("{base}Content-Length: {bad}\r\n\r\n").as_bytes());
            assert_eq!(err.unwrap_err().part(), "Content-Length");
        }
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
            if *name == "Max-Forwards" {
                continue; // RFC 2543 requests lack it: see rfc2543_requests_have_no_max_forwards
            }
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
            assert_eq!(
                err.response_status(),
                (400, format!("Missing {name}").into())
            );
        }
        let resp = "SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x>;tag=2\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n";
        assert!(
            parse(resp.as_bytes()).is_ok(),
            "responses need no Max-Forwards"
        );
    }

    #[test]
    fn a_bad_header_is_named_in_the_answer() {
        let head = "Via: SIP/2.0/TCP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x>\r\nMax-Forwards: 70\r\n";
        let cases: &[(&str, &str)] = &[
            ("OPTIONS sip:x SIP/2.0\r\nCall-ID: c\r\nCall-ID: d\r\nCSeq: 1 OPTIONS\r\n", "Bad Call-ID"),
            ("OPTIONS sip:x SIP/2.0\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n", "Bad CSeq"),
            ("OPTIONS sip:x SIP/2.0\r\nCall-ID: c\r\nCSeq: 2147483648 OPTIONS\r\n", "Bad CSeq"),
            ("OPTIONS sip:x SIP/2.0\r\nCall-ID: c\r\nCSeq: one OPTIONS\r\n", "Bad CSeq"),
            ("OPTIONS sip:x SIP/2.0\r\nCall-ID:   \r\nCSeq: 1 OPTIONS\r\n", "Bad Call-ID"),
            ("OPTIONS sip:x SIP/2.0\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nVia: SIP/2.0/TCP [::1\r\n", "Bad Via"),
            ("OPTIONS sip:x SIP/2.0\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContact: <sip:a@b\r\n", "Bad Contact"),
            ("OPTIONS sip:x SIP/2.0\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nRoute: junk\r\n", "Bad Route"),
            ("OPTIONS sip:[::1 SIP/2.0\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n", "Malformed Request-URI"),
            ("OPTIONS <sip:x> SIP/2.0\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n", "Malformed Request-URI"),
            ("OPTIONS sip:x?Route=y SIP/2.0\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n", "Malformed Request-URI"),
            ("OPTIONS  sip:x SIP/2.0\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n", "Bad Request-Line"),
            ("OPTIONS sip:x SIP/2.0 \r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n", "Bad Request-Line"),
            ("OPTIONS sip:x SIP/7.0\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n", "Version Not Supported"),
            ("OPTIONS urn:x:y SIP/2.0\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n", "Unsupported URI Scheme"),
        ];
        for (start, reason) in cases {
            let (first, rest) = start.split_once("\r\n").unwrap();
            let msg = format!("{first}\r\n{head}{rest}\r\n");
            let err = parse(msg.as_bytes()).unwrap_err();
            assert_eq!(err.response_status().1, *reason, "{msg}: {err}");
        }
    }

    #[test]
    fn unknown_and_miscased_methods() {
        let tail = " sip:x SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n\r\n";
        for method in ["FOO", "invite", "Options"] {
            let err = parse(format!("{method}{tail}").as_bytes()).unwrap_err();
            assert_eq!(err, ParseError::UnknownMethod(method.into()));
            assert_eq!(err.response_status(), (501, "Not Implemented".into()));
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
            assert!(
                matches!(
                    parse(bad),
                    Err(ParseError::Syntax(_) | ParseError::StartLine(_))
                ),
                "{bad:?}: {:?}",
                parse(bad)
            );
        }
    }

    #[test]
    fn rfc2543_requests_have_no_max_forwards() {
        let m = long_options().replace("Max-Forwards: 70\r\n", "");
        assert_eq!(parse(m.as_bytes()).unwrap().view().max_forwards, None);
        let m = long_options().replace("Max-Forwards: 70", "Max-Forwards: 7x");
        assert_eq!(parse(m.as_bytes()).unwrap_err().part(), "Max-Forwards");
    }

    #[test]
    fn huge_max_forwards_is_clamped_not_refused() {
        let m = long_options().replace("Max-Forwards: 70", "Max-Forwards: 99999999999999999999");
        assert_eq!(
            parse(m.as_bytes()).unwrap().view().max_forwards,
            Some(MAX_HOPS)
        );
    }

    /// Mutations of valid messages: nothing panics, and whatever parses writes back byte for
    /// byte (the body cut to Content-Length) and parses again to the same message.
    #[test]
    fn random_input_never_panics_and_round_trips() {
        let mut rng = XorShift(0xD1B5_4A32_D192_ED03);
        let seeds = [long_options().to_string(), compact_invite()];
        let mut parsed = 0;
        for round in 0..4000 {
            let data: Vec<u8> = if round % 3 == 0 {
                let len = (rng.next() % 600) as usize;
                (0..len).map(|_| rng.next() as u8).collect()
            } else {
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
                        2 => m.insert(pos, b"\r\n :;<>\"\\,[]"[(rng.next() % 12) as usize]),
                        _ => m.truncate(pos),
                    }
                }
                m
            };
            if let Ok(msg) = Message::parse(&data) {
                parsed += 1;
                let again = Message::parse(&msg.encode()).expect("what we wrote parses");
                assert_eq!(again, msg, "{:?}", String::from_utf8_lossy(&data));
            }
        }
        assert!(
            parsed > 100,
            "only {parsed} mutations parsed: the test proves little"
        );
    }
}
