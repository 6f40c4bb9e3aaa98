//! Rows 1 and 1b of the relay benchmark: the plainest UDP forwarder there is, one thread with
//! one socket in and one out, no parsing and no crypto — what it reaches is the machine's limit
//! for moving datagrams through a process on loopback — and the same with a socket pair per
//! call, as the mediation relay has.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use rustix::event::epoll;
use socket2::SockRef;

use super::cpu::CpuClock;
use super::load::SOCKET_BUFFER;

/// The running forwarder.
#[derive(Debug)]
pub(crate) struct Forwarder {
    addr: SocketAddr,
    cpu: CpuClock,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Forwarder {
    /// Starts forwarding everything that arrives on a new loopback port to `to`.
    pub(crate) fn start(to: SocketAddr) -> io::Result<Self> {
        let input = UdpSocket::bind("127.0.0.1:0")?;
        let output = UdpSocket::bind("127.0.0.1:0")?;
        SockRef::from(&input).set_recv_buffer_size(SOCKET_BUFFER)?;
        input.set_read_timeout(Some(Duration::from_millis(50)))?;
        let addr = input.local_addr()?;
        Self::spawn("bench-forwarder", addr, move |stop| {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((len, _)) = input.recv_from(&mut buf) {
                    let _ = output.send_to(&buf[..len], to);
                }
            }
        })
    }

    /// Runs `forward` on a thread named `name`, receiving at `addr`, until the returned
    /// forwarder drops (`forward` must look at its flag at least every 50 ms).
    fn spawn(
        name: &str,
        addr: SocketAddr,
        forward: impl FnOnce(&AtomicBool) + Send + 'static,
    ) -> io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let (clock_tx, clock_rx) = mpsc::channel();
        let thread = {
            let stop = Arc::clone(&stop);
            thread::Builder::new().name(name.into()).spawn(move || {
                let _ = clock_tx.send(CpuClock::current_thread());
                forward(&stop);
            })?
        };
        let cpu = clock_rx
            .recv()
            .map_err(|_| io::Error::other("forwarder thread ended"))??;
        Ok(Self {
            addr,
            cpu,
            stop,
            thread: Some(thread),
        })
    }

    /// Where to send.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The forwarding thread's CPU time so far.
    pub(crate) fn cpu(&self) -> io::Result<Duration> {
        self.cpu.read()
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Row 1b: the same plain forwarding, but with the relay's socket layout: a socket pair per
/// call (one in, one out), all in one level-triggered epoll set, each ready socket read once per
/// round, or until empty (at most 8) when a round's events fill the batch — what the mediation
/// relay does, minus everything it does per packet. The gap between rows 1 and 1b is the cost
/// of thousands of sockets; the gap between 1b and 2 is the relay's own.
#[derive(Debug)]
pub(crate) struct PerCallForwarder {
    to: SocketAddr,
    running: Option<Forwarder>,
}

impl PerCallForwarder {
    /// No calls yet: [`PerCallForwarder::setup`] starts a thread for each step.
    pub(crate) fn new(to: SocketAddr) -> Self {
        Self { to, running: None }
    }

    /// Starts forwarding for `calls` calls; returns each call's address to send to.
    pub(crate) fn setup(&mut self, calls: usize) -> io::Result<Vec<SocketAddr>> {
        self.teardown();
        let pairs = (0..calls)
            .map(|_| {
                let input = UdpSocket::bind("127.0.0.1:0")?;
                input.set_nonblocking(true)?;
                Ok((input, UdpSocket::bind("127.0.0.1:0")?))
            })
            .collect::<io::Result<Vec<_>>>()?;
        let addrs = pairs
            .iter()
            .map(|(input, _)| input.local_addr())
            .collect::<io::Result<Vec<_>>>()?;
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        for (n, (input, _)) in pairs.iter().enumerate() {
            let data = epoll::EventData::new_u64(n as u64);
            epoll::add(&epoll, input, data, epoll::EventFlags::IN)?;
        }
        let to = self.to;
        let first = addrs.first().copied().unwrap_or(to);
        let forwarder = Forwarder::spawn("bench-per-call", first, move |stop| {
            let mut events = Vec::with_capacity(256);
            let mut buf = [0u8; 2048];
            let timeout = rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: 50_000_000,
            };
            while !stop.load(Ordering::Relaxed) {
                events.clear();
                if epoll::wait(
                    &epoll,
                    rustix::buffer::spare_capacity(&mut events),
                    Some(&timeout),
                )
                .is_err()
                {
                    continue;
                }
                let reads = if events.len() == events.capacity() {
                    8
                } else {
                    1
                };
                for event in &events {
                    let (input, output) = &pairs[event.data.u64() as usize];
                    for _ in 0..reads {
                        match input.recv_from(&mut buf) {
                            Ok((len, _)) => {
                                let _ = output.send_to(&buf[..len], to);
                            }
                            Err(_) => break,
                        }
                    }
                }
            }
        })?;
        self.running = Some(forwarder);
        Ok(addrs)
    }

    /// Stops the step's thread and closes its sockets.
    pub(crate) fn teardown(&mut self) {
        self.running = None;
    }

    /// The forwarding thread's CPU time so far (zero between steps).
    pub(crate) fn cpu(&self) -> io::Result<Duration> {
        match &self.running {
            Some(forwarder) => forwarder.cpu(),
            None => Ok(Duration::ZERO),
        }
    }
}
