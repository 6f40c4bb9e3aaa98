//! Observability as an operator checks it: the rules and the scrape config pass promtool, every
//! alert is proved to fire and not to fire by `promtool test rules`, a scrape after real calls
//! lints clean, its counters moved by exactly what happened and it exports every metric the
//! rules and the dashboard name, and a real Prometheus server scrapes the service, records the
//! encryption ratio and answers every expression of the alerts and the dashboard.

use std::collections::{BTreeMap, BTreeSet};
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
    // Every alert in alerts.yml has a test that expects it to fire and one that expects it not
    // to, and every alert the tests name exists (promtool passes `exp_alerts: []` for a
    // misspelt name).
    let rules = std::fs::read_to_string(dir.join("alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(dir.join("alerts_test.yml")).unwrap();
    let alerts: BTreeSet<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert!(alerts.len() >= 10, "{alerts:?}");
    let cases = alert_cases(&tests);
    for alert in &alerts {
        let case = cases.get(alert).copied().unwrap_or_default();
        assert!(case.0, "{alert} has no test that expects it to fire");
        assert!(case.1, "{alert} has no test that expects it not to fire");
    }
    for alert in cases.keys() {
        assert!(
            alerts.contains(alert),
            "alerts_test.yml tests {alert}, which alerts.yml does not define"
        );
    }
}

/// For each `alertname:` of a `promtool test rules` file: (some case expects it to fire, some
/// case expects it not to).
fn alert_cases(tests: &str) -> BTreeMap<&str, (bool, bool)> {
    let lines: Vec<&str> = tests
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let mut cases: BTreeMap<&str, (bool, bool)> = BTreeMap::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(name) = line.strip_prefix("alertname:") else {
            continue;
        };
        let case = cases.entry(name.trim()).or_default();
        match lines.get(i + 1).copied() {
            Some("exp_alerts: []") => case.1 = true,
            Some("exp_alerts:") if lines.get(i + 2).is_some_and(|l| l.starts_with("- ")) => {
                case.0 = true
            }
            other => panic!("alertname {name}: then {other:?}"),
        }
    }
    cases
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

/// The metric names an expression reads: its identifiers outside string literals that start
/// with `mediation_` or are recording-rule names (`level:metric:operations`).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut code = String::new();
    let mut quote = None;
    let mut chars = expr.chars();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) if c == '\\' => {
                chars.next();
            }
            Some(_) => {}
            None if c == '"' || c == '\'' || c == '`' => {
                quote = Some(c);
                code.push(' ');
            }
            None => code.push(c),
        }
    }
    code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|t| {
            t.starts_with("mediation_")
                || (t.contains(':') && t.starts_with(|c: char| c.is_ascii_alphabetic()))
        })
        .map(str::to_string)
        .collect()
}

/// The metric families of a text exposition and their types (`# TYPE name type`).
fn exported_families(metrics: &str) -> BTreeMap<String, String> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, kind)| (name.to_string(), kind.trim().to_string()))
        .collect()
}

/// Whether `name` is exported: a family, or a histogram's `_bucket`, `_sum` or `_count`.
fn is_exported(families: &BTreeMap<String, String>, name: &str) -> bool {
    families.contains_key(name)
        || ["_bucket", "_sum", "_count"].iter().any(|suffix| {
            name.strip_suffix(suffix)
                .is_some_and(|base| families.get(base).is_some_and(|t| t == "histogram"))
        })
}

#[test]
fn metric_name_parsing_sees_selectors_not_strings_labels_or_functions() {
    let names = metric_names(
        "sum by (gateway) (increase(mediation_calls_total{result=\"mediation_x\",gateway_media='srtp'}[1h])) \
         / on (gateway) gateway:mediation_srtp_ratio:1h + histogram_quantile(0.5, rate(mediation_call_setup_seconds_bucket[5m:1m]))",
    );
    let expected = [
        "gateway:mediation_srtp_ratio:1h",
        "mediation_call_setup_seconds_bucket",
        "mediation_calls_total",
    ];
    assert_eq!(names, expected.iter().map(|s| s.to_string()).collect());
    let families = exported_families(
        "# HELP mediation_a_seconds a\n# TYPE mediation_a_seconds histogram\n# TYPE mediation_b_total counter\n",
    );
    assert!(is_exported(&families, "mediation_a_seconds_bucket"));
    assert!(is_exported(&families, "mediation_a_seconds_count"));
    assert!(is_exported(&families, "mediation_b_total"));
    assert!(!is_exported(&families, "mediation_b_total_count"));
    assert!(!is_exported(&families, "mediation_c_total"));
}

#[test]
fn every_metric_the_rules_and_the_dashboard_name_is_exported() {
    let rules = std::fs::read_to_string(deploy("prometheus/alerts.yml")).unwrap();
    let recorded: BTreeSet<String> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- record: "))
        .map(|r| r.trim().to_string())
        .collect();
    let rule_names: BTreeSet<String> = rule_exprs(&rules)
        .iter()
        .flat_map(|e| metric_names(e))
        .collect();
    let dashboard = dashboard_exprs();
    let dashboard_names: BTreeSet<String> =
        dashboard.iter().flat_map(|e| metric_names(e)).collect();

    // The dashboard shows what operators look for.
    for needed in [
        "mediation_calls_total",
        "gateway:mediation_srtp_ratio:1h",
        "mediation_media_packets_total",
        "mediation_media_packets_dropped_total",
        "mediation_srtp_auth_failures_total",
        "mediation_tls_handshakes_total",
        "mediation_mtls_rejections_total",
        "mediation_gateway_up",
        "mediation_media_ports",
        "mediation_certificate_expiry_timestamp_seconds",
        "mediation_call_setup_seconds_bucket",
    ] {
        assert!(
            dashboard_names.contains(needed),
            "the dashboard has no panel on {needed}: {dashboard_names:?}"
        );
    }
    assert!(
        dashboard.iter().any(|e| e.contains("histogram_quantile")
            && e.contains("mediation_call_setup_seconds_bucket")),
        "no set-up latency quantile on the dashboard"
    );

    let AfterCalls { m, _nh, .. } = after_calls("names");
    let metrics = http_get(m.ports.metrics, "/metrics");
    let families = exported_families(&metrics);
    assert!(families.len() >= 20, "{metrics}");
    let mut missing = Vec::new();
    for (source, names) in [
        ("alerts.yml", &rule_names),
        ("mediation.json", &dashboard_names),
    ] {
        assert!(names.len() >= 8, "{source}: {names:?}");
        for name in names {
            let known = if name.starts_with("mediation_") {
                is_exported(&families, name)
            } else {
                recorded.contains(name)
            };
            if !known {
                missing.push(format!("{source}: {name}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "named but neither exported nor recorded: {missing:?}\nexported: {:?}",
        families.keys().collect::<Vec<_>>()
    );
}

/// RTP and RTCP packets a simulator's (first) call sent and received.
fn gateway_leg_packets(report: &Value) -> (u64, u64) {
    let c = &report["calls"][0];
    let n = |k: &str| c[k].as_u64().unwrap_or_else(|| panic!("{k} in {c:#}"));
    (
        n("packets_sent") + n("rtcp_sent"),
        n("packets_received") + n("rtcp_received"),
    )
}

/// The service after real calls: one SRTP call over MTLS from gw1, one plain call over TCP
/// from gw2 and one caller refused for its expired certificate.
struct AfterCalls {
    lab: Lab,
    m: Mediation,
    /// The next-hop simulator answering the calls; stopped on drop.
    _nh: Sim,
    srtp_call: Value,
    rtp_call: Value,
}

fn after_calls(name: &str) -> AfterCalls {
    let lab = Lab::new();
    let setup = Setup::default();
    let nh = Sim::answer(
        &lab,
        &format!("{name}-nexthop"),
        setup.next_hop_port,
        Some("nexthop"),
        "offer",
    );
    let m = Mediation::start(&lab, &setup);
    let run = |port, transport, cert, srtp, call: &str| {
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
        .run(&format!("{name}-{call}"))
    };
    let (ok, srtp_call) = run(m.ports.gateway_tls, "tls", Some("gateway"), "offer", "srtp");
    assert!(ok, "{srtp_call:#}");
    let (ok, rtp_call) = run(m.ports.gateway_tcp, "tcp", None, "accept", "rtp");
    assert!(ok, "{rtp_call:#}");
    let (ok, _) = run(
        m.ports.gateway_tls,
        "tls",
        Some("gateway-expired"),
        "offer",
        "expired",
    );
    assert!(!ok);
    // The relay adds its packet counts to Prometheus once a second and at call end: wait (a
    // bounded time) for the gateway-leg counts to reach what the simulators reported; the
    // caller asserts them exactly.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let metrics = http_get(m.ports.metrics, "/metrics");
        let settled = [(&srtp_call, "srtp"), (&rtp_call, "rtp")]
            .into_iter()
            .all(|(call, protection)| {
                let (sent, received) = gateway_leg_packets(call);
                let counted = |direction| {
                    sample(&metrics, &format!("mediation_media_packets_total{{direction=\"{direction}\",leg=\"gateway\",protection=\"{protection}\"}}")) as u64
                };
                counted("in") == sent && counted("out") == received
            });
        if settled || Instant::now() > deadline {
            break;
        }
    }
    AfterCalls {
        lab,
        m,
        _nh: nh,
        srtp_call,
        rtp_call,
    }
}

#[test]
fn real_calls_move_the_counters_and_a_real_prometheus_answers_every_query() {
    let AfterCalls {
        lab,
        m,
        _nh,
        srtp_call,
        rtp_call,
    } = after_calls("obs");
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
        let (sent, received) = gateway_leg_packets(call);
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

    // The recorded ratio per gateway: gw1's one call was SRTP, gw2's one call plain, which is 0
    // (not NaN, not missing). The series are new to this Prometheus, so this also proves they
    // are counted from their first sample.
    let deadline = Instant::now() + Duration::from_secs(30);
    let recorded = loop {
        let a = query(port, "gateway:mediation_srtp_ratio:1h");
        let per_gateway: BTreeMap<String, String> = a["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                (
                    r["metric"]["gateway"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    r["value"][1].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        if per_gateway.len() >= 2 || Instant::now() > deadline {
            break per_gateway;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let expected: BTreeMap<String, String> = [("gw1", "1"), ("gw2", "0")]
        .into_iter()
        .map(|(g, v)| (g.to_string(), v.to_string()))
        .collect();
    assert_eq!(recorded, expected, "gateway:mediation_srtp_ratio:1h");

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
}
