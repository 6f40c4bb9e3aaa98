//! Outbound connections: TCP, or MTLS where we present our certificate and verify the peer's
//! chain, revocation and name (the configured identity, not the host we dialled). A connection
//! that cannot be made reports `Closed`, which the call layer turns into `503`. Toward a
//! `transport = "udp"` gateway there is no connection to make: the UDP task opens a flow.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::connection::{serve, SipEvent};
use super::udp::UdpHandle;
use crate::config::IpFamily;
use crate::metrics::Metrics;
use crate::peer::ConnId;
use crate::peer::{Listener, Peer, PeerIdentity, Signalling, TlsVersionSeen};
use crate::sip::FramingLimits;

/// Opens outbound connections.
#[derive(Clone)]
pub(crate) struct Connector {
    /// Our client TLS configuration (replaced on reload; each connection takes the current one).
    pub(crate) tls: Arc<std::sync::RwLock<Arc<rustls::ClientConfig>>>,
    /// How long connecting plus the handshake may take.
    pub(crate) timeout: Duration,
    /// Framing limits for what the peer sends back.
    pub(crate) limits: FramingLimits,
    /// Where connection events go.
    pub(crate) events: mpsc::Sender<SipEvent>,
    /// Counters.
    pub(crate) metrics: Metrics,
    /// The UDP task, when `[gateway_listen] udp` is set.
    pub(crate) udp: Option<UdpHandle>,
    /// Names of the `transport = "udp"` gateways.
    pub(crate) udp_gateways: Arc<HashSet<String>>,
}

impl Connector {
    /// Connects in the background as `conn`; on success the connection is served like an
    /// accepted one (its first event is `Opened`), on failure `Closed` is sent. A host name's
    /// addresses of `family` (the one our leg toward the peer advertises) are tried first.
    pub(crate) fn spawn(
        &self,
        conn: ConnId,
        peer: Peer,
        address: String,
        tls_identity: Option<String>,
        family: IpFamily,
    ) {
        let this = self.clone();
        tokio::spawn(async move {
            let attempt = tokio::time::timeout(
                this.timeout,
                this.connect(conn, peer.clone(), &address, tls_identity, family),
            )
            .await;
            let failure = match attempt {
                Ok(Ok(())) => return,
                Ok(Err(e)) => e,
                Err(_) => "timed out".to_string(),
            };
            tracing::warn!(peer = ?peer, %address, error = failure, "outbound connection failed");
            let _ = this.events.send(SipEvent::Closed { conn }).await;
        });
    }

    async fn connect(
        &self,
        conn: ConnId,
        peer: Peer,
        address: &str,
        tls_identity: Option<String>,
        family: IpFamily,
    ) -> Result<(), String> {
        let remotes = resolve(address, family).await?;
        if let Peer::Gateway(name) = &peer {
            if self.udp_gateways.contains(name) {
                let first = *remotes.first().ok_or("resolves to no address")?;
                return self.open_udp(conn, peer.clone(), first).await;
            }
        }
        let tcp = TcpStream::connect(&remotes[..])
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let remote = tcp.peer_addr().map_err(|e| e.to_string())?;
        let Some(identity) = tls_identity else {
            let peer = Arc::new(PeerIdentity {
                peer,
                signalling: Signalling::Tcp,
                listener: Listener::Outbound,
                remote,
            });
            tokio::spawn(serve(
                tcp,
                conn,
                peer,
                self.limits,
                self.events.clone(),
                self.metrics.clone(),
            ));
            return Ok(());
        };
        let name = ServerName::try_from(identity.clone())
            .map_err(|e| format!("bad identity {identity}: {e}"))?;
        let config = self.tls.read().unwrap_or_else(|e| e.into_inner()).clone();
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| {
                let reason = crate::tls::RefusalReason::of_io_error(&e);
                self.metrics
                    .mtls_rejections
                    .with_label_values(&[Listener::Outbound.label(), reason.label()])
                    .inc();
                format!("TLS handshake refused ({reason}): {e}")
            })?;
        let version = TlsVersionSeen::from_rustls(tls.get_ref().1.protocol_version())
            .ok_or("no TLS version negotiated")?;
        if let Some(leaf) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
            self.metrics.peer_certificate_seen(&peer, leaf);
        }
        self.metrics
            .tls_handshakes
            .with_label_values(&[Listener::Outbound.label(), version.label(), "ok"])
            .inc();
        let peer = Arc::new(PeerIdentity {
            peer,
            signalling: Signalling::Mtls { version },
            listener: Listener::Outbound,
            remote,
        });
        tokio::spawn(serve(
            tls,
            conn,
            peer,
            self.limits,
            self.events.clone(),
            self.metrics.clone(),
        ));
        Ok(())
    }

    /// Asks the UDP task for a flow toward the gateway's resolved address.
    async fn open_udp(&self, conn: ConnId, peer: Peer, remote: SocketAddr) -> Result<(), String> {
        let udp = self.udp.as_ref().ok_or("no [gateway_listen] udp socket")?;
        if udp.open(conn, peer, remote).await {
            Ok(())
        } else {
            Err("the UDP socket is closed".into())
        }
    }
}

/// The addresses of `host:port`, those of `family` first (in the resolver's order otherwise);
/// an error when there is none.
async fn resolve(address: &str, family: IpFamily) -> Result<Vec<SocketAddr>, String> {
    let mut remotes: Vec<SocketAddr> = tokio::net::lookup_host(address)
        .await
        .map_err(|e| format!("cannot resolve: {e}"))?
        .collect();
    // Stable: the resolver's order within each family.
    remotes.sort_by_key(|a| IpFamily::of(a.ip()) != family);
    if remotes.is_empty() {
        return Err("resolves to no address".into());
    }
    Ok(remotes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn addresses_of_the_leg_family_come_first() {
        let v6 = resolve("[::1]:5061", IpFamily::V4).await.unwrap();
        assert_eq!(v6, ["[::1]:5061".parse().unwrap()]);
        // "localhost" may resolve to both families, in either order.
        for family in IpFamily::ALL {
            let all = resolve("localhost:5061", family).await.unwrap();
            let first_other = all.iter().position(|a| IpFamily::of(a.ip()) != family);
            let last_same = all.iter().rposition(|a| IpFamily::of(a.ip()) == family);
            if let (Some(other), Some(same)) = (first_other, last_same) {
                assert!(same < other, "{family}: {all:?}");
            }
        }
    }
}
