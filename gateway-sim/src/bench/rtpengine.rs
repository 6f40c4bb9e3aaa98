//! rtpengine (Sipwise, userspace forwarding only: `--table=-1`) as the comparison relay: the
//! daemon is started for its rows and driven over its `ng` control protocol (bencoded
//! dictionaries over UDP) to bridge SDES SRTP (AES_CM_128_HMAC_SHA1_80) and plain RTP, as a
//! B2BUA's operator would otherwise deploy it. Keys travel in the SDP `a=crypto` lines: ours in
//! what we give it, its own in what it answers.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use mediation::sdp::{CryptoAttribute, MasterKeySalt};
use mediation::srtp::{MasterKey, SrtpSuite};

use super::cpu::CpuClock;
use super::load::Flow;

/// rtpengine's media ports (ours use 20000-39999).
const PORT_MIN: u16 = 40000;
const PORT_MAX: u16 = 59999;
/// The only suite rtpengine is asked to use on its SRTP side.
pub(crate) const SUITE: SrtpSuite = SrtpSuite::AesCm128HmacSha1_80;

/// Which way rtpengine bridges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// The caller sends SRTP, rtpengine sends plain RTP to the callee.
    SrtpToRtp,
    /// The caller sends plain RTP, rtpengine sends SRTP to the callee.
    RtpToSrtp,
}

/// A running rtpengine daemon.
#[derive(Debug)]
pub(crate) struct Rtpengine {
    child: Child,
    ng: UdpSocket,
    cpu: CpuClock,
    calls: Vec<String>,
    next_call: u64,
    cookie: u64,
    /// Where its log goes.
    pub(crate) log: PathBuf,
}

impl Rtpengine {
    /// Starts `binary` in the foreground with one worker thread and waits for its `ng` port.
    pub(crate) fn start(binary: &str, log: PathBuf) -> anyhow::Result<Self> {
        let ng = UdpSocket::bind("127.0.0.1:0")?;
        ng.set_read_timeout(Some(Duration::from_millis(500)))?;
        // A free port for its control socket: bind one, let it go, hand it over.
        let ng_port = UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
        let stderr = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new(binary)
            .args([
                "--config-file=none",
                "--table=-1",
                "--foreground",
                "--log-stderr",
                "--log-level=4",
                "--interface=127.0.0.1",
                &format!("--listen-ng=127.0.0.1:{ng_port}"),
                &format!("--port-min={PORT_MIN}"),
                &format!("--port-max={PORT_MAX}"),
                "--num-threads=1",
                "--delete-delay=0",
                "--timeout=600",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| {
                format!("starting {binary} (Debian: apt-get install rtpengine-daemon)")
            })?;
        let cpu = CpuClock::process(child.id());
        ng.connect(("127.0.0.1", ng_port))?;
        let mut engine = Self {
            child,
            ng,
            cpu,
            calls: Vec::new(),
            next_call: 0,
            cookie: 0,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = engine.child.try_wait()? {
                bail!(
                    "rtpengine exited at start ({status}); see {}",
                    engine.log.display()
                );
            }
            match engine.request(&[("command", Value::str("ping"))]) {
                Ok(reply)
                    if reply.get(b"result".as_slice()).and_then(Value::as_str) == Some("pong") =>
                {
                    break
                }
                _ if Instant::now() < deadline => continue,
                other => bail!(
                    "rtpengine does not answer ng ping: {other:?}; see {}",
                    engine.log.display()
                ),
            }
        }
        Ok(engine)
    }

    /// The daemon's CPU time so far, all threads.
    pub(crate) fn cpu(&self) -> io::Result<Duration> {
        self.cpu.read()
    }

    /// Sets up `calls` calls, each bridging `direction` between the generator's `sender`
    /// (the caller's media address) and `receiver` (the callee's).
    pub(crate) fn setup(
        &mut self,
        calls: usize,
        direction: Direction,
        sender: SocketAddr,
        receiver: SocketAddr,
    ) -> anyhow::Result<Vec<Flow>> {
        (0..calls)
            .map(|_| self.call(direction, sender, receiver))
            .collect()
    }

    fn call(
        &mut self,
        direction: Direction,
        sender: SocketAddr,
        receiver: SocketAddr,
    ) -> anyhow::Result<Flow> {
        self.next_call += 1;
        let call_id = format!("bench-{}-{}", std::process::id(), self.next_call);
        let (srtp_offer, srtp_answer) = match direction {
            Direction::SrtpToRtp => (true, false),
            Direction::RtpToSrtp => (false, true),
        };
        // Our key for what the caller sends (used on SRTP→RTP).
        let caller_key = MasterKeySalt::generate(SUITE);
        let caller_crypto = srtp_offer.then(|| CryptoAttribute::new(1, SUITE, caller_key.clone()));
        let offer_sdp = sdp(sender, caller_crypto.as_ref());
        let offer = self.request(&[
            ("command", Value::str("offer")),
            ("call-id", Value::str(&call_id)),
            ("from-tag", Value::str("caller")),
            ("sdp", Value::str(&offer_sdp)),
            (
                "transport-protocol",
                Value::str(if srtp_answer { "RTP/SAVP" } else { "RTP/AVP" }),
            ),
            ("ICE", Value::str("remove")),
            (
                "replace",
                Value::List(vec![Value::str("origin"), Value::str("session-connection")]),
            ),
        ])?;
        self.calls.push(call_id.clone());
        let to_callee = reply_sdp(&offer, "offer")?;
        // On RTP→SRTP, rtpengine offers its keys to the callee; we (the callee) take the
        // AES_CM_128_HMAC_SHA1_80 one and answer with a key of ours for the same tag.
        let engine_key = if srtp_answer {
            let chosen = crypto_lines(&to_callee)
                .find(|c| c.known_suite().ok() == Some(SUITE))
                .ok_or_else(|| anyhow!("rtpengine offered no {SUITE}:\n{to_callee}"))?;
            Some(chosen)
        } else {
            None
        };
        let callee_crypto = engine_key
            .as_ref()
            .map(|c| CryptoAttribute::new(c.tag, SUITE, MasterKeySalt::generate(SUITE)));
        let answer_sdp = sdp(receiver, callee_crypto.as_ref());
        let answer = self.request(&[
            ("command", Value::str("answer")),
            ("call-id", Value::str(&call_id)),
            ("from-tag", Value::str("caller")),
            ("to-tag", Value::str("callee")),
            ("sdp", Value::str(&answer_sdp)),
            ("ICE", Value::str("remove")),
            (
                "replace",
                Value::List(vec![Value::str("origin"), Value::str("session-connection")]),
            ),
        ])?;
        let to_caller = reply_sdp(&answer, "answer")?;
        let dest = media_addr(&to_caller)
            .ok_or_else(|| anyhow!("no media address in rtpengine's answer:\n{to_caller}"))?;
        if srtp_offer && !to_caller.contains("RTP/SAVP") {
            bail!("rtpengine answered the SRTP caller without SRTP:\n{to_caller}");
        }
        if srtp_answer && !to_callee.contains("RTP/SAVP") {
            bail!("rtpengine offered the callee no SRTP:\n{to_callee}");
        }
        let key = |k: &MasterKeySalt| MasterKey::from_bytes(SUITE, k.as_bytes());
        Ok(Flow {
            dest,
            send_key: srtp_offer.then(|| key(&caller_key)).transpose()?,
            recv_key: engine_key.map(|c| key(&c.keys[0].key_salt)).transpose()?,
        })
    }

    /// Deletes every call set up so far.
    pub(crate) fn teardown(&mut self) -> anyhow::Result<()> {
        for call_id in std::mem::take(&mut self.calls) {
            self.request(&[
                ("command", Value::str("delete")),
                ("call-id", Value::str(&call_id)),
                ("from-tag", Value::str("caller")),
            ])?;
        }
        Ok(())
    }

    /// One ng request and its reply dictionary (retried on a lost datagram).
    fn request(&mut self, dict: &[(&str, Value)]) -> anyhow::Result<BTreeMap<Vec<u8>, Value>> {
        let message = Value::Dict(
            dict.iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.clone()))
                .collect(),
        );
        for _ in 0..5 {
            self.cookie += 1;
            let mut datagram = format!("{} ", self.cookie).into_bytes();
            message.encode(&mut datagram);
            self.ng.send(&datagram)?;
            let mut buf = vec![0u8; 65536];
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                let len = match self.ng.recv(&mut buf) {
                    Ok(len) => len,
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        break
                    }
                    Err(e) => return Err(e.into()),
                };
                let reply = &buf[..len];
                let Some(space) = reply.iter().position(|&b| b == b' ') else {
                    continue;
                };
                if reply[..space] != *self.cookie.to_string().as_bytes() {
                    continue; // a late reply to an earlier try
                }
                let (value, _) = Value::decode(&reply[space + 1..])
                    .ok_or_else(|| anyhow!("undecodable ng reply"))?;
                let Value::Dict(reply) = value else {
                    bail!("ng reply is not a dictionary");
                };
                if reply.get(b"result".as_slice()).and_then(Value::as_str) == Some("error") {
                    let reason = reply
                        .get(b"error-reason".as_slice())
                        .and_then(Value::as_str)
                        .unwrap_or("?");
                    bail!("rtpengine refused: {reason}");
                }
                return Ok(reply);
            }
        }
        bail!("rtpengine does not answer on its ng port")
    }
}

impl Drop for Rtpengine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The SDP of a peer sending and receiving PCMU at `media`, SRTP if `crypto`.
fn sdp(media: SocketAddr, crypto: Option<&CryptoAttribute>) -> String {
    let proto = if crypto.is_some() {
        "RTP/SAVP"
    } else {
        "RTP/AVP"
    };
    let mut sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} {proto} 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n",
        ip = media.ip(),
        port = media.port(),
    );
    if let Some(crypto) = crypto {
        sdp.push_str(&format!("a=crypto:{crypto}\r\n"));
    }
    sdp
}

fn reply_sdp(reply: &BTreeMap<Vec<u8>, Value>, what: &str) -> anyhow::Result<String> {
    reply
        .get(b"sdp".as_slice())
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("rtpengine's {what} reply has no SDP"))
}

fn crypto_lines(sdp: &str) -> impl Iterator<Item = CryptoAttribute> + '_ {
    sdp.lines()
        .filter_map(|l| l.trim_end().strip_prefix("a=crypto:"))
        .filter_map(|v| CryptoAttribute::parse(v).ok())
}

/// `c=` address and `m=audio` port.
fn media_addr(sdp: &str) -> Option<SocketAddr> {
    let ip = sdp
        .lines()
        .filter_map(|l| l.trim_end().strip_prefix("c=IN IP4 "))
        .next_back()?
        .parse()
        .ok()?;
    let port = sdp
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))?
        .split(' ')
        .next()?
        .parse()
        .ok()?;
    Some(SocketAddr::new(ip, port))
}

/// A bencoded value (the ng protocol's encoding).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// Byte string.
    Bytes(Vec<u8>),
    /// Integer.
    Int(i64),
    /// List.
    List(Vec<Value>),
    /// Dictionary, keys sorted as bencode requires.
    Dict(BTreeMap<Vec<u8>, Value>),
}

impl Value {
    fn str(s: &str) -> Self {
        Value::Bytes(s.as_bytes().to_vec())
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Value::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// Appends the encoding to `out`.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Bytes(b) => {
                out.extend_from_slice(format!("{}:", b.len()).as_bytes());
                out.extend_from_slice(b);
            }
            Value::Int(i) => out.extend_from_slice(format!("i{i}e").as_bytes()),
            Value::List(items) => {
                out.push(b'l');
                items.iter().for_each(|v| v.encode(out));
                out.push(b'e');
            }
            Value::Dict(entries) => {
                out.push(b'd');
                for (k, v) in entries {
                    Value::Bytes(k.clone()).encode(out);
                    v.encode(out);
                }
                out.push(b'e');
            }
        }
    }

    /// Decodes one value from the start of `input`; returns it and the rest.
    pub(crate) fn decode(input: &[u8]) -> Option<(Value, &[u8])> {
        match *input.first()? {
            b'i' => {
                let end = input.iter().position(|&b| b == b'e')?;
                let n = std::str::from_utf8(&input[1..end]).ok()?.parse().ok()?;
                Some((Value::Int(n), &input[end + 1..]))
            }
            b'l' => {
                let (mut rest, mut items) = (&input[1..], Vec::new());
                while *rest.first()? != b'e' {
                    let (v, r) = Value::decode(rest)?;
                    items.push(v);
                    rest = r;
                }
                Some((Value::List(items), &rest[1..]))
            }
            b'd' => {
                let (mut rest, mut entries) = (&input[1..], BTreeMap::new());
                while *rest.first()? != b'e' {
                    let (Value::Bytes(k), r) = Value::decode(rest)? else {
                        return None;
                    };
                    let (v, r) = Value::decode(r)?;
                    entries.insert(k, v);
                    rest = r;
                }
                Some((Value::Dict(entries), &rest[1..]))
            }
            b'0'..=b'9' => {
                let colon = input.iter().position(|&b| b == b':')?;
                let len: usize = std::str::from_utf8(&input[..colon]).ok()?.parse().ok()?;
                let body = input.get(colon + 1..colon + 1 + len)?;
                Some((Value::Bytes(body.to_vec()), &input[colon + 1 + len..]))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bencode_round_trip() {
        let v = Value::Dict(BTreeMap::from([
            (b"command".to_vec(), Value::str("offer")),
            (b"n".to_vec(), Value::Int(-3)),
            (
                b"flags".to_vec(),
                Value::List(vec![Value::str("a"), Value::str("")]),
            ),
        ]));
        let mut out = Vec::new();
        v.encode(&mut out);
        assert_eq!(out, b"d7:command5:offer5:flagsl1:a0:e1:ni-3ee".to_vec());
        assert_eq!(Value::decode(&out), Some((v, &b""[..])));
    }

    #[test]
    fn media_address_from_sdp() {
        let sdp = "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 40002 RTP/SAVP 0\r\n";
        assert_eq!(media_addr(sdp), Some("127.0.0.1:40002".parse().unwrap()));
    }
}
