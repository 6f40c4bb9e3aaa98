//! Byte-level helpers for scanning a SIP header block (start line plus header fields) without
//! trusting it to be well formed; shared by the framer, the parser and the best-effort response
//! builder.

use std::borrow::Cow;

/// The blank line that ends a header section.
pub(super) const HEAD_END: &[u8] = b"\r\n\r\n";

/// Position of the first occurrence of `needle` in `hay`.
pub(super) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Length of the header section including its terminating blank line, if it is complete.
pub(super) fn head_len(msg: &[u8]) -> Option<usize> {
    find(msg, HEAD_END).and_then(|i| i.checked_add(HEAD_END.len()))
}

/// SP or HTAB.
pub(super) fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// RFC 3261 `token` character.
pub(super) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// Non-empty and made of token characters only.
pub(super) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_token_byte(b))
}

/// Removes leading and trailing SP/HTAB.
pub(super) fn trim_wsp(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if is_wsp(*first) {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if is_wsp(*last) {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// One physical line of a header block.
#[derive(Debug, Clone, Copy)]
pub(super) struct Line<'a> {
    /// The line without its line ending.
    pub(crate) text: &'a [u8],
    /// Bytes of input the line occupies, line ending included.
    pub(crate) raw_len: usize,
}

/// Splits `block` into lines ending in CRLF (or, tolerantly, a bare LF).
pub(super) fn lines(block: &[u8]) -> impl Iterator<Item = Line<'_>> {
    let mut rest = block;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match rest.iter().position(|&b| b == b'\n') {
            Some(nl) => {
                let (with_nl, after) = rest.split_at(nl.saturating_add(1));
                rest = after;
                let raw_len = with_nl.len();
                let without_lf = with_nl.strip_suffix(b"\n").unwrap_or(with_nl);
                let text = without_lf.strip_suffix(b"\r").unwrap_or(without_lf);
                Some(Line { text, raw_len })
            }
            None => {
                let text = rest;
                rest = &[];
                Some(Line {
                    text,
                    raw_len: text.len(),
                })
            }
        }
    })
}

/// A header field line split at its colon.
#[derive(Debug, Clone, Copy)]
pub(super) struct Field<'a> {
    /// The header name with surrounding whitespace removed.
    pub(crate) name: &'a [u8],
    /// Everything after the colon, untouched.
    pub(crate) after_colon: &'a [u8],
}

/// Splits `name *WSP ":" value`; `None` when the line has no colon or the name is not a token.
pub(super) fn split_field(line: &[u8]) -> Option<Field<'_>> {
    let colon = line.iter().position(|&b| b == b':')?;
    let (raw_name, rest) = line.split_at(colon);
    let after_colon = rest.get(1..).unwrap_or(&[]);
    let name = trim_wsp(raw_name);
    if !is_token(name) || raw_name.first().is_some_and(|&b| is_wsp(b)) {
        return None;
    }
    Some(Field { name, after_colon })
}

/// A logical header field: continuation lines joined, value trimmed.
#[derive(Debug, Clone)]
pub(super) struct HeaderField<'a> {
    /// The header name as written (may be a compact form).
    pub(crate) name: &'a [u8],
    /// The value with folding replaced by single spaces and outer whitespace trimmed.
    pub(crate) value: Cow<'a, [u8]>,
}

/// The logical header lines of a header block (the start line skipped, folding undone).
/// Lines that are not `token ":" value` are reported as `None`; scanning stops at the first
/// empty line.
pub(super) fn logical_headers(block: &[u8]) -> Vec<Option<HeaderField<'_>>> {
    let mut out: Vec<Option<HeaderField<'_>>> = Vec::new();
    for line in lines(block).skip(1) {
        if line.text.is_empty() {
            break;
        }
        if line.text.first().is_some_and(|&b| is_wsp(b)) {
            if let Some(Some(prev)) = out.last_mut() {
                let cont = trim_wsp(line.text);
                if !cont.is_empty() {
                    let value = prev.value.to_mut();
                    if !value.is_empty() {
                        value.push(b' ');
                    }
                    value.extend_from_slice(cont);
                }
            }
            continue;
        }
        out.push(split_field(line.text).map(|f| HeaderField {
            name: f.name,
            value: Cow::Borrowed(trim_wsp(f.after_colon)),
        }));
    }
    out
}

/// The first line of `block` (without its line ending).
pub(super) fn start_line(block: &[u8]) -> &[u8] {
    lines(block).next().map(|l| l.text).unwrap_or(&[])
}

/// The start line is a status line (`SIP/2.0 ...`), i.e. the message is a response.
pub(super) fn is_status_line(line: &[u8]) -> bool {
    line.get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/"))
}

/// The method token of a request line, if the line starts with a token followed by SP.
pub(super) fn request_method(line: &[u8]) -> Option<&[u8]> {
    if is_status_line(line) {
        return None;
    }
    let sp = line.iter().position(|&b| b == b' ')?;
    let method = line.get(..sp)?;
    is_token(method).then_some(method)
}

/// xorshift64: deterministic pseudo-random numbers for the no-panic tests, without extra
/// dependencies.
#[cfg(test)]
pub(super) struct XorShift(pub(crate) u64);

#[cfg(test)]
impl XorShift {
    /// The next pseudo-random value (the seed must be non-zero).
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_splits() {
        assert_eq!(trim_wsp(b" \tab c\t "), b"ab c");
        assert_eq!(trim_wsp(b"   "), b"");
        let f = split_field(b"Via \t: SIP/2.0/TCP h").unwrap();
        assert_eq!(f.name, b"Via");
        assert_eq!(f.after_colon, b" SIP/2.0/TCP h");
        assert!(split_field(b" Via: x").is_none());
        assert!(split_field(b"Bad Name: x").is_none());
        assert!(split_field(b"no colon").is_none());
    }

    #[test]
    fn logical_headers_unfold() {
        let block = b"OPTIONS sip:x SIP/2.0\r\nSubject: a\r\n \t b \r\nVia: v\nbroken\r\n\r\nbody";
        let h = logical_headers(block);
        assert_eq!(h.len(), 3);
        let s = h[0].as_ref().unwrap();
        assert_eq!(s.name, b"Subject");
        assert_eq!(&*s.value, b"a b");
        assert_eq!(&*h[1].as_ref().unwrap().value, b"v");
        assert!(h[2].is_none());
    }

    #[test]
    fn start_lines() {
        assert!(is_status_line(b"sip/2.0 200 OK"));
        assert_eq!(
            request_method(b"INVITE sip:x SIP/2.0"),
            Some(&b"INVITE"[..])
        );
        assert_eq!(request_method(b"SIP/2.0 200 OK"), None);
        assert_eq!(request_method(b"garbage"), None);
    }
}
