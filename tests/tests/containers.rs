//! The appliance as containers, as users deploy it: `deploy/build-images.sh` builds the
//! FROM-scratch images, `deploy/compose.yaml` brings up the mediation container beside an MTLS
//! gateway, a TCP gateway and a next hop (simulators), and calls go through it both ways. Then
//! `docker stop` during a call drains and ends it with BYE and exits 0, and a gateway killed
//! mid-call is torn down on the next-hop side and counted. Skipped, saying why, when this
//! machine has no Docker Engine.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use e2e::{http_get, sample};
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    out
}

fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A compose project, brought down (with its volume) when the test ends.
struct Project {
    name: String,
}

impl Project {
    fn compose(&self) -> Command {
        let mut c = Command::new("docker-compose");
        c.current_dir(repo())
            .args(["-p", &self.name, "-f", "deploy/compose.yaml"]);
        c
    }

    fn container(&self, service: &str) -> String {
        format!("{}_{service}_1", self.name)
    }

    fn inspect(&self, service: &str, format: &str) -> String {
        let out =
            run(Command::new("docker").args(["inspect", "-f", format, &self.container(service)]));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.inspect("mediation", "{{.State.Health.Status}}") != "healthy" {
            assert!(
                Instant::now() < deadline,
                "mediation container never healthy; logs:\n{}",
                self.logs("mediation")
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn logs(&self, service: &str) -> String {
        let out = run(Command::new("docker").args(["logs", &self.container(service)]));
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
    }

    /// `gateway-sim call` inside a simulator container; its JSON report.
    fn call(&self, service: &str, args: &[&str]) -> Value {
        let out = run(Command::new("docker")
            .args([
                "exec",
                &self.container(service),
                "/usr/local/bin/gateway-sim",
                "call",
                "--report",
                "-",
            ])
            .args(args));
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!(
                "no report from {service} ({e}):\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self.compose().args(["down", "-v", "-t", "5"]).output();
    }
}

const CERTS: &str = "/etc/mediation/certs";

fn tls_args(cert: &str) -> Vec<String> {
    vec![
        "--transport".into(),
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
}

fn metric(name: &str) -> f64 {
    sample(&http_get(19464, "/metrics"), name)
}

fn check_call(what: &str, report: &Value, encrypted: bool) {
    let c = &report["calls"][0];
    assert_eq!(c["sip_status"].as_u64(), Some(200), "{what}: {report:#}");
    assert_eq!(c["wire_encrypted"], encrypted, "{what}: {report:#}");
    assert_eq!(c["payload_ok"], true, "{what}: {report:#}");
    assert_eq!(c["packets_lost"].as_u64(), Some(0), "{what}: {report:#}");
    assert!(
        c["packets_received"].as_u64().unwrap_or(0) > 100,
        "{what}: {report:#}"
    );
}

#[test]
fn compose_deployment_encrypts_by_the_rules_drains_on_stop_and_survives_a_dead_gateway() {
    if let Err(why) = Command::new("docker")
        .arg("info")
        .output()
        .map_err(|e| e.to_string())
        .and_then(|o| {
            if o.status.success() {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&o.stderr).to_string())
            }
        })
    {
        println!("SKIPPED: no Docker Engine here: {why}");
        return;
    }
    let built = ok(&mut Command::new(repo().join("deploy/build-images.sh")));
    println!("images:\n{built}");
    let project = Project {
        name: format!("mediationtest{}", std::process::id()),
    };
    ok(project.compose().args(["up", "-d"]));
    project.wait_healthy();

    // Calls in: the MTLS gateway gets SRTP, the TCP gateway plain RTP; the next-hop leg is SRTP.
    let mut args: Vec<String> = vec!["--target".into(), "172.28.0.10:5067".into()];
    args.extend(tls_args("gateway"));
    args.extend(
        [
            "--to",
            "sip:+15551234@mediation",
            "--srtp",
            "offer",
            "--duration",
            "3",
            "--media-ip",
            "172.28.0.31",
        ]
        .map(String::from),
    );
    let report = project.call("gw1", &args.iter().map(String::as_str).collect::<Vec<_>>());
    check_call("gw1 (MTLS) -> internal", &report, true);
    let report = project.call(
        "gw2",
        &[
            "--target",
            "172.28.0.10:5068",
            "--transport",
            "tcp",
            "--to",
            "sip:+15551234@mediation",
            "--srtp",
            "accept",
            "--duration",
            "3",
            "--media-ip",
            "172.28.0.32",
        ],
    );
    check_call("gw2 (TCP) -> internal", &report, false);
    // Calls out: the next hop calls each gateway; its own leg is SRTP.
    for gw in ["gw1", "gw2"] {
        let mut args: Vec<String> = vec!["--target".into(), "172.28.0.10:5070".into()];
        args.extend(tls_args("nexthop"));
        args.extend([
            "--to".into(),
            format!("sip:+15551234@{gw}"),
            "--srtp".into(),
            "offer".into(),
            "--duration".into(),
            "3".into(),
            "--media-ip".into(),
            "172.28.0.20".into(),
        ]);
        let report = project.call(
            "nexthop",
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        check_call(&format!("internal -> {gw}"), &report, true);
    }
    // The container's own counters say the same.
    let metrics = http_get(19464, "/metrics");
    for (series, want) in [
        ("mediation_calls_total{direction=\"inbound\",gateway=\"gw1\",gateway_media=\"srtp\",result=\"answered\"}", 1.0),
        ("mediation_calls_total{direction=\"inbound\",gateway=\"gw2\",gateway_media=\"rtp\",result=\"answered\"}", 1.0),
        ("mediation_calls_total{direction=\"outbound\",gateway=\"gw1\",gateway_media=\"srtp\",result=\"answered\"}", 1.0),
        ("mediation_calls_total{direction=\"outbound\",gateway=\"gw2\",gateway_media=\"rtp\",result=\"answered\"}", 1.0),
        ("mediation_gateway_media_decisions_total{gateway=\"gw2\",gateway_media=\"rtp\",reason=\"tcp_transport\"}", 2.0),
    ] {
        assert_eq!(sample(&metrics, series), want, "{series}\n{metrics}");
    }

    // docker stop during a call: drained, the call ended with BYE, a clean exit.
    let long: Vec<String> = {
        let mut a: Vec<String> = vec!["--target".into(), "172.28.0.10:5067".into()];
        a.extend(tls_args("gateway"));
        a.extend(
            [
                "--to",
                "sip:+15551234@mediation",
                "--srtp",
                "offer",
                "--duration",
                "30",
                "--media-ip",
                "172.28.0.31",
            ]
            .map(String::from),
        );
        a
    };
    let report = std::thread::scope(|scope| {
        let call = scope
            .spawn(|| project.call("gw1", &long.iter().map(String::as_str).collect::<Vec<_>>()));
        std::thread::sleep(Duration::from_secs(4));
        ok(Command::new("docker").args(["stop", "-t", "20", &project.container("mediation")]));
        call.join().unwrap()
    });
    let c = &report["calls"][0];
    assert_eq!(c["sip_status"].as_u64(), Some(200), "{report:#}");
    assert_eq!(c["hangup_by"], "peer", "ended by our BYE: {report:#}");
    assert!(
        c["packets_received"].as_u64().unwrap_or(0) > 100,
        "{report:#}"
    );
    assert_eq!(
        project.inspect("mediation", "{{.State.ExitCode}}"),
        "0",
        "{}",
        project.logs("mediation")
    );
    let logs = project.logs("mediation");
    assert!(
        logs.contains("drain timeout: ending the remaining calls with BYE"),
        "{logs}"
    );

    // A gateway dies mid-call: the next-hop side is torn down and the call counted.
    ok(Command::new("docker").args(["start", &project.container("mediation")]));
    project.wait_healthy();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            // The caller dies with its container: no report to read.
            let _ = run(Command::new("docker")
                .args([
                    "exec",
                    &project.container("gw2"),
                    "/usr/local/bin/gateway-sim",
                    "call",
                    "--report",
                    "-",
                ])
                .args([
                    "--target",
                    "172.28.0.10:5068",
                    "--transport",
                    "tcp",
                    "--to",
                    "sip:+15551234@mediation",
                    "--srtp",
                    "accept",
                    "--duration",
                    "30",
                    "--media-ip",
                    "172.28.0.32",
                ]));
        });
        let deadline = Instant::now() + Duration::from_secs(15);
        while metric("mediation_active_calls{gateway_media=\"rtp\"}") < 1.0 {
            assert!(Instant::now() < deadline, "the gw2 call never started");
            std::thread::sleep(Duration::from_millis(200));
        }
        ok(Command::new("docker").args(["kill", &project.container("gw2")]));
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let ended = |m: &str| {
        sample(m, "mediation_calls_total{direction=\"inbound\",gateway=\"gw2\",gateway_media=\"rtp\",result=\"connection_lost\"}")
            + sample(m, "mediation_calls_total{direction=\"inbound\",gateway=\"gw2\",gateway_media=\"rtp\",result=\"media_timeout\"}")
    };
    loop {
        let m = http_get(19464, "/metrics");
        if ended(&m) >= 1.0 && sample(&m, "mediation_active_calls{gateway_media=\"rtp\"}") == 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dead gateway's call was not torn down:\n{m}\n{}",
            project.logs("mediation")
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let size = ok(Command::new("docker").args([
        "image",
        "ls",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.Size}}",
        "mediation:dev",
    ]));
    println!("image size: {size}");
}
