//! The media payload: a 440 Hz tone in G.711 μ-law (encoded here), with a 16-byte marker at the
//! start of every 20 ms payload that carries a call-local sequence number and the send time, so a
//! receiver can measure loss, order and latency through a relay that rewrites RTP headers, and
//! regenerate the exact bytes the far end sent.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    magic "GWS1" (4 bytes)                     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                  sequence (u32, big endian, from 0)           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |        send time, µs since the UNIX epoch (u64, big endian)   |
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  144 bytes of μ-law tone: sample n = sequence * 160 + offset  |
//! ```

/// G.711 at 8 kHz.
pub(crate) const SAMPLE_RATE: u32 = 8_000;
/// Samples (and μ-law bytes) in one 20 ms packet.
pub(crate) const SAMPLES_PER_PACKET: usize = 160;
/// Payload length of one packet.
pub(crate) const PAYLOAD_LEN: usize = SAMPLES_PER_PACKET;
/// Bytes of marker at the start of each payload.
pub(crate) const MARKER_LEN: usize = 16;
/// First bytes of every marker.
pub(crate) const MAGIC: [u8; 4] = *b"GWS1";
/// Tone frequency.
pub(crate) const TONE_HZ: u32 = 440;
/// Samples in one period of the whole tone pattern: 440/8000 = 11/200, so it repeats every 200.
const PATTERN_LEN: usize = (SAMPLE_RATE / gcd(SAMPLE_RATE, TONE_HZ)) as usize;
/// Peak amplitude of the tone (about -12 dBFS).
const AMPLITUDE: f64 = 8_000.0;

const fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Encodes one 16-bit linear PCM sample to G.711 μ-law (ITU-T G.711, with the usual bias of
/// 0x84 and clipping at 32635).
pub(crate) fn linear_to_ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32_635;
    let mut magnitude = i32::from(sample);
    let sign: u8 = if magnitude < 0 {
        magnitude = -magnitude;
        0x80
    } else {
        0
    };
    let biased = magnitude.min(CLIP) + BIAS; // 132..=32767
    let highest_bit = 31 - biased.leading_zeros() as i32; // 7..=14
    let exponent = (highest_bit - 7).clamp(0, 7);
    let mantissa = (biased >> (exponent + 3)) & 0x0F;
    // The value computed is in 0..=0xFF by construction.
    !(sign | ((exponent as u8) << 4) | mantissa as u8)
}

/// Decodes a μ-law byte to linear PCM (the inverse of [`linear_to_ulaw`], up to quantization).
#[cfg(test)]
pub(crate) fn ulaw_to_linear(byte: u8) -> i16 {
    let byte = !byte;
    let exponent = i32::from((byte >> 4) & 0x07);
    let mantissa = i32::from(byte & 0x0F);
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    if byte & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// One period of the tone pattern, μ-law encoded: sample `n` of the stream is `pattern[n % 200]`.
#[derive(Debug, Clone)]
pub(crate) struct Tone {
    pattern: [u8; PATTERN_LEN],
}

impl Default for Tone {
    fn default() -> Self {
        Self::new()
    }
}

/// What a received marker says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Marker {
    /// Call-local packet sequence, from 0.
    pub(crate) sequence: u32,
    /// When the far end sent the packet, µs since the UNIX epoch.
    pub(crate) sent_us: u64,
}

impl Marker {
    /// Reads the marker at the start of `payload`; `None` if the magic is not there.
    pub(crate) fn read(payload: &[u8]) -> Option<Self> {
        let head = payload.get(..MARKER_LEN)?;
        if head[..4] != MAGIC {
            return None;
        }
        let sequence = u32::from_be_bytes(head[4..8].try_into().ok()?);
        let sent_us = u64::from_be_bytes(head[8..16].try_into().ok()?);
        Some(Self { sequence, sent_us })
    }

    /// The marker's 16 bytes.
    pub(crate) fn to_bytes(self) -> [u8; MARKER_LEN] {
        let mut out = [0u8; MARKER_LEN];
        out[..4].copy_from_slice(&MAGIC);
        out[4..8].copy_from_slice(&self.sequence.to_be_bytes());
        out[8..16].copy_from_slice(&self.sent_us.to_be_bytes());
        out
    }
}

/// Why a received payload is not what the far end must have sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PayloadCheck {
    /// Marker present and every tone byte as expected.
    Ok(Marker),
    /// No marker at the start (not our stream, or still encrypted).
    NoMarker,
    /// Not exactly [`PAYLOAD_LEN`] bytes.
    WrongLength(usize),
    /// The marker is there but the tone bytes differ from the ones for its sequence.
    Corrupted(Marker),
}

impl Tone {
    /// The 440 Hz pattern.
    pub(crate) fn new() -> Self {
        let mut pattern = [0u8; PATTERN_LEN];
        for (n, byte) in pattern.iter_mut().enumerate() {
            let phase =
                2.0 * std::f64::consts::PI * f64::from(TONE_HZ) * n as f64 / f64::from(SAMPLE_RATE);
            *byte = linear_to_ulaw((AMPLITUDE * phase.sin()).round() as i16);
        }
        Self { pattern }
    }

    /// The μ-law byte at stream sample `n`.
    fn sample(&self, n: u64) -> u8 {
        self.pattern[(n % PATTERN_LEN as u64) as usize]
    }

    /// Fills `out` (a payload of [`PAYLOAD_LEN`] bytes; a shorter one gets what fits) with the
    /// payload of packet `marker.sequence`: the marker, then the tone bytes for samples
    /// `sequence * 160 + 16 ..`.
    pub(crate) fn fill(&self, marker: Marker, out: &mut [u8]) {
        for (byte, m) in out.iter_mut().zip(marker.to_bytes()) {
            *byte = m;
        }
        let first = u64::from(marker.sequence) * SAMPLES_PER_PACKET as u64;
        for (offset, byte) in out
            .iter_mut()
            .enumerate()
            .take(PAYLOAD_LEN)
            .skip(MARKER_LEN)
        {
            *byte = self.sample(first + offset as u64);
        }
    }

    /// The tone bytes (after the marker) of packet `sequence`.
    pub(crate) fn tone_part(&self, sequence: u32) -> impl Iterator<Item = u8> + '_ {
        let first = u64::from(sequence) * SAMPLES_PER_PACKET as u64;
        (MARKER_LEN..PAYLOAD_LEN).map(move |offset| self.sample(first + offset as u64))
    }

    /// Checks a received payload against the one its marker says was sent.
    pub(crate) fn verify(&self, payload: &[u8]) -> PayloadCheck {
        let Some(marker) = Marker::read(payload) else {
            return PayloadCheck::NoMarker;
        };
        if payload.len() != PAYLOAD_LEN {
            return PayloadCheck::WrongLength(payload.len());
        }
        if self
            .tone_part(marker.sequence)
            .eq(payload[MARKER_LEN..].iter().copied())
        {
            PayloadCheck::Ok(marker)
        } else {
            PayloadCheck::Corrupted(marker)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_known_values() {
        // G.711 μ-law: zero is 0xFF, the extremes 0x80 (+) and 0x00 (-).
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_ulaw(-1), 0x7F);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(linear_to_ulaw(1000), 0xCE);
        assert_eq!(linear_to_ulaw(-1000), 0x4E);
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x80), 32_124);
        assert_eq!(ulaw_to_linear(0x00), -32_124);
    }

    #[test]
    fn ulaw_round_trip_is_within_quantization() {
        for sample in (-32_000i16..32_000).step_by(37) {
            let back = ulaw_to_linear(linear_to_ulaw(sample));
            let error = (i32::from(back) - i32::from(sample)).abs();
            // Step size is 2^(exponent+3); half a step plus one of rounding.
            let bound = (i32::from(sample).abs() / 16).max(8);
            assert!(error <= bound, "{sample} -> {back}");
        }
    }

    #[test]
    fn tone_has_440_hz_period() {
        let tone = Tone::new();
        assert_eq!(PATTERN_LEN, 200);
        // 11 periods in 200 samples: 22 sign changes of the decoded signal.
        let crossings = (0..200)
            .filter(|&n| {
                let a = ulaw_to_linear(tone.sample(n)) >= 0;
                let b = ulaw_to_linear(tone.sample(n + 1)) >= 0;
                a != b
            })
            .count();
        assert_eq!(crossings, 22);
    }

    #[test]
    fn payload_regenerates_and_verifies() {
        let tone = Tone::new();
        let marker = Marker {
            sequence: 1234,
            sent_us: 1_700_000_000_123_456,
        };
        let mut payload = [0u8; PAYLOAD_LEN];
        tone.fill(marker, &mut payload);
        assert_eq!(&payload[..4], b"GWS1");
        assert_eq!(Marker::read(&payload), Some(marker));
        assert_eq!(tone.verify(&payload), PayloadCheck::Ok(marker));

        // Deterministic in the sequence: same sequence, same tone bytes.
        let mut again = [0u8; PAYLOAD_LEN];
        tone.fill(marker, &mut again);
        assert_eq!(payload, again);
        // Another sequence has other tone bytes (160 is not a multiple of 200).
        tone.fill(
            Marker {
                sequence: 1235,
                ..marker
            },
            &mut again,
        );
        assert_ne!(payload[MARKER_LEN..], again[MARKER_LEN..]);

        let mut flipped = payload;
        flipped[100] ^= 0x01;
        assert_eq!(tone.verify(&flipped), PayloadCheck::Corrupted(marker));
        assert_eq!(tone.verify(&payload[..150]), PayloadCheck::WrongLength(150));
        let mut no_magic = payload;
        no_magic[0] = b'X';
        assert_eq!(tone.verify(&no_magic), PayloadCheck::NoMarker);
    }
}
