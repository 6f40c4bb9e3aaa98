//! The media relay of one call: both legs' sockets, checks and unprotects what each peer
//! sends, latches the peer's real address, re-protects for the other leg and sends it on.
//! Nothing unauthenticated leaves an SRTP leg. A media thread ([`super::worker`]) runs it.
//!
//! ```text
//!  peer A ─▶ A port ─▶ classify ─▶ A.rx unprotect ─▶ latch A ─▶ B.tx protect ─▶ B port ─▶ peer B
//!                      RFC 5761    (SRTP legs)       RFC 4961   (SRTP legs)
//! ```

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn, Span};

use super::counters::LegCounters;
use super::drops::DropReason;
use super::latch::{Remote, SourceMatch};
use super::leg::{LegMedia, Protection};
use super::packet::{classify, PacketKind, Port};
use super::ports::PortLease;
use super::stats::{RelayStats, Side};
use crate::config::MediaSources;
use crate::metrics::Metrics;
use crate::srtp::{MasterKey, Protector, ReplayWindow, SetupError, Unprotector, MAX_TRAILER_LEN};

/// Receive buffer size. A datagram that fills it was probably truncated and is dropped as
/// malformed; voice packets are far smaller.
const RECV_BUFFER: usize = 2048;

/// Datagrams read from one ready socket, when the media thread has fallen behind, before it
/// moves on to the next one (see [`super::worker`] for when it reads just one). Reading a
/// socket until it is empty costs a `recvfrom` that finds nothing, but a thread that has fallen
/// behind catches up far more cheaply: one datagram per socket per `epoll_wait` round, always,
/// lost 1–6 % of packets at 1000 calls in `tests/scale.sh`. The cap keeps one flooded socket
/// from holding up the thread's other calls.
pub(crate) const DRAIN: usize = 8;

/// After new keys, how long packets protected with the old ones (in flight, or sent before the
/// peer switched) are still accepted.
const REKEY_GRACE: Duration = Duration::from_secs(2);

/// New SRTP keys for one leg (a re-INVITE or UPDATE with new `a=crypto`).
#[derive(Debug)]
pub(crate) struct Rekey {
    pub(super) side: Side,
    pub(super) tx: MasterKey,
    pub(super) rx: MasterKey,
}

/// One leg inside the running relay.
struct Leg {
    label: &'static str,
    // Sockets before the lease: they close before the ports go back to the pool.
    rtp_socket: UdpSocket,
    /// `None` with rtcp-mux.
    rtcp_socket: Option<UdpSocket>,
    _lease: PortLease,
    rtp_remote: Remote,
    /// Unused with rtcp-mux (RTCP follows `rtp_remote`).
    rtcp_remote: Remote,
    /// `Some` on SRTP legs: protects what we send and unprotects what the peer sends.
    tx: Option<Protector>,
    rx: Option<Unprotector>,
    /// The master keys of `tx` and `rx`, so a rekey can tell which of them really changed
    /// (zeroed when dropped, as the contexts' own keys are).
    keys: Option<(MasterKey, MasterKey)>,
    /// The receive context of the keys before the last rekey, until when it is still tried.
    old_rx: Option<(Unprotector, Instant)>,
    replay_window: ReplayWindow,
    /// Which sources plain media is taken from (kept for a new remote).
    sources: MediaSources,
    counters: LegCounters,
}

impl Leg {
    fn new(media: LegMedia, metrics: &Metrics) -> Result<Self, SetupError> {
        let LegMedia {
            label,
            sockets,
            remote_rtp,
            remote_rtcp,
            rtcp_mux,
            protection,
            replay_window,
            sources,
        } = media;
        let counters = LegCounters::new(metrics, label, protection.label());
        let (tx, rx, keys) = match protection {
            Protection::Rtp => (None, None, None),
            Protection::Srtp { tx, rx } => (
                Some(Protector::new(&tx)?),
                Some(Unprotector::new(&rx, replay_window)?),
                Some((tx, rx)),
            ),
        };
        let rtcp_socket = if rtcp_mux {
            // The RTCP port stays leased (it is in our SDP's pair) but nothing listens on it.
            drop(sockets.rtcp);
            None
        } else {
            Some(sockets.rtcp)
        };
        Ok(Self {
            label,
            rtp_socket: sockets.rtp,
            rtcp_socket,
            _lease: sockets.lease,
            rtp_remote: Remote::new(remote_rtp, sources),
            rtcp_remote: Remote::new(remote_rtcp, sources),
            sources,
            tx,
            rx,
            keys,
            old_rx: None,
            replay_window,
            counters,
        })
    }

    /// Takes new keys, rebuilding only the contexts whose key changed (see
    /// [`super::RelayHandle::rekey`]). Says which changed: (ours, theirs).
    fn rekey(
        &mut self,
        tx: MasterKey,
        rx: MasterKey,
        now: Instant,
    ) -> Result<(bool, bool), SetupError> {
        let changed = |current: Option<&MasterKey>, new: &MasterKey| {
            !current.is_some_and(|current| current.same_key(new))
        };
        let tx_changed = changed(self.keys.as_ref().map(|k| &k.0), &tx);
        let rx_changed = changed(self.keys.as_ref().map(|k| &k.1), &rx);
        // Both contexts are made before either is replaced: a refused key changes nothing.
        let new_tx = tx_changed.then(|| Protector::new(&tx)).transpose()?;
        let new_rx = rx_changed
            .then(|| Unprotector::new(&rx, self.replay_window))
            .transpose()?;
        if let Some(new_tx) = new_tx {
            self.tx = Some(new_tx);
        }
        if let Some(new_rx) = new_rx {
            self.old_rx = self.rx.replace(new_rx).map(|old| (old, now + REKEY_GRACE));
        }
        self.keys = Some((tx, rx));
        Ok((tx_changed, rx_changed))
    }

    fn socket(&self, port: Port) -> Option<&UdpSocket> {
        match port {
            Port::Rtp => Some(&self.rtp_socket),
            Port::Rtcp => self.rtcp_socket.as_ref(),
        }
    }

    fn rtcp_mux(&self) -> bool {
        self.rtcp_socket.is_none()
    }

    /// The socket a packet of `kind` leaves from, and the remote it goes to.
    fn outbound(&self, kind: PacketKind) -> (&UdpSocket, &Remote) {
        match (kind, &self.rtcp_socket) {
            (PacketKind::Rtcp, Some(rtcp)) => (rtcp, &self.rtcp_remote),
            _ => (&self.rtp_socket, &self.rtp_remote),
        }
    }

    fn remote_mut(&mut self, kind: PacketKind) -> &mut Remote {
        if kind == PacketKind::Rtcp && !self.rtcp_mux() {
            &mut self.rtcp_remote
        } else {
            &mut self.rtp_remote
        }
    }
}

/// Both legs of one call, as a media thread holds them.
pub(crate) struct Relay {
    legs: [Leg; 2],
    stats: Arc<RelayStats>,
    /// Tests: panic at the next datagram, as a bug on the relay path would.
    #[cfg(test)]
    pub(crate) panic_on_receive: bool,
}

impl Relay {
    pub(crate) fn new(a: LegMedia, b: LegMedia, metrics: &Metrics) -> Result<Self, SetupError> {
        Ok(Self {
            legs: [Leg::new(a, metrics)?, Leg::new(b, metrics)?],
            stats: Arc::new(RelayStats::new()),
            #[cfg(test)]
            panic_on_receive: false,
        })
    }

    pub(crate) fn stats(&self) -> &Arc<RelayStats> {
        &self.stats
    }

    /// A receive buffer for [`Relay::receive`], one per media thread: room for the largest
    /// datagram and, after it, the SRTP trailer (packets are re-protected in place).
    pub(crate) fn buffer() -> Box<[u8]> {
        vec![0; RECV_BUFFER + MAX_TRAILER_LEN].into_boxed_slice()
    }

    /// The sockets to watch, each with the leg and port it is.
    pub(crate) fn sockets(&self) -> impl Iterator<Item = (Side, Port, &UdpSocket)> {
        let [a, b] = &self.legs;
        [(Side::A, a), (Side::B, b)]
            .into_iter()
            .flat_map(|(side, leg)| {
                [Port::Rtp, Port::Rtcp]
                    .into_iter()
                    .filter_map(move |port| Some((side, port, leg.socket(port)?)))
            })
    }

    pub(crate) fn started(&self, span: &Span) {
        let [a, b] = &self.legs;
        span.in_scope(|| info!(a = a.label, b = b.label, "media relay started"));
    }

    /// Reads up to `reads` datagrams (at most [`DRAIN`]) waiting on `side`'s `port` into
    /// `buffer` and relays them; stops early when the socket is empty.
    pub(crate) fn receive(
        &mut self,
        (side, port, reads): (Side, Port, usize),
        buffer: &mut [u8],
        now: Instant,
        span: &Span,
    ) {
        #[cfg(test)]
        assert!(!self.panic_on_receive, "relay bug (test)");
        for _ in 0..reads.min(DRAIN) {
            let Some(socket) = self.legs[side.index()].socket(port) else {
                return;
            };
            match socket.recv_from(&mut buffer[..RECV_BUFFER]) {
                Ok((len, source)) => relay_one(
                    &mut self.legs,
                    &self.stats,
                    side,
                    port,
                    source,
                    (&mut *buffer, len),
                    (now, span),
                ),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // E.g. an ICMP error reported on the socket; the next read is unaffected.
                Err(e) => {
                    let leg = self.legs[side.index()].label;
                    return span.in_scope(|| debug!(leg, error = %e, "media receive error"));
                }
            }
        }
    }

    pub(crate) fn rekey(&mut self, rekey: Rekey, span: &Span) {
        let Rekey { side, tx, rx } = rekey;
        let leg = &mut self.legs[side.index()];
        let result = leg.rekey(tx, rx, Instant::now());
        span.in_scope(|| match result {
            Ok((ours, theirs)) => info!(leg = leg.label, ours, theirs, "SRTP keys changed"),
            Err(e) => {
                warn!(leg = leg.label, error = %e, "new SRTP keys refused; keeping the old ones")
            }
        });
    }

    pub(crate) fn set_remote(
        &mut self,
        side: Side,
        rtp: SocketAddr,
        rtcp: Option<SocketAddr>,
        span: &Span,
    ) {
        let leg = &mut self.legs[side.index()];
        leg.rtp_remote = Remote::new(Some(rtp), leg.sources);
        leg.rtcp_remote = Remote::new(rtcp, leg.sources);
        span.in_scope(|| info!(leg = leg.label, %rtp, "the peer moved its media; following it"));
    }

    /// Adds what was tallied to the Prometheus counters.
    pub(crate) fn flush(&mut self) {
        for leg in &mut self.legs {
            leg.counters.flush();
        }
    }

    /// The relay ends: counters flushed, then sockets closed and ports returned as it drops.
    pub(crate) fn finish(mut self: Box<Self>, span: &Span) {
        self.flush();
        let (a, b) = (self.stats.leg(Side::A), self.stats.leg(Side::B));
        span.in_scope(|| {
            info!(
                a_in = a.packets_in,
                a_out = a.packets_out,
                a_dropped = a.dropped,
                b_in = b.packets_in,
                b_out = b.packets_out,
                b_dropped = b.dropped,
                "media relay stopped"
            )
        });
    }
}

/// The whole path of one datagram, `buffer[..len]`, from leg `from` to the other leg. SRTP is
/// unprotected and re-protected in place in `buffer`, which has room for the trailer: no
/// allocation per packet.
fn relay_one(
    legs: &mut [Leg; 2],
    stats: &RelayStats,
    from: Side,
    port: Port,
    source: SocketAddr,
    (buffer, len): (&mut [u8], usize),
    (now, span): (Instant, &Span),
) {
    let datagram = &buffer[..len];
    let [a, b] = legs;
    let (inbound, outbound) = match from {
        Side::A => (a, b),
        Side::B => (b, a),
    };
    let drop_in = |leg: &mut Leg, reason: DropReason| {
        leg.counters.dropped(reason);
        stats.record_drop(from);
    };

    // 1. RTP or RTCP at all?
    let kind = match classify(datagram, port, inbound.rtcp_mux()) {
        Ok(kind) if datagram.len() < RECV_BUFFER => kind,
        _ => return drop_in(inbound, DropReason::Malformed),
    };

    // 2. From whom? Plain RTP cannot prove who sent it: only the peer's address counts (see
    // `latch`). SRTP from elsewhere must authenticate first.
    let source_match = inbound.remote_mut(kind).compare(source);
    if source_match == SourceMatch::Other && inbound.rx.is_none() {
        return drop_in(inbound, DropReason::UnknownSource);
    }

    // 3. Authenticate and decrypt (SRTP legs), in place: `buffer[..clear_len]` is then RTP.
    let clear_len = match &mut inbound.rx {
        None => len,
        Some(rx) => {
            let mut unprotect = |context: &mut Unprotector| match kind {
                PacketKind::Rtp => context.unprotect_rtp_in_place(&mut buffer[..len]),
                PacketKind::Rtcp => context.unprotect_rtcp_in_place(&mut buffer[..len]),
            };
            let mut result = unprotect(rx);
            // Maybe still under the keys before the last rekey (a refused packet is left as it
            // was); the first error is the one counted if that fails too.
            if let (Err(first), Some((old, until))) = (&result, inbound.old_rx.as_mut()) {
                if now < *until {
                    let first = *first;
                    result = unprotect(old).map_err(|_| first);
                }
            }
            match result {
                Ok(clear_len) => clear_len,
                Err(error) => {
                    inbound.counters.unprotect_failed(error);
                    let reason = if source_match == SourceMatch::Other {
                        DropReason::UnknownSource
                    } else {
                        DropReason::from_srtp(error, true)
                    };
                    return drop_in(inbound, reason);
                }
            }
        }
    };

    // 4. Latch the source that passed the checks.
    if let Some(before) = inbound.remote_mut(kind).latch(source) {
        let _entered = span.enter();
        match before {
            None => info!(leg = inbound.label, stream = kind.name(), %source, "media latched"),
            Some(before) => info!(
                leg = inbound.label,
                stream = kind.name(),
                %before,
                %source,
                "authenticated media from a new address; re-latched"
            ),
        }
    }
    inbound.counters.packet_in(len);
    stats.record_in(from, now);

    // 5. Re-protect for the other leg and send.
    let to = from.other();
    let drop_out = |leg: &mut Leg, reason: DropReason| {
        leg.counters.dropped(reason);
        stats.record_drop(to);
    };
    let Some(destination) = outbound.outbound(kind).1.destination() else {
        return drop_out(outbound, DropReason::NoDestination);
    };
    let wire_len = match &mut outbound.tx {
        None => clear_len,
        Some(tx) => {
            let result = match kind {
                PacketKind::Rtp => tx.protect_rtp_in_place(buffer, clear_len),
                PacketKind::Rtcp => tx.protect_rtcp_in_place(buffer, clear_len),
            };
            match result {
                Ok(wire_len) => wire_len,
                Err(error) => return drop_out(outbound, DropReason::from_srtp(error, false)),
            }
        }
    };
    let wire = &buffer[..wire_len];
    let socket = outbound.outbound(kind).0;
    match socket.send_to(wire, destination) {
        Ok(_) => {
            outbound.counters.packet_out(wire.len());
            stats.record_out(to);
        }
        Err(_) => drop_out(outbound, DropReason::SendFailed),
    }
}
