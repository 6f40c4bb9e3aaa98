//! TLS for the simulator's SIP connections, built on `mediation::tls`: the answering side
//! requires and verifies a client certificate (MTLS); the calling side verifies the far end and
//! presents its certificate, or withholds one when none is given (to test refusals).

use std::path::Path;
use std::sync::Arc;

use mediation::config::TlsVersion;
use mediation::tls::{client_config, crypto_provider, server_config, TlsMaterial};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::error::SimError;
use crate::options::TlsFiles;

fn read(path: &Path, what: &str) -> Result<Vec<u8>, SimError> {
    std::fs::read(path)
        .map_err(|e| SimError::Tls(format!("{what} {}: cannot read: {e}", path.display())))
}

fn material(files: &TlsFiles, cert: &Path, key: &Path) -> Result<TlsMaterial, SimError> {
    let cert_pem = read(cert, "--cert")?;
    let key_pem = read(key, "--key")?;
    let ca_pem = read(&files.ca, "--ca")?;
    TlsMaterial::from_pem(
        (&cert.display().to_string(), &cert_pem),
        (&key.display().to_string(), &key_pem),
        (&files.ca.display().to_string(), &ca_pem),
        &[],
    )
    .map_err(|e| SimError::Tls(e.to_string()))
}

/// The server side: MTLS with `mediation::tls::server_config` (TLS 1.2 and 1.3).
pub(crate) fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, SimError> {
    let (Some(cert), Some(key)) = (&files.cert, &files.key) else {
        return Err(SimError::Tls(
            "answering over TLS needs --cert and --key".into(),
        ));
    };
    let material = material(files, cert, key)?;
    let config = server_config(&material, TlsVersion::Tls12, false)
        .map_err(|e| SimError::Tls(e.to_string()))?;
    Ok(TlsAcceptor::from(config))
}

/// The client side: `mediation::tls::client_config` with our certificate, or a verifying
/// client without one when `cert`/`key` are not given.
pub(crate) fn connector(files: &TlsFiles) -> Result<TlsConnector, SimError> {
    match (&files.cert, &files.key) {
        (Some(cert), Some(key)) => {
            let material = material(files, cert, key)?;
            let config = client_config(&material, TlsVersion::Tls12, false)
                .map_err(|e| SimError::Tls(e.to_string()))?;
            Ok(TlsConnector::from(config))
        }
        (None, None) => {
            let ca_pem = read(&files.ca, "--ca")?;
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&ca_pem) {
                let cert = cert.map_err(|e| {
                    SimError::Tls(format!("--ca {}: not PEM: {e}", files.ca.display()))
                })?;
                roots.add(cert).map_err(|e| {
                    SimError::Tls(format!("--ca {}: unusable CA: {e}", files.ca.display()))
                })?;
            }
            if roots.is_empty() {
                return Err(SimError::Tls(format!(
                    "--ca {}: holds no certificate",
                    files.ca.display()
                )));
            }
            let config = rustls::ClientConfig::builder_with_provider(crypto_provider(false))
                .with_safe_default_protocol_versions()
                .map_err(|e| SimError::Tls(e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(TlsConnector::from(Arc::new(config)))
        }
        _ => Err(SimError::Tls(
            "--cert and --key go together (give both, or neither to withhold a certificate)".into(),
        )),
    }
}

/// The name to verify the far end's certificate against: a DNS name or an IP address.
pub(crate) fn server_name(name: &str) -> Result<ServerName<'static>, SimError> {
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_string())
        .map_err(|e| SimError::Options(format!("server name `{name}`: {e}")))
}
