//! The SIP message trace operators turn on with `[log] level = "debug"` (or
//! `mediation::sip::trace=debug`): every message received and sent, whole, as telephony
//! engineers expect from a SIP trace — with every SDES key (`inline:` base64 in `a=crypto` and
//! Lync's `a=cryptoscale`) replaced by `<redacted>`, so a trace can be shared without
//! giving away a call's media.

use std::fmt;

/// A message printed with its keys redacted. Formatting does the work, so nothing is built
/// unless the trace is on.
pub struct Redacted<'a>(pub &'a [u8]);

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = String::from_utf8_lossy(self.0);
        let mut rest: &str = &text;
        while let Some(at) = rest.find("inline:") {
            let (before, after) = rest.split_at(at + "inline:".len());
            f.write_str(before)?;
            // The base64 key and salt: up to `|` (lifetime, MKI), `;` (next key), space or
            // the end of the line.
            let key_len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=')))
                .unwrap_or(after.len());
            if key_len > 0 {
                f.write_str("<redacted>")?;
            }
            rest = &after[key_len..];
        }
        f.write_str(rest)
    }
}

/// Logs a message received on or sent to connection `conn` at debug level.
pub fn message(direction: &'static str, conn: impl fmt::Debug, bytes: &[u8]) {
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
}
