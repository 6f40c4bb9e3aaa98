//! The media of one call: a UDP socket pair (RTP on an even port, RTCP on the next), a 20 ms
//! PCMU sender with markers, SRTP/SRTCP when keys were negotiated, RTCP sender reports every 5 s,
//! and a receiver that checks what arrives: on the wire (encrypted or plain), after SRTP (auth),
//! and in the payload (marker and tone), feeding [`ReceiveStats`]. Symmetric: once an
//! authentic packet arrives, replies go to where it came from. An in-dialog offer/answer
//! ([`MediaHandle::update`]) pauses or resumes sending (hold) and switches SRTP keys, the old
//! receive key staying valid for [`OLD_KEY_GRACE`] for packets in flight.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mediation::srtp::{Protector, ReplayWindow, SrtpError, Unprotector};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{interval, interval_at, sleep_until, Instant, MissedTickBehavior};

use crate::negotiate::{LocalMedia, MediaPlan};
use crate::reoffer::MediaChange;
use crate::rtcp::{self, SenderInfo};
use crate::rtp_packet::{self, HEADER_LEN, PACKET_LEN};
use crate::stats::ReceiveStats;
use crate::tone::{Marker, PayloadCheck, Tone, MAGIC, MARKER_LEN, PAYLOAD_LEN, SAMPLES_PER_PACKET};

/// Packet interval.
pub(crate) const PTIME: Duration = Duration::from_millis(20);
/// Interval of RTCP sender reports.
pub(crate) const RTCP_INTERVAL: Duration = Duration::from_secs(5);
/// Delay of the first sender report.
pub(crate) const FIRST_RTCP: Duration = Duration::from_secs(1);
/// How long the receiver keeps listening after the call ends, for packets in flight.
pub(crate) const DRAIN: Duration = Duration::from_millis(300);

/// Between our last media packet and our BYE: lets the last packets reach the far end before
/// the dialog (and the relay with it) ends, as a phone's last RTP precedes its BYE. Without
/// it, a packet sent while the BYE is on its way may find the relay already gone.
pub(crate) const LAST_PACKET_SETTLE: Duration = Duration::from_millis(60);
/// How long the previous receive key is still tried after a new one is negotiated.
pub(crate) const OLD_KEY_GRACE: Duration = Duration::from_secs(2);
/// Attempts at finding an even port whose successor is free.
const BIND_ATTEMPTS: usize = 64;

/// The RTP and RTCP sockets of a call.
#[derive(Debug)]
pub(crate) struct MediaSockets {
    rtp: UdpSocket,
    rtcp: UdpSocket,
}

impl MediaSockets {
    /// Binds RTP on an even port of `ip` and RTCP on the port after it.
    pub(crate) async fn bind(ip: IpAddr) -> io::Result<Self> {
        let mut discarded = Vec::new();
        for _ in 0..BIND_ATTEMPTS {
            let rtp = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
            let port = rtp.local_addr()?.port();
            if port % 2 == 1 || port == u16::MAX {
                discarded.push(rtp); // Held so the next bind gets another port.
                continue;
            }
            match UdpSocket::bind(SocketAddr::new(ip, port + 1)).await {
                Ok(rtcp) => return Ok(Self { rtp, rtcp }),
                Err(_) => discarded.push(rtp),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("no free even/odd UDP port pair on {ip} after {BIND_ATTEMPTS} attempts"),
        ))
    }

    /// What goes into our SDP.
    pub(crate) fn local(&self) -> io::Result<LocalMedia> {
        let addr = self.rtp.local_addr()?;
        Ok(LocalMedia {
            ip: addr.ip(),
            rtp_port: addr.port(),
        })
    }
}

/// Everything measured about the media of one call.
#[derive(Debug, Clone, Default)]
pub(crate) struct MediaResult {
    /// RTP packets sent.
    pub(crate) packets_sent: u64,
    /// Distinct packets received with a valid marker.
    pub(crate) packets_received: u64,
    /// Gaps in the received marker sequence.
    pub(crate) packets_lost: u64,
    /// Repeated markers (and SRTP replays).
    pub(crate) duplicates: u64,
    /// Packets that arrived after a later one.
    pub(crate) reordered: u64,
    /// RFC 3550 interarrival jitter.
    pub(crate) jitter_ms: Option<f64>,
    /// Median one-way latency.
    pub(crate) latency_ms_p50: Option<f64>,
    /// 99th percentile one-way latency.
    pub(crate) latency_ms_p99: Option<f64>,
    /// Datagrams on the RTP port, before any check.
    pub(crate) datagrams_received: u64,
    /// Datagrams in which the marker or the tone could be read as sent (plaintext on the wire).
    pub(crate) plaintext_datagrams: u64,
    /// SRTP packets that did not authenticate.
    pub(crate) srtp_auth_failures: u64,
    /// Packets whose payload had no marker, a wrong length or wrong tone bytes.
    pub(crate) bad_payloads: u64,
    /// RTCP compound packets sent.
    pub(crate) rtcp_sent: u64,
    /// RTCP packets received that were RTCP (and authenticated, on an SRTP leg).
    pub(crate) rtcp_received: u64,
    /// RTCP datagrams that were not RTCP or did not authenticate.
    pub(crate) rtcp_bad: u64,
    /// Sends that failed.
    pub(crate) send_errors: u64,
    /// RTP packets sent while the call was on hold.
    pub(crate) sent_while_held: u64,
    /// Authentic packets received while the call was on hold.
    pub(crate) received_while_held: u64,
    /// Authentic packets received after the last resume (0 if never held).
    pub(crate) received_after_resume: u64,
    /// Packets lost outside the hold segments (see [`ReceiveStats::lost_outside_hold`]).
    pub(crate) lost_outside_hold: u64,
    /// Packets counted by RTP sequence number, their payload not ours (`--any-payload`).
    pub(crate) foreign_payloads: u64,
}

impl MediaResult {
    /// What the wire showed: `Some(true)` when no datagram exposed the marker or tone,
    /// `Some(false)` when any did, `None` when nothing arrived.
    pub(crate) fn wire_encrypted(&self) -> Option<bool> {
        (self.datagrams_received > 0).then_some(self.plaintext_datagrams == 0)
    }

    /// Something arrived and every packet carried exactly the bytes the far end sent.
    pub(crate) fn payload_ok(&self) -> bool {
        self.packets_received > 0 && self.bad_payloads == 0 && self.srtp_auth_failures == 0
    }
}

enum Control {
    StopSending,
    Update(MediaChange),
    Finish(Duration),
}

/// A running media session; [`MediaHandle::finish`] ends it and returns the measurements.
#[derive(Debug)]
pub(crate) struct MediaHandle {
    control: mpsc::UnboundedSender<Control>,
    task: JoinHandle<MediaResult>,
}

impl MediaHandle {
    /// Stops sending; the receiver keeps going.
    pub(crate) fn stop_sending(&self) {
        let _ = self.control.send(Control::StopSending);
    }

    /// Applies an offer/answer exchange: direction (pause or resume sending), hold state,
    /// remote addresses and new SRTP keys.
    pub(crate) fn update(&self, change: MediaChange) {
        let _ = self.control.send(Control::Update(change));
    }

    /// Stops sending, receives for `drain` more (packets in flight), and returns the result.
    pub(crate) async fn finish(self, drain: Duration) -> MediaResult {
        let _ = self.control.send(Control::Finish(drain));
        self.task.await.unwrap_or_default()
    }
}

/// Microseconds since the UNIX epoch, now.
pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Starts sending and receiving. `cname` goes into RTCP SDES. `any_payload`: the far end is
/// not a gateway-sim, so its packets are counted by RTP sequence number instead of our marker.
pub(crate) fn start(
    sockets: MediaSockets,
    plan: &MediaPlan,
    cname: String,
    any_payload: bool,
) -> Result<MediaHandle, String> {
    let (tx_ctx, rx_ctx) = match &plan.srtp {
        Some(keys) => (
            Some(Protector::new(&keys.ours).map_err(|e| e.to_string())?),
            Some(Unprotector::new(&keys.theirs, ReplayWindow::DEFAULT).map_err(|e| e.to_string())?),
        ),
        None => (None, None),
    };
    let session = Session {
        sockets,
        rtp_dest: plan.remote_rtp,
        rtcp_dest: plan.remote_rtcp,
        sender: Sender {
            protector: tx_ctx,
            tone: Tone::new(),
            ssrc: rand::random(),
            rtp_sequence: rand::random(),
            timestamp_base: rand::random(),
            sent: 0,
        },
        receiver: Receiver {
            unprotector: rx_ctx,
            previous: None,
            held: false,
            resumed: false,
            tone: Tone::new(),
            stats: ReceiveStats::default(),
            result: MediaResult::default(),
            foreign: any_payload.then(ForeignSequence::default),
        },
        cname,
    };
    let (control, control_rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(session.run(control_rx));
    Ok(MediaHandle { control, task })
}

struct Sender {
    protector: Option<Protector>,
    tone: Tone,
    ssrc: u32,
    rtp_sequence: u16,
    timestamp_base: u32,
    /// Packets sent so far, which is also the next marker sequence.
    sent: u32,
}

impl Sender {
    /// The next packet, protected if SRTP.
    fn next_packet(&mut self) -> Result<Vec<u8>, SrtpError> {
        let mut packet = [0u8; PACKET_LEN];
        let timestamp = self
            .timestamp_base
            .wrapping_add(self.sent.wrapping_mul(SAMPLES_PER_PACKET as u32));
        rtp_packet::write_header(
            &mut packet,
            self.sent == 0,
            self.rtp_sequence,
            timestamp,
            self.ssrc,
        );
        let marker = Marker {
            sequence: self.sent,
            sent_us: now_us(),
        };
        self.tone.fill(marker, &mut packet[HEADER_LEN..]);
        let out = match &mut self.protector {
            Some(p) => p.protect_rtp(&packet)?.to_vec(),
            None => packet.to_vec(),
        };
        self.rtp_sequence = self.rtp_sequence.wrapping_add(1);
        self.sent = self.sent.wrapping_add(1);
        Ok(out)
    }

    fn sender_report(&mut self, cname: &str) -> Result<Vec<u8>, SrtpError> {
        let now = SystemTime::now();
        let info = SenderInfo {
            ssrc: self.ssrc,
            ntp: rtcp::ntp_timestamp(now),
            rtp_timestamp: self
                .timestamp_base
                .wrapping_add(self.sent.wrapping_mul(SAMPLES_PER_PACKET as u32)),
            packets: self.sent,
            octets: self.sent.wrapping_mul(PAYLOAD_LEN as u32),
        };
        let report = rtcp::sender_report(&info, cname);
        match &mut self.protector {
            Some(p) => Ok(p.protect_rtcp(&report)?.to_vec()),
            None => Ok(report),
        }
    }
}

struct Receiver {
    unprotector: Option<Unprotector>,
    /// The receive context of the previous key and until when it is tried.
    previous: Option<(Unprotector, Instant)>,
    /// The call is on hold now.
    held: bool,
    /// The call was held and has been resumed since.
    resumed: bool,
    tone: Tone,
    stats: ReceiveStats,
    result: MediaResult,
    /// `--any-payload`: packets without our marker are counted by RTP sequence number.
    foreign: Option<ForeignSequence>,
}

/// The RTP sequence numbers of a far end that is not a gateway-sim, as indexes from its first
/// packet received (0) extended across the 16-bit wrap (RFC 3550 §A.1), so that the marker
/// statistics (received, lost, reordered, duplicates) apply to them.
#[derive(Debug, Default)]
struct ForeignSequence {
    first: Option<u16>,
    highest: u32,
}

impl ForeignSequence {
    /// The index of `sequence`: the one nearest the highest so far.
    fn index(&mut self, sequence: u16) -> u32 {
        let first = *self.first.get_or_insert(sequence);
        let offset = u32::from(sequence.wrapping_sub(first));
        let mut index = (self.highest & !0xFFFF) | offset;
        if index + 0x8000 < self.highest {
            index += 0x1_0000;
        } else if index > self.highest + 0x8000 && index >= 0x1_0000 {
            index -= 0x1_0000;
        }
        self.highest = self.highest.max(index);
        index
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

impl Receiver {
    /// Unprotects with the current key, then with the previous one while it is still valid.
    fn unprotect(&mut self, raw: &[u8]) -> Option<Result<bytes::Bytes, SrtpError>> {
        let rx = self.unprotector.as_mut()?;
        let first = rx.unprotect_rtp(raw);
        if !matches!(first, Err(SrtpError::AuthFailed)) {
            return Some(first);
        }
        match &mut self.previous {
            Some((old, until)) if Instant::now() < *until => match old.unprotect_rtp(raw) {
                Ok(plain) => Some(Ok(plain)),
                Err(_) => Some(first),
            },
            _ => Some(first),
        }
    }

    /// A new receive key: a fresh context (rollover counter 0); the old one is kept a while.
    fn rekey(&mut self, key: &mediation::srtp::MasterKey) -> Result<(), String> {
        let fresh = Unprotector::new(key, ReplayWindow::DEFAULT).map_err(|e| e.to_string())?;
        if let Some(old) = self.unprotector.replace(fresh) {
            self.previous = Some((old, Instant::now() + OLD_KEY_GRACE));
        }
        Ok(())
    }

    /// The call goes on hold or resumes.
    fn set_held(&mut self, held: bool) {
        if held != self.held {
            self.resumed |= self.held && !held;
            self.held = held;
            self.stats.start_segment(held);
        }
    }

    /// Takes one datagram from the RTP port; true if it was authentic media (worth latching).
    fn on_rtp(&mut self, raw: &[u8], arrived_us: u64) -> bool {
        self.result.datagrams_received += 1;
        // Plaintext media has our marker right where the payload starts. (Searching the whole
        // datagram for the 4-byte magic finds it in ciphertext about once in 25 million
        // datagrams: a soak of 15 million saw that false alarm.)
        let marker_visible = rtp_packet::payload(raw).is_some_and(|p| p.starts_with(&MAGIC));
        let decrypted;
        let packet: &[u8] = match self.unprotect(raw) {
            Some(result) => match result {
                Ok(plain) => {
                    decrypted = plain;
                    &decrypted
                }
                Err(SrtpError::Replay | SrtpError::TooOld) => {
                    self.result.duplicates += 1;
                    if marker_visible {
                        self.result.plaintext_datagrams += 1;
                    }
                    return false;
                }
                Err(_) => {
                    self.result.srtp_auth_failures += 1;
                    if marker_visible {
                        self.result.plaintext_datagrams += 1;
                    }
                    return false;
                }
            },
            None => raw,
        };
        let Some(payload) = rtp_packet::payload(packet) else {
            self.result.bad_payloads += 1;
            if marker_visible {
                self.result.plaintext_datagrams += 1;
            }
            return false;
        };
        // After SRTP, the plaintext tone must not also be readable in the datagram as sent.
        let tone_visible = self.unprotector.is_some()
            && payload.len() > MARKER_LEN
            && contains(
                raw,
                &payload[MARKER_LEN..MARKER_LEN + 16.min(payload.len() - MARKER_LEN)],
            );
        if marker_visible || tone_visible {
            self.result.plaintext_datagrams += 1;
        }
        match self.tone.verify(payload) {
            PayloadCheck::Ok(marker) => {
                self.stats
                    .record(marker.sequence, marker.sent_us, arrived_us);
                if self.held {
                    self.result.received_while_held += 1;
                } else if self.resumed {
                    self.result.received_after_resume += 1;
                }
                true
            }
            PayloadCheck::Corrupted(_) | PayloadCheck::NoMarker | PayloadCheck::WrongLength(_) => {
                let Some(foreign) = &mut self.foreign else {
                    self.result.bad_payloads += 1;
                    return false;
                };
                // Not our payload: authentic (or, on a plain leg, read as sent) all the same.
                if self.unprotector.is_none() {
                    self.result.plaintext_datagrams += 1;
                }
                let sequence = u16::from_be_bytes([packet[2], packet[3]]);
                self.stats
                    .record(foreign.index(sequence), arrived_us, arrived_us);
                self.result.foreign_payloads += 1;
                if self.held {
                    self.result.received_while_held += 1;
                } else if self.resumed {
                    self.result.received_after_resume += 1;
                }
                true
            }
        }
    }

    /// Takes one datagram from the RTCP port; true if it was authentic RTCP.
    fn on_rtcp(&mut self, raw: &[u8]) -> bool {
        let ok = match &mut self.unprotector {
            Some(rx) => rx.unprotect_rtcp(raw).is_ok(),
            None => rtp_packet::is_rtcp(raw),
        };
        if ok {
            self.result.rtcp_received += 1;
        } else {
            self.result.rtcp_bad += 1;
        }
        ok
    }

    fn into_result(self) -> MediaResult {
        let mut result = self.result;
        let stats = self.stats;
        result.packets_received = stats.received();
        result.packets_lost = stats.lost();
        result.lost_outside_hold = stats.lost_outside_hold();
        result.duplicates += stats.duplicates();
        result.reordered = stats.reordered();
        // A foreign payload carries no send time: no latency or jitter to report.
        if result.foreign_payloads == 0 {
            result.jitter_ms = stats.jitter_ms();
            if let Some((p50, p99)) = stats.latency_ms() {
                result.latency_ms_p50 = Some(p50);
                result.latency_ms_p99 = Some(p99);
            }
        }
        result
    }
}

struct Session {
    sockets: MediaSockets,
    rtp_dest: SocketAddr,
    rtcp_dest: SocketAddr,
    sender: Sender,
    receiver: Receiver,
    cname: String,
}

impl Session {
    async fn run(mut self, mut control: mpsc::UnboundedReceiver<Control>) -> MediaResult {
        let mut ticks = interval(PTIME);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let mut reports = interval_at(Instant::now() + FIRST_RTCP, RTCP_INTERVAL);
        reports.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut sending = true;
        // The offer/answer allows sending (false while the peer holds us or we are inactive).
        let mut allowed = true;
        let mut deadline: Option<Instant> = None;
        let mut control_open = true;
        let mut rtp_buf = vec![0u8; 2048];
        let mut rtcp_buf = vec![0u8; 2048];
        let mut sent_packets = 0u64;
        loop {
            tokio::select! {
                // Orders first: new keys (or a hold) must apply before a packet read right
                // after them, however late this task runs.
                biased;
                command = control.recv(), if control_open => match command {
                    Some(Control::StopSending) => sending = false,
                    Some(Control::Update(change)) => {
                        let was_allowed = std::mem::replace(&mut allowed, self.apply(change));
                        if allowed && !was_allowed {
                            // Resuming: no burst of the ticks missed while paused.
                            ticks.reset_immediately();
                        }
                    }
                    Some(Control::Finish(drain)) => {
                        sending = false;
                        deadline = Some(Instant::now() + drain);
                    }
                    None => {
                        control_open = false;
                        sending = false;
                        deadline.get_or_insert_with(Instant::now);
                    }
                },
                _ = ticks.tick(), if sending && allowed => {
                    match self.sender.next_packet() {
                        Ok(packet) => {
                            if self.sockets.rtp.send_to(&packet, self.rtp_dest).await.is_ok() {
                                sent_packets += 1;
                                if self.receiver.held {
                                    self.receiver.result.sent_while_held += 1;
                                }
                            } else {
                                self.receiver.result.send_errors += 1;
                            }
                        }
                        Err(_) => self.receiver.result.send_errors += 1,
                    }
                }
                _ = reports.tick(), if sending && allowed => {
                    if let Ok(report) = self.sender.sender_report(&self.cname) {
                        if self.sockets.rtcp.send_to(&report, self.rtcp_dest).await.is_ok() {
                            self.receiver.result.rtcp_sent += 1;
                        }
                    }
                }
                received = self.sockets.rtp.recv_from(&mut rtp_buf) => {
                    // Errors (ICMP port unreachable surfacing as ECONNREFUSED) are not fatal.
                    if let Ok((n, from)) = received {
                        if self.receiver.on_rtp(&rtp_buf[..n], now_us()) {
                            self.rtp_dest = from;
                        }
                    }
                }
                received = self.sockets.rtcp.recv_from(&mut rtcp_buf) => {
                    if let Ok((n, from)) = received {
                        if self.receiver.on_rtcp(&rtcp_buf[..n]) {
                            self.rtcp_dest = from;
                        }
                    }
                }
                _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => break,
            }
        }
        let mut result = self.receiver.into_result();
        result.packets_sent = sent_packets;
        result
    }

    /// Applies an offer/answer exchange; returns whether we may send now. Keys that cannot
    /// be used are counted as send errors and the old ones kept.
    fn apply(&mut self, change: MediaChange) -> bool {
        self.receiver.set_held(change.held);
        (self.rtp_dest, self.rtcp_dest) = change.remote;
        if let Some(key) = &change.new_theirs {
            if self.receiver.rekey(key).is_err() {
                self.receiver.result.send_errors += 1;
            }
        }
        if let Some(key) = &change.new_ours {
            match Protector::new(key) {
                Ok(p) => self.sender.protector = Some(p),
                Err(_) => self.receiver.result.send_errors += 1,
            }
        }
        change.send
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::negotiate::SrtpKeys;
    use mediation::srtp::{MasterKey, SrtpSuite};

    fn receiver(unprotector: Option<Unprotector>) -> Receiver {
        Receiver {
            unprotector,
            previous: None,
            held: false,
            resumed: false,
            tone: Tone::new(),
            stats: ReceiveStats::default(),
            result: MediaResult::default(),
            foreign: None,
        }
    }

    fn sender(protector: Option<Protector>) -> Sender {
        Sender {
            protector,
            tone: Tone::new(),
            ssrc: 42,
            rtp_sequence: 65_534,
            timestamp_base: 0,
            sent: 0,
        }
    }

    #[test]
    fn plain_rtp_is_seen_plain_and_verified() {
        let mut tx = sender(None);
        let mut rx = receiver(None);
        for _ in 0..5 {
            let p = tx.next_packet().unwrap();
            assert!(rx.on_rtp(&p, now_us()));
        }
        let r = rx.into_result();
        assert_eq!(r.packets_received, 5);
        assert_eq!(r.wire_encrypted(), Some(false));
        assert!(r.payload_ok());
    }

    #[test]
    fn srtp_is_seen_encrypted_and_verified() {
        for suite in SrtpSuite::ALL {
            let keys = SrtpKeys {
                suite,
                ours: MasterKey::generate(suite).unwrap(),
                theirs: MasterKey::generate(suite).unwrap(),
            };
            let mut tx = sender(Some(Protector::new(&keys.ours).unwrap()));
            let mut rx = receiver(Some(
                Unprotector::new(&keys.ours, ReplayWindow::DEFAULT).unwrap(),
            ));
            let first = tx.next_packet().unwrap();
            assert!(rx.on_rtp(&first, now_us()));
            assert!(!rx.on_rtp(&first, now_us()), "replay");
            for _ in 0..3 {
                let p = tx.next_packet().unwrap();
                assert!(rx.on_rtp(&p, now_us()));
            }
            let report = tx.sender_report("x").unwrap();
            assert!(rx.on_rtcp(&report));
            let r = rx.into_result();
            assert_eq!(r.packets_received, 4, "{suite}");
            assert_eq!(r.duplicates, 1);
            assert_eq!(r.wire_encrypted(), Some(true));
            assert!(r.payload_ok());
            assert_eq!(r.rtcp_received, 1);
        }
    }

    #[test]
    fn plain_rtp_on_an_srtp_leg_is_caught() {
        let key = MasterKey::generate(SrtpSuite::AesCm128HmacSha1_80).unwrap();
        let mut tx = sender(None);
        let mut rx = receiver(Some(Unprotector::new(&key, ReplayWindow::DEFAULT).unwrap()));
        assert!(!rx.on_rtp(&tx.next_packet().unwrap(), now_us()));
        let r = rx.into_result();
        assert_eq!(r.wire_encrypted(), Some(false));
        assert_eq!(r.srtp_auth_failures, 1);
        assert!(!r.payload_ok());
    }

    #[test]
    fn srtp_on_a_plain_leg_is_caught() {
        let key = MasterKey::generate(SrtpSuite::AeadAes256Gcm).unwrap();
        let mut tx = sender(Some(Protector::new(&key).unwrap()));
        let mut rx = receiver(None);
        assert!(!rx.on_rtp(&tx.next_packet().unwrap(), now_us()));
        let r = rx.into_result();
        assert_eq!(r.wire_encrypted(), Some(true));
        assert_eq!(r.bad_payloads, 1);
        assert!(!r.payload_ok());
    }

    /// A packet as a UA that is not a gateway-sim sends it: silence, no marker.
    fn foreign_packet(sequence: u16, protector: &mut Protector) -> Vec<u8> {
        let mut packet = [0xFFu8; PACKET_LEN];
        rtp_packet::write_header(&mut packet, false, sequence, 160 * u32::from(sequence), 7);
        protector.protect_rtp(&packet).unwrap().to_vec()
    }

    #[test]
    fn any_payload_counts_a_foreign_srtp_stream_by_sequence_number_across_a_wrap() {
        let key = MasterKey::generate(SrtpSuite::AesCm128HmacSha1_80).unwrap();
        let mut tx = Protector::new(&key).unwrap();
        let unprotector = || Unprotector::new(&key, ReplayWindow::DEFAULT).unwrap();
        let mut rx = Receiver {
            foreign: Some(ForeignSequence::default()),
            ..receiver(Some(unprotector()))
        };
        // 65530 .. 65535, 0 .. 5 with 3 missing and 1 arriving late.
        let sequences = (65_530..=u16::MAX).chain([0, 2, 1, 4, 5]);
        for sequence in sequences {
            assert!(rx.on_rtp(&foreign_packet(sequence, &mut tx), now_us()));
        }
        let r = rx.into_result();
        assert_eq!(r.packets_received, 11);
        assert_eq!(r.packets_lost, 1, "sequence 3");
        assert_eq!(r.reordered, 1, "sequence 1");
        assert_eq!(r.foreign_payloads, 11);
        assert_eq!(r.wire_encrypted(), Some(true));
        assert!(r.payload_ok());
        assert_eq!(r.latency_ms_p50, None, "a foreign payload has no send time");

        // Without --any-payload the same stream is refused as not ours.
        let mut tx = Protector::new(&key).unwrap();
        let mut rx = receiver(Some(unprotector()));
        assert!(!rx.on_rtp(&foreign_packet(1, &mut tx), now_us()));
        let r = rx.into_result();
        assert_eq!((r.packets_received, r.bad_payloads), (0, 1));
        assert!(!r.payload_ok());
    }

    #[test]
    fn any_payload_still_refuses_what_does_not_authenticate() {
        let key = MasterKey::generate(SrtpSuite::AesCm128HmacSha1_80).unwrap();
        let other = MasterKey::generate(SrtpSuite::AesCm128HmacSha1_80).unwrap();
        let mut rx = Receiver {
            foreign: Some(ForeignSequence::default()),
            ..receiver(Some(Unprotector::new(&key, ReplayWindow::DEFAULT).unwrap()))
        };
        let mut wrong = Protector::new(&other).unwrap();
        assert!(!rx.on_rtp(&foreign_packet(9, &mut wrong), now_us()));
        let r = rx.into_result();
        assert_eq!((r.packets_received, r.srtp_auth_failures), (0, 1));
    }

    #[tokio::test]
    async fn sockets_are_an_even_odd_pair() {
        let s = MediaSockets::bind(IpAddr::from([127, 0, 0, 1]))
            .await
            .unwrap();
        let local = s.local().unwrap();
        assert_eq!(local.rtp_port % 2, 0);
        assert_eq!(s.rtcp.local_addr().unwrap().port(), local.rtp_port + 1);
    }
}
