//! rustls configurations: the server side requires a client certificate chaining to a trusted
//! CA and not revoked; the client side presents ours and verifies the peer's. TLS 1.2 and 1.3
//! only (RFC 8996); `fips` keeps only FIPS 140 approved suites and groups.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::version::{TLS12, TLS13};
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};

use super::TlsMaterial;
use crate::config::TlsVersion;

/// Material that rustls would not accept (a key that does not match, a CA it cannot parse).
#[derive(Debug, thiserror::Error)]
#[error("TLS configuration refused: {0}")]
pub struct TlsConfigError(String);

/// The crypto provider: ring, restricted to FIPS approved algorithms when `fips` is set
/// (AES-GCM suites; P-256/P-384 key exchange: no ChaCha20, no X25519).
pub fn crypto_provider(fips: bool) -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    if fips {
        use rustls::CipherSuite as S;
        provider.cipher_suites.retain(|s| {
            matches!(
                s.suite(),
                S::TLS13_AES_128_GCM_SHA256
                    | S::TLS13_AES_256_GCM_SHA384
                    | S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                    | S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
                    | S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
                    | S::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
            )
        });
        provider.kx_groups.retain(|g| {
            matches!(
                g.name(),
                rustls::NamedGroup::secp256r1 | rustls::NamedGroup::secp384r1
            )
        });
    }
    Arc::new(provider)
}

static TLS12_AND_UP: [&SupportedProtocolVersion; 2] = [&TLS13, &TLS12];
static TLS13_ONLY: [&SupportedProtocolVersion; 1] = [&TLS13];

fn versions(min: TlsVersion) -> &'static [&'static SupportedProtocolVersion] {
    match min {
        TlsVersion::Tls12 => &TLS12_AND_UP,
        TlsVersion::Tls13 => &TLS13_ONLY,
    }
}

fn roots(material: &TlsMaterial) -> Result<Arc<RootCertStore>, TlsConfigError> {
    let mut store = RootCertStore::empty();
    for ca in &material.roots {
        store.add(ca.clone()).map_err(|e| {
            TlsConfigError(format!("tls.trusted_cas: unusable CA certificate: {e}"))
        })?;
    }
    Ok(Arc::new(store))
}

/// The server side of every listener: MTLS, client certificate required.
pub fn server_config(
    material: &TlsMaterial,
    min: TlsVersion,
    fips: bool,
) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let provider = crypto_provider(fips);
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(material)?, provider.clone())
        .with_crls(material.crls.iter().cloned())
        // Revocation is checked for the peer's own certificate; a CA that publishes no CRL
        // here is not a reason to refuse everyone it certified.
        .only_check_end_entity_revocation()
        .allow_unknown_revocation_status()
        .build()
        .map_err(|e| TlsConfigError(format!("client verifier: {e}")))?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions(min))
        .map_err(|e| TlsConfigError(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(material.chain.clone(), material.key.clone_key())
        .map_err(|e| TlsConfigError(format!("tls.certificate / tls.private_key: {e}")))?;
    Ok(Arc::new(config))
}

/// The client side, for calls we place: presents our certificate, verifies the peer's chain,
/// revocation and name.
pub fn client_config(
    material: &TlsMaterial,
    min: TlsVersion,
    fips: bool,
) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let provider = crypto_provider(fips);
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        roots(material)?,
        provider.clone(),
    )
    .with_crls(material.crls.iter().cloned())
    .only_check_end_entity_revocation()
    .allow_unknown_revocation_status()
    .build()
    .map_err(|e| TlsConfigError(format!("server verifier: {e}")))?;
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions(min))
        .map_err(|e| TlsConfigError(e.to_string()))?
        .with_webpki_verifier(verifier)
        .with_client_auth_cert(material.chain.clone(), material.key.clone_key())
        .map_err(|e| TlsConfigError(format!("tls.certificate / tls.private_key: {e}")))?;
    Ok(Arc::new(config))
}
