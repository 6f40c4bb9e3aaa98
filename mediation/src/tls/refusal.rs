//! Why a TLS peer was refused, in the words operators see in logs and in the
//! `mediation_mtls_rejections_total{reason}` label (docs/design.md §5).

use std::fmt;

use rustls::{CertificateError, Error as TlsError};

/// The reason a TLS connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum RefusalReason {
    /// The peer sent no client certificate.
    NoCertificate,
    /// The peer's certificate does not chain to a trusted CA.
    UntrustedCa,
    /// The peer's certificate has expired.
    Expired,
    /// The peer's certificate is not valid yet.
    NotYetValid,
    /// The peer's certificate is listed in a CRL.
    Revoked,
    /// The certificate is valid but names nobody we are configured to talk to.
    NameMismatch,
    /// The peer offered only TLS versions we refuse (below 1.2, or below `min_version`).
    ProtocolVersion,
    /// The handshake did not finish in time.
    HandshakeTimeout,
    /// Any other handshake failure (bad record, closed connection, no common cipher).
    HandshakeFailed,
}

impl RefusalReason {
    /// Every reason, to export the counters at zero.
    pub(crate) const ALL: [RefusalReason; 9] = [
        RefusalReason::NoCertificate,
        RefusalReason::UntrustedCa,
        RefusalReason::Expired,
        RefusalReason::NotYetValid,
        RefusalReason::Revoked,
        RefusalReason::NameMismatch,
        RefusalReason::ProtocolVersion,
        RefusalReason::HandshakeTimeout,
        RefusalReason::HandshakeFailed,
    ];

    /// The metric label value.
    pub(crate) fn label(self) -> &'static str {
        match self {
            RefusalReason::NoCertificate => "no_certificate",
            RefusalReason::UntrustedCa => "untrusted_ca",
            RefusalReason::Expired => "expired",
            RefusalReason::NotYetValid => "not_yet_valid",
            RefusalReason::Revoked => "revoked",
            RefusalReason::NameMismatch => "name_mismatch",
            RefusalReason::ProtocolVersion => "protocol_version",
            RefusalReason::HandshakeTimeout => "handshake_timeout",
            RefusalReason::HandshakeFailed => "handshake_failed",
        }
    }

    /// Classifies the error a rustls handshake ended with (as tokio-rustls wraps it).
    pub(crate) fn of_io_error(e: &std::io::Error) -> Self {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<TlsError>())
            .map_or(RefusalReason::HandshakeFailed, Self::of_tls_error)
    }

    /// Classifies a rustls error.
    pub(crate) fn of_tls_error(e: &TlsError) -> Self {
        use CertificateError as C;
        match e {
            TlsError::NoCertificatesPresented => RefusalReason::NoCertificate,
            TlsError::InvalidCertificate(c) => match c {
                C::UnknownIssuer | C::BadSignature => RefusalReason::UntrustedCa,
                // A self-signed certificate made as a CA (openssl req -x509's default).
                C::Other(o)
                    if matches!(
                        o.0.downcast_ref::<webpki::Error>(),
                        Some(webpki::Error::CaUsedAsEndEntity)
                    ) =>
                {
                    RefusalReason::UntrustedCa
                }
                C::Expired | C::ExpiredContext { .. } => RefusalReason::Expired,
                C::NotValidYet | C::NotValidYetContext { .. } => RefusalReason::NotYetValid,
                C::Revoked => RefusalReason::Revoked,
                C::NotValidForName | C::NotValidForNameContext { .. } => {
                    RefusalReason::NameMismatch
                }
                _ => RefusalReason::HandshakeFailed,
            },
            TlsError::PeerIncompatible(p) => {
                use rustls::PeerIncompatible as P;
                match p {
                    P::Tls12NotOffered
                    | P::Tls12NotOfferedOrEnabled
                    | P::SupportedVersionsExtensionRequired
                    | P::ServerDoesNotSupportTls12Or13
                    | P::ServerTlsVersionIsDisabledByOurConfig => RefusalReason::ProtocolVersion,
                    _ => RefusalReason::HandshakeFailed,
                }
            }
            TlsError::AlertReceived(rustls::AlertDescription::ProtocolVersion) => {
                RefusalReason::ProtocolVersion
            }
            _ => RefusalReason::HandshakeFailed,
        }
    }
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_certificate_errors() {
        let cert = |c| TlsError::InvalidCertificate(c);
        assert_eq!(
            RefusalReason::of_tls_error(&TlsError::NoCertificatesPresented),
            RefusalReason::NoCertificate
        );
        assert_eq!(
            RefusalReason::of_tls_error(&cert(CertificateError::UnknownIssuer)),
            RefusalReason::UntrustedCa
        );
        assert_eq!(
            RefusalReason::of_tls_error(&cert(CertificateError::Expired)),
            RefusalReason::Expired
        );
        assert_eq!(
            RefusalReason::of_tls_error(&cert(CertificateError::Revoked)),
            RefusalReason::Revoked
        );
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            cert(CertificateError::Revoked),
        );
        assert_eq!(RefusalReason::of_io_error(&io), RefusalReason::Revoked);
        let io = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
        assert_eq!(
            RefusalReason::of_io_error(&io),
            RefusalReason::HandshakeFailed
        );
    }
}
