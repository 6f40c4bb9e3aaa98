//! AES in counter mode as SRTP uses it (RFC 3711 §4.1.1, RFC 6188 §3): a 128-bit big-endian
//! counter block, the keystream XORed over the data. Built on the `aes` crate's block cipher
//! (AES-NI when the CPU has it) with the key schedule made once; no allocation per packet.

use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockEncrypt, KeyInit};
use aes::{Aes128Enc, Aes256Enc, Block};

/// Counter blocks encrypted per call into the block cipher: enough for AES-NI's pipelining.
const BATCH: usize = 8;

/// An AES encryption key schedule of either size (zeroed on drop by the `aes` crate's
/// `zeroize` feature). No `Debug`: it is key material.
///
/// Boxed, each at its own size: inline, every `AesKey` (and so every SRTP session key set,
/// AES-GCM ones included, whose enum shares the size) took the ~1 KiB of the AES-256 schedule
/// (the `aes` crate keeps room for its software fallback). One pointer more per packet costs
/// nothing measurable next to the socket calls; memory per call is what limits calls per host.
pub(crate) enum AesKey {
    /// AES-128.
    Aes128(Box<Aes128Enc>),
    /// AES-256.
    Aes256(Box<Aes256Enc>),
}

impl AesKey {
    /// The key schedule for a 16- or 32-byte key; `None` for any other length.
    pub(crate) fn new(key: &[u8]) -> Option<Self> {
        match key.len() {
            16 => Some(AesKey::Aes128(Box::new(Aes128Enc::new(
                GenericArray::from_slice(key),
            )))),
            32 => Some(AesKey::Aes256(Box::new(Aes256Enc::new(
                GenericArray::from_slice(key),
            )))),
            _ => None,
        }
    }

    fn encrypt_blocks(&self, blocks: &mut [Block]) {
        match self {
            AesKey::Aes128(aes) => aes.encrypt_blocks(blocks),
            AesKey::Aes256(aes) => aes.encrypt_blocks(blocks),
        }
    }

    /// XORs the AES-CM keystream that starts at counter block `iv` over `data`:
    /// ```text
    /// keystream = E(k, IV) || E(k, IV + 1 mod 2^128) || E(k, IV + 2 mod 2^128) ...
    /// ```
    /// (RFC 3711 §4.1.1). SRTP packets are far shorter than the 2^16 blocks one IV may cover.
    pub(crate) fn apply_keystream(&self, iv: &[u8; 16], data: &mut [u8]) {
        let mut counter = u128::from_be_bytes(*iv);
        let mut blocks = [Block::default(); BATCH];
        for chunk in data.chunks_mut(16 * BATCH) {
            let n = chunk.len().div_ceil(16);
            for block in &mut blocks[..n] {
                block.copy_from_slice(&counter.to_be_bytes());
                counter = counter.wrapping_add(1);
            }
            self.encrypt_blocks(&mut blocks[..n]);
            for (bytes, block) in chunk.chunks_mut(16).zip(&blocks[..n]) {
                for (b, k) in bytes.iter_mut().zip(block.iter()) {
                    *b ^= k;
                }
            }
        }
        // The last keystream blocks are not secret once used, but clear them anyway.
        for block in &mut blocks {
            zeroize::Zeroize::zeroize(block.as_mut_slice());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The keystream of `key` from counter block `iv`, `blocks` long.
    fn keystream(key: &str, iv: &str, blocks: usize) -> Vec<u8> {
        let key = AesKey::new(&hex(key)).unwrap();
        let mut data = vec![0u8; 16 * blocks];
        key.apply_keystream(&hex(iv).try_into().unwrap(), &mut data);
        data
    }

    /// RFC 3711 Appendix B.2: the AES-CM keystream for session key 2B7E..., salt F0F1...FD and
    /// index 0, first three and last three of 0xFF02 blocks.
    #[test]
    fn rfc3711_b2_keystream() {
        let ks = keystream(
            "2B7E151628AED2A6ABF7158809CF4F3C",
            "F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000",
            0xFF02,
        );
        assert_eq!(
            ks[..48],
            hex(
                "E03EAD0935C95E80E166B16DD92B4EB4 D23513162B02D0F72A43A2FE4A5F97AB
                 41E95B3BB0A2E8DD477901E4FCA894C0"
            )[..]
        );
        assert_eq!(
            ks[ks.len() - 48..],
            hex(
                "EC8CDF7398607CB0F2D21675EA9EA1E4 362B7C3C6773516318A077D7FC5073AE
                 6A2CC3787889374FBEB4C81B17BA6C44"
            )[..]
        );
    }

    /// RFC 6188 §7.1: the same for AES-256-CM.
    #[test]
    fn rfc6188_7_1_keystream() {
        let ks = keystream(
            "57f82fe3613fd170a85ec93c40b1f0922ec4cb0dc025b58272147cc438944a98",
            "F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000",
            0xFF02,
        );
        assert_eq!(
            ks[..48],
            hex(
                "92bdd28a93c3f52511c677d08b5515a4 9da71b2378a854f67050756ded165bac
                 63c4868b7096d88421b563b8c94c9a31"
            )[..]
        );
        assert_eq!(
            ks[ks.len() - 48..],
            hex(
                "cea518c90fd91ced9cbb18c078a547113dbc4814f4da5f00a08772b63c6a046d
                 6eb246913062a16891433e97dd01a57f"
            )[..]
        );
    }

    #[test]
    fn partial_blocks_and_odd_lengths() {
        let key = AesKey::new(&[7; 16]).unwrap();
        let iv = [9u8; 16];
        let mut whole = vec![0u8; 300];
        key.apply_keystream(&iv, &mut whole);
        for len in [0, 1, 15, 16, 17, 127, 128, 129, 299] {
            let mut part = vec![0u8; len];
            key.apply_keystream(&iv, &mut part);
            assert_eq!(part, whole[..len], "{len}");
        }
        assert!(AesKey::new(&[0; 24]).is_none());
    }
}
