//! The front doors' gatekeeper: runs the TLS handshake (client certificate required), matches
//! the proved certificate against the configured identities, recognises plain-TCP and UDP
//! gateways by source address, and logs and counts every refusal with its reason.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::config::{Config, GatewayTransport};
use crate::metrics::Metrics;
use crate::peer::{Listener, Peer, PeerIdentity, Signalling, TlsVersionSeen};
use crate::tls::{dns_names, matches_identity, RefusalReason};

/// Who may connect, and how they prove it.
pub(crate) struct Admission {
    next_hop_identity: String,
    /// (gateway name, certificate identity) of every TLS gateway.
    tls_gateways: Vec<(String, String)>,
    /// (gateway name, source addresses) of every TCP gateway.
    tcp_gateways: Vec<(String, Vec<IpAddr>)>,
    /// (gateway name, source addresses) of every UDP gateway.
    udp_gateways: Vec<(String, Vec<IpAddr>)>,
    server: RwLock<Arc<ServerConfig>>,
    handshake_timeout: Duration,
    metrics: Metrics,
    /// Addresses configured peers connect from, as far as the configuration tells.
    peer_addresses: Vec<IpAddr>,
}

impl Admission {
    /// Builds the gatekeeper. Host names of TCP and UDP gateways without `sources` are resolved
    /// now.
    pub(crate) async fn new(
        config: &Config,
        server: Arc<ServerConfig>,
        metrics: Metrics,
    ) -> std::io::Result<Self> {
        let mut tcp_gateways = Vec::new();
        let mut udp_gateways = Vec::new();
        let mut tls_gateways = Vec::new();
        let mut peer_addresses = resolve(&config.next_hop.address).await;
        for g in &config.gateways {
            match g.transport {
                GatewayTransport::Tls => {
                    tls_gateways.push((g.name.clone(), g.identity.clone().unwrap_or_default()));
                    peer_addresses.extend(g.sources.iter().copied());
                    peer_addresses.extend(resolve(&g.address).await);
                }
                GatewayTransport::Tcp => tcp_gateways.push((g.name.clone(), sources(g).await?)),
                GatewayTransport::Udp => udp_gateways.push((g.name.clone(), sources(g).await?)),
            }
        }
        for (_, sources) in tcp_gateways.iter().chain(&udp_gateways) {
            peer_addresses.extend(sources.iter().copied());
        }
        Ok(Self {
            peer_addresses,
            next_hop_identity: config.next_hop.identity.clone(),
            tls_gateways,
            tcp_gateways,
            udp_gateways,
            server: RwLock::new(server),
            handshake_timeout: config.tls.handshake_timeout(),
            metrics,
        })
    }

    /// The addresses configured peers connect from: the next hop's and the gateways' (their
    /// `sources`, else their addresses resolved at start). Connection places are kept for them.
    pub(crate) fn peer_addresses(&self) -> &[IpAddr] {
        &self.peer_addresses
    }

    /// Replaces the server TLS configuration (certificate or CRL rotation); connections already
    /// established keep theirs.
    pub(crate) fn set_server_config(&self, server: Arc<ServerConfig>) {
        *self.server.write().unwrap_or_else(|e| e.into_inner()) = server;
    }

    fn refuse(&self, listener: Listener, remote: SocketAddr, reason: RefusalReason, detail: &str) {
        tracing::warn!(
            listener = listener.label(),
            %remote,
            reason = reason.label(),
            detail,
            "TLS peer refused"
        );
        self.metrics
            .mtls_rejections
            .with_label_values(&[listener.label(), reason.label()])
            .inc();
        self.metrics
            .tls_handshakes
            .with_label_values(&[listener.label(), "", "refused"])
            .inc();
    }

    /// Runs the MTLS handshake on a connection accepted by `listener` and establishes who the
    /// peer is. Every refusal is logged and counted before it is returned.
    pub(crate) async fn admit_tls(
        &self,
        listener: Listener,
        tcp: TcpStream,
        remote: SocketAddr,
    ) -> Result<(TlsStream<TcpStream>, PeerIdentity), RefusalReason> {
        let acceptor = TlsAcceptor::from(
            self.server
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        );
        let started = std::time::Instant::now();
        let legacy_version = offered_legacy_version(&tcp).await;
        let stream = match tokio::time::timeout(self.handshake_timeout, acceptor.accept(tcp)).await
        {
            Err(_) => {
                self.refuse(listener, remote, RefusalReason::HandshakeTimeout, "");
                return Err(RefusalReason::HandshakeTimeout);
            }
            Ok(Err(e)) => {
                let reason = match legacy_version {
                    // A ClientHello from TLS 1.1 or older lacks the extensions rustls looks for
                    // first; the version it offered is the real reason.
                    Some(v) if v < 0x0303 => RefusalReason::ProtocolVersion,
                    _ => RefusalReason::of_io_error(&e),
                };
                self.refuse(listener, remote, reason, &e.to_string());
                return Err(reason);
            }
            Ok(Ok(s)) => s,
        };
        self.metrics
            .tls_handshake_duration
            .with_label_values(&[listener.label()])
            .observe(started.elapsed().as_secs_f64());
        let (_, conn) = stream.get_ref();
        let version = TlsVersionSeen::from_rustls(conn.protocol_version());
        let leaf = conn.peer_certificates().and_then(|c| c.first()).cloned();
        let (Some(version), Some(leaf)) = (version, leaf) else {
            // Unreachable with the verifier we configure (it requires a certificate), but
            // refuse rather than trust.
            self.refuse(listener, remote, RefusalReason::NoCertificate, "");
            return Err(RefusalReason::NoCertificate);
        };
        let peer = match listener {
            Listener::NextHop => {
                matches_identity(&leaf, &self.next_hop_identity).then_some(Peer::NextHop)
            }
            _ => self
                .tls_gateways
                .iter()
                .find(|(_, identity)| matches_identity(&leaf, identity))
                .map(|(name, _)| Peer::Gateway(name.clone())),
        };
        let Some(peer) = peer else {
            let names = dns_names(&leaf).join(", ");
            self.refuse(
                listener,
                remote,
                RefusalReason::NameMismatch,
                &format!("certificate names [{names}], which is no configured identity here"),
            );
            return Err(RefusalReason::NameMismatch);
        };
        self.metrics
            .tls_handshakes
            .with_label_values(&[listener.label(), version.label(), "ok"])
            .inc();
        self.metrics.peer_certificate_seen(&peer, &leaf);
        let identity = PeerIdentity {
            peer,
            signalling: Signalling::Mtls { version },
            listener,
            remote,
        };
        tracing::info!(peer = %identity, "MTLS peer admitted");
        Ok((stream, identity))
    }

    /// Recognises a plain-TCP gateway by its source address.
    pub(crate) fn admit_tcp(&self, remote: SocketAddr) -> Option<PeerIdentity> {
        let found = self
            .tcp_gateways
            .iter()
            .find(|(_, sources)| sources.contains(&remote.ip()));
        match found {
            Some((name, _)) => Some(PeerIdentity {
                peer: Peer::Gateway(name.clone()),
                signalling: Signalling::Tcp,
                listener: Listener::GatewayTcp,
                remote,
            }),
            None => {
                tracing::warn!(%remote, "TCP connection from an address that is no configured gateway refused");
                self.metrics
                    .connections_refused
                    .with_label_values(&[Listener::GatewayTcp.label(), "unknown_source"])
                    .inc();
                None
            }
        }
    }
}

impl Admission {
    /// Recognises a UDP gateway by the source address of its first datagram; `None` (counted)
    /// for any other sender.
    pub(crate) fn admit_udp(&self, remote: SocketAddr) -> Option<PeerIdentity> {
        let found = self
            .udp_gateways
            .iter()
            .find(|(_, sources)| sources.contains(&remote.ip()));
        match found {
            Some((name, _)) => Some(PeerIdentity {
                peer: Peer::Gateway(name.clone()),
                signalling: Signalling::Udp,
                listener: Listener::GatewayUdp,
                remote,
            }),
            None => {
                tracing::warn!(%remote, "UDP datagram from an address that is no configured UDP gateway dropped");
                self.metrics
                    .connections_refused
                    .with_label_values(&[Listener::GatewayUdp.label(), "unknown_source"])
                    .inc();
                None
            }
        }
    }
}

/// The source addresses of a plain (TCP or UDP) gateway: `sources`, else its address resolved.
async fn sources(g: &crate::config::GatewayConfig) -> std::io::Result<Vec<IpAddr>> {
    if !g.sources.is_empty() {
        return Ok(g.sources.clone());
    }
    Ok(tokio::net::lookup_host(&g.address)
        .await?
        .map(|a| a.ip())
        .collect())
}

/// `host:port` resolved, best effort: an MTLS peer is known by its certificate, so a name that
/// does not resolve now only means no connection places are kept for it.
async fn resolve(address: &str) -> Vec<IpAddr> {
    match tokio::net::lookup_host(address).await {
        Ok(addrs) => addrs.map(|a| a.ip()).collect(),
        Err(e) => {
            tracing::debug!(address, error = %e, "peer address not resolved");
            Vec::new()
        }
    }
}

/// The `legacy_version` of the peer's ClientHello (RFC 8446 §4.1.2), read without consuming it:
/// 0x0303 for TLS 1.2 and 1.3 clients, lower for TLS 1.1 and older. `None` when the first bytes
/// are not a handshake record or did not arrive in one segment.
async fn offered_legacy_version(tcp: &TcpStream) -> Option<u16> {
    // record: type(1)=22 version(2) length(2) | handshake: type(1)=1 length(3) | version(2)
    let mut head = [0u8; 11];
    let n = tokio::time::timeout(Duration::from_secs(2), tcp.peek(&mut head))
        .await
        .ok()?
        .ok()?;
    (n == head.len() && head[0] == 22 && head[5] == 1)
        .then(|| u16::from_be_bytes([head[9], head[10]]))
}
