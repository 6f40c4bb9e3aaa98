//! rustls configurations: the server side requires a client certificate chaining to a trusted
//! CA and not revoked; the client side presents ours and verifies the peer's. TLS 1.2 and 1.3
//! only (RFC 8996).
//!
//! FIPS: with `[tls] fips = true` both sides are built on a provider that offers only FIPS 140
//! approved algorithms (AES-GCM suites, ECDHE over P-256/P-384: no ChaCha20, no X25519), and
//! that provider must be a validated module. Built with the `fips` cargo feature, it is
//! aws-lc-rs's FIPS 140-3 module (`rustls::crypto::default_fips_provider`), and rustls then
//! also requires the extended master secret on TLS 1.2. A build without the feature has no
//! validated module: [`server_config`] and [`client_config`] refuse `fips = true`
//! ([`FIPS_UNAVAILABLE`]) rather than run unvalidated code under a FIPS label. Without
//! `fips`, the provider is ring with its defaults.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::version::{TLS12, TLS13};
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};

use super::TlsMaterial;
use crate::config::TlsVersion;

/// Material that rustls would not accept (a key that does not match, a CA it cannot parse), or
/// `fips = true` in a build that has no validated module.
#[derive(Debug, thiserror::Error)]
#[error("TLS configuration refused: {0}")]
pub struct TlsConfigError(String);

/// Whether this binary carries a FIPS 140-3 validated cryptographic module (built with the
/// `fips` cargo feature).
pub(super) const FIPS_MODULE: bool = cfg!(feature = "fips");

/// Why a build without the `fips` feature refuses `[tls] fips = true`.
pub(super) const FIPS_UNAVAILABLE: &str =
    "tls.fips = true needs a FIPS 140-3 validated cryptographic \
     module and this binary has none: it must be built with `--features fips` \
     (`cargo build --release -p mediation --features fips`, which needs cmake, Go and clang)";

/// The TLS 1.3 and TLS 1.2 cipher suites FIPS mode keeps: AES-GCM with ECDHE.
const FIPS_SUITES: [rustls::CipherSuite; 6] = [
    rustls::CipherSuite::TLS13_AES_128_GCM_SHA256,
    rustls::CipherSuite::TLS13_AES_256_GCM_SHA384,
    rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
];

/// The key exchange groups FIPS mode keeps: ECDHE over P-256 and P-384.
const FIPS_GROUPS: [rustls::NamedGroup; 2] =
    [rustls::NamedGroup::secp256r1, rustls::NamedGroup::secp384r1];

/// The crypto provider. Without `fips`: ring with its defaults. With `fips`: the FIPS base
/// provider (aws-lc-rs's validated module under the `fips` feature; otherwise ring, which is
/// *not* validated and which [`server_config`] and [`client_config`] therefore refuse), cut down
/// to AES-GCM suites and P-256/P-384 key exchange.
pub fn crypto_provider(fips: bool) -> Arc<CryptoProvider> {
    if !fips {
        return Arc::new(rustls::crypto::ring::default_provider());
    }
    let mut provider = fips_base_provider();
    provider
        .cipher_suites
        .retain(|s| FIPS_SUITES.contains(&s.suite()));
    provider
        .kx_groups
        .retain(|g| FIPS_GROUPS.contains(&g.name()));
    Arc::new(provider)
}

/// The provider FIPS mode starts from: the validated aws-lc-rs module.
#[cfg(feature = "fips")]
fn fips_base_provider() -> CryptoProvider {
    rustls::crypto::default_fips_provider()
}

/// The provider FIPS mode starts from in a build without a validated module: ring (refused by
/// [`checked_provider`]; kept so that [`crypto_provider`] stays total).
#[cfg(not(feature = "fips"))]
fn fips_base_provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The provider for a configuration, refusing `fips` where this build has no validated module.
fn checked_provider(fips: bool) -> Result<Arc<CryptoProvider>, TlsConfigError> {
    if fips && !FIPS_MODULE {
        return Err(TlsConfigError(FIPS_UNAVAILABLE.into()));
    }
    Ok(crypto_provider(fips))
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
    let provider = checked_provider(fips)?;
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
    let provider = checked_provider(fips)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::{CipherSuite, NamedGroup};
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};

    fn material() -> TlsMaterial {
        let ca = certs::Ca::new("FIPS Test CA").unwrap();
        let leaf = ca
            .issue(&certs::LeafSpec::new(["mediation.example.test"]))
            .unwrap();
        TlsMaterial {
            chain: vec![CertificateDer::from(leaf.cert_der.clone())],
            key: PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap(),
            roots: vec![CertificateDer::from(ca.cert_der().to_vec())],
            crls: Vec::new(),
        }
    }

    fn suites(p: &CryptoProvider) -> Vec<CipherSuite> {
        p.cipher_suites.iter().map(|s| s.suite()).collect()
    }

    fn groups(p: &CryptoProvider) -> Vec<NamedGroup> {
        p.kx_groups.iter().map(|g| g.name()).collect()
    }

    #[test]
    fn without_fips_the_provider_is_ring_with_its_defaults() {
        let p = crypto_provider(false);
        let ring = rustls::crypto::ring::default_provider();
        assert_eq!(suites(&p), suites(&ring));
        assert_eq!(groups(&p), groups(&ring));
        assert!(suites(&p).contains(&CipherSuite::TLS13_CHACHA20_POLY1305_SHA256));
        assert!(groups(&p).contains(&NamedGroup::X25519));
    }

    #[test]
    fn fips_provider_keeps_only_aes_gcm_and_p256_p384() {
        let p = crypto_provider(true);
        let s = suites(&p);
        assert!(s.iter().all(|s| FIPS_SUITES.contains(s)), "{s:?}");
        assert!(s.contains(&CipherSuite::TLS13_AES_128_GCM_SHA256), "{s:?}");
        assert!(s.contains(&CipherSuite::TLS13_AES_256_GCM_SHA384), "{s:?}");
        assert!(
            s.contains(&CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
            "{s:?}"
        );
        assert!(!s.iter().any(|s| format!("{s:?}").contains("CHACHA20")));
        let g = groups(&p);
        assert!(!g.is_empty());
        assert!(g.iter().all(|g| FIPS_GROUPS.contains(g)), "{g:?}");
        assert!(!g.contains(&NamedGroup::X25519));
    }

    #[test]
    fn non_fips_configurations_are_built_and_are_not_fips() {
        let m = material();
        let server = server_config(&m, TlsVersion::Tls12, false).unwrap();
        let client = client_config(&m, TlsVersion::Tls12, false).unwrap();
        assert!(!server.fips());
        assert!(!client.fips());
    }

    #[cfg(not(feature = "fips"))]
    #[test]
    fn without_the_feature_fips_is_refused_with_how_to_build() {
        const { assert!(!FIPS_MODULE) };
        let m = material();
        for min in [TlsVersion::Tls12, TlsVersion::Tls13] {
            let e = server_config(&m, min, true).unwrap_err().to_string();
            assert!(e.contains("--features fips"), "{e}");
            assert!(e.contains("tls.fips"), "{e}");
            let e = client_config(&m, min, true).unwrap_err().to_string();
            assert!(e.contains("--features fips"), "{e}");
        }
        // The unvalidated fallback that `crypto_provider(true)` returns is not FIPS to rustls.
        assert!(!crypto_provider(true).fips());
    }

    #[cfg(feature = "fips")]
    #[test]
    fn with_the_feature_fips_runs_on_the_validated_module() {
        const { assert!(FIPS_MODULE) };
        assert!(crypto_provider(true).fips());
        let m = material();
        for min in [TlsVersion::Tls12, TlsVersion::Tls13] {
            let server = server_config(&m, min, true).unwrap();
            let client = client_config(&m, min, true).unwrap();
            assert!(server.fips(), "server config is not FIPS ({min:?})");
            assert!(client.fips(), "client config is not FIPS ({min:?})");
        }
    }
}
