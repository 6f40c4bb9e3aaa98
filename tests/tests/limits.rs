//! Resource limits at the front doors, as an operator sees them: connections beyond
//! `max_connections_per_source` or `max_connections` are closed at accept and counted, the
//! places come back when connections close, and other peers' calls go on.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use e2e::{http_get, sample, Caller, Lab, Mediation, Setup, Sim};

/// A TCP connection to `port` from the loopback address `source`.
fn connect_from(source: &str, port: u16) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let local: SocketAddr = format!("{source}:0").parse().unwrap();
    socket.bind(&local.into()).unwrap();
    let remote: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    socket.connect(&remote.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    stream
}

/// True when the server closed the connection (EOF or reset) instead of waiting for our
/// TLS ClientHello.
fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 16];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

fn refused(metrics: &str, limit: &str) -> f64 {
    sample(
        metrics,
        &format!(
            "mediation_sip_connections_refused_total{{limit=\"{limit}\",listener=\"gateway_tls\"}}"
        ),
    )
}

#[test]
fn connections_beyond_the_limits_are_closed_at_accept_and_counted_and_calls_go_on() {
    let lab = Lab::new();
    let setup = Setup {
        sip_extra: "max_connections = 4\nmax_connections_per_source = 2\n".into(),
        ..Setup::default()
    };
    let nh = Sim::answer(
        &lab,
        "limits-nh",
        setup.next_hop_port,
        Some("nexthop"),
        "offer",
    );
    let m = Mediation::start(&lab, &setup);
    let port = m.ports.gateway_tls;
    // Start from zero: the start-up check's probe connections must have been let go.
    let open_now = || {
        http_get(m.ports.metrics, "/metrics")
            .lines()
            .filter(|l| l.starts_with("mediation_sip_connections{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while open_now() > 0.0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }

    let mut held: Vec<TcpStream> = (0..2).map(|_| connect_from("127.0.0.2", port)).collect();
    let mut third = connect_from("127.0.0.2", port);
    assert!(
        closed_by_server(&mut third),
        "third from one source refused"
    );
    held.push(connect_from("127.0.0.3", port));
    held.push(connect_from("127.0.0.3", port));
    let mut fifth = connect_from("127.0.0.4", port);
    assert!(closed_by_server(&mut fifth), "fifth in total refused");
    // Admitted ones wait for their ClientHello (for 2 s: admission's own guard), so look now.
    for s in &mut held {
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        assert!(!closed_by_server(s), "admitted connections wait for TLS");
    }
    let metrics = http_get(m.ports.metrics, "/metrics");
    assert_eq!(
        refused(&metrics, "max_connections_per_source"),
        1.0,
        "{metrics}"
    );
    assert_eq!(refused(&metrics, "max_connections"), 1.0, "{metrics}");
    assert_eq!(
        sample(
            &metrics,
            "mediation_sip_connections{listener=\"gateway_tls\"}"
        ),
        4.0,
        "{metrics}"
    );

    // The hogs leave: their places come back and a gateway's call goes through.
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    let (ok, report) = Caller {
        lab: &lab,
        port,
        transport: "tls",
        cert: Some("gateway"),
        srtp: "offer",
        to: "sip:+15551234@mediation.example.test",
        duration: 2,
        extra: vec![],
    }
    .run("limits-call");
    assert!(ok, "{report:#}\n{}", m.log_text());
    assert_eq!(
        report["calls"][0]["packets_lost"].as_u64(),
        Some(0),
        "{report:#}"
    );
    drop(nh);
}

#[test]
fn idle_connections_are_closed_but_not_one_that_carries_a_call() {
    let lab = Lab::new();
    let setup = Setup {
        sip_extra: "idle_connection_timeout_secs = 2\n".into(),
        ..Setup::default()
    };
    let nh = Sim::answer(
        &lab,
        "idle-nh",
        setup.next_hop_port,
        Some("nexthop"),
        "offer",
    );
    let m = Mediation::start(&lab, &setup);
    // A gateway that connects (MTLS) and then says nothing: closed after about 2 s.
    let mut idle = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-quiet",
            "-connect",
            &format!("127.0.0.1:{}", m.ports.gateway_tls),
        ])
        .args([
            "-cert",
            &lab.arg("gateway.pem"),
            "-key",
            &lab.arg("gateway-key.pem"),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl must be installed (tests/run.sh installs it)");
    // A 6-second call on its own connection, idle for SIP between ACK and BYE: kept.
    let (ok, report) = Caller {
        lab: &lab,
        port: m.ports.gateway_tls,
        transport: "tls",
        cert: Some("gateway"),
        srtp: "offer",
        to: "sip:+15551234@mediation.example.test",
        duration: 6,
        extra: vec![],
    }
    .run("idle-call");
    assert!(ok, "{report:#}\n{}", m.log_text());
    assert_eq!(
        report["calls"][0]["packets_lost"].as_u64(),
        Some(0),
        "{report:#}"
    );
    let closed = idle.try_wait().unwrap();
    let _ = idle.kill();
    assert!(
        closed.is_some(),
        "the idle connection was still open after 6 s"
    );
    let metrics = http_get(m.ports.metrics, "/metrics");
    assert!(
        sample(
            &metrics,
            "mediation_sip_idle_closed_total{listener=\"gateway_tls\"}"
        ) >= 1.0,
        "{metrics}"
    );
    drop(nh);
}
