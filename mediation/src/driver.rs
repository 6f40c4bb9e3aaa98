//! The I/O loop around the sans-IO call engine: feeds it connection events and timer expiries,
//! and carries out what it asks: write to connections (queued while an outbound connection is
//! being opened), open connections, start and stop media relays.

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use crate::call::{Engine, Input, LegPlan, MediaCommand, Output, PortAllocator};
use crate::media::{spawn_relay, LegMedia, LegSockets, PortPool, RelayHandle};
use crate::metrics::Metrics;
use crate::transport::{ConnId, Connector, SipEvent};

/// Ports backed by bound UDP socket pairs, held until the relay takes them.
pub struct SocketPorts {
    pool: PortPool,
    held: HashMap<u16, LegSockets>,
}

impl SocketPorts {
    /// Over a pool.
    pub fn new(pool: PortPool) -> Self {
        Self {
            pool,
            held: HashMap::new(),
        }
    }

    fn take(&mut self, port: u16) -> Option<LegSockets> {
        self.held.remove(&port)
    }
}

impl PortAllocator for SocketPorts {
    fn allocate(&mut self) -> Option<u16> {
        let sockets = match self.pool.allocate() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "no media port pair available");
                return None;
            }
        };
        let port = sockets.rtp_port();
        self.held.insert(port, sockets);
        Some(port)
    }

    fn release(&mut self, port: u16) {
        self.held.remove(&port);
    }
}

/// Runs the engine until `shutdown` turns true.
pub async fn run(
    mut engine: Engine<SocketPorts>,
    mut events: mpsc::Receiver<SipEvent>,
    connector: Connector,
    metrics: Metrics,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns: HashMap<ConnId, mpsc::Sender<Bytes>> = HashMap::new();
    let mut pending: HashMap<ConnId, Vec<Bytes>> = HashMap::new();
    let mut relays: HashMap<u64, RelayHandle> = HashMap::new();
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
                        for bytes in pending.remove(&conn).unwrap_or_default() {
                            let _ = out.try_send(bytes);
                        }
                        conns.insert(conn, out);
                        engine.handle(now, Input::Opened { conn, peer });
                    }
                    SipEvent::Message { conn, msg } => engine.handle(now, Input::Message { conn, msg }),
                    SipEvent::Closed { conn } => {
                        conns.remove(&conn);
                        pending.remove(&conn);
                        engine.handle(now, Input::Closed { conn });
                    }
                }
            }
            _ = sleep => engine.handle_timeout(Instant::now()),
            _ = shutdown.changed() => break,
        }
        while let Some(output) = engine.poll_output() {
            match output {
                Output::Connect { conn, target } => {
                    pending.insert(conn, Vec::new());
                    connector.spawn(conn, target.peer, target.address, target.tls_identity);
                }
                Output::Send { conn, bytes } => {
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
                    let [a, b] = legs;
                    match (leg(&mut engine, a), leg(&mut engine, b)) {
                        (Some(a), Some(b)) => match spawn_relay(a, b, &metrics) {
                            Ok(relay) => {
                                relays.insert(call, relay);
                            }
                            Err(e) => {
                                tracing::error!(call, error = %e, "media relay failed to start")
                            }
                        },
                        _ => tracing::error!(call, "media sockets missing for a started call"),
                    }
                }
                Output::Media(MediaCommand::Stop { call }) => {
                    // Dropping the handle stops the relay and returns its ports.
                    relays.remove(&call);
                }
            }
        }
    }
    for (_, relay) in relays.drain() {
        relay.stop().await;
    }
}

fn leg(engine: &mut Engine<SocketPorts>, plan: LegPlan) -> Option<LegMedia> {
    let sockets = engine.ports_mut().take(plan.port)?;
    Some(
        LegMedia::new(plan.label, sockets, plan.protection)
            .with_remote(plan.remote_rtp, plan.remote_rtcp)
            .with_rtcp_mux(plan.rtcp_mux),
    )
}
