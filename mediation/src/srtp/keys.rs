//! SRTP master keys: the key and salt of one suite (RFC 3711 §8.2), drawn from the OS CSPRNG,
//! never printed, and overwritten with zeros when dropped.

use std::fmt;
use std::num::NonZeroU64;

use rand::rngs::OsRng;
use rand::RngCore;
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use super::SrtpSuite;

/// A master key and master salt for one suite, stored as `key || salt` (the order SDES inline
/// keys use, RFC 4568 §6.1).
///
/// The bytes live on the heap so moving a `MasterKey` does not leave copies behind, and are
/// zeroed on drop. `Debug` shows the suite, never the bytes.
#[derive(Clone)]
pub struct MasterKey {
    suite: SrtpSuite,
    material: Box<[u8]>,
    /// Kept beside the suite so a `MasterKey` stays small (it travels in call commands).
    mki: Option<Mki>,
    /// The `a=crypto` key lifetime (RFC 4568 §6.1): packets this key may protect, each of SRTP
    /// and SRTCP. `None`: RFC 3711's limits only.
    lifetime: Option<NonZeroU64>,
}

/// A master key identifier (RFC 3711 §3.1): the bytes every SRTP and SRTCP packet under the key
/// carries, so a receiver knows which key to use. We take 1 to 4 bytes (an `a=crypto`
/// `|<value>:<length>` with a length of 1..=4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mki {
    bytes: [u8; 4],
    len: u8,
}

impl Mki {
    /// The largest MKI length we support, in bytes.
    pub(crate) const MAX_LEN: u8 = 4;

    /// The MKI `value` written on `len` bytes, big-endian (RFC 4568 §6.1). `None` if `len`
    /// is not 1..=4 or `value` does not fit.
    pub fn new(value: u32, len: u8) -> Option<Self> {
        if !(1..=Self::MAX_LEN).contains(&len) {
            return None;
        }
        if len < 4 && u64::from(value) >= 1u64 << (8 * u32::from(len)) {
            return None;
        }
        let all = value.to_be_bytes();
        let mut bytes = [0u8; 4];
        bytes[..usize::from(len)].copy_from_slice(&all[4 - usize::from(len)..]);
        Some(Self { bytes, len })
    }

    /// The bytes as on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The value.
    #[cfg(test)]
    pub(crate) fn value(&self) -> u32 {
        self.as_bytes()
            .iter()
            .fold(0u32, |v, b| (v << 8) | u32::from(*b))
    }
}

/// Why a master key could not be made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The bytes given are not exactly key length + salt length for the suite.
    #[error("{suite} needs {expected} bytes of master key and salt, got {got}")]
    Length {
        /// The suite the key was meant for.
        suite: SrtpSuite,
        /// Key length + salt length of that suite.
        expected: usize,
        /// What was given.
        got: usize,
    },
    /// The operating system's random number generator failed.
    #[error("the OS random number generator failed: {0}")]
    Rng(#[from] rand::Error),
}

impl MasterKey {
    /// Fresh key material for `suite` from the operating system's CSPRNG (docs/design.md §2: fresh
    /// keys per leg and per call).
    pub fn generate(suite: SrtpSuite) -> Result<Self, KeyError> {
        let mut material = vec![0u8; material_len(suite)].into_boxed_slice();
        OsRng.try_fill_bytes(&mut material)?;
        Ok(Self {
            suite,
            material,
            mki: None,
            lifetime: None,
        })
    }

    /// A key received from a peer (decoded SDES `inline:` bytes): `key || salt`, exactly
    /// [`SrtpSuite::key_len`] + [`SrtpSuite::salt_len`] bytes.
    pub fn from_bytes(suite: SrtpSuite, key_and_salt: &[u8]) -> Result<Self, KeyError> {
        let expected = material_len(suite);
        if key_and_salt.len() != expected {
            return Err(KeyError::Length {
                suite,
                expected,
                got: key_and_salt.len(),
            });
        }
        Ok(Self {
            suite,
            material: key_and_salt.into(),
            mki: None,
            lifetime: None,
        })
    }

    /// The same key, carrying `mki` in every packet it protects and expecting it in every
    /// packet it unprotects.
    pub fn with_mki(mut self, mki: Mki) -> Self {
        self.mki = Some(mki);
        self
    }

    /// The same key, good for at most `packets` SRTP and `packets` SRTCP packets (an `a=crypto`
    /// lifetime such as `|2^31`): contexts made from it refuse more, sending or receiving, with
    /// [`SrtpError::KeyExhausted`](super::SrtpError::KeyExhausted).
    /// A lifetime of 0 (which `a=crypto` parsing never yields) is taken as 1.
    pub(crate) fn with_lifetime(mut self, packets: u64) -> Self {
        self.lifetime = Some(NonZeroU64::new(packets).unwrap_or(NonZeroU64::MIN));
        self
    }

    /// The key lifetime in packets, if the key has one.
    pub fn lifetime(&self) -> Option<u64> {
        self.lifetime.map(NonZeroU64::get)
    }

    /// The master key identifier, if the key has one.
    pub fn mki(&self) -> Option<Mki> {
        self.mki
    }

    /// The suite this key is for.
    pub fn suite(&self) -> SrtpSuite {
        self.suite
    }

    /// The master key.
    pub fn key(&self) -> &[u8] {
        &self.material[..self.suite.key_len()]
    }

    /// The master salt.
    pub fn salt(&self) -> &[u8] {
        &self.material[self.suite.key_len()..]
    }

    /// `key || salt`, what SDES base64-encodes into `inline:`. Secret: never log it.
    pub fn key_and_salt(&self) -> &[u8] {
        &self.material
    }

    /// The same key: suite, key and salt (compared in constant time), MKI and lifetime. A
    /// context under the same key must go on, never start again (RFC 3711 §9.1: a key with a
    /// reset rollover counter protects the same indices twice).
    pub(crate) fn same_key(&self, other: &MasterKey) -> bool {
        self.suite == other.suite
            && self.mki == other.mki
            && self.lifetime == other.lifetime
            && bool::from(self.material.ct_eq(&other.material))
    }
}

fn material_len(suite: SrtpSuite) -> usize {
    suite.key_len() + suite.salt_len()
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.material.zeroize();
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("suite", &self.suite)
            .field(
                "material",
                &format_args!("<redacted {} bytes>", self.material.len()),
            )
            .field("mki", &self.mki.map(|m| m.as_bytes().len()))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_key_compares_every_part() {
        let suite = SrtpSuite::AesCm128HmacSha1_80;
        let a = MasterKey::generate(suite).unwrap();
        assert!(a.same_key(&a.clone()));
        assert!(!a.same_key(&MasterKey::generate(suite).unwrap()));
        assert!(!a.same_key(&a.clone().with_mki(Mki::new(1, 1).unwrap())));
        assert!(!a.same_key(&a.clone().with_lifetime(1 << 20)));
        let gcm = SrtpSuite::AeadAes128Gcm;
        let b = MasterKey::generate(gcm).unwrap();
        let same_bytes = MasterKey::from_bytes(gcm, b.key_and_salt()).unwrap();
        assert!(b.same_key(&same_bytes));
    }

    #[test]
    fn generated_keys_have_the_suite_lengths_and_differ() {
        for suite in SrtpSuite::ALL {
            let a = MasterKey::generate(suite).unwrap();
            let b = MasterKey::generate(suite).unwrap();
            assert_eq!(a.key().len(), suite.key_len());
            assert_eq!(a.salt().len(), suite.salt_len());
            assert_ne!(
                a.key_and_salt(),
                b.key_and_salt(),
                "{suite}: two equal random keys"
            );
        }
    }

    #[test]
    fn from_bytes_checks_the_length() {
        let bytes = [7u8; 48];
        for suite in SrtpSuite::ALL {
            let n = suite.key_len() + suite.salt_len();
            let key = MasterKey::from_bytes(suite, &bytes[..n]).unwrap();
            assert_eq!(key.key_and_salt(), &bytes[..n]);
            for wrong in [0, n - 1, n + 1] {
                match MasterKey::from_bytes(suite, &bytes[..wrong]) {
                    Err(KeyError::Length { expected, got, .. }) => {
                        assert_eq!((expected, got), (n, wrong), "{suite}");
                    }
                    other => panic!("{suite}: {wrong} bytes gave {other:?}"),
                }
            }
        }
    }

    #[test]
    fn key_and_salt_split_where_the_suite_says() {
        let bytes: Vec<u8> = (0..30).collect();
        let key = MasterKey::from_bytes(SrtpSuite::AesCm128HmacSha1_80, &bytes).unwrap();
        assert_eq!(key.key(), &bytes[..16]);
        assert_eq!(key.salt(), &bytes[16..]);
    }

    #[test]
    fn a_master_key_stays_four_words() {
        assert_eq!(
            std::mem::size_of::<MasterKey>(),
            4 * std::mem::size_of::<usize>()
        );
    }

    #[test]
    fn mkis_are_one_to_four_bytes_big_endian() {
        assert_eq!(Mki::new(1, 4).unwrap().as_bytes(), &[0, 0, 0, 1]);
        assert_eq!(Mki::new(0x0102, 2).unwrap().as_bytes(), &[1, 2]);
        assert_eq!(Mki::new(255, 1).unwrap().value(), 255);
        assert_eq!(Mki::new(u32::MAX, 4).unwrap().value(), u32::MAX);
        assert!(Mki::new(256, 1).is_none());
        assert!(Mki::new(1, 0).is_none());
        assert!(Mki::new(1, 5).is_none());
    }

    #[test]
    fn debug_never_shows_key_bytes() {
        let key = MasterKey::from_bytes(SrtpSuite::AeadAes128Gcm, &[0xAB; 28]).unwrap();
        let shown = format!("{key:?} {key:#?}");
        assert!(shown.contains("redacted"), "{shown}");
        assert!(shown.contains("AeadAes128Gcm"), "{shown}");
        for needle in ["171", "ab", "AB", "0xab"] {
            assert!(!shown.contains(needle), "{shown} shows key bytes");
        }
    }
}
