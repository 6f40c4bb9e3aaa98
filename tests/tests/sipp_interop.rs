//! Interop with SIPp (Debian `sip-tester`, TCP), a SIP stack nobody here wrote, playing the
//! plain-TCP gateway: the call flows gateways use, through a real `mediation` process, with a
//! `gateway-sim` next hop over MTLS. SIPp's own statistics must show zero failed calls.

use std::time::Duration;

use e2e::sipp::scenario;
use e2e::{free_port, Caller, Lab, Mediation, Setup, Sim};

/// Runs SIPp over TCP from 127.0.0.1; returns (exit ok, successful calls, failed calls,
/// output).
fn sipp(lab: &Lab, name: &str, args: &[String]) -> (bool, u64, u64, String) {
    let run = e2e::sipp::run(lab, name, "t1", "127.0.0.1", args);
    (run.ok, run.good, run.failed, run.output)
}

/// SIPp as the TCP gateway calling in; `next_hop` options for the answering simulator.
fn gateway_calls_in(scenario_file: Option<&str>, calls: u32, next_hop_extra: &[&str]) {
    let lab = Lab::new();
    let setup = Setup::default();
    let mut args: Vec<String> = vec![
        "answer".into(),
        "--listen".into(),
        format!("127.0.0.1:{}", setup.next_hop_port),
        "--srtp".into(),
        "offer".into(),
        "--tls".into(),
        "--cert".into(),
        lab.arg("nexthop.pem"),
        "--key".into(),
        lab.arg("nexthop-key.pem"),
        "--ca".into(),
        lab.arg("ca.pem"),
    ];
    args.extend(next_hop_extra.iter().map(|s| s.to_string()));
    let nh = Sim::spawn(&lab, "sipp-nexthop", &args);
    e2e::wait_port(setup.next_hop_port);
    let m = Mediation::start(&lab, &setup);
    let name = scenario_file.unwrap_or("uac");
    let mut sipp_args: Vec<String> = match scenario_file {
        Some(f) => vec!["-sf".into(), scenario(f).display().to_string()],
        None => vec!["-sn".into(), "uac".into()],
    };
    sipp_args.extend([
        format!("127.0.0.1:{}", m.ports.gateway_tcp),
        "-s".into(),
        "+15551234".into(),
        "-p".into(),
        free_port().to_string(),
        "-m".into(),
        calls.to_string(),
        "-r".into(),
        "5".into(),
    ]);
    let (ok, good, failed, output) = sipp(&lab, name, &sipp_args);
    println!("SIPp {name}: {good} successful, {failed} failed");
    assert!(
        ok,
        "SIPp {name} failed:\n{output}\nmediation:\n{}",
        m.log_text()
    );
    assert_eq!((good, failed), (u64::from(calls), 0), "{output}");
    drop(nh);
}

#[test]
fn sipp_basic_calls_over_tcp() {
    gateway_calls_in(None, 10, &[]);
}

#[test]
fn sipp_far_end_hangs_up() {
    gateway_calls_in(Some("uac_far_bye.xml"), 3, &["--duration", "1"]);
}

#[test]
fn sipp_cancel_while_ringing() {
    gateway_calls_in(Some("uac_cancel.xml"), 3, &["--ring", "5"]);
}

#[test]
fn sipp_hold_and_resume_by_reinvite() {
    gateway_calls_in(Some("uac_hold.xml"), 3, &[]);
}

/// SIPp as the TCP gateway answering; the next-hop simulator calls out to it.
fn next_hop_calls_out(uas: &str, duration: u32) -> (serde_json::Value, String) {
    next_hop_calls_out_with(uas, duration, Setup::default(), "sip:+15551234@gw2", &[])
}

/// As [`next_hop_calls_out`] with a set-up whose `gw2_port` SIPp listens on, a callee URI and
/// further arguments for the calling simulator.
fn next_hop_calls_out_with(
    uas: &str,
    duration: u32,
    setup: Setup,
    to: &'static str,
    extra: &[&str],
) -> (serde_json::Value, String) {
    let lab = Lab::new();
    let m = Mediation::start(&lab, &setup);
    let gw2_port = setup.gw2_port;
    let args: Vec<String> = vec![
        "-sf".into(),
        scenario(uas).display().to_string(),
        "-p".into(),
        gw2_port.to_string(),
        "-m".into(),
        "1".into(),
    ];
    let (report, (ok, good, failed, output)) = std::thread::scope(|scope| {
        let server = scope.spawn(|| sipp(&lab, uas, &args));
        e2e::wait_port(gw2_port);
        let (_, report) = Caller {
            lab: &lab,
            port: m.ports.next_hop,
            transport: "tls",
            cert: Some("nexthop"),
            srtp: "offer",
            to,
            duration,
            extra: extra.iter().map(|a| a.to_string()).collect(),
        }
        .run(&format!("call-{uas}"));
        (report, server.join().unwrap())
    });
    assert!(
        ok && good == 1 && failed == 0,
        "SIPp {uas}:\n{output}\nmediation:\n{}",
        m.log_text()
    );
    std::thread::sleep(Duration::from_millis(200));
    (report, m.log_text())
}

#[test]
fn sipp_busy_gateway_486_is_relayed() {
    let (report, _) = next_hop_calls_out("uas_486.xml", 1);
    assert_eq!(
        report["calls"][0]["sip_status"].as_u64(),
        Some(486),
        "{report:#}"
    );
}

#[test]
fn sipp_early_media_183_then_answer() {
    let (report, log) = next_hop_calls_out("uas_183.xml", 1);
    assert_eq!(
        report["calls"][0]["sip_status"].as_u64(),
        Some(200),
        "{report:#}"
    );
    assert!(log.contains("early media from the callee"), "{log}");
}

#[test]
fn sipp_gateway_gets_session_refreshes_when_the_trunk_enables_session_timers() {
    // A third gateway at SIPp's port with session timers on; SIPp answers with a 90 s interval
    // that we refresh, so an UPDATE must reach it 45 s into the 50 s call.
    let mut setup = Setup {
        // SIPp sends no media: a one-sided media timeout would end the call first.
        media_timeout_secs: 0,
        ..Setup::default()
    };
    setup.extra = format!(
        "[[gateway]]\nname = \"gw3\"\naddress = \"127.0.0.1:{}\"\ntransport = \"tcp\"\n\
         srtp = \"not-supported\"\noptions_interval_secs = 0\nenable_session_timer = true\n",
        setup.gw2_port
    );
    let (report, log) =
        next_hop_calls_out_with("uas_session_timer.xml", 50, setup, "sip:+15551234@gw3", &[]);
    let call = &report["calls"][0];
    assert_eq!(call["sip_status"].as_u64(), Some(200), "{report:#}");
    // SIPp's scenario only completes if the UPDATE came (its statistics are checked in
    // next_hop_calls_out_with); the call then ran its full length.
    assert!(
        call["packets_sent"].as_u64().unwrap_or(0) > 2000,
        "{report:#}"
    );
    assert!(!log.contains("session timer expired"), "{log}");
}

/// A trunk's number rules and `remove_plus` as SIPp, the gateway, receives them: its scenario
/// answers only an INVITE whose Request-URI and To carry the translated called number and whose
/// From carries the calling number without its `+` (a mismatch fails the call in SIPp).
#[test]
fn sipp_gateway_receives_numbers_translated_by_the_trunk_rules() {
    let mut setup = Setup {
        media_timeout_secs: 0,
        ..Setup::default()
    };
    setup.extra = format!(
        "[[gateway]]\nname = \"gw3\"\naddress = \"127.0.0.1:{}\"\ntransport = \"tcp\"\n\
         srtp = \"not-supported\"\noptions_interval_secs = 0\nremove_plus = true\n\
         [[gateway.number_rules]]\nnumber = \"called\"\npattern = '^\\+1(\\d{{10}})$'\n\
         replace = '1$1'\n",
        setup.gw2_port
    );
    let (report, log) = next_hop_calls_out_with(
        "uas_numbers.xml",
        1,
        setup,
        "sip:+15551234567@gw3",
        &["--from", "sip:+15550009@nexthop.example.test"],
    );
    assert_eq!(
        report["calls"][0]["sip_status"].as_u64(),
        Some(200),
        "{report:#}"
    );
    assert!(
        log.contains("numbers translated by the trunk's rules"),
        "{log}"
    );
}

/// SIPp as a TCP gateway on IPv6 (`-i ::1`) calling through to the IPv4 next hop: each leg in
/// its own family. SIPp's own statistics show the calls complete, and the answer it got
/// offers our media on IPv6.
#[test]
fn sipp_gateway_over_ipv6_calls_an_ipv4_next_hop() {
    let lab = Lab::new();
    let setup = Setup {
        gateway_host: "::1",
        ..Setup::default()
    };
    let nh = Sim::answer(
        &lab,
        "v6-nexthop",
        setup.next_hop_port,
        Some("nexthop"),
        "offer",
    );
    let m = Mediation::start(&lab, &setup);
    let args: Vec<String> = vec![
        "-sn".into(),
        "uac".into(),
        format!("[::1]:{}", m.ports.gateway_tcp),
        "-s".into(),
        "+15551234".into(),
        "-p".into(),
        free_port().to_string(),
        "-m".into(),
        "3".into(),
    ];
    let run = e2e::sipp::run(&lab, "uac-v6", "t1", "::1", &args);
    assert!(
        run.ok && run.good == 3 && run.failed == 0,
        "SIPp over IPv6: {} good, {} failed\n{}\nmediation:\n{}",
        run.good,
        run.failed,
        run.output,
        m.log_text()
    );
    assert!(run.messages.contains("c=IN IP6 ::1"), "{}", run.messages);
    assert!(!run.messages.contains("c=IN IP4"), "{}", run.messages);
    let report = nh.stop();
    assert_eq!(
        report["calls"].as_array().map(Vec::len),
        Some(3),
        "{report:#}"
    );
}
