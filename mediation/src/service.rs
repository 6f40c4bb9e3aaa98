//! Starts the whole service from a validated configuration: loads certificate material, binds
//! the front doors, runs the call layer, and stops it all on request.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::call::{Engine, EngineConfig};
use crate::config::{Config, IpFamily};
use crate::driver::{self, Control, DriverIo, SocketPorts};
use crate::media::{MediaWorkers, PortPools};
use crate::metrics::Metrics;
use crate::sip::FramingLimits;
use crate::tls::{client_config, server_config, TlsMaterial};
use crate::transport::{
    bind_listeners, bind_udp, AcceptContext, Admission, Bound, ConnectionLimits, Connector,
    UdpContext,
};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Certificate, key, CA or CRL files are unusable.
    #[error(transparent)]
    Material(#[from] crate::tls::MaterialError),
    /// rustls refused the material.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsConfigError),
    /// The media port range is unusable.
    #[error("media.ports: {0}")]
    Ports(#[from] crate::media::EmptyRange),
    /// A socket could not be bound or a name not resolved.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A running service.
pub struct Service {
    /// Where the front doors listen.
    pub bound: Bound,
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub metrics_addr: std::net::SocketAddr,
    /// Its counters.
    pub metrics: Metrics,
    shutdown: watch::Sender<bool>,
    reload: Arc<Reload>,
    control: mpsc::Sender<Control>,
    active: watch::Receiver<usize>,
    core: tokio::task::JoinHandle<()>,
}

impl Service {
    /// Starts everything `config` describes.
    pub async fn start(config: Arc<Config>) -> Result<Service, StartError> {
        let metrics = Metrics::new();
        if config.next_hop.encryption == crate::config::EncryptionLevel::NotSupported {
            tracing::warn!(
                "INSECURE: [next_hop] encryption = \"not-supported\": media toward the internal side is plain RTP"
            );
        }
        let material = TlsMaterial::load(&config.tls)?;
        let server = server_config(&material, config.tls.min_version, config.tls.fips)?;
        let client = client_config(&material, config.tls.min_version, config.tls.fips)?;
        // 1 only when rustls says both sides run on a FIPS validated module with approved
        // algorithms only, not merely because the configuration asked for it.
        metrics
            .fips_mode
            .set(i64::from(server.fips() && client.fips()));
        let not_after = record_expiry(&metrics, &material);
        // One pool per advertised family, over the same range.
        let pool = PortPools::new(
            IpFamily::ALL
                .into_iter()
                .filter_map(|family| config.media.bind_for(family)),
            config.media.ports.first..=config.media.ports.last,
        )?;
        let media = Arc::new(MediaWorkers::start(config.media.threads, || {})?);
        tracing::info!(
            media_threads = media.thread_ids().len(),
            "media threads started"
        );
        let admission = Arc::new(Admission::new(&config, server, metrics.clone()).await?);
        let reload_admission = admission.clone();
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (events_tx, events_rx) = mpsc::channel(1024);
        let limits = FramingLimits {
            max_message_bytes: config.sip.max_message_bytes,
            max_headers: config.sip.max_headers,
            ..FramingLimits::default()
        };
        let ctx = AcceptContext {
            admission: admission.clone(),
            events: events_tx.clone(),
            limits,
            metrics: metrics.clone(),
            connections: ConnectionLimits::new(
                config.sip.max_connections,
                config.sip.max_connections_per_source,
                admission.peer_addresses().iter().copied(),
            ),
        };
        let mut bound = bind_listeners(
            config.next_hop.listen,
            config.gateway_listen.tls,
            config.gateway_listen.tcp,
            ctx,
            shutdown_rx.clone(),
        )
        .await?;
        let udp = match config.gateway_listen.udp {
            Some(addr) => {
                let ctx = UdpContext {
                    admit: Arc::new(move |remote| admission.admit_udp(remote)),
                    events: events_tx.clone(),
                    timers: config.sip.udp_timers(),
                    limits: config.sip.udp_flow_limits(),
                    max_message_bytes: config.sip.max_message_bytes,
                    metrics: metrics.clone(),
                };
                let (local, handle) = bind_udp(addr, ctx, shutdown_rx.clone()).await?;
                bound.gateway_udp = Some(local);
                Some(handle)
            }
            None => None,
        };
        let mut engine_config = EngineConfig::new(
            &config,
            bound.next_hop.port(),
            bound.gateway_tls.map_or(0, |a| a.port()),
            bound.gateway_tcp.map_or(0, |a| a.port()),
        );
        engine_config.gateway_udp_port = bound.gateway_udp.map_or(0, |a| a.port());
        let engine = Engine::new(
            engine_config,
            SocketPorts::new(pool.clone()),
            rand::SeedableRng::from_entropy(),
        );
        let client = Arc::new(std::sync::RwLock::new(client));
        let connector = Connector {
            tls: client.clone(),
            timeout: config.tls.handshake_timeout(),
            limits,
            events: events_tx,
            metrics: metrics.clone(),
            udp,
            udp_gateways: Arc::new(udp_gateways(&config)),
        };
        let pool_total = pool.capacity();
        let metrics_tls = match &config.metrics.tls {
            Some(m) => Some(Arc::new(std::sync::RwLock::new(scraper_tls(
                &config,
                &material,
                &m.client_ca,
            )?))),
            None => None,
        };
        let certificate_not_after = Arc::new(AtomicI64::new(not_after));
        let reload = Arc::new(Reload {
            config: config.clone(),
            admission: reload_admission,
            client,
            metrics_tls: metrics_tls.clone(),
            certificate_not_after: certificate_not_after.clone(),
            metrics: metrics.clone(),
        });
        let (active_tx, active) = watch::channel(0);
        let http_reload = reload.clone();
        let metrics_addr = crate::http::serve(
            config.metrics.listen,
            crate::http::Readiness {
                metrics: metrics.clone(),
                ports: pool,
                certificate_not_after,
                calls: active.clone(),
                reload: Arc::new(move || http_reload.run().map_err(|e| e.to_string())),
            },
            metrics_tls,
            shutdown_rx.clone(),
        )
        .await?;
        metrics
            .media_ports
            .with_label_values(&["total"])
            .set(pool_total as i64);
        let (control, control_rx) = mpsc::channel(8);
        let media_timeout = (config.media.media_timeout_secs > 0)
            .then(|| Duration::from_secs(config.media.media_timeout_secs));
        let core = tokio::spawn(driver::run(
            engine,
            DriverIo {
                events: events_rx,
                connector,
                metrics: metrics.clone(),
                control: control_rx,
                active: active_tx,
                media_timeout,
                idle_timeout: (config.sip.idle_connection_timeout_secs > 0)
                    .then(|| Duration::from_secs(config.sip.idle_connection_timeout_secs)),
                // Checked when the file was loaded.
                replay_window: crate::srtp::ReplayWindow::new(config.media.replay_window)
                    .unwrap_or(crate::srtp::ReplayWindow::DEFAULT),
                shutdown: shutdown_rx,
                media,
            },
        ));
        Ok(Service {
            bound,
            metrics_addr,
            metrics,
            shutdown,
            reload,
            control,
            active,
            core,
        })
    }

    /// Re-reads the certificate, key, CAs and CRLs (SIGHUP): new connections use them at once,
    /// established connections and calls are untouched. A broken file is refused with the
    /// reason and the material in use is kept.
    pub fn reload_tls(&self) -> Result<(), StartError> {
        self.reload.run()
    }

    /// Graceful stop (SIGTERM): new calls get `503` with `Retry-After`, calls in progress may go
    /// on for `drain` and are then ended with BYE on both legs, then everything stops.
    pub async fn shutdown_gracefully(mut self, drain: Duration) {
        let _ = self.control.send(Control::Drain).await;
        let deadline = tokio::time::Instant::now() + drain;
        loop {
            let calls = *self.active.borrow_and_update();
            if calls == 0 {
                break;
            }
            tracing::info!(calls, "draining: waiting for calls to end");
            if tokio::time::timeout_at(deadline, self.active.changed())
                .await
                .is_err()
            {
                tracing::info!(calls, "drain timeout: ending the remaining calls with BYE");
                let _ = self.control.send(Control::EndAll).await;
                // Let the BYEs reach the writers before the connections close.
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    while *self.active.borrow_and_update() > 0 {
                        if self.active.changed().await.is_err() {
                            break;
                        }
                    }
                })
                .await;
                tokio::time::sleep(Duration::from_millis(200)).await;
                break;
            }
        }
        self.stop().await;
    }

    /// Stops accepting and ends the call layer.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.core.await;
    }
}

/// What a TLS reload replaces: every consumer of the material.
struct Reload {
    config: Arc<Config>,
    /// The SIP listeners' server configuration.
    admission: Arc<Admission>,
    /// Outgoing SIP connections.
    client: Arc<std::sync::RwLock<Arc<rustls::ClientConfig>>>,
    /// The metrics endpoint's HTTPS (our certificate, the CRLs).
    metrics_tls: Option<crate::http::HttpsConfig>,
    /// What `/readyz` checks our certificate's expiry against.
    certificate_not_after: Arc<AtomicI64>,
    metrics: Metrics,
}

impl Reload {
    fn run(&self) -> Result<(), StartError> {
        let tls = &self.config.tls;
        let material = TlsMaterial::load(tls)?;
        let server = server_config(&material, tls.min_version, tls.fips)?;
        let client = client_config(&material, tls.min_version, tls.fips)?;
        let scrapers = match (&self.metrics_tls, &self.config.metrics.tls) {
            (Some(_), Some(m)) => Some(scraper_tls(&self.config, &material, &m.client_ca)?),
            _ => None,
        };
        // Everything is built before anything is replaced: a refused file changes nothing.
        let fips = server.fips() && client.fips();
        self.metrics.fips_mode.set(i64::from(fips));
        self.admission.set_server_config(server);
        *self.client.write().unwrap_or_else(|e| e.into_inner()) = client;
        if let (Some(shared), Some(scrapers)) = (&self.metrics_tls, scrapers) {
            *shared.write().unwrap_or_else(|e| e.into_inner()) = scrapers;
        }
        let not_after = record_expiry(&self.metrics, &material);
        self.certificate_not_after
            .store(not_after, Ordering::Relaxed);
        tracing::info!(crls = material.crls.len(), "TLS material reloaded");
        Ok(())
    }
}

/// Names of the `transport = "udp"` gateways.
fn udp_gateways(config: &Config) -> std::collections::HashSet<String> {
    let udp = config
        .gateways
        .iter()
        .filter(|g| g.transport == crate::config::GatewayTransport::Udp);
    udp.map(|g| g.name.clone()).collect()
}

/// Sets the expiry gauges of our certificate and the trusted CAs; returns our certificate's.
fn record_expiry(metrics: &Metrics, material: &TlsMaterial) -> i64 {
    let mut not_after = 0;
    for (i, cert) in material
        .chain
        .iter()
        .take(1)
        .chain(&material.roots)
        .enumerate()
    {
        if let Some((t, cn)) = crate::tls::expiry(cert) {
            let label = if i == 0 {
                not_after = t;
                "server".to_string()
            } else {
                format!("ca:{cn}")
            };
            metrics
                .certificate_expiry
                .with_label_values(&[&label])
                .set(t);
        }
    }
    not_after
}

/// The HTTPS configuration of the metrics endpoint: our certificate, and client certificates
/// required from scrapers, chaining to `client_ca`.
fn scraper_tls(
    config: &Config,
    material: &TlsMaterial,
    client_ca: &std::path::Path,
) -> Result<Arc<rustls::ServerConfig>, StartError> {
    use rustls_pki_types::pem::PemObject;
    let problem = |problem: String| crate::tls::MaterialError {
        field: "metrics.tls.client_ca".into(),
        path: client_ca.display().to_string(),
        problem,
    };
    let pem = std::fs::read(client_ca).map_err(|e| problem(format!("cannot read: {e}")))?;
    let roots = rustls_pki_types::CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| problem(format!("not PEM certificates: {e}")))?;
    if roots.is_empty() {
        return Err(problem("holds no PEM certificate".into()).into());
    }
    let for_scrapers = TlsMaterial {
        chain: material.chain.clone(),
        key: material.key.clone_key(),
        roots,
        crls: material.crls.clone(),
    };
    Ok(server_config(
        &for_scrapers,
        config.tls.min_version,
        config.tls.fips,
    )?)
}
