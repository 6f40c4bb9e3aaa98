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
pub mod dialog;
pub mod error;
pub mod hold;
pub mod in_dialog;
pub mod negotiate;
pub mod options;
pub mod progress;
pub mod reoffer;
pub mod report;
pub mod rtcp;
pub mod rtp_packet;
pub mod rtp_stream;
pub mod sip_msg;
pub mod stats;
pub mod tls;
pub mod tone;
pub mod ua;
pub mod uac;
pub mod uas;

pub use error::SimError;
pub use options::{AnswerOptions, CallOptions, SrtpMode, TlsFiles, Transport};
pub use report::{CallReport, Direction, Report, Summary};
pub use uac::run_calls;
pub use uas::AnswerServer;
