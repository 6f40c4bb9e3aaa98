//! The `gateway-sim` command: `answer` calls or place them (`call`), print a short summary,
//! write the JSON report, and exit non-zero when any call or check failed (1) or the run could
//! not start (2). `bench` measures the media relay against a plain forwarder and rtpengine
//! instead (see `gateway_sim::bench`; exit 2 if it cannot run); `lab-config` prints a lab's
//! mediation configuration (`gateway_sim::lab_config`).
#![forbid(unsafe_code)]

use std::io::{IsTerminal, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use gateway_sim::{
    AnswerOptions, AnswerServer, CallOptions, Report, SrtpMode, TlsFiles, Transport,
    DEFAULT_MEDIA_IP,
};

/// Simulated PSTN gateway / internal next hop for testing the mediation appliance.
#[derive(Debug, Parser)]
#[command(name = "gateway-sim", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Answer calls: INVITE -> 100, 180, 200 with an SDP answer; media until BYE.
    Answer(AnswerArgs),
    /// Place calls: INVITE, ACK, media for --duration, BYE. Several make a load generator.
    Call(CallArgs),
    /// Demo: a throwaway PKI, the mediation service, a next hop and two gateways on loopback;
    /// calls both ways and a refused certificate, with what was encrypted and why.
    Demo,
    /// Relay benchmark: a plain UDP forwarder, the mediation relay (RTP and SRTP both ways)
    /// and rtpengine under many 50 packets/s calls; prints one table (see BENCHMARKS.md).
    Bench(gateway_sim::bench::BenchArgs),
    /// Print a lab's mediation configuration (TOML) with these values, as `demo`, the
    /// end-to-end tests and tests/lab.sh write it.
    LabConfig(gateway_sim::lab_config::LabConfigArgs),
}

#[derive(Debug, Args)]
struct Common {
    /// SRTP mode: offer, accept, refuse or require.
    #[arg(long, default_value = "offer", value_name = "MODE")]
    srtp: SrtpMode,
    /// Write the JSON report here (`-`: print it to stdout instead of the human summary).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Address for media sockets and SDP.
    #[arg(long, default_value_t = DEFAULT_MEDIA_IP, value_name = "IP")]
    media_ip: IpAddr,
    /// Our certificate chain (PEM).
    #[arg(long, value_name = "FILE")]
    cert: Option<PathBuf>,
    /// Our private key (PEM).
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// CA certificates the far end's certificate must chain to (PEM).
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Seconds to wait for a connection, a final response, an ACK or a BYE response.
    #[arg(long, default_value = "10", value_name = "SECS", value_parser = seconds)]
    timeout: Duration,
    /// Answer re-offers (re-INVITE, UPDATE) with a fresh SRTP key of ours.
    #[arg(long)]
    rekey: bool,
    /// Put each call's SRTP keys (base64) in the JSON report, for tests that check the keys
    /// appear nowhere else.
    #[arg(long)]
    report_keys: bool,
}

#[derive(Debug, Args)]
struct AnswerArgs {
    /// Address to listen on for SIP (port 0: any; the address is printed).
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
    /// MTLS: require and verify the client's certificate against --ca.
    #[arg(long)]
    tls: bool,
    /// Stop after this many calls have ended.
    #[arg(long, value_name = "N")]
    max_calls: Option<u64>,
    /// Hang up (BYE) this long after the ACK instead of waiting for the caller's BYE.
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    duration: Option<Duration>,
    /// Ring this long between 180 and 200 (a CANCEL meanwhile gets 487).
    #[arg(long, default_value = "0", value_name = "SECS", value_parser = seconds)]
    ring: Duration,
    /// The caller is a real UA, not gateway-sim: count every authentic RTP packet by its RTP
    /// sequence number instead of checking gateway-sim's marker and tone (no latency, jitter).
    #[arg(long)]
    any_payload: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct CallArgs {
    /// Where to connect: host:port.
    #[arg(long, value_name = "ADDR")]
    target: String,
    /// Request-URI and To of the INVITEs.
    #[arg(long, value_name = "SIP-URI")]
    to: String,
    /// From URI (default sip:gateway-sim@<local address>).
    #[arg(long, value_name = "SIP-URI")]
    from: Option<String>,
    /// SIP transport: tcp or tls.
    #[arg(long, default_value = "tcp", value_name = "TRANSPORT")]
    transport: Transport,
    /// Name the far end's certificate must carry (default: the host of --target).
    #[arg(long, value_name = "NAME")]
    server_name: Option<String>,
    /// Seconds of media per call before BYE.
    #[arg(long, default_value = "3", value_name = "SECS", value_parser = seconds)]
    duration: Duration,
    /// Calls to place.
    #[arg(long, default_value_t = 1, value_name = "N")]
    calls: u64,
    /// Calls in progress at once, at most.
    #[arg(long, default_value_t = 1, value_name = "M")]
    concurrency: u64,
    /// Call attempts per second, at most.
    #[arg(long, value_name = "CPS")]
    rate: Option<f64>,
    /// Put each call on hold (re-INVITE, a=sendonly) this many seconds after the ACK.
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    hold_at: Option<Duration>,
    /// Offer SRTP in Lync's dialect (MS-SDPEXT): `RTP/AVP` with `a=crypto` lines whose keys
    /// carry a lifetime and an MKI (`|2^31|1:1`), and `a=encryption:optional` (`required`
    /// with `--srtp require`).
    #[arg(long)]
    lync: bool,
    /// Resume it (re-INVITE, a=sendrecv) this many seconds after the ACK.
    #[arg(long, value_name = "SECS", value_parser = seconds, requires = "hold_at")]
    resume_at: Option<Duration>,
    /// Send an INFO with DTMF digit 5 (`application/dtmf-relay`) this many seconds after the
    /// ACK; anything but a 2xx to it fails the call.
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    info_at: Option<Duration>,
    #[command(flatten)]
    common: Common,
}

fn seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("`{text}` is not a valid duration"))
}

fn tls_files(common: &Common, wanted: bool) -> anyhow::Result<Option<TlsFiles>> {
    if !wanted {
        if common.cert.is_some() || common.key.is_some() || common.ca.is_some() {
            bail!("--cert, --key and --ca are for TLS (answer --tls, call --transport tls)");
        }
        return Ok(None);
    }
    let ca = common.ca.clone().context("TLS needs --ca")?;
    Ok(Some(TlsFiles {
        cert: common.cert.clone(),
        key: common.key.clone(),
        ca,
    }))
}

fn finish(report: &Report, path: Option<&PathBuf>) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    if path.is_some_and(|p| p.as_os_str() == "-") {
        writeln!(stdout, "{}", report.to_json())?;
    } else {
        report.write_human(&mut stdout)?;
    }
    stdout.flush()?;
    if let Some(path) = path.filter(|p| p.as_os_str() != "-") {
        report
            .write_json(path)
            .with_context(|| format!("writing the report to {}", path.display()))?;
    }
    Ok(if report.summary.calls_failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

async fn answer(args: AnswerArgs) -> anyhow::Result<ExitCode> {
    if args.tls && (args.common.cert.is_none() || args.common.key.is_none()) {
        bail!("answer --tls needs --cert, --key and --ca");
    }
    let opts = AnswerOptions {
        listen: args.listen,
        tls: tls_files(&args.common, args.tls)?,
        srtp: args.common.srtp,
        max_calls: args.max_calls,
        media_ip: args.common.media_ip,
        duration: args.duration,
        ring: args.ring,
        timeout: args.common.timeout,
        rekey: args.common.rekey,
        report_keys: args.common.report_keys,
        any_payload: args.any_payload,
    };
    let server = AnswerServer::bind(opts).await?;
    println!(
        "gateway-sim: answering on {} ({}, --srtp {})",
        server.local_addr(),
        if args.tls { "mtls" } else { "tcp" },
        args.common.srtp
    );
    std::io::stdout().flush()?;
    let report = server.run_until(shutdown_signal()).await;
    finish(&report, args.common.report.as_ref())
}

async fn call(args: CallArgs) -> anyhow::Result<ExitCode> {
    let opts = CallOptions {
        target: args.target,
        to: args.to,
        from: args.from,
        transport: args.transport,
        tls: tls_files(&args.common, args.transport == Transport::Tls)?,
        server_name: args.server_name,
        srtp: args.common.srtp,
        duration: args.duration,
        calls: args.calls,
        concurrency: args.concurrency,
        rate: args.rate,
        media_ip: args.common.media_ip,
        timeout: args.common.timeout,
        progress: std::io::stderr().is_terminal(),
        hold_at: args.hold_at,
        resume_at: args.resume_at,
        info_at: args.info_at,
        rekey: args.common.rekey,
        lync: args.lync,
        report_keys: args.common.report_keys,
    };
    let report = gateway_sim::run_calls(opts).await?;
    finish(&report, args.common.report.as_ref())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cli = match cli.command {
        // Threads of its own, no shared runtime: their CPU time is what it measures.
        Command::Bench(args) => {
            return match gateway_sim::bench::run(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("gateway-sim bench: error: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
        Command::LabConfig(args) => {
            print!("{}", gateway_sim::lab_config::render(&args.into()));
            return ExitCode::SUCCESS;
        }
        command => Cli { command },
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gateway-sim: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Answer(args) => answer(args).await,
            Command::Call(args) => call(args).await,
            Command::Bench(_) | Command::LabConfig(_) => {
                unreachable!("handled before the runtime starts")
            }
            Command::Demo => Ok(if gateway_sim::demo::run().await? {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }),
        }
    });
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gateway-sim: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
