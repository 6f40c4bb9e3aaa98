//! `gateway-sim`: a simulated PSTN gateway (TCP or MTLS, RTP or SRTP) and internal next hop
//! (MTLS + SRTP) for testing the mediation appliance. It places and answers SIP calls over one
//! stream connection, sends a marked G.711 tone, and checks what comes back: loss, order,
//! jitter, latency, payload integrity, and whether the bytes on the wire were encrypted.
//!
//! In-process use (what the end-to-end tests do):
//!
//! ```no_run
//! # async fn demo() -> Result<(), gateway_sim::SimError> {
//! use gateway_sim::{AnswerOptions, AnswerServer, CallOptions};
//! let server = AnswerServer::bind(AnswerOptions {
//!     max_calls: Some(1),
//!     ..AnswerOptions::new("127.0.0.1:0".parse().unwrap())
//! })
//! .await?;
//! let target = server.local_addr().to_string();
//! let answering = tokio::spawn(server.run());
//! let placed = gateway_sim::run_calls(CallOptions::new(target, "sip:+15551234@gw1.example.test")).await?;
//! let answered = answering.await.unwrap();
//! assert!(placed.all_ok() && answered.all_ok());
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bench;
pub mod demo;
mod dialog;
mod error;
mod hold;
mod in_dialog;
mod info;
pub mod lab_config;
mod negotiate;
mod options;
mod progress;
mod reoffer;
mod report;
mod rtcp;
mod rtp_packet;
mod rtp_stream;
mod sip_msg;
mod stats;
mod tls;
mod tone;
mod ua;
mod uac;
mod uas;

pub use error::SimError;
pub use options::{
    AnswerOptions, BadChoice, CallOptions, SrtpMode, TlsFiles, Transport, DEFAULT_MEDIA_IP,
};
pub use report::{CallReport, Reinvite, Report, Summary};
pub use uac::run_calls;
pub use uas::AnswerServer;
