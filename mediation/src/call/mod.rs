//! The call layer, sans-IO: the encryption policy, the session timer, the legs' state and the
//! engine that turns connection events and time into messages and media commands.

pub mod engine;
pub mod example;
pub mod legs;
pub mod media_plan;
pub mod policy;
pub mod reoffer;
pub mod session_timer;

pub use engine::{Engine, EngineConfig, Input, MediaCommand, Output, PortAllocator, Target};
pub use media_plan::{LegPlan, Protection};
#[cfg(test)]
mod tests;
