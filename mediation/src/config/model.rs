//! The typed configuration. Defaults are the secure choices; every field is documented for
//! operators in `deploy/mediation.toml`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub use super::address_list::{AddressList, IpFamily};

use crate::srtp::SrtpSuite;

/// The whole `mediation.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[node]`: who this server is.
    pub(crate) node: NodeConfig,
    /// `[tls]`: our certificate and the CAs we trust.
    pub tls: TlsConfig,
    /// `[next_hop]`: the internal side.
    pub next_hop: NextHopConfig,
    /// `[gateway_listen]`: where gateways connect to us.
    #[serde(default)]
    pub(crate) gateway_listen: GatewayListenConfig,
    /// `[[gateway]]`: the PSTN gateways (trunks) we serve.
    #[serde(default, rename = "gateway")]
    pub gateways: Vec<GatewayConfig>,
    /// `[media]`: the relay's sockets and SRTP suites.
    pub(crate) media: MediaConfig,
    /// `[[route]]`: which gateways calls from the next hop go to, by called number.
    #[serde(default, rename = "route")]
    pub(crate) routes: Vec<RouteConfig>,
    /// `[sip]`: protocol timers and limits.
    #[serde(default)]
    pub sip: SipConfig,
    /// `[metrics]`: the Prometheus endpoint.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// `[log]`: log format and level.
    #[serde(default)]
    pub log: LogConfig,
}

/// `[node]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NodeConfig {
    /// SIP host name of this server (used in Via, Contact and Record-Route).
    pub(crate) name: String,
}

/// `[tls]`. Paths are relative to the configuration file's directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain presented on every TLS connection, both ways.
    pub(crate) certificate: PathBuf,
    /// PEM private key of that certificate.
    pub(crate) private_key: PathBuf,
    /// PEM bundle of CAs whose gateway and next-hop certificates are trusted.
    pub(crate) trusted_cas: PathBuf,
    /// PEM CRLs checked for every peer certificate.
    #[serde(default)]
    pub(crate) crls: Vec<PathBuf>,
    /// Lowest TLS version accepted: "1.2" (default) or "1.3". Never lower.
    #[serde(default)]
    pub min_version: TlsVersion,
    /// Restrict TLS and SRTP to FIPS 140 approved algorithms.
    #[serde(default)]
    pub fips: bool,
    /// Seconds a peer has to complete the TLS handshake.
    #[serde(default = "default_handshake_timeout")]
    pub(crate) handshake_timeout_secs: u64,
}

impl TlsConfig {
    /// The handshake timeout as a duration.
    pub(crate) fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.handshake_timeout_secs)
    }
}

fn default_handshake_timeout() -> u64 {
    10
}

/// The lowest TLS protocol version accepted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum TlsVersion {
    /// TLS 1.2 and 1.3.
    #[default]
    #[serde(rename = "1.2")]
    Tls12,
    /// TLS 1.3 only.
    #[serde(rename = "1.3")]
    Tls13,
}

/// `[next_hop]`: the internal side, always MTLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NextHopConfig {
    /// Socket address of the MTLS listener for the next hop.
    #[serde(default = "default_next_hop_listen")]
    pub(crate) listen: SocketAddr,
    /// `host:port` where calls toward the internal side are sent (MTLS).
    pub address: String,
    /// DNS name the next hop's certificate must carry.
    pub(crate) identity: String,
    /// SRTP policy toward the next hop.
    #[serde(default)]
    pub encryption: EncryptionLevel,
    /// A call whose number came as a tel: URI reaches the next hop as a sip: URI with
    /// `user=phone` (RFC 3261 §19.1.1); `false` leaves the parameter out.
    #[serde(default = "default_true")]
    pub(crate) user_phone: bool,
}

fn default_next_hop_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 5070))
}

/// Media encryption toward the next hop (Lync's `EncryptionLevel`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EncryptionLevel {
    /// SRTP or no call (`488`).
    #[default]
    Required,
    /// SRTP preferred, plain RTP accepted.
    Supported,
    /// Plain RTP only. Insecure: logged at start-up and reported in metrics.
    NotSupported,
}

/// `[gateway_listen]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GatewayListenConfig {
    /// MTLS listener for gateways; absent disables it.
    #[serde(default = "default_gateway_tls")]
    pub(crate) tls: Option<SocketAddr>,
    /// Plain TCP listener for gateways; absent disables it.
    #[serde(default = "default_gateway_tcp")]
    pub(crate) tcp: Option<SocketAddr>,
    /// Plain UDP socket for `transport = "udp"` gateways; absent (the default) opens none.
    #[serde(default)]
    pub(crate) udp: Option<SocketAddr>,
}

impl Default for GatewayListenConfig {
    fn default() -> Self {
        Self {
            tls: default_gateway_tls(),
            tcp: default_gateway_tcp(),
            udp: None,
        }
    }
}

fn default_gateway_tls() -> Option<SocketAddr> {
    Some(SocketAddr::from(([0, 0, 0, 0], 5067)))
}

fn default_gateway_tcp() -> Option<SocketAddr> {
    Some(SocketAddr::from(([0, 0, 0, 0], 5068)))
}

/// `[[gateway]]`: one PSTN gateway or trunk.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Short name used in logs and metric labels.
    pub(crate) name: String,
    /// `host:port` where calls toward this gateway are sent.
    pub(crate) address: String,
    /// Signalling transport: `tls` (always mutual), `tcp` or `udp`.
    pub(crate) transport: GatewayTransport,
    /// DNS name the gateway's certificate must carry (`tls`).
    #[serde(default)]
    pub(crate) identity: Option<String>,
    /// Source IP addresses a `tcp` or `udp` gateway sends from; default: the address's host.
    #[serde(default)]
    pub(crate) sources: Vec<IpAddr>,
    /// SRTP toward this gateway.
    #[serde(default)]
    pub(crate) srtp: SrtpMode,
    /// Seconds between OPTIONS probes that mark the gateway up or down; 0 turns them off.
    #[serde(default = "default_options_interval")]
    pub(crate) options_interval_secs: u64,
    /// Run RFC 4028 session timers on this gateway's leg even when the gateway does not ask
    /// (Lync's trunk `EnableSessionTimer`): we ask for `[sip] session_expires_secs` and
    /// refresh, and a call whose gateway stops refreshing is ended.
    #[serde(default)]
    pub(crate) enable_session_timer: bool,
    /// SRTP suites offered to and accepted from this gateway, in order of preference; default:
    /// `[media] srtp_suites`. (An older gateway may mishandle GCM or 256-bit keys offered
    /// before the suite it can do.)
    #[serde(default)]
    pub(crate) srtp_suites: Option<Vec<SrtpSuite>>,
    /// How we offer SRTP to this gateway: `savp` (`RTP/SAVP` with `a=crypto`, RFC 4568) or
    /// `avp-crypto` (`RTP/AVP` with `a=crypto` and `a=encryption:optional|required`, as Lync
    /// does and RFC 8643 describes), which a gateway that will not do SRTP can still answer
    /// with plain RTP where the trunk's `srtp = "optional"`.
    #[serde(default)]
    pub(crate) srtp_offer_style: SrtpOfferStyle,
    /// Where plain RTP from this gateway may come from: `sdp` (the IP address in its SDP; the
    /// port is learned from its first packet) or `any` (for a gateway behind NAT: the first
    /// packet latches). SRTP is taken from wherever it authenticates.
    #[serde(default)]
    pub(crate) media_sources: MediaSources,
    /// The networks this gateway's SDP may ask media to be sent to (`["192.0.2.0/24"]`); empty
    /// (the default): any. An offer or answer naming another address is refused with 488, so
    /// the gateway's signalling cannot aim our RTP at a third party.
    #[serde(default)]
    pub(crate) media_networks: Vec<super::IpNet>,
    /// Calls with this gateway at once, both directions (default: only `[sip] max_calls`):
    /// further calls from it get 503 with Retry-After, and calls toward it go to the next
    /// gateway of their route, or get 503.
    #[serde(default)]
    pub(crate) max_calls: Option<usize>,
    /// A call whose number came as a tel: URI reaches this gateway as a sip: URI with
    /// `user=phone` (RFC 3261 §19.1.1); `false` leaves the parameter out.
    #[serde(default = "default_true")]
    pub(crate) user_phone: bool,
    /// Number translation on this trunk (Lync's trunk translation rules), in order: for each
    /// number and direction, the first rule whose pattern matches rewrites the number
    /// (`[[gateway.number_rules]]`).
    #[serde(default)]
    pub(crate) number_rules: Vec<NumberRule>,
    /// Numbers sent to this gateway lose a leading `+` (Lync's `RemovePlusFromUri`), after the
    /// number rules.
    #[serde(default)]
    pub(crate) remove_plus: bool,
    /// Copy `History-Info` and `Diversion` (where the call was forwarded from) to the far leg
    /// of calls with this gateway, either way (Lync's `ForwardCallHistory`). Off: stripped.
    #[serde(default)]
    pub(crate) forward_history: bool,
}

/// `[[gateway.number_rules]]`: a number matching `pattern` becomes `replace`, in which `$1`,
/// `${2}` or `${name}` stand for the pattern's groups.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NumberRule {
    /// Which number: `called` (the Request-URI's and To's user part) or `calling` (From's).
    pub(crate) number: NumberKind,
    /// Calls `to-gateway` (default: calls from the next hop to this gateway) or
    /// `from-gateway` (calls from this gateway to the next hop).
    #[serde(default)]
    pub(crate) direction: RuleDirection,
    /// A regular expression matched against the number (tel: numbers without their visual
    /// separators); anchor it (`^...$`) to match the whole number.
    #[serde(with = "serde_regex")]
    pub(crate) pattern: regex::Regex,
    /// What a matching number becomes.
    pub(crate) replace: String,
}

/// The number a rule rewrites.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum NumberKind {
    /// The called number.
    Called,
    /// The calling number.
    Calling,
}

/// The calls a rule applies to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RuleDirection {
    /// Calls we place to the gateway.
    #[default]
    ToGateway,
    /// Calls the gateway places to the next hop.
    FromGateway,
}

/// How SRTP is offered toward a gateway.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum SrtpOfferStyle {
    /// `m=audio ... RTP/SAVP` with `a=crypto`: the answer must be SRTP (RFC 3264 keeps the
    /// profile); a gateway that cannot do it answers 488.
    #[default]
    Savp,
    /// `m=audio ... RTP/AVP` with `a=crypto` and `a=encryption:` (MS-SDPEXT, RFC 8643): the
    /// answer chooses SRTP (with `a=crypto`) or plain RTP (without).
    AvpCrypto,
}

fn default_options_interval() -> u64 {
    30
}

/// `[[route]]`: calls from the next hop whose called number matches `pattern` go to
/// `gateways`, tried in order (a gateway marked down by OPTIONS is skipped).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteConfig {
    /// A regular expression matched against the called number (the Request-URI user part).
    #[serde(with = "serde_regex")]
    pub(crate) pattern: regex::Regex,
    /// Gateway names, in order of preference.
    pub(crate) gateways: Vec<String>,
}

mod serde_regex {
    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<regex::Regex, D::Error> {
        let text = String::deserialize(d)?;
        regex::Regex::new(&text)
            .map_err(|e| serde::de::Error::custom(format!("not a regular expression: {e}")))
    }
}

/// Signalling transport toward a gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GatewayTransport {
    /// Mutual TLS.
    Tls,
    /// Plain TCP: no SRTP keys ever cross it.
    Tcp,
    /// Plain UDP with RFC 3261 §17 retransmissions: no SRTP keys ever cross it.
    Udp,
}

/// SRTP toward a gateway (Lync's trunk `SRTPMode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SrtpMode {
    /// SRTP when the gateway proved itself and its SDP offers or accepts it.
    #[default]
    Optional,
    /// SRTP or no call (`488`); needs `transport = "tls"`.
    Required,
    /// Plain RTP always.
    NotSupported,
}

/// `[media]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MediaConfig {
    /// Local addresses the media sockets bind to, at most one per family (`"192.0.2.10"` or
    /// `["192.0.2.10", "2001:db8::10"]`); a family not given binds to `0.0.0.0` or `::`. Each
    /// family needs an `advertise` address.
    #[serde(default)]
    pub(crate) bind: AddressList,
    /// Addresses written into SDP (the ones peers send media to) and into our Via and Contact,
    /// at most one per family. Each leg uses the one of its peer's family; a peer known only by
    /// host name gets the first one's.
    pub(crate) advertise: AddressList,
    /// UDP port range for RTP/RTCP pairs, `first-last`.
    #[serde(default = "default_ports")]
    pub(crate) ports: PortRange,
    /// SRTP suites offered and accepted, in order of preference.
    #[serde(default = "default_suites")]
    pub(crate) srtp_suites: Vec<SrtpSuite>,
    /// Seconds without any RTP or RTCP in either direction after which a call is ended with
    /// BYE on both legs (Lync's `RTCPActiveCalls`); 0 never ends a call for silence.
    #[serde(default = "default_media_timeout")]
    pub(crate) media_timeout_secs: u64,
    /// SRTP/SRTCP replay window in packets (RFC 3711 §3.3.2), 64..=32768, rounded up to a
    /// multiple of 64: how late a packet may arrive and still be accepted once. Replayed and
    /// too-old packets are dropped and counted per leg.
    #[serde(default = "default_replay_window")]
    pub(crate) replay_window: usize,
    /// Media threads relaying calls (each owns the calls given to it); 0: one per core the
    /// process may use.
    #[serde(default)]
    pub(crate) threads: usize,
}

fn default_replay_window() -> usize {
    crate::srtp::ReplayWindow::DEFAULT.packets()
}

fn default_media_timeout() -> u64 {
    30
}

impl MediaConfig {
    /// The address media sockets of `family` bind to: `bind`'s of that family, else the
    /// family's unspecified address; `None` when `advertise` has no address of that family.
    pub(crate) fn bind_for(&self, family: IpFamily) -> Option<IpAddr> {
        self.advertise.get(family)?;
        Some(self.bind.get(family).unwrap_or(family.unspecified()))
    }
}

fn default_ports() -> PortRange {
    PortRange {
        first: 49152,
        last: 57500,
    }
}

fn default_suites() -> Vec<SrtpSuite> {
    SrtpSuite::ALL.to_vec()
}

/// An inclusive UDP port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PortRange {
    /// First port.
    pub(crate) first: u16,
    /// Last port (inclusive).
    pub(crate) last: u16,
}

impl PortRange {
    /// Number of RTP/RTCP pairs (even RTP port, odd RTCP port) that fit in the range.
    pub(crate) fn pairs(&self) -> usize {
        let first_even = u32::from(self.first) + u32::from(self.first % 2);
        let last = u32::from(self.last);
        if first_even + 1 > last {
            0
        } else {
            (last - first_even).div_ceil(2) as usize
        }
    }
}

impl std::str::FromStr for PortRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("`{s}` is not a range like \"49152-57500\""))?;
        let parse = |p: &str| {
            p.trim()
                .parse::<u16>()
                .map_err(|_| format!("`{}` is not a port number (1-65535)", p.trim()))
        };
        Ok(PortRange {
            first: parse(a)?,
            last: parse(b)?,
        })
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// `[sip]`: timers and limits of the SIP layer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipConfig {
    /// Seconds to wait for a final answer to an INVITE before giving up (`408`).
    #[serde(default = "default_answer_timeout")]
    pub(crate) answer_timeout_secs: u64,
    /// Largest SIP message accepted on a stream, in bytes.
    #[serde(default = "default_max_message")]
    pub(crate) max_message_bytes: usize,
    /// Most header lines accepted in one message.
    #[serde(default = "default_max_headers")]
    pub(crate) max_headers: usize,
    /// Copy `P-Asserted-Identity` and `Privacy` from the caller's INVITE to the callee's.
    #[serde(default = "default_true")]
    pub(crate) forward_pai: bool,
    /// Further headers copied byte for byte from the caller's INVITE to the callee's: names
    /// (case-insensitive) or prefixes ending in `*` (`["X-*", "ms-*", "User-to-User"]`). The
    /// headers the B2BUA writes itself (Via, From, To, Contact, Route, ...) cannot be listed.
    #[serde(default)]
    pub(crate) pass_headers: Vec<String>,
    /// Seconds a gateway has to send a provisional response before the call moves to the next
    /// gateway of its route (Lync's fast failover).
    #[serde(default = "default_failover_timeout")]
    pub(crate) failover_timeout_secs: u64,
    /// Calls held at once, at most; beyond it a new INVITE gets `503` with `Retry-After`.
    #[serde(default = "default_max_calls")]
    pub(crate) max_calls: usize,
    /// On SIGTERM: seconds calls in progress may go on (new calls get 503) before the rest are
    /// ended with BYE.
    #[serde(default = "default_drain_timeout")]
    pub drain_timeout_secs: u64,
    /// Session interval we ask for on legs with session timers enabled (RFC 4028; at least 90).
    #[serde(default = "default_session_expires")]
    pub(crate) session_expires_secs: u32,
    /// Early dialogs (forks answering with different To tags) kept per call; provisional
    /// responses from further forks are not relayed.
    #[serde(default = "default_max_early_dialogs")]
    pub(crate) max_early_dialogs: usize,
    /// Unanswered calls (INVITE transactions in progress) one connection may hold at once;
    /// beyond it a new INVITE gets `503` with `Retry-After`. Over UDP, where a source port is
    /// easily spoofed, all of one gateway's flows together count as one connection.
    #[serde(default = "default_max_pending_per_connection")]
    pub(crate) max_pending_per_connection: usize,
    /// Accepted connections that carry no SIP message for this many seconds while no call uses
    /// them are closed (the peer opens a new one when it needs it); 0 never closes them. This
    /// includes UDP flows that carried a call (those that never did go after 64*T1 idle).
    #[serde(default = "default_idle_connection_timeout")]
    pub(crate) idle_connection_timeout_secs: u64,
    /// SIP connections accepted at once on each front door; more are closed at accept. The
    /// last tenth (at most 64) of each door's places are kept for configured peers' addresses.
    #[serde(default = "default_max_connections")]
    pub(crate) max_connections: usize,
    /// SIP connections accepted at once on one front door from one IPv4 address or IPv6 /64.
    #[serde(default = "default_max_connections_per_source")]
    pub(crate) max_connections_per_source: usize,
    /// UDP retransmission timer T1 (RFC 3261 §17), milliseconds: the first retransmission
    /// interval; 64*T1 is how long a request waits for an answer (timers B and F).
    #[serde(default = "default_t1")]
    pub(crate) udp_t1_ms: u64,
    /// UDP timer T2, milliseconds: the longest retransmission interval.
    #[serde(default = "default_t2")]
    pub(crate) udp_t2_ms: u64,
    /// UDP flows (remote address:port) one source IP may hold that carry no call; a new port
    /// from an IP at this cap evicts that IP's least recently active such flow, so spoofed
    /// ports cannot lock the gateway out. Flows carrying a call are not counted or evicted.
    #[serde(default = "default_udp_max_flows_per_source")]
    pub(crate) udp_max_flows_per_source: usize,
    /// UDP flows held at once in all; beyond it a new remote address is dropped unless its IP
    /// has a call-less flow to give up. A flow is forgotten 64*T1 after its last activity once
    /// its transactions ended (one that carried a call keeps its connection for the call).
    #[serde(default = "default_udp_max_flows")]
    pub(crate) udp_max_flows: usize,
}

fn default_udp_max_flows_per_source() -> usize {
    32
}

fn default_udp_max_flows() -> usize {
    4096
}

fn default_session_expires() -> u32 {
    1800
}

fn default_max_early_dialogs() -> usize {
    20
}

fn default_max_pending_per_connection() -> usize {
    200
}

fn default_idle_connection_timeout() -> u64 {
    300
}

fn default_max_connections() -> usize {
    4096
}

fn default_max_connections_per_source() -> usize {
    256
}

fn default_t1() -> u64 {
    500
}

fn default_t2() -> u64 {
    4000
}

impl SipConfig {
    /// The UDP flow caps.
    pub(crate) fn udp_flow_limits(&self) -> crate::transport::FlowLimits {
        crate::transport::FlowLimits {
            per_source: self.udp_max_flows_per_source,
            total: self.udp_max_flows,
        }
    }

    /// The UDP transaction timers.
    pub(crate) fn udp_timers(&self) -> crate::sip::transaction::Timers {
        crate::sip::transaction::Timers {
            t1: Duration::from_millis(self.udp_t1_ms),
            t2: Duration::from_millis(self.udp_t2_ms),
            ..Default::default()
        }
    }
}

fn default_failover_timeout() -> u64 {
    10
}

fn default_true() -> bool {
    true
}

fn default_max_calls() -> usize {
    2000
}

fn default_drain_timeout() -> u64 {
    30
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            answer_timeout_secs: default_answer_timeout(),
            max_message_bytes: default_max_message(),
            max_headers: default_max_headers(),
            drain_timeout_secs: default_drain_timeout(),
            max_calls: default_max_calls(),
            forward_pai: true,
            pass_headers: Vec::new(),
            failover_timeout_secs: default_failover_timeout(),
            session_expires_secs: default_session_expires(),
            max_early_dialogs: default_max_early_dialogs(),
            max_pending_per_connection: default_max_pending_per_connection(),
            idle_connection_timeout_secs: default_idle_connection_timeout(),
            max_connections: default_max_connections(),
            max_connections_per_source: default_max_connections_per_source(),
            udp_t1_ms: default_t1(),
            udp_t2_ms: default_t2(),
            udp_max_flows_per_source: default_udp_max_flows_per_source(),
            udp_max_flows: default_udp_max_flows(),
        }
    }
}

fn default_answer_timeout() -> u64 {
    90
}

fn default_max_message() -> usize {
    65_535
}

fn default_max_headers() -> usize {
    128
}

/// `[metrics]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address of the HTTP endpoint serving `/metrics`, `/healthz` and `/readyz`.
    #[serde(default = "default_metrics_listen")]
    pub listen: SocketAddr,
    /// Serve HTTPS instead, requiring a client certificate (Prometheus `tls_config`).
    #[serde(default)]
    pub tls: Option<MetricsTlsConfig>,
    /// Serve plain HTTP on an address other than loopback (`/reload` included): only on a
    /// management network nobody else reaches. Without it such a `listen` needs `[metrics.tls]`.
    #[serde(default)]
    pub(crate) allow_plain_http: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: default_metrics_listen(),
            tls: None,
            allow_plain_http: false,
        }
    }
}

/// `[metrics.tls]`: HTTPS with client-certificate authentication for scrapers. The server
/// presents `[tls].certificate`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsTlsConfig {
    /// PEM CAs a scraper's client certificate must chain to.
    pub(crate) client_ca: PathBuf,
}

fn default_metrics_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9464))
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `json` or `text`.
    #[serde(default)]
    pub format: LogFormat,
    /// A `RUST_LOG`-style filter, e.g. `info` or `info,mediation::sip=debug`.
    #[serde(default = "default_level")]
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::default(),
            level: default_level(),
        }
    }
}

fn default_level() -> String {
    "info".into()
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// One JSON object per line.
    #[default]
    Json,
    /// Human-readable lines.
    Text,
}

/// Which sources a leg takes media from before any has proved itself (`[[gateway]]
/// media_sources`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MediaSources {
    /// Only the IP address in the peer's SDP (`c=`, or `a=rtcp:` for RTCP); the port is latched
    /// from the first packet from that address. A leg whose SDP names no address (hold with
    /// `0.0.0.0`) takes no plain media.
    #[default]
    Sdp,
    /// Any address, for peers behind NAT whose SDP names an address they cannot be reached at:
    /// the first packet latches. A packet from the SDP's IP address moves the latch there, and
    /// once the peer's own address is latched it never moves again. Strangers who guess the
    /// port before the peer's first packet can take the leg: use only where NAT requires it.
    Any,
}

impl MediaSources {
    /// The setting's value, for logs and documentation.
    #[cfg(test)]
    pub(crate) fn name(self) -> &'static str {
        match self {
            MediaSources::Sdp => "sdp",
            MediaSources::Any => "any",
        }
    }
}
