//! The media relay: UDP port pairs per leg (from the pool of the leg's address family),
//! symmetric latching, and SRTP/RTP re-protection between the two legs of a call
//! (docs/design.md §1: media never passes from one leg to the other without being re-protected
//! for that leg).
//!
//! Allocation of ports takes a lock, once per call; the relays run on a few media threads
//! (`worker`), each owning its calls outright and sharing nothing with other threads per
//! packet but the Prometheus counters, which it updates in batches.

mod counters;
mod drops;
mod latch;
mod leg;
mod packet;
mod pools;
mod ports;
mod relay;
mod stats;
mod worker;

pub use crate::config::MediaSources;
pub use leg::{LegMedia, Protection};
pub use packet::{classify, looks_like_rtcp, PacketKind, Port};
pub use ports::{EmptyRange, LegSockets, PortError, PortPool};
pub use stats::{LegSnapshot, RelayStats, Side};
pub use worker::{spawn_relay, MediaWorkers, RelayError, RelayHandle};

pub(crate) use drops::DropReason;
pub(crate) use pools::PortPools;
