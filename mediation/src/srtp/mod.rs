//! SRTP: suites, master keys and the per-leg protection contexts used by the media relay.
//!
//! The cryptography is webrtc-srtp's; this module is the seam that lets it be swapped. Nothing
//! from a peer reaches the library before [`wire`] has checked its lengths, replay protection
//! cannot be turned off, a sender never protects two packets at one index, and keys are zeroed
//! when dropped.

pub mod context;
pub mod keys;
pub mod ssrcs;
pub mod suite;
pub mod window;
pub mod wire;

#[cfg(test)]
mod vectors;

pub use context::{protection_profile, Protector, SetupError, SrtpError, SrtpSession, Unprotector};
pub use keys::{KeyError, MasterKey};
pub use suite::SrtpSuite;
pub use window::{ReplayWindow, WindowError};
