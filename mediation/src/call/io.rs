//! What crosses the engine's boundary: the events it is fed ([`Input`]), what it asks the edges
//! to do ([`Output`], [`MediaCommand`]), where a new connection goes ([`Target`]) and the port
//! pools it draws media ports from ([`PortAllocator`]). The driver owns the other side of each.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;

use super::media_plan::LegPlan;
use crate::config::IpFamily;
use crate::peer::{ConnId, Peer, PeerIdentity};
use crate::sip::Message;
use crate::srtp::Protection;

mod debug;

/// Hands out RTP ports (the RTCP port is the next one), from one pool per address family. The
/// service's implementation binds real sockets; tests use a counter.
pub trait PortAllocator {
    /// A free RTP port of `family`, or `None` when its range is exhausted (or it has none).
    fn allocate(&mut self, family: IpFamily) -> Option<u16>;
    /// Gives back a port of `family` whose media never started.
    fn release(&mut self, family: IpFamily, port: u16);
}

/// Where a new outbound connection goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Who it is.
    pub peer: Peer,
    /// `host:port`.
    pub address: String,
    /// For TLS: the name its certificate must carry. `None`: plain TCP.
    pub tls_identity: Option<String>,
    /// The family our leg toward it uses: a host name's addresses of this family are tried
    /// first.
    pub family: IpFamily,
}

/// What the engine is told.
// Moved once per SIP message, never per media packet: boxing the message would buy nothing.
// `Debug` (in `debug.rs`) prints the message with its keys redacted.
#[allow(clippy::large_enum_variant)]
pub enum Input {
    /// A connection (accepted or opened by us) is up and its peer proved who it is.
    Opened {
        /// The connection.
        conn: ConnId,
        /// The peer.
        peer: Arc<PeerIdentity>,
    },
    /// A connection closed (or could not be opened).
    Closed {
        /// The connection.
        conn: ConnId,
    },
    /// Stop taking new calls (`503` with `Retry-After`); calls in progress go on.
    Drain,
    /// End every call now: BYE both legs of answered calls, `503` to unanswered callers.
    EndAll,
    /// A call's media (RTP and RTCP) stopped for the media timeout: in both directions
    /// (`both`), or from one party only — a peer that vanished without closing its signalling
    /// (power cut, partition). End it.
    MediaTimeout {
        /// The call.
        call: u64,
        /// Neither party sent anything.
        both: bool,
    },
    /// A SIP message arrived.
    Message {
        /// The connection.
        conn: ConnId,
        /// The message.
        msg: Message,
    },
}

/// Media relay commands.
// Moved once per call.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum MediaCommand {
    /// Start relaying between two legs (ports were handed out by the allocator).
    Start {
        /// The call.
        call: u64,
        /// The gateway-side and next-hop-side legs' plans (boxed: keys make them large).
        legs: Box<[LegPlan; 2]>,
    },
    /// New SRTP keys for one leg of a running call.
    Rekey {
        /// The call.
        call: u64,
        /// `gateway` or `next_hop`.
        leg: &'static str,
        /// The new keys (always [`Protection::Srtp`]).
        protection: Protection,
    },
    /// A leg's peer moved its media (a re-offer or answer with another address or port).
    Remote {
        /// The call.
        call: u64,
        /// `gateway` or `next_hop`.
        leg: &'static str,
        /// Where its RTP goes now.
        rtp: SocketAddr,
        /// Where its RTCP goes now (`None` with rtcp-mux: RTP's port).
        rtcp: Option<SocketAddr>,
    },
    /// Stop the call's relay and free its ports.
    Stop {
        /// The call.
        call: u64,
    },
}

/// What the engine asks the edges to do. `Debug` (in `debug.rs`) prints what is sent with its
/// keys redacted.
pub enum Output {
    /// Open a connection with this id (messages for it follow; queue them until it is up).
    Connect {
        /// The id to use.
        conn: ConnId,
        /// Where to.
        target: Target,
    },
    /// Write bytes on a connection.
    Send {
        /// The connection.
        conn: ConnId,
        /// The message.
        bytes: Bytes,
    },
    /// Start or stop media.
    Media(MediaCommand),
}
