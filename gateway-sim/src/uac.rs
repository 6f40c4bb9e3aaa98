//! Placing calls (`gateway-sim call`): one TCP or TLS connection carries every call, as gateways
//! do; each call sends INVITE with an SDP offer, ACKs the final response, runs media for the
//! duration and hangs up with BYE. Many calls make it a load generator (`--calls`,
//! `--concurrency`, `--rate`). Whatever goes wrong is written into the call's report.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{sleep, sleep_until, timeout, Instant};

use crate::dialog::{self, Dialog, USER_AGENT};
use crate::error::SimError;
use crate::hold::HoldDriver;
use crate::in_dialog::{answer_request, hang_up, next_message, Reoffers};
use crate::info::InfoDriver;
use crate::negotiate::{check_answer, make_offer};
use crate::options::{CallOptions, Transport};
use crate::progress::Progress;
use crate::reoffer::SdpState;
use crate::report::{CallReport, Direction, Report};
use crate::rtp_stream::{self, MediaSockets, DRAIN, LAST_PACKET_SETTLE};
use crate::sip_msg;
use crate::ua::{Event, SipConnection};

/// Places `opts.calls` calls and returns their report. `Err` only for options or files that
/// stop the run before any call; a refused connection or TLS handshake is a failed call.
pub async fn run_calls(opts: CallOptions) -> Result<Report, SimError> {
    if opts.calls == 0 || opts.concurrency == 0 {
        return Err(SimError::Options(
            "--calls and --concurrency must be at least 1".into(),
        ));
    }
    if let Some(rate) = opts.rate {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(SimError::Options(format!(
                "--rate must be a positive number, not {rate}"
            )));
        }
    }
    let connector = match (opts.transport, &opts.tls) {
        (Transport::Tls, Some(files)) => Some(crate::tls::connector(files)?),
        (Transport::Tls, None) => {
            return Err(SimError::Options("--transport tls needs --ca".into()))
        }
        (Transport::Tcp, _) => None,
    };
    let server_name = match opts.transport {
        Transport::Tls => Some(crate::tls::server_name(
            opts.server_name
                .as_deref()
                .unwrap_or_else(|| host_of(&opts.target)),
        )?),
        Transport::Tcp => None,
    };

    let started = Instant::now();
    let progress = Progress::new(opts.calls, opts.progress);
    let connected = connect(&opts, connector, server_name).await;
    let conn = match connected {
        Ok(conn) => conn,
        Err(failure) => {
            let calls = (0..opts.calls)
                .map(|_| {
                    let mut report = CallReport::new(
                        new_call_id(None),
                        Direction::Outgoing,
                        opts.transport.as_str(),
                    );
                    report.fail(failure.reason.clone());
                    progress.finished(false);
                    report
                })
                .collect();
            progress.done();
            return Ok(Report::new(
                calls,
                started.elapsed(),
                u64::from(failure.tls),
            ));
        }
    };

    let opts = Arc::new(opts);
    let permits = Arc::new(Semaphore::new(
        usize::try_from(opts.concurrency).unwrap_or(usize::MAX),
    ));
    let mut tasks = JoinSet::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    for i in 0..opts.calls {
        if let Some(rate) = opts.rate {
            sleep_until(started + Duration::from_secs_f64(i as f64 / rate)).await;
        }
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let (conn, opts, progress, done_tx) = (
            conn.clone(),
            opts.clone(),
            progress.clone(),
            done_tx.clone(),
        );
        progress.started();
        tasks.spawn(async move {
            let report = place_call(&conn, &opts).await;
            progress.finished(report.ok());
            drop(permit);
            let _ = done_tx.send(report);
        });
    }
    drop(done_tx);
    let mut calls = Vec::with_capacity(usize::try_from(opts.calls).unwrap_or(0));
    while let Some(report) = done_rx.recv().await {
        calls.push(report);
    }
    while tasks.join_next().await.is_some() {}
    conn.close();
    progress.done();
    Ok(Report::new(calls, started.elapsed(), 0))
}

/// The host part of `host:port` (`[v6]:port` too).
fn host_of(target: &str) -> &str {
    if let Some(rest) = target.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match target.rsplit_once(':') {
        Some((host, _)) => host,
        None => target,
    }
}

/// Our From URI when none is given: `sip:gateway-sim@<local address>`, an IPv6 address in
/// brackets (RFC 3261 §25.1 `IPv6reference`).
fn default_from(local: SocketAddr) -> String {
    match local.ip() {
        std::net::IpAddr::V6(ip) => format!("sip:gateway-sim@[{ip}]"),
        ip => format!("sip:gateway-sim@{ip}"),
    }
}

fn new_call_id(local: Option<SocketAddr>) -> String {
    match local {
        Some(addr) => format!("{}@{}", sip_msg::token(24), addr.ip()),
        None => format!("{}@gateway-sim", sip_msg::token(24)),
    }
}

struct ConnectFailure {
    reason: String,
    tls: bool,
}

async fn connect(
    opts: &CallOptions,
    connector: Option<tokio_rustls::TlsConnector>,
    server_name: Option<rustls_pki_types::ServerName<'static>>,
) -> Result<SipConnection, ConnectFailure> {
    let fail = |reason: String| ConnectFailure { reason, tls: false };
    let tcp = timeout(opts.timeout, TcpStream::connect(opts.target.as_str()))
        .await
        .map_err(|_| fail(format!("connect to {}: timed out", opts.target)))?
        .map_err(|e| fail(format!("connect to {}: {e}", opts.target)))?;
    let _ = tcp.set_nodelay(true);
    let local = tcp
        .local_addr()
        .map_err(|e| fail(format!("local address: {e}")))?;
    let peer = tcp
        .peer_addr()
        .map_err(|e| fail(format!("peer address: {e}")))?;
    match (connector, server_name) {
        (Some(connector), Some(name)) => {
            let stream = timeout(opts.timeout, connector.connect(name, tcp))
                .await
                .map_err(|_| ConnectFailure {
                    reason: format!("TLS handshake with {}: timed out", opts.target),
                    tls: true,
                })?
                .map_err(|e| ConnectFailure {
                    reason: format!("TLS handshake with {}: {e}", opts.target),
                    tls: true,
                })?;
            Ok(SipConnection::spawn(
                stream,
                local,
                peer,
                Transport::Tls,
                None,
            ))
        }
        _ => Ok(SipConnection::spawn(tcp, local, peer, Transport::Tcp, None)),
    }
}

/// One call from INVITE to the end of media. Never panics on the peer's behaviour.
pub(crate) async fn place_call(conn: &SipConnection, opts: &CallOptions) -> CallReport {
    let call_id = new_call_id(Some(conn.local_addr()));
    let mut report = CallReport::new(
        call_id.clone(),
        Direction::Outgoing,
        conn.transport().as_str(),
    );
    let mut events = match conn.register(&call_id) {
        Ok(events) => events,
        Err(reason) => {
            report.fail(format!("connection closed: {reason}"));
            return report;
        }
    };
    run_call(conn, opts, &call_id, &mut events, &mut report).await;
    conn.unregister(&call_id);
    report
}

async fn run_call(
    conn: &SipConnection,
    opts: &CallOptions,
    call_id: &str,
    events: &mut mpsc::UnboundedReceiver<Event>,
    report: &mut CallReport,
) {
    let sockets = match MediaSockets::bind(opts.media_ip).await {
        Ok(s) => s,
        Err(e) => return report.fail(format!("media sockets on {}: {e}", opts.media_ip)),
    };
    let local_media = match sockets.local() {
        Ok(l) => l,
        Err(e) => return report.fail(format!("media sockets: {e}")),
    };
    let session_id: u64 = rand::random::<u32>().into();
    let offer = make_offer(opts.srtp, local_media, session_id, opts.lync);

    let local = conn.local_addr();
    let transport = conn.transport();
    let from_uri = opts.from.clone().unwrap_or_else(|| default_from(local));
    let invite_via = dialog::via(transport, local, &sip_msg::branch());
    let from = format!("<{from_uri}>;tag={}", sip_msg::token(10));
    let to = format!("<{}>", opts.to);
    let invite = sip_msg::serialize(
        &format!("INVITE {} SIP/2.0", opts.to),
        &[
            ("Via", invite_via.clone()),
            ("Max-Forwards", "70".into()),
            ("From", from.clone()),
            ("To", to.clone()),
            ("Call-ID", call_id.to_string()),
            ("CSeq", "1 INVITE".into()),
            ("Contact", dialog::contact(transport, local)),
            ("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS".into()),
            ("User-Agent", USER_AGENT.into()),
        ],
        Some(("application/sdp", offer.sdp.as_bytes())),
    );
    let sent_at = Instant::now();
    if let Err(reason) = conn.send(invite) {
        return report.fail(reason);
    }

    // Provisional responses until a final one.
    let deadline = sent_at + opts.timeout;
    let response = loop {
        match next_message(events, deadline).await {
            Ok(m) => match (m.status(), m.cseq()) {
                (Some(code), Some((1, "INVITE"))) if code >= 200 => break m,
                (Some(_), _) => {}
                (None, _) => answer_request(conn, &m),
            },
            Err(reason) if reason == "timeout" => {
                let cancel = sip_msg::serialize(
                    &format!("CANCEL {} SIP/2.0", opts.to),
                    &[
                        ("Via", invite_via.clone()),
                        ("Max-Forwards", "70".into()),
                        ("From", from.clone()),
                        ("To", to.clone()),
                        ("Call-ID", call_id.to_string()),
                        ("CSeq", "1 CANCEL".into()),
                    ],
                    None,
                );
                let _ = conn.send(cancel);
                return report.fail(format!(
                    "no final response to INVITE within {:.1} s",
                    opts.timeout.as_secs_f64()
                ));
            }
            Err(reason) => return report.fail(format!("connection closed: {reason}")),
        }
    };
    let code = response.status().unwrap_or(0);
    report.sip_status = Some(code);
    report.set_setup(sent_at.into_std(), std::time::Instant::now());
    let remote = response.header("To").unwrap_or(&to).to_string();

    if code >= 300 {
        // RFC 3261 §17.1.1.3: the ACK of a non-2xx is part of the INVITE transaction.
        let ack = sip_msg::serialize(
            &format!("ACK {} SIP/2.0", opts.to),
            &[
                ("Via", invite_via),
                ("Max-Forwards", "70".into()),
                ("From", from),
                ("To", remote),
                ("Call-ID", call_id.to_string()),
                ("CSeq", "1 ACK".into()),
            ],
            None,
        );
        let _ = conn.send(ack);
        let warning = response
            .header("Warning")
            .map(|w| format!(" ({w})"))
            .unwrap_or_default();
        return report.fail(format!(
            "INVITE answered {code} {}{warning}",
            sip_msg::reason(code)
        ));
    }

    let mut dialog = Dialog {
        call_id: call_id.to_string(),
        local: from,
        remote,
        remote_target: response
            .contact_uri()
            .map_or_else(|| opts.to.clone(), str::to_string),
        route_set: response.record_routes().into_iter().rev().collect(),
        local_cseq: 1,
        transport,
        local_addr: local,
    };
    if let Err(reason) = conn.send(dialog.ack(1)) {
        return report.fail(reason);
    }

    let plan = match check_answer(&offer, &response.body) {
        Ok(plan) => plan,
        Err(reason) => {
            report.fail(reason);
            hang_up(conn, &mut dialog, events, opts.timeout, report).await;
            return;
        }
    };
    report.media_profile = Some(plan.profile().into());
    report.srtp_suite = plan.srtp.as_ref().map(|k| k.suite.name().into());
    if opts.report_keys {
        report.record_keys(&plan);
    }
    let cname = format!("gateway-sim@{}", local_media.ip);
    let media = match rtp_stream::start(sockets, &plan, cname, false) {
        Ok(m) => m,
        Err(reason) => {
            report.fail(format!("SRTP context: {reason}"));
            hang_up(conn, &mut dialog, events, opts.timeout, report).await;
            return;
        }
    };

    // Media until the duration is over or the far end hangs up; hold and resume on the way.
    let mut reoffers = Reoffers::new(
        SdpState::after_setup(local_media, session_id, &plan),
        opts.rekey,
        dialog::contact(transport, local),
    );
    let mut holds = HoldDriver::new(Instant::now(), opts.hold_at, opts.resume_at);
    let mut info = InfoDriver::new(Instant::now(), opts.info_at);
    let until = sleep(opts.duration);
    tokio::pin!(until);
    let we_hang_up = loop {
        let due = holds.next_due();
        let info_due = info.next_due();
        tokio::select! {
            _ = &mut until => break true,
            _ = sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                holds.fire(conn, &mut dialog, &reoffers, report);
            }
            _ = sleep_until(info_due.unwrap_or_else(Instant::now)), if info_due.is_some() => {
                info.fire(conn, &mut dialog, report);
            }
            event = events.recv() => match event {
                Some(Event::Message(m)) => {
                    if m.method() == Some("BYE") {
                        let _ = conn.send(sip_msg::response(&m, 200, None, &[], None));
                        break false;
                    }
                    if m.method().is_some() {
                        reoffers.on_request(conn, &m, &media, report);
                    } else if !info.on_response(&m, report) {
                        holds.on_response(conn, &dialog, &m, &mut reoffers, &media, report);
                    }
                }
                Some(Event::Closed(reason)) => {
                    report.fail(format!("connection closed during the call: {reason}"));
                    break false;
                }
                None => {
                    report.fail("connection gone during the call");
                    break false;
                }
            },
        }
    };
    holds.finish(report);
    info.finish(report);
    if we_hang_up {
        media.stop_sending();
        tokio::time::sleep(LAST_PACKET_SETTLE).await;
        report.hangup_by = Some("us".into());
        hang_up(conn, &mut dialog, events, opts.timeout, report).await;
    } else if report.error.is_none() {
        report.hangup_by = Some("peer".into());
    }
    let result = media.finish(DRAIN).await;
    report.apply_media(&result, plan.srtp.is_some());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_targets() {
        assert_eq!(host_of("gw1.example.test:5067"), "gw1.example.test");
        assert_eq!(host_of("127.0.0.1:5068"), "127.0.0.1");
        assert_eq!(host_of("[::1]:5068"), "::1");
        assert_eq!(host_of("localhost"), "localhost");
    }

    #[test]
    fn default_from_brackets_an_ipv6_host() {
        let v4: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let v6: SocketAddr = "[::1]:40000".parse().unwrap();
        assert_eq!(default_from(v4), "sip:gateway-sim@127.0.0.1");
        assert_eq!(default_from(v6), "sip:gateway-sim@[::1]");
        // Via and Contact take the socket address, which prints IPv6 in brackets already.
        let via = crate::dialog::via(crate::options::Transport::Tls, v6, "z9hG4bKx");
        assert_eq!(via, "SIP/2.0/TLS [::1]:40000;branch=z9hG4bKx;rport");
        let contact = crate::dialog::contact(crate::options::Transport::Tls, v6);
        assert_eq!(contact, "<sip:gateway-sim@[::1]:40000;transport=tls>");
    }
}
