//! SIP wire layer, sans-IO: stream framing for TCP/TLS, the message model and its parser (our
//! own, RFC 3261 with tel: URIs and IPv6 references), the typed view the B2BUA reads, writing
//! outgoing messages, stateless error/keep-alive answers, the client transactions and the
//! redacting trace. No sockets and no clock here; transports drive it, and nothing here imports
//! the call layer.
//!
//! Typical receive path: [`StreamFramer::push`] the bytes read, loop on
//! [`StreamFramer::next_message`]; answer [`KeepAlive::reply`] for keep-alives, hand
//! [`Frame::Message`] bytes to [`parse`]; on a [`FramingError`] or [`ParseError`] build an
//! answer with [`response_for`] from the head bytes and the error's `response_status()`, and
//! close the connection if [`FramingError::is_fatal`].

pub mod compact;
pub mod fields;
pub mod framing;
mod head;
pub mod message;
mod method;
pub mod outgoing;
pub mod stateless;
pub mod trace;
pub mod transaction;
pub mod uri;

pub use compact::long_form;
pub use fields::{CSeq, NameAddr, Via};
pub use framing::{Frame, FramingError, FramingLimits, KeepAlive, StreamFramer};
pub use message::{parse, Header, Message, ParseError, Start, View, MAX_HOPS};
pub use method::Method;
pub use stateless::{response_for, response_for_request, ResponseExtras};
pub use uri::{Host, Uri};

/// The methods we handle (UPDATE: session refreshes and re-offers, RFC 3311).
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE";

/// What we call ourselves in `Server` and `User-Agent`.
pub const SERVER: &str = concat!("mediation/", env!("CARGO_PKG_VERSION"));
