//! The RFC 4568 (SDES) `a=crypto` attribute: parsing, validation and printing.
//!
//! ```text
//! a=crypto:<tag> <crypto-suite> <key-params>[;<key-params>...] [<session-param> ...]
//! key-params = inline:<base64 key||salt>[|<lifetime>][|<MKI value>:<MKI length>]
//! ```
//!
//! Key material lives in [`MasterKeySalt`], which is zeroed when dropped and whose `Debug` output
//! never shows the bytes. Errors never quote key material either. `Display` of a
//! [`CryptoAttribute`] prints the key, because it is what goes into SDP; use
//! [`CryptoAttribute::redacted`] for anything that may reach a log.

use std::fmt;

use rand::rngs::OsRng;
use rand::RngCore;
use zeroize::Zeroizing;

use super::base64::{self, Base64Error};
use crate::srtp::SrtpSuite;

/// Largest tag RFC 4568 §9.1 allows (`1*9DIGIT`).
pub(super) const MAX_TAG: u32 = 999_999_999;

/// Largest MKI length in bytes (RFC 4568 §9.1: `mki-length = 1*3DIGIT ; range 1..128`).
pub(super) const MAX_MKI_LEN: u8 = 128;

/// More keys than this in one attribute is refused (bounds work on hostile input).
pub(super) const MAX_KEYS: usize = 16;

/// Session parameter: SRTP payload is not encrypted (RFC 4568 §6.3.2).
pub(super) const UNENCRYPTED_SRTP: &str = "UNENCRYPTED_SRTP";
/// Session parameter: SRTCP payload is not encrypted (RFC 4568 §6.3.3).
pub(super) const UNENCRYPTED_SRTCP: &str = "UNENCRYPTED_SRTCP";
/// Session parameter: SRTP is not authenticated (RFC 4568 §6.3.4).
pub(super) const UNAUTHENTICATED_SRTP: &str = "UNAUTHENTICATED_SRTP";

/// Why an `a=crypto` value was refused. Messages name the offending field but never contain
/// key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// A mandatory field is absent.
    #[error("a=crypto has no {0}")]
    MissingField(&'static str),
    /// The tag is not a decimal number in `1..=999999999`.
    #[error("a=crypto tag `{0}` is not a number in 1..=999999999")]
    BadTag(String),
    /// The key parameter uses a key method other than `inline`.
    #[error(
        "a=crypto key parameter does not start with `inline:` (the only key method supported)"
    )]
    NotInline,
    /// The inline key is not base64.
    #[error("inline key is not valid base64: {0}")]
    BadBase64(#[source] Base64Error),
    /// The inline key is empty.
    #[error("inline key is empty")]
    EmptyKey,
    /// The decoded key||salt does not have the size the suite needs.
    #[error("inline key is {got} bytes, {suite} needs {need}")]
    WrongKeyLength {
        /// Decoded length.
        got: usize,
        /// The suite named by the attribute.
        suite: SrtpSuite,
        /// `key_len + salt_len` of that suite.
        need: usize,
    },
    /// The lifetime is neither a positive decimal nor `2^n` with `n <= 63`.
    #[error("key lifetime `{0}` is not a positive decimal number or 2^n with n in 0..=63")]
    BadLifetime(String),
    /// The MKI is not `value:length` with a sane length and a value that fits.
    #[error("MKI `{0}` is not <value>:<length> with length 1..=128 and a value that fits in it")]
    BadMki(String),
    /// More than a lifetime and an MKI after the inline key, or them in the wrong order.
    #[error("inline key is followed by something other than [|lifetime][|MKI:length]")]
    BadKeyFields,
    /// More keys than `MAX_KEYS`.
    #[error("a=crypto carries {0} keys, at most 16 are accepted")]
    TooManyKeys(usize),
    /// Several keys without an MKI on each, or MKIs of different lengths (RFC 4568 §6.1).
    #[error("several keys in one a=crypto need an MKI on every key, all of the same length")]
    MkiRequired,
    /// Two keys with the same MKI value.
    #[error("two keys in one a=crypto have the same MKI value {0}")]
    DuplicateMki(u32),
    /// `KDR=` with a value that is not a number in `0..=24`.
    #[error("session parameter KDR=`{0}` is not a number in 0..=24")]
    BadKdr(String),
    /// `KDR=n` with `n != 0`: key derivation rates are not supported.
    #[error("session parameter KDR={0} is not supported (only KDR=0: no periodic key derivation)")]
    UnsupportedKdr(u8),
    /// `WSH=` with a value that is not a decimal number of at least 64 (RFC 4568 §6.3.7).
    #[error("session parameter WSH=`{0}` is not a window size of at least 64")]
    BadWsh(String),
    /// `FEC_ORDER=` with a value other than `FEC_SRTP` or `SRTP_FEC` (RFC 4568 §6.3.5).
    #[error("session parameter FEC_ORDER=`{0}` is neither FEC_SRTP nor SRTP_FEC")]
    BadFecOrder(String),
    /// A session parameter that weakens SRTP, with its name, from
    /// `CryptoAttribute::check_security`.
    #[error("session parameter {0} turns off SRTP protection, which is never accepted")]
    Weakening(&'static str),
    /// `FEC_KEY=`: a separate FEC key is not supported (and would be key material in a log).
    #[error("session parameter FEC_KEY is not supported")]
    FecKeyUnsupported,
    /// The suite is not one we implement.
    #[error("unknown SRTP suite `{0}` (known: AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32, AES_256_CM_HMAC_SHA1_80, AES_256_CM_HMAC_SHA1_32, AEAD_AES_128_GCM, AEAD_AES_256_GCM)")]
    UnknownSuite(String),
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed")]
    Random,
}

/// A short, printable excerpt of attacker-controlled text for an error message.
pub(crate) fn snippet(s: &str) -> String {
    const MAX: usize = 32;
    let mut out: String = s
        .chars()
        .take(MAX)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().count() > MAX {
        out.push('…');
    }
    out
}

/// The crypto-suite field: one of ours, or a name we do not implement (RFC 4568 §7.1.1 says an
/// answerer ignores attributes with unknown suites rather than failing the offer).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CryptoSuiteName {
    /// A suite we implement.
    Known(SrtpSuite),
    /// Anything else, as written.
    Unknown(String),
}

impl CryptoSuiteName {
    /// Classifies a suite name as written in SDP (case-sensitive, RFC 4568 §6.2).
    pub(crate) fn parse(name: &str) -> Self {
        match name.parse::<SrtpSuite>() {
            Ok(suite) => CryptoSuiteName::Known(suite),
            Err(_) => CryptoSuiteName::Unknown(name.to_string()),
        }
    }

    /// The name as written in SDP.
    pub(crate) fn as_str(&self) -> &str {
        match self {
            CryptoSuiteName::Known(suite) => suite.name(),
            CryptoSuiteName::Unknown(name) => name,
        }
    }

    /// The suite, if we implement it.
    pub(crate) fn known(&self) -> Option<SrtpSuite> {
        match self {
            CryptoSuiteName::Known(suite) => Some(*suite),
            CryptoSuiteName::Unknown(_) => None,
        }
    }
}

impl fmt::Display for CryptoSuiteName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<SrtpSuite> for CryptoSuiteName {
    fn from(suite: SrtpSuite) -> Self {
        CryptoSuiteName::Known(suite)
    }
}

/// SRTP master key followed by master salt, as carried by `inline:`. Zeroed on drop; `Debug`
/// shows only the length.
#[derive(Clone)]
pub struct MasterKeySalt {
    bytes: Zeroizing<Vec<u8>>,
    key_len: usize,
}

impl MasterKeySalt {
    /// A fresh key and salt for `suite` from the operating system's CSPRNG
    /// (`OsRng::fill_bytes`).
    ///
    /// # Panics
    ///
    /// Only if the operating system cannot provide random bytes, when no key can be made at
    /// all; `MasterKeySalt::try_generate` returns an error instead.
    pub fn generate(suite: SrtpSuite) -> Self {
        let mut bytes = Zeroizing::new(vec![0u8; suite.key_len() + suite.salt_len()]);
        OsRng.fill_bytes(bytes.as_mut_slice());
        MasterKeySalt {
            bytes,
            key_len: suite.key_len(),
        }
    }

    /// Like [`MasterKeySalt::generate`], with an error if the OS CSPRNG fails.
    #[cfg(test)]
    pub(crate) fn try_generate(suite: SrtpSuite) -> Result<Self, CryptoError> {
        let mut bytes = Zeroizing::new(vec![0u8; suite.key_len() + suite.salt_len()]);
        OsRng
            .try_fill_bytes(bytes.as_mut_slice())
            .map_err(|_| CryptoError::Random)?;
        Ok(MasterKeySalt {
            bytes,
            key_len: suite.key_len(),
        })
    }

    /// Wraps key||salt bytes for `suite`, checking the length. The buffer is taken over and
    /// zeroed on drop, also when the length is wrong.
    pub fn from_bytes(suite: SrtpSuite, bytes: Vec<u8>) -> Result<Self, CryptoError> {
        let bytes = Zeroizing::new(bytes);
        let need = suite.key_len() + suite.salt_len();
        if bytes.len() != need {
            return Err(CryptoError::WrongKeyLength {
                got: bytes.len(),
                suite,
                need,
            });
        }
        Ok(MasterKeySalt {
            bytes,
            key_len: suite.key_len(),
        })
    }

    /// Key material of a suite we do not implement: all of it counts as key, the salt is empty.
    fn opaque(bytes: Zeroizing<Vec<u8>>) -> Self {
        let key_len = bytes.len();
        MasterKeySalt { bytes, key_len }
    }

    /// The master key.
    #[cfg(test)]
    pub(crate) fn key(&self) -> &[u8] {
        &self.bytes[..self.key_len]
    }

    /// The master salt.
    #[cfg(test)]
    pub(crate) fn salt(&self) -> &[u8] {
        &self.bytes[self.key_len..]
    }

    /// Key followed by salt, as on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Total length (key plus salt) in bytes.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }
}

impl fmt::Debug for MasterKeySalt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MasterKeySalt(<redacted: {} key + {} salt bytes>)",
            self.key_len,
            self.bytes.len() - self.key_len
        )
    }
}

impl PartialEq for MasterKeySalt {
    /// Compares without an early exit on the first differing byte.
    fn eq(&self, other: &Self) -> bool {
        self.key_len == other.key_len
            && self.bytes.len() == other.bytes.len()
            && self
                .bytes
                .iter()
                .zip(other.bytes.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

impl Eq for MasterKeySalt {}

/// One `inline:` key with its optional lifetime and MKI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyParams {
    /// Master key and salt.
    pub key_salt: MasterKeySalt,
    /// Key lifetime in packets (`|2^31` or `|2147483648`), if given.
    pub lifetime: Option<u64>,
    /// Master key identifier: (value, length in bytes), if given.
    pub mki: Option<(u32, u8)>,
}

impl KeyParams {
    /// A key with neither lifetime nor MKI.
    pub(crate) fn new(key_salt: MasterKeySalt) -> Self {
        KeyParams {
            key_salt,
            lifetime: None,
            mki: None,
        }
    }

    fn write(&self, f: &mut fmt::Formatter<'_>, redact: bool) -> fmt::Result {
        f.write_str("inline:")?;
        if redact {
            f.write_str("<redacted>")?;
        } else {
            base64::encode_into(f, self.key_salt.as_bytes())?;
        }
        if let Some(lifetime) = self.lifetime {
            if lifetime.is_power_of_two() {
                write!(f, "|2^{}", lifetime.trailing_zeros())?;
            } else {
                write!(f, "|{lifetime}")?;
            }
        }
        if let Some((value, len)) = self.mki {
            write!(f, "|{value}:{len}")?;
        }
        Ok(())
    }
}

/// One `a=crypto` attribute (the part after `a=crypto:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoAttribute {
    /// Tag, `1..=999999999`; the answer echoes the tag of the offer it accepts.
    pub tag: u32,
    /// Crypto suite.
    pub suite: CryptoSuiteName,
    /// One or more keys (several only with MKIs).
    pub keys: Vec<KeyParams>,
    /// Session parameters as written (`UNENCRYPTED_SRTCP`, `KDR=0`, `WSH=128`, ...).
    pub(crate) session_params: Vec<String>,
}

impl CryptoAttribute {
    /// An attribute with one key and nothing else.
    pub fn new(tag: u32, suite: SrtpSuite, key_salt: MasterKeySalt) -> Self {
        CryptoAttribute {
            tag,
            suite: CryptoSuiteName::Known(suite),
            keys: vec![KeyParams::new(key_salt)],
            session_params: Vec::new(),
        }
    }

    /// An attribute with one fresh key from the OS CSPRNG (see [`MasterKeySalt::generate`]).
    pub fn generate(tag: u32, suite: SrtpSuite) -> Self {
        CryptoAttribute::new(tag, suite, MasterKeySalt::generate(suite))
    }

    /// Parses the value of an `a=crypto` attribute (everything after `a=crypto:`).
    ///
    /// Unknown suites parse (as [`CryptoSuiteName::Unknown`], key length unchecked) so that an
    /// offer can list suites we ignore; [`CryptoAttribute::known_suite`] refuses them.
    pub fn parse(value: &str) -> Result<Self, CryptoError> {
        let mut fields = value.split_ascii_whitespace();
        let tag_text = fields.next().ok_or(CryptoError::MissingField("tag"))?;
        let tag = parse_tag(tag_text)?;
        let suite = CryptoSuiteName::parse(
            fields
                .next()
                .ok_or(CryptoError::MissingField("crypto suite"))?,
        );
        let key_text = fields
            .next()
            .ok_or(CryptoError::MissingField("key parameters"))?;

        let key_count = key_text.split(';').count();
        if key_count > MAX_KEYS {
            return Err(CryptoError::TooManyKeys(key_count));
        }
        let keys = key_text
            .split(';')
            .map(|k| parse_key_params(k, &suite))
            .collect::<Result<Vec<_>, _>>()?;
        check_mkis(&keys)?;

        let mut session_params = Vec::new();
        for param in fields {
            check_session_param(param)?;
            session_params.push(param.to_string());
        }
        Ok(CryptoAttribute {
            tag,
            suite,
            keys,
            session_params,
        })
    }

    /// The suite, or [`CryptoError::UnknownSuite`] if we do not implement it.
    pub fn known_suite(&self) -> Result<SrtpSuite, CryptoError> {
        match &self.suite {
            CryptoSuiteName::Known(suite) => Ok(*suite),
            CryptoSuiteName::Unknown(name) => Err(CryptoError::UnknownSuite(snippet(name))),
        }
    }

    /// The SRTP master key of the attribute's first key, with its MKI and lifetime: what an
    /// SRTP context takes. Refused for a suite we do not implement, no key, or an MKI longer
    /// than `Mki::MAX_LEN` bytes.
    pub fn master_key(&self) -> Result<crate::srtp::MasterKey, String> {
        let suite = self.known_suite().map_err(|e| e.to_string())?;
        let params = self.keys.first().ok_or("a=crypto without a key")?;
        let mut key = crate::srtp::MasterKey::from_bytes(suite, params.key_salt.as_bytes())
            .map_err(|e| e.to_string())?;
        if let Some((value, len)) = params.mki {
            let mki =
                crate::srtp::Mki::new(value, len).ok_or("a=crypto MKI longer than 4 bytes")?;
            key = key.with_mki(mki);
        }
        if let Some(lifetime) = params.lifetime {
            key = key.with_lifetime(lifetime);
        }
        Ok(key)
    }

    /// True if a session parameter turns off encryption or authentication
    /// (`UNENCRYPTED_SRTP`, `UNENCRYPTED_SRTCP`, `UNAUTHENTICATED_SRTP`).
    pub fn weakens_security(&self) -> bool {
        self.session_params
            .iter()
            .any(|p| p == UNENCRYPTED_SRTP || p == UNENCRYPTED_SRTCP || p == UNAUTHENTICATED_SRTP)
    }

    /// The first session parameter that turns off encryption or authentication
    /// (`UNENCRYPTED_SRTP`, `UNENCRYPTED_SRTCP`, `UNAUTHENTICATED_SRTP`, RFC 4568 §6.3.1-3) as
    /// an error naming it; such an attribute is never used.
    #[cfg(test)]
    pub(crate) fn check_security(&self) -> Result<(), CryptoError> {
        for param in &self.session_params {
            for weak in [UNENCRYPTED_SRTP, UNENCRYPTED_SRTCP, UNAUTHENTICATED_SRTP] {
                if param == weak {
                    return Err(CryptoError::Weakening(weak));
                }
            }
        }
        Ok(())
    }

    /// True if a session parameter is neither one we know (`UNENCRYPTED_*`,
    /// `UNAUTHENTICATED_SRTP`, `KDR`, `WSH`, `FEC_ORDER`) nor marked optional with a leading
    /// `-` (RFC 4568 §6.3.7): such an attribute cannot be used safely.
    pub fn has_unknown_mandatory_params(&self) -> bool {
        self.session_params.iter().any(|p| {
            let name = p.split('=').next().unwrap_or(p);
            !p.starts_with('-')
                && !matches!(
                    name,
                    UNENCRYPTED_SRTP
                        | UNENCRYPTED_SRTCP
                        | UNAUTHENTICATED_SRTP
                        | "KDR"
                        | "WSH"
                        | "FEC_ORDER"
                )
        })
    }

    /// A `Display` of this attribute with every key replaced by `<redacted>`, for logs.
    pub fn redacted(&self) -> impl fmt::Display + '_ {
        Redacted(self)
    }

    fn write(&self, f: &mut fmt::Formatter<'_>, redact: bool) -> fmt::Result {
        write!(f, "{} {} ", self.tag, self.suite)?;
        for (i, key) in self.keys.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            key.write(f, redact)?;
        }
        for param in &self.session_params {
            write!(f, " {param}")?;
        }
        Ok(())
    }
}

impl fmt::Display for CryptoAttribute {
    /// The attribute value as it goes into SDP, key included: `1 AES_CM_128_HMAC_SHA1_80
    /// inline:<base64>|2^31|1:4`. Not for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, false)
    }
}

struct Redacted<'a>(&'a CryptoAttribute);

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.write(f, true)
    }
}

fn parse_tag(text: &str) -> Result<u32, CryptoError> {
    let bad = || CryptoError::BadTag(snippet(text));
    if text.is_empty() || text.len() > 9 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match text.parse::<u32>() {
        Ok(tag) if (1..=MAX_TAG).contains(&tag) => Ok(tag),
        _ => Err(bad()),
    }
}

fn parse_key_params(text: &str, suite: &CryptoSuiteName) -> Result<KeyParams, CryptoError> {
    // RFC 4568 ABNF literals are case-insensitive: accept `INLINE:` too.
    let info = match text.get(..7) {
        Some(method) if method.eq_ignore_ascii_case("inline:") => &text[7..],
        _ => return Err(CryptoError::NotInline),
    };
    let mut parts = info.split('|');
    let key_text = parts.next().unwrap_or("");
    if key_text.is_empty() {
        return Err(CryptoError::EmptyKey);
    }
    let mut decoded = Zeroizing::new(base64::decode(key_text).map_err(CryptoError::BadBase64)?);
    if decoded.is_empty() {
        return Err(CryptoError::EmptyKey);
    }
    let key_salt = match suite {
        // `from_bytes` takes the buffer over and zeroes it on every path.
        CryptoSuiteName::Known(suite) => {
            MasterKeySalt::from_bytes(*suite, std::mem::take(&mut *decoded))?
        }
        CryptoSuiteName::Unknown(_) => MasterKeySalt::opaque(decoded),
    };

    let mut lifetime = None;
    let mut mki = None;
    for part in parts {
        if mki.is_some() {
            // Nothing may follow the MKI.
            return Err(CryptoError::BadKeyFields);
        }
        if part.contains(':') {
            mki = Some(parse_mki(part)?);
        } else if lifetime.is_none() {
            lifetime = Some(parse_lifetime(part)?);
        } else {
            return Err(CryptoError::BadKeyFields);
        }
    }
    Ok(KeyParams {
        key_salt,
        lifetime,
        mki,
    })
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn parse_lifetime(text: &str) -> Result<u64, CryptoError> {
    let bad = || CryptoError::BadLifetime(snippet(text));
    let value = if let Some(exp) = text.strip_prefix("2^") {
        if !all_digits(exp) {
            return Err(bad());
        }
        let exp: u32 = exp.parse().map_err(|_| bad())?;
        1u64.checked_shl(exp).ok_or_else(bad)?
    } else {
        if !all_digits(text) {
            return Err(bad());
        }
        text.parse::<u64>().map_err(|_| bad())?
    };
    if value == 0 {
        return Err(bad());
    }
    Ok(value)
}

fn parse_mki(text: &str) -> Result<(u32, u8), CryptoError> {
    let bad = || CryptoError::BadMki(snippet(text));
    let (value, len) = text.split_once(':').ok_or_else(bad)?;
    if !all_digits(value) || !all_digits(len) || len.len() > 3 {
        return Err(bad());
    }
    let value: u32 = value.parse().map_err(|_| bad())?;
    let len: u8 = len.parse().map_err(|_| bad())?;
    if len == 0 || len > MAX_MKI_LEN {
        return Err(bad());
    }
    if len < 4 && u64::from(value) >= 1u64 << (8 * u32::from(len)) {
        return Err(bad());
    }
    Ok((value, len))
}

fn check_mkis(keys: &[KeyParams]) -> Result<(), CryptoError> {
    if keys.len() < 2 {
        return Ok(());
    }
    let mut seen: Vec<u32> = Vec::with_capacity(keys.len());
    let mut length = None;
    for key in keys {
        let (value, len) = key.mki.ok_or(CryptoError::MkiRequired)?;
        if *length.get_or_insert(len) != len {
            return Err(CryptoError::MkiRequired);
        }
        if seen.contains(&value) {
            return Err(CryptoError::DuplicateMki(value));
        }
        seen.push(value);
    }
    Ok(())
}

fn check_session_param(param: &str) -> Result<(), CryptoError> {
    if let Some(kdr) = param.strip_prefix("KDR=") {
        let n: u8 = if all_digits(kdr) && kdr.len() <= 2 {
            kdr.parse().map_err(|_| CryptoError::BadKdr(snippet(kdr)))?
        } else {
            return Err(CryptoError::BadKdr(snippet(kdr)));
        };
        if n > 24 {
            return Err(CryptoError::BadKdr(snippet(kdr)));
        }
        if n != 0 {
            return Err(CryptoError::UnsupportedKdr(n));
        }
    } else if let Some(wsh) = param.strip_prefix("WSH=") {
        let ok = all_digits(wsh) && wsh.len() <= 9 && wsh.parse::<u32>().is_ok_and(|n| n >= 64);
        if !ok {
            return Err(CryptoError::BadWsh(snippet(wsh)));
        }
    } else if let Some(order) = param.strip_prefix("FEC_ORDER=") {
        if order != "FEC_SRTP" && order != "SRTP_FEC" {
            return Err(CryptoError::BadFecOrder(snippet(order)));
        }
    } else if param.starts_with("FEC_KEY=") || param.starts_with("-FEC_KEY=") {
        return Err(CryptoError::FecKeyUnsupported);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 30 bytes 0x00..0x1d as base64: a valid AES_CM_128 key||salt.
    fn key30() -> String {
        base64::encode(&(0u8..30).collect::<Vec<_>>())
    }

    #[test]
    fn parses_plain_attribute() {
        let attr = CryptoAttribute::parse(
            "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4",
        )
        .unwrap();
        assert_eq!(attr.tag, 1);
        assert_eq!(
            attr.suite,
            CryptoSuiteName::Known(SrtpSuite::AesCm128HmacSha1_80)
        );
        assert_eq!(attr.keys.len(), 1);
        assert_eq!(attr.keys[0].lifetime, Some(1 << 20));
        assert_eq!(attr.keys[0].mki, Some((1, 4)));
        assert_eq!(attr.keys[0].key_salt.key().len(), 16);
        assert_eq!(attr.keys[0].key_salt.salt().len(), 14);
        assert!(attr.session_params.is_empty());
        assert!(!attr.weakens_security());
    }

    #[test]
    fn display_round_trips() {
        let k = key30();
        for text in [
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{k}|2^31|1:4"),
            format!("2 AES_CM_128_HMAC_SHA1_32 inline:{k}"),
            format!("3 AES_CM_128_HMAC_SHA1_80 inline:{k}|1000"),
            format!("4 AES_CM_128_HMAC_SHA1_80 inline:{k}|7:1"),
            format!(
                "5 AES_CM_128_HMAC_SHA1_80 inline:{k}|2^31|1:2;inline:{k}|2^31|2:2 KDR=0 WSH=128"
            ),
            format!("6 F8_128_HMAC_SHA1_80 inline:{k}"),
        ] {
            let attr = CryptoAttribute::parse(&text).unwrap();
            assert_eq!(attr.to_string(), text);
            assert_eq!(CryptoAttribute::parse(&attr.to_string()).unwrap(), attr);
        }
    }

    #[test]
    fn lifetime_forms() {
        assert_eq!(parse_lifetime("2^31"), Ok(1 << 31));
        assert_eq!(parse_lifetime("2^0"), Ok(1));
        assert_eq!(parse_lifetime("2^63"), Ok(1 << 63));
        assert_eq!(parse_lifetime("2147483648"), Ok(1 << 31));
        for bad in [
            "2^64",
            "2^",
            "0",
            "2^-1",
            "x",
            "",
            "3^4",
            "99999999999999999999999",
        ] {
            assert!(parse_lifetime(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mki_forms() {
        assert_eq!(parse_mki("1:4"), Ok((1, 4)));
        assert_eq!(parse_mki("255:1"), Ok((255, 1)));
        assert_eq!(parse_mki("4294967295:128"), Ok((u32::MAX, 128)));
        for bad in [
            "256:1",
            "1:0",
            "1:129",
            "1:",
            ":4",
            "a:4",
            "1:0004",
            "4294967296:8",
        ] {
            assert!(parse_mki(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn aead_suites_check_their_lengths() {
        let k28 = base64::encode(&[7u8; 28]);
        let k44 = base64::encode(&[7u8; 44]);
        let a = CryptoAttribute::parse(&format!("1 AEAD_AES_128_GCM inline:{k28}")).unwrap();
        assert_eq!(a.keys[0].key_salt.key().len(), 16);
        assert_eq!(a.keys[0].key_salt.salt().len(), 12);
        let b = CryptoAttribute::parse(&format!("2 AEAD_AES_256_GCM inline:{k44}")).unwrap();
        assert_eq!(b.keys[0].key_salt.key().len(), 32);
        assert_eq!(
            CryptoAttribute::parse(&format!("3 AEAD_AES_256_GCM inline:{k28}"))
                .unwrap_err()
                .to_string(),
            "inline key is 28 bytes, AEAD_AES_256_GCM needs 44"
        );
    }

    #[test]
    fn malformed_attributes_give_clear_errors() {
        let k = key30();
        let k29 = base64::encode(&[1u8; 29]);
        let cases: Vec<(String, &str)> = vec![
            ("".into(), "a=crypto has no tag"),
            ("1".into(), "a=crypto has no crypto suite"),
            ("1 AES_CM_128_HMAC_SHA1_80".into(), "a=crypto has no key parameters"),
            (format!("0 AES_CM_128_HMAC_SHA1_80 inline:{k}"), "a=crypto tag `0` is not a number in 1..=999999999"),
            (format!("1000000000 AES_CM_128_HMAC_SHA1_80 inline:{k}"), "a=crypto tag `1000000000` is not a number in 1..=999999999"),
            (format!("x AES_CM_128_HMAC_SHA1_80 inline:{k}"), "a=crypto tag `x` is not a number in 1..=999999999"),
            (format!("1 AES_CM_128_HMAC_SHA1_80 inline:{k29}"), "inline key is 29 bytes, AES_CM_128_HMAC_SHA1_80 needs 30"),
            ("1 AES_CM_128_HMAC_SHA1_80 inline:not*base64".into(), "inline key is not valid base64: invalid base64 character at position 3"),
            ("1 AES_CM_128_HMAC_SHA1_80 inline:".into(), "inline key is empty"),
            (format!("1 AES_CM_128_HMAC_SHA1_80 uri:{k}"), "a=crypto key parameter does not start with `inline:` (the only key method supported)"),
            (format!("1 AES_CM_128_HMAC_SHA1_80 inline:{k} KDR=3"), "session parameter KDR=3 is not supported (only KDR=0: no periodic key derivation)"),
            (format!("1 AES_CM_128_HMAC_SHA1_80 inline:{k} KDR=25"), "session parameter KDR=`25` is not a number in 0..=24"),
            (format!("1 AES_CM_128_HMAC_SHA1_80 inline:{k} FEC_KEY=inline:{k}"), "session parameter FEC_KEY is not supported"),
            (format!("1 AES_CM_128_HMAC_SHA1_80 inline:{k} WSH=32"), "session parameter WSH=`32` is not a window size of at least 64"),
            (format!("1 AES_CM_128_HMAC_SHA1_80 inline:{k} WSH=x"), "session parameter WSH=`x` is not a window size of at least 64"),
            (format!("1 AES_CM_128_HMAC_SHA1_80 inline:{k} FEC_ORDER=BOTH"), "session parameter FEC_ORDER=`BOTH` is neither FEC_SRTP nor SRTP_FEC"),
            (format!("1 AES_256_CM_HMAC_SHA1_80 inline:{k}"), "inline key is 30 bytes, AES_256_CM_HMAC_SHA1_80 needs 46"),
            (format!("1 AES_CM_128_HMAC_SHA1_80 inline:{k}|2^99"), "key lifetime `2^99` is not a positive decimal number or 2^n with n in 0..=63"),
            (format!("1 AES_CM_128_HMAC_SHA1_80 inline:{k}|1:4|2^31"), "inline key is followed by something other than [|lifetime][|MKI:length]"),
            (format!("1 AES_CM_128_HMAC_SHA1_80 inline:{k};inline:{k}"), "several keys in one a=crypto need an MKI on every key, all of the same length"),
            (format!("1 AES_CM_128_HMAC_SHA1_80 inline:{k}|1:4;inline:{k}|1:4"), "two keys in one a=crypto have the same MKI value 1"),
        ];
        for (text, message) in cases {
            let err = CryptoAttribute::parse(&text).expect_err(&text);
            assert_eq!(err.to_string(), message, "{text}");
            assert!(!err.to_string().contains(&k), "error leaks key: {err}");
        }
    }

    #[test]
    fn aes_256_cm_suites_parse_with_their_lengths() {
        let k46 = base64::encode(&[9u8; 46]);
        for (name, suite) in [
            ("AES_256_CM_HMAC_SHA1_80", SrtpSuite::AesCm256HmacSha1_80),
            ("AES_256_CM_HMAC_SHA1_32", SrtpSuite::AesCm256HmacSha1_32),
        ] {
            let text = format!("1 {name} inline:{k46}|2^31|3:2;inline:{k46}|4:2 WSH=256");
            let attr = CryptoAttribute::parse(&text).unwrap();
            assert_eq!(attr.known_suite(), Ok(suite));
            assert_eq!(attr.keys.len(), 2);
            assert_eq!(attr.keys[0].key_salt.key().len(), 32);
            assert_eq!(attr.keys[0].key_salt.salt().len(), 14);
            assert_eq!(attr.keys[1].mki, Some((4, 2)));
            assert_eq!(attr.to_string(), text);
        }
    }

    #[test]
    fn unknown_suite_parses_but_is_not_usable() {
        let attr = CryptoAttribute::parse(&format!(
            "9 AES_192_CM_HMAC_SHA1_80 inline:{}",
            base64::encode(&[1u8; 38])
        ))
        .unwrap();
        assert_eq!(
            attr.suite,
            CryptoSuiteName::Unknown("AES_192_CM_HMAC_SHA1_80".into())
        );
        assert_eq!(
            attr.known_suite().unwrap_err().to_string(),
            "unknown SRTP suite `AES_192_CM_HMAC_SHA1_80` (known: AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32, AES_256_CM_HMAC_SHA1_80, AES_256_CM_HMAC_SHA1_32, AEAD_AES_128_GCM, AEAD_AES_256_GCM)"
        );
    }

    #[test]
    fn session_params_are_classified() {
        let k = key30();
        for weak in [UNENCRYPTED_SRTP, UNENCRYPTED_SRTCP, UNAUTHENTICATED_SRTP] {
            let attr =
                CryptoAttribute::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{k} {weak}"))
                    .unwrap();
            assert!(attr.weakens_security(), "{weak}");
            assert!(!attr.has_unknown_mandatory_params());
            assert_eq!(
                attr.check_security().unwrap_err().to_string(),
                format!(
                    "session parameter {weak} turns off SRTP protection, which is never accepted"
                )
            );
        }
        let attr = CryptoAttribute::parse(&format!(
            "1 AES_CM_128_HMAC_SHA1_80 inline:{k} KDR=0 WSH=64 -FOO"
        ))
        .unwrap();
        assert!(!attr.weakens_security());
        assert_eq!(attr.check_security(), Ok(()));
        assert!(!attr.has_unknown_mandatory_params());
        let attr =
            CryptoAttribute::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{k} FOO=1")).unwrap();
        assert!(attr.has_unknown_mandatory_params());
    }

    #[test]
    fn generated_keys_are_fresh_and_sized() {
        for suite in SrtpSuite::ALL {
            let a = MasterKeySalt::generate(suite);
            let b = MasterKeySalt::try_generate(suite).unwrap();
            assert_eq!(a.key().len(), suite.key_len());
            assert_eq!(a.salt().len(), suite.salt_len());
            assert_ne!(a, b);
            let attr = CryptoAttribute::new(1, suite, a);
            let back = CryptoAttribute::parse(&attr.to_string()).unwrap();
            assert_eq!(back, attr);
        }
    }

    #[test]
    fn debug_and_redacted_never_show_keys() {
        let key =
            MasterKeySalt::from_bytes(SrtpSuite::AesCm128HmacSha1_80, vec![0xAB; 30]).unwrap();
        let attr = CryptoAttribute::new(7, SrtpSuite::AesCm128HmacSha1_80, key);
        let encoded = base64::encode(&[0xAB; 30]);
        let debug = format!("{attr:?} {:#?}", attr.keys[0]);
        assert!(!debug.contains(&encoded), "{debug}");
        assert!(!debug.to_lowercase().contains("ab, ab"), "{debug}");
        assert!(!debug.contains("171"), "{debug}");
        assert!(debug.contains("redacted"), "{debug}");
        let redacted = attr.redacted().to_string();
        assert_eq!(redacted, "7 AES_CM_128_HMAC_SHA1_80 inline:<redacted>");
        assert!(attr.to_string().contains(&encoded));
    }

    #[test]
    fn from_bytes_checks_length() {
        let err = MasterKeySalt::from_bytes(SrtpSuite::AeadAes128Gcm, vec![0; 30]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "inline key is 30 bytes, AEAD_AES_128_GCM needs 28"
        );
    }

    #[test]
    fn garbage_never_panics() {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b"0123456789 :|;^=/+AEKDRinlemxyz_-\t\x00\xff";
        let k = key30();
        let seed = format!("1 AES_CM_128_HMAC_SHA1_80 inline:{k}|2^31|1:4 KDR=0");
        for _ in 0..20_000 {
            let len = (next() % 80) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let _ = CryptoAttribute::parse(&String::from_utf8_lossy(&bytes));
            let mut mutated = seed.clone().into_bytes();
            for _ in 0..(next() % 4 + 1) {
                let i = (next() % mutated.len() as u64) as usize;
                mutated[i] = alphabet[(next() % alphabet.len() as u64) as usize];
            }
            let _ = CryptoAttribute::parse(&String::from_utf8_lossy(&mutated));
        }
    }
}
