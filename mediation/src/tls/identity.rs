//! Who a verified certificate names: its DNS subject alternative names, and whether it is valid
//! for a configured identity (the gateway's or next hop's `identity`).

use rustls_pki_types::CertificateDer;

/// True when the (already verified) end-entity certificate carries `identity` as one of its DNS
/// subject alternative names, compared without case and without a trailing dot. A wildcard name
/// in the certificate (`*.example.test`) counts only when the configured identity is that very
/// wildcard: a gateway holding a wildcard certificate from our CA must not pass for the next hop
/// (`frontend.example.test`) or another gateway.
pub(crate) fn matches_identity(cert: &CertificateDer<'_>, identity: &str) -> bool {
    let want = normalise(identity);
    !want.is_empty() && dns_names(cert).iter().any(|name| normalise(name) == want)
}

fn normalise(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// The DNS names a certificate carries, for logs.
pub(crate) fn dns_names(cert: &CertificateDer<'_>) -> Vec<String> {
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
pub(crate) fn expiry(cert: &CertificateDer<'_>) -> Option<(i64, String)> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(names: &[&str]) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn an_identity_matches_its_own_name_in_any_case() {
        let c = cert(&["gw1.example.test", "other.example.test"]);
        assert!(matches_identity(&c, "gw1.example.test"));
        assert!(matches_identity(&c, "GW1.Example.Test."));
        assert!(!matches_identity(&c, "gw2.example.test"));
        assert!(!matches_identity(&c, ""));
    }

    /// Security review (identity roles): wildcards match only when configured.
    #[test]
    fn a_wildcard_certificate_matches_only_a_configured_wildcard() {
        let c = cert(&["*.example.test"]);
        assert!(!matches_identity(&c, "frontend.example.test"));
        assert!(!matches_identity(&c, "gw1.example.test"));
        assert!(matches_identity(&c, "*.example.test"));
    }
}
