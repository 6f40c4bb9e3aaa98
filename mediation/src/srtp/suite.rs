//! SRTP crypto suites as named in SDES `a=crypto` lines (RFC 4568 §6.2, RFC 6188 §6, RFC 7714
//! §14.1) with their key, salt and tag sizes.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

/// One SRTP protection profile, spelled as in `a=crypto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub enum SrtpSuite {
    /// AES-128 counter mode, HMAC-SHA1 80-bit tag (RFC 4568, mandatory to implement).
    AesCm128HmacSha1_80,
    /// AES-128 counter mode, HMAC-SHA1 32-bit tag on SRTP (80-bit on SRTCP).
    AesCm128HmacSha1_32,
    /// AES-256 counter mode, HMAC-SHA1 80-bit tag (RFC 6188).
    AesCm256HmacSha1_80,
    /// AES-256 counter mode, HMAC-SHA1 32-bit tag on SRTP (80-bit on SRTCP) (RFC 6188).
    AesCm256HmacSha1_32,
    /// AES-128 GCM, 16-byte tag (RFC 7714).
    AeadAes128Gcm,
    /// AES-256 GCM, 16-byte tag (RFC 7714).
    AeadAes256Gcm,
}

impl SrtpSuite {
    /// Every suite we implement, in our default order of preference.
    pub const ALL: [SrtpSuite; 6] = [
        SrtpSuite::AesCm128HmacSha1_80,
        SrtpSuite::AesCm128HmacSha1_32,
        SrtpSuite::AesCm256HmacSha1_80,
        SrtpSuite::AesCm256HmacSha1_32,
        SrtpSuite::AeadAes128Gcm,
        SrtpSuite::AeadAes256Gcm,
    ];

    /// The name used in SDP.
    pub fn name(self) -> &'static str {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            SrtpSuite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            SrtpSuite::AesCm256HmacSha1_80 => "AES_256_CM_HMAC_SHA1_80",
            SrtpSuite::AesCm256HmacSha1_32 => "AES_256_CM_HMAC_SHA1_32",
            SrtpSuite::AeadAes128Gcm => "AEAD_AES_128_GCM",
            SrtpSuite::AeadAes256Gcm => "AEAD_AES_256_GCM",
        }
    }

    /// Master key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            SrtpSuite::AesCm256HmacSha1_80
            | SrtpSuite::AesCm256HmacSha1_32
            | SrtpSuite::AeadAes256Gcm => 32,
            SrtpSuite::AesCm128HmacSha1_80
            | SrtpSuite::AesCm128HmacSha1_32
            | SrtpSuite::AeadAes128Gcm => 16,
        }
    }

    /// Master salt length in bytes (14 for AES-CM, 12 for AEAD, RFC 7714 §12).
    pub fn salt_len(self) -> usize {
        if self.is_aead() {
            12
        } else {
            14
        }
    }

    /// True for the AES-GCM suites of RFC 7714, whose tag comes from the cipher; false for
    /// AES counter mode with HMAC-SHA1 (RFC 3711, RFC 6188).
    pub(crate) fn is_aead(self) -> bool {
        matches!(self, SrtpSuite::AeadAes128Gcm | SrtpSuite::AeadAes256Gcm)
    }

    /// Bytes SRTP adds to an RTP packet (the authentication tag), without an MKI.
    pub fn srtp_overhead(self) -> usize {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 | SrtpSuite::AesCm256HmacSha1_80 => 10,
            SrtpSuite::AesCm128HmacSha1_32 | SrtpSuite::AesCm256HmacSha1_32 => 4,
            SrtpSuite::AeadAes128Gcm | SrtpSuite::AeadAes256Gcm => 16,
        }
    }

    /// Bytes of the SRTCP authentication tag: 80 bits of HMAC-SHA1 in every AES-CM suite, the
    /// `_32` ones included (RFC 4568 §6.2.1, RFC 6188 §6), or the 16-byte GCM tag.
    pub(crate) fn srtcp_tag_len(self) -> usize {
        if self.is_aead() {
            16
        } else {
            10
        }
    }

    /// Bytes SRTCP adds to an RTCP packet, without an MKI: the `E || SRTCP index` word and the
    /// tag.
    pub(crate) fn srtcp_overhead(self) -> usize {
        4 + self.srtcp_tag_len()
    }
}

impl fmt::Display for SrtpSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An `a=crypto` suite name we do not implement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown SRTP suite `{0}` (known: AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32, AES_256_CM_HMAC_SHA1_80, AES_256_CM_HMAC_SHA1_32, AEAD_AES_128_GCM, AEAD_AES_256_GCM)")]
pub struct UnknownSuite(pub String);

impl FromStr for SrtpSuite {
    type Err = UnknownSuite;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SrtpSuite::ALL
            .into_iter()
            .find(|suite| suite.name() == s)
            .ok_or_else(|| UnknownSuite(s.to_string()))
    }
}

impl TryFrom<String> for SrtpSuite {
    type Error = UnknownSuite;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for suite in SrtpSuite::ALL {
            assert_eq!(suite.name().parse::<SrtpSuite>(), Ok(suite));
        }
        assert!("AES_CM_128_NULL_AUTH".parse::<SrtpSuite>().is_err());
    }
}
