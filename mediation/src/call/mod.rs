//! The call layer, sans-IO: the encryption policy, the SIP messages a B2BUA reads and writes,
//! and the engine that turns connection events and time into messages and media commands.

pub mod engine;
pub mod headers;
pub mod legs;
pub mod media_plan;
pub mod message;
pub mod policy;
pub mod reoffer;
pub mod session_timer;

pub use engine::{Engine, EngineConfig, Input, MediaCommand, Output, PortAllocator, Target};
pub use media_plan::{LegPlan, Protection};
#[cfg(test)]
mod tests;
