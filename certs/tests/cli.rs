//! Tests of the `certs` binary: `init`, `issue` and `revoke`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use certs::{files, Ca};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::*;
use x509_parser::revocation_list::CertificateRevocationList;

fn certs(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_certs"))
        .args(args)
        .output()
        .expect("run certs")
}

fn ok(args: &[&str]) -> Vec<PathBuf> {
    let out = certs(args);
    assert!(
        out.status.success(),
        "certs {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(PathBuf::from)
        .collect()
}

fn failure(args: &[&str]) -> String {
    let out = certs(args);
    assert!(!out.status.success(), "certs {args:?} succeeded");
    String::from_utf8(out.stderr).unwrap()
}

fn pem_der(path: &Path) -> Vec<u8> {
    let text = fs::read(path).unwrap();
    parse_x509_pem(&text).unwrap().1.contents
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn init_writes_all_files() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("pki");
    let printed = ok(&["init", "--out", s(&out)]);
    let expected: Vec<_> = files::ALL.iter().map(|f| out.join(f)).collect();
    assert_eq!(printed, expected, "one line per file");
    let mut on_disk: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    on_disk.sort();
    let mut want: Vec<_> = files::ALL.iter().map(|f| f.to_string()).collect();
    want.sort();
    assert_eq!(on_disk, want);
    for name in files::ALL {
        let path = out.join(name);
        let secret = name.ends_with("-key.pem") || name.ends_with("-bundle.pem");
        assert_eq!(mode(&path), if secret { 0o600 } else { 0o644 }, "{name}");
        assert!(fs::read_to_string(&path)
            .unwrap()
            .starts_with("-----BEGIN "));
    }
    let ca = Ca::load_dir(&out).unwrap();
    assert_eq!(ca.common_name(), "Mediation Lab CA");
    let gw = fs::read_to_string(out.join(files::GATEWAY)).unwrap();
    assert!(ca.is_issuer_of(&gw).unwrap());
}

#[test]
fn issue_and_revoke_with_a_ca_from_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(&["init", "--out", s(dir)]);
    let prefix = dir.join("gw3");
    let printed = ok(&[
        "issue",
        "--ca-dir",
        s(dir),
        "--name",
        "gw3.example.test",
        "--name",
        "gw3.local",
        "--ip",
        "127.0.0.1",
        "--ip",
        "::1",
        "--days",
        "10",
        "--out",
        s(&prefix),
    ]);
    let cert_path = dir.join("gw3.pem");
    let key_path = dir.join("gw3-key.pem");
    assert_eq!(printed, [cert_path.clone(), key_path.clone()]);
    assert_eq!(mode(&key_path), 0o600);
    assert_eq!(mode(&cert_path), 0o644);

    let ca_der = pem_der(&dir.join("ca.pem"));
    let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
    let der = pem_der(&cert_path);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    assert_eq!(cert.issuer(), ca.subject());
    cert.verify_signature(Some(ca.public_key())).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap().value;
    let names: Vec<String> = san
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::DNSName(d) => d.to_string(),
            GeneralName::IPAddress(b) => format!("ip{}", b.len()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(names, ["gw3.example.test", "gw3.local", "ip4", "ip16"]);
    let days = (cert.validity().not_after.timestamp()
        - certs::OffsetDateTime::now_utc().unix_timestamp())
        / 86_400;
    assert!((9..=10).contains(&days), "{days}");

    let crl_path = dir.join("new-crl.pem");
    let printed = ok(&[
        "revoke",
        "--ca-dir",
        s(dir),
        "--cert",
        s(&cert_path),
        s(&dir.join("gateway2.pem")),
        "--out",
        s(&crl_path),
    ]);
    assert_eq!(printed, std::slice::from_ref(&crl_path));
    assert_eq!(mode(&crl_path), 0o644);
    let crl_der = pem_der(&crl_path);
    let (_, crl) = CertificateRevocationList::from_der(&crl_der).unwrap();
    assert_eq!(crl.issuer(), ca.subject());
    crl.verify_signature(ca.public_key()).unwrap();
    let revoked: Vec<_> = crl
        .iter_revoked_certificates()
        .map(|r| r.raw_serial().to_vec())
        .collect();
    let gw2_der = pem_der(&dir.join("gateway2.pem"));
    let (_, gw2) = X509Certificate::from_der(&gw2_der).unwrap();
    assert_eq!(
        revoked,
        [cert.raw_serial().to_vec(), gw2.raw_serial().to_vec()]
    );
}

#[test]
fn errors_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let missing = dir.join("x");
    let err = failure(&[
        "issue",
        "--ca-dir",
        s(&missing),
        "--name",
        "a.test",
        "--out",
        s(&dir.join("a")),
    ]);
    assert!(
        err.contains(&format!(
            "cannot read {}/ca.pem: No such file",
            missing.display()
        )),
        "{err}"
    );
    assert_eq!(
        err.matches("No such file").count(),
        1,
        "cause not repeated: {err}"
    );

    ok(&["init", "--out", s(dir)]);
    // A certificate from another CA cannot be revoked by this one.
    let err = failure(&[
        "revoke",
        "--ca-dir",
        s(dir),
        "--cert",
        s(&dir.join("gateway-untrusted.pem")),
        "--out",
        s(&dir.join("c.pem")),
    ]);
    assert!(err.contains("was not issued by the CA"), "{err}");
    let err = failure(&[
        "revoke",
        "--ca-dir",
        s(dir),
        "--cert",
        s(&dir.join("nope.pem")),
        "--out",
        s(&dir.join("c.pem")),
    ]);
    assert!(
        err.contains("cannot read") && err.contains("nope.pem"),
        "{err}"
    );
    assert!(!dir.join("c.pem").exists());
    // --name is required.
    let err = failure(&["issue", "--ca-dir", s(dir), "--out", s(&dir.join("a"))]);
    assert!(err.contains("--name"), "{err}");
}
