//! The I/O loop around the sans-IO call engine: feeds it connection events and timer expiries,
//! and carries out what it asks: write to connections (queued while an outbound connection is
//! being opened), open connections, start and stop media relays.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use crate::call::{Engine, Input, LegPlan, MediaCommand, Output, PortAllocator};
use crate::config::IpFamily;
use crate::media::{LegMedia, LegSockets, MediaWorkers, PortPools, RelayHandle, Side};
use crate::metrics::Metrics;
use crate::sip;
use crate::srtp::ReplayWindow;
use crate::transport::{ConnId, Connector, Listener, SipEvent, CLOSE};

/// Ports backed by bound UDP socket pairs, held until the relay takes them. The pools of the
/// two families share a port range, so a held pair is known by its family and port.
pub(crate) struct SocketPorts {
    pools: PortPools,
    held: HashMap<(IpFamily, u16), LegSockets>,
}

impl SocketPorts {
    /// Over the pools.
    pub(crate) fn new(pools: PortPools) -> Self {
        Self {
            pools,
            held: HashMap::new(),
        }
    }

    fn take(&mut self, family: IpFamily, port: u16) -> Option<LegSockets> {
        self.held.remove(&(family, port))
    }
}

impl PortAllocator for SocketPorts {
    fn allocate(&mut self, family: IpFamily) -> Option<u16> {
        let sockets = match self.pools.allocate(family) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "no media port pair available");
                return None;
            }
        };
        let port = sockets.rtp_port();
        self.held.insert((family, port), sockets);
        Some(port)
    }

    fn release(&mut self, family: IpFamily, port: u16) {
        self.held.remove(&(family, port));
    }
}

/// Orders from the service to the call layer.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Control {
    /// Refuse new calls with 503; let calls in progress go on.
    Drain,
    /// End every call now.
    EndAll,
}

/// What the driver needs besides the engine.
pub(crate) struct DriverIo {
    /// Connection events.
    pub events: mpsc::Receiver<SipEvent>,
    /// Opens outbound connections.
    pub connector: Connector,
    /// Counters.
    pub metrics: Metrics,
    /// Service orders.
    pub control: mpsc::Receiver<Control>,
    /// The number of calls held, updated after every event.
    pub active: watch::Sender<usize>,
    /// End calls whose media stopped for this long (`None`: never).
    pub media_timeout: Option<Duration>,
    /// Close accepted connections that carried no message for this long and no call uses
    /// (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// The SRTP/SRTCP replay window of every SRTP leg (`[media] replay_window`).
    pub replay_window: ReplayWindow,
    /// Stops the loop.
    pub shutdown: watch::Receiver<bool>,
    /// The media threads calls' relays run on.
    pub media: std::sync::Arc<MediaWorkers>,
}

/// Runs the engine until `shutdown` turns true.
pub(crate) async fn run(mut engine: Engine<SocketPorts>, io: DriverIo) {
    let DriverIo {
        mut events,
        connector,
        metrics,
        mut control,
        active,
        media_timeout,
        idle_timeout,
        replay_window,
        mut shutdown,
        media,
    } = io;
    // Accepted connections: their front door and when they last carried a message.
    let mut idle: HashMap<ConnId, (Listener, Instant)> = HashMap::new();
    let mut conns: HashMap<ConnId, mpsc::Sender<Bytes>> = HashMap::new();
    let mut pending: HashMap<ConnId, Vec<Bytes>> = HashMap::new();
    let mut relays: HashMap<u64, (RelayHandle, Instant)> = HashMap::new();
    engine.start(Instant::now());
    let mut sweep = tokio::time::interval(Duration::from_secs(1));
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let timeout = engine.poll_timeout();
        let sleep = async {
            match timeout {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break };
                let now = Instant::now();
                match event {
                    SipEvent::Opened { conn, peer, out } => {
                        // UDP flows too: CLOSE lets the UDP door forget an address no call
                        // uses any more.
                        if matches!(
                            peer.listener,
                            Listener::NextHop
                                | Listener::GatewayTls
                                | Listener::GatewayTcp
                                | Listener::GatewayUdp
                        ) {
                            idle.insert(conn, (peer.listener, now));
                        }
                        for bytes in pending.remove(&conn).unwrap_or_default() {
                            let _ = out.try_send(bytes);
                        }
                        conns.insert(conn, out);
                        engine.handle(now, Input::Opened { conn, peer });
                    }
                    SipEvent::Message { conn, msg } => {
                        if let Some((_, last)) = idle.get_mut(&conn) {
                            *last = now;
                        }
                        if tracing::enabled!(tracing::Level::DEBUG) {
                            sip::trace::message("received", conn, &msg.encode());
                        }
                        engine.handle(now, Input::Message { conn, msg })
                    }
                    SipEvent::Closed { conn } => {
                        idle.remove(&conn);
                        conns.remove(&conn);
                        pending.remove(&conn);
                        engine.handle(now, Input::Closed { conn });
                    }
                }
            }
            _ = sleep => engine.handle_timeout(Instant::now()),
            Some(order) = control.recv() => {
                let input = match order {
                    Control::Drain => Input::Drain,
                    Control::EndAll => Input::EndAll,
                };
                engine.handle(Instant::now(), input);
            }
            _ = sweep.tick() => {
                if let Some(limit) = idle_timeout {
                    let now = Instant::now();
                    let stale: Vec<(ConnId, Listener)> = idle
                        .iter()
                        .filter(|(conn, (_, last))| {
                            now.saturating_duration_since(*last) >= limit && !engine.uses(**conn)
                        })
                        .map(|(conn, (listener, _))| (*conn, *listener))
                        .collect();
                    for (conn, listener) in stale {
                        idle.remove(&conn);
                        if let Some(out) = conns.get(&conn) {
                            tracing::info!(?conn, listener = listener.label(), "idle connection closed");
                            metrics.sip_idle_closed.with_label_values(&[listener.label()]).inc();
                            let _ = out.try_send(CLOSE);
                        }
                    }
                }
                if let Some(limit) = media_timeout {
                    let now = Instant::now();
                    for (call, both) in silent_calls(&relays, now, limit) {
                        engine.handle(now, Input::MediaTimeout { call, both });
                    }
                }
            }
            _ = shutdown.changed() => break,
        }
        while let Some(report) = engine.poll_report() {
            metrics.record(&report);
        }
        while let Some(output) = engine.poll_output() {
            match output {
                Output::Connect { conn, target } => {
                    pending.insert(conn, Vec::new());
                    let (peer, address) = (target.peer, target.address);
                    connector.spawn(conn, peer, address, target.tls_identity, target.family);
                }
                Output::Send { conn, bytes } => {
                    sip::trace::message("sent", conn, &bytes);
                    if let Some(out) = conns.get(&conn) {
                        if out.try_send(bytes).is_err() {
                            // A peer that leaves hundreds of messages unread is gone; the
                            // writer's end will close and the engine hears `Closed`.
                            tracing::warn!(?conn, "peer not reading; message dropped");
                            conns.remove(&conn);
                        }
                    } else if let Some(queue) = pending.get_mut(&conn) {
                        queue.push(bytes);
                    }
                }
                Output::Media(MediaCommand::Start { call, legs }) => {
                    let [a, b] = *legs;
                    match (
                        leg(&mut engine, a, replay_window),
                        leg(&mut engine, b, replay_window),
                    ) {
                        (Some(a), Some(b)) => match media.spawn_relay(a, b, &metrics) {
                            Ok(relay) => {
                                relays.insert(call, (relay, Instant::now()));
                            }
                            Err(e) => {
                                tracing::error!(call, error = %e, "media relay failed to start")
                            }
                        },
                        _ => tracing::error!(call, "media sockets missing for a started call"),
                    }
                }
                Output::Media(MediaCommand::Rekey {
                    call,
                    leg,
                    protection,
                }) => {
                    let side = relay_side(leg);
                    if let (Some((relay, _)), crate::media::Protection::Srtp { tx, rx }) =
                        (relays.get(&call), protection)
                    {
                        relay.rekey(side, tx, rx);
                    }
                }
                Output::Media(MediaCommand::Remote {
                    call,
                    leg,
                    rtp,
                    rtcp,
                }) => {
                    let side = relay_side(leg);
                    if let Some((relay, _)) = relays.get(&call) {
                        relay.set_remote(side, rtp, rtcp);
                    }
                }
                Output::Media(MediaCommand::Stop { call }) => {
                    // Dropping the handle stops the relay and returns its ports.
                    relays.remove(&call);
                }
            }
        }
        active.send_replace(engine.active());
        let (dialogs, transactions) = engine.dialogs_and_transactions();
        metrics.active_dialogs.set(dialogs as i64);
        metrics.sip_transactions.set(transactions as i64);
        let (in_use, total) = port_usage(&mut engine);
        metrics
            .media_ports
            .with_label_values(&["in_use"])
            .set(in_use);
        metrics
            .media_ports
            .with_label_values(&["free"])
            .set(total - in_use);
    }
    for (_, (relay, _)) in relays.drain() {
        relay.stop().await;
    }
}

/// Calls whose relay has seen no packet on a leg for `limit` (counting from its start when none
/// ever came), with whether both legs are silent.
fn silent_calls(
    relays: &HashMap<u64, (RelayHandle, Instant)>,
    now: Instant,
    limit: Duration,
) -> Vec<(u64, bool)> {
    relays
        .iter()
        .filter_map(|(id, (relay, started))| {
            let stats = relay.stats();
            let silent = [Side::A, Side::B].map(|side| {
                let last = stats.leg(side).last_packet.unwrap_or(*started);
                now.saturating_duration_since(last) >= limit
            });
            silent
                .iter()
                .any(|s| *s)
                .then_some((*id, silent.iter().all(|s| *s)))
        })
        .collect()
}

/// The relay's side of a leg named in a media command: side A is the gateway leg (see
/// `media_plan::plans`).
fn relay_side(leg: &str) -> Side {
    if leg == "gateway" {
        Side::A
    } else {
        Side::B
    }
}

/// Media port pairs (in use, in total), all families.
fn port_usage(engine: &mut Engine<SocketPorts>) -> (i64, i64) {
    let pools = &engine.ports_mut().pools;
    (pools.in_use() as i64, pools.capacity() as i64)
}

fn leg(
    engine: &mut Engine<SocketPorts>,
    plan: LegPlan,
    replay_window: ReplayWindow,
) -> Option<LegMedia> {
    let sockets = engine.ports_mut().take(plan.family, plan.port)?;
    Some(
        LegMedia::new(plan.label, sockets, plan.protection)
            .with_remote(plan.remote_rtp, plan.remote_rtcp)
            .with_rtcp_mux(plan.rtcp_mux)
            .with_replay_window(replay_window)
            .with_sources(plan.sources),
    )
}
