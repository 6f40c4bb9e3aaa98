//! The optional UDP gateway transport against SIPp over UDP (Debian `sip-tester`, `-t u1`), a
//! SIP stack nobody here wrote, through a real `mediation` process with a `gateway-sim` next
//! hop over MTLS: calls in from a UDP gateway, calls out to one that answers late (so timer A's
//! retransmissions are visible), and one that never answers (timer B's 408). UDP signalling is
//! plain, so the gateway leg never carries `a=crypto`.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use e2e::sipp::{scenario, SippRun};
use e2e::{free_port, Caller, Lab, Mediation, Setup, Sim};

/// Runs SIPp over UDP from 127.0.0.1 to completion.
fn sipp(lab: &Lab, name: &str, args: &[String]) -> SippRun {
    e2e::sipp::run(lab, name, "u1", "127.0.0.1", args)
}

/// A setup with a UDP socket and a `transport = "udp"` gateway `gw3` at `gw3_port`.
fn udp_setup(gw3_port: u16, t1_ms: u64) -> Setup {
    Setup {
        gateway_udp: Some(free_port()),
        udp_t1_ms: t1_ms,
        extra: format!(
            r#"[[gateway]]
name = "gw3"
address = "127.0.0.1:{gw3_port}"
transport = "udp"
srtp = "optional"
options_interval_secs = 0
"#
        ),
        ..Setup::default()
    }
}

fn next_hop_caller<'a>(lab: &'a Lab, m: &Mediation) -> Caller<'a> {
    Caller {
        lab,
        port: m.ports.next_hop,
        transport: "tls",
        cert: Some("nexthop"),
        srtp: "offer",
        to: "sip:+15551234@gw3",
        duration: 1,
        extra: vec![],
    }
}

/// The SIP messages SIPp logged whose first line starts with `start`.
fn count_messages(log: &str, start: &str) -> usize {
    log.lines().filter(|l| l.starts_with(start)).count()
}

#[test]
fn sipp_udp_gateway_calls_in_with_plain_rtp() {
    let lab = Lab::new();
    let sipp_port = free_port();
    let setup = udp_setup(sipp_port, 500);
    let udp_port = setup.gateway_udp.unwrap();
    let nh = Sim::answer(
        &lab,
        "udp-nexthop",
        setup.next_hop_port,
        Some("nexthop"),
        "offer",
    );
    let m = Mediation::start(&lab, &setup);
    let args: Vec<String> = vec![
        "-sn".into(),
        "uac".into(),
        format!("127.0.0.1:{udp_port}"),
        "-s".into(),
        "+15551234".into(),
        "-p".into(),
        sipp_port.to_string(),
        "-m".into(),
        "5".into(),
        "-r".into(),
        "5".into(),
    ];
    let run = sipp(&lab, "udp-uac", &args);
    println!(
        "SIPp over UDP: {} successful, {} failed",
        run.good, run.failed
    );
    assert!(
        run.ok,
        "SIPp failed:\n{}\nmediation:\n{}",
        run.output,
        m.log_text()
    );
    assert_eq!((run.good, run.failed), (5, 0), "{}", run.output);
    assert!(
        count_messages(&run.messages, "SIP/2.0 200 OK") >= 10,
        "{}",
        run.messages
    );
    assert!(
        run.messages.contains("m=audio") && !run.messages.contains("a=crypto"),
        "no SDES keys on plain UDP signalling:\n{}",
        run.messages
    );
    assert!(
        run.messages.contains("Via: SIP/2.0/UDP"),
        "{}",
        run.messages
    );
    drop(nh);
}

/// CANCEL, 200, 487 and the ACK of the 487 (absorbed by the server INVITE transaction).
#[test]
fn sipp_udp_gateway_cancels_while_ringing() {
    let lab = Lab::new();
    let sipp_port = free_port();
    let setup = udp_setup(sipp_port, 500);
    let udp_port = setup.gateway_udp.unwrap();
    let args: Vec<String> = [
        "answer",
        "--listen",
        &format!("127.0.0.1:{}", setup.next_hop_port),
        "--srtp",
        "offer",
        "--ring",
        "5",
        "--tls",
        "--cert",
        &lab.arg("nexthop.pem"),
        "--key",
        &lab.arg("nexthop-key.pem"),
        "--ca",
        &lab.arg("ca.pem"),
    ]
    .map(String::from)
    .to_vec();
    let nh = Sim::spawn(&lab, "udp-cancel-nexthop", &args);
    e2e::wait_port(setup.next_hop_port);
    let m = Mediation::start(&lab, &setup);
    let args: Vec<String> = vec![
        "-sf".into(),
        scenario("uac_cancel.xml").display().to_string(),
        format!("127.0.0.1:{udp_port}"),
        "-s".into(),
        "+15551234".into(),
        "-p".into(),
        sipp_port.to_string(),
        "-m".into(),
        "3".into(),
        "-r".into(),
        "5".into(),
    ];
    let run = sipp(&lab, "udp-cancel", &args);
    assert!(
        run.ok && (run.good, run.failed) == (3, 0),
        "SIPp:\n{}\nmediation:\n{}",
        run.output,
        m.log_text()
    );
    drop(nh);
}

#[test]
fn sipp_udp_gateway_answering_late_sees_invite_retransmissions() {
    let lab = Lab::new();
    let sipp_port = free_port();
    let setup = udp_setup(sipp_port, 200);
    let m = Mediation::start(&lab, &setup);
    let args: Vec<String> = vec![
        "-sf".into(),
        scenario("uas_udp_late.xml").display().to_string(),
        "-p".into(),
        sipp_port.to_string(),
        "-m".into(),
        "1".into(),
    ];
    let (report, run) = std::thread::scope(|scope| {
        let server = scope.spawn(|| sipp(&lab, "udp-uas-late", &args));
        std::thread::sleep(Duration::from_millis(500));
        let (_, report) = next_hop_caller(&lab, &m).run("udp-call-late");
        (report, server.join().unwrap())
    });
    assert!(
        run.ok && run.good == 1 && run.failed == 0,
        "SIPp:\n{}\nmediation:\n{}",
        run.output,
        m.log_text()
    );
    assert_eq!(
        report["calls"][0]["sip_status"].as_u64(),
        Some(200),
        "{report:#}"
    );
    // T1 = 200 ms and a 1 s silence: the INVITE at 0, 0.2, 0.6 s at least.
    let invites = count_messages(&run.messages, "INVITE sip:");
    assert!(
        invites >= 3,
        "timer A retransmitted: {invites}\n{}",
        run.messages
    );
    assert!(!run.messages.contains("a=crypto"), "{}", run.messages);
    assert!(run.messages.contains(";rport;branch="), "{}", run.messages);
}

#[test]
fn silent_udp_gateway_gets_invite_retransmissions_then_408() {
    let lab = Lab::new();
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    silent
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let gw3_port = silent.local_addr().unwrap().port();
    // T1 = 100 ms: timer B (64*T1) fires after 6.4 s, before the 10 s answer timeout.
    let setup = udp_setup(gw3_port, 100);
    let m = Mediation::start(&lab, &setup);
    let (report, arrivals) = std::thread::scope(|scope| {
        let caller = scope.spawn(|| next_hop_caller(&lab, &m).run("udp-call-silent"));
        let mut arrivals: Vec<Instant> = Vec::new();
        let mut buf = [0u8; 65_535];
        let deadline = Instant::now() + Duration::from_secs(12);
        while Instant::now() < deadline && !caller.is_finished() {
            if let Ok((n, _)) = silent.recv_from(&mut buf) {
                if buf[..n].starts_with(b"INVITE ") {
                    arrivals.push(Instant::now());
                }
            }
        }
        (caller.join().unwrap().1, arrivals)
    });
    let gaps: Vec<u128> = arrivals
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis())
        .collect();
    println!("INVITE retransmission gaps (ms): {gaps:?}");
    // Timer A: 100, 200, 400, 800, 1600, 3200 ms (T1 doubling), then timer B.
    assert_eq!(arrivals.len(), 7, "{gaps:?}\n{}", m.log_text());
    for (i, gap) in gaps.iter().enumerate() {
        let expected = 100u128 << i;
        assert!(
            *gap + 50 >= expected && *gap <= expected + 250,
            "gap {i} is {gap} ms, expected about {expected}: {gaps:?}"
        );
    }
    assert_eq!(
        report["calls"][0]["sip_status"].as_u64(),
        Some(408),
        "{report:#}\n{}",
        m.log_text()
    );
}
