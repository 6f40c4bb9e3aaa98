//! The edges where SIP meets sockets: the three front doors (next-hop MTLS, gateway MTLS,
//! gateway TCP), admission of peers, and per-connection framing. Everything here is I/O; the
//! call logic behind it is sans-IO.

mod admission;
mod connect;
mod connection;
mod listeners;
mod peer;

pub use admission::Admission;
pub use connect::Connector;
pub use connection::{serve, ConnId, SipEvent, ALLOW, SERVER};
pub use listeners::{bind_listeners, AcceptContext, Bound};
pub use peer::{Listener, Peer, PeerIdentity, Signalling, TlsVersionSeen};
