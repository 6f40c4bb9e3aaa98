//! Who a verified certificate names: its DNS subject alternative names, and whether it is valid
//! for a configured identity (the gateway's or next hop's `identity`).

use rustls_pki_types::{CertificateDer, DnsName, ServerName};

/// True when the end-entity certificate is valid for `identity` (a DNS name), by the same
/// RFC 6125 rules webpki applies to server names.
pub fn matches_identity(cert: &CertificateDer<'_>, identity: &str) -> bool {
    let Ok(ee) = webpki::EndEntityCert::try_from(cert) else {
        return false;
    };
    let Ok(name) = DnsName::try_from(identity) else {
        return false;
    };
    ee.verify_is_valid_for_subject_name(&ServerName::DnsName(name))
        .is_ok()
}

/// The DNS names a certificate carries, for logs.
pub fn dns_names(cert: &CertificateDer<'_>) -> Vec<String> {
    use x509_parser::prelude::*;
    let Ok((_, x509)) = X509Certificate::from_der(cert.as_ref()) else {
        return Vec::new();
    };
    let Ok(Some(san)) = x509.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.to_string()),
            _ => None,
        })
        .collect()
}

/// When a certificate stops being valid (UNIX seconds), and its subject common name.
pub fn expiry(cert: &CertificateDer<'_>) -> Option<(i64, String)> {
    use x509_parser::prelude::*;
    let (_, x509) = X509Certificate::from_der(cert.as_ref()).ok()?;
    let cn = x509
        .subject()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .unwrap_or("")
        .to_string();
    Some((x509.validity().not_after.timestamp(), cn))
}
