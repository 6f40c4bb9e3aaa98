//! `[metrics.tls]`: the metrics endpoint over HTTPS, served only to scrapers presenting a client
//! certificate from the configured CA, as Prometheus's `tls_config` does.

mod common;

use std::sync::Arc;

use common::*;
use mediation::service::Service;
use rustls::version::TLS13;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn get(
    connector: &tokio_rustls::TlsConnector,
    addr: std::net::SocketAddr,
    path: &str,
) -> std::io::Result<String> {
    let mut tls = tls_connect(connector, addr).await?;
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut text = String::new();
    tls.read_to_string(&mut text).await?;
    Ok(text)
}

#[tokio::test]
async fn metrics_over_https_need_a_client_certificate() {
    let lab = Lab::new();
    let text = lab.config_text("", "[metrics.tls]\nclient_ca = \"ca.pem\"\n");
    let file = lab.path("mediation.toml");
    std::fs::write(&file, text).unwrap();
    let config = mediation::config::load_file(&file).unwrap();
    assert!(config.metrics.tls.is_some());
    let service = Service::start(Arc::new(config)).await.unwrap();
    let addr = service.metrics_addr;

    let scraper = lab.client(Some(("nexthop.pem", "nexthop-key.pem")), &[&TLS13]);
    let body = get(&scraper, addr, "/metrics")
        .await
        .expect("scrape over HTTPS");
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("mediation_build_info{version="), "{body}");
    let health = get(&scraper, addr, "/healthz").await.unwrap();
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");

    // No client certificate: no metrics.
    let anonymous = lab.client(None, &[&TLS13]);
    let refused = get(&anonymous, addr, "/metrics").await;
    assert!(
        refused
            .as_ref()
            .map_or(true, |t| !t.contains("mediation_build_info")),
        "served without a client certificate: {refused:?}"
    );
    // A certificate from another CA: no metrics either.
    let stranger = lab.client(
        Some(("gateway-untrusted.pem", "gateway-untrusted-key.pem")),
        &[&TLS13],
    );
    let refused = get(&stranger, addr, "/metrics").await;
    assert!(
        refused
            .as_ref()
            .map_or(true, |t| !t.contains("mediation_build_info")),
        "served to an untrusted client: {refused:?}"
    );
}
