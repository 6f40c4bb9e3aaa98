//! Reading what the call layer needs from a received SIP message (Call-ID, tags, CSeq, branch,
//! Contact, Max-Forwards) by plain text over rsip's untyped header values, so one odd header
//! (an IPv6 Via, a `tel:` URI) never makes a whole call unreadable.

use rsip::prelude::{HasHeaders, UntypedHeader};
use rsip::{Header, SipMessage};

/// The fields of a received message the call layer routes by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// `Call-ID`.
    pub call_id: String,
    /// The `tag` of From.
    pub from_tag: Option<String>,
    /// The `tag` of To.
    pub to_tag: Option<String>,
    /// CSeq number.
    pub cseq: u32,
    /// CSeq method, upper case.
    pub cseq_method: String,
    /// The `branch` of the top Via.
    pub branch: Option<String>,
}

/// Every value of a header, in order.
pub fn values<'a>(msg: &'a SipMessage, name: &str) -> Vec<&'a str> {
    msg.headers()
        .iter()
        .filter_map(|h| header_value(h, name))
        .collect()
}

/// The first value of a header.
pub fn value<'a>(msg: &'a SipMessage, name: &str) -> Option<&'a str> {
    msg.headers().iter().find_map(|h| header_value(h, name))
}

fn header_value<'a>(h: &'a Header, name: &str) -> Option<&'a str> {
    let (n, v): (&str, &str) = match h {
        Header::Via(v) => ("Via", v.value()),
        Header::From(v) => ("From", v.value()),
        Header::To(v) => ("To", v.value()),
        Header::CallId(v) => ("Call-ID", v.value()),
        Header::CSeq(v) => ("CSeq", v.value()),
        Header::Contact(v) => ("Contact", v.value()),
        Header::MaxForwards(v) => ("Max-Forwards", v.value()),
        Header::RecordRoute(v) => ("Record-Route", v.value()),
        Header::ContentType(v) => ("Content-Type", v.value()),
        Header::Supported(v) => ("Supported", v.value()),
        Header::Require(v) => ("Require", v.value()),
        Header::Route(v) => ("Route", v.value()),
        Header::Allow(v) => ("Allow", v.value()),
        Header::Other(n, v) => (n.as_str(), v.as_str()),
        _ => return None,
    };
    n.eq_ignore_ascii_case(name).then_some(v.trim())
}

/// A `;name=value` parameter of a header value, outside any `<...>` URI and quoted string.
pub fn param(value: &str, name: &str) -> Option<String> {
    let mut depth_uri = false;
    let mut quoted = false;
    let mut start = None;
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => depth_uri = true,
            '>' if !quoted => depth_uri = false,
            ';' if !quoted && !depth_uri => {
                start = Some(i);
                break;
            }
            _ => {}
        }
    }
    let params = &value[start? + 1..];
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().split(',').next().unwrap_or("").to_string())
    })
}

/// The URI inside a name-addr (`"Bob" <sip:bob@x>;tag=1` → `sip:bob@x`) or an addr-spec.
pub fn uri_of(value: &str) -> &str {
    match (value.find('<'), value.find('>')) {
        (Some(a), Some(b)) if a < b => &value[a + 1..b],
        _ => value.split(';').next().unwrap_or(value).trim(),
    }
}

/// The user part of a SIP URI (`sip:+15551234@host` → `+15551234`).
pub fn user_of(uri: &str) -> Option<&str> {
    let rest = uri.split_once(':')?.1;
    let (user, _) = rest.split_once('@')?;
    Some(user.split(';').next().unwrap_or(user))
}

/// True when a user part may be copied into the far leg's Request-URI, From and To: the
/// characters of RFC 3261's `user` (unreserved, escaped, user-unreserved) except `,`, so
/// nothing in it can end a URI, a header value or the start line (`<`, `>`, `"`, `,`, white
/// space, CR, LF, `@`).
pub fn is_safe_user(user: &str) -> bool {
    !user.is_empty()
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$;?/%".contains(&b))
}

/// The host of a SIP URI (`sip:u@host:5061;transport=tls` → `host`).
pub fn host_of(uri: &str) -> Option<&str> {
    let rest = uri.split_once(':')?.1;
    let hostport = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let hostport = hostport.split([';', '?']).next()?;
    if let Some(v6) = hostport.strip_prefix('[') {
        return v6.split(']').next();
    }
    Some(hostport.split(':').next().unwrap_or(hostport))
}

/// Routing fields of a message; `None` when one is missing (the parser already required them,
/// so this only guards against surprises).
pub fn summary(msg: &SipMessage) -> Option<Summary> {
    let cseq = value(msg, "CSeq")?;
    let (num, method) = cseq.split_once(char::is_whitespace)?;
    Some(Summary {
        call_id: value(msg, "Call-ID")?.to_string(),
        from_tag: param(value(msg, "From")?, "tag"),
        to_tag: param(value(msg, "To")?, "tag"),
        cseq: num.trim().parse().ok()?,
        cseq_method: method.trim().to_ascii_uppercase(),
        branch: value(msg, "Via").and_then(|v| param(v, "branch")),
    })
}

/// The `Session-Expires` of a message (RFC 4028), when present and readable.
pub fn session_expires(msg: &SipMessage) -> Option<crate::call::session_timer::SessionExpires> {
    crate::call::session_timer::SessionExpires::parse(value(msg, "Session-Expires")?)
}

/// True when a comma-separated header (`name`: `Supported`, `Allow`, ...) lists `token`.
fn lists(msg: &SipMessage, name: &str, token: &str) -> bool {
    values(msg, name)
        .iter()
        .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// True when `Supported` lists the option tag.
pub fn supports(msg: &SipMessage, tag: &str) -> bool {
    lists(msg, "Supported", tag)
}

/// True when `Allow` lists the method.
pub fn allows(msg: &SipMessage, method: &str) -> bool {
    lists(msg, "Allow", method)
}

/// The most hops a request may still travel (RFC 3261 §20.22: 0 to 255).
pub const MAX_HOPS: u32 = 255;

/// Max-Forwards of a request: 70 when absent (RFC 3261 §8.1.1.6 recommends senders use it), at
/// most [`MAX_HOPS`] however large the number (so a huge value neither overflows nor resets to
/// 70 and lets a loop run on), `None` when it is not a number.
pub fn max_forwards(msg: &SipMessage) -> Option<u32> {
    let Some(v) = value(msg, "Max-Forwards") else {
        return Some(70);
    };
    let v = v.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = v.trim_start_matches('0');
    Some(if digits.len() > 3 {
        MAX_HOPS
    } else {
        digits.parse::<u32>().unwrap_or(0).min(MAX_HOPS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_outside_uri_and_quotes() {
        let v = "\"A;tag=no\" <sip:a@b;tag=no>;tag=yes;x=1";
        assert_eq!(param(v, "tag").as_deref(), Some("yes"));
        assert_eq!(param(v, "x").as_deref(), Some("1"));
        assert_eq!(param("<sip:a@b>", "tag"), None);
        assert_eq!(
            param("SIP/2.0/TLS 10.0.0.1:5061;branch=z9hG4bK1;rport", "branch").as_deref(),
            Some("z9hG4bK1")
        );
    }

    #[test]
    fn uri_parts() {
        let v = "\"Bob\" <sip:+15551234@gw1.example.test:5067;transport=tls>;tag=9";
        let uri = uri_of(v);
        assert_eq!(uri, "sip:+15551234@gw1.example.test:5067;transport=tls");
        assert_eq!(user_of(uri), Some("+15551234"));
        assert_eq!(host_of(uri), Some("gw1.example.test"));
        assert_eq!(host_of("sip:[::1]:5060"), Some("::1"));
        assert_eq!(host_of("sip:host"), Some("host"));
        assert_eq!(uri_of("sip:a@b;tag=1"), "sip:a@b");
    }
}
