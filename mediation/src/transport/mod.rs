//! The edges where SIP meets sockets: the front doors (next-hop MTLS, gateway MTLS, gateway
//! TCP, and the optional gateway UDP socket), admission of peers, and per-connection framing. Everything here is I/O; the
//! call logic behind it is sans-IO.

mod admission;
mod conn_limits;
mod connect;
mod connection;
mod listeners;
mod udp;

pub use crate::peer::{ConnId, Listener, Peer, PeerIdentity, Signalling, TlsVersionSeen};
pub use admission::Admission;
pub use conn_limits::{ConnectionLimits, ConnectionSlot, LimitHit};
pub use connect::Connector;
pub use connection::{serve, SipEvent, CLOSE};
pub use listeners::{bind_listeners, AcceptContext, Bound};
pub use udp::{bind_udp, AdmitUdp, FlowLimits, UdpContext, UdpHandle, MAX_DATAGRAM};
