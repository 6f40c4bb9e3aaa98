//! Row 1 of the relay benchmark: the plainest UDP forwarder there is, one thread with one
//! socket in and one out, no parsing and no crypto. What it reaches is the machine's limit
//! for moving datagrams through a process on loopback.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use socket2::SockRef;

use super::cpu::CpuClock;
use super::load::SOCKET_BUFFER;

/// The running forwarder.
#[derive(Debug)]
pub struct Forwarder {
    addr: SocketAddr,
    cpu: CpuClock,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Forwarder {
    /// Starts forwarding everything that arrives on a new loopback port to `to`.
    pub fn start(to: SocketAddr) -> io::Result<Self> {
        let input = UdpSocket::bind("127.0.0.1:0")?;
        let output = UdpSocket::bind("127.0.0.1:0")?;
        SockRef::from(&input).set_recv_buffer_size(SOCKET_BUFFER)?;
        input.set_read_timeout(Some(Duration::from_millis(50)))?;
        let addr = input.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let (clock_tx, clock_rx) = mpsc::channel();
        let thread = {
            let stop = Arc::clone(&stop);
            thread::Builder::new()
                .name("bench-forwarder".into())
                .spawn(move || {
                    let _ = clock_tx.send(CpuClock::current_thread());
                    let mut buf = [0u8; 2048];
                    while !stop.load(Ordering::Relaxed) {
                        if let Ok((len, _)) = input.recv_from(&mut buf) {
                            let _ = output.send_to(&buf[..len], to);
                        }
                    }
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
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The forwarding thread's CPU time so far.
    pub fn cpu(&self) -> io::Result<Duration> {
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
