//! Accept loops for the three front doors. Each accepted TCP connection is admitted (TLS
//! handshake and identity, or source address) in its own task, so a slow handshake never holds
//! up another peer.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use super::admission::Admission;
use super::conn_limits::ConnectionLimits;
use super::connection::{serve, SipEvent};
use crate::metrics::Metrics;
use crate::peer::ConnId;
use crate::peer::Listener;
use crate::sip::FramingLimits;

/// The addresses the front doors actually bound (port 0 in the config picks a free one).
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    /// Next-hop MTLS listener.
    pub next_hop: SocketAddr,
    /// Gateway MTLS listener, if enabled.
    pub gateway_tls: Option<SocketAddr>,
    /// Gateway TCP listener, if enabled.
    pub gateway_tcp: Option<SocketAddr>,
    /// Gateway UDP socket, if enabled (bound by [`super::bind_udp`]).
    pub(crate) gateway_udp: Option<SocketAddr>,
}

/// Binds every configured front door and spawns its accept loop. Loops stop when `shutdown`
/// turns true.
pub(crate) async fn bind_listeners(
    next_hop: SocketAddr,
    gateway_tls: Option<SocketAddr>,
    gateway_tcp: Option<SocketAddr>,
    ctx: AcceptContext,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<Bound> {
    let ctx = Arc::new(ctx);
    let bind = |addr: SocketAddr, listener: Listener| {
        let ctx = ctx.clone();
        let shutdown = shutdown.clone();
        async move {
            let socket = TcpListener::bind(addr).await.map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot listen on {addr} ({}): {e}", listener.label()),
                )
            })?;
            let local = socket.local_addr()?;
            tracing::info!(listener = listener.label(), %local, "listening");
            tokio::spawn(accept_loop(socket, listener, ctx, shutdown));
            Ok::<_, std::io::Error>(local)
        }
    };
    let next_hop = bind(next_hop, Listener::NextHop).await?;
    let gateway_tls = match gateway_tls {
        Some(a) => Some(bind(a, Listener::GatewayTls).await?),
        None => None,
    };
    let gateway_tcp = match gateway_tcp {
        Some(a) => Some(bind(a, Listener::GatewayTcp).await?),
        None => None,
    };
    Ok(Bound {
        next_hop,
        gateway_tls,
        gateway_tcp,
        gateway_udp: None,
    })
}

/// What every accepted connection needs.
pub(crate) struct AcceptContext {
    /// Admits or refuses peers.
    pub(crate) admission: Arc<Admission>,
    /// Where connections report.
    pub(crate) events: mpsc::Sender<SipEvent>,
    /// Framing limits.
    pub(crate) limits: FramingLimits,
    /// Counters.
    pub(crate) metrics: Metrics,
    /// Connections at once per listener, per source, and the reserve for configured peers.
    pub(crate) connections: ConnectionLimits,
}

async fn accept_loop(
    socket: TcpListener,
    listener: Listener,
    ctx: Arc<AcceptContext>,
    mut shutdown: watch::Receiver<bool>,
) {
    let connections = ctx.connections.pool();
    loop {
        let (tcp, remote) = tokio::select! {
            r = socket.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(listener = listener.label(), error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        // A listener on `::` takes IPv4 too and names such a peer `::ffff:192.0.2.1`: the
        // peer is known (admission, limits, its leg's family) by its IPv4 address.
        let remote = SocketAddr::new(remote.ip().to_canonical(), remote.port());
        let slot = match connections.acquire(remote.ip()) {
            Ok(slot) => slot,
            Err(hit) => {
                // Closed before any TLS work: the cheapest refusal there is.
                ctx.metrics
                    .sip_connections_refused
                    .with_label_values(&[listener.label(), hit.label()])
                    .inc();
                tracing::warn!(listener = listener.label(), %remote, limit = hit.label(), "connection refused");
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let _slot = slot; // held for the connection's life
            let open = ctx
                .metrics
                .sip_connections
                .with_label_values(&[listener.label()]);
            open.inc();
            let _open = scopeguard(move || open.dec());
            let conn = ConnId::next();
            match listener {
                Listener::GatewayTcp => {
                    if let Some(peer) = ctx.admission.admit_tcp(remote) {
                        serve(
                            tcp,
                            conn,
                            Arc::new(peer),
                            ctx.limits,
                            ctx.events.clone(),
                            ctx.metrics.clone(),
                        )
                        .await;
                    }
                }
                _ => {
                    if let Ok((tls, peer)) = ctx.admission.admit_tls(listener, tcp, remote).await {
                        serve(
                            tls,
                            conn,
                            Arc::new(peer),
                            ctx.limits,
                            ctx.events.clone(),
                            ctx.metrics.clone(),
                        )
                        .await;
                    }
                }
            }
        });
    }
}

/// Runs `f` when dropped (the connection's task ended, however it ended).
fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}
