//! What a run is asked to do: the `answer` and `call` options, the `--srtp` mode and the SIP
//! transport. Plain data, filled by the command line or by a test.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// How this end treats SRTP (`--srtp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SrtpMode {
    /// Calling: offer RTP/SAVP with an `a=crypto` for every suite, take a plain answer.
    /// Answering: SRTP when the offer has a usable `a=crypto`, else plain RTP.
    #[default]
    Offer,
    /// Calling: offer plain RTP/AVP. Answering: like `offer`, SRTP if offered.
    Accept,
    /// Plain RTP only: an SRTP-only (RTP/SAVP) offer gets 488; keys in an RTP/AVP offer are
    /// ignored.
    Refuse,
    /// SRTP only: 488 to an offer without usable keys; a call whose answer is plain fails.
    Require,
}

impl SrtpMode {
    /// The name on the command line.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Offer => "offer",
            Self::Accept => "accept",
            Self::Refuse => "refuse",
            Self::Require => "require",
        }
    }
}

impl fmt::Display for SrtpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word that is not one of the choices.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{given}` is not one of: {choices}")]
pub struct BadChoice {
    /// What was given.
    pub(crate) given: String,
    /// What is accepted.
    pub(crate) choices: &'static str,
}

impl FromStr for SrtpMode {
    type Err = BadChoice;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "offer" => Ok(Self::Offer),
            "accept" => Ok(Self::Accept),
            "refuse" => Ok(Self::Refuse),
            "require" => Ok(Self::Require),
            _ => Err(BadChoice {
                given: s.into(),
                choices: "offer, accept, refuse, require",
            }),
        }
    }
}

/// SIP transport of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// Plain TCP.
    #[default]
    Tcp,
    /// TLS (always mutual when we are the server).
    Tls,
}

impl Transport {
    /// `tcp` or `tls`, as in reports.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Tls => "tls",
        }
    }

    /// The Via transport token.
    pub(crate) fn via_token(self) -> &'static str {
        match self {
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Transport {
    type Err = BadChoice;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tcp" => Ok(Self::Tcp),
            "tls" => Ok(Self::Tls),
            _ => Err(BadChoice {
                given: s.into(),
                choices: "tcp, tls",
            }),
        }
    }
}

/// PEM files for TLS. `cert` and `key` are optional for a caller, which then withholds a client
/// certificate (to test that the far end refuses it); a server always needs them.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    /// Our certificate chain.
    pub cert: Option<PathBuf>,
    /// Our private key.
    pub key: Option<PathBuf>,
    /// CAs that the far end's certificate must chain to.
    pub ca: PathBuf,
}

/// The default media address.
pub const DEFAULT_MEDIA_IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// `gateway-sim answer`.
#[derive(Debug, Clone)]
pub struct AnswerOptions {
    /// Where to listen for SIP.
    pub listen: SocketAddr,
    /// MTLS (client certificate required and verified) instead of TCP.
    pub tls: Option<TlsFiles>,
    /// SRTP mode.
    pub srtp: SrtpMode,
    /// Stop after this many calls have ended (any outcome); run until shut down when `None`.
    pub max_calls: Option<u64>,
    /// Address for media sockets and SDP.
    pub media_ip: IpAddr,
    /// When set, this end hangs up (BYE) that long after the ACK; else it waits for the BYE.
    pub duration: Option<Duration>,
    /// Time between 180 Ringing and 200 OK (a CANCEL in that time is honoured).
    pub ring: Duration,
    /// How long to wait for an ACK, or a response to our BYE.
    pub timeout: Duration,
    /// Answer a re-offer with a fresh SRTP key of ours (else ours is kept).
    pub rekey: bool,
    /// Put each call's SRTP keys in the report (tests only).
    pub report_keys: bool,
    /// The caller is not a gateway-sim (a real UA such as baresip): count every authentic RTP
    /// packet as received, by its RTP sequence number, instead of checking our marker and
    /// tone in its payload. Latency and jitter are then unknown.
    pub any_payload: bool,
}

impl AnswerOptions {
    /// Plain TCP, `--srtp offer`, on `listen`, defaults for the rest.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            tls: None,
            srtp: SrtpMode::Offer,
            max_calls: None,
            media_ip: DEFAULT_MEDIA_IP,
            duration: None,
            ring: Duration::ZERO,
            timeout: Duration::from_secs(10),
            rekey: false,
            report_keys: false,
            any_payload: false,
        }
    }
}

/// `gateway-sim call`.
#[derive(Debug, Clone)]
pub struct CallOptions {
    /// Where to connect (`host:port`).
    pub target: String,
    /// Request-URI and To of every INVITE.
    pub to: String,
    /// From URI; `sip:gateway-sim@<local address>` when `None`.
    pub from: Option<String>,
    /// SIP transport.
    pub transport: Transport,
    /// TLS files (needed for `Transport::Tls`).
    pub tls: Option<TlsFiles>,
    /// Name the far end's certificate must carry; the host of `target` when `None`.
    pub server_name: Option<String>,
    /// SRTP mode.
    pub srtp: SrtpMode,
    /// Media time per call, from the ACK to our BYE.
    pub duration: Duration,
    /// Calls to place.
    pub calls: u64,
    /// Calls in progress at once, at most.
    pub concurrency: u64,
    /// Call attempts per second, at most (`None`: as fast as concurrency allows).
    pub rate: Option<f64>,
    /// Address for media sockets and SDP.
    pub media_ip: IpAddr,
    /// How long to wait for the connection, a final response to INVITE or BYE.
    pub timeout: Duration,
    /// Draw a live progress line on stderr (the binary sets it when stderr is a terminal).
    pub progress: bool,
    /// Put the call on hold (re-INVITE with `a=sendonly`) this long after the ACK.
    pub hold_at: Option<Duration>,
    /// Resume it (re-INVITE with `a=sendrecv`) this long after the ACK.
    pub resume_at: Option<Duration>,
    /// Send an INFO with a DTMF digit (`application/dtmf-relay`) this long after the ACK;
    /// anything but a 2xx to it fails the call.
    pub info_at: Option<Duration>,
    /// Answer a re-offer with a fresh SRTP key of ours (else ours is kept).
    pub rekey: bool,
    /// Offer SRTP as Lync does: `RTP/AVP` with `a=crypto` (lifetime and MKI on every key) and
    /// `a=encryption:`.
    pub lync: bool,
    /// Put each call's SRTP keys in the report (tests only).
    pub report_keys: bool,
}

impl CallOptions {
    /// One 3-second call over TCP to `target` with `--srtp offer`, defaults for the rest.
    pub fn new(target: impl Into<String>, to: impl Into<String>) -> Self {
        Self {
            target: target.into(),
            to: to.into(),
            from: None,
            transport: Transport::Tcp,
            tls: None,
            server_name: None,
            srtp: SrtpMode::Offer,
            duration: Duration::from_secs(3),
            calls: 1,
            concurrency: 1,
            rate: None,
            media_ip: DEFAULT_MEDIA_IP,
            timeout: Duration::from_secs(10),
            progress: false,
            hold_at: None,
            resume_at: None,
            info_at: None,
            rekey: false,
            lync: false,
            report_keys: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for mode in [
            SrtpMode::Offer,
            SrtpMode::Accept,
            SrtpMode::Refuse,
            SrtpMode::Require,
        ] {
            assert_eq!(mode.as_str().parse::<SrtpMode>(), Ok(mode));
        }
        assert!("maybe".parse::<SrtpMode>().is_err());
        assert_eq!("tls".parse::<Transport>(), Ok(Transport::Tls));
        assert!("udp".parse::<Transport>().is_err());
    }
}
