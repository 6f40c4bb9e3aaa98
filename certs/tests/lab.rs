//! Tests of the lab PKI library, checked by parsing the results with
//! `x509-parser` and validating them with `rustls-webpki`.

use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use certs::{files, Ca, Error, Issued, LabPki, LeafSpec};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use webpki::{
    anchor_from_trusted_cert, BorrowedCertRevocationList, CertRevocationList, EndEntityCert,
    KeyUsage, RevocationOptionsBuilder,
};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::*;
use x509_parser::revocation_list::CertificateRevocationList;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn der_of(pem: &str, label: &str) -> Vec<u8> {
    let (_, pem) = parse_x509_pem(pem.as_bytes()).expect("PEM");
    assert_eq!(pem.label, label);
    pem.contents
}

fn parse(der: &[u8]) -> X509Certificate<'_> {
    let (rest, cert) = X509Certificate::from_der(der).expect("certificate DER");
    assert!(rest.is_empty());
    cert
}

fn common_name(name: &X509Name<'_>) -> String {
    name.iter_common_name()
        .next()
        .expect("CN")
        .as_str()
        .expect("CN string")
        .to_owned()
}

/// (DNS names, IP addresses) in the SAN extension.
fn sans(cert: &X509Certificate<'_>) -> (Vec<String>, Vec<IpAddr>) {
    let ext = cert.subject_alternative_name().expect("SAN").expect("SAN");
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    for name in &ext.value.general_names {
        match name {
            GeneralName::DNSName(d) => dns.push((*d).to_owned()),
            GeneralName::IPAddress(b) => {
                let octets: [u8; 4] = (*b).try_into().expect("IPv4");
                ips.push(IpAddr::from(octets));
            }
            other => panic!("unexpected SAN {other:?}"),
        }
    }
    (dns, ips)
}

fn subject_key_id(cert: &X509Certificate<'_>) -> Vec<u8> {
    cert.iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        })
        .expect("SKI")
}

fn authority_key_id(exts: &[X509Extension<'_>]) -> Vec<u8> {
    exts.iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(k) => {
                Some(k.key_identifier.as_ref().expect("AKI keyid").0.to_vec())
            }
            _ => None,
        })
        .expect("AKI")
}

fn now() -> i64 {
    ::time::OffsetDateTime::now_utc().unix_timestamp()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

/// Validates `leaf` against `ca` with rustls-webpki, both as a server
/// certificate for `name` and as a client certificate, optionally with a CRL.
fn webpki_verify(
    ca: &Ca,
    leaf: &Issued,
    name: &str,
    crl_pem: Option<&str>,
) -> Result<(), webpki::Error> {
    let ca_der = CertificateDer::from(ca.cert_der().to_vec());
    let anchors = [anchor_from_trusted_cert(&ca_der)?];
    let leaf_der = CertificateDer::from(leaf.cert_der.clone());
    let ee = EndEntityCert::try_from(&leaf_der)?;
    let crl_der = crl_pem.map(|pem| der_of(pem, "X509 CRL"));
    let crl: Option<CertRevocationList<'_>> = match &crl_der {
        Some(der) => Some(BorrowedCertRevocationList::from_der(der)?.into()),
        None => None,
    };
    let crls: Vec<&CertRevocationList<'_>> = crl.iter().collect();
    for usage in [KeyUsage::server_auth(), KeyUsage::client_auth()] {
        let revocation = if crls.is_empty() {
            None
        } else {
            Some(RevocationOptionsBuilder::new(&crls).expect("CRLs").build())
        };
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &[],
            UnixTime::now(),
            usage,
            revocation,
            None,
        )?;
    }
    ee.verify_is_valid_for_subject_name(&ServerName::try_from(name).expect("server name"))
}

#[test]
fn lab_set_has_the_right_names() {
    let pki = LabPki::generate().unwrap();
    let cases: [(&Issued, &[&str]); 8] = [
        (&pki.mediation, &["mediation.example.test", "localhost"]),
        (&pki.gateway, &["gw1.example.test"]),
        (&pki.gateway2, &["gw2.example.test"]),
        (&pki.nexthop, &["frontend.example.test"]),
        (&pki.gateway_untrusted, &["gw1.example.test"]),
        (&pki.gateway_expired, &["gw1.example.test"]),
        (&pki.gateway_wrong_name, &["rogue.example.test"]),
        (&pki.gateway_revoked, &["gw1.example.test"]),
    ];
    for (issued, want_dns) in cases {
        let der = der_of(&issued.cert_pem, "CERTIFICATE");
        assert_eq!(der, issued.cert_der, "cert_pem and cert_der agree");
        let cert = parse(&der);
        let (dns, ips) = sans(&cert);
        assert_eq!(dns, want_dns);
        assert_eq!(ips, [LOOPBACK]);
        assert_eq!(common_name(cert.subject()), want_dns[0]);
        assert_eq!(cert.raw_serial(), issued.serial.as_ref());
        assert_eq!(issued.serial.len(), 16);
        assert!(issued.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    }
    assert_eq!(pki.ca.common_name(), "Mediation Lab CA");
    assert_eq!(
        common_name(parse(pki.ca.cert_der()).subject()),
        "Mediation Lab CA"
    );
}

#[test]
fn ca_is_a_ca_with_signing_key_usages() {
    let pki = LabPki::generate().unwrap();
    for ca in [&pki.ca, &pki.untrusted_ca] {
        let cert = parse(ca.cert_der());
        assert_eq!(cert.subject(), cert.issuer(), "self-signed");
        cert.verify_signature(None).expect("self-signature");
        assert!(cert.basic_constraints().unwrap().unwrap().value.ca);
        let ku = cert.key_usage().unwrap().expect("key usage").value;
        assert!(ku.key_cert_sign() && ku.crl_sign() && ku.digital_signature());
        assert_eq!(
            cert.public_key().algorithm.algorithm,
            x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY
        );
        assert!(cert.validity().is_valid());
    }
}

#[test]
fn good_leaves_are_mtls_end_entities_signed_by_the_lab_ca() {
    let pki = LabPki::generate().unwrap();
    let ca = parse(pki.ca.cert_der());
    let ca_ski = subject_key_id(&ca);
    for leaf in [
        &pki.mediation,
        &pki.gateway,
        &pki.gateway2,
        &pki.nexthop,
        &pki.gateway_wrong_name,
        &pki.gateway_revoked,
    ] {
        let cert = parse(&leaf.cert_der);
        assert_eq!(cert.issuer().as_raw(), ca.subject().as_raw());
        cert.verify_signature(Some(ca.public_key()))
            .expect("signed by lab CA");
        assert_eq!(authority_key_id(cert.extensions()), ca_ski);
        assert!(!cert.basic_constraints().unwrap().unwrap().value.ca);
        let eku = cert.extended_key_usage().unwrap().expect("EKU").value;
        assert!(eku.server_auth && eku.client_auth);
        assert!(cert.validity().is_valid());
        let days = (cert.validity().not_after.timestamp() - now()) / 86_400;
        assert!((823..=825).contains(&days), "{days} days");
        assert!(cert.validity().not_before.timestamp() < now() - 3600);
    }
    let serials: std::collections::HashSet<_> = [&pki.gateway, &pki.gateway2, &pki.gateway_revoked]
        .iter()
        .map(|i| i.serial.clone())
        .collect();
    assert_eq!(serials.len(), 3, "serials are distinct");
}

#[test]
fn untrusted_gateway_has_a_different_issuer() {
    let pki = LabPki::generate().unwrap();
    let lab_ca = parse(pki.ca.cert_der());
    let other_ca = parse(pki.untrusted_ca.cert_der());
    let cert = parse(&pki.gateway_untrusted.cert_der);
    assert_ne!(cert.issuer(), lab_ca.subject());
    assert_eq!(cert.issuer(), other_ca.subject());
    assert_eq!(common_name(cert.issuer()), "Untrusted Lab CA");
    assert!(cert.verify_signature(Some(lab_ca.public_key())).is_err());
    cert.verify_signature(Some(other_ca.public_key())).unwrap();
    assert!(!pki
        .ca
        .is_issuer_of(&pki.gateway_untrusted.cert_pem)
        .unwrap());
    assert!(pki
        .untrusted_ca
        .is_issuer_of(&pki.gateway_untrusted.cert_pem)
        .unwrap());
    assert!(pki.ca.is_issuer_of(&pki.gateway.cert_pem).unwrap());
}

#[test]
fn expired_gateway_is_expired() {
    let pki = LabPki::generate().unwrap();
    let cert = parse(&pki.gateway_expired.cert_der);
    let validity = cert.validity();
    assert!(validity.not_after.timestamp() < now());
    assert!(validity.not_after.timestamp() <= now() - 86_000);
    assert!(validity.not_before < validity.not_after);
    assert!(!validity.is_valid());
    cert.verify_signature(Some(parse(pki.ca.cert_der()).public_key()))
        .unwrap();
}

#[test]
fn crl_revokes_the_revoked_gateway_and_is_signed_by_the_ca() {
    let pki = LabPki::generate().unwrap();
    let ca = parse(pki.ca.cert_der());
    let der = der_of(&pki.crl_pem, "X509 CRL");
    let (rest, crl) = CertificateRevocationList::from_der(&der).expect("CRL DER");
    assert!(rest.is_empty());
    assert_eq!(crl.issuer(), ca.subject());
    assert_eq!(common_name(crl.issuer()), "Mediation Lab CA");
    crl.verify_signature(ca.public_key())
        .expect("CRL signature");
    assert_eq!(authority_key_id(crl.extensions()), subject_key_id(&ca));
    assert_eq!(crl.crl_number().expect("CRL number").to_bytes_be(), [1]);
    assert!(crl.last_update().timestamp() < now());
    assert!(crl.next_update().expect("nextUpdate").timestamp() > now() + 29 * 86_400);

    let revoked: Vec<_> = crl.iter_revoked_certificates().collect();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].raw_serial(), pki.gateway_revoked.serial.as_ref());
    assert_eq!(
        revoked[0].raw_serial(),
        parse(&pki.gateway_revoked.cert_der).raw_serial()
    );
    let (_, reason) = revoked[0].reason_code().expect("reason");
    assert_eq!(reason, x509_parser::x509::ReasonCode::KeyCompromise);
    for good in [&pki.gateway, &pki.gateway2, &pki.mediation, &pki.nexthop] {
        assert_ne!(revoked[0].raw_serial(), good.serial.as_ref());
    }
}

#[test]
fn webpki_accepts_the_good_and_rejects_the_bad() {
    let pki = LabPki::generate().unwrap();
    let crl = Some(pki.crl_pem.as_str());
    for (leaf, name) in [
        (&pki.mediation, "mediation.example.test"),
        (&pki.mediation, "localhost"),
        (&pki.mediation, "127.0.0.1"),
        (&pki.gateway, "gw1.example.test"),
        (&pki.gateway, "127.0.0.1"),
        (&pki.gateway2, "gw2.example.test"),
        (&pki.nexthop, "frontend.example.test"),
    ] {
        webpki_verify(&pki.ca, leaf, name, crl).unwrap_or_else(|e| panic!("{name}: {e}"));
        webpki_verify(&pki.ca, leaf, name, None).unwrap();
    }
    assert!(matches!(
        webpki_verify(&pki.ca, &pki.gateway_untrusted, "gw1.example.test", crl),
        Err(webpki::Error::UnknownIssuer)
    ));
    assert!(matches!(
        webpki_verify(&pki.ca, &pki.gateway_expired, "gw1.example.test", crl),
        Err(webpki::Error::CertExpired { .. })
    ));
    assert!(matches!(
        webpki_verify(&pki.ca, &pki.gateway_wrong_name, "gw1.example.test", crl),
        Err(webpki::Error::CertNotValidForName(_))
    ));
    assert!(matches!(
        webpki_verify(&pki.ca, &pki.gateway_revoked, "gw1.example.test", crl),
        Err(webpki::Error::CertRevoked)
    ));
    // Without the CRL the revoked certificate is otherwise fine.
    webpki_verify(&pki.ca, &pki.gateway_revoked, "gw1.example.test", None).unwrap();
    // gw2 is not gw1.
    assert!(webpki_verify(&pki.ca, &pki.gateway2, "gw1.example.test", None).is_err());
}

#[test]
fn written_files_have_the_right_modes_and_contents() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nested/pki");
    let pki = LabPki::generate().unwrap();
    let written = pki.write_to(&dir).unwrap();
    let expected: Vec<_> = files::ALL.iter().map(|f| dir.join(f)).collect();
    assert_eq!(written, expected);
    for path in &written {
        let name = path.file_name().unwrap().to_str().unwrap();
        let secret = name.ends_with("-key.pem") || name.ends_with("-bundle.pem");
        assert_eq!(mode(path), if secret { 0o600 } else { 0o644 }, "{name}");
    }
    let read = |name: &str| fs::read_to_string(dir.join(name)).unwrap();
    assert_eq!(read(files::CA), pki.ca.cert_pem());
    assert_eq!(read(files::CA_KEY), pki.ca.key_pem());
    assert_eq!(read(files::UNTRUSTED_CA), pki.untrusted_ca.cert_pem());
    assert_eq!(read(files::GATEWAY), pki.gateway.cert_pem);
    assert_eq!(read(files::GATEWAY_KEY), pki.gateway.key_pem);
    assert_eq!(read(files::GATEWAY_REVOKED), pki.gateway_revoked.cert_pem);
    assert_eq!(read(files::CRL), pki.crl_pem);
    for (bundle, issued) in [
        (files::GATEWAY_BUNDLE, &pki.gateway),
        (files::NEXTHOP_BUNDLE, &pki.nexthop),
    ] {
        let text = read(bundle);
        let blocks: Vec<_> = Pem::iter_from_buffer(text.as_bytes())
            .map(|p| p.unwrap())
            .collect();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].label, "CERTIFICATE");
        assert_eq!(blocks[0].contents, issued.cert_der);
        assert_eq!(blocks[1].label, "PRIVATE KEY");
        assert_eq!(text, issued.bundle_pem());
    }
    // untrusted-ca.pem is the issuer of gateway-untrusted.pem, not the lab CA.
    let untrusted_ca = der_of(&read(files::UNTRUSTED_CA), "CERTIFICATE");
    let gw = der_of(&read(files::GATEWAY_UNTRUSTED), "CERTIFICATE");
    assert_eq!(parse(&gw).issuer(), parse(&untrusted_ca).subject());
    assert_ne!(
        parse(&untrusted_ca).subject(),
        parse(pki.ca.cert_der()).subject()
    );

    // Writing again over existing files keeps the modes (and fixes widened ones).
    fs::set_permissions(
        dir.join(files::GATEWAY_KEY),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    pki.write_to(&dir).unwrap();
    assert_eq!(mode(&dir.join(files::GATEWAY_KEY)), 0o600);
    assert_eq!(mode(&dir.join(files::GATEWAY)), 0o644);
}

#[test]
fn issue_from_a_ca_loaded_back_from_disk_chains_to_the_lab_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = LabPki::generate().unwrap();
    pki.write_to(tmp.path()).unwrap();

    let loaded = Ca::load_dir(tmp.path()).unwrap();
    assert_eq!(loaded.common_name(), "Mediation Lab CA");
    assert_eq!(
        loaded.cert_pem(),
        pki.ca.cert_pem(),
        "keeps the on-disk cert"
    );
    assert_eq!(loaded.public_key_der(), pki.ca.public_key_der());

    let spec = LeafSpec::new(["gw3.example.test", "gw3.alt.example.test"])
        .with_ip(LOOPBACK)
        .with_ip("::1".parse().unwrap())
        .valid_for_days(30);
    let issued = loaded.issue(&spec).unwrap();

    let on_disk = der_of(
        &fs::read_to_string(tmp.path().join("ca.pem")).unwrap(),
        "CERTIFICATE",
    );
    let ca = parse(&on_disk);
    let cert = parse(&issued.cert_der);
    assert_eq!(cert.issuer(), ca.subject());
    assert_eq!(cert.issuer().as_raw(), ca.subject().as_raw());
    assert_eq!(common_name(cert.issuer()), "Mediation Lab CA");
    cert.verify_signature(Some(ca.public_key()))
        .expect("verifies with the lab CA key");
    assert_eq!(authority_key_id(cert.extensions()), subject_key_id(&ca));
    assert_eq!(common_name(cert.subject()), "gw3.example.test");
    let days = (cert.validity().not_after.timestamp() - now()) / 86_400;
    assert!((29..=30).contains(&days));

    // And the original, in-memory CA object (and webpki) trust it too.
    webpki_verify(&pki.ca, &issued, "gw3.alt.example.test", Some(&pki.crl_pem)).unwrap();
    webpki_verify(&pki.ca, &issued, "::1", None).unwrap();
    assert!(pki.ca.is_issuer_of(&issued.cert_pem).unwrap());

    // A CRL from the loaded CA is valid for certificates of the original.
    let crl = loaded
        .crl(std::slice::from_ref(&pki.gateway.serial))
        .unwrap();
    let crl_der = der_of(&crl, "X509 CRL");
    let (_, parsed) = CertificateRevocationList::from_der(&crl_der).unwrap();
    parsed.verify_signature(ca.public_key()).unwrap();
    assert_eq!(authority_key_id(parsed.extensions()), subject_key_id(&ca));
    assert!(matches!(
        webpki_verify(&pki.ca, &pki.gateway, "gw1.example.test", Some(&crl)),
        Err(webpki::Error::CertRevoked)
    ));
    webpki_verify(&pki.ca, &pki.gateway2, "gw2.example.test", Some(&crl)).unwrap();
}

#[test]
fn crl_of_nothing_and_of_several() {
    let ca = Ca::new("Test CA").unwrap();
    let a = ca.issue(&LeafSpec::new(["a.example.test"])).unwrap();
    let b = ca.issue(&LeafSpec::new(["b.example.test"])).unwrap();
    let empty = ca.crl(&[]).unwrap();
    let der = der_of(&empty, "X509 CRL");
    let (_, crl) = CertificateRevocationList::from_der(&der).unwrap();
    assert_eq!(crl.iter_revoked_certificates().count(), 0);

    let both = ca.crl(&[a.serial.clone(), b.serial.clone()]).unwrap();
    let der = der_of(&both, "X509 CRL");
    let (_, crl) = CertificateRevocationList::from_der(&der).unwrap();
    let serials: Vec<_> = crl
        .iter_revoked_certificates()
        .map(|r| r.raw_serial().to_vec())
        .collect();
    assert_eq!(serials, [a.serial.to_bytes(), b.serial.to_bytes()]);
}

#[test]
fn serial_from_pem_reads_back_the_serial() {
    let pki = LabPki::generate().unwrap();
    let serial = certs::serial_from_pem(&pki.gateway.cert_pem, "gateway.pem").unwrap();
    assert_eq!(serial, pki.gateway.serial);
    // A bundle (cert then key) works too.
    let serial = certs::serial_from_pem(&pki.gateway.bundle_pem(), "bundle").unwrap();
    assert_eq!(serial, pki.gateway.serial);
    let err = certs::serial_from_pem(&pki.gateway.key_pem, "gateway-key.pem").unwrap_err();
    assert!(err.to_string().contains("gateway-key.pem"), "{err}");
}

#[test]
fn debug_output_redacts_private_keys() {
    let pki = LabPki::generate().unwrap();
    let debug = format!("{pki:?}");
    assert!(debug.contains("<redacted>"));
    assert!(!debug.contains("PRIVATE KEY"), "{debug}");
    let key_body = pki.gateway.key_pem.lines().nth(1).unwrap();
    assert!(!debug.contains(key_body));
    assert!(!format!("{:?}", pki.ca).contains(pki.ca.key_pem().lines().nth(1).unwrap()));
}

#[test]
fn leaf_spec_defaults_and_helpers() {
    let spec = LeafSpec::new(["x.example.test"]);
    assert_eq!(
        spec.extended_key_usages,
        [
            certs::ExtendedKeyUsagePurpose::ServerAuth,
            certs::ExtendedKeyUsagePurpose::ClientAuth
        ]
    );
    let now = ::time::OffsetDateTime::now_utc();
    assert!(spec.not_before < now - ::time::Duration::hours(23));
    assert!(spec.not_after > now + ::time::Duration::days(824));
    let expired = spec.clone().expired();
    assert!(expired.not_after < now && expired.not_before < expired.not_after);

    // Server-auth only, IP only: the common name is the IP address.
    let ca = Ca::new("Test CA").unwrap();
    let mut ip_only = LeafSpec::new(Vec::<String>::new())
        .with_ip(LOOPBACK)
        .with_extended_key_usages([certs::ExtendedKeyUsagePurpose::ServerAuth]);
    let issued = ca.issue(&ip_only).unwrap();
    let cert = parse(&issued.cert_der);
    assert_eq!(common_name(cert.subject()), "127.0.0.1");
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && !eku.client_auth);

    ip_only.ip_addresses.clear();
    assert!(matches!(ca.issue(&ip_only), Err(Error::NoNames)));
    let backwards = LeafSpec {
        not_after: now - ::time::Duration::days(2),
        ..LeafSpec::new(["x.example.test"])
    };
    assert!(matches!(
        ca.issue(&backwards),
        Err(Error::BadValidity { .. })
    ));
    assert!(matches!(
        ca.issue(&LeafSpec::new(["bad\u{e9}.example.test"])),
        Err(Error::BadDnsName { .. })
    ));
}

#[test]
fn loading_errors_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");
    let err = Ca::load_dir(&missing).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "cannot read {}/ca.pem: No such file",
            missing.display()
        )),
        "{msg}"
    );

    let pki = LabPki::generate().unwrap();
    pki.write_to(tmp.path()).unwrap();
    let dir = tmp.path();
    // Key of another certificate.
    let err = Ca::load(&dir.join("ca.pem"), &dir.join("gateway-key.pem")).unwrap_err();
    assert!(matches!(err, Error::KeyMismatch { .. }), "{err}");
    assert!(err.to_string().contains("does not match"), "{err}");
    // A leaf is not a CA.
    let err = Ca::load(&dir.join("gateway.pem"), &dir.join("gateway-key.pem")).unwrap_err();
    assert!(matches!(err, Error::NotACa(_)), "{err}");
    // Garbage.
    let err = Ca::load(&dir.join("ca-key.pem"), &dir.join("ca-key.pem")).unwrap_err();
    assert!(matches!(err, Error::BadCertificate { .. }), "{err}");
    assert!(err.to_string().contains("ca-key.pem"), "{err}");
    let err = Ca::load(&dir.join("ca.pem"), &dir.join("ca.pem")).unwrap_err();
    assert!(matches!(err, Error::BadKey { .. }), "{err}");
    // Unwritable target.
    let err = pki.write_to(&dir.join("ca.pem")).unwrap_err();
    assert!(err.to_string().starts_with("cannot write"), "{err}");
}
