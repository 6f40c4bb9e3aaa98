//! SIP and tel URIs: `sip:`/`sips:` (RFC 3261 §19.1, IPv6 references per RFC 5118) and `tel:`
//! (RFC 3966: global numbers with visual separators, local numbers with `phone-context`,
//! parameters such as `;npdi;rn=`). Parsing checks the grammar and keeps every part as
//! written, so a URI we pass on reads as it came; [`Uri::number`] gives the digits a route
//! matches on, whichever scheme carried them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why a URI was refused (short, for a Warning header and the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UriError(pub &'static str);

/// A `;name` or `;name=value` parameter, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Param {
    /// Parameter name (compare case-insensitively).
    pub(crate) name: String,
    /// Value, when there is one.
    pub(crate) value: Option<String>,
}

/// The host of a SIP URI or Via.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A domain name, as written.
    Name(String),
    /// A dotted IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 reference (`[...]` in the text).
    V6(Ipv6Addr),
}

impl Host {
    /// Parses a host: an IPv6 reference in brackets, a dotted IPv4 address or a hostname.
    pub(crate) fn parse(s: &str) -> Result<Self, UriError> {
        if let Some(inner) = s.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or(UriError("IPv6 reference without its closing ]"))?;
            return inner
                .parse()
                .map(Host::V6)
                .map_err(|_| UriError("bad IPv6 address"));
        }
        if s.is_empty() {
            return Err(UriError("empty host"));
        }
        if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return s
                .parse()
                .map(Host::V4)
                .map_err(|_| UriError("bad IPv4 address"));
        }
        if s.contains(':') {
            return Err(UriError("IPv6 address not enclosed in [ ]"));
        }
        let labels_ok = s
            .trim_end_matches('.')
            .split('.')
            .all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'));
        if !labels_ok
            || !s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
        {
            return Err(UriError("bad host name"));
        }
        Ok(Host::Name(s.to_string()))
    }

    /// The address, for IP hosts.
    pub(crate) fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Name(_) => None,
            Host::V4(a) => Some(IpAddr::V4(*a)),
            Host::V6(a) => Some(IpAddr::V6(*a)),
        }
    }
}

impl From<IpAddr> for Host {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => Host::V4(a),
            IpAddr::V6(a) => Host::V6(a),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

/// Parses `host[:port]` (a Via sent-by, a URI's hostport).
pub(crate) fn host_port(s: &str) -> Result<(Host, Option<u16>), UriError> {
    let (host, port) = if s.starts_with('[') {
        let close = s
            .find(']')
            .ok_or(UriError("IPv6 reference without its closing ]"))?;
        let (h, rest) = s.split_at(close + 1);
        match rest {
            "" => (h, None),
            _ => (
                h,
                Some(
                    rest.strip_prefix(':')
                        .ok_or(UriError("text after the IPv6 reference"))?,
                ),
            ),
        }
    } else if s.bytes().filter(|&b| b == b':').count() > 1 {
        return Err(UriError("IPv6 address not enclosed in [ ]"));
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = port.map(parse_port).transpose()?;
    Ok((Host::parse(host)?, port))
}

fn parse_port(p: &str) -> Result<u16, UriError> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UriError("bad port"));
    }
    p.parse().map_err(|_| UriError("port above 65535"))
}

/// A `sip:` or `sips:` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    /// `sips:`.
    pub(crate) secure: bool,
    /// The user part, as written (escapes kept).
    pub(crate) user: Option<String>,
    /// The password, as written (discouraged by RFC 3261, kept if present).
    pub(crate) password: Option<String>,
    /// The host.
    pub(crate) host: Host,
    /// The host as written (an IPv6 reference keeps its own spelling and brackets).
    pub(crate) host_text: String,
    /// The port, when written.
    pub port: Option<u16>,
    /// URI parameters in order.
    pub(crate) params: Vec<Param>,
    /// The `?headers` part without its `?`, as written.
    pub(crate) headers: Option<String>,
}

/// A `tel:` URI (RFC 3966).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelUri {
    /// The number as written, visual separators included (`+1-555-123-4567`).
    pub(crate) number: String,
    /// Parameters in order (`phone-context`, `ext`, `npdi`, `rn`, ...).
    pub(crate) params: Vec<Param>,
}

/// A URI this stack understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uri {
    /// `sip:` or `sips:`.
    Sip(SipUri),
    /// `tel:`.
    Tel(TelUri),
    /// Any other scheme (`urn:`, `mailto:`, ...), as written: allowed in From, To and other
    /// name-addr headers, refused as a Request-URI (`416`).
    Other(String),
}

/// RFC 3261 `unreserved` and `escaped` are allowed everywhere below; these are the extras.
const USER_EXTRA: &[u8] = b"&=+$,;?/";
const PASSWORD_EXTRA: &[u8] = b"&=+$,";
const PARAM_EXTRA: &[u8] = b"[]/:&+$";
const HEADER_EXTRA: &[u8] = b"[]/?:+$=&";

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b)
}

/// True when `s` is made of unreserved characters, `%HH` escapes and `extra`.
fn is_chars(s: &str, extra: &[u8]) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = b.get(i + 1..i + 3);
            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                return false;
            }
            i += 3;
            continue;
        }
        if !(is_unreserved(c) || extra.contains(&c)) {
            return false;
        }
        i += 1;
    }
    true
}

/// Splits `;a=b;c` into parameters, checking their characters.
fn parse_params(s: &str, extra: &[u8]) -> Result<Vec<Param>, UriError> {
    let mut out = Vec::new();
    if s.is_empty() {
        return Ok(out);
    }
    for p in s.split(';') {
        let (name, value) = match p.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (p, None),
        };
        if name.is_empty() || !is_chars(name, extra) || value.is_some_and(|v| !is_chars(v, extra)) {
            return Err(UriError("bad URI parameter"));
        }
        out.push(Param {
            name: name.to_string(),
            value: value.map(str::to_string),
        });
    }
    Ok(out)
}

/// The value of the first parameter named `name` (case-insensitive); `Some("")` for a
/// parameter without a value.
pub(crate) fn find_param<'a>(params: &'a [Param], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(name))
        .map(|p| p.value.as_deref().unwrap_or(""))
}

impl Uri {
    /// Parses a URI with no surrounding white space.
    pub fn parse(s: &str) -> Result<Self, UriError> {
        let (scheme, rest) = s.split_once(':').ok_or(UriError("no scheme"))?;
        if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
            parse_sip(scheme.len() == 4, rest).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case("tel") {
            parse_tel(rest).map(Uri::Tel)
        } else if is_scheme(scheme) && !rest.is_empty() && !rest.contains(char::is_whitespace) {
            Ok(Uri::Other(s.to_string()))
        } else {
            Err(UriError("bad scheme"))
        }
    }

    /// The user part of a SIP URI without user parameters, or the number of a tel URI as
    /// written.
    pub(crate) fn user(&self) -> Option<&str> {
        match self {
            Uri::Sip(u) => u.user.as_deref().map(|u| u.split(';').next().unwrap_or(u)),
            Uri::Tel(t) => Some(&t.number),
            Uri::Other(_) => None,
        }
    }

    /// The number a route matches on: the user part of a SIP URI (visual separators removed
    /// when it says `user=phone`), or the digits of a tel URI (`+1-555-123` → `+1555123`).
    pub(crate) fn number(&self) -> Option<String> {
        let phone = match self {
            Uri::Tel(_) => true,
            Uri::Sip(u) => find_param(&u.params, "user").is_some_and(|v| v == "phone"),
            Uri::Other(_) => return None,
        };
        let user = self.user()?;
        Some(if phone {
            user.chars().filter(|c| !"-.()".contains(*c)).collect()
        } else {
            user.to_string()
        })
    }

    /// The host of a SIP URI.
    pub fn host(&self) -> Option<&Host> {
        match self {
            Uri::Sip(u) => Some(&u.host),
            Uri::Tel(_) | Uri::Other(_) => None,
        }
    }

    /// The SIP URI, if this is one.
    pub fn sip(&self) -> Option<&SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            Uri::Tel(_) | Uri::Other(_) => None,
        }
    }
}

/// True when a user part may be copied into the far leg's Request-URI, From and To: the
/// characters of RFC 3261's `user` (unreserved, escaped, user-unreserved) except `,`, so
/// nothing in it can end a URI, a header value or the start line (`<`, `>`, `"`, `,`, white
/// space, CR, LF, `@`).
pub(crate) fn is_safe_user(user: &str) -> bool {
    !user.is_empty()
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$;?/%".contains(&b))
}

/// RFC 3986 scheme: a letter, then letters, digits, `+`, `-`, `.`.
fn is_scheme(s: &str) -> bool {
    s.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
}

fn parse_sip(secure: bool, rest: &str) -> Result<SipUri, UriError> {
    let (userinfo, hostpart) = match rest.split_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    if hostpart.contains('@') {
        return Err(UriError("more than one @"));
    }
    let (user, password) = match userinfo {
        None => (None, None),
        Some(u) => {
            let (user, password) = match u.split_once(':') {
                Some((user, pw)) => (user, Some(pw)),
                None => (u, None),
            };
            if user.is_empty() || !is_chars(user, USER_EXTRA) {
                return Err(UriError("bad user part"));
            }
            if password.is_some_and(|p| !is_chars(p, PASSWORD_EXTRA)) {
                return Err(UriError("bad password"));
            }
            (Some(user.to_string()), password.map(str::to_string))
        }
    };
    let (before_headers, headers) = match hostpart.split_once('?') {
        Some((b, h)) => (b, Some(h)),
        None => (hostpart, None),
    };
    // An IPv6 reference may hold no ';', so the first one after it starts the parameters.
    let (hostport, params) = match before_headers.split_once(';') {
        Some((hp, p)) => (hp, p),
        None => (before_headers, ""),
    };
    let (host, port) = host_port(hostport)?;
    let host_text = match hostport.rsplit_once(':') {
        Some((h, _)) if port.is_some() => h,
        _ => hostport,
    };
    let params = parse_params(params, PARAM_EXTRA)?;
    if let Some(h) = headers {
        if h.is_empty() || !is_chars(h, HEADER_EXTRA) {
            return Err(UriError("bad URI headers"));
        }
    }
    Ok(SipUri {
        secure,
        user,
        password,
        host,
        host_text: host_text.to_string(),
        port,
        params,
        headers: headers.map(str::to_string),
    })
}

fn parse_tel(rest: &str) -> Result<TelUri, UriError> {
    let (number, params) = match rest.split_once(';') {
        Some((n, p)) => (n, p),
        None => (rest, ""),
    };
    let params = parse_params(params, PARAM_EXTRA)?;
    let visual = |c: u8| b"-.()".contains(&c);
    if let Some(digits) = number.strip_prefix('+') {
        if !digits.bytes().any(|b| b.is_ascii_digit())
            || !digits.bytes().all(|b| b.is_ascii_digit() || visual(b))
        {
            return Err(UriError("bad global number"));
        }
    } else {
        if !number
            .bytes()
            .any(|b| b.is_ascii_hexdigit() || b == b'*' || b == b'#')
            || !number
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b'*' || b == b'#' || visual(b))
        {
            return Err(UriError("bad local number"));
        }
        if find_param(&params, "phone-context").is_none_or(str::is_empty) {
            return Err(UriError("local number without phone-context"));
        }
    }
    Ok(TelUri {
        number: number.to_string(),
        params,
    })
}

fn write_params(f: &mut fmt::Formatter<'_>, params: &[Param]) -> fmt::Result {
    for p in params {
        write!(f, ";{}", p.name)?;
        if let Some(v) = &p.value {
            write!(f, "={v}")?;
        }
    }
    Ok(())
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uri::Sip(u) => {
                f.write_str(if u.secure { "sips:" } else { "sip:" })?;
                if let Some(user) = &u.user {
                    f.write_str(user)?;
                    if let Some(pw) = &u.password {
                        write!(f, ":{pw}")?;
                    }
                    f.write_str("@")?;
                }
                f.write_str(&u.host_text)?;
                if let Some(p) = u.port {
                    write!(f, ":{p}")?;
                }
                write_params(f, &u.params)?;
                if let Some(h) = &u.headers {
                    write!(f, "?{h}")?;
                }
                Ok(())
            }
            Uri::Tel(t) => {
                write!(f, "tel:{}", t.number)?;
                write_params(f, &t.params)
            }
            Uri::Other(text) => f.write_str(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip(s: &str) -> SipUri {
        match Uri::parse(s).unwrap() {
            Uri::Sip(u) => u,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sip_uris_keep_their_parts() {
        let u = sip("sip:+15551234@gw1.example.test:5067;transport=tls;user=phone?Subject=x");
        assert_eq!(u.user.as_deref(), Some("+15551234"));
        assert_eq!(u.host, Host::Name("gw1.example.test".into()));
        assert_eq!(u.port, Some(5067));
        assert_eq!(find_param(&u.params, "TRANSPORT"), Some("tls"));
        assert_eq!(u.headers.as_deref(), Some("Subject=x"));
        let text = "sips:alice:pw@[2001:db8::10]:5061;lr";
        assert_eq!(Uri::parse(text).unwrap().to_string(), text);
        let spelled = "sip:user@[2001:db8::192.0.2.1]:5060";
        assert_eq!(Uri::parse(spelled).unwrap().to_string(), spelled);
        let v6 = sip("sip:[2001:db8::10]");
        assert_eq!(v6.host, Host::V6("2001:db8::10".parse().unwrap()));
        assert_eq!(v6.port, None);
        let esc = sip("sip:sips%3Auser%40example.com@example.net");
        assert_eq!(esc.user.as_deref(), Some("sips%3Auser%40example.com"));
        assert_eq!(
            sip("sip:10.0.0.1:5060").host,
            Host::V4([10, 0, 0, 1].into())
        );
    }

    #[test]
    fn bad_sip_uris_say_what_is_wrong() {
        for (text, why) in [
            ("sip:[2001:db8::10", "IPv6 reference without its closing ]"),
            ("sip:2001:db8::10", "IPv6 address not enclosed in [ ]"),
            ("sip:[2001:db8:::192.0.2.1]", "bad IPv6 address"),
            ("sip:user@host:99999", "port above 65535"),
            ("sip:user@host:", "bad port"),
            ("sip:us er@host", "bad user part"),
            ("sip:@host", "bad user part"),
            ("sip:a@b@c", "more than one @"),
            ("sip:host;=x", "bad URI parameter"),
            ("sip:1.2.3.256", "bad IPv4 address"),
            ("sip:-bad.example", "bad host name"),
            ("1http://example.com", "bad scheme"),
            ("http:", "bad scheme"),
            ("example.com", "no scheme"),
        ] {
            assert_eq!(Uri::parse(text), Err(UriError(why)), "{text}");
        }
    }

    #[test]
    fn tel_uris_global_and_local() {
        let g = Uri::parse("tel:+1-555-123-4567;npdi;rn=+1-555-000-0000").unwrap();
        assert_eq!(g.number().as_deref(), Some("+15551234567"));
        assert_eq!(g.user(), Some("+1-555-123-4567"));
        let Uri::Tel(t) = &g else { panic!() };
        assert_eq!(find_param(&t.params, "npdi"), Some(""));
        assert_eq!(find_param(&t.params, "rn"), Some("+1-555-000-0000"));
        assert_eq!(g.to_string(), "tel:+1-555-123-4567;npdi;rn=+1-555-000-0000");
        let l = Uri::parse("tel:7042;phone-context=example.com").unwrap();
        assert_eq!(l.number().as_deref(), Some("7042"));
        assert_eq!(
            Uri::parse("tel:7042"),
            Err(UriError("local number without phone-context"))
        );
        assert_eq!(Uri::parse("tel:+"), Err(UriError("bad global number")));
        assert_eq!(Uri::parse("tel:+1 555"), Err(UriError("bad global number")));
        let phone = Uri::parse("sip:+1-555-123@gw;user=phone").unwrap();
        assert_eq!(phone.number().as_deref(), Some("+1555123"));
        let urn = Uri::parse("urn:service:sos").unwrap();
        assert_eq!(urn, Uri::Other("urn:service:sos".into()));
        assert_eq!(urn.number(), None);
        let plain = Uri::parse("sip:alice.smith@gw").unwrap();
        assert_eq!(plain.number().as_deref(), Some("alice.smith"));
    }

    #[test]
    fn host_ports() {
        assert_eq!(
            host_port("[::1]:41127").unwrap(),
            (Host::V6(Ipv6Addr::LOCALHOST), Some(41127))
        );
        assert_eq!(
            host_port("h.example").unwrap(),
            (Host::Name("h.example".into()), None)
        );
        assert!(host_port("[::1]5060").is_err());
        assert!(host_port("::1").is_err());
    }
}
