//! The mediation relay under test: `mediation::media::spawn_relay` for every call, on a
//! current-thread tokio runtime of its own thread, so that its CPU time (and nothing of the
//! load generator's) can be read from `/proc`.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::mpsc as std_mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use anyhow::{anyhow, Context};
use mediation::media::{spawn_relay, LegMedia, PortPool, Protection, RelayHandle};
use mediation::metrics::Metrics;
use mediation::srtp::{MasterKey, SrtpSuite};
use tokio::sync::mpsc;

use super::cpu::CpuClock;
use super::load::Flow;

/// Media ports of the relay under test (rtpengine gets 40000 and up).
const PORTS: std::ops::RangeInclusive<u16> = 20000..=39999;

/// Which way media is bridged, as in the table's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bridge {
    /// Plain RTP on both legs.
    RtpToRtp,
    /// SRTP in (the generator protects), RTP out.
    SrtpToRtp(SrtpSuite),
    /// RTP in, SRTP out (the generator unprotects).
    RtpToSrtp(SrtpSuite),
}

enum Command {
    Start(
        Vec<(LegMedia, LegMedia)>,
        std_mpsc::Sender<anyhow::Result<()>>,
    ),
    StopAll(std_mpsc::Sender<()>),
}

/// The relay's thread and its calls.
#[derive(Debug)]
pub struct OurRelay {
    pool: PortPool,
    cpu: CpuClock,
    commands: Option<mpsc::UnboundedSender<Command>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

impl OurRelay {
    /// Starts the relay's thread and runtime, with no calls yet.
    pub fn start() -> anyhow::Result<Self> {
        let pool = PortPool::new(IpAddr::V4(Ipv4Addr::LOCALHOST), PORTS)?;
        let (commands, mut inbox) = mpsc::unbounded_channel::<Command>();
        let (clock_tx, clock_rx) = std_mpsc::channel();
        let thread = thread::Builder::new()
            .name("bench-relay".into())
            .spawn(move || {
                let _ = clock_tx.send(CpuClock::current_thread());
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(_) => return,
                };
                runtime.block_on(async move {
                    let metrics = Metrics::new();
                    let mut relays: Vec<RelayHandle> = Vec::new();
                    while let Some(command) = inbox.recv().await {
                        match command {
                            Command::Start(calls, done) => {
                                let mut result = Ok(());
                                for (a, b) in calls {
                                    match spawn_relay(a, b, &metrics) {
                                        Ok(relay) => relays.push(relay),
                                        Err(e) => {
                                            result = Err(anyhow!("spawn_relay: {e}"));
                                            break;
                                        }
                                    }
                                }
                                let _ = done.send(result);
                            }
                            Command::StopAll(done) => {
                                for relay in relays.drain(..) {
                                    relay.stop().await;
                                }
                                let _ = done.send(());
                            }
                        }
                    }
                });
            })?;
        let cpu = clock_rx
            .recv()
            .map_err(|_| anyhow!("relay thread ended"))??;
        Ok(Self {
            pool,
            cpu,
            commands: Some(commands),
            thread: Some(thread),
        })
    }

    /// The relay thread's CPU time so far.
    pub fn cpu(&self) -> io::Result<Duration> {
        self.cpu.read()
    }

    /// Starts `calls` relays bridging `bridge`; returns what the generator needs per call.
    pub fn setup(
        &mut self,
        calls: usize,
        bridge: Bridge,
        sender: SocketAddr,
        receiver: SocketAddr,
    ) -> anyhow::Result<Vec<Flow>> {
        let mut legs = Vec::with_capacity(calls);
        let mut flows = Vec::with_capacity(calls);
        for _ in 0..calls {
            let a_sockets = self.pool.allocate().context("media ports for leg A")?;
            let b_sockets = self.pool.allocate().context("media ports for leg B")?;
            let dest = SocketAddr::new(self.pool.bind_ip(), a_sockets.rtp_port());
            let (a, b, flow) = match bridge {
                Bridge::RtpToRtp => (Protection::Rtp, Protection::Rtp, flow(dest, None, None)),
                Bridge::SrtpToRtp(suite) => {
                    let theirs = MasterKey::generate(suite)?;
                    let a = Protection::Srtp {
                        tx: MasterKey::generate(suite)?,
                        rx: theirs.clone(),
                    };
                    (a, Protection::Rtp, flow(dest, Some(theirs), None))
                }
                Bridge::RtpToSrtp(suite) => {
                    let ours = MasterKey::generate(suite)?;
                    let b = Protection::Srtp {
                        tx: ours.clone(),
                        rx: MasterKey::generate(suite)?,
                    };
                    (Protection::Rtp, b, flow(dest, None, Some(ours)))
                }
            };
            let a = LegMedia::new("gateway", a_sockets, a)
                .with_remote(Some(sender), None)
                .with_rtcp_mux(true);
            let b = LegMedia::new("next_hop", b_sockets, b)
                .with_remote(Some(receiver), None)
                .with_rtcp_mux(true);
            legs.push((a, b));
            flows.push(flow);
        }
        let (done, wait) = std_mpsc::channel();
        self.send(Command::Start(legs, done))?;
        wait.recv().map_err(|_| anyhow!("relay thread ended"))??;
        Ok(flows)
    }

    /// Stops every call's relay and waits until their ports are free.
    pub fn teardown(&mut self) -> anyhow::Result<()> {
        let (done, wait) = std_mpsc::channel();
        self.send(Command::StopAll(done))?;
        wait.recv().map_err(|_| anyhow!("relay thread ended"))
    }

    fn send(&self, command: Command) -> anyhow::Result<()> {
        self.commands
            .as_ref()
            .and_then(|c| c.send(command).ok())
            .ok_or_else(|| anyhow!("relay thread ended"))
    }
}

fn flow(dest: SocketAddr, send_key: Option<MasterKey>, recv_key: Option<MasterKey>) -> Flow {
    Flow {
        dest,
        send_key,
        recv_key,
    }
}

impl Drop for OurRelay {
    fn drop(&mut self) {
        // Closing the channel ends the runtime's loop; dropped handles stop their relays.
        self.commands.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
