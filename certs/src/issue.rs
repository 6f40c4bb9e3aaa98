//! Leaf certificate specifications ([`LeafSpec`]) and issued certificates
//! with their keys ([`Issued`]).

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rand::RngCore;
use rcgen::{ExtendedKeyUsagePurpose, SerialNumber};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroize;

use crate::error::Result;
use crate::write::{write_private, write_public};

/// Default leaf validity in days (the CA/Browser Forum's old maximum).
pub const DEFAULT_VALIDITY_DAYS: i64 = 825;

/// What to put in a leaf certificate. Build one with [`LeafSpec::new`] and
/// the `with_*` helpers, or fill the public fields directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafSpec {
    /// DNS subject alternative names; the first one is also the common name.
    pub dns_names: Vec<String>,
    /// IP address subject alternative names.
    pub ip_addresses: Vec<IpAddr>,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// Extended key usages; by default both server and client authentication,
    /// since every certificate here is used for mutual TLS in both directions.
    pub extended_key_usages: Vec<ExtendedKeyUsagePurpose>,
}

impl LeafSpec {
    /// A spec for the given DNS names, no IP addresses, valid from one day
    /// ago for [`DEFAULT_VALIDITY_DAYS`] days, for server and client auth.
    pub fn new<I, S>(dns_names: I) -> LeafSpec
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        LeafSpec {
            dns_names: dns_names.into_iter().map(Into::into).collect(),
            ip_addresses: Vec::new(),
            not_before: OffsetDateTime::now_utc(),
            not_after: OffsetDateTime::now_utc(),
            extended_key_usages: vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        }
        .valid_for_days(DEFAULT_VALIDITY_DAYS)
    }

    /// Adds one IP address subject alternative name.
    pub fn with_ip(mut self, ip: IpAddr) -> LeafSpec {
        self.ip_addresses.push(ip);
        self
    }

    /// Adds IP address subject alternative names.
    pub fn with_ips(mut self, ips: impl IntoIterator<Item = IpAddr>) -> LeafSpec {
        self.ip_addresses.extend(ips);
        self
    }

    /// Makes the certificate valid from one day ago until `days` days from now.
    pub fn valid_for_days(mut self, days: i64) -> LeafSpec {
        let now = OffsetDateTime::now_utc();
        self.not_before = now - Duration::days(1);
        self.not_after = now + Duration::days(days);
        self
    }

    /// Makes the certificate already expired: valid from 30 days ago until
    /// one day ago.
    pub fn expired(mut self) -> LeafSpec {
        let now = OffsetDateTime::now_utc();
        self.not_before = now - Duration::days(30);
        self.not_after = now - Duration::days(1);
        self
    }

    /// Replaces the extended key usages.
    pub fn with_extended_key_usages(
        mut self,
        usages: impl IntoIterator<Item = ExtendedKeyUsagePurpose>,
    ) -> LeafSpec {
        self.extended_key_usages = usages.into_iter().collect();
        self
    }
}

/// A leaf certificate and its private key, as made by [`crate::Ca::issue`].
///
/// `Debug` redacts the key, and the key text is zeroed when this is dropped.
#[derive(Clone)]
pub struct Issued {
    /// The certificate, PEM encoded.
    pub cert_pem: String,
    /// The private key (ECDSA P-256), PKCS#8 PEM encoded. Secret.
    pub key_pem: String,
    /// The certificate, DER encoded.
    pub cert_der: Vec<u8>,
    /// The certificate's serial number (16 bytes, as encoded in the certificate).
    pub serial: SerialNumber,
}

impl Issued {
    /// The certificate followed by the private key, in one PEM text (the
    /// form baresip wants).
    pub fn bundle_pem(&self) -> String {
        let mut bundle = String::with_capacity(self.cert_pem.len() + self.key_pem.len() + 1);
        bundle.push_str(&self.cert_pem);
        if !bundle.ends_with('\n') {
            bundle.push('\n');
        }
        bundle.push_str(&self.key_pem);
        bundle
    }

    /// Writes `<prefix>.pem` (mode 0644) and `<prefix>-key.pem` (mode 0600);
    /// returns the paths written. `prefix` may include directories, which
    /// must exist.
    pub fn write(&self, prefix: &Path) -> Result<Vec<PathBuf>> {
        let cert = with_suffix(prefix, ".pem");
        let key = with_suffix(prefix, "-key.pem");
        write_public(&cert, self.cert_pem.as_bytes())?;
        write_private(&key, self.key_pem.as_bytes())?;
        Ok(vec![cert, key])
    }

    /// Writes [`Issued::bundle_pem`] to `path` with mode 0600.
    pub fn write_bundle(&self, path: &Path) -> Result<()> {
        let bundle = zeroize::Zeroizing::new(self.bundle_pem());
        write_private(path, bundle.as_bytes())
    }
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued")
            .field("serial", &self.serial.to_string())
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl Zeroize for Issued {
    /// Zeroes the private key text.
    fn zeroize(&mut self) {
        self.key_pem.zeroize();
    }
}

impl Drop for Issued {
    fn drop(&mut self) {
        self.zeroize();
    }
}

/// `prefix` with `suffix` appended to its last component.
fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// A random, positive, 16-byte serial number: the top bit is cleared (so
/// DER needs no sign byte) and the first byte is never zero (so DER keeps
/// all 16 bytes and the serial reads back byte-for-byte).
pub(crate) fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes[0] &= 0x7f;
    if bytes[0] == 0 {
        bytes[0] = 0x01;
    }
    SerialNumber::from_slice(&bytes)
}
