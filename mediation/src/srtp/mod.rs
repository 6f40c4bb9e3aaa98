//! SRTP: suites, SDES keys and the per-leg protection contexts used by the media relay.

pub mod suite;

pub use suite::SrtpSuite;
