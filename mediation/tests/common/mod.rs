//! Shared set-up for the service's integration tests: a lab PKI on disk, a configuration that
//! points at it with every listener on a free loopback port, and MTLS/TCP SIP clients.
#![allow(dead_code)]

pub(crate) mod libsrtp;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mediation::config::{self, Config};
use mediation::service::Service;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// A lab PKI written to a temporary directory.
pub(crate) struct Lab {
    pub dir: tempfile::TempDir,
    pub pki: certs::LabPki,
}

impl Lab {
    pub(crate) fn new() -> Self {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter("mediation=info")
            .try_init();
        let dir = tempfile::tempdir().unwrap();
        let pki = certs::LabPki::generate().unwrap();
        pki.write_to(dir.path()).unwrap();
        Lab { dir, pki }
    }

    pub(crate) fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// A configuration with every listener on 127.0.0.1 port 0; `extra` is appended.
    pub(crate) fn config_text(&self, tls_extra: &str, extra: &str) -> String {
        format!(
            r#"[node]
name = "mediation.example.test"

[tls]
certificate = "mediation.pem"
private_key = "mediation-key.pem"
trusted_cas = "ca.pem"
crls = ["crl.pem"]
{tls_extra}

[next_hop]
listen = "127.0.0.1:0"
address = "127.0.0.1:5061"
identity = "frontend.example.test"

[gateway_listen]
tls = "127.0.0.1:0"
tcp = "127.0.0.1:0"

[[gateway]]
name = "gw1"
address = "127.0.0.1:5067"
transport = "tls"
identity = "gw1.example.test"

[[gateway]]
name = "gw-tcp"
address = "127.0.0.1:5068"
transport = "tcp"
srtp = "not-supported"

[media]
advertise = "127.0.0.1"
ports = "40000-40099"

[metrics]
listen = "127.0.0.1:0"

{extra}
"#
        )
    }

    pub(crate) fn config(&self, tls_extra: &str) -> Config {
        let text = self.config_text(tls_extra, "");
        let file = self.path("mediation.toml");
        std::fs::write(&file, text).unwrap();
        config::load_file(&file).unwrap()
    }

    pub(crate) async fn start(&self, tls_extra: &str) -> Service {
        Service::start(Arc::new(self.config(tls_extra)))
            .await
            .unwrap()
    }

    /// A TLS client presenting `cert`/`key` files from the lab (none when `None`).
    pub(crate) fn client(
        &self,
        cert: Option<(&str, &str)>,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_file_iter(self.path("ca.pem")).unwrap() {
            roots.add(ca.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots);
        let config = match cert {
            Some((c, k)) => {
                let chain = CertificateDer::pem_file_iter(self.path(c))
                    .unwrap()
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap();
                let key = PrivateKeyDer::from_pem_file(self.path(k)).unwrap();
                builder.with_client_auth_cert(chain, key).unwrap()
            }
            None => builder.with_no_client_auth(),
        };
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

impl Lab {
    /// A TLS client presenting `cert`/`key` that accepts whatever certificate the server
    /// presents (expired ones too), for tests that look at which one it is.
    pub(crate) fn client_accepting_any_server(
        &self,
        (c, k): (&str, &str),
    ) -> tokio_rustls::TlsConnector {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = CertificateDer::pem_file_iter(self.path(c))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(self.path(k)).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
            .with_client_auth_cert(chain, key)
            .unwrap();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

/// Accepts any server certificate whose handshake signature verifies (tests only).
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Connects with TLS; the server name checked is `mediation.example.test`.
pub(crate) async fn tls_connect(
    connector: &tokio_rustls::TlsConnector,
    addr: std::net::SocketAddr,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    connector
        .connect(ServerName::try_from("mediation.example.test").unwrap(), tcp)
        .await
}

/// An OPTIONS request with the given Call-ID.
pub(crate) fn options(call_id: &str) -> String {
    format!(
        "OPTIONS sip:mediation.example.test SIP/2.0\r\n\
         Via: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bK-{call_id}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@gw1.example.test>;tag=p1\r\n\
         To: <sip:mediation.example.test>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// Reads one SIP response head (through the blank line) within 5 s; `None` on close or error.
pub(crate) async fn read_response<S: AsyncRead + Unpin>(
    s: &mut S,
    pending: &mut Vec<u8>,
) -> Option<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(end) = find(pending, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..end + 4]).to_string();
            let body_len = header(&head, "content-length")
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if pending.len() >= end + 4 + body_len {
                pending.drain(..end + 4 + body_len);
                return Some(head);
            }
        }
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, s.read(&mut buf))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        pending.extend_from_slice(&buf[..n]);
    }
}

/// Sends `request` and reads the response's status line.
pub(crate) async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    request: &str,
) -> Option<String> {
    s.write_all(request.as_bytes()).await.ok()?;
    let mut pending = Vec::new();
    read_response(s, &mut pending).await
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A header's value from a message head (case-insensitive name, first occurrence).
pub(crate) fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Waits up to 3 s for a counter to reach `want`.
pub(crate) async fn wait_for(mut get: impl FnMut() -> u64, want: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let v = get();
        if v >= want || tokio::time::Instant::now() > deadline {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) fn lab_dir(lab: &Lab) -> &Path {
    lab.dir.path()
}
