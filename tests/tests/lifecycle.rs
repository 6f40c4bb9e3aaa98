//! The service's life cycle as an operator sees it: SIGTERM during calls drains (new calls get
//! 503), ends the rest with BYE on both legs, and exits 0.

use std::time::Duration;

use e2e::{Caller, Lab, Mediation, Setup, Sim};

#[test]
fn sigterm_during_a_call_ends_it_with_bye_on_both_legs_and_exits_zero() {
    let lab = Lab::new();
    let setup = Setup {
        drain_timeout_secs: 1,
        ..Setup::default()
    };
    let nh = Sim::answer(
        &lab,
        "lifecycle-nexthop",
        setup.next_hop_port,
        Some("nexthop"),
        "offer",
    );
    let mut m = Mediation::start(&lab, &setup);
    let port = m.ports.gateway_tls;
    let lab_ref = &lab;
    std::thread::scope(|scope| {
        let caller = scope.spawn(move || {
            Caller {
                lab: lab_ref,
                port,
                transport: "tls",
                cert: Some("gateway"),
                srtp: "offer",
                to: "sip:+15551234@mediation.example.test",
                duration: 20,
                extra: vec![],
            }
            .run("lifecycle-call")
        });
        std::thread::sleep(Duration::from_secs(3));
        let code = m.terminate(Duration::from_secs(15));
        assert_eq!(
            code,
            Some(0),
            "clean exit after draining; log:\n{}",
            m.log_text()
        );
        let (_, report) = caller.join().unwrap();
        let call = &report["calls"][0];
        assert_eq!(call["sip_status"].as_u64(), Some(200), "{report:#}");
        assert_eq!(
            call["hangup_by"], "peer",
            "the gateway's call was ended by a BYE from us: {report:#}"
        );
        assert!(
            call["packets_received"].as_u64().unwrap_or(0) > 100,
            "{report:#}"
        );
    });
    let nh_report = nh.stop();
    assert_eq!(
        nh_report["calls"][0]["hangup_by"], "peer",
        "next hop got a BYE too: {nh_report:#}"
    );
    let log = m.log_text();
    assert!(
        log.contains("drain timeout: ending the remaining calls with BYE"),
        "{log}"
    );
}

#[test]
fn a_gateway_that_freezes_mid_call_with_its_connection_open_is_ended_by_the_media_timeout() {
    let lab = Lab::new();
    let setup = Setup {
        media_timeout_secs: 3,
        ..Setup::default()
    };
    let m = Mediation::start(&lab, &setup);
    let gw = Sim::answer(&lab, "frozen-gw1", setup.gw1_port, Some("gateway"), "offer");
    let lab_ref = &lab;
    let port = m.ports.next_hop;
    let report = std::thread::scope(|scope| {
        let caller = scope.spawn(move || {
            Caller {
                lab: lab_ref,
                port,
                transport: "tls",
                cert: Some("nexthop"),
                srtp: "offer",
                to: "sip:+15551234@gw1",
                duration: 30,
                extra: vec![],
            }
            .run("frozen-call")
        });
        std::thread::sleep(Duration::from_secs(4));
        // Power cut: the gateway stops dead, its TCP connection stays open, the next hop keeps
        // sending. Only the media says it is gone.
        gw.signal("STOP");
        let started = std::time::Instant::now();
        let (_, report) = caller.join().unwrap();
        let after = started.elapsed();
        gw.signal("CONT");
        assert!(
            after < Duration::from_secs(10),
            "the call outlived the frozen gateway by {after:?}: {report:#}"
        );
        report
    });
    let call = &report["calls"][0];
    assert_eq!(call["sip_status"].as_u64(), Some(200), "{report:#}");
    assert_eq!(call["hangup_by"], "peer", "ended by our BYE: {report:#}");
    let metrics = e2e::http_get(m.ports.metrics, "/metrics");
    assert_eq!(
        e2e::sample(
            &metrics,
            "mediation_calls_total{direction=\"outbound\",gateway=\"gw1\",gateway_media=\"srtp\",result=\"media_timeout\"}"
        ),
        1.0,
        "{metrics}"
    );
    assert!(
        m.log_text().contains("no media from one party"),
        "{}",
        m.log_text()
    );
}

/// The serial number of the first certificate in `pem` (`openssl x509 -serial`).
fn serial(pem: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-serial"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl must be installed (tests/run.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(pem.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The certificate a TLS listener presents, as openssl sees it.
fn presented(lab: &Lab, port: u16) -> String {
    let out = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-showcerts",
        ])
        .args([
            "-cert",
            &lab.arg("gateway.pem"),
            "-key",
            &lab.arg("gateway-key.pem"),
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let start = text
        .find("-----BEGIN CERTIFICATE-----")
        .expect("a certificate");
    let end = text.find("-----END CERTIFICATE-----").expect("its end") + 25;
    text[start..end].to_string()
}

#[test]
fn certificate_rotation_by_sighup_keeps_the_call_and_the_next_connection_sees_the_new_one() {
    let lab = Lab::new();
    let setup = Setup::default();
    let nh = Sim::answer(
        &lab,
        "rotation-nh",
        setup.next_hop_port,
        Some("nexthop"),
        "offer",
    );
    let m = Mediation::start(&lab, &setup);
    let old = serial(&presented(&lab, m.ports.gateway_tls));
    let lab_ref = &lab;
    let port = m.ports.gateway_tls;
    let (ok, report) = std::thread::scope(|scope| {
        let call = scope.spawn(move || {
            Caller {
                lab: lab_ref,
                port,
                transport: "tls",
                cert: Some("gateway"),
                srtp: "offer",
                to: "sip:+15551234@mediation.example.test",
                duration: 6,
                extra: vec![],
            }
            .run("rotation-call")
        });
        std::thread::sleep(Duration::from_secs(2));
        // The operator drops in a new certificate (same CA, new key) and sends SIGHUP.
        let issued = std::process::Command::new(e2e::bin("certs"))
            .args([
                "issue",
                "--ca-dir",
                &lab.arg(""),
                "--name",
                "mediation.example.test",
            ])
            .args(["--days", "30", "--out", &lab.arg("mediation-new")])
            .output()
            .expect("certs runs");
        assert!(issued.status.success(), "{issued:?}");
        std::fs::rename(
            lab.path("mediation-new-key.pem"),
            lab.path("mediation-key.pem"),
        )
        .unwrap();
        std::fs::rename(lab.path("mediation-new.pem"), lab.path("mediation.pem")).unwrap();
        m.signal("HUP");
        call.join().unwrap()
    });
    assert!(ok, "{report:#}\n{}", m.log_text());
    let call = &report["calls"][0];
    assert_eq!(call["packets_lost"].as_u64(), Some(0), "{report:#}");
    assert!(
        call["packets_received"].as_u64().unwrap_or(0) > 250,
        "{report:#}"
    );
    assert!(
        m.log_text().contains("TLS material reloaded"),
        "{}",
        m.log_text()
    );
    let new = serial(&presented(&lab, m.ports.gateway_tls));
    let on_disk = serial(&std::fs::read_to_string(lab.path("mediation.pem")).unwrap());
    assert_ne!(new, old, "the next connection sees a new certificate");
    assert_eq!(new, on_disk, "the one just installed");
    drop(nh);
}

#[test]
fn a_crash_mid_call_is_a_prompt_clean_failure_for_the_gateway_and_a_restart_takes_calls() {
    let lab = Lab::new();
    let setup = Setup::default();
    let nh = Sim::answer(
        &lab,
        "crash-nh",
        setup.next_hop_port,
        Some("nexthop"),
        "offer",
    );
    let m = Mediation::start(&lab, &setup);
    let port = m.ports.gateway_tls;
    let caller = |name: &'static str, port: u16, duration: u32| {
        let lab = &lab;
        move || {
            Caller {
                lab,
                port,
                transport: "tls",
                cert: Some("gateway"),
                srtp: "offer",
                to: "sip:+15551234@mediation.example.test",
                duration,
                extra: vec![],
            }
            .run(name)
        }
    };
    let (report, after_kill) = std::thread::scope(|scope| {
        let call = scope.spawn(caller("crash-call", port, 30));
        std::thread::sleep(Duration::from_secs(3));
        m.signal("KILL");
        let killed = std::time::Instant::now();
        let (_, report) = call.join().unwrap();
        (report, killed.elapsed())
    });
    // The gateway's connection was reset by the kernel: it must notice at once, not hold the
    // call for its remaining 27 seconds.
    assert!(
        after_kill < Duration::from_secs(5),
        "the gateway held a dead call for {after_kill:?}: {report:#}"
    );
    let call = &report["calls"][0];
    assert_eq!(call["sip_status"].as_u64(), Some(200), "{report:#}");
    assert_ne!(
        call["error"],
        serde_json::Value::Null,
        "reported as a failure: {report:#}"
    );
    drop(m);
    // A new instance takes calls at once.
    let m = Mediation::start(&lab, &setup);
    let (ok, report) = caller("after-restart", m.ports.gateway_tls, 2)();
    assert!(ok, "{report:#}\n{}", m.log_text());
    drop(nh);
}
