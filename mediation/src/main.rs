//! The `mediation` command: run the service, check a configuration file.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use mediation::config::{self, Config, LogFormat};
use mediation::service::Service;
use mediation::tls::{client_config, server_config, TlsMaterial};

/// SIP B2BUA and media relay beside a PSTN gateway: MTLS and SRTP toward the internal next hop,
/// SRTP toward a gateway only when it proved itself with a trusted certificate.
#[derive(Parser)]
#[command(name = "mediation", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service.
    Run {
        /// The configuration file.
        #[arg(long, short, default_value = "/etc/mediation/mediation.toml")]
        config: PathBuf,
    },
    /// Validate a configuration file (and the certificates it names) without starting.
    CheckConfig {
        /// The configuration file.
        file: PathBuf,
    },
    /// Ask a running service to re-read its certificates, keys, CAs and CRLs (as SIGHUP does);
    /// exit 0 when it took them, 1 with the reason (file and field) when it kept the old ones.
    Reload {
        /// Read the metrics address from this configuration file.
        #[arg(long, short, default_value = "/etc/mediation/mediation.toml")]
        config: PathBuf,
        /// Use this address instead (`host:port`).
        #[arg(long)]
        addr: Option<String>,
    },
    /// Probe a running service's `/healthz` (for container health checks); exit 0 when healthy.
    Health {
        /// Read the metrics address from this configuration file.
        #[arg(long, short, default_value = "/etc/mediation/mediation.toml")]
        config: PathBuf,
        /// Probe this address instead (`host:port`).
        #[arg(long)]
        addr: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => check_config(&file),
        Command::Health { config, addr } => health(&config, addr),
        Command::Reload { config, addr } => reload(&config, addr),
        Command::Run { config } => match run(&config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mediation: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn check_config(file: &std::path::Path) -> ExitCode {
    let config = match config::load_file(file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let material = match TlsMaterial::load(&config.tls) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("{} has 1 problem(s):\n  {e}", file.display());
            return ExitCode::FAILURE;
        }
    };
    let tls = server_config(&material, config.tls.min_version, config.tls.fips)
        .and_then(|_| client_config(&material, config.tls.min_version, config.tls.fips));
    if let Err(e) = tls {
        eprintln!("{} has 1 problem(s):\n  {e}", file.display());
        return ExitCode::FAILURE;
    }
    for warning in config::warnings(&config) {
        println!("WARNING: {warning}");
    }
    println!(
        "OK: {} ({} gateway(s), next hop {}, encryption {:?})",
        file.display(),
        config.gateways.len(),
        config.next_hop.address,
        config.next_hop.encryption
    );
    ExitCode::SUCCESS
}

/// The metrics endpoint's address: `addr`, or the configuration's (loopback of its family for
/// 0.0.0.0 or `::`).
fn endpoint(config: &std::path::Path, addr: Option<String>) -> Result<String, String> {
    if let Some(a) = addr {
        return Ok(a);
    }
    let c = config::load_file(config).map_err(|e| e.to_string())?;
    let mut a = c.metrics.listen;
    if a.ip().is_unspecified() {
        let loopback: std::net::IpAddr = match a.ip() {
            std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        };
        a.set_ip(loopback);
    }
    Ok(a.to_string())
}

/// One plain HTTP/1.1 request; the whole response as text.
fn http_request(addr: &str, method: &str, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let timeout = std::time::Duration::from_secs(10);
    let sock = addr
        .parse::<std::net::SocketAddr>()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut s = std::net::TcpStream::connect_timeout(&sock, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    Ok(text)
}

/// Runs one request against the metrics endpoint; success when it answers 200.
fn call_endpoint(
    what: &str,
    config: &std::path::Path,
    addr: Option<String>,
    method: &str,
    path: &str,
) -> ExitCode {
    let addr = match endpoint(config, addr) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mediation {what}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match http_request(&addr, method, path) {
        Ok(text) if text.starts_with("HTTP/1.1 200") => {
            println!("{}", text.split("\r\n\r\n").nth(1).unwrap_or("").trim());
            ExitCode::SUCCESS
        }
        Ok(text) => {
            let status = text.lines().next().unwrap_or("");
            let body = text.split("\r\n\r\n").nth(1).unwrap_or("").trim();
            eprintln!("mediation {what}: {status}: {body}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("mediation {what}: {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn health(config: &std::path::Path, addr: Option<String>) -> ExitCode {
    call_endpoint("health", config, addr, "GET", "/healthz")
}

fn reload(config: &std::path::Path, addr: Option<String>) -> ExitCode {
    call_endpoint("reload", config, addr, "POST", "/reload")
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn run(path: &std::path::Path) -> anyhow::Result<()> {
    let config = Arc::new(config::load_file(path)?);
    init_logging(&config);
    for warning in config::warnings(&config) {
        tracing::warn!("{warning}");
    }
    let rt = tokio::runtime::Runtime::new().context("cannot start the runtime")?;
    rt.block_on(async move {
        let service = Service::start(config.clone()).await?;
        tracing::info!(
            next_hop = %service.bound.next_hop,
            gateway_tls = ?service.bound.gateway_tls,
            gateway_tcp = ?service.bound.gateway_tcp,
            "mediation running"
        );
        // SIGHUP reloads certificates and CRLs; SIGTERM or Ctrl-C stops.
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("SIGHUP handler")?;
        let stop = shutdown_signal();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = hup.recv() => {
                    if let Err(e) = service.reload_tls() {
                        tracing::error!(error = %e, "TLS reload refused; keeping the material in use");
                    }
                }
            }
        }
        let drain = std::time::Duration::from_secs(config.sip.drain_timeout_secs);
        tracing::info!(drain_secs = drain.as_secs(), "stopping: draining calls");
        service.shutdown_gracefully(drain).await;
        tracing::info!("stopped");
        Ok(())
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
