//! `answer` and `call` against each other, no mediation in between: over TCP with plain RTP and
//! over MTLS with SRTP (in-process, through the library), and through the built binary for the
//! failure cases the exit status must show (488 from `--srtp refuse`, a TLS refusal).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use gateway_sim::{
    AnswerOptions, AnswerServer, CallOptions, CallReport, Report, SrtpMode, TlsFiles, Transport,
};

const TO: &str = "sip:+15551234567@gw1.example.test";

fn lab_pki() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = certs::LabPki::generate().expect("lab PKI");
    pki.write_to(dir.path()).expect("write PKI");
    let path = dir.path().to_path_buf();
    (dir, path)
}

fn tls(dir: &Path, stem: &str) -> TlsFiles {
    TlsFiles {
        cert: Some(dir.join(format!("{stem}.pem"))),
        key: Some(dir.join(format!("{stem}-key.pem"))),
        ca: dir.join("ca.pem"),
    }
}

/// Runs one answering server and one caller against it; returns both reports.
async fn call_pair(
    answer: AnswerOptions,
    call: impl FnOnce(String) -> CallOptions,
) -> (Report, Report) {
    let server = AnswerServer::bind(AnswerOptions {
        max_calls: Some(1),
        ..answer
    })
    .await
    .expect("bind");
    let target = server.local_addr().to_string();
    let answering = tokio::spawn(server.run());
    let placed = gateway_sim::run_calls(call(target))
        .await
        .expect("run_calls");
    let answered = tokio::time::timeout(Duration::from_secs(20), answering)
        .await
        .expect("answer side ends")
        .expect("answer task");
    (placed, answered)
}

fn only(report: &Report) -> &CallReport {
    assert_eq!(report.calls.len(), 1, "{report:#?}");
    &report.calls[0]
}

fn assert_clean_media(call: &CallReport, encrypted: bool) {
    assert!(call.ok(), "call failed: {call:#?}");
    assert_eq!(call.sip_status, Some(200));
    assert!(call.setup_ms.is_some());
    // 3 s of 20 ms packets.
    assert!(call.packets_sent >= 140, "{call:#?}");
    assert!(call.packets_received >= 140, "{call:#?}");
    assert_eq!(call.packets_lost, 0, "{call:#?}");
    assert!(call.payload_ok, "{call:#?}");
    assert_eq!(call.wire_encrypted, Some(encrypted), "{call:#?}");
    assert!(
        call.jitter_ms.is_some() && call.latency_ms_p50.is_some() && call.latency_ms_p99.is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_with_plain_rtp() {
    let (placed, answered) = call_pair(
        AnswerOptions {
            srtp: SrtpMode::Refuse,
            ..AnswerOptions::new("127.0.0.1:0".parse().unwrap())
        },
        |target| CallOptions {
            srtp: SrtpMode::Accept,
            duration: Duration::from_secs(3),
            ..CallOptions::new(target, TO)
        },
    )
    .await;
    let (out, inc) = (only(&placed), only(&answered));
    assert_eq!(out.call_id, inc.call_id);
    for call in [out, inc] {
        assert_clean_media(call, false);
        assert_eq!(call.transport, "tcp");
        assert_eq!(call.media_profile.as_deref(), Some("RTP/AVP"));
        assert_eq!(call.srtp_suite, None);
    }
    assert_eq!(out.hangup_by.as_deref(), Some("us"));
    assert_eq!(inc.hangup_by.as_deref(), Some("peer"));
    assert!(placed.all_ok() && answered.all_ok());
    assert_eq!(placed.summary.calls_ok, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_with_srtp() {
    let (_guard, dir) = lab_pki();
    let (placed, answered) = call_pair(
        AnswerOptions {
            tls: Some(tls(&dir, "nexthop")),
            srtp: SrtpMode::Require,
            ..AnswerOptions::new("127.0.0.1:0".parse().unwrap())
        },
        |target| CallOptions {
            transport: Transport::Tls,
            tls: Some(tls(&dir, "gateway")),
            server_name: Some("frontend.example.test".into()),
            srtp: SrtpMode::Offer,
            duration: Duration::from_secs(3),
            ..CallOptions::new(target, TO)
        },
    )
    .await;
    let (out, inc) = (only(&placed), only(&answered));
    for call in [out, inc] {
        assert_clean_media(call, true);
        assert_eq!(call.transport, "tls");
        assert_eq!(call.media_profile.as_deref(), Some("RTP/SAVP"));
        assert_eq!(call.srtp_suite.as_deref(), Some("AES_CM_128_HMAC_SHA1_80"));
        assert_eq!(call.srtp_auth_failures, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answerer_can_hang_up() {
    let (placed, answered) = call_pair(
        AnswerOptions {
            duration: Some(Duration::from_millis(1500)),
            ..AnswerOptions::new("127.0.0.1:0".parse().unwrap())
        },
        |target| CallOptions {
            duration: Duration::from_secs(30),
            ..CallOptions::new(target, TO)
        },
    )
    .await;
    let (out, inc) = (only(&placed), only(&answered));
    assert!(out.ok() && inc.ok(), "{out:#?} {inc:#?}");
    assert_eq!(out.hangup_by.as_deref(), Some("peer"));
    assert_eq!(inc.hangup_by.as_deref(), Some("us"));
    // Plain TCP with --srtp offer on both sides: keys offered and taken (the simulator does not
    // police SDES over TCP; the mediation appliance does).
    assert_eq!(out.wire_encrypted, Some(true));
    assert_eq!(out.packets_lost, 0);
}

#[tokio::test]
async fn connection_refused_is_a_failed_call() {
    // Bind and drop to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let report = gateway_sim::run_calls(CallOptions {
        calls: 2,
        ..CallOptions::new(format!("127.0.0.1:{port}"), TO)
    })
    .await
    .expect("run_calls");
    assert_eq!(report.summary.calls_failed, 2);
    let error = report.calls[0].error.as_deref().unwrap();
    assert!(error.contains("connect to"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answer_is_a_timeout() {
    // Accepts the connection and never says anything.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = silent.local_addr().unwrap().to_string();
    let holder = tokio::spawn(async move {
        let (stream, _) = silent.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(stream);
    });
    let report = gateway_sim::run_calls(CallOptions {
        timeout: Duration::from_millis(500),
        ..CallOptions::new(target, TO)
    })
    .await
    .expect("run_calls");
    let call = only(&report);
    assert_eq!(call.sip_status, None);
    let error = call.error.as_deref().unwrap();
    assert!(error.contains("no final response"), "{error}");
    holder.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn load_over_one_connection() {
    let server = AnswerServer::bind(AnswerOptions {
        max_calls: Some(20),
        ..AnswerOptions::new("127.0.0.1:0".parse().unwrap())
    })
    .await
    .unwrap();
    let target = server.local_addr().to_string();
    let answering = tokio::spawn(server.run());
    let placed = gateway_sim::run_calls(CallOptions {
        calls: 20,
        concurrency: 10,
        rate: Some(40.0),
        duration: Duration::from_secs(1),
        ..CallOptions::new(target, TO)
    })
    .await
    .unwrap();
    let answered = answering.await.unwrap();
    for report in [&placed, &answered] {
        assert_eq!(report.summary.calls_ok, 20, "{report:#?}");
        assert_eq!(report.summary.packets_lost, 0);
        assert!(report.summary.calls_per_second > 0.0);
    }
    let mut ids: Vec<_> = placed.calls.iter().map(|c| c.call_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20);
}

// --- through the binary ---

struct Answerer {
    child: Child,
    addr: String,
}

impl Answerer {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gateway-sim"))
            .arg("answer")
            .args([
                "--listen",
                "127.0.0.1:0",
                "--max-calls",
                "1",
                "--timeout",
                "5",
            ])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start gateway-sim answer");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .expect("first line");
        // "gateway-sim: answering on 127.0.0.1:PORT (...)"
        let addr = line
            .split_whitespace()
            .nth(3)
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        Self { child, addr }
    }

    fn wait(mut self) -> std::process::ExitStatus {
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        panic!("gateway-sim answer did not exit");
    }
}

fn call_binary(args: &[&str]) -> (std::process::Output, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let output = Command::new(env!("CARGO_BIN_EXE_gateway-sim"))
        .arg("call")
        .args(["--to", TO, "--timeout", "5", "--duration", "1"])
        .args(args)
        .arg("--report")
        .arg(&report)
        .output()
        .expect("run gateway-sim call");
    let text = std::fs::read_to_string(&report).unwrap_or_else(|e| {
        panic!(
            "no report ({e}); stdout {} stderr {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output, serde_json::from_str(&text).expect("JSON report"))
}

#[test]
fn require_against_refuse_is_488_and_exit_status_1() {
    let dir = tempfile::tempdir().unwrap();
    let answer_report = dir.path().join("answer.json");
    let answerer = Answerer::start(&[
        "--srtp",
        "refuse",
        "--report",
        answer_report.to_str().unwrap(),
    ]);
    let (output, report) = call_binary(&["--target", &answerer.addr, "--srtp", "require"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let call = &report["calls"][0];
    assert_eq!(call["sip_status"], 488, "{report:#}");
    assert!(
        call["error"].as_str().unwrap().contains("488"),
        "{report:#}"
    );
    assert_eq!(report["summary"]["calls_failed"], 1);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("FAILED"), "{stdout}");

    let status = answerer.wait();
    assert_eq!(status.code(), Some(1));
    let answered: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&answer_report).unwrap()).unwrap();
    assert_eq!(answered["calls"][0]["sip_status"], 488);
    assert_eq!(answered["calls"][0]["direction"], "incoming");
}

#[test]
fn mtls_refusal_without_client_certificate_is_reported() {
    let (_guard, dir) = lab_pki();
    let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let mut answerer = Answerer::start(&[
        "--tls",
        "--cert",
        &path("nexthop.pem"),
        "--key",
        &path("nexthop-key.pem"),
        "--ca",
        &path("ca.pem"),
    ]);
    // No --cert/--key: the caller withholds its certificate; with TLS 1.3 the refusal arrives
    // as an alert on the first read.
    let (output, report) = call_binary(&[
        "--target",
        &answerer.addr,
        "--transport",
        "tls",
        "--ca",
        &path("ca.pem"),
        "--server-name",
        "frontend.example.test",
    ]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let error = report["calls"][0]["error"].as_str().unwrap().to_string();
    assert!(
        error.to_lowercase().contains("certificate") || error.contains("alert"),
        "{error}"
    );
    let _ = answerer.child.kill();
    let _ = answerer.child.wait();
}

/// Hold and resume between two simulators over MTLS with SRTP: the answerer mirrors the
/// directions (recvonly to the hold, so it stops sending; sendrecv to the resume), keeps its
/// keys, and nothing is lost outside the hold; with `--rekey` its answers carry new keys and
/// the caller switches to them without losing a packet.
async fn hold_and_resume(rekey: bool) {
    let (_dir, pki) = lab_pki();
    let (placed, answered) = call_pair(
        AnswerOptions {
            tls: Some(tls(&pki, "gateway")),
            rekey,
            ..AnswerOptions::new("127.0.0.1:0".parse().unwrap())
        },
        |target| CallOptions {
            transport: Transport::Tls,
            tls: Some(tls(&pki, "nexthop")),
            server_name: Some("gw1.example.test".into()),
            duration: Duration::from_secs(3),
            hold_at: Some(Duration::from_secs(1)),
            resume_at: Some(Duration::from_secs(2)),
            ..CallOptions::new(target, TO)
        },
    )
    .await;
    let (out, inc) = (only(&placed), only(&answered));
    for call in [out, inc] {
        assert!(call.ok(), "{call:#?}");
        assert_eq!(call.packets_lost_outside_hold, 0, "{call:#?}");
        assert_eq!(call.wire_encrypted, Some(true));
    }
    let statuses: Vec<_> = out
        .reinvites
        .iter()
        .map(|r| (r.direction.as_str(), r.status))
        .collect();
    assert_eq!(statuses, [("sendonly", Some(200)), ("sendrecv", Some(200))]);
    assert_eq!(
        out.reinvites[0].answer_direction.as_deref(),
        Some("recvonly")
    );
    assert_eq!(inc.reoffers_answered, 2);
    // The answerer did not send while held; the caller (sendonly) did, and it all arrived.
    assert_eq!(inc.packets_sent_while_held, 0, "{inc:#?}");
    assert!(out.packets_sent_while_held >= 40, "{out:#?}");
    assert_eq!(inc.packets_received, out.packets_sent, "{inc:#?}");
    assert_eq!(inc.packets_lost, 0);
    // After the resume, audio both ways: about a second of it at the caller.
    assert!(out.packets_received_after_resume >= 40, "{out:#?}");
    assert!(
        out.packets_received < out.packets_sent - 30,
        "the answerer paused: {out:#?} {inc:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_and_resume_keeps_keys() {
    hold_and_resume(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_and_resume_with_new_keys_in_the_answers() {
    hold_and_resume(true).await;
}
