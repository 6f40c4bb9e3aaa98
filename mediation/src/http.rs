//! The operator's HTTP endpoint: `/metrics` (Prometheus text format), `/healthz` (the process
//! answers and its call handling runs), `/readyz` (listeners bound, our certificate valid, media
//! ports free) and `POST /reload` (re-read certificates, keys, CAs and CRLs, as SIGHUP does;
//! `mediation reload`). The reload takes no input from the request: it only re-reads the
//! configured files. Bind the endpoint to loopback or put it behind `[metrics.tls]` client
//! certificates.
//!
//! The endpoint is a door too: it serves at most [`MAX_CONNECTIONS`] connections at once, each
//! for at most `CONNECTION_LIFETIME`, with [`HEADER_TIMEOUT`] to send its request head, and
//! backs off when accepting fails (out of file descriptors), so a stranger who opens
//! connections and sends nothing cannot hold the process's descriptors or tasks.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{watch, Semaphore};

use crate::media::PortPools;
use crate::metrics::Metrics;

/// Connections served at once; further ones wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 32;
/// Time a client has to complete the TLS handshake and to send a request head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a connection is kept, idle or not (a scrape takes milliseconds).
pub(crate) const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);
/// Pause after a failed accept (e.g. no file descriptor left) before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The metrics endpoint's TLS configuration; a reload replaces it for new connections.
pub(crate) type HttpsConfig = Arc<RwLock<Arc<rustls::ServerConfig>>>;

/// What readiness is judged on.
#[derive(Clone)]
pub(crate) struct Readiness {
    /// Counters to render.
    pub(crate) metrics: Metrics,
    /// The media port pools, one per family.
    pub(crate) ports: PortPools,
    /// When our own certificate stops being valid (UNIX seconds); a reload updates it.
    pub(crate) certificate_not_after: Arc<AtomicI64>,
    /// The call layer's count of active calls: closed when the call-handling task has ended.
    pub(crate) calls: watch::Receiver<usize>,
    /// Re-reads the TLS material; the error names the file and field.
    pub(crate) reload: Arc<dyn Fn() -> Result<(), String> + Send + Sync>,
}

/// Binds the endpoint and serves it until `shutdown` turns true; returns the bound address.
/// With `tls`, only HTTPS clients presenting a certificate that configuration accepts are
/// served.
pub(crate) async fn serve(
    addr: SocketAddr,
    state: Readiness,
    tls: Option<HttpsConfig>,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot listen on {addr} (metrics): {e}"))
    })?;
    let local = listener.local_addr()?;
    let https = tls.is_some();
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/reload", post(reload))
        .with_state(Arc::new(state));
    tokio::spawn(accept_loop(listener, app, tls, shutdown));
    tracing::info!(%local, https, "metrics endpoint listening");
    Ok(local)
}

/// Accepts connections while fewer than [`MAX_CONNECTIONS`] are served, each in its own task.
async fn accept_loop(
    listener: tokio::net::TcpListener,
    app: Router,
    tls: Option<HttpsConfig>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("never closed"),
            _ = shutdown.changed() => return,
        };
        let tcp = tokio::select! {
            r = listener.accept() => match r {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics endpoint: accept failed; backing off");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let app = app.clone();
        let config = tls
            .as_ref()
            .map(|c| c.read().unwrap_or_else(|e| e.into_inner()).clone());
        tokio::spawn(async move {
            let _slot = slot;
            let served = async {
                match config {
                    None => serve_connection(tcp, app).await,
                    Some(config) => {
                        let acceptor = tokio_rustls::TlsAcceptor::from(config);
                        match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(tcp)).await {
                            Ok(Ok(tls)) => serve_connection(tls, app).await,
                            Ok(Err(e)) => tracing::info!(error = %e, "metrics client refused"),
                            Err(_) => {}
                        }
                    }
                }
            };
            // Whatever the client does, the connection and its slot end in time.
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, served).await;
        });
    }
}

/// Serves HTTP/1.1 on one connection, the request head due within [`HEADER_TIMEOUT`].
async fn serve_connection<S>(io: S, app: Router)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper_util::service::TowerToHyperService::new(app);
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(hyper_util::rt::TokioIo::new(io), service)
        .await;
}

async fn healthz(State(s): State<Arc<Readiness>>) -> impl IntoResponse {
    if s.calls.has_changed().is_err() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "unhealthy: call handling has stopped\n",
        );
    }
    (StatusCode::OK, "ok\n")
}

async fn reload(State(s): State<Arc<Readiness>>) -> impl IntoResponse {
    let run = s.reload.clone();
    match tokio::task::spawn_blocking(move || run()).await {
        Ok(Ok(())) => (StatusCode::OK, "reloaded\n".to_string()),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "TLS reload refused; keeping the material in use");
            (StatusCode::UNPROCESSABLE_ENTITY, format!("{e}\n"))
        }
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "reload failed\n".into()),
    }
}

async fn metrics(State(s): State<Arc<Readiness>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}

async fn readyz(State(s): State<Arc<Readiness>>) -> impl IntoResponse {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut problems = Vec::new();
    if s.certificate_not_after.load(Ordering::Relaxed) <= now {
        problems.push("our certificate has expired".to_string());
    }
    // A call takes two pairs, both from one family's pool when both peers are of that family.
    for u in s.ports.usage() {
        if u.capacity.saturating_sub(u.in_use) < 2 {
            problems.push(format!(
                "{} media ports exhausted ({} in use)",
                u.family, u.in_use
            ));
        }
    }
    let free = s.ports.capacity().saturating_sub(s.ports.in_use());
    if problems.is_empty() {
        (
            StatusCode::OK,
            format!("ready: {free} media port pairs free\n"),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", problems.join("; ")),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[metrics] listen = "[::1]:9464"`: the endpoint binds and answers over IPv6.
    #[tokio::test]
    async fn serves_on_ipv6_loopback() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (_calls_tx, calls) = watch::channel(0);
        let state = Readiness {
            metrics: Metrics::new(),
            ports: PortPools::new(["::1".parse().unwrap()], 40000..=40009).unwrap(),
            certificate_not_after: Arc::new(AtomicI64::new(i64::MAX)),
            calls,
            reload: Arc::new(|| Ok(())),
        };
        let (_stop, shutdown) = watch::channel(false);
        let addr = serve("[::1]:0".parse().unwrap(), state, None, shutdown)
            .await
            .unwrap();
        assert!(addr.is_ipv6(), "{addr}");
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        tcp.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(
            response.contains("ready: 5 media port pairs free"),
            "{response}"
        );
    }

    #[tokio::test]
    async fn healthz_fails_once_call_handling_has_stopped() {
        let (calls_tx, calls) = watch::channel(0);
        let state = Arc::new(Readiness {
            metrics: Metrics::new(),
            ports: PortPools::new([[127, 0, 0, 1].into()], 40000..=40009).unwrap(),
            certificate_not_after: Arc::new(AtomicI64::new(i64::MAX)),
            calls,
            reload: Arc::new(|| Ok(())),
        });
        let status = |s: &Arc<Readiness>| {
            let s = s.clone();
            async move { healthz(State(s)).await.into_response().status() }
        };
        assert_eq!(status(&state).await, StatusCode::OK);
        drop(calls_tx); // the driver's end of the channel goes with the task
        assert_eq!(status(&state).await, StatusCode::SERVICE_UNAVAILABLE);
    }
}
