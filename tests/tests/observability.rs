//! Observability as an operator checks it: the rules and the scrape config pass promtool, every
//! alert is proved by `promtool test rules`, a scrape after real calls lints clean and its
//! counters moved by exactly what happened, and a real Prometheus server scrapes the service and
//! answers the encryption-ratio query and every expression of the alerts and the dashboard.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e::{free_port, http_get, sample, Caller, Lab, Mediation, Setup, Sim};
use serde_json::Value;

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(file)
}

fn promtool(args: &[&str], cwd: &Path, stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool must be installed (tests/run.sh installs Debian's prometheus)");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn rules_and_scrape_config_pass_promtool_and_every_alert_is_proved() {
    let dir = deploy("prometheus");
    let (ok, out) = promtool(&["check", "rules", "alerts.yml"], &dir, None);
    assert!(ok, "{out}");
    let (ok, out) = promtool(&["test", "rules", "alerts_test.yml"], &dir, None);
    assert!(ok, "{out}");
    let (ok, out) = promtool(&["check", "config", "prometheus.yml"], &dir, None);
    assert!(ok, "{out}");
    // Every alert in alerts.yml has a test that expects it to fire.
    let rules = std::fs::read_to_string(dir.join("alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(dir.join("alerts_test.yml")).unwrap();
    for alert in rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
    {
        assert!(
            tests.contains(&format!("alertname: {alert}")),
            "{alert} has no test"
        );
    }
}

/// The `expr:` values of a rules file (plain or folded `>` scalars).
fn rule_exprs(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        let rest = rest.trim();
        if rest == ">" || rest == "|" {
            let indent = line.len() - line.trim_start().len();
            let body: Vec<&str> = lines[i + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
                .map(|l| l.trim())
                .collect();
            out.push(body.join(" ").trim().to_string());
        } else {
            out.push(rest.to_string());
        }
    }
    out
}

fn dashboard_exprs() -> Vec<String> {
    let dash: Value =
        serde_json::from_str(&std::fs::read_to_string(deploy("grafana/mediation.json")).unwrap())
            .unwrap();
    dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| {
            t["expr"].as_str().map(|e| {
                e.replace("$__rate_interval", "1m")
                    .replace("$__range", "5m")
                    .replace("$__interval", "15s")
            })
        })
        .collect()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An instant query; the JSON answer.
fn query(port: u16, promql: &str) -> Value {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET /api/v1/query?query={} HTTP/1.0\r\nHost: localhost\r\n\r\n",
        urlencode(promql)
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{promql}: not JSON ({e}): {text}"))
}

struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn real_calls_move_the_counters_and_a_real_prometheus_answers_every_query() {
    let lab = Lab::new();
    let setup = Setup::default();
    let nh = Sim::answer(
        &lab,
        "obs-nexthop",
        setup.next_hop_port,
        Some("nexthop"),
        "offer",
    );
    let m = Mediation::start(&lab, &setup);
    let run = |port, transport, cert, srtp, name| {
        Caller {
            lab: &lab,
            port,
            transport,
            cert,
            srtp,
            to: "sip:+15551234@mediation.example.test",
            duration: 2,
            extra: vec![],
        }
        .run(name)
    };
    let (ok, srtp_call) = run(
        m.ports.gateway_tls,
        "tls",
        Some("gateway"),
        "offer",
        "obs-srtp",
    );
    assert!(ok, "{srtp_call:#}");
    let (ok, rtp_call) = run(m.ports.gateway_tcp, "tcp", None, "accept", "obs-rtp");
    assert!(ok, "{rtp_call:#}");
    let (ok, _) = run(
        m.ports.gateway_tls,
        "tls",
        Some("gateway-expired"),
        "offer",
        "obs-expired",
    );
    assert!(!ok);
    // The relay adds its packet counts to Prometheus once a second and at call end.
    std::thread::sleep(Duration::from_millis(1500));
    let metrics = http_get(m.ports.metrics, "/metrics");

    let (ok, lint) = promtool(&["check", "metrics"], lab.dir.path(), Some(&metrics));
    assert!(
        ok && lint.trim().is_empty(),
        "promtool check metrics:\n{lint}"
    );

    let v = |s: &str| sample(&metrics, s);
    assert_eq!(v("mediation_calls_total{direction=\"inbound\",gateway=\"gw1\",gateway_media=\"srtp\",result=\"answered\"}"), 1.0, "{metrics}");
    assert_eq!(v("mediation_calls_total{direction=\"inbound\",gateway=\"gw2\",gateway_media=\"rtp\",result=\"answered\"}"), 1.0, "{metrics}");
    assert_eq!(
        v("mediation_mtls_rejections_total{listener=\"gateway_tls\",reason=\"expired\"}"),
        1.0,
        "{metrics}"
    );
    assert_eq!(v("mediation_gateway_media_decisions_total{gateway=\"gw1\",gateway_media=\"srtp\",reason=\"verified_mtls\"}"), 1.0);
    assert_eq!(v("mediation_gateway_media_decisions_total{gateway=\"gw2\",gateway_media=\"rtp\",reason=\"tcp_transport\"}"), 1.0);
    // Packets on the gateway leg: what each simulator sent (RTP and RTCP) came in; what it
    // received went out.
    for (call, protection) in [(&srtp_call, "srtp"), (&rtp_call, "rtp")] {
        let c = &call["calls"][0];
        let sent = c["packets_sent"].as_u64().unwrap() + c["rtcp_sent"].as_u64().unwrap();
        let received =
            c["packets_received"].as_u64().unwrap() + c["rtcp_received"].as_u64().unwrap();
        let inbound = v(&format!("mediation_media_packets_total{{direction=\"in\",leg=\"gateway\",protection=\"{protection}\"}}"));
        let outbound = v(&format!("mediation_media_packets_total{{direction=\"out\",leg=\"gateway\",protection=\"{protection}\"}}"));
        assert_eq!(
            inbound as u64, sent,
            "{protection}: gateway leg in vs the simulator's sent\n{c:#}\n{metrics}"
        );
        assert_eq!(
            outbound as u64, received,
            "{protection}: gateway leg out vs the simulator's received\n{c:#}"
        );
    }

    // A real Prometheus scraping the service every second, with our rules loaded.
    let prom_dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        deploy("prometheus/alerts.yml"),
        prom_dir.path().join("alerts.yml"),
    )
    .unwrap();
    std::fs::write(
        prom_dir.path().join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - alerts.yml\n\
             scrape_configs:\n  - job_name: mediation\n    static_configs:\n      - targets: [\"127.0.0.1:{}\"]\n",
            m.ports.metrics
        ),
    )
    .unwrap();
    let port = free_port();
    let _prometheus = Prometheus(
        Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                prom_dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                prom_dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(prom_dir.path().join("prometheus.log")).unwrap())
            .spawn()
            .expect("prometheus must be installed (tests/run.sh installs Debian's prometheus)"),
    );
    let ratio = "sum(mediation_calls_total{result=\"answered\",gateway_media=\"srtp\"}) / sum(mediation_calls_total{result=\"answered\"})";
    let deadline = Instant::now() + Duration::from_secs(30);
    let answer = loop {
        let ready = TcpStream::connect(("127.0.0.1", port)).is_ok();
        if ready {
            let a = query(port, ratio);
            if a["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
            {
                break a;
            }
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never scraped the service:\n{}",
            std::fs::read_to_string(prom_dir.path().join("prometheus.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let value: f64 = answer["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(value, 0.5, "one SRTP call and one plain call: {answer}");

    let rules = std::fs::read_to_string(deploy("prometheus/alerts.yml")).unwrap();
    let exprs: Vec<String> = rule_exprs(&rules)
        .into_iter()
        .chain(dashboard_exprs())
        .collect();
    assert!(exprs.len() >= 20, "{exprs:?}");
    for expr in &exprs {
        let a = query(port, expr);
        assert_eq!(a["status"], "success", "{expr}: {a}");
    }
    drop(nh);
}
