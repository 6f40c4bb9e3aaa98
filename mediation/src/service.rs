//! Starts the whole service from a validated configuration: loads certificate material, binds
//! the front doors, runs the call layer, and stops it all on request.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::sip::FramingLimits;
use crate::tls::{server_config, TlsMaterial};
use crate::transport::{bind_listeners, AcceptContext, Admission, Bound};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Certificate, key, CA or CRL files are unusable.
    #[error(transparent)]
    Material(#[from] crate::tls::MaterialError),
    /// rustls refused the material.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsConfigError),
    /// A socket could not be bound or a name not resolved.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A running service.
pub struct Service {
    /// Where the front doors listen.
    pub bound: Bound,
    /// Its counters.
    pub metrics: Metrics,
    shutdown: watch::Sender<bool>,
    core: tokio::task::JoinHandle<()>,
}

impl Service {
    /// Starts everything `config` describes.
    pub async fn start(config: Arc<Config>) -> Result<Service, StartError> {
        let metrics = Metrics::new();
        metrics.fips_mode.set(i64::from(config.tls.fips));
        let material = TlsMaterial::load(&config.tls)?;
        let server = server_config(&material, config.tls.min_version, config.tls.fips)?;
        let admission = Arc::new(Admission::new(&config, server, metrics.clone()).await?);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (events_tx, events_rx) = mpsc::channel(1024);
        let limits = FramingLimits {
            max_message_bytes: config.sip.max_message_bytes,
            max_headers: config.sip.max_headers,
            ..FramingLimits::default()
        };
        let ctx = AcceptContext {
            admission,
            events: events_tx,
            limits,
            metrics: metrics.clone(),
        };
        let bound = bind_listeners(
            config.next_hop.listen,
            config.gateway_listen.tls,
            config.gateway_listen.tcp,
            ctx,
            shutdown_rx.clone(),
        )
        .await?;
        let core = tokio::spawn(crate::dispatch::run(
            events_rx,
            metrics.clone(),
            shutdown_rx,
        ));
        Ok(Service {
            bound,
            metrics,
            shutdown,
            core,
        })
    }

    /// Stops accepting and ends the call layer.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.core.await;
    }
}
