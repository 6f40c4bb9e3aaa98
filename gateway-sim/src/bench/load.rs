//! The load generator of the relay benchmark: one thread sends every call's G.711 stream
//! (172-byte RTP packets, 50 per second per call, the calls spread evenly over each 20 ms
//! tick) from one socket; another thread receives them all on one socket, checks (and for SRTP
//! unprotects) them and measures the one-way delay stamped into each payload.
//!
//! Packets sent during the measuring window carry a mark, so packets still in flight when the
//! window closes are neither lost nor counted twice.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use mediation::srtp::{MasterKey, Protector, ReplayWindow, Unprotector, MAX_TRAILER_LEN};
use socket2::SockRef;

/// One packet every 20 ms per call.
pub(crate) const TICK: Duration = Duration::from_millis(20);
/// Packets per second of one call.
pub(crate) const CALL_PPS: u64 = 50;
/// RTP header plus 160 bytes of PCMU.
const PACKET_LEN: usize = 172;
const RTP_HEADER: usize = 12;
/// The tick is cut into this many slots; each call sends in one of them.
const SLOTS: usize = 20;
/// Socket buffers of the generator and the plain forwarder (the most `rmem_max` allows).
pub(crate) const SOCKET_BUFFER: usize = 4 << 20;

/// Marks in the payload: which part of the step a packet was sent in.
const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const COOLDOWN: u8 = 2;

/// One call as the generator drives it: where its packets go, and the SRTP keys of the sending
/// and receiving side if those are SRTP.
#[derive(Debug, Clone)]
pub(crate) struct Flow {
    /// The relay's port for this call's sending side.
    pub(crate) dest: SocketAddr,
    /// Protect what we send with this key (an SRTP→RTP row).
    pub(crate) send_key: Option<MasterKey>,
    /// Unprotect what we receive with this key (an RTP→SRTP row).
    pub(crate) recv_key: Option<MasterKey>,
}

/// How long each part of one step lasts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// Sent, not counted: latching, first packets, caches.
    pub(crate) warmup: Duration,
    /// Counted; the relay's CPU is read at its start and end.
    pub(crate) measure: Duration,
    /// Sent after the window, so the relay stays loaded until the last marked packet is out.
    pub(crate) cooldown: Duration,
}

/// What one step measured.
#[derive(Debug, Clone, Default)]
pub(crate) struct StepResult {
    /// Calls (each 50 packets/s one way).
    pub(crate) calls: usize,
    /// Marked packets sent.
    pub(crate) sent: u64,
    /// Marked packets received intact (for SRTP: unprotected).
    pub(crate) received: u64,
    /// Packets that failed SRTP authentication at the receiver (any part of the step).
    pub(crate) auth_failures: u64,
    /// The measuring window as it was.
    pub(crate) window: Duration,
    /// Relay CPU time during the window.
    pub(crate) cpu: Duration,
    /// How late the sender was at worst against its schedule.
    pub(crate) sender_lag: Duration,
    /// One-way delays of the marked packets, sorted, in nanoseconds.
    pub(crate) delays: Vec<u64>,
    /// Datagrams the kernel dropped for a full buffer at our receiving socket during the step
    /// (the generator fell behind, not the relay).
    pub(crate) drops_at_receiver: u64,
    /// The same at every other UDP socket (the relay's, mostly).
    pub(crate) drops_elsewhere: u64,
}

impl StepResult {
    /// Packets per second offered.
    pub(crate) fn offered_pps(&self) -> f64 {
        (self.calls as u64 * CALL_PPS) as f64
    }

    /// Packets per second received during the window.
    pub(crate) fn pps(&self) -> f64 {
        self.received as f64 / self.window.as_secs_f64()
    }

    /// Relay CPU in cores (1.0 = one core busy the whole window).
    pub(crate) fn cores(&self) -> f64 {
        self.cpu.as_secs_f64() / self.window.as_secs_f64()
    }

    /// Marked packets lost, plus authentication failures.
    pub(crate) fn lost(&self) -> u64 {
        self.sent.saturating_sub(self.received) + self.auth_failures
    }

    /// Fraction of the marked packets lost.
    pub(crate) fn loss(&self) -> f64 {
        if self.sent == 0 {
            return 1.0;
        }
        self.lost() as f64 / self.sent as f64
    }

    /// The delay below which `q` (0..1) of the packets were, in microseconds.
    pub(crate) fn delay_us(&self, q: f64) -> Option<f64> {
        if self.delays.is_empty() {
            return None;
        }
        let rank = ((self.delays.len() as f64 * q).ceil() as usize).clamp(1, self.delays.len());
        Some(self.delays[rank - 1] as f64 / 1000.0)
    }
}

/// The generator's two sockets.
#[derive(Debug)]
pub(crate) struct Generator {
    send: UdpSocket,
    recv: UdpSocket,
    epoch: Instant,
}

impl Generator {
    /// Binds the sending and receiving sockets on loopback.
    pub(crate) fn bind() -> anyhow::Result<Self> {
        let send = UdpSocket::bind("127.0.0.1:0").context("binding the sending socket")?;
        let recv = UdpSocket::bind("127.0.0.1:0").context("binding the receiving socket")?;
        SockRef::from(&send).set_send_buffer_size(SOCKET_BUFFER)?;
        SockRef::from(&recv).set_recv_buffer_size(SOCKET_BUFFER)?;
        Ok(Self {
            send,
            recv,
            epoch: Instant::now(),
        })
    }

    /// Where our packets come from (the relay's sending-side peer).
    pub(crate) fn sender_addr(&self) -> io::Result<SocketAddr> {
        self.send.local_addr()
    }

    /// Where the relay must send (its receiving-side peer).
    pub(crate) fn receiver_addr(&self) -> io::Result<SocketAddr> {
        self.recv.local_addr()
    }

    /// Runs one step: `flows` for warm-up, window and cool-down; `cpu` is read at the start
    /// and end of the window. SSRCs are `ssrc_base + call index`.
    pub(crate) fn run_step(
        &self,
        flows: &[Flow],
        ssrc_base: u32,
        plan: Plan,
        cpu: &dyn Fn() -> io::Result<Duration>,
    ) -> anyhow::Result<StepResult> {
        let stop = Arc::new(AtomicBool::new(false));
        let receiver = {
            let socket = self.recv.try_clone()?;
            socket.set_read_timeout(Some(Duration::from_millis(20)))?;
            let unprotectors = flows
                .iter()
                .map(|f| {
                    f.recv_key
                        .as_ref()
                        .map(|k| Unprotector::new(k, ReplayWindow::DEFAULT))
                        .transpose()
                })
                .collect::<Result<Vec<_>, _>>()?;
            let stop = Arc::clone(&stop);
            let epoch = self.epoch;
            thread::Builder::new()
                .name("bench-receive".into())
                .spawn(move || receive(socket, unprotectors, ssrc_base, epoch, &stop))?
        };
        let receiver_port = self.recv.local_addr()?.port();
        let drops_before = (socket_drops(receiver_port), udp_buffer_drops());
        let start = Instant::now() + Duration::from_millis(20);
        let sender = {
            let socket = self.send.try_clone()?;
            let streams = flows
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    Ok(Stream {
                        dest: f.dest,
                        ssrc: ssrc_base.wrapping_add(i as u32),
                        seq: 0,
                        protector: f.send_key.as_ref().map(Protector::new).transpose()?,
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let epoch = self.epoch;
            thread::Builder::new()
                .name("bench-send".into())
                .spawn(move || send(socket, streams, epoch, start, plan))?
        };
        sleep_until(start + plan.warmup);
        let (cpu0, t0) = (cpu()?, Instant::now());
        sleep_until(start + plan.warmup + plan.measure);
        let (cpu1, t1) = (cpu()?, Instant::now());
        let sent = sender
            .join()
            .map_err(|_| anyhow::anyhow!("sender panicked"));
        // Let the last packets arrive before the receiver stops.
        thread::sleep(Duration::from_millis(200));
        stop.store(true, Ordering::Relaxed);
        let received = receiver
            .join()
            .map_err(|_| anyhow::anyhow!("receiver panicked"))?;
        let (sent, sender_lag) = sent??;
        let at_receiver = socket_drops(receiver_port).saturating_sub(drops_before.0);
        let everywhere = udp_buffer_drops().saturating_sub(drops_before.1);
        let mut delays = received.delays;
        delays.sort_unstable();
        Ok(StepResult {
            calls: flows.len(),
            sent,
            received: received.received,
            auth_failures: received.auth_failures,
            window: t1 - t0,
            cpu: cpu1.saturating_sub(cpu0),
            sender_lag,
            delays,
            drops_at_receiver: at_receiver,
            drops_elsewhere: everywhere.saturating_sub(at_receiver),
        })
    }
}

/// The `drops` count of the IPv4 UDP socket bound to `port` (`/proc/net/udp`; 0 if not found).
fn socket_drops(port: u16) -> u64 {
    let wanted = format!(":{port:04X}");
    std::fs::read_to_string("/proc/net/udp")
        .ok()
        .and_then(|table| {
            table.lines().skip(1).find_map(|line| {
                let fields: Vec<&str> = line.split_ascii_whitespace().collect();
                (fields.get(1)?.ends_with(&wanted)).then(|| fields.last()?.parse().ok())?
            })
        })
        .unwrap_or(0)
}

/// `RcvbufErrors` of `/proc/net/snmp`: datagrams dropped for a full receive buffer, all sockets.
fn udp_buffer_drops() -> u64 {
    let Ok(snmp) = std::fs::read_to_string("/proc/net/snmp") else {
        return 0;
    };
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp: "));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return 0;
    };
    names
        .split_ascii_whitespace()
        .zip(values.split_ascii_whitespace())
        .find(|(name, _)| *name == "RcvbufErrors")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0)
}

fn sleep_until(deadline: Instant) {
    let now = Instant::now();
    if deadline > now {
        thread::sleep(deadline - now);
    }
}

/// One call's sending side.
struct Stream {
    dest: SocketAddr,
    ssrc: u32,
    seq: u16,
    protector: Option<Protector>,
}

/// The sending thread: every call once per tick, in its slot. Returns the marked packets sent
/// and the worst lag behind schedule.
fn send(
    socket: UdpSocket,
    mut streams: Vec<Stream>,
    epoch: Instant,
    start: Instant,
    plan: Plan,
) -> anyhow::Result<(u64, Duration)> {
    let measure_from = plan.warmup;
    let measure_to = plan.warmup + plan.measure;
    let end = measure_to + plan.cooldown;
    let slot_len = TICK / SLOTS as u32;
    let mut plain = [0u8; PACKET_LEN];
    for (i, byte) in plain[RTP_HEADER..].iter_mut().enumerate() {
        *byte = 0xD5 ^ i as u8;
    }
    plain[0] = 0x80; // V=2, PT 0 (PCMU)
    let mut wire = [0u8; PACKET_LEN + MAX_TRAILER_LEN];
    let (mut sent, mut lag) = (0u64, Duration::ZERO);
    let mut tick = 0u32;
    'ticks: loop {
        for slot in 0..SLOTS {
            let offset = TICK * tick + slot_len * slot as u32;
            if offset >= end {
                break 'ticks;
            }
            let due = start + offset;
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            } else {
                lag = lag.max(now - due);
            }
            let mark = if offset < measure_from {
                WARMUP
            } else if offset < measure_to {
                MEASURE
            } else {
                COOLDOWN
            };
            for index in (slot..streams.len()).step_by(SLOTS) {
                let stream = &mut streams[index];
                stream.seq = stream.seq.wrapping_add(1);
                plain[2..4].copy_from_slice(&stream.seq.to_be_bytes());
                let timestamp = u32::from(stream.seq).wrapping_mul(160);
                plain[4..8].copy_from_slice(&timestamp.to_be_bytes());
                plain[8..12].copy_from_slice(&stream.ssrc.to_be_bytes());
                let stamp = epoch.elapsed().as_nanos() as u64;
                plain[12..20].copy_from_slice(&stamp.to_be_bytes());
                plain[20..24].copy_from_slice(&(index as u32).to_be_bytes());
                plain[24] = mark;
                let datagram = match &mut stream.protector {
                    None => &plain[..],
                    Some(tx) => {
                        let len = tx.protect_rtp_into(&plain, &mut wire)?;
                        &wire[..len]
                    }
                };
                // A failed send is a lost packet like any other: it was offered.
                let _ = socket.send_to(datagram, stream.dest);
                if mark == MEASURE {
                    sent += 1;
                }
            }
        }
        tick += 1;
    }
    Ok((sent, lag))
}

#[derive(Default)]
struct Received {
    received: u64,
    auth_failures: u64,
    delays: Vec<u64>,
}

/// The receiving thread, until `stop`.
fn receive(
    socket: UdpSocket,
    mut unprotectors: Vec<Option<Unprotector>>,
    ssrc_base: u32,
    epoch: Instant,
    stop: &AtomicBool,
) -> Received {
    let mut out = Received::default();
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        let len = match socket.recv_from(&mut buf) {
            Ok((len, _)) => len,
            Err(_) => continue, // timeout: look at `stop` again
        };
        let now = epoch.elapsed().as_nanos() as u64;
        // RTP version 2, not RTCP (payload types 72..=76 with the marker bit, RFC 5761).
        if len < RTP_HEADER || buf[0] >> 6 != 2 || (200..=204).contains(&buf[1]) {
            continue;
        }
        let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        let index = ssrc.wrapping_sub(ssrc_base) as usize;
        let Some(unprotector) = unprotectors.get_mut(index) else {
            continue;
        };
        let clear = match unprotector {
            None => len,
            Some(rx) => match rx.unprotect_rtp_in_place(&mut buf[..len]) {
                Ok(clear) => clear,
                Err(_) => {
                    out.auth_failures += 1;
                    continue;
                }
            },
        };
        // The payload follows the CSRCs and any header extension a relay may have added.
        let mut payload = RTP_HEADER + 4 * usize::from(buf[0] & 0x0F);
        if buf[0] & 0x10 != 0 && clear >= payload + 4 {
            let words = u16::from_be_bytes([buf[payload + 2], buf[payload + 3]]);
            payload += 4 + 4 * usize::from(words);
        }
        if clear < payload + 13 {
            continue;
        }
        let p = &buf[payload..clear];
        if p[12] == MEASURE {
            let stamp = u64::from_be_bytes(p[..8].try_into().expect("8 bytes"));
            out.received += 1;
            out.delays.push(now.saturating_sub(stamp));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_and_delay_percentiles() {
        let r = StepResult {
            calls: 2,
            sent: 1000,
            received: 998,
            auth_failures: 1,
            window: Duration::from_secs(10),
            cpu: Duration::from_secs(5),
            delays: (1..=1000).map(|us| us * 1000).collect(),
            ..StepResult::default()
        };
        assert_eq!(r.lost(), 3);
        assert!((r.loss() - 0.003).abs() < 1e-12);
        assert_eq!(r.offered_pps(), 100.0);
        assert!((r.cores() - 0.5).abs() < 1e-12);
        assert_eq!(r.delay_us(0.5), Some(500.0));
        assert_eq!(r.delay_us(0.99), Some(990.0));
        assert_eq!(r.delay_us(0.999), Some(999.0));
        assert_eq!(StepResult::default().delay_us(0.5), None);
    }

    #[test]
    fn cpu_clock_reads_this_thread() {
        let clock = super::super::cpu::CpuClock::current_thread().unwrap();
        let before = clock.read().unwrap();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        assert!(clock.read().unwrap() > before);
    }
}
