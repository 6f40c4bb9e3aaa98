//! The SIP message trace operators turn on with `[log] level = "debug"` (or
//! `mediation::sip::trace=debug`): every message received and sent, whole, as telephony
//! engineers expect from a SIP trace — with every SDES key (`inline:` base64 in `a=crypto` and
//! Lync's `a=cryptoscale`) replaced by `<redacted>`, so a trace can be shared without
//! giving away a call's media. `inline:` is matched in any case, as the `a=crypto` parser
//! accepts it (RFC 4568's ABNF literals are case-insensitive).
//!
//! [`Redacted`] is also what `Debug` of the call layer's messages (engine input and output,
//! messages being written, transactions) prints, so no log of those shows a key either.

use std::fmt;

/// What comes before a key, in any case.
const MARK: &[u8] = b"inline:";

/// A message printed with its keys redacted. Formatting does the work, so nothing is built
/// unless the trace is on. `Display` prints the text as it is, `Debug` as a quoted string.
pub struct Redacted<'a>(pub &'a [u8]);

/// Where the next `inline:` (any case) starts in `text`. The mark is ASCII, so a match starts
/// and ends on a character boundary.
fn find_mark(text: &str) -> Option<usize> {
    text.as_bytes()
        .windows(MARK.len())
        .position(|w| w.eq_ignore_ascii_case(MARK))
}

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = String::from_utf8_lossy(self.0);
        let mut rest: &str = &text;
        while let Some(at) = find_mark(rest) {
            let (before, after) = rest.split_at(at + MARK.len());
            f.write_str(before)?;
            // The key and salt: everything up to what ends a key in `a=crypto` — `|`
            // (lifetime, MKI), `;` (next key), white space (session parameters, end of line)
            // — or the end. More than a well-formed base64 key when something else follows,
            // so that no key can start inside what is printed after it.
            let key_len = after
                .find(|c: char| c.is_ascii_whitespace() || matches!(c, '|' | ';'))
                .unwrap_or(after.len());
            if key_len > 0 {
                f.write_str("<redacted>")?;
            }
            rest = &after[key_len..];
        }
        f.write_str(rest)
    }
}

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_string(), f)
    }
}

/// Logs a message received on or sent to connection `conn` at debug level.
pub(crate) fn message(direction: &'static str, conn: impl fmt::Debug, bytes: &[u8]) {
    if tracing::enabled!(tracing::Level::DEBUG) {
        tracing::debug!(direction, ?conn, message = %Redacted(bytes), "SIP message");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_inline_key_is_redacted_and_the_rest_kept() {
        let sdp = "m=audio 4000 RTP/SAVP 0\r\n\
            a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^31|1:1\r\n\
            a=crypto:2 AEAD_AES_128_GCM inline:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\r\n\
            a=cryptoscale:1 client AES_CM_128_HMAC_SHA1_80 inline:lEjdWSPlAWZLdh5LBVmRNe3Hb+1F5yRXN94lMEzY|2^31|1:1\r\n\
            a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:QUJD;inline:REVG|2:1\r\n\
            a=crypto:4 X inline:";
        let shown = Redacted(sdp.as_bytes()).to_string();
        for key in [
            "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
            "AAAAAAAAAA",
            "lEjdWSPlAWZLdh5LBVmRNe3Hb+1F5yRXN94lMEzY",
            "QUJD",
            "REVG",
        ] {
            assert!(!shown.contains(key), "{key} in {shown}");
        }
        assert_eq!(shown.matches("inline:<redacted>").count(), 5, "{shown}");
        assert!(shown.contains("inline:<redacted>|2^31|1:1\r\n"), "{shown}");
        assert!(shown.ends_with("a=crypto:4 X inline:"), "{shown}");
        assert_eq!(
            Redacted(b"INVITE sip:a@b SIP/2.0\r\n\r\n").to_string(),
            "INVITE sip:a@b SIP/2.0\r\n\r\n"
        );
    }

    #[test]
    fn inline_in_any_case_is_redacted() {
        let sdp = "m=audio 4000 RTP/SAVP 0\r\n\
            a=crypto:1 AES_CM_128_HMAC_SHA1_80 INLINE:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^31\r\n\
            a=crypto:2 AES_CM_128_HMAC_SHA1_32 Inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n\
            a=crypto:3 AES_CM_128_HMAC_SHA1_80 iNlInE:lEjdWSPlAWZLdh5LBVmRNe3Hb+1F5yRXN94lMEzY \
            KDR=0\r\n\
            a=crypto:4 AES_CM_128_HMAC_SHA1_80 inline:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNk|1:4;\
            INLINE:ZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3|2:4\r\n";
        let shown = Redacted(sdp.as_bytes()).to_string();
        for key in [
            "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
            "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
            "lEjdWSPlAWZLdh5LBVmRNe3Hb+1F5yRXN94lMEzY",
            "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNk",
            "ZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3",
        ] {
            assert!(!shown.contains(key), "{key} in {shown}");
        }
        // The marks keep their case; lifetimes, MKIs and session parameters stay.
        for kept in [
            "INLINE:<redacted>|2^31\r\n",
            "Inline:<redacted>\r\n",
            "iNlInE:<redacted> KDR=0\r\n",
            "inline:<redacted>|1:4;INLINE:<redacted>|2:4\r\n",
        ] {
            assert!(shown.contains(kept), "{kept:?} not in {shown}");
        }
        assert_eq!(shown.matches("<redacted>").count(), 5, "{shown}");
    }

    #[test]
    fn a_key_cannot_hide_behind_a_second_mark_and_debug_is_redacted_too() {
        // Not a key the parser takes, but whatever follows a mark up to a separator goes.
        let shown = Redacted(b"a=crypto:1 X inline:inline:QUJDREVGR0hJ|1:4").to_string();
        assert_eq!(shown, "a=crypto:1 X inline:<redacted>|1:4");
        let debug = format!("{:?}", Redacted(b"a=crypto:1 X Inline:QUJDREVGR0hJ\r\n"));
        assert_eq!(debug, "\"a=crypto:1 X Inline:<redacted>\\r\\n\"");
    }
}
