//! Who is on the other end of a SIP connection, as proved at connection time: the connection's
//! id, the front door it came through, the peer it proved to be and its signalling level (the
//! typed outcome of the handshake the encryption decision is made from). A pure vocabulary with
//! no I/O: `transport/` fills it in, `call/` reads it, and neither imports the other for it.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

/// Identifies a live connection to the call layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl ConnId {
    /// A process-unique id.
    pub fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        ConnId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// Which of our front doors a connection came through (or `Outbound` for ones we opened).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Listener {
    /// The internal next hop's MTLS listener.
    NextHop,
    /// The gateways' MTLS listener.
    GatewayTls,
    /// The gateways' plain TCP listener.
    GatewayTcp,
    /// The gateways' plain UDP socket.
    GatewayUdp,
    /// A connection we opened toward a peer.
    Outbound,
}

impl Listener {
    /// The metric label value.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Listener::NextHop => "next_hop",
            Listener::GatewayTls => "gateway_tls",
            Listener::GatewayTcp => "gateway_tcp",
            Listener::GatewayUdp => "gateway_udp",
            Listener::Outbound => "outbound",
        }
    }
}

/// The configured party a connection belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Peer {
    /// The internal next hop.
    NextHop,
    /// The `[[gateway]]` with this name.
    Gateway(String),
}

/// How the signalling toward the peer is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signalling {
    /// Plain TCP: the peer is recognised by its source address only; no keys may cross it.
    Tcp,
    /// Plain UDP (with §17 retransmissions): recognised by source address; no keys cross it.
    Udp,
    /// Mutual TLS: the peer's certificate chained to a trusted CA, was not revoked or expired,
    /// and names the configured identity.
    Mtls {
        /// The negotiated TLS version.
        version: TlsVersionSeen,
    },
}

/// A negotiated TLS version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsVersionSeen {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

impl TlsVersionSeen {
    /// The metric label value.
    pub(crate) fn label(self) -> &'static str {
        match self {
            TlsVersionSeen::Tls12 => "1.2",
            TlsVersionSeen::Tls13 => "1.3",
        }
    }

    /// From what rustls reports.
    pub(crate) fn from_rustls(v: Option<rustls::ProtocolVersion>) -> Option<Self> {
        match v? {
            rustls::ProtocolVersion::TLSv1_2 => Some(TlsVersionSeen::Tls12),
            rustls::ProtocolVersion::TLSv1_3 => Some(TlsVersionSeen::Tls13),
            _ => None,
        }
    }
}

/// The proved identity of a connection's peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// Which configured party it is.
    pub peer: Peer,
    /// How its signalling is protected.
    pub signalling: Signalling,
    /// Which front door it came through.
    pub listener: Listener,
    /// Its socket address.
    pub remote: SocketAddr,
}

impl PeerIdentity {
    /// True when signalling is MTLS with a verified certificate (so SDES keys may cross it).
    pub(crate) fn is_verified_mtls(&self) -> bool {
        matches!(self.signalling, Signalling::Mtls { .. })
    }

    /// The gateway's name, if the peer is a gateway.
    pub(crate) fn gateway(&self) -> Option<&str> {
        match &self.peer {
            Peer::Gateway(name) => Some(name),
            Peer::NextHop => None,
        }
    }
}

impl fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = match &self.peer {
            Peer::NextHop => "next hop".to_string(),
            Peer::Gateway(g) => format!("gateway {g}"),
        };
        match self.signalling {
            Signalling::Tcp => write!(f, "{who} at {} over TCP", self.remote),
            Signalling::Udp => write!(f, "{who} at {} over UDP", self.remote),
            Signalling::Mtls { version } => {
                write!(f, "{who} at {} over MTLS {}", self.remote, version.label())
            }
        }
    }
}
