//! The lab certificate authority: creation, loading from PEM files, and
//! signing of leaf certificates and CRLs.

use std::fmt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, CertificateRevocationListParams, DnType,
    IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams, SanType,
    SerialNumber,
};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::{Error, Result};
use crate::issue::{random_serial, Issued, LeafSpec};
use crate::write::{write_private, write_public};

/// How long a freshly made CA is valid.
const CA_VALIDITY_DAYS: i64 = 3650;

/// A lab certificate authority: a self-signed CA certificate and its private key.
///
/// The certificate has `basicConstraints: cA=TRUE, pathLen=0` and key usages
/// `keyCertSign`, `cRLSign` and `digitalSignature`; the key is ECDSA P-256.
pub struct Ca {
    /// rcgen's issuer object. For a loaded CA this is a re-signed copy of
    /// the certificate on disk (same name, key and key identifier).
    cert: Certificate,
    key: KeyPair,
    /// The certificate as it should be distributed (for a loaded CA: the
    /// original file contents, not rcgen's re-signed copy).
    cert_pem: String,
    cert_der: Vec<u8>,
    common_name: String,
}

impl Ca {
    /// Creates a fresh CA with the given common name, valid from one day ago
    /// for ten years.
    pub fn new(common_name: &str) -> Result<Ca> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(random_serial());
        params.key_identifier_method = KeyIdMethod::Sha256;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(CA_VALIDITY_DAYS);
        let cert = params.self_signed(&key)?;
        Ok(Ca {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            cert,
            key,
            common_name: common_name.to_owned(),
        })
    }

    /// Loads a CA from PEM text: the CA certificate and its private key.
    ///
    /// `cert_what` and `key_what` name the inputs in error messages (file
    /// names, typically).
    pub fn from_pem(cert_pem: &str, key_pem: &str, cert_what: &str, key_what: &str) -> Result<Ca> {
        let bad_cert = |reason: String| Error::BadCertificate {
            what: cert_what.to_owned(),
            reason,
        };
        let key = KeyPair::from_pem(key_pem).map_err(|error| Error::BadKey {
            what: key_what.to_owned(),
            error,
        })?;
        let params =
            CertificateParams::from_ca_cert_pem(cert_pem).map_err(|e| bad_cert(e.to_string()))?;
        if !matches!(params.is_ca, IsCa::Ca(_)) {
            return Err(Error::NotACa(cert_what.to_owned()));
        }
        let cert_der = crate::inspect::pem_to_der(cert_pem).map_err(bad_cert)?;
        let (_, x509) = X509Certificate::from_der(&cert_der)
            .map_err(|e| bad_cert(format!("cannot parse DER: {e}")))?;
        if x509.public_key().raw != key.public_key_der().as_slice() {
            return Err(Error::KeyMismatch {
                cert: cert_what.to_owned(),
                key: key_what.to_owned(),
            });
        }
        let common_name = x509
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or_default()
            .to_owned();
        // rcgen 0.13 can only sign with a `Certificate` object; re-self-sign
        // the parsed parameters with the loaded key to get one. Subject,
        // key and subject key identifier are identical to the original, so
        // anything it signs chains to the certificate on disk.
        let cert = params.self_signed(&key)?;
        Ok(Ca {
            cert,
            key,
            cert_pem: cert_pem.to_owned(),
            cert_der,
            common_name,
        })
    }

    /// Loads a CA from a certificate file and a private key file (both PEM).
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Ca> {
        let cert_pem = read_to_string(cert_path)?;
        let key_pem = read_to_string(key_path)?;
        Ca::from_pem(
            &cert_pem,
            &key_pem,
            &cert_path.display().to_string(),
            &key_path.display().to_string(),
        )
    }

    /// Loads `ca.pem` and `ca-key.pem` from `dir`.
    pub fn load_dir(dir: &Path) -> Result<Ca> {
        Ca::load(&dir.join(crate::files::CA), &dir.join(crate::files::CA_KEY))
    }

    /// The CA's common name.
    pub fn common_name(&self) -> &str {
        &self.common_name
    }

    /// The CA certificate, PEM encoded.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER encoded.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The CA private key, PKCS#8 PEM encoded.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// The CA's subject public key info, DER encoded.
    pub fn public_key_der(&self) -> Vec<u8> {
        self.key.public_key_der()
    }

    /// Issues a leaf certificate described by `spec`, with a fresh key pair
    /// and a random serial number.
    pub fn issue(&self, spec: &LeafSpec) -> Result<Issued> {
        if spec.not_after <= spec.not_before {
            return Err(Error::BadValidity {
                not_before: spec.not_before,
                not_after: spec.not_after,
            });
        }
        let common_name = match (spec.dns_names.first(), spec.ip_addresses.first()) {
            (Some(dns), _) => dns.clone(),
            (None, Some(ip)) => ip.to_string(),
            (None, None) => return Err(Error::NoNames),
        };
        let mut sans = Vec::with_capacity(spec.dns_names.len() + spec.ip_addresses.len());
        for name in &spec.dns_names {
            let ia5 = name.clone().try_into().map_err(|error| Error::BadDnsName {
                name: name.clone(),
                error,
            })?;
            sans.push(SanType::DnsName(ia5));
        }
        sans.extend(spec.ip_addresses.iter().copied().map(SanType::IpAddress));

        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = spec.extended_key_usages.clone();
        params.not_before = spec.not_before;
        params.not_after = spec.not_after;
        params.use_authority_key_identifier_extension = true;
        let serial = random_serial();
        params.serial_number = Some(serial.clone());

        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().to_vec(),
            serial,
        })
    }

    /// Makes a PEM encoded CRL, signed by this CA, revoking `revoked_serials`
    /// (reason `keyCompromise`, revoked one hour ago). The CRL's
    /// `thisUpdate` is one hour ago, `nextUpdate` 30 days ahead, and its CRL
    /// number is 1.
    pub fn crl(&self, revoked_serials: &[SerialNumber]) -> Result<String> {
        let now = OffsetDateTime::now_utc();
        let this_update = now - Duration::hours(1);
        let params = CertificateRevocationListParams {
            this_update,
            next_update: now + Duration::days(30),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked_serials
                .iter()
                .map(|serial| RevokedCertParams {
                    serial_number: serial.clone(),
                    revocation_time: this_update,
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: self.cert.params().key_identifier_method.clone(),
        };
        Ok(params.signed_by(&self.cert, &self.key)?.pem()?)
    }

    /// Tells whether `cert_pem` (a PEM certificate) was issued by this CA:
    /// its issuer name is this CA's subject and its signature verifies with
    /// this CA's key.
    pub fn is_issuer_of(&self, cert_pem: &str) -> Result<bool> {
        let bad = |reason: String| Error::BadCertificate {
            what: "(to check against the CA)".to_owned(),
            reason,
        };
        let der = crate::inspect::pem_to_der(cert_pem).map_err(bad)?;
        let (_, leaf) =
            X509Certificate::from_der(&der).map_err(|e| bad(format!("cannot parse DER: {e}")))?;
        let (_, ca) = X509Certificate::from_der(&self.cert_der)
            .map_err(|e| bad(format!("cannot parse CA DER: {e}")))?;
        Ok(leaf.issuer().as_raw() == ca.subject().as_raw()
            && leaf.verify_signature(Some(ca.public_key())).is_ok())
    }

    /// Writes the certificate to `dir/<stem>.pem` (mode 0644) and the key to
    /// `dir/<stem>-key.pem` (mode 0600); returns the paths written.
    pub fn write_to(&self, dir: &Path, stem: &str) -> Result<Vec<PathBuf>> {
        let cert = dir.join(format!("{stem}.pem"));
        let key = dir.join(format!("{stem}-key.pem"));
        write_public(&cert, self.cert_pem.as_bytes())?;
        write_private(&key, zeroize::Zeroizing::new(self.key_pem()).as_bytes())?;
        Ok(vec![cert, key])
    }
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("common_name", &self.common_name)
            .field("key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

fn read_to_string(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|error| Error::Read {
        path: path.to_owned(),
        error,
    })
}
