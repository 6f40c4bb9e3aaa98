//! The appliance as containers, deployed the way the README tells users to:
//! `deploy/build-images.sh` builds the FROM-scratch images and `deploy/compose.yaml` brings up
//! the mediation container beside an MTLS gateway (gw1), a plain-TCP gateway (gw2) and a next
//! hop, all simulators in containers of their own on 172.28.0.0/24. Then:
//!
//! 1. calls both ways from the simulator containers: gw1's leg is SRTP, gw2's plain RTP, the
//!    next-hop leg always SRTP, no packet lost; the container's `/metrics` (published port,
//!    scraped from the host) counts them with the same encryption labels;
//! 2. `compose stop mediation` during two calls: a new INVITE gets 503, the two calls end with
//!    BYE on both legs after `[sip] drain_timeout_secs`, and the container exits 0;
//! 3. mediation started again, a gateway container killed mid-call: the call is torn down on
//!    the next-hop side (BYE) and counted;
//! 4. the answering simulators' own reports: every call they answered ended with a BYE from
//!    the mediation container, on the encryption the rules say.
//!
//! Run by `tests/run.sh` (and so `.ci/run`) when a Docker Engine is present; without one it
//! prints `SKIPPED: no Docker Engine: <reason>` and passes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use e2e::{http_get, sample};
use serde_json::Value;

/// The compose project: fixed, so a run killed half-way is cleaned up by the next one.
const PROJECT: &str = "mediatione2e";
const TAG: &str = "dev";
/// The mediation container's fixed address and its metrics port published on the host.
const MEDIATION: &str = "172.28.0.10";
const METRICS: u16 = 19464;
const CERTS: &str = "/etc/mediation/certs";
/// compose/mediation.toml's `[sip] drain_timeout_secs` and compose.yaml's `stop_grace_period`.
const DRAIN: Duration = Duration::from_secs(5);
const GRACE: Duration = Duration::from_secs(15);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

/// Runs `cmd`, panics with its output unless it succeeds; its stdout.
fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(out.status.success(), "{cmd:?} failed:\n{}", text(&out));
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn docker(args: &[&str]) -> Command {
    let mut c = Command::new("docker");
    c.args(args);
    c
}

/// Why this machine cannot run containers, if it cannot.
fn no_docker_engine() -> Option<String> {
    match Command::new("docker").arg("info").output() {
        Err(e) => Some(format!("`docker info`: {e}")),
        Ok(o) if !o.status.success() => Some(format!(
            "`docker info` failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Ok(_) => None,
    }
}

/// `docker compose` (v2) when the plugin is here, else `docker-compose` (v1, Debian's).
fn compose_program() -> Vec<&'static str> {
    let works = |argv: &[&str]| {
        Command::new(argv[0])
            .args(&argv[1..])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if works(&["docker", "compose", "version"]) {
        vec!["docker", "compose"]
    } else if works(&["docker-compose", "version"]) {
        vec!["docker-compose"]
    } else {
        panic!(
            "a Docker Engine is here but neither `docker compose` nor `docker-compose` is \
             (tests/run.sh installs Debian's docker-compose)"
        )
    }
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A GET on the published metrics port: the body, or nothing when it does not answer (the
/// host's docker-proxy accepts connections even while nothing listens in the container).
fn try_get(path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", METRICS)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

fn metrics() -> String {
    http_get(METRICS, "/metrics")
}

fn metric(name: &str) -> f64 {
    sample(&metrics(), name)
}

/// The compose deployment, taken down with its volume when the test ends (pass or fail).
struct Deployment {
    compose: Vec<&'static str>,
    /// Container id per service (ids survive stop and start).
    ids: HashMap<String, String>,
}

impl Deployment {
    fn compose(&self, args: &[&str]) -> Command {
        let mut c = Command::new(self.compose[0]);
        c.current_dir(repo())
            .args(&self.compose[1..])
            .args(["-p", PROJECT, "-f", "deploy/compose.yaml"])
            .args(args)
            .env("TAG", TAG)
            .env("IMAGE_PREFIX", "");
        c
    }

    fn up(compose: Vec<&'static str>) -> Self {
        let mut d = Deployment {
            compose,
            ids: HashMap::new(),
        };
        // Whatever a run killed half-way left behind.
        let _ = run(&mut d.compose(&["down", "-v", "--remove-orphans", "-t", "1"]));
        ok(&mut d.compose(&["up", "-d"]));
        for service in ["mediation", "nexthop", "gw1", "gw2"] {
            let id = ok(&mut d.compose(&["ps", "-q", service]))
                .trim()
                .to_string();
            assert!(!id.is_empty(), "no container for {service}");
            d.ids.insert(service.to_string(), id);
        }
        d
    }

    fn id(&self, service: &str) -> &str {
        &self.ids[service]
    }

    fn inspect(&self, service: &str, format: &str) -> String {
        ok(&mut docker(&["inspect", "-f", format, self.id(service)]))
            .trim()
            .to_string()
    }

    /// stdout and stderr of a container since it was created.
    fn logs(&self, service: &str) -> (String, String) {
        let out = run(&mut docker(&["logs", self.id(service)]));
        (
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }

    fn all_logs(&self, service: &str) -> String {
        let (out, err) = self.logs(service);
        out + &err
    }

    /// Docker says healthy (the image's HEALTHCHECK) and the published metrics port answers.
    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let health = self.inspect("mediation", "{{.State.Health.Status}}");
            if health == "healthy" && try_get("/healthz").is_some_and(|b| b.starts_with("ok")) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "mediation container is {health}, never healthy:\n{}",
                self.all_logs("mediation")
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// `gateway-sim call` in a simulator's container: its JSON report.
    fn call(&self, service: &str, args: &[String]) -> Value {
        let out = run(docker(&[
            "exec",
            self.id(service),
            "/usr/local/bin/gateway-sim",
            "call",
            "--report",
            "-",
        ])
        .args(args));
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("no report from a call in {service} ({e}):\n{}", text(&out)))
    }

    /// The report an answering simulator prints when it is stopped (`--report -`).
    fn answerer_report(&self, service: &str) -> Value {
        let (out, err) = self.logs(service);
        let last_run = out
            .rsplit("gateway-sim: answering on")
            .next()
            .unwrap_or_default();
        let json = &last_run[last_run.find('{').unwrap_or(last_run.len())..];
        serde_json::Deserializer::from_str(json)
            .into_iter::<Value>()
            .next()
            .and_then(Result::ok)
            .unwrap_or_else(|| panic!("no report in {service}'s output:\n{out}\n{err}"))
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let out = run(&mut self.compose(&["logs", "--no-color", "--tail", "60"]));
            eprintln!("--- compose logs ---\n{}", text(&out));
        }
        let _ = run(&mut self.compose(&["down", "-v", "--remove-orphans", "-t", "5"]));
    }
}

/// Arguments of `gateway-sim call` from one of the simulators: gw1 (MTLS) and gw2 (TCP) call
/// in toward the next hop; the next hop calls out to `to_gateway`.
fn call_args(from: &str, to_gateway: Option<&str>, secs: u32) -> Vec<String> {
    let tls = |cert: &str| {
        vec![
            "--transport".to_string(),
            "tls".into(),
            "--cert".into(),
            format!("{CERTS}/{cert}.pem"),
            "--key".into(),
            format!("{CERTS}/{cert}-key.pem"),
            "--ca".into(),
            format!("{CERTS}/ca.pem"),
            "--server-name".into(),
            "mediation.example.test".into(),
        ]
    };
    let (port, mut args, srtp, ip, to) = match from {
        "gw1" => (
            5067,
            tls("gateway"),
            "offer",
            "172.28.0.31",
            "mediation.example.test",
        ),
        "gw2" => (
            5068,
            vec!["--transport".into(), "tcp".into()],
            "accept",
            "172.28.0.32",
            "mediation.example.test",
        ),
        "nexthop" => (
            5070,
            tls("nexthop"),
            "offer",
            "172.28.0.20",
            to_gateway.expect("the gateway the next hop calls"),
        ),
        other => panic!("no simulator {other}"),
    };
    args.extend([
        "--target".into(),
        format!("{MEDIATION}:{port}"),
        "--to".into(),
        format!("sip:+15551234@{to}"),
        "--srtp".into(),
        srtp.into(),
        "--duration".into(),
        secs.to_string(),
        "--media-ip".into(),
        ip.into(),
    ]);
    args
}

/// An answered call with media both ways, nothing lost, on the expected protection.
fn check_call(what: &str, report: &Value, encrypted: bool) {
    let c = &report["calls"][0];
    assert_eq!(c["sip_status"].as_u64(), Some(200), "{what}: {report:#}");
    assert_eq!(c["error"], Value::Null, "{what}: {report:#}");
    assert_eq!(c["wire_encrypted"], encrypted, "{what}: {report:#}");
    assert_eq!(c["payload_ok"], true, "{what}: {report:#}");
    assert_eq!(c["packets_lost"].as_u64(), Some(0), "{what}: {report:#}");
    assert!(
        c["packets_received"].as_u64().unwrap_or(0) >= 100,
        "{what}: {report:#}"
    );
}

#[test]
fn compose_deployment_encrypts_by_the_rules_drains_on_stop_and_survives_a_dead_gateway() {
    if let Some(why) = no_docker_engine() {
        println!("SKIPPED: no Docker Engine: {why}");
        return;
    }
    let compose = compose_program();
    let started = Instant::now();
    let phase = |what: &str| println!("[{:>5.1}s] {what}", started.elapsed().as_secs_f64());

    // The images, exactly as users build them.
    phase("deploy/build-images.sh");
    let build = run(Command::new(repo().join("deploy/build-images.sh"))
        .env("TAG", TAG)
        .env("IMAGE_PREFIX", ""));
    assert!(build.status.success(), "build-images.sh:\n{}", text(&build));
    println!("{}", String::from_utf8_lossy(&build.stdout).trim_end());
    let size: u64 = ok(&mut docker(&[
        "image",
        "inspect",
        "-f",
        "{{.Size}}",
        "mediation:dev",
    ]))
    .trim()
    .parse()
    .unwrap();
    assert!(size < 25_000_000, "mediation:dev is {size} bytes");
    print!(
        "{}",
        ok(&mut docker(&[
            "image",
            "ls",
            "--format",
            "{{.Repository}}:{{.Tag}}  {{.Size}}",
            "mediation*:dev",
        ]))
    );
    let config = ok(&mut docker(&[
        "image",
        "inspect",
        "-f",
        "{{.Config.User}} {{json .Config.Healthcheck.Test}} {{.Config.StopSignal}}",
        "mediation:dev",
    ]));
    assert_eq!(
        config.trim(),
        r#"10001:10001 ["CMD","/usr/local/bin/mediation","health"] SIGTERM"#
    );
    // The scrape configuration for the lab (Prometheus on the host) is valid.
    ok(Command::new("promtool").current_dir(repo()).args([
        "check",
        "config",
        "deploy/compose/prometheus.yml",
    ]));

    phase(&format!("{} up", compose.join(" ")));
    let lab = Deployment::up(compose);
    lab.wait_healthy();
    phase("healthy");

    // 1. Calls both ways, at once: the MTLS gateway's leg is SRTP, the TCP gateway's plain
    //    RTP, and the next-hop leg SRTP in every call (the next hop's own report).
    let [gw1_in, gw2_in, out_gw1, out_gw2] = std::thread::scope(|s| {
        [
            s.spawn(|| lab.call("gw1", &call_args("gw1", None, 3))),
            s.spawn(|| lab.call("gw2", &call_args("gw2", None, 3))),
            s.spawn(|| lab.call("nexthop", &call_args("nexthop", Some("gw1"), 3))),
            s.spawn(|| lab.call("nexthop", &call_args("nexthop", Some("gw2"), 3))),
        ]
        .map(|h| h.join().unwrap())
    });
    check_call("gw1 (MTLS) -> next hop, gw1's leg", &gw1_in, true);
    check_call("gw2 (TCP) -> next hop, gw2's leg", &gw2_in, false);
    check_call("next hop -> gw1, the next hop's leg", &out_gw1, true);
    check_call("next hop -> gw2, the next hop's leg", &out_gw2, true);
    // The container's own counters, scraped from the host through the published port.
    let m = metrics();
    for (series, want) in [
        ("mediation_calls_total{direction=\"inbound\",gateway=\"gw1\",gateway_media=\"srtp\",result=\"answered\"}", 1.0),
        ("mediation_calls_total{direction=\"inbound\",gateway=\"gw2\",gateway_media=\"rtp\",result=\"answered\"}", 1.0),
        ("mediation_calls_total{direction=\"outbound\",gateway=\"gw1\",gateway_media=\"srtp\",result=\"answered\"}", 1.0),
        ("mediation_calls_total{direction=\"outbound\",gateway=\"gw2\",gateway_media=\"rtp\",result=\"answered\"}", 1.0),
        ("mediation_gateway_media_decisions_total{gateway=\"gw2\",gateway_media=\"rtp\",reason=\"tcp_transport\"}", 2.0),
        ("mediation_active_calls{gateway_media=\"srtp\"}", 0.0),
        ("mediation_active_calls{gateway_media=\"rtp\"}", 0.0),
    ] {
        assert_eq!(sample(&m, series), want, "{series}\n{m}");
    }
    for leg in ["next_hop", "gateway"] {
        let srtp = format!(
            "mediation_media_packets_total{{direction=\"in\",leg=\"{leg}\",protection=\"srtp\"}}"
        );
        assert!(sample(&m, &srtp) > 0.0, "{srtp}\n{m}");
    }
    assert_eq!(
        sample(
            &m,
            "mediation_media_packets_total{direction=\"in\",leg=\"next_hop\",protection=\"rtp\"}"
        ),
        0.0,
        "plain RTP on the next-hop leg:\n{m}"
    );
    phase("calls both ways: encryption by the rules, zero loss, counted");

    // 2. Graceful stop during two calls (one in from gw1, one out to gw2).
    let (drained_in, drained_out, refused, stopped_after) = std::thread::scope(|s| {
        let a = s.spawn(|| lab.call("gw1", &call_args("gw1", None, 60)));
        let b = s.spawn(|| lab.call("nexthop", &call_args("nexthop", Some("gw2"), 60)));
        wait_until("both long calls up", Duration::from_secs(20), || {
            let m = metrics();
            sample(&m, "mediation_active_calls{gateway_media=\"srtp\"}") >= 1.0
                && sample(&m, "mediation_active_calls{gateway_media=\"rtp\"}") >= 1.0
        });
        std::thread::sleep(Duration::from_secs(1));
        let t0 = Instant::now();
        let stop = s.spawn(|| ok(&mut lab.compose(&["stop", "mediation"])));
        wait_until("mediation draining", DRAIN, || {
            lab.all_logs("mediation")
                .contains("draining: new calls get 503")
        });
        let refused = lab.call("gw2", &call_args("gw2", None, 2));
        stop.join().unwrap();
        let stopped_after = t0.elapsed();
        (a.join().unwrap(), b.join().unwrap(), refused, stopped_after)
    });
    assert_eq!(
        refused["calls"][0]["sip_status"].as_u64(),
        Some(503),
        "a new call while draining: {refused:#}"
    );
    for (what, r) in [
        ("gw1 -> next hop", &drained_in),
        ("next hop -> gw2", &drained_out),
    ] {
        let c = &r["calls"][0];
        assert_eq!(c["sip_status"].as_u64(), Some(200), "{what}: {r:#}");
        assert_eq!(
            c["hangup_by"], "peer",
            "{what}: ended by mediation's BYE: {r:#}"
        );
        assert_eq!(c["packets_lost"].as_u64(), Some(0), "{what}: {r:#}");
        assert!(
            c["packets_received"].as_u64().unwrap_or(0) >= 100,
            "{what}: {r:#}"
        );
    }
    assert!(
        stopped_after >= DRAIN && stopped_after < GRACE,
        "stopped after {stopped_after:?}: drained {DRAIN:?}, not killed at {GRACE:?}"
    );
    let logs = lab.all_logs("mediation");
    assert_eq!(
        lab.inspect("mediation", "{{.State.ExitCode}} {{.State.OOMKilled}}"),
        "0 false",
        "{logs}"
    );
    assert!(
        logs.contains("drain timeout: ending the remaining calls with BYE"),
        "{logs}"
    );
    phase(&format!(
        "stop during calls: 503 to a new call, BYE both ways, exit 0 after {:.1}s",
        stopped_after.as_secs_f64()
    ));

    // 3. A gateway dies mid-call: the next hop's call is torn down and counted.
    ok(&mut lab.compose(&["start", "mediation"]));
    lab.wait_healthy();
    let (dead_gw, torn_down_after) = std::thread::scope(|s| {
        let call = s.spawn(|| lab.call("nexthop", &call_args("nexthop", Some("gw1"), 60)));
        wait_until("the call to gw1 up", Duration::from_secs(20), || {
            metric("mediation_active_calls{gateway_media=\"srtp\"}") >= 1.0
        });
        std::thread::sleep(Duration::from_secs(1));
        let killed = Instant::now();
        ok(&mut docker(&["kill", lab.id("gw1")]));
        (call.join().unwrap(), killed.elapsed())
    });
    let c = &dead_gw["calls"][0];
    assert_eq!(c["sip_status"].as_u64(), Some(200), "{dead_gw:#}");
    assert_eq!(
        c["hangup_by"], "peer",
        "ended by mediation's BYE: {dead_gw:#}"
    );
    assert!(
        torn_down_after < Duration::from_secs(15),
        "torn down {torn_down_after:?} after the kill"
    );
    let m = metrics();
    let outbound = |result: &str| {
        sample(
            &m,
            &format!("mediation_calls_total{{direction=\"outbound\",gateway=\"gw1\",gateway_media=\"srtp\",result=\"{result}\"}}"),
        )
    };
    assert_eq!(
        outbound("connection_lost") + outbound("media_timeout"),
        1.0,
        "the dead gateway's call is counted:\n{m}"
    );
    assert_eq!(
        sample(&m, "mediation_active_calls{gateway_media=\"srtp\"}"),
        0.0,
        "{m}"
    );
    phase(&format!(
        "gateway killed mid-call: next hop's call ended {:.1}s later (connection_lost {}, media_timeout {})",
        torn_down_after.as_secs_f64(),
        outbound("connection_lost"),
        outbound("media_timeout")
    ));

    // 4. The answering side of every call: the next hop answered the three calls from the
    //    gateways (one drained), gw2 the two from the next hop (one drained). Each ended with
    //    a BYE from mediation, the next-hop leg on SRTP, gw2's on plain RTP.
    ok(&mut lab.compose(&["stop", "nexthop", "gw2"]));
    for (service, calls, encrypted) in [("nexthop", 3, true), ("gw2", 2, false)] {
        let r = lab.answerer_report(service);
        let list = r["calls"].as_array().expect("calls");
        assert_eq!(list.len(), calls, "{service} answered: {r:#}");
        for c in list {
            assert_eq!(c["direction"], "incoming", "{service}: {c:#}");
            assert_eq!(c["sip_status"].as_u64(), Some(200), "{service}: {c:#}");
            assert_eq!(c["hangup_by"], "peer", "{service}: {c:#}");
            assert_eq!(c["error"], Value::Null, "{service}: {c:#}");
            assert_eq!(c["wire_encrypted"], encrypted, "{service}: {c:#}");
            assert_eq!(c["packets_lost"].as_u64(), Some(0), "{service}: {c:#}");
        }
    }
    phase("answerers' reports: every call ended by mediation's BYE, encrypted by the rules");
    drop(lab);
    phase("compose down");
}
