//! Normalizes a SIP header section into the shape rsip 0.4 can tokenize: compact header names
//! (RFC 3261 §7.3.3 and later RFCs) become long names, whitespace before the colon is dropped,
//! and folded continuation lines (§7.3.1) are joined. The body is never touched.

use std::borrow::Cow;

use super::head;

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
pub fn long_form(name: &[u8]) -> Option<&'static str> {
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

/// Rewrites the header section of `message` for rsip:
///
/// * compact header names are replaced by their long forms (`i: x` → `Call-ID: x`);
/// * whitespace between a header name and its colon is removed (`Via :` → `Via:`);
/// * continuation lines (starting with SP or HTAB) are joined to the previous header with a
///   single space;
/// * lines of the header section ending in a bare LF get CRLF.
///
/// The start line and header values are otherwise kept byte for byte, and everything after the
/// first blank line (the body) is copied unchanged. Returns the input itself when nothing needs
/// rewriting. If there is no blank line, the whole input is treated as header section.
pub fn expand(message: &[u8]) -> Cow<'_, [u8]> {
    // Logical lines: (text, had a line ending). Continuations are joined first so that the
    // name rewriting below sees whole header fields.
    let mut lines: Vec<(Cow<'_, [u8]>, bool)> = Vec::new();
    let mut changed = false;
    let mut head_bytes = 0usize;
    for (index, line) in head::lines(message).enumerate() {
        if index > 0 && line.text.is_empty() {
            // The blank line: it and everything after it are kept verbatim.
            break;
        }
        head_bytes = head_bytes.saturating_add(line.raw_len);
        changed |= line.bare_lf;
        let continuation = index > 1 && line.text.first().is_some_and(|&b| head::is_wsp(b));
        match lines.last_mut() {
            // Never joined to the start line (index 1 is the first header line).
            Some((prev, prev_terminated)) if continuation => {
                let cont = head::trim_wsp(line.text);
                let joined = prev.to_mut();
                while joined.last().is_some_and(|&b| head::is_wsp(b)) {
                    joined.pop();
                }
                if !cont.is_empty() {
                    joined.push(b' ');
                    joined.extend_from_slice(cont);
                }
                *prev_terminated = line.terminated;
                changed = true;
            }
            _ => lines.push((Cow::Borrowed(line.text), line.terminated)),
        }
    }

    for (text, _) in lines.iter_mut().skip(1) {
        let Some(field) = head::split_field(text) else {
            continue;
        };
        let long = long_form(field.name);
        if long.is_none() && !field.space_before_colon {
            continue;
        }
        let name = long.map_or(field.name, str::as_bytes);
        let mut rewritten = Vec::with_capacity(text.len().saturating_add(20));
        rewritten.extend_from_slice(name);
        rewritten.push(b':');
        rewritten.extend_from_slice(field.after_colon);
        *text = Cow::Owned(rewritten);
        changed = true;
    }

    if !changed {
        return Cow::Borrowed(message);
    }
    let rest = message.get(head_bytes..).unwrap_or(&[]);
    let mut out = Vec::with_capacity(message.len().saturating_add(64));
    for (text, terminated) in &lines {
        out.extend_from_slice(text);
        if *terminated {
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(rest);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::head::XorShift;

    fn expand_str(s: &str) -> String {
        String::from_utf8(expand(s.as_bytes()).into_owned()).unwrap()
    }

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

    #[test]
    fn rewrites_names_only() {
        let msg = "INVITE sip:v@x SIP/2.0\r\nv: SIP/2.0/TCP h;branch=z9hG4bK1\r\nI :abc\r\nT\t: <sip:t@x>\r\nVia : SIP/2.0/UDP g\r\nX-v: v: keep\r\nl: 4\r\n\r\nv: b";
        assert_eq!(
            expand_str(msg),
            "INVITE sip:v@x SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nCall-ID:abc\r\nTo: <sip:t@x>\r\nVia: SIP/2.0/UDP g\r\nX-v: v: keep\r\nContent-Length: 4\r\n\r\nv: b"
        );
    }

    #[test]
    fn unchanged_input_is_borrowed() {
        let msg = b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP h\r\nContent-Length: 3\r\n\r\nl: x";
        assert!(matches!(expand(msg), Cow::Borrowed(_)));
    }

    #[test]
    fn unfolds_continuation_lines() {
        let msg = "OPTIONS sip:x SIP/2.0\r\nSubject: I know you're there,  \r\n   pick up the phone\r\n\tand talk to me!\r\nVia: SIP/2.0/TCP h\r\n\r\n body\r\n line";
        assert_eq!(
            expand_str(msg),
            "OPTIONS sip:x SIP/2.0\r\nSubject: I know you're there, pick up the phone and talk to me!\r\nVia: SIP/2.0/TCP h\r\n\r\n body\r\n line"
        );
        // A folded compact header is both expanded and unfolded.
        assert_eq!(
            expand_str("OPTIONS sip:x SIP/2.0\r\nv:\r\n SIP/2.0/TCP h\r\n\r\n"),
            "OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n\r\n"
        );
        // Indented line right after the start line is left for the parser to reject.
        assert_eq!(
            expand_str("OPTIONS sip:x SIP/2.0\r\n Via: a\r\n\r\n"),
            "OPTIONS sip:x SIP/2.0\r\n Via: a\r\n\r\n"
        );
    }

    #[test]
    fn bare_lf_lines_get_crlf_and_body_untouched() {
        let msg = "OPTIONS sip:x SIP/2.0\nv: a\r\n\r\nx\ny\n";
        assert_eq!(
            expand_str(msg),
            "OPTIONS sip:x SIP/2.0\r\nVia: a\r\n\r\nx\ny\n"
        );
    }

    #[test]
    fn no_blank_line_treated_as_head() {
        assert_eq!(
            expand_str("OPTIONS sip:x SIP/2.0\r\nf: a\r\nt: b"),
            "OPTIONS sip:x SIP/2.0\r\nFrom: a\r\nTo: b"
        );
    }

    #[test]
    fn random_input_never_panics() {
        let alphabet: &[u8] = b"\r\n \t:vlfFi-xX\xc3\xa9";
        let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
        for _ in 0..5000 {
            let len = (rng.next() % 200) as usize;
            let data: Vec<u8> = (0..len)
                .map(|_| alphabet[(rng.next() as usize) % alphabet.len()])
                .collect();
            let out = expand(&data);
            // Expansion is idempotent.
            assert_eq!(
                String::from_utf8_lossy(&expand(&out)),
                String::from_utf8_lossy(&out),
                "{:?}",
                String::from_utf8_lossy(&data)
            );
        }
    }
}
