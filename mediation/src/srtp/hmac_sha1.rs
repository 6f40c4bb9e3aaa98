//! HMAC-SHA1 (RFC 2104) for SRTP's authentication tags (RFC 3711 §4.2.1), on the `sha1` crate's
//! compression function (SHA-NI when the CPU has it).
//!
//! The keyed inner and outer states are computed once per session key, so a tag costs only the
//! blocks of the message plus one outer block; they are key-equivalent and zeroed on drop,
//! which `hmac::Hmac` does not do.

use sha1::digest::generic_array::GenericArray;
use zeroize::Zeroize;

const BLOCK: usize = 64;

/// SHA-1's compression function over one 64-byte block.
fn compress(state: &mut [u32; 5], block: &[u8; BLOCK]) {
    sha1::compress(state, std::slice::from_ref(GenericArray::from_slice(block)));
}
const INITIAL_STATE: [u32; 5] = [
    0x6745_2301,
    0xEFCD_AB89,
    0x98BA_DCFE,
    0x1032_5476,
    0xC3D2_E1F0,
];

/// The length of an HMAC-SHA1 output.
pub(crate) const TAG_LEN: usize = 20;

/// An HMAC-SHA1 key, as the SHA-1 states after the `ipad` and `opad` blocks.
pub(crate) struct HmacSha1 {
    inner: [u32; 5],
    outer: [u32; 5],
}

impl HmacSha1 {
    /// The key of at most 64 bytes (SRTP's are 20).
    pub(crate) fn new(key: &[u8]) -> Self {
        assert!(key.len() <= BLOCK, "SRTP authentication keys are 20 bytes");
        let mut pad = [0u8; BLOCK];
        let mut keyed = |byte: u8| {
            for (p, k) in pad.iter_mut().zip(key.iter().chain(std::iter::repeat(&0))) {
                *p = k ^ byte;
            }
            let mut state = INITIAL_STATE;
            compress(&mut state, &pad);
            state
        };
        let inner = keyed(0x36);
        let outer = keyed(0x5C);
        pad.zeroize();
        Self { inner, outer }
    }

    /// HMAC-SHA1 of the concatenation of `parts`.
    pub(crate) fn tag(&self, parts: &[&[u8]]) -> [u8; TAG_LEN] {
        let mut inner = Sha1 {
            state: self.inner,
            buffer: [0; BLOCK],
            buffered: 0,
            total: BLOCK as u64,
        };
        for part in parts {
            inner.update(part);
        }
        let digest = inner.finish();
        let mut outer = Sha1 {
            state: self.outer,
            buffer: [0; BLOCK],
            buffered: 0,
            total: BLOCK as u64,
        };
        outer.update(&digest);
        outer.finish()
    }
}

impl Drop for HmacSha1 {
    fn drop(&mut self) {
        self.inner.zeroize();
        self.outer.zeroize();
    }
}

/// A SHA-1 computation under way: whole blocks go straight from the caller's slice to the
/// compression function, only the tail is copied.
struct Sha1 {
    state: [u32; 5],
    buffer: [u8; BLOCK],
    buffered: usize,
    /// Bytes hashed so far, the key block included.
    total: u64,
}

impl Sha1 {
    fn update(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        if self.buffered > 0 {
            let take = (BLOCK - self.buffered).min(data.len());
            self.buffer[self.buffered..self.buffered + take].copy_from_slice(&data[..take]);
            self.buffered += take;
            data = &data[take..];
            if self.buffered < BLOCK {
                return;
            }
            compress(&mut self.state, &self.buffer);
            self.buffered = 0;
        }
        let (blocks, tail) = data.as_chunks::<BLOCK>();
        for block in blocks {
            compress(&mut self.state, block);
        }
        self.buffer[..tail.len()].copy_from_slice(tail);
        self.buffered = tail.len();
    }

    /// Appends the padding (FIPS 180-4 §5.1.1) and returns the digest.
    fn finish(mut self) -> [u8; TAG_LEN] {
        let bits = self.total * 8;
        let mut padding = [0u8; 2 * BLOCK];
        padding[0] = 0x80;
        // 0x80, zeros, then the 64-bit length: end on a block boundary.
        let pad_len = if self.buffered < BLOCK - 8 {
            BLOCK - self.buffered
        } else {
            2 * BLOCK - self.buffered
        };
        padding[pad_len - 8..pad_len].copy_from_slice(&bits.to_be_bytes());
        let total = self.total;
        self.update(&padding[..pad_len]);
        debug_assert_eq!(self.buffered, 0);
        self.total = total;
        let mut out = [0u8; TAG_LEN];
        for (bytes, word) in out.chunks_exact_mut(4).zip(self.state) {
            bytes.copy_from_slice(&word.to_be_bytes());
        }
        out
    }
}

impl Drop for Sha1 {
    fn drop(&mut self) {
        self.state.zeroize();
        self.buffer.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use hmac::Mac;

    use super::*;

    fn reference(key: &[u8], data: &[u8]) -> Vec<u8> {
        let mut mac = <hmac::Hmac<sha1::Sha1> as Mac>::new_from_slice(key).unwrap();
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }

    /// RFC 2202 test case 2: key "Jefe".
    #[test]
    fn rfc2202_case_2() {
        let tag = HmacSha1::new(b"Jefe").tag(&[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            tag.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
    }

    #[test]
    fn agrees_with_the_hmac_crate_for_every_length_and_split() {
        let key: Vec<u8> = (0..20).collect();
        let data: Vec<u8> = (0..300u32).map(|n| (n * 7) as u8).collect();
        let hmac = HmacSha1::new(&key);
        for len in 0..data.len() {
            let want = reference(&key, &data[..len]);
            for split in [0, len / 3, len.saturating_sub(4), len] {
                let (a, b) = data[..len].split_at(split);
                assert_eq!(hmac.tag(&[a, b]).to_vec(), want, "{len} split {split}");
            }
        }
    }
}
