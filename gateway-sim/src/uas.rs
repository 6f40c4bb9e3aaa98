//! Answering calls (`gateway-sim answer`): listens on TCP or MTLS (client certificate required
//! and verified against `--ca`), answers each INVITE with 100, 180 and 200 with an SDP answer
//! (or 488 when the `--srtp` mode refuses the offer), waits for the ACK, sends media back, and
//! ends on the far end's BYE or, with a duration, sends BYE itself.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep, timeout, Instant};
use tokio_rustls::TlsAcceptor;

use crate::dialog::{self, Dialog, USER_AGENT};
use crate::error::SimError;
use crate::in_dialog::{answer_request, hang_up, Reoffers};
use crate::negotiate::{answer_offer, AnswerDecision};
use crate::options::{AnswerOptions, Transport};
use crate::reoffer::SdpState;
use crate::report::{CallReport, Direction, Report};
use crate::rtp_stream::{self, MediaSockets, DRAIN, LAST_PACKET_SETTLE};
use crate::sip_msg::{self, SipMsg};
use crate::ua::{Event, NewDialog, SipConnection};

/// A bound answering endpoint; [`AnswerServer::run`] serves calls.
pub struct AnswerServer {
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    opts: Arc<AnswerOptions>,
}

impl std::fmt::Debug for AnswerServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnswerServer")
            .field("listener", &self.listener.local_addr().ok())
            .field("tls", &self.acceptor.is_some())
            .finish()
    }
}

/// State shared by the accept loop, the connections and the calls.
struct Shared {
    opts: Arc<AnswerOptions>,
    reports: mpsc::UnboundedSender<CallReport>,
    hangup: watch::Receiver<bool>,
    active: AtomicU64,
    tls_failures: AtomicU64,
    connections: Mutex<Vec<SipConnection>>,
}

impl AnswerServer {
    /// Binds the listener (and loads the TLS material when `opts.tls` is set).
    pub async fn bind(opts: AnswerOptions) -> Result<Self, SimError> {
        let acceptor = opts.tls.as_ref().map(crate::tls::acceptor).transpose()?;
        let listener = TcpListener::bind(opts.listen)
            .await
            .map_err(|source| SimError::Io {
                what: format!("listen on {}", opts.listen),
                source,
            })?;
        Ok(Self {
            listener,
            acceptor,
            opts: Arc::new(opts),
        })
    }

    /// Where it listens (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| self.opts.listen)
    }

    /// Serves until `max_calls` calls have ended (forever without it).
    pub async fn run(self) -> Report {
        self.run_until(std::future::pending()).await
    }

    /// Serves until `max_calls` calls have ended or `shutdown` completes; calls still up then
    /// are hung up (BYE) and included in the report.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> Report {
        let started = Instant::now();
        let (reports_tx, mut reports_rx) = mpsc::unbounded_channel();
        let (hangup_tx, hangup_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            opts: self.opts.clone(),
            reports: reports_tx,
            hangup: hangup_rx,
            active: AtomicU64::new(0),
            tls_failures: AtomicU64::new(0),
            connections: Mutex::new(Vec::new()),
        });
        let max = self.opts.max_calls;
        let mut calls = Vec::new();
        tokio::pin!(shutdown);
        if max != Some(0) {
            loop {
                tokio::select! {
                    accepted = self.listener.accept() => {
                        if let Ok((tcp, peer)) = accepted {
                            tokio::spawn(serve_connection(
                                tcp,
                                peer,
                                self.acceptor.clone(),
                                shared.clone(),
                            ));
                        }
                    }
                    Some(report) = reports_rx.recv() => {
                        calls.push(report);
                        if max.is_some_and(|m| calls.len() as u64 >= m) {
                            break;
                        }
                    }
                    _ = &mut shutdown => break,
                }
            }
        }
        // Wind down: hang up what is still up and wait for those reports.
        let _ = hangup_tx.send(true);
        let wind_down = self.opts.timeout + DRAIN + Duration::from_secs(1);
        let deadline = Instant::now() + wind_down;
        while shared.active.load(Ordering::SeqCst) > 0 {
            match tokio::time::timeout_at(deadline, reports_rx.recv()).await {
                Ok(Some(report)) => calls.push(report),
                _ => break,
            }
        }
        while let Ok(report) = reports_rx.try_recv() {
            calls.push(report);
        }
        let connections = std::mem::take(&mut *lock(&shared.connections));
        for conn in connections {
            conn.close();
        }
        Report::new(
            calls,
            started.elapsed(),
            shared.tls_failures.load(Ordering::SeqCst),
        )
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: Option<TlsAcceptor>,
    shared: Arc<Shared>,
) {
    let _ = tcp.set_nodelay(true);
    let Ok(local) = tcp.local_addr() else {
        return;
    };
    let (dialogs_tx, mut dialogs_rx) = mpsc::unbounded_channel();
    let conn = match acceptor {
        Some(acceptor) => match timeout(shared.opts.timeout, acceptor.accept(tcp)).await {
            Ok(Ok(stream)) => {
                SipConnection::spawn(stream, local, peer, Transport::Tls, Some(dialogs_tx))
            }
            Ok(Err(e)) => {
                shared.tls_failures.fetch_add(1, Ordering::SeqCst);
                eprintln!("gateway-sim: TLS handshake from {peer} refused: {e}");
                return;
            }
            Err(_) => {
                shared.tls_failures.fetch_add(1, Ordering::SeqCst);
                eprintln!("gateway-sim: TLS handshake from {peer} timed out");
                return;
            }
        },
        None => SipConnection::spawn(tcp, local, peer, Transport::Tcp, Some(dialogs_tx)),
    };
    lock(&shared.connections).push(conn.clone());
    while let Some(new) = dialogs_rx.recv().await {
        if *shared.hangup.borrow() {
            let _ = conn.send(sip_msg::response(&new.invite, 503, None, &[], None));
            if let Some(call_id) = new.invite.call_id() {
                conn.unregister(call_id);
            }
            continue;
        }
        shared.active.fetch_add(1, Ordering::SeqCst);
        let (conn, shared) = (conn.clone(), shared.clone());
        tokio::spawn(async move {
            let call_id = new.invite.call_id().unwrap_or_default().to_string();
            let report = answer_call(&conn, new, &shared.opts, shared.hangup.clone()).await;
            conn.unregister(&call_id);
            shared.active.fetch_sub(1, Ordering::SeqCst);
            let _ = shared.reports.send(report);
        });
    }
}

/// Waits for the ACK of our final response; a CANCEL or BYE ends the wait too.
enum AckWait {
    Acked,
    Bye,
    Failed(String),
}

async fn wait_for_ack(
    conn: &SipConnection,
    events: &mut mpsc::UnboundedReceiver<Event>,
    wait: Duration,
) -> AckWait {
    let deadline = Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) => return AckWait::Failed(format!("no ACK within {:.1} s", wait.as_secs_f64())),
            Ok(None) => return AckWait::Failed("connection gone".into()),
            Ok(Some(Event::Closed(reason))) => {
                return AckWait::Failed(format!("connection closed: {reason}"))
            }
            Ok(Some(Event::Message(m))) => match m.method() {
                Some("ACK") => return AckWait::Acked,
                Some("BYE") => {
                    let _ = conn.send(sip_msg::response(&m, 200, None, &[], None));
                    return AckWait::Bye;
                }
                Some("CANCEL") => {
                    // Too late: the INVITE already has its final response.
                    let _ = conn.send(sip_msg::response(&m, 200, None, &[], None));
                }
                Some("INVITE") => {} // A retransmission.
                Some(_) => answer_request(conn, &m),
                None => {}
            },
        }
    }
}

/// One incoming call, from INVITE to the end of media.
pub(crate) async fn answer_call(
    conn: &SipConnection,
    new: NewDialog,
    opts: &AnswerOptions,
    mut hangup: watch::Receiver<bool>,
) -> CallReport {
    let received_at = Instant::now();
    let NewDialog { invite, mut events } = new;
    let call_id = invite.call_id().unwrap_or_default().to_string();
    let mut report = CallReport::new(
        call_id.clone(),
        Direction::Incoming,
        conn.transport().as_str(),
    );
    let _ = conn.send(sip_msg::response(&invite, 100, None, &[], None));
    let to_tag = sip_msg::token(10);
    let local = conn.local_addr();
    let contact = dialog::contact(conn.transport(), local);
    let refuse = |code: u16, reason: &str| {
        let warning = format!("399 gateway-sim \"{}\"", reason.replace('"', "'"));
        sip_msg::response(
            &invite,
            code,
            Some(&to_tag),
            &[("Warning", warning), ("Server", USER_AGENT.into())],
            None,
        )
    };

    let sockets = match MediaSockets::bind(opts.media_ip).await {
        Ok(s) => s,
        Err(e) => {
            let reason = format!("media sockets on {}: {e}", opts.media_ip);
            let _ = conn.send(refuse(500, &reason));
            report.sip_status = Some(500);
            report.fail(reason);
            let _ = wait_for_ack(conn, &mut events, opts.timeout).await;
            return report;
        }
    };
    let local_media = match sockets.local() {
        Ok(l) => l,
        Err(e) => {
            report.fail(format!("media sockets: {e}"));
            return report;
        }
    };
    let session_id: u64 = rand::random::<u32>().into();
    let (sdp, plan) = match answer_offer(opts.srtp, &invite.body, local_media, session_id) {
        AnswerDecision::Accept { sdp, plan } => (sdp, plan),
        AnswerDecision::Reject { code, reason } => {
            let _ = conn.send(refuse(code, &reason));
            report.sip_status = Some(code);
            report.fail(format!(
                "offer refused with {code} {}: {reason}",
                sip_msg::reason(code)
            ));
            if let AckWait::Failed(why) = wait_for_ack(conn, &mut events, opts.timeout).await {
                eprintln!("gateway-sim: call {call_id}: after {code}: {why}");
            }
            return report;
        }
    };

    let contact_header = [("Contact", contact.clone()), ("Server", USER_AGENT.into())];
    let _ = conn.send(sip_msg::response(
        &invite,
        180,
        Some(&to_tag),
        &contact_header,
        None,
    ));
    if !opts.ring.is_zero() {
        if let Some(outcome) = ring(conn, &invite, &to_tag, &mut events, opts.ring).await {
            report.sip_status = (outcome.0 != 0).then_some(outcome.0);
            report.fail(outcome.1);
            if outcome.0 == 487 {
                let _ = wait_for_ack(conn, &mut events, opts.timeout).await;
            }
            return report;
        }
    }
    if let Err(reason) = conn.send(sip_msg::response(
        &invite,
        200,
        Some(&to_tag),
        &contact_header,
        Some(("application/sdp", sdp.as_bytes())),
    )) {
        report.fail(reason);
        return report;
    }
    report.sip_status = Some(200);

    let to_value = invite.header("To").unwrap_or_default();
    let mut dialog = Dialog {
        call_id: call_id.clone(),
        local: format!("{to_value};tag={to_tag}"),
        remote: invite.header("From").unwrap_or_default().to_string(),
        remote_target: invite
            .contact_uri()
            .map_or_else(|| format!("sip:{}", conn.peer_addr()), str::to_string),
        route_set: invite.record_routes(),
        local_cseq: 0,
        transport: conn.transport(),
        local_addr: local,
    };
    match wait_for_ack(conn, &mut events, opts.timeout).await {
        AckWait::Acked => {}
        AckWait::Bye => {
            report.fail("BYE before ACK");
            return report;
        }
        AckWait::Failed(reason) => {
            report.fail(reason);
            hang_up(conn, &mut dialog, &mut events, opts.timeout, &mut report).await;
            return report;
        }
    }
    report.set_setup(received_at.into_std(), std::time::Instant::now());
    report.media_profile = Some(plan.profile().into());
    report.srtp_suite = plan.srtp.as_ref().map(|k| k.suite.name().into());
    if opts.report_keys {
        report.record_keys(&plan);
    }

    let cname = format!("gateway-sim@{}", local_media.ip);
    let media = match rtp_stream::start(sockets, &plan, cname, opts.any_payload) {
        Ok(m) => m,
        Err(reason) => {
            report.fail(format!("SRTP context: {reason}"));
            hang_up(conn, &mut dialog, &mut events, opts.timeout, &mut report).await;
            return report;
        }
    };

    let mut reoffers = Reoffers::new(
        SdpState::after_setup(local_media, session_id, &plan),
        opts.rekey,
        contact.clone(),
    );
    let until = sleep(opts.duration.unwrap_or(Duration::ZERO));
    tokio::pin!(until);
    let we_hang_up = loop {
        tokio::select! {
            _ = &mut until, if opts.duration.is_some() => break true,
            _ = hangup.changed() => {
                if *hangup.borrow() {
                    break true;
                }
            }
            event = events.recv() => match event {
                Some(Event::Message(m)) => match m.method() {
                    Some("BYE") => {
                        let _ = conn.send(sip_msg::response(&m, 200, None, &[], None));
                        break false;
                    }
                    Some("CANCEL") => {
                        let _ = conn.send(sip_msg::response(&m, 200, None, &[], None));
                    }
                    None => {}
                    Some(_) => reoffers.on_request(conn, &m, &media, &mut report),
                },
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
    if we_hang_up {
        media.stop_sending();
        tokio::time::sleep(LAST_PACKET_SETTLE).await;
        report.hangup_by = Some("us".into());
        hang_up(conn, &mut dialog, &mut events, opts.timeout, &mut report).await;
    } else if report.error.is_none() {
        report.hangup_by = Some("peer".into());
    }
    let result = media.finish(DRAIN).await;
    report.apply_media(&result, plan.srtp.is_some());
    report
}

/// Rings for `ring`; `Some((status, reason))` if the caller cancelled (487) or hung up.
async fn ring(
    conn: &SipConnection,
    invite: &SipMsg,
    to_tag: &str,
    events: &mut mpsc::UnboundedReceiver<Event>,
    ring: Duration,
) -> Option<(u16, String)> {
    let deadline = Instant::now() + ring;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) => return None,
            Ok(None) => return Some((0, "connection gone while ringing".into())),
            Ok(Some(Event::Closed(reason))) => {
                return Some((0, format!("connection closed while ringing: {reason}")))
            }
            Ok(Some(Event::Message(m))) => match m.method() {
                Some("CANCEL") => {
                    let _ = conn.send(sip_msg::response(&m, 200, None, &[], None));
                    let _ = conn.send(sip_msg::response(invite, 487, Some(to_tag), &[], None));
                    return Some((487, "cancelled by the caller while ringing".into()));
                }
                Some("INVITE") | Some("ACK") | None => {}
                Some(_) => answer_request(conn, &m),
            },
        }
    }
}
