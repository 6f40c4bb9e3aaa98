//! The gateways' UDP door: one task owns one UDP socket. Each remote address is a "flow" that
//! the call layer sees as a connection (`Opened`, `Message`s, a writer channel); behind it the
//! sans-IO [`Transactions`] retransmit, absorb repeats and time out, so the engine can go on
//! thinking in reliable connections. Only configured `transport = "udp"` gateways get a flow;
//! datagrams from anyone else are dropped and counted. UDP signalling is plain: no SDES keys.
//!
//! Flows are bounded and forgotten when idle (see [`flows`]): spoofed source ports from a
//! gateway's IP evict each other, not the gateway, and each loop round touches only the flows
//! that received, sent or have a timer due.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

#[cfg(doc)]
use super::admission::Admission;
use super::connection::{
    answer_locally, answer_malformed, extras, status_code, SipEvent, OUT_QUEUE,
};
use crate::metrics::Metrics;
use crate::peer::{ConnId, Listener, Peer, PeerIdentity, Signalling};
use crate::sip::transaction::Timers;
#[cfg(doc)]
use crate::sip::transaction::Transactions;

mod flows;

pub(crate) use flows::FlowLimits;
use flows::{FlowTable, Gone};

/// The largest datagram we read or write (the UDP length field's limit).
pub(super) const MAX_DATAGRAM: usize = 65_535;

/// Recognises a UDP gateway by the source address of its first datagram (normally
/// [`Admission::admit_udp`]).
pub(super) type AdmitUdp = Arc<dyn Fn(SocketAddr) -> Option<PeerIdentity> + Send + Sync>;

/// What the UDP task needs.
pub(crate) struct UdpContext {
    /// Recognises UDP gateways by source address.
    pub(crate) admit: AdmitUdp,
    /// Where flows report.
    pub(crate) events: mpsc::Sender<SipEvent>,
    /// Retransmission timers (64*T1 is also how long a flow outlives its last activity).
    pub(crate) timers: Timers,
    /// How many flows may be held.
    pub(crate) limits: FlowLimits,
    /// Largest SIP message accepted, in bytes (at most [`MAX_DATAGRAM`]).
    pub(crate) max_message_bytes: usize,
    /// Counters.
    pub(crate) metrics: Metrics,
}

/// Asks the UDP task to open flows toward gateways (the outbound side of [`super::Connector`]).
#[derive(Clone, Debug)]
pub(crate) struct UdpHandle {
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
    pub(crate) async fn open(&self, conn: ConnId, peer: Peer, remote: SocketAddr) -> bool {
        self.open.send(Open { conn, peer, remote }).await.is_ok()
    }
}

/// Binds the UDP socket at `addr` and spawns its task; returns the bound address and the
/// handle that opens outbound flows. The task stops when `shutdown` turns true.
pub(crate) async fn bind_udp(
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
        flows: FlowTable::new(ctx.timers, ctx.limits),
        ctx,
        dirty: Vec::new(),
        outgoing_tx,
    };
    tokio::spawn(endpoint.run(open_rx, outgoing_rx, shutdown));
    Ok((local, UdpHandle { open: open_tx }))
}

struct Endpoint {
    socket: UdpSocket,
    ctx: UdpContext,
    flows: FlowTable,
    /// Flows that received, sent or fired timers since the last flush.
    dirty: Vec<SocketAddr>,
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
            let deadline = self.flows.next_deadline();
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = self.socket.recv_from(&mut buf) => match r {
                    // A socket on `::` names an IPv4 peer `::ffff:192.0.2.1`: its flow is
                    // keyed, admitted and answered by its IPv4 address (Linux sends to an IPv4
                    // address from a dual-stack socket), as the flows we open are.
                    Ok((n, remote)) => {
                        let remote = SocketAddr::new(remote.ip().to_canonical(), remote.port());
                        self.on_datagram(remote, &buf[..n]).await
                    }
                    // ICMP port unreachable surfaces here on some systems; keep serving.
                    Err(e) => tracing::debug!(error = %e, "UDP receive failed"),
                },
                Some((conn, bytes)) = outgoing_rx.recv() => self.on_send(conn, bytes).await,
                Some(open) = open_rx.recv() => self.on_open(open).await,
                _ = sleep => self.on_timers(Instant::now()),
                _ = shutdown.changed() => return,
            }
            self.flush().await;
        }
    }

    /// Fires the timers of the flows that are due (and only theirs).
    fn on_timers(&mut self, now: Instant) {
        for remote in self.flows.due(now) {
            if let Some(flow) = self.flows.flow_mut(remote) {
                flow.txns.handle_timeout(now);
                self.dirty.push(remote);
            }
        }
    }

    /// For every flow touched since the last flush: puts its queued datagrams on the wire,
    /// hands its synthesized messages up, and schedules it again, or parks or forgets it when
    /// it has been idle long enough.
    async fn flush(&mut self) {
        let now = Instant::now();
        let mut up = Vec::new();
        for remote in std::mem::take(&mut self.dirty) {
            let Some(flow) = self.flows.flow_mut(remote) else {
                continue;
            };
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
            if let Some(conn) = flow.conns.first().copied() {
                while let Some(msg) = flow.txns.poll_deliver() {
                    up.push(SipEvent::Message { conn, msg });
                }
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
            match self.flows.expire(now, remote) {
                Some(Gone::Closed(conns)) => {
                    tracing::debug!(%remote, "idle UDP flow forgotten");
                    up.extend(conns.into_iter().map(|conn| SipEvent::Closed { conn }));
                }
                Some(Gone::Parked) => tracing::debug!(%remote, "idle UDP flow parked"),
                None => {}
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

    /// Announces `conn` to the call layer.
    async fn announce(&mut self, conn: ConnId, identity: PeerIdentity) -> bool {
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
                // CLOSE (empty) goes through too: the call layer no longer needs `conn`.
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
        self.flows
            .insert_outbound(Instant::now(), open.remote, open.conn);
        self.announce(open.conn, identity).await;
    }

    async fn on_send(&mut self, conn: ConnId, bytes: Bytes) {
        if bytes.is_empty() {
            // CLOSE: the call layer is done with `conn` (no call uses it).
            if self.flows.close(conn) {
                let _ = self.ctx.events.send(SipEvent::Closed { conn }).await;
            }
            return;
        }
        let now = Instant::now();
        // A flow parked while idle comes back under the same id (a BYE late in a call).
        let Some(remote) = self.flows.remote_of(now, conn) else {
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
        if let Some((branch, method)) = request_key(&bytes) {
            self.flows.sent_request(remote, branch, method);
        }
        if let Some(flow) = self.flows.flow_mut(remote) {
            flow.txns.send(now, bytes);
        }
        self.flows.update(now, remote, true);
        self.dirty.push(remote);
    }

    async fn on_datagram(&mut self, remote: SocketAddr, data: &[u8]) {
        let now = Instant::now();
        if data.iter().all(|b| b.is_ascii_whitespace()) {
            // CRLF keep-alive (or an empty datagram): keeps a live flow alive, nothing more.
            self.flows.update(now, remote, true);
            return;
        }
        if data.len() > MAX_DATAGRAM.min(self.ctx.max_message_bytes) {
            self.malformed(remote, data, Ok((513, "Message Too Large")))
                .await;
            return;
        }
        if !self.flows.is_live(remote) && !self.flows.revive(now, remote) {
            let Some(identity) = (self.ctx.admit)(remote) else {
                self.count_drop("unknown_source");
                return;
            };
            let conn = ConnId::next();
            match self.flows.insert_inbound(now, remote, conn) {
                Ok(evicted) => {
                    for old in evicted {
                        tracing::debug!(%remote, ?old, "UDP flow evicted for a new source port");
                        self.count_drop("flow_evicted");
                        let _ = self.ctx.events.send(SipEvent::Closed { conn: old }).await;
                    }
                }
                Err(_) => {
                    tracing::warn!(%remote, "too many UDP flows; datagram dropped");
                    self.count_drop("flow_table_full");
                    return;
                }
            }
            if !self.announce(conn, identity).await {
                return;
            }
        }
        self.flows.update(now, remote, true);
        let msg = match crate::sip::parse(data) {
            Ok(msg) => msg,
            Err(e) => {
                tracing::warn!(%remote, error = %e, "malformed SIP datagram");
                self.malformed(remote, data, Err(&e)).await;
                return;
            }
        };
        self.on_message(remote, data, msg).await;
    }

    async fn on_message(&mut self, remote: SocketAddr, data: &[u8], msg: crate::sip::Message) {
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
        let owner = match msg.is_request() {
            false => Some(msg.view())
                .and_then(|s| self.flows.sent_on(s.branch()?, s.cseq.method.as_str()))
                .filter(|r| {
                    *r != remote
                        && self
                            .flows
                            .flow_mut(*r)
                            .is_some_and(|f| f.txns.owns_response(&msg))
                })
                .unwrap_or(remote),
            true => remote,
        };
        let now = Instant::now();
        let Some(flow) = self.flows.flow_mut(owner) else {
            return;
        };
        let Some(conn) = flow.conns.first().copied() else {
            return;
        };
        let up = flow.txns.receive(now, msg);
        self.flows.update(now, owner, true);
        self.dirty.push(owner);
        if let Some(msg) = up {
            let _ = self.ctx.events.send(SipEvent::Message { conn, msg }).await;
        }
    }

    /// Counts an unparseable datagram (`Ok` a status for one the framing refused, `Err` the
    /// parser's error) and answers it statelessly if it is a request from a known peer.
    async fn malformed(
        &self,
        remote: SocketAddr,
        data: &[u8],
        why: Result<(u16, &str), &crate::sip::ParseError>,
    ) {
        let part = why.map_or_else(|e| e.part(), |_| "framing");
        self.ctx
            .metrics
            .sip_malformed
            .with_label_values(&[Listener::GatewayUdp.label(), part])
            .inc();
        if !self.flows.knows(remote) {
            return; // never answer strangers
        }
        let reply = match why {
            Ok((code, reason)) => crate::sip::response_for(data, code, reason, &extras()),
            Err(e) => answer_malformed(data, e),
        };
        if let Some(reply) = reply {
            let _ = self.socket.send_to(&reply, remote).await;
        }
    }
}

/// The top Via branch and CSeq method of a request we send (`None` for a response).
fn request_key(bytes: &[u8]) -> Option<(String, String)> {
    if bytes.starts_with(b"SIP/") {
        return None;
    }
    let msg = crate::sip::parse(bytes).ok()?;
    let s = msg.view();
    Some((s.branch()?.to_string(), s.cseq.method.as_str().to_string()))
}

#[cfg(test)]
mod tests;
