//! Errors that stop a run before any call is placed or answered (bad files, a port in use).
//! Everything that happens to a call is reported in that call's report instead.

/// A run could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A certificate, key or CA file is missing or unusable.
    #[error("TLS set-up: {0}")]
    Tls(String),
    /// A socket could not be bound.
    #[error("{what}: {source}")]
    Io {
        /// What we were doing.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Options that do not fit together.
    #[error("bad options: {0}")]
    Options(String),
}
