//! The mediation appliance: a SIP back-to-back user agent with a media relay that sits beside a
//! PSTN gateway, speaks MTLS and SRTP toward the internal next hop, and encrypts toward the
//! gateway by the rules of docs/design.md §2.
//!
//! # Layout
//!
//! The core takes messages and time in and gives messages out; sockets live at the edges
//! (docs/design.md §3).
//!
//! | module | job |
//! |---|---|
//! | [`config`] | the TOML file: typed fields, validation with field and line, warnings |
//! | [`tls`] | certificates, keys, CRLs, rustls configurations, refusal reasons |
//! | [`peer`] | who is on the other end: connection ids, front doors, proved identity, signalling level (pure; `transport` fills it in, `call` reads it) |
//! | [`transport`] | SIP listeners, MTLS admission, connections, the UDP door (edge) |
//! | [`sip`] | framing, the message and its typed view, URIs, writing messages, the SIP trace, the UDP transaction layer (sans-IO) |
//! | [`sdp`] | a peer's SDP parsed, ours written, `a=crypto` (sans-IO) |
//! | [`call`] | the engine: call state, routing, encryption policy, session timers (sans-IO) |
//! | [`media`] | port pools per address family, media threads, the relay of one call, latching (edge) |
//! | [`srtp`] | SRTP and SRTCP contexts, key derivation, replay windows (sans-IO) |
//! | `driver`, [`service`] | run the engine against the sockets; start and stop everything |
//! | [`http`], [`metrics`] | the operator endpoint and every Prometheus metric |
#![forbid(unsafe_code)]

pub mod call;
pub mod config;
pub(crate) mod driver;
pub mod http;
pub mod media;
pub mod metrics;
pub mod peer;
pub mod sdp;
pub mod service;
pub mod sip;
pub mod srtp;
pub mod tls;
pub mod transport;
