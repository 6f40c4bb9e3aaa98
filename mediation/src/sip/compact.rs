//! Compact header names (RFC 3261 §7.3.3 and later RFCs: `v` for Via, `i` for Call-ID, ...)
//! and the long names they stand for.

use std::borrow::Cow;

/// Compact form letter → long header name.
const COMPACT_FORMS: &[(u8, &str)] = &[
    (b'a', "Accept-Contact"),
    (b'b', "Referred-By"),
    (b'c', "Content-Type"),
    (b'd', "Request-Disposition"),
    (b'e', "Content-Encoding"),
    (b'f', "From"),
    (b'i', "Call-ID"),
    (b'j', "Reject-Contact"),
    (b'k', "Supported"),
    (b'l', "Content-Length"),
    (b'm', "Contact"),
    (b'n', "Identity-Info"),
    (b'o', "Event"),
    (b'r', "Refer-To"),
    (b's', "Subject"),
    (b't', "To"),
    (b'u', "Allow-Events"),
    (b'v', "Via"),
    (b'x', "Session-Expires"),
    (b'y', "Identity"),
];

/// The long header name for a compact one (`b"v"` → `"Via"`, case-insensitive); `None` for
/// anything that is not a known single-letter compact form.
pub(super) fn long_form(name: &[u8]) -> Option<&'static str> {
    let [letter] = name else {
        return None;
    };
    let letter = letter.to_ascii_lowercase();
    COMPACT_FORMS
        .iter()
        .find(|(c, _)| *c == letter)
        .map(|(_, long)| *long)
}

/// The long name of a header, whether written in compact or long form.
pub(super) fn canonical_name(name: &[u8]) -> Cow<'_, [u8]> {
    match long_form(name) {
        Some(long) => Cow::Borrowed(long.as_bytes()),
        None => Cow::Borrowed(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_compact_form() {
        let expected = [
            ("a", "Accept-Contact"),
            ("b", "Referred-By"),
            ("c", "Content-Type"),
            ("d", "Request-Disposition"),
            ("e", "Content-Encoding"),
            ("f", "From"),
            ("i", "Call-ID"),
            ("j", "Reject-Contact"),
            ("k", "Supported"),
            ("l", "Content-Length"),
            ("m", "Contact"),
            ("n", "Identity-Info"),
            ("o", "Event"),
            ("r", "Refer-To"),
            ("s", "Subject"),
            ("t", "To"),
            ("u", "Allow-Events"),
            ("v", "Via"),
            ("x", "Session-Expires"),
            ("y", "Identity"),
        ];
        for (short, long) in expected {
            assert_eq!(long_form(short.as_bytes()), Some(long));
            assert_eq!(long_form(short.to_ascii_uppercase().as_bytes()), Some(long));
        }
        for not_compact in ["g", "h", "p", "q", "w", "z", "", "vv", "1"] {
            assert_eq!(long_form(not_compact.as_bytes()), None, "{not_compact}");
        }
    }
}
