//! Certificate material read from PEM: our chain and key, the trusted CAs and the CRLs.
//! Loaded once at start-up (and on reload); a bad file is refused with the field that named it.

use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use crate::config::TlsConfig;

/// Everything TLS needs from files.
#[derive(Debug)]
pub struct TlsMaterial {
    /// Our certificate chain, end entity first.
    pub(crate) chain: Vec<CertificateDer<'static>>,
    /// Our private key.
    pub(crate) key: PrivateKeyDer<'static>,
    /// CAs whose peers we trust.
    pub(crate) roots: Vec<CertificateDer<'static>>,
    /// Revocation lists checked for peer certificates.
    pub(crate) crls: Vec<CertificateRevocationListDer<'static>>,
}

/// A certificate, key or CRL file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {path}: {problem}")]
pub struct MaterialError {
    /// The configuration field that names the file, e.g. `tls.certificate`.
    pub(crate) field: String,
    /// The file.
    pub(crate) path: String,
    /// What is wrong.
    pub(crate) problem: String,
}

impl TlsMaterial {
    /// Reads the files named by `[tls]`.
    pub fn load(cfg: &TlsConfig) -> Result<Self, MaterialError> {
        let crls = cfg
            .crls
            .iter()
            .enumerate()
            .map(|(i, p)| read(&format!("tls.crls[{i}]"), p))
            .collect::<Result<Vec<_>, _>>()?;
        let crl_refs: Vec<(&str, &[u8])> = cfg
            .crls
            .iter()
            .zip(&crls)
            .map(|(p, pem)| (p.to_str().unwrap_or("crl"), pem.as_slice()))
            .collect();
        Self::from_pem(
            (
                &cfg.certificate.display().to_string(),
                &read("tls.certificate", &cfg.certificate)?,
            ),
            (
                &cfg.private_key.display().to_string(),
                &read("tls.private_key", &cfg.private_key)?,
            ),
            (
                &cfg.trusted_cas.display().to_string(),
                &read("tls.trusted_cas", &cfg.trusted_cas)?,
            ),
            &crl_refs,
        )
    }

    /// Builds material from PEM text, each given with the name it is reported under.
    pub fn from_pem(
        chain: (&str, &[u8]),
        key: (&str, &[u8]),
        roots: (&str, &[u8]),
        crls: &[(&str, &[u8])],
    ) -> Result<Self, MaterialError> {
        let err = |field: &str, path: &str, problem: String| MaterialError {
            field: field.into(),
            path: path.into(),
            problem,
        };
        let certs = |field: &str, (path, pem): (&str, &[u8])| {
            let list = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| err(field, path, format!("not PEM certificates: {e}")))?;
            if list.is_empty() {
                return Err(err(field, path, "holds no PEM certificate".into()));
            }
            Ok(list)
        };
        let chain_v = certs("tls.certificate", chain)?;
        let roots_v = certs("tls.trusted_cas", roots)?;
        let key_v = PrivateKeyDer::from_pem_slice(key.1).map_err(|e| {
            err(
                "tls.private_key",
                key.0,
                format!("no usable PEM private key: {e}"),
            )
        })?;
        let mut crls_v = Vec::new();
        for (i, (path, pem)) in crls.iter().enumerate() {
            let field = format!("tls.crls[{i}]");
            let list = CertificateRevocationListDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| err(&field, path, format!("not a PEM CRL: {e}")))?;
            if list.is_empty() {
                return Err(err(&field, path, "holds no PEM CRL".into()));
            }
            crls_v.extend(list);
        }
        Ok(Self {
            chain: chain_v,
            key: key_v,
            roots: roots_v,
            crls: crls_v,
        })
    }
}

fn read(field: &str, path: &Path) -> Result<Vec<u8>, MaterialError> {
    std::fs::read(path).map_err(|e| MaterialError {
        field: field.into(),
        path: path.display().to_string(),
        problem: format!("cannot read: {e}"),
    })
}
