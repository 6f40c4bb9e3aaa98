//! The MTLS and TCP front doors over real sockets with real certificates from the lab PKI:
//! who gets in, who is refused and why, and that SIP framing survives what peers send.

mod common;

use common::*;
use rustls::version::{TLS12, TLS13};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn rejections(s: &mediation::service::Service, listener: &str, reason: &str) -> u64 {
    s.metrics
        .mtls_rejections
        .with_label_values(&[listener, reason])
        .get()
}

#[tokio::test]
async fn trusted_gateway_gets_200_to_options_over_tls13_and_tls12() {
    let lab = Lab::new();
    let service = lab.start("").await;
    let addr = service.bound.gateway_tls.unwrap();
    for (versions, label) in [(&[&TLS13][..], "1.3"), (&[&TLS12][..], "1.2")] {
        let client = lab.client(Some(("gateway.pem", "gateway-key.pem")), versions);
        let mut tls = tls_connect(&client, addr).await.expect("handshake");
        let (_, conn) = tls.get_ref();
        assert_eq!(
            conn.protocol_version().map(|v| format!("{v:?}")),
            Some(if label == "1.3" { "TLSv1_3" } else { "TLSv1_2" }.to_string())
        );
        let status = exchange(&mut tls, &options("opt-1"))
            .await
            .expect("response");
        assert!(status.starts_with("SIP/2.0 200"), "{status}");
        assert_eq!(header(&status, "Call-ID"), Some("opt-1"));
        let ok = service
            .metrics
            .tls_handshakes
            .with_label_values(&["gateway_tls", label, "ok"])
            .get();
        assert_eq!(ok, 1, "TLS {label} handshake counted");
    }
    // The next hop's own listener admits the next hop.
    let client = lab.client(Some(("nexthop.pem", "nexthop-key.pem")), &[&TLS13]);
    let mut tls = tls_connect(&client, service.bound.next_hop).await.unwrap();
    let status = exchange(&mut tls, &options("opt-nh")).await.unwrap();
    assert!(status.starts_with("SIP/2.0 200"), "{status}");
}

/// Connects with the given certificate and checks the connection is refused and counted with
/// `reason` on `listener`.
async fn assert_refused(
    lab: &Lab,
    service: &mediation::service::Service,
    addr: std::net::SocketAddr,
    listener: &str,
    cert: Option<(&str, &str)>,
    versions: &[&'static rustls::SupportedProtocolVersion],
    reason: &str,
) {
    let before = rejections(service, listener, reason);
    let client = lab.client(cert, versions);
    // With TLS 1.3 the client may finish its side before the server has checked the client
    // certificate: the refusal then arrives on the first read.
    if let Ok(mut tls) = tls_connect(&client, addr).await {
        let reply = exchange(&mut tls, &options("refused")).await;
        assert!(reply.is_none(), "{cert:?} got an answer: {reply:?}");
    }
    let after = wait_for(|| rejections(service, listener, reason), before + 1).await;
    assert_eq!(after, before + 1, "{cert:?} refused with {reason}");
}

#[tokio::test]
async fn bad_gateway_certificates_are_refused_with_their_reason() {
    let lab = Lab::new();
    let service = lab.start("").await;
    let addr = service.bound.gateway_tls.unwrap();
    let cases = [
        (None, "no_certificate"),
        (
            Some(("gateway-untrusted.pem", "gateway-untrusted-key.pem")),
            "untrusted_ca",
        ),
        (
            Some(("gateway-expired.pem", "gateway-expired-key.pem")),
            "expired",
        ),
        (
            Some(("gateway-wrong-name.pem", "gateway-wrong-name-key.pem")),
            "name_mismatch",
        ),
        (
            Some(("gateway-revoked.pem", "gateway-revoked-key.pem")),
            "revoked",
        ),
    ];
    for versions in [&[&TLS13][..], &[&TLS12][..]] {
        for (cert, reason) in cases {
            assert_refused(&lab, &service, addr, "gateway_tls", cert, versions, reason).await;
        }
    }
    // A trusted gateway certificate is not a next-hop certificate.
    assert_refused(
        &lab,
        &service,
        service.bound.next_hop,
        "next_hop",
        Some(("gateway.pem", "gateway-key.pem")),
        &[&TLS13],
        "name_mismatch",
    )
    .await;
}

#[tokio::test]
async fn min_version_13_refuses_tls12() {
    let lab = Lab::new();
    let service = lab.start("min_version = \"1.3\"").await;
    let addr = service.bound.gateway_tls.unwrap();
    assert_refused(
        &lab,
        &service,
        addr,
        "gateway_tls",
        Some(("gateway.pem", "gateway-key.pem")),
        &[&TLS12],
        "protocol_version",
    )
    .await;
    let client = lab.client(Some(("gateway.pem", "gateway-key.pem")), &[&TLS13]);
    let mut tls = tls_connect(&client, addr).await.unwrap();
    assert!(exchange(&mut tls, &options("o"))
        .await
        .unwrap()
        .starts_with("SIP/2.0 200"));
}

/// `openssl s_client`, a TLS stack nobody here wrote, offering only TLS 1.1 or 1.0.
#[tokio::test]
async fn openssl_tls11_and_tls10_are_refused() {
    let lab = Lab::new();
    let service = lab.start("").await;
    let addr = service.bound.gateway_tls.unwrap();
    for flag in ["-tls1_1", "-tls1"] {
        let before = rejections(&service, "gateway_tls", "protocol_version");
        let out = tokio::process::Command::new("openssl")
            .args(["s_client", "-connect", &addr.to_string(), flag])
            // OpenSSL 3 will not even offer TLS 1.1 at its default security level.
            .args(["-cipher", "DEFAULT@SECLEVEL=0"])
            .arg("-cert")
            .arg(lab.path("gateway.pem"))
            .arg("-key")
            .arg(lab.path("gateway-key.pem"))
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .expect("openssl must be installed (the test command installs it)");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "openssl {flag} connected:\n{stdout}");
        let after = wait_for(
            || rejections(&service, "gateway_tls", "protocol_version"),
            before + 1,
        )
        .await;
        assert_eq!(
            after,
            before + 1,
            "openssl {flag} refused for protocol_version; openssl said:\n{stdout}\n{}\nmetrics:\n{}",
            String::from_utf8_lossy(&out.stderr),
            service.metrics.render()
        );
    }
    // The same openssl with TLS 1.2 and the trusted certificate gets in.
    let out = tokio::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-tls1_2",
            "-verify_return_error",
        ])
        .arg("-CAfile")
        .arg(lab.path("ca.pem"))
        .arg("-cert")
        .arg(lab.path("gateway.pem"))
        .arg("-key")
        .arg(lab.path("gateway-key.pem"))
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Protocol  : TLSv1.2") || stdout.contains("TLSv1.2"),
        "{stdout}"
    );
    assert!(stdout.contains("Verify return code: 0 (ok)"), "{stdout}");
}

fn compact_invite(call_id: &str) -> String {
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    format!(
        "INVITE sip:+15551234@mediation.example.test SIP/2.0\r\n\
         v: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK-{call_id}\r\n\
         Max-Forwards: 70\r\n\
         f: <sip:+15550001@gw1.example.test>;tag=a1\r\n\
         t: <sip:+15551234@mediation.example.test>\r\n\
         i: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         m: <sip:gw@127.0.0.1:5999;transport=tcp>\r\n\
         c: application/sdp\r\n\
         l: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

#[tokio::test]
async fn tcp_framing_split_writes_and_two_messages_in_one_write() {
    let lab = Lab::new();
    let service = lab.start("").await;
    let mut tcp = TcpStream::connect(service.bound.gateway_tcp.unwrap())
        .await
        .unwrap();
    // One INVITE with compact headers, written a few bytes at a time.
    let invite = compact_invite("split-1");
    for chunk in invite.as_bytes().chunks(7) {
        tcp.write_all(chunk).await.unwrap();
        tcp.flush().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let mut pending = Vec::new();
    let first = read_response(&mut tcp, &mut pending)
        .await
        .expect("answer to split INVITE");
    assert_eq!(header(&first, "Call-ID"), Some("split-1"), "{first}");
    assert_eq!(header(&first, "CSeq"), Some("1 INVITE"), "{first}");
    // Two messages in one write: both answered. Responses belong to different transactions,
    // so their order is not fixed; the split INVITE's final answer (503: no next hop is
    // listening in this test) may arrive among them.
    let two = compact_invite("two-a") + &options("two-b");
    tcp.write_all(two.as_bytes()).await.unwrap();
    let (mut a, mut b) = (None, None);
    while a.is_none() || b.is_none() {
        let r = read_response(&mut tcp, &mut pending)
            .await
            .expect("answers to both");
        match header(&r, "Call-ID") {
            Some("two-a") => a = Some(r),
            Some("two-b") => b = Some(r),
            Some("split-1") => {}
            other => panic!("unexpected response for {other:?}: {r}"),
        }
    }
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(header(&a, "CSeq"), Some("1 INVITE"), "{a}");
    assert!(b.starts_with("SIP/2.0 200"), "{b}");
}

#[tokio::test]
async fn malformed_message_gets_400_and_connection_survives() {
    let lab = Lab::new();
    let service = lab.start("").await;
    let mut tcp = TcpStream::connect(service.bound.gateway_tcp.unwrap())
        .await
        .unwrap();
    // No CSeq method and a broken request line URI: unparseable, but answerable.
    let bad = "OPTIONS not a uri SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK-bad\r\n\
               From: <sip:a@b>;tag=x\r\nTo: <sip:c@d>\r\nCall-ID: bad-1\r\nCSeq: 1 OPTIONS\r\n\
               Content-Length: 0\r\n\r\n";
    tcp.write_all(bad.as_bytes()).await.unwrap();
    let mut pending = Vec::new();
    let reply = read_response(&mut tcp, &mut pending).await.expect("400");
    assert!(
        reply.starts_with("SIP/2.0 400 Malformed Request-URI\r\n"),
        "{reply}"
    );
    assert_eq!(
        header(&reply, "Warning"),
        Some("399 mediation \"malformed Request-URI: white space inside\"")
    );
    assert_eq!(header(&reply, "Call-ID"), Some("bad-1"));
    tcp.write_all(options("after-bad").as_bytes())
        .await
        .unwrap();
    let ok = read_response(&mut tcp, &mut pending)
        .await
        .expect("still served");
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    assert_eq!(
        service
            .metrics
            .sip_malformed
            .with_label_values(&["gateway_tcp", "request-uri"])
            .get(),
        1
    );
}

/// A peer that starts a TLS handshake and stalls (slowloris) is cut off after
/// `handshake_timeout_secs` and counted; it never holds a place for long.
#[tokio::test]
async fn a_stalled_handshake_is_cut_off_and_counted() {
    use tokio::io::AsyncReadExt;
    let lab = Lab::new();
    let service = lab.start("handshake_timeout_secs = 1").await;
    let addr = service.bound.gateway_tls.unwrap();
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    // The first bytes of a ClientHello record (type 22, TLS 1.0 record version, 512 bytes
    // announced), then nothing more.
    tcp.write_all(&[22, 3, 1, 2, 0, 1, 0, 1, 252, 3, 3])
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => continue, // an alert, then the close
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "still open after 5 s");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "cut off after {:?}",
        started.elapsed()
    );
    let n = wait_for(
        || rejections(&service, "gateway_tls", "handshake_timeout"),
        1,
    )
    .await;
    assert_eq!(n, 1, "counted as handshake_timeout");
}

/// Front doors on IPv6: a TCP listener on `[::]` admits an IPv4 gateway by its IPv4 address
/// (not the `::ffff:` form the socket reports) and an IPv6 gateway by its IPv6 one; the next
/// hop's MTLS listener and the metrics endpoint serve on `[::1]`.
#[tokio::test]
async fn ipv6_listeners_admit_peers_of_both_families() {
    let lab = Lab::new();
    let text = lab
        .config_text("", "")
        .replace("tcp = \"127.0.0.1:0\"", "tcp = \"[::]:0\"")
        .replace(
            "[next_hop]\nlisten = \"127.0.0.1:0\"",
            "[next_hop]\nlisten = \"[::1]:0\"",
        )
        .replace(
            "[metrics]\nlisten = \"127.0.0.1:0\"",
            "[metrics]\nlisten = \"[::1]:0\"",
        )
        .replace(
            "advertise = \"127.0.0.1\"",
            "advertise = [\"127.0.0.1\", \"::1\"]",
        )
        + "\n[[gateway]]\nname = \"gw-tcp6\"\naddress = \"[::1]:5068\"\ntransport = \"tcp\"\nsrtp = \"not-supported\"\n";
    let file = lab.path("mediation.toml");
    std::fs::write(&file, text).unwrap();
    let config = mediation::config::load_file(&file).unwrap();
    let service = mediation::service::Service::start(std::sync::Arc::new(config))
        .await
        .unwrap();
    let port = service.bound.gateway_tcp.unwrap().port();
    for (from, to) in [("127.0.0.1:0", "127.0.0.1"), ("[::1]:0", "::1")] {
        let socket = match from.starts_with('[') {
            true => tokio::net::TcpSocket::new_v6(),
            false => tokio::net::TcpSocket::new_v4(),
        }
        .unwrap();
        socket.bind(from.parse().unwrap()).unwrap();
        let to: std::net::IpAddr = to.parse().unwrap();
        let mut tcp = socket.connect((to, port).into()).await.unwrap();
        // (A branch is a token: no colons.)
        let id = format!("opt-{}", to.to_string().replace(':', "-"));
        let status = exchange(&mut tcp, &options(&id))
            .await
            .unwrap_or_else(|| panic!("{to}: admitted as a gateway"));
        assert!(status.starts_with("SIP/2.0 200"), "{to}: {status}");
    }
    assert!(service.bound.next_hop.is_ipv6());
    let client = lab.client(Some(("nexthop.pem", "nexthop-key.pem")), &[&TLS13]);
    let mut tls = tls_connect(&client, service.bound.next_hop).await.unwrap();
    let status = exchange(&mut tls, &options("opt-nh6")).await.unwrap();
    assert!(status.starts_with("SIP/2.0 200"), "{status}");

    assert!(service.metrics_addr.is_ipv6(), "{}", service.metrics_addr);
    let mut http = TcpStream::connect(service.metrics_addr).await.unwrap();
    let request = format!(
        "GET /readyz HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        service.metrics_addr
    );
    http.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut http, &mut response)
        .await
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    service.stop().await;
}
