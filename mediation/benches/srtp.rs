//! Per-packet cost of SRTP protect and unprotect for every suite, on a 172-byte G.711 packet
//! (12-byte RTP header, 160 bytes of payload: 20 ms of PCMU).
//!
//! Besides our own contexts, the same packets go through the system's libsrtp 2
//! (`libsrtp2.so.1`, Debian `libsrtp2-1`) when it is installed, loaded at run time so that the
//! bench builds everywhere; without it those rows are skipped with a note.
//!
//! `cargo bench -p mediation --bench srtp`
#![allow(
    unsafe_code,
    reason = "a counting global allocator, and the system libsrtp through dlopen/dlsym"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use mediation::srtp::{MasterKey, Protector, ReplayWindow, SrtpSuite, Unprotector};

/// Counts heap allocations, to show the fast path makes none.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const PAYLOAD: usize = 160;
const SSRC: u32 = 0x5EED_F00D;
/// Packets protected ahead of each timed unprotect run.
const BATCH: usize = 4096;

fn g711_packet(seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&SSRC.to_be_bytes());
    p.extend((0..PAYLOAD).map(|n| n as u8 ^ 0xD5));
    p
}

fn set_seq(packet: &mut [u8], seq: u16) {
    packet[2..4].copy_from_slice(&seq.to_be_bytes());
}

fn key_for(suite: SrtpSuite) -> MasterKey {
    let material: Vec<u8> = (0..suite.key_len() + suite.salt_len())
        .map(|n| n as u8 * 7 + 1)
        .collect();
    MasterKey::from_bytes(suite, &material).unwrap()
}

/// Times `iters` unprotect calls on packets made by `make_batch` (untimed), in batches.
fn timed_batches(
    iters: u64,
    mut make_batch: impl FnMut(usize) -> Vec<Vec<u8>>,
    mut each: impl FnMut(&mut [u8]),
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters as usize;
    while left > 0 {
        let n = left.min(BATCH);
        let mut batch = make_batch(n);
        let start = Instant::now();
        for packet in &mut batch {
            each(packet);
        }
        total += start.elapsed();
        left -= n;
    }
    total
}

fn ours(c: &mut Criterion) {
    for suite in SrtpSuite::ALL {
        let key = key_for(suite);
        let mut group = c.benchmark_group(format!("ours/{suite}"));

        let mut tx = Protector::new(&key).unwrap();
        let mut plain = g711_packet(0);
        let mut seq = 0u16;
        group.bench_function("protect_rtp", |b| {
            b.iter(|| {
                seq = seq.wrapping_add(1);
                set_seq(&mut plain, seq);
                black_box(tx.protect_rtp(black_box(&plain)).unwrap());
            })
        });

        // The fast path: into and in a caller's buffer, no allocation.
        let mut tx = Protector::new(&key).unwrap();
        let mut rx = Unprotector::new(&key, ReplayWindow::DEFAULT).unwrap();
        let mut buf = [0u8; 256];
        // The first packet of a stream makes its replay window (once per SSRC); count after.
        set_seq(&mut plain, 0);
        let len = tx.protect_rtp_into(&plain, &mut buf).unwrap();
        rx.unprotect_rtp_in_place(&mut buf[..len]).unwrap();
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        for seq in 1..=1000u16 {
            set_seq(&mut plain, seq);
            let len = tx.protect_rtp_into(&plain, &mut buf).unwrap();
            let clear = rx.unprotect_rtp_in_place(&mut buf[..len]).unwrap();
            assert_eq!(buf[..clear], plain[..]);
        }
        let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
        eprintln!(
            "{suite}: {allocations} allocations for 1000 packets protected and unprotected \
             on the fast path"
        );
        assert_eq!(allocations, 0, "{suite}: the fast path allocated");

        let mut seq = 1000u16;
        group.bench_function("protect_rtp_into", |b| {
            b.iter(|| {
                seq = seq.wrapping_add(1);
                set_seq(&mut plain, seq);
                black_box(tx.protect_rtp_into(black_box(&plain), &mut buf).unwrap());
            })
        });

        let mut tx = Protector::new(&key).unwrap();
        let mut rx = Unprotector::new(&key, ReplayWindow::DEFAULT).unwrap();
        let mut seq = 0u16;
        group.bench_function("unprotect_rtp_in_place", |b| {
            b.iter_custom(|iters| {
                timed_batches(
                    iters,
                    |n| {
                        (0..n)
                            .map(|_| {
                                seq = seq.wrapping_add(1);
                                tx.protect_rtp(&g711_packet(seq)).unwrap().to_vec()
                            })
                            .collect()
                    },
                    |packet| {
                        black_box(rx.unprotect_rtp_in_place(black_box(packet)).unwrap());
                    },
                )
            })
        });

        let mut tx = Protector::new(&key).unwrap();
        let mut rx = Unprotector::new(&key, ReplayWindow::DEFAULT).unwrap();
        let mut seq = 0u16;
        group.bench_function("unprotect_rtp", |b| {
            b.iter_custom(|iters| {
                timed_batches(
                    iters,
                    |n| {
                        (0..n)
                            .map(|_| {
                                seq = seq.wrapping_add(1);
                                tx.protect_rtp(&g711_packet(seq)).unwrap().to_vec()
                            })
                            .collect()
                    },
                    |packet| {
                        black_box(rx.unprotect_rtp(black_box(packet)).unwrap());
                    },
                )
            })
        });
        group.finish();
    }
}

/// libsrtp 2 through its C API, loaded with `dlopen`.
mod libsrtp {
    use std::ffi::{c_char, c_int, c_ulong, c_void, CStr};

    use mediation::srtp::SrtpSuite;

    #[repr(C)]
    #[derive(Default)]
    struct CryptoPolicy {
        cipher_type: u32,
        cipher_key_len: c_int,
        auth_type: u32,
        auth_key_len: c_int,
        auth_tag_len: c_int,
        sec_serv: u32,
    }

    /// `srtp_policy_t` of libsrtp 2.x (`srtp2/srtp.h`).
    #[repr(C)]
    struct Policy {
        ssrc_type: u32,
        ssrc_value: u32,
        rtp: CryptoPolicy,
        rtcp: CryptoPolicy,
        key: *const u8,
        keys: *mut c_void,
        num_master_keys: c_ulong,
        deprecated_ekt: *mut c_void,
        window_size: c_ulong,
        allow_repeat_tx: c_int,
        enc_xtn_hdr: *mut c_int,
        enc_xtn_hdr_count: c_int,
        next: *mut Policy,
    }

    const SSRC_ANY_INBOUND: u32 = 2;
    const SSRC_ANY_OUTBOUND: u32 = 3;

    type SetPolicy = unsafe extern "C" fn(*mut CryptoPolicy);
    type Create = unsafe extern "C" fn(*mut *mut c_void, *const Policy) -> c_int;
    type Process = unsafe extern "C" fn(*mut c_void, *mut c_void, *mut c_int) -> c_int;
    type Init = unsafe extern "C" fn() -> c_int;

    pub(crate) struct Lib {
        handle: *mut c_void,
        create: Create,
        protect: Process,
        unprotect: Process,
    }

    /// One libsrtp session (one direction).
    pub(crate) struct Session {
        ctx: *mut c_void,
        process: Process,
    }

    impl Lib {
        /// The library at `path` (a file name the dynamic loader finds, or a path).
        pub(crate) fn open(path: &CStr) -> Option<Lib> {
            // SAFETY: dlopen/dlsym with NUL-terminated names; symbols are cast to the
            // signatures in libsrtp 2's header.
            unsafe {
                let handle = libc::dlopen(path.as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL);
                if handle.is_null() {
                    let error = libc::dlerror();
                    if !error.is_null() {
                        eprintln!("dlopen: {}", CStr::from_ptr(error).to_string_lossy());
                    }
                    return None;
                }
                let lib = Lib {
                    handle,
                    create: std::mem::transmute::<*mut c_void, Create>(sym(
                        handle,
                        c"srtp_create",
                    )?),
                    protect: std::mem::transmute::<*mut c_void, Process>(sym(
                        handle,
                        c"srtp_protect",
                    )?),
                    unprotect: std::mem::transmute::<*mut c_void, Process>(sym(
                        handle,
                        c"srtp_unprotect",
                    )?),
                };
                let init = std::mem::transmute::<*mut c_void, Init>(sym(handle, c"srtp_init")?);
                (init() == 0).then_some(lib)
            }
        }

        fn set_policy(&self, suite: SrtpSuite, rtp: &mut CryptoPolicy, rtcp: &mut CryptoPolicy) {
            let (rtp_fn, rtcp_fn): (&CStr, &CStr) = match suite.name() {
                "AES_CM_128_HMAC_SHA1_80" => (
                    c"srtp_crypto_policy_set_rtp_default",
                    c"srtp_crypto_policy_set_rtp_default",
                ),
                "AES_CM_128_HMAC_SHA1_32" => (
                    c"srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32",
                    c"srtp_crypto_policy_set_rtp_default",
                ),
                "AES_256_CM_HMAC_SHA1_80" => (
                    c"srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80",
                    c"srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80",
                ),
                "AES_256_CM_HMAC_SHA1_32" => (
                    c"srtp_crypto_policy_set_aes_cm_256_hmac_sha1_32",
                    c"srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80",
                ),
                "AEAD_AES_128_GCM" => (
                    c"srtp_crypto_policy_set_aes_gcm_128_16_auth",
                    c"srtp_crypto_policy_set_aes_gcm_128_16_auth",
                ),
                "AEAD_AES_256_GCM" => (
                    c"srtp_crypto_policy_set_aes_gcm_256_16_auth",
                    c"srtp_crypto_policy_set_aes_gcm_256_16_auth",
                ),
                other => panic!("no libsrtp policy for {other}"),
            };
            // SAFETY: the setters take a pointer to a `srtp_crypto_policy_t`.
            unsafe {
                let set = |name: &CStr, p: &mut CryptoPolicy| {
                    let f = std::mem::transmute::<*mut c_void, SetPolicy>(
                        sym(self.handle, name).expect("libsrtp policy setter"),
                    );
                    f(p)
                };
                set(rtp_fn, rtp);
                set(rtcp_fn, rtcp);
            }
        }

        /// A session for `suite` with `key_and_salt`, sending or receiving.
        pub(crate) fn session(
            &self,
            suite: SrtpSuite,
            key_and_salt: &[u8],
            sending: bool,
        ) -> Session {
            let mut policy = Policy {
                ssrc_type: if sending {
                    SSRC_ANY_OUTBOUND
                } else {
                    SSRC_ANY_INBOUND
                },
                ssrc_value: 0,
                rtp: CryptoPolicy::default(),
                rtcp: CryptoPolicy::default(),
                key: key_and_salt.as_ptr(),
                keys: std::ptr::null_mut(),
                num_master_keys: 0,
                deprecated_ekt: std::ptr::null_mut(),
                window_size: 128,
                allow_repeat_tx: 0,
                enc_xtn_hdr: std::ptr::null_mut(),
                enc_xtn_hdr_count: 0,
                next: std::ptr::null_mut(),
            };
            self.set_policy(suite, &mut policy.rtp, &mut policy.rtcp);
            let mut ctx = std::ptr::null_mut();
            // SAFETY: policy is fully initialised; libsrtp copies the key.
            let status = unsafe { (self.create)(&mut ctx, &policy) };
            assert_eq!(status, 0, "srtp_create for {suite}");
            Session {
                ctx,
                process: if sending {
                    self.protect
                } else {
                    self.unprotect
                },
            }
        }
    }

    impl Session {
        /// Protects or unprotects `buf[..len]` in place; `buf` has room for the trailer.
        /// Returns the new length.
        pub(crate) fn process(&mut self, buf: &mut [u8], len: usize) -> usize {
            let mut len = len as c_int;
            // SAFETY: buf holds len bytes plus room for the largest SRTP trailer.
            let status = unsafe { (self.process)(self.ctx, buf.as_mut_ptr().cast(), &mut len) };
            assert_eq!(status, 0, "libsrtp status {status}");
            len as usize
        }
    }

    unsafe fn sym(handle: *mut c_void, name: &CStr) -> Option<*mut c_void> {
        let p = libc::dlsym(handle, name.as_ptr() as *const c_char);
        (!p.is_null()).then_some(p)
    }
}

/// Which libsrtp: `MEDIATION_BENCH_LIBSRTP` (any shared object exporting libsrtp 2's API, e.g.
/// one built against OpenSSL), else the system's `libsrtp2.so.1` (Debian's uses NSS).
fn libsrtp(c: &mut Criterion) {
    let path = std::env::var("MEDIATION_BENCH_LIBSRTP").unwrap_or("libsrtp2.so.1".into());
    let Some(lib) = std::ffi::CString::new(path.clone())
        .ok()
        .and_then(|p| libsrtp::Lib::open(&p))
    else {
        eprintln!("{path} not loadable (apt-get install libsrtp2-1): libsrtp rows skipped");
        return;
    };
    eprintln!("libsrtp from {path}");
    for suite in SrtpSuite::ALL {
        let key = key_for(suite);
        let mut group = c.benchmark_group(format!("libsrtp/{suite}"));

        // Same key, same packet: libsrtp and we must produce the same bytes.
        let mut tx = lib.session(suite, key.key_and_salt(), true);
        let mut buf = [0u8; 256];
        let first = g711_packet(1);
        buf[..first.len()].copy_from_slice(&first);
        let len = tx.process(&mut buf, first.len());
        let ours = Protector::new(&key).unwrap().protect_rtp(&first).unwrap();
        assert_eq!(buf[..len], ours[..], "{suite}: libsrtp and we disagree");

        let plain = g711_packet(0);
        let mut seq = 1u16;
        group.bench_function("protect_rtp", |b| {
            b.iter(|| {
                seq = seq.wrapping_add(1);
                buf[..plain.len()].copy_from_slice(&plain);
                set_seq(&mut buf, seq);
                black_box(tx.process(black_box(&mut buf), plain.len()));
            })
        });

        let mut tx = lib.session(suite, key.key_and_salt(), true);
        let mut rx = lib.session(suite, key.key_and_salt(), false);
        let mut seq = 0u16;
        group.bench_function("unprotect_rtp", |b| {
            b.iter_custom(|iters| {
                timed_batches(
                    iters,
                    |n| {
                        (0..n)
                            .map(|_| {
                                seq = seq.wrapping_add(1);
                                let mut p = g711_packet(seq);
                                let len = p.len();
                                p.resize(len + 64, 0);
                                let out = tx.process(&mut p, len);
                                p.truncate(out);
                                p
                            })
                            .collect()
                    },
                    |packet| {
                        let len = packet.len();
                        black_box(rx.process(black_box(packet), len));
                    },
                )
            })
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = ours, libsrtp
}
criterion_main!(benches);
