//! The call layer, sans-IO: everything about a call except sockets, clocks and metrics.
//!
//! | file | job |
//! |---|---|
//! | [`engine`] | the B2BUA: state and dispatch; one file per flow under `engine/` |
//! | [`io`] | what crosses the engine's boundary: inputs, outputs, media commands, targets |
//! | [`config`] | what the engine takes from the configuration |
//! | [`legs`] | one call as held: its two legs (dialogs), its phase, the side enum |
//! | [`policy`] | the encryption rules, all of them: facts in, decision (or refusal) out |
//! | [`media_plan`] | negotiated SDP turned into what the relay needs for each leg |
//! | [`reoffer`] | the SDP side of answering a re-offer (hold, new keys) |
//! | [`session_timer`] | RFC 4028 session intervals and refreshes, per leg |
//! | [`report`] | what the engine reports for the driver to count |
//! | [`example`] | the engine configuration the unit tests and the signalling benchmark share |
//!
//! Nothing here imports `transport`, `media` or `metrics`: the engine learns who a peer is
//! from [`crate::peer`], and the driver turns its outputs and reports into I/O and metrics.

mod config;
mod engine;
pub mod example;
mod io;
mod legs;
mod media_plan;
pub mod policy;
mod reoffer;
mod report;
mod session_timer;

pub use config::{EngineConfig, Route};
pub use engine::Engine;
pub use io::{Input, MediaCommand, Output, PortAllocator, Target};
pub use legs::Direction;
pub use media_plan::LegPlan;
pub use report::{media_label, Report};
#[cfg(test)]
mod tests;
