//! Certificate and CRL rotation (SIGHUP or `mediation reload` → `Service::reload_tls`): new connections see the new
//! CRL at once, connections already up are untouched, a broken file is refused and the
//! material in use is kept.

mod common;

use common::*;
use rustls::version::TLS13;

#[tokio::test]
async fn a_newly_revoked_gateway_is_refused_on_its_next_connection_only() {
    let lab = Lab::new();
    let service = lab.start("").await;
    let addr = service.bound.gateway_tls.unwrap();
    let gateway = lab.client(Some(("gateway.pem", "gateway-key.pem")), &[&TLS13]);
    let mut established = tls_connect(&gateway, addr).await.unwrap();
    assert!(exchange(&mut established, &options("before"))
        .await
        .unwrap()
        .starts_with("SIP/2.0 200"));

    // The CA revokes the gateway's certificate; the operator drops in the new CRL and reloads.
    let crl = lab
        .pki
        .ca
        .crl(&[
            lab.pki.gateway.serial.clone(),
            lab.pki.gateway_revoked.serial.clone(),
        ])
        .unwrap();
    std::fs::write(lab.path("crl.pem"), crl).unwrap();
    service.reload_tls().expect("reload");

    // The connection that was up keeps working (calls on it are not dropped)...
    assert!(exchange(&mut established, &options("during"))
        .await
        .unwrap()
        .starts_with("SIP/2.0 200"));
    // ...and the next connection from that gateway is refused as revoked.
    let before = service
        .metrics
        .mtls_rejections
        .with_label_values(&["gateway_tls", "revoked"])
        .get();
    if let Ok(mut tls) = tls_connect(&gateway, addr).await {
        assert!(
            exchange(&mut tls, &options("after")).await.is_none(),
            "revoked gateway served"
        );
    }
    let after = wait_for(
        || {
            service
                .metrics
                .mtls_rejections
                .with_label_values(&["gateway_tls", "revoked"])
                .get()
        },
        before + 1,
    )
    .await;
    assert_eq!(after, before + 1);

    // A broken CRL is refused and the material in use stays: the next hop still gets in,
    // the revoked gateway still does not.
    std::fs::write(
        lab.path("crl.pem"),
        "-----BEGIN X509 CRL-----\nnot base64\n-----END X509 CRL-----\n",
    )
    .unwrap();
    let err = service.reload_tls().expect_err("broken CRL refused");
    assert!(err.to_string().contains("tls.crls[0]"), "{err}");
    let next_hop = lab.client(Some(("nexthop.pem", "nexthop-key.pem")), &[&TLS13]);
    let mut tls = tls_connect(&next_hop, service.bound.next_hop)
        .await
        .unwrap();
    assert!(exchange(&mut tls, &options("still"))
        .await
        .unwrap()
        .starts_with("SIP/2.0 200"));
    if let Ok(mut tls) = tls_connect(&gateway, addr).await {
        assert!(exchange(&mut tls, &options("still-revoked"))
            .await
            .is_none());
    }
}

/// `POST /reload` on the operator endpoint (what `mediation reload` sends) reloads like SIGHUP,
/// and refuses a broken file with its field, keeping the material in use.
#[tokio::test]
async fn mediation_reload_command_reloads_and_reports_a_broken_file() {
    let lab = Lab::new();
    let service = lab.start("").await;
    let addr = service.metrics_addr.to_string();
    let run = |addr: String| async move {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_mediation"))
            .args(["reload", "--addr", &addr])
            .output()
            .await
            .expect("the mediation binary runs")
    };
    let ok = run(addr.clone()).await;
    assert!(ok.status.success(), "{ok:?}");
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "reloaded");

    std::fs::write(
        lab.path("crl.pem"),
        "-----BEGIN X509 CRL-----\nnot base64\n-----END X509 CRL-----\n",
    )
    .unwrap();
    let refused = run(addr).await;
    assert!(!refused.status.success(), "{refused:?}");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("422") && err.contains("tls.crls[0]"), "{err}");
    // The material in use stays: a trusted gateway still gets in.
    let gateway = lab.client(Some(("gateway.pem", "gateway-key.pem")), &[&TLS13]);
    let mut tls = tls_connect(&gateway, service.bound.gateway_tls.unwrap())
        .await
        .unwrap();
    assert!(exchange(&mut tls, &options("after-refused-reload"))
        .await
        .unwrap()
        .starts_with("SIP/2.0 200"));
}
