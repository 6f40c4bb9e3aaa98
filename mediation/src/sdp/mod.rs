//! SDP offer/answer for each leg: parsing, RFC 4568 `a=crypto`, SRTP negotiation and rewriting.
//!
//! Everything here is sans-IO and pure: bytes or values in, values or text out.
//! - `session`: parse a peer's SDP ([`parse`]) into [`PeerSdp`] and its [`AudioStream`];
//! - `crypto`: the `a=crypto` attribute ([`CryptoAttribute`]) and key material
//!   ([`MasterKeySalt`], zeroed on drop, never printed by `Debug`);
//! - `negotiate`: choose, answer, offer and check SDES crypto;
//! - `rewrite`: build the SDP we send on one leg from the peer's SDP on the other
//!   ([`leg_sdp`], [`answer_sdp`]);
//! - [`base64`]: the small base64 codec used for `inline:` keys.

pub mod base64;
mod crypto;
mod negotiate;
mod rewrite;
mod session;

pub use crypto::{CryptoAttribute, CryptoError, CryptoSuiteName, KeyParams, MasterKeySalt};
pub use negotiate::{answer_crypto, choose_crypto, match_answer, offer_crypto, NegotiationError};
pub use rewrite::{answer_sdp, leg_sdp, LegSdpParams};
pub use session::{parse, AudioStream, Direction, Encryption, MediaLine, PeerSdp, Proto, SdpError};
