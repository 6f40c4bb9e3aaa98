//! tel: URIs (RFC 3966) as carriers and gateways send them, against SIPp (Debian `sip-tester`),
//! a SIP stack nobody here wrote, over TCP and over UDP, through a real `mediation` process
//! with a `gateway-sim` next hop over MTLS: a tel: Request-URI with visual separators and
//! number-portability parameters, tel: From, To and P-Asserted-Identity, and a vendor header.
//! The call must complete (SIPp's statistics), and the INVITE we send the next hop (read from
//! our own SIP trace) must carry the number as a sip: URI with `user=phone`, the
//! P-Asserted-Identity and the vendor header byte for byte (`[sip] pass_headers`).

use e2e::sipp::{run, scenario};
use e2e::{free_port, Lab, Mediation, Setup, Sim};

/// The lab: a next hop answering with SRTP, our SIP trace on, `X-*` headers passed on, and
/// (for UDP) a UDP gateway `gw3` at `sipp_port`.
fn setup(sipp_port: u16, udp: bool) -> Setup {
    let mut setup = Setup {
        log_level: "debug",
        sip_extra: "pass_headers = [\"X-*\"]".into(),
        ..Setup::default()
    };
    if udp {
        setup.gateway_udp = Some(free_port());
        setup.extra = format!(
            "[[gateway]]\nname = \"gw3\"\naddress = \"127.0.0.1:{sipp_port}\"\n\
             transport = \"udp\"\nsrtp = \"optional\"\noptions_interval_secs = 0\n"
        );
    }
    setup
}

fn tel_call(udp: bool) {
    let lab = Lab::new();
    let sipp_port = free_port();
    let setup = setup(sipp_port, udp);
    let nh = Sim::answer(
        &lab,
        "tel-nexthop",
        setup.next_hop_port,
        Some("nexthop"),
        "offer",
    );
    let m = Mediation::start(&lab, &setup);
    let (transport, target) = match setup.gateway_udp {
        Some(port) => ("u1", port),
        None => ("t1", m.ports.gateway_tcp),
    };
    let args: Vec<String> = vec![
        "-sf".into(),
        scenario("uac_tel.xml").display().to_string(),
        format!("127.0.0.1:{target}"),
        "-p".into(),
        sipp_port.to_string(),
        "-m".into(),
        "2".into(),
    ];
    let sipp = run(
        &lab,
        &format!("tel-{transport}"),
        transport,
        "127.0.0.1",
        &args,
    );
    let log = m.log_text();
    assert!(
        sipp.ok && sipp.good == 2 && sipp.failed == 0,
        "SIPp over {transport}: {} good, {} failed\n{}\nmediation:\n{log}",
        sipp.good,
        sipp.failed,
        sipp.output
    );
    // Our trace of the INVITE we sent the next hop (JSON-escaped CR LF).
    let invite_line = format!(
        "INVITE sip:+15551234567@127.0.0.1:{};transport=tls;user=phone SIP/2.0\\r\\n",
        setup.next_hop_port
    );
    let sent = log
        .lines()
        .find(|l| l.contains(&invite_line))
        .unwrap_or_else(|| panic!("no INVITE {invite_line} in the trace:\n{log}"));
    for field in [
        "From: <sip:+15559876543@",
        "P-Asserted-Identity: <tel:+15559876543>\\r\\n",
        "X-Carrier-Route: trunk-7 ; q=1\\r\\n",
    ] {
        assert!(sent.contains(field), "{field} missing in {sent}");
    }
    let report = nh.stop();
    assert_eq!(
        report["calls"].as_array().map(Vec::len),
        Some(2),
        "{report:#}"
    );
}

#[test]
fn sipp_tel_uris_over_tcp() {
    tel_call(false);
}

#[test]
fn sipp_tel_uris_over_udp() {
    tel_call(true);
}
