//! SIP wire layer, sans-IO: stream framing for TCP/TLS, normalization of compact and folded
//! headers for rsip 0.4, parsing with the RFC 3261 mandatory-header checks, and stateless
//! error/keep-alive answers. No sockets and no clock here; transports drive it.
//!
//! Typical receive path: [`StreamFramer::push`] the bytes read, loop on
//! [`StreamFramer::next_message`]; answer [`KeepAlive::reply`] for keep-alives, hand
//! [`Frame::Message`] bytes to [`parse`]; on a [`FramingError`] or [`ParseError`] build an
//! answer with [`response_for`] from the head bytes and the error's `response_status()`, and
//! close the connection if [`FramingError::is_fatal`].

pub mod compact;
pub mod framing;
mod head;
pub mod message;
pub mod trace;
pub mod transaction;

pub use compact::{expand as expand_compact, long_form};
pub use framing::{Frame, FramingError, FramingLimits, KeepAlive, StreamFramer};
pub use message::{parse, response_for, response_for_request, ParseError, ResponseExtras};
