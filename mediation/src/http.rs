//! The operator's HTTP endpoint: `/metrics` (Prometheus text format), `/healthz` (the process
//! answers), `/readyz` (listeners bound, our certificate valid, media ports free) and
//! `POST /reload` (re-read certificates, keys, CAs and CRLs, as SIGHUP does; `mediation reload`).
//! The reload takes no input from the request: it only re-reads the configured files. Bind the
//! endpoint to loopback or put it behind `[metrics.tls]` client certificates.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::watch;

use crate::media::PortPool;
use crate::metrics::Metrics;

/// What readiness is judged on.
#[derive(Clone)]
pub struct Readiness {
    /// Counters to render.
    pub metrics: Metrics,
    /// The media port pool.
    pub ports: PortPool,
    /// When our own certificate stops being valid (UNIX seconds).
    pub certificate_not_after: i64,
    /// Re-reads the TLS material; the error names the file and field.
    pub reload: Arc<dyn Fn() -> Result<(), String> + Send + Sync>,
}

/// Binds the endpoint and serves it until `shutdown` turns true; returns the bound address.
/// With `tls`, only HTTPS clients presenting a certificate that configuration accepts are
/// served.
pub async fn serve(
    addr: SocketAddr,
    state: Readiness,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot listen on {addr} (metrics): {e}"))
    })?;
    let local = listener.local_addr()?;
    let tls_on = tls.is_some();
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/reload", post(reload))
        .with_state(Arc::new(state));
    match tls {
        None => {
            tokio::spawn(async move {
                let stop = async move {
                    let _ = shutdown.changed().await;
                };
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(stop)
                    .await
                {
                    tracing::error!(error = %e, "metrics endpoint failed");
                }
            });
        }
        Some(config) => {
            tokio::spawn(serve_https(listener, app, config, shutdown));
        }
    }
    tracing::info!(%local, https = tls_on, "metrics endpoint listening");
    Ok(local)
}

/// HTTPS with client certificates: each connection is handshaken, then served by hyper.
async fn serve_https(
    listener: tokio::net::TcpListener,
    app: Router,
    config: Arc<rustls::ServerConfig>,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    loop {
        let tcp = tokio::select! {
            r = listener.accept() => match r {
                Ok((tcp, _)) => tcp,
                Err(_) => continue,
            },
            _ = shutdown.changed() => return,
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let handshake =
                tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp));
            let tls = match handshake.await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::info!(error = %e, "metrics client refused");
                    return;
                }
                Err(_) => return,
            };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
        });
    }
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
    if s.certificate_not_after <= now {
        problems.push("our certificate has expired".to_string());
    }
    let free = s.ports.capacity().saturating_sub(s.ports.in_use());
    if free < 2 {
        problems.push(format!(
            "media ports exhausted ({} in use)",
            s.ports.in_use()
        ));
    }
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
