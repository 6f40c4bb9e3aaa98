//! The edges where SIP meets sockets: the front doors (next-hop MTLS, gateway MTLS, gateway
//! TCP, and the optional gateway UDP socket), admission of peers, and per-connection framing. Everything here is I/O; the
//! call logic behind it is sans-IO.

mod admission;
mod conn_limits;
mod connect;
mod connection;
mod listeners;
mod udp;

pub(crate) use crate::peer::{ConnId, Listener, Peer};
pub use listeners::Bound;

pub(crate) use admission::Admission;
pub(crate) use conn_limits::{ConnectionLimits, LimitHit};
pub(crate) use connect::Connector;
pub(crate) use connection::{SipEvent, CLOSE};
pub(crate) use listeners::{bind_listeners, AcceptContext};
pub(crate) use udp::{bind_udp, FlowLimits, UdpContext};
