//! The mediation appliance: a SIP back-to-back user agent with a media relay that sits beside a
//! PSTN gateway, speaks MTLS and SRTP toward the internal next hop, and encrypts toward the
//! gateway by the rules of DESIGN.md §2.
#![forbid(unsafe_code)]

pub mod call;
pub mod config;
pub mod driver;
pub mod http;
pub mod media;
pub mod metrics;
pub mod sdp;
pub mod service;
pub mod sip;
pub mod srtp;
pub mod tls;
pub mod transport;
