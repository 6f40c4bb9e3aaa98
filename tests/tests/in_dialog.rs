//! Requests inside a call carried across it, against SIPp (Debian `sip-tester`, TCP), a SIP stack
//! nobody here wrote, playing the plain-TCP gateway through a real `mediation` process: DTMF
//! sent as INFO (`application/dtmf-relay`), as many gateways do, reaches the far party and its
//! 200 comes back, both ways.

use std::time::Duration;

use e2e::sipp::scenario;
use e2e::{free_port, Caller, Lab, Mediation, Setup, Sim};

#[test]
fn sipp_gateway_sends_dtmf_as_info_and_gets_the_next_hops_200() {
    let lab = Lab::new();
    let setup = Setup {
        // The SIP trace (debug) shows what the next hop was sent.
        log_level: "debug",
        ..Setup::default()
    };
    let nh = Sim::answer(
        &lab,
        "nexthop",
        setup.next_hop_port,
        Some("nexthop"),
        "offer",
    );
    let m = Mediation::start(&lab, &setup);
    let args: Vec<String> = vec![
        "-sf".into(),
        scenario("uac_info.xml").display().to_string(),
        format!("127.0.0.1:{}", m.ports.gateway_tcp),
        "-s".into(),
        "+15551234".into(),
        "-p".into(),
        free_port().to_string(),
        "-m".into(),
        "1".into(),
    ];
    let run = e2e::sipp::run(&lab, "uac_info", "t1", "127.0.0.1", &args);
    let log = m.log_text();
    assert!(
        run.ok && run.good == 1 && run.failed == 0,
        "SIPp uac_info: {} good, {} failed\n{}\nmediation:\n{log}",
        run.good,
        run.failed,
        run.output
    );
    // SIPp got our 200 to its INFO, in its dialog.
    assert!(
        run.messages.contains("CSeq: 2 INFO") && run.messages.contains("SIP/2.0 200 OK"),
        "{}",
        run.messages
    );
    assert!(log.contains("carried to the other party"), "{log}");
    assert!(!log.contains("Not Implemented"), "{log}");
    // The next hop got it as our INFO with the body and its Content-Type.
    assert!(log.contains("application/dtmf-relay"), "{log}");
    assert!(log.contains("Signal=5"), "{log}");
    let report = nh.stop();
    assert_eq!(
        report["calls"][0]["sip_status"].as_u64(),
        Some(200),
        "{report:#}"
    );
}

#[test]
fn next_hop_info_reaches_a_sipp_gateway_and_its_200_comes_back() {
    let lab = Lab::new();
    let setup = Setup::default();
    let m = Mediation::start(&lab, &setup);
    // SIPp's built-in UAS as gw2; `-aa` answers INFO (and NOTIFY, OPTIONS, UPDATE) with 200.
    let args: Vec<String> = vec![
        "-sn".into(),
        "uas".into(),
        "-aa".into(),
        "-p".into(),
        setup.gw2_port.to_string(),
        "-m".into(),
        "1".into(),
    ];
    let (report, run) = std::thread::scope(|scope| {
        let server = scope.spawn(|| e2e::sipp::run(&lab, "uas_aa", "t1", "127.0.0.1", &args));
        e2e::wait_port(setup.gw2_port);
        let (_, report) = Caller {
            lab: &lab,
            port: m.ports.next_hop,
            transport: "tls",
            cert: Some("nexthop"),
            srtp: "offer",
            to: "sip:+15551234@gw2",
            duration: 3,
            extra: vec!["--info-at".into(), "1".into()],
        }
        .run("call-info");
        (report, server.join().unwrap())
    });
    let log = m.log_text();
    assert!(
        run.ok && run.good == 1 && run.failed == 0,
        "SIPp uas -aa: {} good, {} failed\n{}\nmediation:\n{log}",
        run.good,
        run.failed,
        run.output
    );
    let call = &report["calls"][0];
    assert_eq!(call["info_status"].as_u64(), Some(200), "{report:#}\n{log}");
    // SIPp sends no media; nothing else may have gone wrong.
    assert!(
        call["error"].is_null() || call["error"] == "no media received",
        "{report:#}"
    );

    // SIPp got it as an INFO in its dialog with us, DTMF body and all.
    assert!(run.messages.contains("INFO sip:"), "{}", run.messages);
    assert!(run.messages.contains("Signal=5"), "{}", run.messages);
    std::thread::sleep(Duration::from_millis(200));
}
