//! Failover across gateways through a real `mediation` process: the route's first gateway is
//! unreachable, the call completes on the second, OPTIONS marks the first down (skipped
//! afterwards) and up again when it returns.

use std::time::{Duration, Instant};

use e2e::{http_get, sample, Caller, Lab, Mediation, Setup, Sim};

fn gateway_up(m: &Mediation, gateway: &str) -> f64 {
    sample(
        &http_get(m.ports.metrics, "/metrics"),
        &format!("mediation_gateway_up{{gateway=\"{gateway}\"}}"),
    )
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn unreachable_first_gateway_fails_over_and_is_marked_down_then_up() {
    let lab = Lab::new();
    let setup = Setup {
        options_interval_secs: 1,
        extra: "[[route]]\npattern = \"^\\\\+1\"\ngateways = [\"gw1\", \"gw2\"]\n".into(),
        ..Setup::default()
    };
    // gw1 (MTLS) is not running; gw2 (TCP) answers.
    let gw2 = Sim::answer(&lab, "failover-gw2", setup.gw2_port, None, "accept");
    let m = Mediation::start(&lab, &setup);
    let call = |name: &str| {
        Caller {
            lab: &lab,
            port: m.ports.next_hop,
            transport: "tls",
            cert: Some("nexthop"),
            srtp: "offer",
            to: "sip:+15551234@anywhere",
            duration: 1,
            extra: vec![],
        }
        .run(name)
    };
    let (ok, report) = call("failover-1");
    assert!(ok, "{report:#}\n{}", m.log_text());
    let metrics = http_get(m.ports.metrics, "/metrics");
    assert_eq!(
        sample(&metrics, "mediation_calls_total{direction=\"outbound\",gateway=\"gw2\",gateway_media=\"rtp\",result=\"answered\"}"),
        1.0,
        "{metrics}"
    );
    wait_until("gw1 marked down", || gateway_up(&m, "gw1") == 0.0);
    assert_eq!(gateway_up(&m, "gw2"), 1.0);

    // Down: skipped straight away, no failover needed.
    let failovers = |m: &Mediation| {
        sample(
            &http_get(m.ports.metrics, "/metrics"),
            "mediation_gateway_failovers_total{gateway=\"gw1\"}",
        )
    };
    let before = failovers(&m);
    let (ok, report) = call("failover-2");
    assert!(ok, "{report:#}");
    assert_eq!(failovers(&m), before, "a down gateway is not even tried");

    // gw1 comes back: marked up, and the next call goes to it (SRTP over MTLS).
    let gw1 = Sim::answer(
        &lab,
        "failover-gw1",
        setup.gw1_port,
        Some("gateway"),
        "accept",
    );
    wait_until("gw1 marked up", || gateway_up(&m, "gw1") == 1.0);
    let (ok, report) = call("failover-3");
    assert!(ok, "{report:#}");
    let gw1_report = gw1.stop();
    assert_eq!(
        gw1_report["summary"]["calls_ok"].as_u64(),
        Some(1),
        "{gw1_report:#}"
    );
    assert_eq!(
        gw1_report["calls"][0]["wire_encrypted"], true,
        "{gw1_report:#}"
    );
    let gw2_report = gw2.stop();
    assert_eq!(
        gw2_report["summary"]["calls_ok"].as_u64(),
        Some(2),
        "{gw2_report:#}"
    );
}
