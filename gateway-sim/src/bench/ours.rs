//! The mediation relay under test: `MediaWorkers::spawn_relay` for every call, on one media
//! thread of its own, so that its CPU time (and nothing of the load generator's) can be read
//! from `/proc`.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use mediation::media::{LegMedia, MediaWorkers, PortPool, Protection, RelayHandle};
use mediation::metrics::Metrics;
use mediation::srtp::{MasterKey, SrtpSuite};

use super::cpu::CpuClock;
use super::load::Flow;

/// Media ports of the relay under test (rtpengine gets 40000 and up).
const PORTS: std::ops::RangeInclusive<u16> = 20000..=39999;

/// Which way media is bridged, as in the table's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bridge {
    /// Plain RTP on both legs.
    RtpToRtp,
    /// SRTP in (the generator protects), RTP out.
    SrtpToRtp(SrtpSuite),
    /// RTP in, SRTP out (the generator unprotects).
    RtpToSrtp(SrtpSuite),
}

/// The relay's thread and its calls.
pub(crate) struct OurRelay {
    pool: PortPool,
    cpu: CpuClock,
    metrics: Metrics,
    relays: Vec<RelayHandle>,
    /// Waits for stopped relays (`RelayHandle::stop` is async).
    runtime: tokio::runtime::Runtime,
    // Last: the thread ends once the handles above are gone.
    workers: MediaWorkers,
}

impl OurRelay {
    /// Starts the relay's thread, with no calls yet.
    pub(crate) fn start() -> anyhow::Result<Self> {
        let pool = PortPool::new(IpAddr::V4(Ipv4Addr::LOCALHOST), PORTS)?;
        let workers = MediaWorkers::start(1, || {})?;
        let tid = workers.thread_ids()[0];
        let cpu = CpuClock::Thread(PathBuf::from(format!("/proc/self/task/{tid}/schedstat")));
        cpu.read()?;
        Ok(Self {
            pool,
            cpu,
            metrics: Metrics::new(),
            relays: Vec::new(),
            runtime: tokio::runtime::Builder::new_current_thread().build()?,
            workers,
        })
    }

    /// The relay thread's CPU time so far.
    pub(crate) fn cpu(&self) -> io::Result<Duration> {
        self.cpu.read()
    }

    /// Starts `calls` relays bridging `bridge`; returns what the generator needs per call.
    pub(crate) fn setup(
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
        for (a, b) in legs {
            let relay = self
                .workers
                .spawn_relay(a, b, &self.metrics)
                .context("spawn_relay")?;
            self.relays.push(relay);
        }
        Ok(flows)
    }

    /// Stops every call's relay and waits until their ports are free.
    pub(crate) fn teardown(&mut self) -> anyhow::Result<()> {
        for relay in self.relays.drain(..) {
            self.runtime.block_on(relay.stop());
        }
        Ok(())
    }
}

fn flow(dest: SocketAddr, send_key: Option<MasterKey>, recv_key: Option<MasterKey>) -> Flow {
    Flow {
        dest,
        send_key,
        recv_key,
    }
}
