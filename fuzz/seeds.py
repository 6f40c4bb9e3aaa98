#!/usr/bin/env python3
"""Writes the seed corpus under fuzz/corpus/<target>/ from the project's tests: SIP messages and
SDP bodies of the SIPp scenarios (tests/sipp/*.xml) and the string literals of mediation's unit
tests, a=crypto values found in either, and hand-made RTP/RTCP/SRTP inputs. Deterministic; run
it again after adding tests (`python3 fuzz/seeds.py`). Each file starts with the target's
selector bytes (see the comment at the top of each fuzz target)."""

import hashlib
import pathlib
import re
import struct

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"

written = {}


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()[:16]
    (d / name).write_bytes(data)
    written[target] = written.get(target, 0) + 1


# --- SIPp scenarios -------------------------------------------------------------------------
FIELDS = {
    "service": "+15550002", "remote_ip": "192.0.2.1", "remote_port": "5060",
    "local_ip": "192.0.2.9", "local_port": "5070", "transport": "TCP",
    "call_number": "1", "pid": "4242", "call_id": "1-4242@192.0.2.9",
    "branch": "z9hG4bK-4242-1-0", "peer_tag_param": ";tag=abc123",
    "local_ip_type": "4", "media_ip_type": "4", "media_ip": "192.0.2.9",
    "media_port": "6000", "last_Via:": "Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK1",
    "last_From:": "From: <sip:a@192.0.2.1>;tag=1", "last_To:": "To: <sip:b@192.0.2.9>",
    "last_Call-ID:": "Call-ID: x1", "last_CSeq:": "CSeq: 1 INVITE",
    "last_Record-route:": "", "server_ip": "192.0.2.9", "cseq": "1",
}


def fill(text):
    def sub(m):
        key = m.group(1)
        if key == "len":
            return "[len]"
        return FIELDS.get(key, FIELDS.get(key.split(" ")[0], "x"))
    return re.sub(r"\[([^\]\[]+)\]", sub, text)


def sipp_messages():
    out = []
    for xml in sorted((ROOT / "tests" / "sipp").glob("*.xml")):
        for block in re.findall(r"<!\[CDATA\[(.*?)\]\]>", xml.read_text(errors="replace"), re.S):
            lines = [l.strip() for l in block.strip("\n").splitlines()]
            while lines and not lines[-1]:
                lines.pop()
            if not lines or "SIP/2.0" not in lines[0]:
                continue
            text = fill("\n".join(lines))
            head, _, body = text.partition("\n\n")
            body = body.replace("\n", "\r\n") + ("\r\n" if body else "")
            head = head.replace("\n", "\r\n").replace("[len]", str(len(body.encode())))
            out.append((head + "\r\n\r\n" + body, body))
    return out


# --- Rust string literals of mediation's tests ----------------------------------------------
ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "'": "'", "0": "\0"}


def rust_literals(path):
    src = path.read_text()
    for m in re.finditer(r'(?<![A-Za-z0-9_#])"((?:[^"\\]|\\.)*)"', src, re.S):
        raw, out, i = m.group(1), [], 0
        while i < len(raw):
            c = raw[i]
            if c == "\\" and i + 1 < len(raw):
                n = raw[i + 1]
                if n == "\n":  # line continuation: skip the newline and leading whitespace
                    i += 2
                    while i < len(raw) and raw[i] in " \t\n":
                        i += 1
                    continue
                out.append(ESCAPES.get(n, n))
                i += 2
                continue
            out.append(c)
            i += 1
        yield "".join(out)


def test_literals():
    for path in sorted((ROOT / "mediation" / "src").rglob("*.rs")):
        yield from rust_literals(path)


sip_msgs = sipp_messages()
sdp_bodies = [b for _, b in sip_msgs if b.startswith("v=0")]
crypto_values = set()
for lit in test_literals():
    if "{" in lit:
        lit = re.sub(r"\{[a-z_0-9]*\}", "0", lit)
    if re.match(r"^(\r\n)*[A-Z]+ \S+ SIP/2\.0\r?\n|^SIP/2\.0 \d{3}", lit):
        if "\n\n" not in lit and "\r\n\r\n" not in lit:
            lit += "\r\n"
        sip_msgs.append((lit, ""))
    if lit.startswith("v=0"):
        sdp_bodies.append(lit)
    if re.match(r"^\d+ \S+ inline:", lit, re.I):
        crypto_values.add(lit)
for text in [m for m, _ in sip_msgs] + sdp_bodies:
    for line in re.split(r"\r?\n", text):
        if line.startswith("a=crypto:"):
            crypto_values.add(line[len("a=crypto:"):])

# sip_stream: [limits selector, chunking seed, stream]
for i, (msg, _) in enumerate(sip_msgs):
    put("sip_stream", bytes([0, i % 256]) + msg.encode())
# a few streams of several messages with keep-alives, under each set of limits
msgs = [m.encode() for m, _ in sip_msgs if "Content-Length" in m]
for i in range(0, len(msgs), 3):
    put("sip_stream", bytes([i % 3, 7 + i]) + b"\r\n\r\n".join(msgs[i:i + 3]) + b"\r\n")

# sip_message: one message as it is (the SIPp scenarios' and the RFC 4475/5118 torture vectors)
for msg, _ in sip_msgs:
    put("sip_message", msg.encode())
for dat in sorted((ROOT / "mediation" / "tests" / "vectors").glob("rfc*/*.dat")):
    put("sip_message", dat.read_bytes())

# ... and messages whose SDP keys follow `inline:` in any case (the trace must redact them all)
KEYED_SDP = (
    "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
    "m=audio 6000 RTP/SAVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 INLINE:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^31\r\n"
    "a=crypto:2 AES_CM_128_HMAC_SHA1_32 Inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^31|1:4;"
    "inline:lEjdWSPlAWZLdh5LBVmRNe3Hb+1F5yRXN94lMEzY|2^31|2:4\r\n"
    "a=crypto:3 AEAD_AES_128_GCM iNlInE:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVph KDR=0\r\n"
)
KEYED_HEAD = (
    "INVITE sip:+15550002@192.0.2.9:5070;transport=tcp SIP/2.0\r\n"
    "Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK-keyed\r\nMax-Forwards: 70\r\n"
    "From: <sip:a@192.0.2.1>;tag=1\r\nTo: <sip:+15550002@192.0.2.9>\r\nCall-ID: keyed-1\r\n"
    "CSeq: 1 INVITE\r\nContact: <sip:a@192.0.2.1:5060;transport=tcp>\r\n"
    "Content-Type: application/sdp\r\n"
)
keyed = KEYED_HEAD + f"Content-Length: {len(KEYED_SDP)}\r\n\r\n" + KEYED_SDP
put("sip_stream", bytes([0, 100]) + keyed.encode())
put("sip_stream", bytes([1, 101]) + keyed.encode())
# the same SDP in an unparseable message: the trace of what is refused hides the keys too
put("sip_stream", bytes([0, 102]) + keyed.replace("Via: ", "Via ").encode())

# sdp_rewrite: [flags, body] or [flags | 4, offer \0 answer]
sdp_bodies = sorted(set(sdp_bodies))
for i, body in enumerate(sdp_bodies):
    put("sdp_rewrite", bytes([i % 16 & ~4]) + body.encode())
for i in range(len(sdp_bodies)):
    offer, answer = sdp_bodies[i], sdp_bodies[(i + 1) % len(sdp_bodies)]
    put("sdp_rewrite", bytes([(i % 16) | 4]) + offer.encode() + b"\0" + answer.encode())

# sdp_crypto: the attribute value
for value in sorted(crypto_values):
    put("sdp_crypto", value)

# rtp_headers: [flags, datagram]
def rtp(b0=0x80, pt=0, seq=0x1234, ssrc=0xCAFEBABE, extra=b"", payload=160):
    return bytes([b0, pt]) + struct.pack(">HII", seq, 160 * seq, ssrc) + extra + b"\xab" * payload


RR = bytes([0x80, 201]) + struct.pack(">HI", 1, 0xCAFEBABE)
SR = bytes([0x80, 200]) + struct.pack(">HIIIIII", 6, 0xCAFEBABE, 1, 2, 3, 4, 5)
EXT = b"\0" * 8 + bytes([0xBE, 0xDE, 0, 2, 0x10, 0xAA, 0, 0, 0x21, 1, 2, 0])
packets = [rtp(), rtp(pt=101, payload=4), rtp(b0=0x92, extra=EXT, payload=20),
           rtp(b0=0x90, extra=bytes([0x10, 0, 0, 1, 1, 2, 3, 4]), payload=0), RR, SR,
           SR + b"\x80\x00\x00\x01" + b"\x11" * 10]
for flags in range(8):
    for p in packets:
        put("rtp_headers", bytes([flags]) + p)

# srtp_unprotect: [suite, mode, key||salt, packet]
KEY_LEN = [30, 30, 28, 44]
for suite in range(4):
    key = bytes((i * 7 + suite) % 256 for i in range(KEY_LEN[suite]))
    for p in packets:
        mode = 3 if p[1] in (200, 201) else 2
        put("srtp_unprotect", bytes([suite, mode]) + key + p + bytes([5, 0x40]))
        put("srtp_unprotect", bytes([suite, mode - 2]) + key + p + b"\x80\0\0\x01" + b"\0" * 16)
    put("srtp_unprotect", bytes([suite, 4]) + key + b"".join(bytes([len(p) | (0x80 if p[1] >= 200 else 0)]) + p[:127] for p in packets))

for target, n in sorted(written.items()):
    print(f"{target}: {n} seeds")
