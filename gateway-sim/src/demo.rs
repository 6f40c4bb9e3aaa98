//! `gateway-sim demo`: the README's first command. With nothing configured it makes a throwaway
//! lab PKI, starts the mediation service (the same library the `mediation` binary runs), a
//! next-hop simulator and two gateway simulators (one over MTLS with the trusted certificate, one
//! over plain TCP) on loopback, places calls both ways and one from a gateway with an untrusted
//! certificate, and prints what was encrypted, what was not, and why. Success only when every
//! row matches docs/design.md §2.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use mediation::metrics::Metrics;
use mediation::service::Service;
use tokio::sync::watch;

use crate::lab_config::{self, LabConfig, LabGateway};
use crate::{
    AnswerOptions, AnswerServer, CallOptions, CallReport, Report, SrtpMode, TlsFiles, Transport,
};

/// Seconds of media per demo call.
const CALL_SECS: u64 = 2;

/// What one row of the table should show (docs/design.md §2).
struct Expect {
    gateway_media: Option<&'static str>,
    reason: &'static str,
}

/// One printed row.
struct Row {
    call: &'static str,
    gateway: &'static str,
    transport: &'static str,
    next_hop_leg: String,
    gateway_leg: String,
    why: String,
    packets: String,
    loss: String,
    latency: String,
    ok: bool,
}

fn tls(dir: &Path, stem: Option<&str>) -> TlsFiles {
    TlsFiles {
        cert: stem.map(|s| dir.join(format!("{s}.pem"))),
        key: stem.map(|s| dir.join(format!("{s}-key.pem"))),
        ca: dir.join("ca.pem"),
    }
}

async fn answerer(dir: &Path, cert: Option<&str>, srtp: SrtpMode) -> anyhow::Result<AnswerServer> {
    let mut opts = AnswerOptions::new(SocketAddr::from(([127, 0, 0, 1], 0)));
    opts.tls = cert.map(|c| tls(dir, Some(c)));
    opts.srtp = srtp;
    Ok(AnswerServer::bind(opts).await?)
}

/// The demo's mediation configuration: listeners on loopback ports the kernel picks, the
/// next hop and both gateways where their simulators listen.
fn config(dir: &Path, nh: SocketAddr, gw1: SocketAddr, gw2: SocketAddr) -> String {
    lab_config::render(&LabConfig {
        next_hop_address: nh.to_string(),
        gateway_tcp: Some("127.0.0.1:0".into()),
        gateways: vec![
            LabGateway::tls("gw1", gw1.to_string()).srtp("optional"),
            LabGateway::tcp("gw2", gw2.to_string()).srtp("optional"),
        ],
        media_ports: (45000, 45999),
        log_format: "text".into(),
        log_level: "warn".into(),
        extra: format!("# written by `gateway-sim demo` in {}", dir.display()),
        ..LabConfig::default()
    })
}

/// The gateway-leg decision the mediation server counted since `before`.
fn decision(metrics: &Metrics, before: &str) -> String {
    let now = metrics.render();
    now.lines()
        .filter(|l| l.starts_with("mediation_gateway_media_decisions_total{"))
        .find(|l| !before.lines().any(|b| b == *l))
        .and_then(|l| {
            let media = l.split("gateway_media=\"").nth(1)?.split('"').next()?;
            let reason = l.split("reason=\"").nth(1)?.split('"').next()?;
            Some(format!("{media}:{reason}"))
        })
        .unwrap_or_default()
}

fn rejection_now(metrics: &Metrics, before: &str) -> Option<String> {
    let now = metrics.render();
    now.lines()
        .filter(|l| l.starts_with("mediation_mtls_rejections_total{") && !l.ends_with(" 0"))
        .find(|l| !before.lines().any(|b| b == *l))
        .and_then(|l| Some(l.split("reason=\"").nth(1)?.split('"').next()?.to_string()))
}

/// The reason of the handshake refusal counted since `before`. The client may see its
/// handshake fail (TLS 1.3: the server's alert) a moment before the server's task counts it,
/// so this waits up to 2 s for the count.
async fn rejection(metrics: &Metrics, before: &str) -> String {
    for _ in 0..100 {
        if let Some(reason) = rejection_now(metrics, before) {
            return reason;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    String::new()
}

fn media(call: Option<&CallReport>) -> String {
    match call.and_then(|c| c.wire_encrypted) {
        Some(true) => "SRTP".into(),
        Some(false) => "RTP".into(),
        None => "-".into(),
    }
}

fn row(
    call: &'static str,
    gateway: &'static str,
    transport: &'static str,
    nh: Option<&CallReport>,
    gw: Option<&CallReport>,
    decided: String,
    expect: &Expect,
) -> Row {
    let (media_word, reason) = decided.split_once(':').unwrap_or(("", ""));
    let gw_leg = media(gw);
    let want_media = expect.gateway_media.unwrap_or("-");
    let calls_ok = [nh, gw]
        .iter()
        .all(|c| c.is_some_and(|c| c.error.is_none() && c.payload_ok));
    let ok = calls_ok
        && media(nh) == "SRTP"
        && gw_leg == want_media
        && media_word.eq_ignore_ascii_case(want_media)
        && reason == expect.reason;
    let lost = nh.map_or(0, |c| c.packets_lost) + gw.map_or(0, |c| c.packets_lost);
    Row {
        call,
        gateway,
        transport,
        next_hop_leg: media(nh),
        gateway_leg: gw_leg,
        why: reason.to_string(),
        packets: gw.map_or("-".into(), |c| {
            format!("{}/{}", c.packets_received, c.packets_sent)
        }),
        loss: lost.to_string(),
        latency: gw
            .and_then(|c| c.latency_ms_p50)
            .map_or("-".into(), |l| format!("{l:.2}")),
        ok,
    }
}

/// Runs the demo; `Ok(true)` when every row is as docs/design.md §2 says.
pub async fn run() -> anyhow::Result<bool> {
    let dir = tempfile::tempdir().context("temporary directory")?;
    let d = dir.path();
    certs::LabPki::generate()
        .context("lab PKI")?
        .write_to(d)
        .context("writing the lab PKI")?;
    println!(
        "mediation demo: lab PKI (CA, mediation, gateway, next-hop and bad certificates) in {}",
        d.display()
    );

    let nh = answerer(d, Some("nexthop"), SrtpMode::Offer).await?;
    let gw1 = answerer(d, Some("gateway"), SrtpMode::Accept).await?;
    let gw2 = answerer(d, None, SrtpMode::Accept).await?;
    let text = config(d, nh.local_addr(), gw1.local_addr(), gw2.local_addr());
    let cfg = mediation::config::load_str(&text, d)
        .map_err(|p| anyhow::anyhow!("demo configuration refused: {p:?}"))?;
    let service = Service::start(Arc::new(cfg))
        .await
        .context("starting the mediation service")?;
    let b = service.bound;
    let (gw_tls, gw_tcp) = (
        b.gateway_tls.context("TLS listener")?,
        b.gateway_tcp.context("TCP listener")?,
    );
    println!(
        "mediation listening: next hop MTLS {}, gateways MTLS {gw_tls} and TCP {gw_tcp}, metrics http://{}/metrics\n",
        b.next_hop, service.metrics_addr
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let serve = |s: AnswerServer| {
        let mut rx = stop_rx.clone();
        tokio::spawn(s.run_until(async move {
            let _ = rx.changed().await;
        }))
    };
    let (nh_task, gw1_task, gw2_task) = (serve(nh), serve(gw1), serve(gw2));

    let call =
        |target: SocketAddr, transport: Transport, cert: Option<&str>, srtp: SrtpMode, to: &str| {
            let mut o = CallOptions::new(target.to_string(), to);
            o.transport = transport;
            if transport == Transport::Tls {
                o.tls = Some(tls(d, cert));
                o.server_name = Some("mediation.example.test".into());
            }
            o.srtp = srtp;
            o.duration = Duration::from_secs(CALL_SECS);
            o
        };
    let metrics = service.metrics.clone();
    let to_internal = "sip:+15551234@mediation.example.test";
    let mut placed: Vec<(Report, String)> = Vec::new();
    for opts in [
        call(
            gw_tls,
            Transport::Tls,
            Some("gateway"),
            SrtpMode::Offer,
            to_internal,
        ),
        call(gw_tcp, Transport::Tcp, None, SrtpMode::Accept, to_internal),
        call(
            b.next_hop,
            Transport::Tls,
            Some("nexthop"),
            SrtpMode::Offer,
            "sip:+15550100@gw1",
        ),
        call(
            b.next_hop,
            Transport::Tls,
            Some("nexthop"),
            SrtpMode::Offer,
            "sip:+15550100@gw2",
        ),
    ] {
        let before = metrics.render();
        let report = crate::run_calls(opts).await?;
        placed.push((report, decision(&metrics, &before)));
    }
    let before = metrics.render();
    let refused = crate::run_calls(call(
        gw_tls,
        Transport::Tls,
        Some("gateway-untrusted"),
        SrtpMode::Offer,
        to_internal,
    ))
    .await?;
    let refusal = rejection(&metrics, &before).await;

    let _ = stop_tx.send(true);
    let (nh_r, gw1_r, gw2_r) = (nh_task.await?, gw1_task.await?, gw2_task.await?);
    service.stop().await;

    let first = |r: &[(Report, String)], i: usize| r[i].0.calls.first().cloned();
    let verified = Expect {
        gateway_media: Some("SRTP"),
        reason: "verified_mtls",
    };
    let tcp = Expect {
        gateway_media: Some("RTP"),
        reason: "tcp_transport",
    };
    let mut rows = vec![
        row(
            "1",
            "gw1 -> internal",
            "MTLS",
            nh_r.calls.first(),
            first(&placed, 0).as_ref(),
            placed[0].1.clone(),
            &verified,
        ),
        row(
            "2",
            "gw2 -> internal",
            "TCP",
            nh_r.calls.get(1),
            first(&placed, 1).as_ref(),
            placed[1].1.clone(),
            &tcp,
        ),
        row(
            "3",
            "internal -> gw1",
            "MTLS",
            first(&placed, 2).as_ref(),
            gw1_r.calls.first(),
            placed[2].1.clone(),
            &verified,
        ),
        row(
            "4",
            "internal -> gw2",
            "TCP",
            first(&placed, 3).as_ref(),
            gw2_r.calls.first(),
            placed[3].1.clone(),
            &tcp,
        ),
    ];
    let refused_ok = !refused.all_ok() && refusal == "untrusted_ca" && nh_r.calls.len() == 2;
    rows.push(Row {
        call: "5",
        gateway: "gw1 -> internal",
        transport: "TLS, untrusted CA",
        next_hop_leg: "-".into(),
        gateway_leg: "refused".into(),
        why: refusal,
        packets: "-".into(),
        loss: "-".into(),
        latency: "-".into(),
        ok: refused_ok,
    });
    print_table(&rows);
    let all_ok = rows.iter().all(|r| r.ok);
    println!(
        "\n{}",
        if all_ok {
            "every row matches docs/design.md §2: toward the next hop always SRTP; toward a gateway SRTP only when it proved itself over MTLS."
        } else {
            "MISMATCH: at least one row does not match docs/design.md §2 (see the rows marked FAIL)."
        }
    );
    Ok(all_ok)
}

fn print_table(rows: &[Row]) {
    let header = [
        "call",
        "direction",
        "gateway signalling",
        "next-hop leg",
        "gateway leg",
        "why",
        "packets rx/tx",
        "lost",
        "p50 ms",
        "check",
    ];
    let cells: Vec<[String; 10]> = rows
        .iter()
        .map(|r| {
            [
                r.call.to_string(),
                r.gateway.to_string(),
                r.transport.to_string(),
                r.next_hop_leg.clone(),
                r.gateway_leg.clone(),
                r.why.clone(),
                r.packets.clone(),
                r.loss.clone(),
                r.latency.clone(),
                if r.ok { "ok" } else { "FAIL" }.to_string(),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            cells
                .iter()
                .map(|c| c[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cols: Vec<&str>| {
        cols.iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    println!("{}", line(header.to_vec()));
    println!(
        "{}",
        line(
            widths
                .iter()
                .map(|w| "-".repeat(*w))
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str)
                .collect()
        )
    );
    for c in &cells {
        println!("{}", line(c.iter().map(String::as_str).collect()));
    }
}
