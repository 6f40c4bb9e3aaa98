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

/// Security review, finding 4: one reload reaches every consumer of the TLS material. The
/// service starts on an expired certificate of its own (`/readyz` says so); the operator drops
/// in a renewed one and reloads: `/readyz` judges the new certificate's expiry, and the HTTPS
/// metrics endpoint presents the new certificate.
#[tokio::test]
async fn a_reload_reaches_readyz_and_the_metrics_endpoint() {
    let lab = Lab::new();
    let leaf = || {
        certs::LeafSpec::new(["mediation.example.test", "localhost"])
            .with_ip(std::net::IpAddr::from([127, 0, 0, 1]))
    };
    let expired = lab.pki.ca.issue(&leaf().expired()).unwrap();
    expired.write(&lab.path("mediation")).unwrap();
    let text = lab.config_text("", "[metrics.tls]\nclient_ca = \"ca.pem\"\n");
    let file = lab.path("mediation.toml");
    std::fs::write(&file, text).unwrap();
    let config = mediation::config::load_file(&file).unwrap();
    let service = Service::start(Arc::new(config)).await.unwrap();
    let addr = service.metrics_addr;
    // The scraper does not check the server's validity dates: it must reach the endpoint to
    // see which certificate is presented, expired or not.
    let scraper = lab.client_accepting_any_server(("nexthop.pem", "nexthop-key.pem"));
    let presented = |tls: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>| {
        tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
    };
    let tls = tls_connect(&scraper, addr).await.unwrap();
    assert_eq!(
        presented(&tls),
        expired.cert_der,
        "the expired certificate at start"
    );
    let ready = get(&scraper, addr, "/readyz").await.unwrap();
    assert!(ready.starts_with("HTTP/1.1 503"), "{ready}");
    assert!(ready.contains("our certificate has expired"), "{ready}");

    let renewed = lab.pki.ca.issue(&leaf().valid_for_days(90)).unwrap();
    renewed.write(&lab.path("mediation")).unwrap();
    service.reload_tls().expect("reload");

    let tls = tls_connect(&scraper, addr).await.unwrap();
    assert_eq!(
        presented(&tls),
        renewed.cert_der,
        "the metrics endpoint's certificate"
    );
    let ready = get(&scraper, addr, "/readyz").await.unwrap();
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
}

/// Security review, finding 5 (the metrics endpoint's part): clients that connect and send
/// nothing hold at most `MAX_CONNECTIONS` slots, and only until their header timeout; a scrape
/// then gets through.
#[tokio::test]
async fn silent_clients_cannot_hold_the_metrics_endpoint() {
    let lab = Lab::new();
    let service = lab.start("").await;
    let addr = service.metrics_addr;
    let mut silent = Vec::new();
    for _ in 0..mediation::http::MAX_CONNECTIONS + 8 {
        silent.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    // Every slot is taken by a silent client; after the header timeout they are closed and a
    // real scrape is served.
    let started = std::time::Instant::now();
    let mut scrape = tokio::net::TcpStream::connect(addr).await.unwrap();
    scrape
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    tokio::time::timeout(
        mediation::http::HEADER_TIMEOUT * 3,
        scrape.read_to_string(&mut text),
    )
    .await
    .expect("the scrape was never served")
    .unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    println!("served after {:?}", started.elapsed());
    // The silent clients were closed by the endpoint.
    let mut closed = 0;
    for mut s in silent {
        let mut buf = [0u8; 64];
        if let Ok(Ok(0)) =
            tokio::time::timeout(std::time::Duration::from_secs(1), s.read(&mut buf)).await
        {
            closed += 1;
        }
    }
    assert!(
        closed >= mediation::http::MAX_CONNECTIONS,
        "{closed} closed"
    );
}
