//! SRTP (RFC 3711) and SRTCP with the suites of RFC 3711, RFC 6188 and RFC 7714: suites, master
//! keys and the per-leg protection contexts used by the media relay.
//!
//! Our own implementation on RustCrypto primitives (`aes`, `aes-gcm`, `sha1`): session keys
//! are derived once per context and zeroed on drop, tags are checked in constant time before
//! anything else, replay protection cannot be turned off, a sender never protects two packets
//! at one index, and no input makes it panic. The fast path does not allocate.

mod aes_cm;
mod context;
mod hmac_sha1;
mod kdf;
mod keys;
mod protection;
mod replay;
mod ssrcs;
mod suite;
mod transform;
mod window;
pub(crate) mod wire;

#[cfg(test)]
mod vectors;

pub use context::{Protector, SetupError, SrtpError, Unprotector, MAX_TRAILER_LEN};
pub use keys::{KeyError, MasterKey, Mki};
pub use protection::Protection;
pub use suite::{SrtpSuite, UnknownSuite};
pub use window::ReplayWindow;
pub use wire::{check_rtcp_prefix, RtpHeader, SrtcpTrailer};
