//! The error type of the lab PKI library.

use std::io;
use std::path::PathBuf;

/// Result alias used throughout this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while making, loading or writing lab PKI material.
///
/// Each message already includes the underlying cause, so the variants
/// deliberately have no `source()`: printing the chain (as `anyhow`'s `{:#}`
/// does) would repeat it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {}: {error}", path.display())]
    Read {
        /// The file that could not be read.
        path: PathBuf,
        /// The underlying I/O error.
        error: io::Error,
    },
    /// A file or directory could not be created or written.
    #[error("cannot write {}: {error}", path.display())]
    Write {
        /// The file or directory that could not be written.
        path: PathBuf,
        /// The underlying I/O error.
        error: io::Error,
    },
    /// A PEM certificate could not be parsed.
    #[error("invalid certificate {what}: {reason}")]
    BadCertificate {
        /// Which certificate (usually a file name).
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A PEM private key could not be parsed.
    #[error("invalid private key {what}: {error}")]
    BadKey {
        /// Which key (usually a file name).
        what: String,
        /// The parser's complaint.
        error: rcgen::Error,
    },
    /// The CA private key does not belong to the CA certificate.
    #[error("CA private key {key} does not match certificate {cert}")]
    KeyMismatch {
        /// The certificate.
        cert: String,
        /// The key.
        key: String,
    },
    /// The CA certificate is not a CA (no `basicConstraints` with `cA` set).
    #[error("{0} is not a CA certificate")]
    NotACa(String),
    /// A DNS name is not a valid IA5 string.
    #[error("invalid DNS name {name:?}: {error}")]
    BadDnsName {
        /// The offending name.
        name: String,
        /// The encoder's complaint.
        error: rcgen::Error,
    },
    /// A leaf specification has neither a DNS name nor an IP address.
    #[error("a leaf certificate needs at least one DNS name or IP address")]
    NoNames,
    /// `not_after` is not later than `not_before`.
    #[error("invalid validity period: not_after {not_after} is not after not_before {not_before}")]
    BadValidity {
        /// Start of the validity period.
        not_before: time::OffsetDateTime,
        /// End of the validity period.
        not_after: time::OffsetDateTime,
    },
    /// `rcgen` failed to generate a key, certificate or CRL.
    #[error("certificate generation failed: {0}")]
    Rcgen(rcgen::Error),
}

impl From<rcgen::Error> for Error {
    fn from(error: rcgen::Error) -> Error {
        Error::Rcgen(error)
    }
}
