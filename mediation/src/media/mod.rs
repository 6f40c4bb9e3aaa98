//! The media relay: UDP port pairs per leg (from the pool of the leg's address family),
//! symmetric latching, and SRTP/RTP re-protection between the two legs of a call
//! (docs/design.md §1: media never passes from one leg to the other without being re-protected
//! for that leg).
//!
//! Allocation of ports takes a lock, once per call; the relays run on a few media threads
//! (`worker`), each owning its calls outright and sharing nothing with other threads per
//! packet but the Prometheus counters, which it updates in batches.

pub mod counters;
pub mod latch;
pub mod leg;
pub mod packet;
pub mod pools;
pub mod ports;
pub mod relay;
pub mod stats;
pub mod worker;

pub use crate::config::MediaSources;
pub use counters::DropReason;
pub use leg::{LegMedia, Protection};
pub use packet::{PacketKind, Port};
pub use pools::{FamilyUsage, PortPools};
pub use ports::{EmptyRange, LegSockets, PortError, PortLease, PortPool};
pub use relay::{spawn_relay, RelayError, RelayHandle};
pub use stats::{LegSnapshot, RelayStats, Side};
pub use worker::MediaWorkers;
