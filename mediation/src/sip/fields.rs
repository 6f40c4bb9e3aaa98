//! The grammar inside header values that the B2BUA reads (RFC 3261 §25.1): lists split at the
//! commas §7.3.1 allows, `;name=value` parameters (quoted values included), name-addr and
//! addr-spec, Via, CSeq. Each parser checks what it reads and says what is wrong.

use super::head::is_token;
use super::uri::{host_port, Host, Param, Uri, UriError};
use super::Method;

/// Splits a list header's value at the commas outside quoted strings and `<...>`, each item
/// trimmed; an empty item (`a,,b`) is an error.
pub(super) fn split_list(value: &str) -> Result<Vec<&str>, &'static str> {
    let mut out = Vec::new();
    let mut quoted = false;
    let mut escaped = false;
    let mut angle = false;
    let mut start = 0;
    for (i, b) in value.bytes().enumerate() {
        if quoted {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => quoted = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => quoted = true,
            b'<' => angle = true,
            b'>' => angle = false,
            b',' if !angle => {
                out.push(value.get(start..i).unwrap_or("").trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    if quoted {
        return Err("unterminated quoted string");
    }
    out.push(value.get(start..).unwrap_or("").trim());
    if out.iter().any(|v| v.is_empty()) {
        return Err("empty list item");
    }
    Ok(out)
}

/// Parses `;name[=value]` header parameters (white space around `;` and `=` allowed, values
/// may be quoted strings, kept with their quotes).
pub(super) fn parse_params(s: &str) -> Result<Vec<Param>, &'static str> {
    let mut out = Vec::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        rest = rest
            .strip_prefix(';')
            .ok_or("text where a ;parameter should be")?
            .trim_start();
        let name_len = rest
            .bytes()
            .position(|b| !super::head::is_token_byte(b))
            .unwrap_or(rest.len());
        let (name, after) = rest.split_at(name_len);
        if name.is_empty() {
            return Err("empty parameter name");
        }
        let after = after.trim_start();
        let (value, after) = if let Some(v) = after.strip_prefix('=') {
            let v = v.trim_start();
            let len = if v.starts_with('"') {
                quoted_len(v).ok_or("unterminated quoted string")?
            } else {
                v.bytes()
                    .position(|b| b == b';' || super::head::is_wsp(b))
                    .unwrap_or(v.len())
            };
            let (value, after) = v.split_at(len);
            if value.is_empty() {
                return Err("parameter without a value after =");
            }
            (Some(value.to_string()), after.trim_start())
        } else {
            (None, after)
        };
        out.push(Param {
            name: name.to_string(),
            value,
        });
        rest = after;
    }
    Ok(out)
}

/// Length of the quoted string at the start of `s` (quotes included).
fn quoted_len(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, b) in s.bytes().enumerate().skip(1) {
        match (escaped, b) {
            (true, _) => escaped = false,
            (false, b'\\') => escaped = true,
            (false, b'"') => return Some(i + 1),
            _ => {}
        }
    }
    None
}

/// A From, To, Contact, Route or P-Asserted-Identity value: optional display name, URI and
/// header parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name as written (quotes kept), if any.
    pub(crate) display: Option<String>,
    /// The URI.
    pub(crate) uri: Uri,
    /// The URI's text as written.
    pub uri_text: String,
    /// Header parameters (`tag`, `expires`, ...).
    pub(crate) params: Vec<Param>,
}

impl NameAddr {
    /// Parses `["display"] <uri> *(;param)` or `addr-spec *(;param)`.
    pub(crate) fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim();
        let (display, uri_text, rest) = match value.find(['<', '"']) {
            Some(_) => {
                let (display, after) = if value.starts_with('"') {
                    let len = quoted_len(value).ok_or("unterminated quoted display name")?;
                    let (d, a) = value.split_at(len);
                    (Some(d.to_string()), a.trim_start())
                } else {
                    let lt = value.find('<').ok_or("display name without <URI>")?;
                    let (d, a) = value.split_at(lt);
                    let d = d.trim();
                    if !d.split_ascii_whitespace().all(|w| is_token(w.as_bytes())) {
                        return Err("display name with characters that need quotes".into());
                    }
                    ((!d.is_empty()).then(|| d.to_string()), a)
                };
                let inner = after
                    .strip_prefix('<')
                    .ok_or("display name without <URI>")?;
                let gt = inner.find('>').ok_or("< without >")?;
                let (uri, rest) = inner.split_at(gt);
                (display, uri, rest.get(1..).unwrap_or(""))
            }
            None => {
                // addr-spec: the URI ends at the first ';' (its own parameters would be
                // ambiguous with the header's, RFC 3261 §20.10), and may hold no ',' or '?'.
                let end = value.find(';').unwrap_or(value.len());
                let (uri, rest) = value.split_at(end);
                let uri = uri.trim_end();
                if uri.contains(['?', ',']) || uri.contains(char::is_whitespace) {
                    return Err("a URI with ?, comma or space must be enclosed in < >".into());
                }
                (None, uri.trim(), rest)
            }
        };
        if uri_text.contains(char::is_whitespace) {
            return Err("white space inside the URI".into());
        }
        let uri = Uri::parse(uri_text).map_err(|UriError(e)| e.to_string())?;
        let params = parse_params(rest)?;
        Ok(NameAddr {
            display,
            uri,
            uri_text: uri_text.to_string(),
            params,
        })
    }

    /// The `tag` parameter.
    pub(crate) fn tag(&self) -> Option<&str> {
        super::uri::find_param(&self.params, "tag").filter(|t| !t.is_empty())
    }
}

/// One Via value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Transport (`UDP`, `TCP`, `TLS`, ...), as written.
    pub transport: String,
    /// sent-by host.
    pub host: Host,
    /// sent-by port, when written.
    pub port: Option<u16>,
    /// Parameters (`branch`, `received`, `rport`, ...).
    pub(crate) params: Vec<Param>,
}

impl Via {
    /// Parses `SIP / 2.0 / TRANSPORT sent-by *(;param)` (white space around `/` allowed).
    pub(crate) fn parse(value: &str) -> Result<Self, String> {
        let mut parts = value.splitn(3, '/');
        let (Some(name), Some(version), Some(rest)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err("not SIP/2.0/transport".into());
        };
        if !name.trim().eq_ignore_ascii_case("SIP") || version.trim() != "2.0" {
            return Err("protocol is not SIP/2.0".into());
        }
        let rest = rest.trim_start();
        let t_len = rest
            .bytes()
            .position(|b| !super::head::is_token_byte(b))
            .unwrap_or(rest.len());
        let (transport, rest) = rest.split_at(t_len);
        if transport.is_empty() {
            return Err("no transport".into());
        }
        let rest = rest.trim_start();
        let end = rest.find([';', ' ', '\t']).unwrap_or(rest.len());
        let (sent_by, params) = rest.split_at(end);
        let (host, port) = host_port(sent_by).map_err(|UriError(e)| format!("sent-by: {e}"))?;
        let params = parse_params(params)?;
        for p in &params {
            let bad = match (p.name.to_ascii_lowercase().as_str(), p.value.as_deref()) {
                // RFC 5118 §4.5: robust parsers also take an IPv6 `received` in brackets.
                ("received", Some(v)) => v
                    .strip_prefix('[')
                    .and_then(|v| v.strip_suffix(']'))
                    .unwrap_or(v)
                    .parse::<std::net::IpAddr>()
                    .is_err(),
                ("received", None) => true,
                ("rport", Some(v)) => v.parse::<u16>().is_err(),
                ("ttl", Some(v)) => v.parse::<u8>().is_err(),
                ("branch", v) => v.is_none_or(|v| !is_token(v.as_bytes())),
                _ => false,
            };
            if bad {
                return Err(format!("bad {} parameter", p.name));
            }
        }
        Ok(Via {
            transport: transport.to_string(),
            host,
            port,
            params,
        })
    }

    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&str> {
        super::uri::find_param(&self.params, "branch")
    }

    /// The `received` parameter (brackets around an IPv6 address removed).
    pub fn received(&self) -> Option<&str> {
        let v = super::uri::find_param(&self.params, "received")?;
        Some(
            v.strip_prefix('[')
                .and_then(|v| v.strip_suffix(']'))
                .unwrap_or(v),
        )
    }
}

/// A `;name=value` parameter of a header value, outside any `<...>` URI and quoted string.
pub(super) fn param(value: &str, name: &str) -> Option<String> {
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

/// Largest CSeq sequence number allowed by RFC 3261 §8.1.1.5 (below 2**31).
pub(super) const MAX_CSEQ: u32 = (1 << 31) - 1;

/// A CSeq value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// Sequence number.
    pub seq: u32,
    /// Method.
    pub method: Method,
}

impl CSeq {
    /// Parses `number LWS method`.
    pub(crate) fn parse(value: &str) -> Result<Self, &'static str> {
        let mut words = value.split_ascii_whitespace();
        let (Some(num), Some(method), None) = (words.next(), words.next(), words.next()) else {
            return Err("not a number and a method");
        };
        if num.len() > 10 || !num.bytes().all(|b| b.is_ascii_digit()) {
            return Err("sequence number not a number below 2**31");
        }
        let seq = num
            .parse::<u64>()
            .ok()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|&n| n <= MAX_CSEQ)
            .ok_or("sequence number not a number below 2**31")?;
        if !is_token(method.as_bytes()) {
            return Err("method is not a token");
        }
        Ok(CSeq {
            seq,
            method: Method::from(method),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_split_outside_quotes_and_brackets() {
        assert_eq!(
            split_list("\"a, b\" <sip:x@y;p=1,2>;q=1, <sip:z>").unwrap(),
            vec!["\"a, b\" <sip:x@y;p=1,2>;q=1", "<sip:z>"]
        );
        assert_eq!(
            split_list("timer , 100rel").unwrap(),
            vec!["timer", "100rel"]
        );
        assert!(split_list("a,,b").is_err());
        assert!(split_list("\"open").is_err());
    }

    #[test]
    fn name_addrs() {
        let n = NameAddr::parse(
            "\"Bob \\\"B\\\"\" <sip:+15551234@gw1.example.test:5067;transport=tls>;tag=9",
        )
        .unwrap();
        assert_eq!(n.display.as_deref(), Some("\"Bob \\\"B\\\"\""));
        assert_eq!(
            n.uri_text,
            "sip:+15551234@gw1.example.test:5067;transport=tls"
        );
        assert_eq!(n.tag(), Some("9"));
        let a = NameAddr::parse("sip:a@b;tag=1").unwrap();
        assert_eq!(a.uri_text, "sip:a@b");
        assert_eq!(a.tag(), Some("1"));
        let tel = NameAddr::parse("<tel:+1-555-0100>").unwrap();
        assert_eq!(tel.uri.number().as_deref(), Some("+15550100"));
        let t = NameAddr::parse("Bob Smith <sip:[2001:db8::1]>").unwrap();
        assert_eq!(t.display.as_deref(), Some("Bob Smith"));
        for bad in [
            "\"unterminated <sip:a@b>",
            "Bob <sip:a@b",
            "sip:a@b?Route=x",
            "Bob@x <sip:a@b>",
            "<sip:a @b>",
            "<1http://x>",
        ] {
            assert!(NameAddr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn vias_with_spaces_and_ipv6() {
        let v = Via::parse("SIP  /   2.0  / UDP  192.0.2.2 ;branch=z9hG4bK1 ; rport").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.branch(), Some("z9hG4bK1"));
        let v6 =
            Via::parse("SIP/2.0/TCP [::1]:41127;branch=z9hG4bK1;received=::1;rport=5060").unwrap();
        assert_eq!(v6.host, Host::V6(std::net::Ipv6Addr::LOCALHOST));
        assert_eq!(v6.port, Some(41127));
        assert_eq!(v6.received(), Some("::1"));
        for bad in [
            "SIP/2.0/TCP host:70000",
            "SIP/3.0/TCP host",
            "SIP/2.0/TCP ::1",
            "SIP/2.0/TCP h;received=nothost",
            "SIP/2.0/TCP h;branch",
            "SIP/2.0 host",
        ] {
            assert!(Via::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cseqs() {
        assert_eq!(
            CSeq::parse("314159  INVITE").unwrap(),
            CSeq {
                seq: 314159,
                method: Method::Invite
            }
        );
        assert!(CSeq::parse("2147483648 INVITE").is_err());
        assert!(CSeq::parse("99999999999999999999 INVITE").is_err());
        assert!(CSeq::parse("1").is_err());
        assert!(CSeq::parse("-1 INVITE").is_err());
    }

    #[test]
    fn params_outside_uri_and_quotes() {
        let v = "\"A;tag=no\" <sip:a@b;tag=no>;tag=yes;x=1";
        assert_eq!(param(v, "tag").as_deref(), Some("yes"));
        assert_eq!(param(v, "x").as_deref(), Some("1"));
        assert_eq!(param("<sip:a@b>", "tag"), None);
    }

    #[test]
    fn params_with_quotes_and_spaces() {
        let p = parse_params(" ; tag = 1 ;x=\"a;b\";lr").unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].value.as_deref(), Some("1"));
        assert_eq!(p[1].value.as_deref(), Some("\"a;b\""));
        assert_eq!(p[2].value, None);
        assert!(parse_params(";=1").is_err());
        assert!(parse_params("junk").is_err());
    }
}
