//! The media plane's threads. A few OS threads (one per core by default) each relay the calls
//! given to them, all of a thread's media sockets in one level-triggered epoll set:
//!
//! ```text
//!  epoll_wait ─▶ for each ready socket: recvfrom ─▶ relay_one ─▶ sendto (once; ≤ 8 if behind)
//!       ▲                                                              │
//!       └──────────── commands (start, stop, rekey) via an eventfd ◀──┘ after the batch
//! ```
//!
//! Compared with one tokio task per call, a packet no longer costs a task wake-up and a
//! `select!` over seven futures: one `epoll_wait` serves every socket that became ready, and
//! level-triggered readiness needs no re-arming. Each thread owns its calls' SRTP contexts and
//! counters outright: nothing is shared between threads per packet but the Prometheus
//! counters, added to once a second.
//!
//! While the thread keeps up, it reads one datagram per ready socket per round: level-triggered
//! epoll reports a socket that still holds more again in the next round, and the `recvfrom`
//! that would find the socket empty (a system call per socket per round, about a sixth of the
//! per-packet cost) is never made. When a round's events fill the whole batch the thread has
//! fallen behind (it was descheduled, or the load rose), and it reads each ready socket until
//! empty, up to [`DRAIN`], so that a backlog costs no extra `epoll_wait` rounds.
//!
//! Commands are taken after a batch of events, never during one, so a slot a stopped call
//! freed cannot be handed to a new call while events for the old one are still being read.
//!
//! The rest of the process holds a call's [`RelayHandle`], which sends the call's thread its
//! commands; the relay itself ([`super::relay`]) knows nothing of threads.
//!
//! A panic while relaying (a bug: nothing on the path panics on input, and the parsers are
//! fuzzed) ends that one call's media, as it ended only that call's task before the media
//! threads: its sockets close, its ports go back to the pool, the error is logged in the call's
//! span, and the call's media timeout then ends it with a BYE. The thread's other calls go on.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use rustix::event::{epoll, eventfd, EventfdFlags, Timespec};
use rustix::io::Errno;
use tokio::sync::oneshot;
use tracing::{error, Span};

use super::leg::LegMedia;
use super::packet::Port;
use super::relay::{Rekey, Relay, DRAIN};
use super::stats::{RelayStats, Side};
use crate::metrics::Metrics;
use crate::srtp::{MasterKey, SetupError};

/// Ready sockets taken from one `epoll_wait`.
const EVENTS: usize = 256;

/// How often tallied packets are added to the Prometheus counters (and, at the latest, how
/// often a worker looks at its command queue).
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// The epoll token of a worker's wake-up eventfd; a socket's token is its call's slot, side and
/// port (see [`token`]).
const WAKE: u64 = u64::MAX;

/// The media threads. `MediaWorkers::shared` is the process's; tests and benchmarks may start
/// their own.
#[derive(Debug)]
pub struct MediaWorkers {
    workers: Vec<Arc<WorkerLink>>,
    next_id: AtomicU64,
}

/// How a relay handle and the pool reach one worker thread.
#[derive(Debug)]
pub(crate) struct WorkerLink {
    commands: mpsc::Sender<Command>,
    wake: Arc<OwnedFd>,
    /// Calls on this worker (to give a new call to the least busy one).
    pub(crate) calls: AtomicUsize,
    /// The thread's id (for CPU measurements).
    tid: i32,
}

/// What a worker is told to do.
pub(crate) enum Command {
    Start {
        id: u64,
        relay: Box<Relay>,
        span: Span,
    },
    Stop {
        id: u64,
        done: Option<oneshot::Sender<()>>,
    },
    Rekey {
        id: u64,
        rekey: Box<Rekey>,
    },
    Remote {
        id: u64,
        side: Side,
        rtp: SocketAddr,
        rtcp: Option<SocketAddr>,
    },
}

impl WorkerLink {
    /// Queues `command` and wakes the worker. A worker that has ended takes nothing (its calls
    /// ended with it).
    pub(crate) fn send(&self, command: Command) {
        if self.commands.send(command).is_ok() {
            // An eventfd counter only fails to add at u64::MAX - 1, i.e. never here; a full
            // counter would still leave the worker readable.
            let _ = rustix::io::write(&*self.wake, &1u64.to_ne_bytes());
        }
    }
}

impl MediaWorkers {
    /// Starts `threads` media threads (0: one per core the process may use), each running
    /// `on_thread_start` first.
    pub fn start(
        threads: usize,
        on_thread_start: impl Fn() + Clone + Send + 'static,
    ) -> io::Result<Self> {
        let threads = match threads {
            0 => thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let workers = (0..threads)
            .map(|n| Worker::spawn(n, on_thread_start.clone()).map(Arc::new))
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Self {
            workers,
            next_id: AtomicU64::new(1),
        })
    }

    /// Media threads for whoever has none of their own ([`super::spawn_relay`]: tests,
    /// tools), one per core the process may use, started on first use. The service starts its
    /// own, as many as `[media] threads` asks.
    pub(crate) fn shared() -> Result<&'static MediaWorkers, RelayError> {
        static SHARED: OnceLock<Result<MediaWorkers, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| MediaWorkers::start(0, || {}).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| RelayError::Workers(e.clone()))
    }

    /// Starts relaying between legs `a` and `b` on the least busy thread.
    pub fn spawn_relay(
        &self,
        a: LegMedia,
        b: LegMedia,
        metrics: &Metrics,
    ) -> Result<RelayHandle, RelayError> {
        let relay = Box::new(Relay::new(a, b, metrics)?);
        let stats = Arc::clone(relay.stats());
        let worker = self
            .workers
            .iter()
            .min_by_key(|w| w.calls.load(Ordering::Relaxed))
            .expect("at least one worker");
        worker.calls.fetch_add(1, Ordering::Relaxed);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        worker.send(Command::Start {
            id,
            relay,
            span: Span::current(),
        });
        Ok(RelayHandle::new(id, Arc::clone(worker), stats))
    }

    /// The threads' ids (`/proc/self/task/<tid>`), to measure their CPU time.
    pub fn thread_ids(&self) -> Vec<i32> {
        self.workers.iter().map(|w| w.tid).collect()
    }
}

/// The relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The media threads could not be started.
    #[error("cannot start the media threads: {0}")]
    Workers(String),
    /// An SRTP context could not be made.
    #[error(transparent)]
    Srtp(#[from] SetupError),
}

/// The running relay of one call. Dropping it stops the relay too; [`RelayHandle::stop`] also
/// waits until the sockets are closed and the ports back in the pool.
#[derive(Debug)]
pub struct RelayHandle {
    id: u64,
    worker: Arc<WorkerLink>,
    stats: Arc<RelayStats>,
    /// False once a stop was sent.
    running: bool,
}

impl RelayHandle {
    fn new(id: u64, worker: Arc<WorkerLink>, stats: Arc<RelayStats>) -> Self {
        Self {
            id,
            worker,
            stats,
            running: true,
        }
    }

    /// Packets in, out and dropped per leg, and when media last arrived.
    pub fn stats(&self) -> &Arc<RelayStats> {
        &self.stats
    }

    /// Switches an SRTP leg to new keys: what we send is protected with `tx` at once; what the
    /// peer sends is checked with `rx`, and for `REKEY_GRACE` still with the old key too, so a
    /// packet already on its way under the old key is not lost. A new key starts with a
    /// rollover counter of 0 (a fresh context), as RFC 3711 and libsrtp do.
    ///
    /// Only the context whose key changed is rebuilt. A rekey is often one-sided (the peer
    /// answers our session refresh with a new key of its own; we offered ours again): starting
    /// our unchanged key again from rollover counter 0 would protect indices a second time
    /// (keystream reuse under AES-CM, nonce reuse under GCM), and the peer, whose counter went
    /// on, would refuse everything after a wrap. Starting their unchanged key again would reset
    /// the replay window, so what they sent before could be replayed.
    pub fn rekey(&self, side: Side, tx: MasterKey, rx: MasterKey) {
        self.worker.send(Command::Rekey {
            id: self.id,
            rekey: Box::new(Rekey { side, tx, rx }),
        });
    }

    /// The leg's peer now asks for media at `rtp` (and `rtcp`, else RTCP follows RTP's rules) in
    /// a re-offer or answer: what we send goes there, and plain media is taken from that
    /// address (its port learned again from the first packet); the old latch is forgotten.
    pub fn set_remote(&self, side: Side, rtp: SocketAddr, rtcp: Option<SocketAddr>) {
        self.worker.send(Command::Remote {
            id: self.id,
            side,
            rtp,
            rtcp,
        });
    }

    /// Ends the relay and waits for it: counters flushed, sockets closed, ports returned to
    /// the pool, SRTP contexts and keys dropped (our copies of the master keys zeroed).
    pub async fn stop(mut self) {
        let (done, stopped) = oneshot::channel();
        self.send_stop(Some(done));
        // An error: the media thread has ended, and the call's sockets with it.
        let _ = stopped.await;
    }

    fn send_stop(&mut self, done: Option<oneshot::Sender<()>>) {
        if std::mem::take(&mut self.running) {
            self.worker.calls.fetch_sub(1, Ordering::Relaxed);
            self.worker.send(Command::Stop { id: self.id, done });
        }
    }
}

impl Drop for RelayHandle {
    fn drop(&mut self) {
        self.send_stop(None);
    }
}

/// Starts relaying between legs `a` and `b` on the process's media threads
/// (`MediaWorkers::shared`).
pub fn spawn_relay(a: LegMedia, b: LegMedia, metrics: &Metrics) -> Result<RelayHandle, RelayError> {
    MediaWorkers::shared()?.spawn_relay(a, b, metrics)
}

/// One call on a worker.
struct Active {
    id: u64,
    relay: Box<Relay>,
    span: Span,
}

/// A worker thread's state.
struct Worker {
    epoll: OwnedFd,
    wake: Arc<OwnedFd>,
    commands: mpsc::Receiver<Command>,
    /// Calls by slot (the slot is in their sockets' epoll tokens); `None` is free.
    slots: Vec<Option<Active>>,
    free: Vec<usize>,
    /// Slot of each call id, for commands.
    ids: HashMap<u64, usize>,
}

fn token(slot: usize, side: Side, port: Port) -> u64 {
    let port_bit = match port {
        Port::Rtp => 0,
        Port::Rtcp => 1,
    };
    ((slot as u64) << 2) | ((side.index() as u64) << 1) | port_bit
}

fn untoken(token: u64) -> (usize, Side, Port) {
    let side = if token & 2 == 0 { Side::A } else { Side::B };
    let port = if token & 1 == 0 {
        Port::Rtp
    } else {
        Port::Rtcp
    };
    ((token >> 2) as usize, side, port)
}

impl Worker {
    /// Starts worker `n`'s thread; returns once it runs.
    fn spawn(n: usize, on_thread_start: impl FnOnce() + Send + 'static) -> io::Result<WorkerLink> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let wake = Arc::new(eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?);
        epoll::add(
            &epoll,
            &*wake,
            epoll::EventData::new_u64(WAKE),
            epoll::EventFlags::IN,
        )?;
        let (commands, inbox) = mpsc::channel();
        let (started, tid) = mpsc::channel();
        let worker = Worker {
            epoll,
            wake: Arc::clone(&wake),
            commands: inbox,
            slots: Vec::new(),
            free: Vec::new(),
            ids: HashMap::new(),
        };
        thread::Builder::new()
            .name(format!("media-{n}"))
            .spawn(move || {
                on_thread_start();
                let _ = started.send(rustix::thread::gettid().as_raw_nonzero().get());
                worker.run();
            })?;
        let tid = tid
            .recv()
            .map_err(|_| io::Error::other("media thread ended at start"))?;
        Ok(WorkerLink {
            commands,
            wake,
            calls: AtomicUsize::new(0),
            tid,
        })
    }

    fn run(mut self) {
        let mut events = Vec::with_capacity(EVENTS);
        let mut buffer = Relay::buffer();
        let mut next_flush = Instant::now() + FLUSH_EVERY;
        loop {
            let wait = next_flush.saturating_duration_since(Instant::now());
            let timeout = Timespec {
                tv_sec: wait.as_secs() as i64,
                tv_nsec: i64::from(wait.subsec_nanos()),
            };
            events.clear();
            match epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(&mut events),
                Some(&timeout),
            ) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => {
                    error!(error = %e, "media thread cannot wait for its sockets; its calls lose media");
                    return;
                }
            }
            let now = Instant::now();
            let reads = if events.len() == EVENTS { DRAIN } else { 1 };
            let mut woken = false;
            for event in &events {
                let token = event.data.u64();
                if token == WAKE {
                    woken = true;
                    continue;
                }
                let (slot, side, port) = untoken(token);
                if let Some(Some(active)) = self.slots.get_mut(slot) {
                    let relayed = panic::catch_unwind(AssertUnwindSafe(|| {
                        let span = &active.span;
                        active
                            .relay
                            .receive((side, port, reads), &mut buffer, now, span)
                    }));
                    if relayed.is_err() {
                        self.end_failed(slot);
                    }
                }
            }
            let tick = now >= next_flush;
            if woken || tick {
                if woken {
                    let _ = rustix::io::read(&*self.wake, &mut [0u8; 8]);
                }
                if !self.take_commands() {
                    break;
                }
            }
            if tick {
                for active in self.slots.iter_mut().flatten() {
                    active.relay.flush();
                }
                next_flush = now + FLUSH_EVERY;
            }
        }
        // Every handle and the pool are gone: end the calls that are left.
        for active in self.slots.iter_mut().filter_map(Option::take) {
            active.relay.finish(&active.span);
        }
    }

    /// Carries out what is queued; false once nothing can ever be queued again.
    fn take_commands(&mut self) -> bool {
        loop {
            match self.commands.try_recv() {
                Ok(command) => self.command(command),
                Err(mpsc::TryRecvError::Empty) => return true,
                Err(mpsc::TryRecvError::Disconnected) => return false,
            }
        }
    }

    /// Ends the call in `slot` after its relay panicked: its state may be half updated, so it
    /// is only dropped (sockets closed, ports returned), not flushed or finished. The slot is
    /// free for a new call once this batch ends; the handle's stop finds nothing.
    fn end_failed(&mut self, slot: usize) {
        if let Some(active) = self.slots[slot].take() {
            for (_, _, socket) in active.relay.sockets() {
                let _ = epoll::delete(&self.epoll, socket);
            }
            self.ids.remove(&active.id);
            self.free.push(slot);
            active.span.in_scope(|| {
                error!("media relay failed (a bug, see the panic logged before); this call's media has ended, the media thread's other calls go on")
            });
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Start { id, relay, span } => {
                let slot = self.free.pop().unwrap_or_else(|| {
                    self.slots.push(None);
                    self.slots.len() - 1
                });
                for (side, port, socket) in relay.sockets() {
                    let data = epoll::EventData::new_u64(token(slot, side, port));
                    if let Err(e) = epoll::add(&self.epoll, socket, data, epoll::EventFlags::IN) {
                        // Only when the kernel is out of memory or of epoll watches; the
                        // call's media timeout then ends it.
                        span.in_scope(|| error!(error = %e, "media socket cannot be watched; this call gets no media"));
                    }
                }
                relay.started(&span);
                self.slots[slot] = Some(Active { id, relay, span });
                self.ids.insert(id, slot);
            }
            Command::Stop { id, done } => {
                if let Some(slot) = self.ids.remove(&id) {
                    if let Some(active) = self.slots[slot].take() {
                        for (_, _, socket) in active.relay.sockets() {
                            let _ = epoll::delete(&self.epoll, socket);
                        }
                        active.relay.finish(&active.span);
                    }
                    self.free.push(slot);
                }
                // The sockets are closed and the ports back in the pool before `done`.
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
            Command::Rekey { id, rekey } => {
                if let Some(Some(active)) = self.ids.get(&id).map(|&slot| &mut self.slots[slot]) {
                    active.relay.rekey(*rekey, &active.span);
                }
            }
            Command::Remote {
                id,
                side,
                rtp,
                rtcp,
            } => {
                if let Some(Some(active)) = self.ids.get(&id).map(|&slot| &mut self.slots[slot]) {
                    active.relay.set_remote(side, rtp, rtcp, &active.span);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};

    use super::*;
    use crate::media::{PortPool, Protection};

    const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    /// A plain RTP call between two test phones; returns the relay's gateway-side address.
    fn call(pool: &PortPool, phones: &[UdpSocket; 2]) -> (Relay, SocketAddr) {
        let [a, b] = [("gateway", &phones[0]), ("next_hop", &phones[1])].map(|(label, phone)| {
            let sockets = pool.allocate().unwrap();
            let port = SocketAddr::new(LOOPBACK, sockets.rtp_port());
            let media = LegMedia::new(label, sockets, Protection::Rtp)
                .with_rtcp_mux(true)
                .with_remote(Some(phone.local_addr().unwrap()), None);
            (media, port)
        });
        (Relay::new(a.0, b.0, &Metrics::new()).unwrap(), a.1)
    }

    fn phones() -> [UdpSocket; 2] {
        [(); 2].map(|_| {
            let phone = UdpSocket::bind((LOOPBACK, 0)).unwrap();
            phone
                .set_read_timeout(Some(Duration::from_secs(3)))
                .unwrap();
            phone
        })
    }

    const RTP: [u8; 20] = [
        0x80, 0, 0, 1, 0, 0, 0, 160, 0, 0, 0, 7, 1, 2, 3, 4, 5, 6, 7, 8,
    ];

    #[test]
    fn a_relay_that_panics_ends_its_own_call_only() {
        let workers = MediaWorkers::start(1, || {}).unwrap();
        let worker = &workers.workers[0];
        let pool = PortPool::new(LOOPBACK, 41000..=41199).unwrap();
        let (healthy_phones, buggy_phones) = (phones(), phones());
        let (healthy, healthy_port) = call(&pool, &healthy_phones);
        let (mut buggy, buggy_port) = call(&pool, &buggy_phones);
        buggy.panic_on_receive = true;
        for (id, relay) in [(1, healthy), (2, buggy)] {
            let relay = Box::new(relay);
            worker.send(Command::Start {
                id,
                relay,
                span: Span::none(),
            });
        }
        assert_eq!(pool.in_use(), 4);

        buggy_phones[0].send_to(&RTP, buggy_port).unwrap();
        let deadline = Instant::now() + Duration::from_secs(3);
        while pool.in_use() != 2 {
            assert!(
                Instant::now() < deadline,
                "the failed call's ports were not returned"
            );
            thread::sleep(Duration::from_millis(10));
        }
        // The other call on the same thread still relays, and the thread takes new calls.
        let mut buf = [0u8; 64];
        healthy_phones[0].send_to(&RTP, healthy_port).unwrap();
        let (len, _) = healthy_phones[1].recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..len], &RTP);
        let newer_phones = phones();
        let (newer, newer_port) = call(&pool, &newer_phones);
        worker.send(Command::Start {
            id: 3,
            relay: Box::new(newer),
            span: Span::none(),
        });
        newer_phones[0].send_to(&RTP, newer_port).unwrap();
        let (len, _) = newer_phones[1].recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..len], &RTP);
        // Stopping the failed call's id later is harmless and touches no other call.
        let (done, stopped) = oneshot::channel();
        worker.send(Command::Stop {
            id: 2,
            done: Some(done),
        });
        stopped.blocking_recv().unwrap();
        assert_eq!(pool.in_use(), 4, "calls 1 and 3 keep their ports");
    }

    #[test]
    fn tokens_round_trip_and_never_collide_with_wake() {
        for slot in [0, 1, 7, 1 << 40] {
            for side in [Side::A, Side::B] {
                for port in [Port::Rtp, Port::Rtcp] {
                    let t = token(slot, side, port);
                    assert_ne!(t, WAKE);
                    assert_eq!(untoken(t), (slot, side, port));
                }
            }
        }
    }
}
