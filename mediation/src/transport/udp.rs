//! The gateways' UDP door: one task owns one UDP socket. Each remote address is a "flow" that
//! the call layer sees as a connection (`Opened`, `Message`s, a writer channel); behind it the
//! sans-IO [`Transactions`] retransmit, absorb repeats and time out, so the engine can go on
//! thinking in reliable connections. Only configured `transport = "udp"` gateways get a flow;
//! datagrams from anyone else are dropped and counted. UDP signalling is plain: no SDES keys.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

#[cfg(doc)]
use super::admission::Admission;
use super::connection::{answer_locally, extras, status_code, ConnId, SipEvent, OUT_QUEUE};
use super::peer::{Listener, Peer, PeerIdentity, Signalling};
use crate::metrics::Metrics;
use crate::sip::transaction::{Timers, Transactions};

/// The largest datagram we read or write (the UDP length field's limit).
pub const MAX_DATAGRAM: usize = 65_535;

/// Flows held at once, at most (a flow per gateway address; they are never forgotten).
const MAX_FLOWS: usize = 1024;

/// Recognises a UDP gateway by the source address of its first datagram (normally
/// [`Admission::admit_udp`]).
pub type AdmitUdp = Arc<dyn Fn(SocketAddr) -> Option<PeerIdentity> + Send + Sync>;

/// What the UDP task needs.
pub struct UdpContext {
    /// Recognises UDP gateways by source address.
    pub admit: AdmitUdp,
    /// Where flows report.
    pub events: mpsc::Sender<SipEvent>,
    /// Retransmission timers.
    pub timers: Timers,
    /// Largest SIP message accepted, in bytes (at most [`MAX_DATAGRAM`]).
    pub max_message_bytes: usize,
    /// Counters.
    pub metrics: Metrics,
}

/// Asks the UDP task to open flows toward gateways (the outbound side of [`super::Connector`]).
#[derive(Clone, Debug)]
pub struct UdpHandle {
    open: mpsc::Sender<Open>,
}

#[derive(Debug)]
struct Open {
    conn: ConnId,
    peer: Peer,
    remote: SocketAddr,
}

impl UdpHandle {
    /// Opens `conn` toward `remote`: the task emits `Opened` for it. False when the task is
    /// gone.
    pub async fn open(&self, conn: ConnId, peer: Peer, remote: SocketAddr) -> bool {
        self.open.send(Open { conn, peer, remote }).await.is_ok()
    }
}

/// Binds the UDP socket at `addr` and spawns its task; returns the bound address and the
/// handle that opens outbound flows. The task stops when `shutdown` turns true.
pub async fn bind_udp(
    addr: SocketAddr,
    ctx: UdpContext,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<(SocketAddr, UdpHandle)> {
    let socket = UdpSocket::bind(addr).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot bind {addr} ({}): {e}", Listener::GatewayUdp.label()),
        )
    })?;
    let local = socket.local_addr()?;
    tracing::info!(listener = Listener::GatewayUdp.label(), %local, "listening");
    let (open_tx, open_rx) = mpsc::channel(64);
    let (outgoing_tx, outgoing_rx) = mpsc::channel(1024);
    let endpoint = Endpoint {
        socket,
        ctx,
        flows: HashMap::new(),
        conns: HashMap::new(),
        outgoing_tx,
    };
    tokio::spawn(endpoint.run(open_rx, outgoing_rx, shutdown));
    Ok((local, UdpHandle { open: open_tx }))
}

/// One remote address.
struct Flow {
    /// The connection messages from it are handed up on.
    conn: ConnId,
    txns: Transactions,
    /// Transactions dropped so far (to count the difference).
    dropped: u64,
}

struct Endpoint {
    socket: UdpSocket,
    ctx: UdpContext,
    flows: HashMap<SocketAddr, Flow>,
    /// Every connection id (a flow may have several: one inbound, one we opened) → its flow.
    conns: HashMap<ConnId, SocketAddr>,
    outgoing_tx: mpsc::Sender<(ConnId, Bytes)>,
}

impl Endpoint {
    async fn run(
        mut self,
        mut open_rx: mpsc::Receiver<Open>,
        mut outgoing_rx: mpsc::Receiver<(ConnId, Bytes)>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut buf = vec![0u8; MAX_DATAGRAM + 1];
        loop {
            let deadline = self.next_timeout();
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = self.socket.recv_from(&mut buf) => match r {
                    Ok((n, remote)) => self.on_datagram(remote, &buf[..n]).await,
                    // ICMP port unreachable surfaces here on some systems; keep serving.
                    Err(e) => tracing::debug!(error = %e, "UDP receive failed"),
                },
                Some((conn, bytes)) = outgoing_rx.recv() => self.on_send(conn, bytes),
                Some(open) = open_rx.recv() => self.on_open(open).await,
                _ = sleep => {
                    let now = Instant::now();
                    for flow in self.flows.values_mut() {
                        flow.txns.handle_timeout(now);
                    }
                }
                _ = shutdown.changed() => return,
            }
            self.flush().await;
        }
    }

    fn next_timeout(&self) -> Option<Instant> {
        self.flows
            .values()
            .filter_map(|f| f.txns.poll_timeout())
            .min()
    }

    /// Puts every queued datagram on the wire and hands every synthesized message up.
    async fn flush(&mut self) {
        let mut up = Vec::new();
        for (remote, flow) in self.flows.iter_mut() {
            while let Some(bytes) = flow.txns.poll_transmit() {
                if let Some(code) = status_code(&bytes) {
                    self.ctx
                        .metrics
                        .sip_responses
                        .with_label_values(&["sent", code])
                        .inc();
                }
                if let Err(e) = self.socket.send_to(&bytes, remote).await {
                    tracing::debug!(%remote, error = %e, "UDP send failed");
                }
            }
            while let Some(msg) = flow.txns.poll_deliver() {
                up.push(SipEvent::Message {
                    conn: flow.conn,
                    msg,
                });
            }
            let dropped = flow.txns.dropped();
            if dropped > flow.dropped {
                self.ctx
                    .metrics
                    .sip_udp_dropped
                    .with_label_values(&["transaction_table_full"])
                    .inc_by(dropped - flow.dropped);
                flow.dropped = dropped;
            }
        }
        for event in up {
            let _ = self.ctx.events.send(event).await;
        }
    }

    fn count_drop(&self, reason: &str) {
        self.ctx
            .metrics
            .sip_udp_dropped
            .with_label_values(&[reason])
            .inc();
    }

    /// Creates the flow for `remote` (or adds `conn` to the existing one) and announces `conn`.
    async fn attach(&mut self, conn: ConnId, identity: PeerIdentity) -> bool {
        let remote = identity.remote;
        if !self.flows.contains_key(&remote) {
            if self.flows.len() >= MAX_FLOWS {
                tracing::warn!(%remote, "too many UDP flows; datagram dropped");
                self.count_drop("flow_table_full");
                return false;
            }
            let flow = Flow {
                conn,
                txns: Transactions::new(self.ctx.timers),
                dropped: 0,
            };
            self.flows.insert(remote, flow);
        }
        self.conns.insert(conn, remote);
        let out = self.writer(conn);
        let opened = SipEvent::Opened {
            conn,
            peer: Arc::new(identity),
            out,
        };
        self.ctx.events.send(opened).await.is_ok()
    }

    /// The channel the call layer writes `conn`'s messages to; a small task tags them with
    /// `conn` for the endpoint.
    fn writer(&self, conn: ConnId) -> mpsc::Sender<Bytes> {
        let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(OUT_QUEUE);
        let outgoing = self.outgoing_tx.clone();
        tokio::spawn(async move {
            while let Some(bytes) = out_rx.recv().await {
                if bytes.is_empty() {
                    continue; // CLOSE means nothing to a datagram flow
                }
                if outgoing.send((conn, bytes)).await.is_err() {
                    break;
                }
            }
        });
        out_tx
    }

    async fn on_open(&mut self, open: Open) {
        let identity = PeerIdentity {
            peer: open.peer,
            signalling: Signalling::Udp,
            listener: Listener::Outbound,
            remote: open.remote,
        };
        if !self.attach(open.conn, identity).await {
            let _ = self
                .ctx
                .events
                .send(SipEvent::Closed { conn: open.conn })
                .await;
        }
    }

    fn on_send(&mut self, conn: ConnId, bytes: Bytes) {
        let Some(flow) = self.conns.get(&conn).and_then(|r| self.flows.get_mut(r)) else {
            return;
        };
        if bytes.len() > MAX_DATAGRAM.min(self.ctx.max_message_bytes) {
            tracing::warn!(
                ?conn,
                len = bytes.len(),
                "SIP message too large for UDP; not sent"
            );
            self.count_drop("too_large");
            return;
        }
        flow.txns.send(Instant::now(), bytes);
    }

    async fn on_datagram(&mut self, remote: SocketAddr, data: &[u8]) {
        if data.iter().all(|b| b.is_ascii_whitespace()) {
            return; // CRLF keep-alive (or an empty datagram)
        }
        if data.len() > MAX_DATAGRAM.min(self.ctx.max_message_bytes) {
            self.malformed(remote, data, 513, "Message Too Large").await;
            return;
        }
        if !self.flows.contains_key(&remote) {
            let Some(identity) = (self.ctx.admit)(remote) else {
                self.count_drop("unknown_source");
                return;
            };
            if !self.attach(ConnId::next(), identity).await {
                return;
            }
        }
        let msg = match crate::sip::parse(data) {
            Ok(msg) => msg,
            Err(e) => {
                tracing::warn!(%remote, error = %e, "malformed SIP datagram");
                let (code, reason) = e.response_status();
                self.malformed(remote, data, code, reason).await;
                return;
            }
        };
        self.on_message(remote, data, msg).await;
    }

    async fn on_message(&mut self, remote: SocketAddr, data: &[u8], msg: rsip::SipMessage) {
        if let Some(code) = status_code(data) {
            self.ctx
                .metrics
                .sip_responses
                .with_label_values(&["received", code])
                .inc();
        }
        if let Some(reply) = answer_locally(&msg) {
            let _ = self.socket.send_to(&reply, remote).await;
            return;
        }
        // A response may come from another port of the gateway than the one we sent to.
        let owner = match &msg {
            rsip::SipMessage::Response(_) => self
                .flows
                .iter()
                .find(|(_, f)| f.txns.owns_response(&msg))
                .map(|(r, _)| *r)
                .unwrap_or(remote),
            rsip::SipMessage::Request(_) => remote,
        };
        let Some(flow) = self.flows.get_mut(&owner) else {
            return;
        };
        let conn = flow.conn;
        if let Some(msg) = flow.txns.receive(Instant::now(), msg) {
            let _ = self.ctx.events.send(SipEvent::Message { conn, msg }).await;
        }
    }

    /// Counts an unparseable datagram and answers it statelessly if it is a request.
    async fn malformed(&self, remote: SocketAddr, data: &[u8], code: u16, reason: &str) {
        self.ctx
            .metrics
            .sip_malformed
            .with_label_values(&[Listener::GatewayUdp.label()])
            .inc();
        if !self.flows.contains_key(&remote) {
            return; // never answer strangers
        }
        if let Some(reply) = crate::sip::response_for(data, code, reason, &extras()) {
            let _ = self.socket.send_to(&reply, remote).await;
        }
    }
}

#[cfg(test)]
mod tests;
