//! FIPS mode (`[tls] fips = true`) end to end. A build without the `fips` cargo feature has no
//! validated module and must refuse to start, saying how to build one. A build with it
//! (`cargo test -p mediation --features fips --test fips`) starts on aws-lc-rs's FIPS module,
//! reports `mediation_fips_mode 1`, negotiates only AES-GCM suites over P-256/P-384, and
//! refuses a peer that offers only ChaCha20 or only X25519.

mod common;

use common::*;

/// What the refusal must tell an operator.
#[cfg(not(feature = "fips"))]
const HOW_TO_BUILD: &str = "--features fips";

#[cfg(not(feature = "fips"))]
#[tokio::test]
async fn without_the_feature_fips_refuses_to_start() {
    let lab = Lab::new();
    let config = lab.config("fips = true");
    let Err(e) = mediation::service::Service::start(std::sync::Arc::new(config)).await else {
        panic!("fips = true started in a build without the fips feature");
    };
    let e = e.to_string();
    assert!(e.contains(HOW_TO_BUILD), "{e}");
    assert!(e.contains("tls.fips"), "{e}");
}

#[cfg(not(feature = "fips"))]
#[tokio::test]
async fn without_the_feature_the_binary_refuses_fips_with_the_message() {
    use std::time::Duration;
    let lab = Lab::new();
    let file = lab.path("mediation.toml");
    std::fs::write(&file, lab.config_text("fips = true", "")).unwrap();
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_mediation"))
        .args(["run", "--config"])
        .arg(&file)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("mediation run with fips = true did not exit")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "exited 0: {stderr}");
    assert!(stderr.contains(HOW_TO_BUILD), "{stderr}");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mediation"))
        .arg("check-config")
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "check-config passed: {stderr}");
    assert!(stderr.contains(HOW_TO_BUILD), "{stderr}");
}

#[cfg(not(feature = "fips"))]
#[tokio::test]
async fn without_fips_the_gauge_is_zero() {
    let lab = Lab::new();
    let service = lab.start("").await;
    assert_eq!(service.metrics.fips_mode.get(), 0);
    service.stop().await;
}

#[cfg(feature = "fips")]
mod with_the_feature {
    use std::sync::Arc;

    use super::*;
    use rustls::crypto::CryptoProvider;
    use rustls::version::{TLS12, TLS13};
    use rustls::{CipherSuite, NamedGroup, SupportedProtocolVersion};

    /// The suites a FIPS connection may end on.
    const FIPS_SUITES: [CipherSuite; 6] = [
        CipherSuite::TLS13_AES_128_GCM_SHA256,
        CipherSuite::TLS13_AES_256_GCM_SHA384,
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ];

    /// A trusted gateway's client over ring, cut down by `restrict` (an ordinary, non-FIPS peer
    /// by default: it offers ChaCha20 and X25519 first).
    fn client(
        lab: &Lab,
        versions: &[&'static SupportedProtocolVersion],
        restrict: impl FnOnce(&mut CryptoProvider),
    ) -> tokio_rustls::TlsConnector {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let mut provider = rustls::crypto::ring::default_provider();
        restrict(&mut provider);
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_file_iter(lab.path("ca.pem")).unwrap() {
            roots.add(ca.unwrap()).unwrap();
        }
        let chain = CertificateDer::pem_file_iter(lab.path("gateway.pem"))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(lab.path("gateway-key.pem")).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .unwrap();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }

    #[tokio::test]
    async fn fips_starts_on_the_validated_module_and_reports_it() {
        let lab = Lab::new();
        let service = lab.start("fips = true").await;
        assert_eq!(service.metrics.fips_mode.get(), 1);
        service.stop().await;
        // The feature alone does not make a non-FIPS configuration FIPS.
        let service = lab.start("").await;
        assert_eq!(service.metrics.fips_mode.get(), 0);
        service.stop().await;
    }

    #[tokio::test]
    async fn trusted_client_negotiates_a_fips_suite_and_group() {
        let lab = Lab::new();
        let service = lab.start("fips = true").await;
        let addr = service.bound.gateway_tls.unwrap();
        for (versions, want) in [(&[&TLS13][..], "TLSv1_3"), (&[&TLS12][..], "TLSv1_2")] {
            // An ordinary client preferring ChaCha20 and X25519 still lands on AES-GCM/P-256.
            let connector = client(&lab, versions, |_| {});
            let mut tls = tls_connect(&connector, addr).await.expect("handshake");
            let (_, conn) = tls.get_ref();
            assert_eq!(
                conn.protocol_version().map(|v| format!("{v:?}")).as_deref(),
                Some(want)
            );
            let suite = conn.negotiated_cipher_suite().expect("suite").suite();
            assert!(FIPS_SUITES.contains(&suite), "{want}: {suite:?}");
            let group = conn
                .negotiated_key_exchange_group()
                .expect("key exchange group")
                .name();
            assert!(
                matches!(group, NamedGroup::secp256r1 | NamedGroup::secp384r1),
                "{want}: {group:?}"
            );
            let status = exchange(&mut tls, &options("fips-ok"))
                .await
                .expect("response");
            assert!(status.starts_with("SIP/2.0 200"), "{status}");
        }
        service.stop().await;
    }

    async fn assert_refused(lab: &Lab, connector: &tokio_rustls::TlsConnector, what: &str) {
        let service = lab.start("fips = true").await;
        let addr = service.bound.gateway_tls.unwrap();
        match tls_connect(connector, addr).await {
            Err(_) => {}
            Ok(mut tls) => {
                let reply = exchange(&mut tls, &options("fips-refused")).await;
                assert!(reply.is_none(), "{what}: got an answer {reply:?}");
            }
        }
        let refused = wait_for(
            || {
                service
                    .metrics
                    .mtls_rejections
                    .with_label_values(&["gateway_tls", "handshake_failed"])
                    .get()
            },
            1,
        )
        .await;
        assert_eq!(refused, 1, "{what}: refusal counted");
        service.stop().await;
    }

    #[tokio::test]
    async fn client_offering_only_chacha20_is_refused() {
        let lab = Lab::new();
        for versions in [&[&TLS13][..], &[&TLS12][..]] {
            let connector = client(&lab, versions, |p| {
                p.cipher_suites.retain(|s| {
                    matches!(
                        s.suite(),
                        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
                            | CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
                    )
                })
            });
            assert_refused(&lab, &connector, "ChaCha20 only").await;
        }
    }

    #[tokio::test]
    async fn client_offering_only_x25519_is_refused() {
        let lab = Lab::new();
        for versions in [&[&TLS13][..], &[&TLS12][..]] {
            let connector = client(&lab, versions, |p| {
                p.kx_groups.retain(|g| g.name() == NamedGroup::X25519)
            });
            assert_refused(&lab, &connector, "X25519 only").await;
        }
    }
}
