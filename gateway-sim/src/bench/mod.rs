//! `gateway-sim bench`: the relay benchmark (issue 9). One run on this machine measures, row
//! by row, a plain UDP forwarder (the machine's limit), the mediation relay RTP→RTP,
//! SRTP→RTP and RTP→SRTP with AES_CM_128_HMAC_SHA1_80 and AEAD_AES_128_GCM, and rtpengine
//! (userspace) bridging SDES SRTP and RTP; and prints one table: packets per second per core
//! of relay CPU at the highest zero-loss load, loss at one fixed load, one-way delay
//! percentiles, and the ratios to the forwarder and to rtpengine.
//!
//! Load is many calls of 50 packets/s each (172-byte G.711 packets every 20 ms), stepped up
//! until packets are lost, as real traffic is; a single blasted stream would measure
//! something else (and trips rtpengine's flood guard).

mod cpu;
mod forwarder;
mod load;
mod ours;
mod rtpengine;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, Context};
use mediation::srtp::SrtpSuite;

use forwarder::{Forwarder, PerCallForwarder};
use load::{Flow, Generator, Plan, StepResult, CALL_PPS};
use ours::{Bridge, OurRelay};
use rtpengine::{Direction, Rtpengine};

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Row {
    /// The plain UDP forwarder.
    Forwarder,
    /// The plain forwarder with a socket pair per call.
    PerCallForwarder,
    /// The mediation relay.
    Ours(Bridge),
    /// rtpengine, userspace.
    Rtpengine(Direction),
}

impl Row {
    /// Every row, in table order.
    pub(crate) const ALL: [Row; 9] = [
        Row::Forwarder,
        Row::PerCallForwarder,
        Row::Ours(Bridge::RtpToRtp),
        Row::Ours(Bridge::SrtpToRtp(SrtpSuite::AesCm128HmacSha1_80)),
        Row::Ours(Bridge::RtpToSrtp(SrtpSuite::AesCm128HmacSha1_80)),
        Row::Ours(Bridge::SrtpToRtp(SrtpSuite::AeadAes128Gcm)),
        Row::Ours(Bridge::RtpToSrtp(SrtpSuite::AeadAes128Gcm)),
        Row::Rtpengine(Direction::SrtpToRtp),
        Row::Rtpengine(Direction::RtpToSrtp),
    ];

    /// The name `--rows` takes.
    pub(crate) fn name(self) -> &'static str {
        use SrtpSuite::{AeadAes128Gcm as Gcm, AesCm128HmacSha1_80 as Cm};
        match self {
            Row::Forwarder => "forwarder",
            Row::PerCallForwarder => "forwarder-per-call",
            Row::Ours(Bridge::RtpToRtp) => "rtp",
            Row::Ours(Bridge::SrtpToRtp(Cm)) => "srtp-rtp-cm",
            Row::Ours(Bridge::RtpToSrtp(Cm)) => "rtp-srtp-cm",
            Row::Ours(Bridge::SrtpToRtp(Gcm)) => "srtp-rtp-gcm",
            Row::Ours(Bridge::RtpToSrtp(Gcm)) => "rtp-srtp-gcm",
            Row::Ours(_) => "other",
            Row::Rtpengine(Direction::SrtpToRtp) => "rtpengine-srtp-rtp",
            Row::Rtpengine(Direction::RtpToSrtp) => "rtpengine-rtp-srtp",
        }
    }

    /// What the table says.
    pub(crate) fn label(self) -> String {
        match self {
            Row::Forwarder => "1. plain UDP forwarder (1 socket in, 1 out)".into(),
            Row::PerCallForwarder => {
                "1b. plain UDP forwarder, a socket pair per call (epoll, as the relay)".into()
            }
            Row::Ours(Bridge::RtpToRtp) => "2. mediation RTP→RTP".into(),
            Row::Ours(Bridge::SrtpToRtp(s)) => format!("3. mediation SRTP→RTP {s}"),
            Row::Ours(Bridge::RtpToSrtp(s)) => format!("3. mediation RTP→SRTP {s}"),
            Row::Rtpengine(Direction::SrtpToRtp) => {
                format!("4. rtpengine SRTP→RTP {}", rtpengine::SUITE)
            }
            Row::Rtpengine(Direction::RtpToSrtp) => {
                format!("4. rtpengine RTP→SRTP {}", rtpengine::SUITE)
            }
        }
    }

    /// The rtpengine row this row is compared with.
    fn rtpengine_peer(self) -> Row {
        match self {
            Row::Ours(Bridge::RtpToSrtp(_)) | Row::Rtpengine(Direction::RtpToSrtp) => {
                Row::Rtpengine(Direction::RtpToSrtp)
            }
            _ => Row::Rtpengine(Direction::SrtpToRtp),
        }
    }
}

impl FromStr for Row {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Row::ALL.into_iter().find(|r| r.name() == s).ok_or_else(|| {
            let names: Vec<_> = Row::ALL.iter().map(|r| r.name()).collect();
            format!("unknown row {s:?}; rows: {}", names.join(", "))
        })
    }
}

/// Options of `gateway-sim bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Rows to measure (default: all): forwarder, rtp, srtp-rtp-cm, rtp-srtp-cm, srtp-rtp-gcm,
    /// rtp-srtp-gcm, rtpengine-srtp-rtp, rtpengine-rtp-srtp.
    #[arg(long, value_delimiter = ',', value_name = "ROW,...")]
    pub(crate) rows: Vec<Row>,
    /// Loads to step through, in calls of 50 packets/s each; a row stops at the first step
    /// that, tried twice, loses packets or delays the median packet over 20 ms.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "500,1000,1500,2000,2500,3000",
        value_name = "N,..."
    )]
    pub(crate) calls: Vec<usize>,
    /// The fixed load every row's loss and delay are reported at, in calls.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub(crate) fixed_calls: usize,
    /// Measured seconds per step.
    #[arg(long, default_value = "3", value_name = "SECS", value_parser = seconds)]
    pub(crate) duration: Duration,
    /// Seconds of traffic before each step's measurement starts.
    #[arg(long, default_value = "1", value_name = "SECS", value_parser = seconds)]
    pub(crate) warmup: Duration,
    /// Leave out the rtpengine rows (without this, a missing rtpengine is an error).
    #[arg(long)]
    pub(crate) skip_rtpengine: bool,
    /// The rtpengine binary.
    #[arg(long, default_value = "rtpengine", value_name = "PATH")]
    pub(crate) rtpengine: String,
    /// Where rtpengine's log goes (default: rtpengine-bench.log in the temporary directory).
    #[arg(long, value_name = "FILE")]
    pub(crate) rtpengine_log: Option<PathBuf>,
}

fn seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s.parse().map_err(|e| format!("{e}"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())
}

/// What one row measured.
#[derive(Debug, Clone)]
pub(crate) struct RowResult {
    /// The row.
    pub(crate) row: Row,
    /// The highest sustained step (zero loss, median delay within 20 ms) that the generator
    /// offered evenly (if none did, the highest sustained one).
    pub(crate) best: Option<StepResult>,
    /// True when `best` is the highest step tried (the limit is above it).
    pub(crate) best_is_highest: bool,
    /// The step at the fixed load.
    pub(crate) fixed: StepResult,
}

impl RowResult {
    /// Packets per second per core at the best zero-loss step.
    pub(crate) fn pps_per_core(&self) -> Option<f64> {
        self.best.as_ref().map(|b| b.pps() / b.cores().max(1e-9))
    }
}

/// The relay a row drives.
enum Target {
    Forwarder(Forwarder),
    PerCall(PerCallForwarder),
    Ours(Box<OurRelay>, Bridge),
    Rtpengine(Rtpengine, Direction),
}

impl Target {
    fn setup(&mut self, calls: usize, generator: &Generator) -> anyhow::Result<Vec<Flow>> {
        let (sender, receiver) = (generator.sender_addr()?, generator.receiver_addr()?);
        match self {
            Target::Forwarder(f) => Ok(vec![
                Flow {
                    dest: f.addr(),
                    send_key: None,
                    recv_key: None
                };
                calls
            ]),
            Target::PerCall(f) => Ok(f
                .setup(calls)?
                .into_iter()
                .map(|dest| Flow {
                    dest,
                    send_key: None,
                    recv_key: None,
                })
                .collect()),
            Target::Ours(relay, bridge) => relay.setup(calls, *bridge, sender, receiver),
            Target::Rtpengine(engine, direction) => {
                engine.setup(calls, *direction, sender, receiver)
            }
        }
    }

    fn teardown(&mut self) -> anyhow::Result<()> {
        match self {
            Target::Forwarder(_) => Ok(()),
            Target::PerCall(f) => {
                f.teardown();
                Ok(())
            }
            Target::Ours(relay, _) => relay.teardown(),
            Target::Rtpengine(engine, _) => engine.teardown(),
        }
    }

    fn cpu(&self) -> std::io::Result<Duration> {
        match self {
            Target::Forwarder(f) => f.cpu(),
            Target::PerCall(f) => f.cpu(),
            Target::Ours(relay, _) => relay.cpu(),
            Target::Rtpengine(engine, _) => engine.cpu(),
        }
    }
}

/// Runs the benchmark and prints the table on stdout (progress on stderr).
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let mut rows = if args.rows.is_empty() {
        Row::ALL.to_vec()
    } else {
        args.rows.clone()
    };
    if args.skip_rtpengine {
        rows.retain(|r| !matches!(r, Row::Rtpengine(_)));
    }
    let mut steps = args.calls.clone();
    steps.retain(|&n| n > 0);
    steps.sort_unstable();
    steps.dedup();
    if steps.is_empty() || args.fixed_calls == 0 {
        bail!("no load to measure: --calls and --fixed-calls must be above 0");
    }
    let plan = Plan {
        warmup: args.warmup,
        measure: args.duration,
        cooldown: Duration::from_millis(300),
    };
    let generator = Generator::bind()?;
    let mut bench = Bench {
        generator,
        plan,
        step_no: 0,
    };
    // Started once, used by every row that needs it.
    let mut ours: Option<Box<OurRelay>> = None;
    let mut engine: Option<Rtpengine> = None;
    let mut results = Vec::new();
    eprintln!(
        "relay benchmark: {} row(s), steps {:?} calls (x{CALL_PPS} packets/s), fixed load {} calls, {:?} per step",
        rows.len(),
        steps,
        args.fixed_calls,
        args.duration
    );
    for row in rows {
        let mut target = match row {
            Row::Forwarder => {
                Target::Forwarder(Forwarder::start(bench.generator.receiver_addr()?)?)
            }
            Row::PerCallForwarder => {
                Target::PerCall(PerCallForwarder::new(bench.generator.receiver_addr()?))
            }
            Row::Ours(bridge) => Target::Ours(
                match ours.take() {
                    Some(relay) => relay,
                    None => Box::new(OurRelay::start()?),
                },
                bridge,
            ),
            Row::Rtpengine(direction) => Target::Rtpengine(
                match engine.take() {
                    Some(engine) => engine,
                    None => Rtpengine::start(
                        &args.rtpengine,
                        args.rtpengine_log
                            .clone()
                            .unwrap_or_else(|| std::env::temp_dir().join("rtpengine-bench.log")),
                    )
                    .context("rtpengine rows need rtpengine (or pass --skip-rtpengine)")?,
                },
                direction,
            ),
        };
        eprintln!("== {}", row.label());
        let result = bench.row(row, &mut target, &steps, args.fixed_calls)?;
        results.push(result);
        match target {
            Target::Forwarder(_) | Target::PerCall(_) => {}
            Target::Ours(relay, _) => ours = Some(relay),
            Target::Rtpengine(e, _) => engine = Some(e),
        }
    }
    print!("{}", table(&results, &args));
    Ok(())
}

/// A step whose sender ran later than this behind schedule did not offer the load evenly
/// (the machine was busy): it is tried again, and flagged in the table if it stays so.
const MAX_LAG: Duration = Duration::from_millis(20);

/// A relay keeps up with a load when it loses nothing and relays the typical packet before the
/// call's next one is sent (median delay within one 20 ms packet interval). With thousands of
/// sockets, each with its own kernel buffer, an overloaded relay can go on "losing nothing"
/// with packets hundreds of milliseconds late; those steps do not count.
const MAX_MEDIAN_DELAY_US: f64 = 20_000.0;

fn sustained(r: &StepResult) -> bool {
    r.lost() == 0 && r.delay_us(0.5).is_some_and(|d| d <= MAX_MEDIAN_DELAY_US)
}

struct Bench {
    generator: Generator,
    plan: Plan,
    step_no: u32,
}

impl Bench {
    fn step(&mut self, target: &mut Target, calls: usize) -> anyhow::Result<StepResult> {
        self.step_no += 1;
        let ssrc_base = 0x4000_0000u32.wrapping_add(self.step_no << 16);
        let flows = target.setup(calls, &self.generator)?;
        let cpu = || target.cpu();
        let result = self.generator.run_step(&flows, ssrc_base, self.plan, &cpu);
        target.teardown()?;
        let r = result?;
        eprintln!(
            "   {:>5} calls {:>7.0} pps offered: sent {:>7} received {:>7} lost {:>5} (auth failures {}), buffer drops: generator's socket {} elsewhere {}; relay {:.3} cores, {:>8.0} pps/core, p50 {:>7.1} µs p99 {:>8.1} µs, sender late by {:.1} ms at worst",
            r.calls,
            r.offered_pps(),
            r.sent,
            r.received,
            r.lost(),
            r.auth_failures,
            r.drops_at_receiver,
            r.drops_elsewhere,
            r.cores(),
            r.pps() / r.cores().max(1e-9),
            r.delay_us(0.5).unwrap_or(f64::NAN),
            r.delay_us(0.99).unwrap_or(f64::NAN),
            r.sender_lag.as_secs_f64() * 1e3,
        );
        Ok(r)
    }

    /// Steps up the load until it loses packets (a lossy step is tried twice), then measures
    /// the fixed load if no step did.
    fn row(
        &mut self,
        row: Row,
        target: &mut Target,
        steps: &[usize],
        fixed_calls: usize,
    ) -> anyhow::Result<RowResult> {
        let mut best: Option<StepResult> = None;
        let mut fixed: Option<StepResult> = None;
        let mut best_is_highest = false;
        for (i, &calls) in steps.iter().enumerate() {
            let mut r = self.step(target, calls)?;
            if !sustained(&r) || r.sender_lag > MAX_LAG {
                eprintln!(
                    "   {}; once more",
                    if r.lost() > 0 {
                        "lost packets"
                    } else if !sustained(&r) {
                        "packets queue up (median delay over 20 ms)"
                    } else {
                        "the generator fell behind"
                    }
                );
                let again = self.step(target, calls)?;
                let better = match (sustained(&again), sustained(&r)) {
                    (true, false) => true,
                    (false, true) => false,
                    _ => (again.lost(), again.sender_lag) < (r.lost(), r.sender_lag),
                };
                if better {
                    r = again;
                }
            }
            if calls == fixed_calls {
                fixed = Some(r.clone());
            }
            if !sustained(&r) {
                break;
            }
            // A step offered in bursts (†) is only the best while no evenly offered step is:
            // its pps per core is flattered by the batching a backlog allows.
            let even = r.sender_lag <= MAX_LAG;
            if even || best.as_ref().is_none_or(|b| b.sender_lag > MAX_LAG) {
                best = Some(r);
                best_is_highest = i + 1 == steps.len();
            } else {
                eprintln!("   (sustained, but offered in bursts: the table keeps the step before)");
            }
        }
        let fixed = match fixed {
            Some(f) => f,
            None => {
                eprintln!("   fixed load:");
                self.step(target, fixed_calls)?
            }
        };
        Ok(RowResult {
            row,
            best,
            best_is_highest,
            fixed,
        })
    }
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "?".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| k.trim().to_owned())
        .unwrap_or_else(|_| "?".into());
    format!("{cores} CPU(s), {model}, Linux {kernel}")
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "—".into(),
    }
}

/// The table and the goals, as Markdown.
fn table(results: &[RowResult], args: &BenchArgs) -> String {
    let pps_of = |row: Row| {
        results
            .iter()
            .find(|r| r.row == row)
            .and_then(RowResult::pps_per_core)
    };
    let forwarder = pps_of(Row::Forwarder);
    let mut out = String::new();
    let _ = writeln!(out, "Machine: {}", machine());
    let _ = writeln!(
        out,
        "Load: calls of {CALL_PPS} packets/s (172-byte G.711 RTP, 20 ms), one generator thread \
         sending and one receiving on loopback, sharing the CPUs with the relay; \
         {:?} measured per step after {:?} of warm-up. Relay CPU: the relay thread's \
         (mediation: one media thread; forwarder: its thread) or the whole \
         rtpengine process's (--num-threads=1, userspace, --table=-1), from /proc.",
        args.duration, args.warmup
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| row | highest sustained load (calls / pps) | relay CPU (cores) | pps per core | × row 1 | × rtpengine | loss at {n} calls ({} pps) | pps per core at {n} calls | p50 / p99 / p99.9 delay at {n} calls (µs) |",
        args.fixed_calls as u64 * CALL_PPS,
        n = args.fixed_calls,
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    for r in results {
        let lagged = |s: &StepResult| if s.sender_lag > MAX_LAG { " †" } else { "" };
        let load = match &r.best {
            Some(b) => format!(
                "{}{} / {:.0}{}",
                if r.best_is_highest { "≥" } else { "" },
                b.calls,
                b.pps(),
                lagged(b)
            ),
            None => format!(
                "none (lost at {} calls)",
                args.calls.iter().min().unwrap_or(&0)
            ),
        };
        let cores = r
            .best
            .as_ref()
            .map_or("—".into(), |b| format!("{:.3}", b.cores()));
        let pps = r.pps_per_core().map_or("—".into(), |p| format!("{p:.0}"));
        let delay = |q| {
            r.fixed
                .delay_us(q)
                .map_or("—".into(), |d| format!("{d:.0}"))
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {:.4} % ({} of {}){} | {:.0} | {} / {} / {} |",
            r.row.label(),
            load,
            cores,
            pps,
            ratio(r.pps_per_core(), forwarder),
            ratio(r.pps_per_core(), pps_of(r.row.rtpengine_peer())),
            r.fixed.loss() * 100.0,
            r.fixed.lost(),
            r.fixed.sent,
            lagged(&r.fixed),
            r.fixed.pps() / r.fixed.cores().max(1e-9),
            delay(0.5),
            delay(0.99),
            delay(0.999),
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "× rtpengine compares with rtpengine in the same direction (RTP→SRTP rows with its \
         RTP→SRTP row, the others with its SRTP→RTP row). \
         † the generator ran over {} ms behind its schedule in that step (the machine was \
         busy): packets came in bursts, which flatters pps per core and inflates delay. \
         A row's sustained load is the highest step with zero loss and a median delay within \
         20 ms (one packet interval) that was offered evenly (a † step only when none was); \
         pps per core is measured there. ≥ the highest load tried lost nothing (the relay's \
         limit is higher). A packet that arrives over 0.5 s after the window closes counts \
         as lost.",
        MAX_LAG.as_millis()
    );
    let srtp_rows: Vec<&RowResult> = results
        .iter()
        .filter(|r| {
            matches!(
                r.row,
                Row::Ours(Bridge::SrtpToRtp(_)) | Row::Ours(Bridge::RtpToSrtp(_))
            )
        })
        .collect();
    let goal = |name: &str, target: f64, base: &dyn Fn(&RowResult) -> Option<f64>| {
        let mut line = format!("Goal: SRTP↔RTP relay ≥ {target}× {name} pps/core: ");
        let mut all = !srtp_rows.is_empty();
        let parts: Vec<String> = srtp_rows
            .iter()
            .map(|r| {
                let x = match (r.pps_per_core(), base(r)) {
                    (Some(a), Some(b)) if b > 0.0 => Some(a / b),
                    _ => None,
                };
                all &= x.is_some_and(|x| x >= target);
                format!(
                    "{} {}",
                    r.row.name(),
                    x.map_or("—".into(), |x| format!("{x:.2}×"))
                )
            })
            .collect();
        line.push_str(&parts.join(", "));
        let measured = !srtp_rows.is_empty()
            && srtp_rows
                .iter()
                .all(|r| r.pps_per_core().is_some() && base(r).is_some());
        line.push_str(match (measured, all) {
            (false, _) => " — NOT MEASURED (rows missing from this run)",
            (true, true) => " — MET",
            (true, false) => " — NOT MET",
        });
        line
    };
    let _ = writeln!(out);
    let _ = writeln!(out, "{}", goal("plain forwarder", 0.85, &|_| forwarder));
    let _ = writeln!(
        out,
        "{}",
        goal("rtpengine userspace", 2.0, &|r| pps_of(
            r.row.rtpengine_peer()
        ))
    );
    out
}
