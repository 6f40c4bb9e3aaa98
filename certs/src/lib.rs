//! Lab PKI for the SIP mediation appliance.
//!
//! Everything here is for labs and tests: a throw-away certificate
//! authority ([`Ca`]), leaf certificates for mutual TLS ([`LeafSpec`],
//! [`Issued`]), certificate revocation lists, and the complete set of good
//! and deliberately bad certificates the integration tests need
//! ([`LabPki`]). Keys are ECDSA P-256, certificates are made with `rcgen`.
//!
//! ```no_run
//! let pki = certs::LabPki::generate()?;
//! pki.write_to(std::path::Path::new("/tmp/lab-pki"))?;
//! # Ok::<(), certs::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod ca;
mod error;
mod inspect;
mod issue;
mod lab;
mod write;

pub use ca::Ca;
pub use error::{Error, Result};
pub use inspect::serial_from_pem;
pub use issue::{Issued, LeafSpec, DEFAULT_VALIDITY_DAYS};
pub use lab::{files, LabPki, LAB_CA_NAME, UNTRUSTED_CA_NAME};
pub use write::{write_private, write_public};

/// Re-exported from `rcgen` because they appear in this crate's API.
pub use rcgen::{ExtendedKeyUsagePurpose, SerialNumber};
/// Re-exported from `time` because it appears in this crate's API.
pub use time::OffsetDateTime;
