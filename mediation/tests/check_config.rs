//! `mediation check-config` as an operator runs it: the shipped example passes, and each
//! contradiction is refused with its field and line and a non-zero exit.

use std::path::Path;
use std::process::Command;

fn check(file: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mediation"))
        .arg("check-config")
        .arg(file)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// The shipped example next to a freshly generated lab PKI in `certs/`, as the README sets up.
fn example_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    certs::LabPki::generate()
        .unwrap()
        .write_to(&dir.path().join("certs"))
        .unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/mediation.toml");
    std::fs::copy(example, dir.path().join("mediation.toml")).unwrap();
    dir
}

#[test]
fn shipped_example_passes() {
    let dir = example_dir();
    let (ok, text) = check(&dir.path().join("mediation.toml"));
    assert!(ok, "{text}");
    assert!(text.starts_with("OK:"), "{text}");
}

fn edited(dir: &Path, from: &str, to: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(dir.join("mediation.toml")).unwrap();
    assert!(text.contains(from), "example no longer contains {from:?}");
    let file = dir.join("edited.toml");
    std::fs::write(&file, text.replacen(from, to, 1)).unwrap();
    file
}

#[test]
fn contradictions_are_refused_naming_field_and_line() {
    let dir = example_dir();
    let cases = [
        (
            "srtp = \"not-supported\"",
            "srtp = \"required\"",
            "gateway[1].srtp",
            "requires MTLS",
        ),
        (
            "certificate = \"certs/mediation.pem\"",
            "certificate = \"certs/missing.pem\"",
            "tls.certificate",
            "missing.pem",
        ),
        (
            "ports = \"49152-57500\"",
            "ports = \"50001-50000\"",
            "media.ports",
            "no RTP/RTCP port pair",
        ),
        (
            "gateways = [\"gw1\", \"gw2\"]",
            "gateways = [\"gw1\", \"gw9\"]",
            "route[0].gateways[1]",
            "no [[gateway]] is named \"gw9\"",
        ),
        (
            "pattern = \"^\\\\+1\"",
            "pattern = \"^(\"",
            "route[0].pattern",
            "not a regular expression",
        ),
        (
            "# forward_history = false",
            "[[gateway.number_rules]]\nnumber = \"called\"\npattern = '^\\+1(\\d+)$'\nreplace = '$1a'",
            "gateway[0].number_rules[0].replace",
            "write \"${1}a\"",
        ),
        (
            "# forward_history = false",
            "[[gateway.number_rules]]\nnumber = \"dialled\"\npattern = '^1'\nreplace = '2'",
            "gateway[0].number_rules[0].number",
            "unknown variant",
        ),
        (
            "min_version = \"1.2\"",
            "min_version = \"1.1\"",
            "tls.min_version",
            "unknown variant",
        ),
    ];
    for (from, to, field, says) in cases {
        let file = edited(dir.path(), from, to);
        let (ok, text) = check(&file);
        assert!(!ok, "{to} accepted:\n{text}");
        assert!(text.contains(field), "{to}: no field {field} in:\n{text}");
        assert!(text.contains(says), "{to}: no {says:?} in:\n{text}");
        assert!(text.contains("line "), "{to}: no line in:\n{text}");
    }
}

#[test]
fn key_that_is_not_a_key_is_refused() {
    let dir = example_dir();
    let file = edited(
        dir.path(),
        "private_key = \"certs/mediation-key.pem\"",
        "private_key = \"certs/ca.pem\"",
    );
    let (ok, text) = check(&file);
    assert!(!ok, "{text}");
    assert!(text.contains("tls.private_key"), "{text}");
}
