//! Hostile TLS peers played by `openssl s_client`, a TLS stack nobody here wrote: every peer
//! that has not proved who it is is refused and counted with its reason — no certificate, a
//! self-signed one, an expired one, one from another CA, a wrong name, a revoked one (before
//! and after a CRL reload) — and renegotiation is impossible. (SSLv3 cannot be tried: Debian's
//! OpenSSL 3 is built without it; TLS 1.0 and 1.1 are refused in `front_doors.rs`.)

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use tokio::io::AsyncWriteExt;

/// What openssl saw.
struct Seen {
    stdout: String,
    stderr: String,
}

/// Connects with openssl (`version`: `-tls1_2` or `-tls1_3`), presenting `cert` if any, sends
/// `input` (an OPTIONS request) and waits a moment for the answer.
async fn openssl(
    addr: std::net::SocketAddr,
    version: &str,
    cert: Option<(PathBuf, PathBuf)>,
    input: &str,
) -> Seen {
    openssl_typing(addr, version, cert, &[input]).await
}

/// As [`openssl`], typing each of `inputs` half a second apart (s_client takes a line that is
/// just `R` as its command to renegotiate).
async fn openssl_typing(
    addr: std::net::SocketAddr,
    version: &str,
    cert: Option<(PathBuf, PathBuf)>,
    inputs: &[&str],
) -> Seen {
    let mut cmd = tokio::process::Command::new("openssl");
    cmd.args(["s_client", "-connect", &addr.to_string(), version]);
    if let Some((cert, key)) = cert {
        cmd.arg("-cert").arg(cert).arg("-key").arg(key);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("openssl must be installed (the test command installs it)");
    let mut stdin = child.stdin.take().unwrap();
    for input in inputs {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let _ = stdin.write_all(input.as_bytes()).await;
        let _ = stdin.flush().await;
    }
    // The server ends a refused connection; an admitted one we end after a moment.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    drop(stdin);
    let _ = child.start_kill();
    let out = child.wait_with_output().await.expect("openssl ran");
    Seen {
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

fn refused(service: &mediation::service::Service, reason: &str) -> u64 {
    service
        .metrics
        .mtls_rejections
        .with_label_values(&["gateway_tls", reason])
        .get()
}

/// A self-signed certificate naming a configured gateway, made by openssl itself.
fn self_signed(lab: &Lab) -> (PathBuf, PathBuf) {
    let (cert, key) = (lab.path("self-signed.pem"), lab.path("self-signed-key.pem"));
    let ok = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=gw1.example.test"])
        .args(["-addext", "subjectAltName=DNS:gw1.example.test"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl req runs");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    (cert, key)
}

#[tokio::test]
async fn openssl_peers_without_proof_are_refused_with_their_reason() {
    let lab = Lab::new();
    let service = lab.start("").await;
    let addr = service.bound.gateway_tls.unwrap();
    let pair = |name: &str| {
        Some((
            lab.path(&format!("{name}.pem")),
            lab.path(&format!("{name}-key.pem")),
        ))
    };
    let cases = [
        (None, "no_certificate"),
        (Some(self_signed(&lab)), "untrusted_ca"),
        (pair("gateway-untrusted"), "untrusted_ca"),
        (pair("gateway-expired"), "expired"),
        (pair("gateway-wrong-name"), "name_mismatch"),
        (pair("gateway-revoked"), "revoked"),
    ];
    for version in ["-tls1_2", "-tls1_3"] {
        for (cert, reason) in &cases {
            let before = refused(&service, reason);
            let seen = openssl(addr, version, cert.clone(), &options("hostile")).await;
            assert!(
                !seen.stdout.contains("SIP/2.0"),
                "{reason} over {version} got a SIP answer:\n{}",
                seen.stdout
            );
            let after = wait_for(|| refused(&service, reason), before + 1).await;
            assert_eq!(
                after,
                before + 1,
                "{reason} over {version} not counted; counted:\n{}\nopenssl said:\n{}",
                service
                    .metrics
                    .render()
                    .lines()
                    .filter(|l| l.starts_with("mediation_mtls_rejections_total"))
                    .collect::<Vec<_>>()
                    .join("\n"),
                seen.stderr
            );
        }
    }
}

#[tokio::test]
async fn openssl_renegotiation_is_impossible_and_a_newly_revoked_peer_is_refused_after_reload() {
    let lab = Lab::new();
    let service = lab.start("").await;
    let addr = service.bound.gateway_tls.unwrap();
    let gateway = Some((lab.path("gateway.pem"), lab.path("gateway-key.pem")));

    // A trusted gateway over TLS 1.2 gets its OPTIONS answered; its request to renegotiate
    // (s_client's "R" command) is refused: rustls never renegotiates.
    let seen = openssl_typing(
        addr,
        "-tls1_2",
        gateway.clone(),
        &[&options("before-reneg"), "R\n", &options("after-reneg")],
    )
    .await;
    let all = format!("{}\n{}", seen.stdout, seen.stderr);
    assert!(all.contains("Call-ID: before-reneg"), "{all}");
    let (_, after) = all
        .split_once("RENEGOTIATING")
        .unwrap_or_else(|| panic!("openssl did not try to renegotiate:\n{all}"));
    // No second handshake: openssl would verify our certificate again and report it.
    assert!(
        !after.contains("verify return"),
        "a second handshake ran:\n{all}"
    );
    assert!(
        !after.contains("SIP/2.0 200"),
        "the session went on renegotiated:\n{all}"
    );

    // Revoke the gateway, reload: its next connection is refused as revoked.
    let crl = lab.pki.ca.crl(&[
        lab.pki.gateway.serial.clone(),
        lab.pki.gateway_revoked.serial.clone(),
    ]);
    std::fs::write(lab.path("crl.pem"), crl.unwrap()).unwrap();
    service.reload_tls().expect("reload");
    let before = refused(&service, "revoked");
    let seen = openssl(addr, "-tls1_3", gateway, &options("after-reload")).await;
    assert!(!seen.stdout.contains("SIP/2.0"), "{}", seen.stdout);
    assert_eq!(
        wait_for(|| refused(&service, "revoked"), before + 1).await,
        before + 1
    );
}
