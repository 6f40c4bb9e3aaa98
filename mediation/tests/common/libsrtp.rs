//! libsrtp, the reference SRTP implementation, driven from tests: Debian's `python3-pylibsrtp`
//! run by a small script with `/usr/bin/python3` (the Debian interpreter that has the module);
//! packets go over stdin and stdout as hex. A missing interpreter or module fails the test: it
//! is never skipped.

use std::io::Write;
use std::process::{Command, Stdio};

use mediation::srtp::MasterKey;

/// The Debian interpreter that has pylibsrtp.
pub(crate) const PYTHON: &str = "/usr/bin/python3";

/// Reads `MODE PROFILE KEY_HEX` then `rtp|rtcp HEX` lines; answers `ok HEX` or `err REASON`
/// per packet. Exit status 3: pylibsrtp is not installed.
const LIBSRTP_SCRIPT: &str = r#"
import sys
try:
    import pylibsrtp
except ImportError as e:
    print("pylibsrtp missing:", e)
    sys.exit(3)
P = pylibsrtp.Policy
PROFILES = {
    "AES_CM_128_HMAC_SHA1_80": P.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": P.SRTP_PROFILE_AES128_CM_SHA1_32,
    "AEAD_AES_128_GCM": P.SRTP_PROFILE_AEAD_AES_128_GCM,
    "AEAD_AES_256_GCM": P.SRTP_PROFILE_AEAD_AES_256_GCM,
}
# pylibsrtp has no AES-256-CM profile constants (libsrtp has no DTLS-SRTP profile for them), but
# libsrtp 2 sets those policies with srtp_crypto_policy_set_aes_cm_256_hmac_sha1_{80,32}: call
# them with ctypes on the policy pylibsrtp built. SRTCP keeps the 80-bit tag (RFC 6188 §6).
CM256 = {
    "AES_256_CM_HMAC_SHA1_80": ("srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80",
                                "srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80"),
    "AES_256_CM_HMAC_SHA1_32": ("srtp_crypto_policy_set_aes_cm_256_hmac_sha1_32",
                                "srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80"),
}
lines = sys.stdin.read().splitlines()
mode, profile, key, *mki = lines[0].split()
if profile not in PROFILES and profile not in CM256:
    print("profile not in pylibsrtp:", profile)
    sys.exit(4)
ssrc_type = P.SSRC_ANY_INBOUND if mode == "unprotect" else P.SSRC_ANY_OUTBOUND
policy = P(key=bytes.fromhex(key), ssrc_type=ssrc_type,
           srtp_profile=PROFILES.get(profile, P.SRTP_PROFILE_AES128_CM_SHA1_80))
if profile in CM256:
    import ctypes
    from pylibsrtp._binding import ffi
    libsrtp = ctypes.CDLL("libsrtp2.so.1")
    for field, setter in zip(("rtp", "rtcp"), CM256[profile]):
        address = int(ffi.cast("uintptr_t", ffi.addressof(policy._policy, field)))
        getattr(libsrtp, setter)(ctypes.c_void_p(address))
if mki:
    # An MKI (RFC 3711 §3.1): libsrtp takes it in an array of srtp_master_key_t {key, mki_id,
    # mki_size} in place of the single key, which pylibsrtp's partial srtp_policy_t does not
    # declare: `keys` and `num_master_keys` follow `key` (libsrtp 2 srtp.h).
    import ctypes
    from pylibsrtp._binding import ffi
    libsrtp = ctypes.CDLL("libsrtp2.so.1")
    class MasterKey(ctypes.Structure):
        _fields_ = [("key", ctypes.c_char_p), ("mki_id", ctypes.c_char_p),
                    ("mki_size", ctypes.c_uint)]
    mki_bytes = bytes.fromhex(mki[0])
    master = MasterKey(bytes.fromhex(key), mki_bytes, len(mki_bytes))
    keys = (ctypes.POINTER(MasterKey) * 1)(ctypes.pointer(master))
    base = int(ffi.cast("uintptr_t", policy._policy))
    key_at = base + ffi.offsetof("srtp_policy_t", "key")
    ctypes.c_void_p.from_address(key_at).value = None
    ctypes.c_void_p.from_address(key_at + 8).value = ctypes.addressof(keys)
    ctypes.c_ulong.from_address(key_at + 16).value = 1
session = pylibsrtp.Session(policy=policy)

def with_mki(data, function, *flags):
    ctx = ctypes.c_void_p(int(ffi.cast("uintptr_t", session._srtp[0])))
    buf = ctypes.create_string_buffer(data, len(data) + 64)
    length = ctypes.c_int(len(data))
    status = getattr(libsrtp, function)(ctx, buf, ctypes.byref(length), *flags)
    if status != 0:
        raise pylibsrtp.Error("libsrtp status %d" % status)
    return buf.raw[:length.value]

for line in lines[1:]:
    kind, data = line.split()
    data = bytes.fromhex(data)
    try:
        if mki:
            suffix = "" if kind == "rtp" else "_rtcp"
            if mode == "unprotect":
                out = with_mki(data, "srtp_unprotect" + suffix + "_mki", 1)
            else:
                out = with_mki(data, "srtp_protect" + suffix + "_mki", 1, 0)
        elif mode == "unprotect":
            out = session.unprotect(data) if kind == "rtp" else session.unprotect_rtcp(data)
        else:
            out = session.protect(data) if kind == "rtp" else session.protect_rtcp(data)
        print("ok", out.hex())
    except pylibsrtp.Error as e:
        print("err", str(e).replace(" ", "_"))
"#;

/// What a packet is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    /// SRTP/RTP.
    Rtp,
    /// SRTCP/RTCP.
    Rtcp,
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Runs libsrtp over `packets` in `mode` (`protect` or `unprotect`).
pub(crate) fn libsrtp(
    mode: &str,
    key: &MasterKey,
    packets: &[(Kind, Vec<u8>)],
) -> Vec<Result<Vec<u8>, String>> {
    let install = "install Debian's python3-pylibsrtp (apt-get install python3-pylibsrtp); \
                   it must be importable by /usr/bin/python3";
    let mut child = Command::new(PYTHON)
        .arg("-c")
        .arg(LIBSRTP_SCRIPT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {PYTHON} ({e}): {install}"));
    let mut input = format!("{mode} {} {}", key.suite().name(), hex(key.key_and_salt()));
    if let Some(mki) = key.mki() {
        input.push_str(&format!(" {}", hex(mki.as_bytes())));
    }
    input.push('\n');
    for (kind, packet) in packets {
        let kind = match kind {
            Kind::Rtp => "rtp",
            Kind::Rtcp => "rtcp",
        };
        input.push_str(&format!("{kind} {}\n", hex(packet)));
    }
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(0) => {}
        Some(3) => panic!("{stdout}: {install}"),
        Some(4) => panic!("{stdout}: this pylibsrtp does not offer the suite"),
        _ => panic!(
            "libsrtp script failed ({}): {stdout}{stderr}",
            output.status
        ),
    }
    let answers: Vec<_> = stdout
        .lines()
        .map(|line| match line.split_once(' ') {
            Some(("ok", data)) => Ok(unhex(data)),
            Some(("err", reason)) => Err(reason.to_string()),
            _ => panic!("unexpected line from the libsrtp script: {line}"),
        })
        .collect();
    assert_eq!(
        answers.len(),
        packets.len(),
        "one answer per packet: {stdout}{stderr}"
    );
    answers
}
