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

mod compact;
mod fields;
mod framing;
mod head;
mod message;
mod method;
pub(crate) mod outgoing;
mod stateless;
pub(crate) mod trace;
pub(crate) mod transaction;
pub(crate) mod uri;

pub use fields::{CSeq, NameAddr, Via};
pub use framing::{Frame, FramingError, FramingLimits, KeepAlive, StreamFramer};
pub use message::{parse, Header, Message, ParseError, Start, View};
pub use method::Method;
pub use outgoing::{Outgoing, ReceivedRequest};
pub use stateless::{response_for, response_for_request, ResponseExtras};
pub use trace::Redacted;
pub use uri::{Host, SipUri, TelUri, Uri, UriError};

pub(crate) use outgoing::{ALLOW, SERVER};
