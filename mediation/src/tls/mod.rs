//! TLS for every SIP connection, both ways, always mutual: the certificate material, the rustls
//! server and client configurations built from it, why a handshake was refused, and who the
//! peer proved to be.

mod config;
mod identity;
mod material;
mod refusal;

pub use config::{client_config, crypto_provider, server_config, TlsConfigError};
pub use material::{MaterialError, TlsMaterial};

pub(crate) use identity::{dns_names, expiry, matches_identity};
pub(crate) use refusal::RefusalReason;
