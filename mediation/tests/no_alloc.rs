//! Proves the media relay's steady state does not touch the heap: a counting global allocator
//! counts allocations made on threads that opted in — the media thread of the real relay
//! (`MediaWorkers`, sockets from `PortPool`, the metrics registry) opts in as it starts — while a
//! "phone" thread (not counted) relays thousands of RTP/RTCP or SRTP/SRTCP packets through it
//! both ways in lock-step, checking every one that comes out. After a warm-up, the relay must
//! make zero allocations while it moves them.
//!
//! The same allocator also measures the heap one call's relay holds (printed, for
//! `tests/scale.sh`-style comparisons; run with `--nocapture` to see it).
#![allow(
    unsafe_code,
    reason = "a counting global allocator is an `unsafe impl GlobalAlloc`"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mediation::media::{LegMedia, MediaWorkers, PortPool, Protection, Side};
use mediation::metrics::Metrics;
use mediation::srtp::{MasterKey, Protector, ReplayWindow, SrtpSuite, Unprotector};

/// Counts the allocations (alloc, alloc_zeroed, realloc) of threads whose [`COUNT`] is `Some`,
/// and the bytes they hold on to, and passes every call to the system allocator unchanged.
struct Counting;

/// What the threads counted into one tally did. One per test (tests run in parallel).
#[derive(Debug, Default)]
struct Tally {
    /// Allocations, reallocations included.
    allocations: AtomicU64,
    /// Bytes allocated minus bytes freed.
    net_bytes: AtomicI64,
}

impl Tally {
    /// A tally that lives as long as the test process (a few bytes per test).
    fn new() -> &'static Tally {
        Box::leak(Box::default())
    }

    /// Counts the calling thread into this tally from now on.
    fn count_this_thread(&'static self) {
        COUNT.set(Some(self));
    }

    fn allocations(&self) -> u64 {
        self.allocations.load(Ordering::SeqCst)
    }

    fn net_bytes(&self) -> i64 {
        self.net_bytes.load(Ordering::SeqCst)
    }
}

thread_local! {
    /// `Some`: this thread is counted. `const`-initialised, `Copy` and without a destructor, so
    /// using it never allocates (which would recurse into the allocator) and works at any point
    /// of the thread's life.
    static COUNT: Cell<Option<&'static Tally>> = const { Cell::new(None) };
}

/// Counts one allocation (`allocation`) changing the bytes held by `bytes`.
fn count(allocation: bool, bytes: i64) {
    // `try_with`: never panic inside the allocator, even while thread-locals are torn down.
    let _ = COUNT.try_with(|c| {
        if let Some(t) = c.get() {
            t.allocations
                .fetch_add(u64::from(allocation), Ordering::SeqCst);
            t.net_bytes.fetch_add(bytes, Ordering::SeqCst);
        }
    });
}

// SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract (a block of `layout`'s size and alignment, or null; dealloc/realloc
// only of blocks it handed out with the same layout) — so this allocator upholds it too. The
// only thing added is `count`, which touches a const-initialised `Cell` thread-local and two
// atomics: it does not allocate (no recursion into the allocator), does not unwind, and
// affects nothing `System` sees.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(true, layout.size() as i64);
        // SAFETY: the caller's guarantees for `layout` are passed on as they are.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(true, layout.size() as i64);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(false, -(layout.size() as i64));
        // SAFETY: `ptr` came from `System` via this allocator with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(true, new_size as i64 - layout.size() as i64);
        // SAFETY: `ptr` came from `System` via this allocator with `layout`; the caller
        // guarantees `new_size` is valid for it.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const WARM_UP: u32 = 500;
const STEADY: u32 = 10_000;
/// One RTCP sender report each way per this many RTP packets (RTCP on its own port).
const RTCP_EVERY: u32 = 250;

/// Phases of the phone thread, shown to the counted thread through an atomic.
const WARMING: u8 = 0;
const WARM: u8 = 1;
const GO: u8 = 2;
const DONE: u8 = 3;

/// How one leg is protected in a test case.
#[derive(Clone, Copy, Debug)]
enum LegKind {
    Rtp,
    Srtp(SrtpSuite),
}

/// One leg's keys (SRTP) and the phone's two contexts for it.
struct LegSetup {
    protection: Protection,
    /// Protects what the phone sends; unprotects what the relay sends to the phone.
    phone: Option<(Protector, Unprotector)>,
}

impl LegSetup {
    fn new(kind: LegKind) -> Self {
        match kind {
            LegKind::Rtp => Self {
                protection: Protection::Rtp,
                phone: None,
            },
            LegKind::Srtp(suite) => {
                let ours = MasterKey::generate(suite).unwrap();
                let theirs = MasterKey::generate(suite).unwrap();
                let phone = (
                    Protector::new(&theirs).unwrap(),
                    Unprotector::new(&ours, ReplayWindow::DEFAULT).unwrap(),
                );
                Self {
                    protection: Protection::Srtp {
                        tx: ours,
                        rx: theirs,
                    },
                    phone: Some(phone),
                }
            }
        }
    }
}

/// A phone: RTP and RTCP sockets, the relay's ports for its leg, its SRTP contexts.
struct Phone {
    rtp: UdpSocket,
    rtcp: UdpSocket,
    relay_rtp: SocketAddr,
    relay_rtcp: SocketAddr,
    srtp: Option<(Protector, Unprotector)>,
    ssrc: u32,
}

fn rtp(buf: &mut [u8], seq: u16, ssrc: u32) -> usize {
    buf[..2].copy_from_slice(&[0x80, 0x00]);
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
    // A G.711 20 ms payload that differs per packet: 172 bytes in all.
    for (i, b) in buf[12..172].iter_mut().enumerate() {
        *b = (i as u8) ^ (seq as u8);
    }
    172
}

fn sender_report(buf: &mut [u8], ssrc: u32, n: u8) -> usize {
    let sr = [
        0x80, 200, 0x00, 0x06, 0, 0, 0, 0, 0xE8, 0, 0, n, 0, 0, 0, 0, 0, 0, 0x1F, 0x40, 0, 0, 0,
        50, 0, 0, 0x1F, 0x40,
    ];
    buf[..sr.len()].copy_from_slice(&sr);
    buf[4..8].copy_from_slice(&ssrc.to_be_bytes());
    sr.len()
}

impl Phone {
    fn new(relay_rtp: SocketAddr, relay_rtcp: SocketAddr, setup: &mut LegSetup, ssrc: u32) -> Self {
        let socket = || {
            let s = UdpSocket::bind((LOOPBACK, 0)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            s
        };
        Self {
            rtp: socket(),
            rtcp: socket(),
            relay_rtp,
            relay_rtcp,
            srtp: setup.phone.take(),
            ssrc,
        }
    }

    /// Sends RTP packet `seq` (or an RTCP report when `rtcp`) to the relay; returns the clear
    /// packet the far phone should get.
    fn send(&mut self, seq: u16, rtcp: bool, clear: &mut [u8]) -> usize {
        let len = if rtcp {
            sender_report(clear, self.ssrc, seq as u8)
        } else {
            rtp(clear, seq, self.ssrc)
        };
        let mut wire = [0u8; 512];
        let wire_len = match &mut self.srtp {
            None => {
                wire[..len].copy_from_slice(&clear[..len]);
                len
            }
            Some((tx, _)) if rtcp => tx.protect_rtcp_into(&clear[..len], &mut wire).unwrap(),
            Some((tx, _)) => tx.protect_rtp_into(&clear[..len], &mut wire).unwrap(),
        };
        let (socket, to) = if rtcp {
            (&self.rtcp, self.relay_rtcp)
        } else {
            (&self.rtp, self.relay_rtp)
        };
        socket.send_to(&wire[..wire_len], to).unwrap();
        len
    }

    /// Receives what the relay sent this phone and checks it is `expected`.
    fn receive(&mut self, rtcp: bool, expected: &[u8]) {
        let (socket, from_port) = if rtcp {
            (&self.rtcp, self.relay_rtcp)
        } else {
            (&self.rtp, self.relay_rtp)
        };
        let mut buf = [0u8; 2048];
        let (len, from) = socket
            .recv_from(&mut buf)
            .expect("the relay forwarded nothing within 3 s");
        assert_eq!(from, from_port, "sent from the leg's own port");
        let clear_len = match &mut self.srtp {
            None => len,
            Some((_, rx)) if rtcp => rx.unprotect_rtcp_in_place(&mut buf[..len]).unwrap(),
            Some((_, rx)) => rx.unprotect_rtp_in_place(&mut buf[..len]).unwrap(),
        };
        assert_eq!(&buf[..clear_len], expected, "relayed packet differs");
    }
}

/// Relays `count` RTP packets each way (with RTCP between), one exchange at a time.
fn exchange(a: &mut Phone, b: &mut Phone, first_seq: u16, count: u32) {
    let (mut from_a, mut from_b) = ([0u8; 256], [0u8; 256]);
    for i in 0..count {
        let seq = first_seq.wrapping_add(i as u16);
        let rtcp_too = i % RTCP_EVERY == RTCP_EVERY - 1;
        for rtcp in [false, true].into_iter().take(1 + usize::from(rtcp_too)) {
            let a_len = a.send(seq, rtcp, &mut from_a);
            let b_len = b.send(seq, rtcp, &mut from_b);
            b.receive(rtcp, &from_a[..a_len]);
            a.receive(rtcp, &from_b[..b_len]);
        }
    }
}

/// Waits until the phone thread reaches `phase`.
fn wait_for(phase: &AtomicU8, want: u8) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while phase.load(Ordering::Acquire) < want {
        assert!(
            Instant::now() < deadline,
            "phone thread stuck before {want}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Runs the relay with legs `a` and `b` on a media thread of its own and returns the
/// allocations that thread made while relaying [`STEADY`] packets each way after the warm-up.
fn steady_state_allocations(a: LegKind, b: LegKind) -> u64 {
    let tally = Tally::new();
    let workers = MediaWorkers::start(1, move || tally.count_this_thread()).unwrap();
    let metrics = Metrics::new();
    let pool = PortPool::new(LOOPBACK, 23000..=23999).unwrap();
    let (mut a_setup, mut b_setup) = (LegSetup::new(a), LegSetup::new(b));

    // Sockets and phones first, then the relay.
    let a_sockets = pool.allocate().unwrap();
    let b_sockets = pool.allocate().unwrap();
    let port = |p: u16| SocketAddr::new(LOOPBACK, p);
    let mut a_phone = Phone::new(
        port(a_sockets.rtp_port()),
        port(a_sockets.rtcp_port()),
        &mut a_setup,
        0x0A0A_0001,
    );
    let mut b_phone = Phone::new(
        port(b_sockets.rtp_port()),
        port(b_sockets.rtcp_port()),
        &mut b_setup,
        0x0B0B_0002,
    );
    let a_leg = LegMedia::new("gateway", a_sockets, a_setup.protection).with_remote(
        Some(a_phone.rtp.local_addr().unwrap()),
        Some(a_phone.rtcp.local_addr().unwrap()),
    );
    let b_leg = LegMedia::new("next_hop", b_sockets, b_setup.protection).with_remote(
        Some(b_phone.rtp.local_addr().unwrap()),
        Some(b_phone.rtcp.local_addr().unwrap()),
    );
    let relay = workers.spawn_relay(a_leg, b_leg, &metrics).unwrap();

    let phase = Arc::new(AtomicU8::new(WARMING));
    let phones = std::thread::spawn({
        let phase = Arc::clone(&phase);
        move || {
            exchange(&mut a_phone, &mut b_phone, 1, WARM_UP);
            phase.store(WARM, Ordering::Release);
            while phase.load(Ordering::Acquire) != GO {
                std::thread::yield_now();
            }
            exchange(&mut a_phone, &mut b_phone, 1 + WARM_UP as u16, STEADY);
            phase.store(DONE, Ordering::Release);
        }
    });

    wait_for(&phase, WARM);
    let before = relay.stats().leg(Side::B).packets_out;
    let allocations_before = tally.allocations();
    phase.store(GO, Ordering::Release);
    wait_for(&phase, DONE);
    let allocations = tally.allocations() - allocations_before;
    phones
        .join()
        .expect("a relayed packet was missing or wrong");

    // The packets did go through the relay in the counted phase (RTCP included). The media
    // thread counts a packet just after sending it: give it a moment to count the last ones.
    let settled = Instant::now() + Duration::from_secs(5);
    let (a_stats, b_stats) = loop {
        let (a, b) = (relay.stats().leg(Side::A), relay.stats().leg(Side::B));
        if a.packets_out == b.packets_out || Instant::now() > settled {
            break (a, b);
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let rtcp = u64::from(STEADY / RTCP_EVERY);
    assert!(b_stats.packets_out - before >= u64::from(STEADY) + rtcp);
    assert_eq!(a_stats.packets_out, b_stats.packets_out);
    assert_eq!((a_stats.dropped, b_stats.dropped), (0, 0));
    drop(relay);
    allocations
}

#[test]
fn rtp_to_rtp_does_not_allocate_per_packet() {
    assert_eq!(steady_state_allocations(LegKind::Rtp, LegKind::Rtp), 0);
}

#[test]
fn srtp_aes_cm_sha1_80_does_not_allocate_per_packet() {
    let suite = LegKind::Srtp(SrtpSuite::AesCm128HmacSha1_80);
    assert_eq!(steady_state_allocations(suite, suite), 0);
}

#[test]
fn srtp_aead_aes_128_gcm_does_not_allocate_per_packet() {
    let suite = LegKind::Srtp(SrtpSuite::AeadAes128Gcm);
    assert_eq!(steady_state_allocations(suite, suite), 0);
}

#[test]
fn srtp_to_rtp_and_back_does_not_allocate_per_packet() {
    let suite = LegKind::Srtp(SrtpSuite::AeadAes128Gcm);
    assert_eq!(steady_state_allocations(suite, LegKind::Rtp), 0);
}

/// Heap held per call by the relay of `a` and `b` legs, once its media thread has taken it:
/// the mean over 100 relays, so one-off allocations (the thread's slot table, the metrics'
/// label sets) do not count. Both the thread that starts relays (SRTP contexts, stats) and the
/// media thread (its share of the slot table and index) are counted.
fn relay_heap_per_call(a: LegKind, b: LegKind) -> i64 {
    const RELAYS: usize = 100;
    let tally = Tally::new();
    let workers = MediaWorkers::start(1, move || tally.count_this_thread()).unwrap();
    let metrics = Metrics::new();
    let pool = PortPool::new(LOOPBACK, 24000..=24999).unwrap();
    let legs: Vec<_> = (0..=RELAYS)
        .map(|_| {
            let leg = |kind| {
                LegMedia::new(
                    "gateway",
                    pool.allocate().unwrap(),
                    LegSetup::new(kind).protection,
                )
            };
            (leg(a), leg(b))
        })
        .collect();
    let last_port = legs.last().unwrap().0.sockets.rtp_port();
    let mut legs = legs.into_iter();
    // One relay before counting: label sets, the thread's first slots.
    let (first_a, first_b) = legs.next().unwrap();
    let mut relays = vec![workers.spawn_relay(first_a, first_b, &metrics).unwrap()];
    relays.reserve(RELAYS);
    let held_before = tally.net_bytes();
    tally.count_this_thread();
    for (a, b) in legs {
        relays.push(workers.spawn_relay(a, b, &metrics).unwrap());
    }
    COUNT.set(None);
    // The media thread takes its orders in turn: once the last relay has relayed a packet,
    // every relay has been taken in.
    let probe = UdpSocket::bind((LOOPBACK, 0)).unwrap();
    let mut packet = [0u8; 172];
    let len = rtp(&mut packet, 1, 0x5EED);
    probe
        .send_to(&packet[..len], SocketAddr::new(LOOPBACK, last_port))
        .unwrap();
    let last = relays.last().unwrap().stats();
    let deadline = Instant::now() + Duration::from_secs(10);
    while last.leg(Side::A).packets_in + last.leg(Side::A).dropped == 0 {
        assert!(Instant::now() < deadline, "the media thread took no relay");
        std::thread::sleep(Duration::from_millis(1));
    }
    let held = tally.net_bytes() - held_before;
    drop(relays);
    held / RELAYS as i64
}

#[test]
fn relay_heap_per_call_is_reported() {
    let cm = LegKind::Srtp(SrtpSuite::AesCm128HmacSha1_80);
    let gcm = LegKind::Srtp(SrtpSuite::AeadAes128Gcm);
    for (name, a, b) in [
        ("RTP <-> RTP", LegKind::Rtp, LegKind::Rtp),
        ("AES_CM_128_HMAC_SHA1_80 both legs", cm, cm),
        ("AEAD_AES_128_GCM both legs", gcm, gcm),
    ] {
        let bytes = relay_heap_per_call(a, b);
        eprintln!("relay heap per call, {name}: {bytes} bytes");
        assert!(bytes > 0, "{name}: nothing counted");
    }
}
