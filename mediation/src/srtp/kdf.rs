//! The SRTP key derivation function (RFC 3711 §4.3) with a key derivation rate of 0: each
//! session key is derived once, when a context is made, never per packet.
//!
//! ```text
//! key_id = <label> || r          r = index DIV kdr = 0 (kdr 0)
//! x      = key_id XOR master_salt                      (112 bits)
//! PRF_n(k_master, x) = the first n bits of AES-CM(k_master, IV = x * 2^16)
//! ```
//! The PRF is AES-CM keyed with the master key: AES-128 (RFC 3711 §4.3.3) or AES-256
//! (RFC 6188 §5.1). AEAD suites' 96-bit master salts are padded with zeros to 112 bits
//! (RFC 7714 §11, as libsrtp does).

use zeroize::Zeroize;

use super::aes_cm::AesKey;

/// What a derived key is for (RFC 3711 §4.3.1 and §4.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Label {
    /// SRTP encryption key `k_e`.
    RtpEncryption = 0x00,
    /// SRTP authentication key `k_a`.
    RtpAuthentication = 0x01,
    /// SRTP salting key `k_s`.
    RtpSalt = 0x02,
    /// SRTCP encryption key.
    RtcpEncryption = 0x03,
    /// SRTCP authentication key.
    RtcpAuthentication = 0x04,
    /// SRTCP salting key.
    RtcpSalt = 0x05,
}

/// The master key as a PRF, with the master salt it is used with.
pub(crate) struct Kdf {
    prf: AesKey,
    /// Master salt, zero-padded to 112 bits.
    salt: [u8; 14],
}

impl Kdf {
    /// `None` if the key is neither 16 nor 32 bytes or the salt is longer than 14 bytes.
    pub(crate) fn new(master_key: &[u8], master_salt: &[u8]) -> Option<Self> {
        if master_salt.len() > 14 {
            return None;
        }
        let mut salt = [0u8; 14];
        salt[..master_salt.len()].copy_from_slice(master_salt);
        Some(Self {
            prf: AesKey::new(master_key)?,
            salt,
        })
    }

    /// Fills `out` with the session key for `label`.
    pub(crate) fn derive(&self, label: Label, out: &mut [u8]) {
        // x = key_id XOR master_salt: the label is the byte above the 48-bit r (RFC 3711 §4.3.1).
        let mut iv = [0u8; 16];
        iv[..14].copy_from_slice(&self.salt);
        iv[7] ^= label as u8;
        out.fill(0);
        self.prf.apply_keystream(&iv, out);
        iv.zeroize();
    }
}

impl Drop for Kdf {
    fn drop(&mut self) {
        self.salt.zeroize();
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

    fn derive(kdf: &Kdf, label: Label, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        kdf.derive(label, &mut out);
        out
    }

    /// RFC 3711 Appendix B.3.
    #[test]
    fn rfc3711_b3() {
        let kdf = Kdf::new(
            &hex("E1F97A0D3E018BE0D64FA32C06DE4139"),
            &hex("0EC675AD498AFEEBB6960B3AABE6"),
        )
        .unwrap();
        assert_eq!(
            derive(&kdf, Label::RtpEncryption, 16),
            hex("C61E7A93744F39EE10734AFE3FF7A087")
        );
        assert_eq!(
            derive(&kdf, Label::RtpSalt, 14),
            hex("30CBBC08863D8C85D49DB34A9AE1")
        );
        // The RFC lists 94 bytes of the authentication key stream; SRTP uses the first 20.
        assert_eq!(
            derive(&kdf, Label::RtpAuthentication, 94),
            hex(
                "CEBE321F6FF7716B6FD4AB49AF256A156D38BAA48F0A0ACF3C34E2359E6CDBCE
                 E049646C43D9327AD175578EF72270986371C10C9A369AC2F94A8C5FBCDDDC25
                 6D6E919A48B610EF17C2041E474035766B68642C59BBFC2F34DB60DBDFB2"
            )
        );
    }

    /// RFC 6188 §7.2: the AES_256_CM_PRF.
    #[test]
    fn rfc6188_7_2() {
        let kdf = Kdf::new(
            &hex("f0f04914b513f2763a1b1fa130f10e2998f6f6e43e4309d1e622a0e332b9f1b6"),
            &hex("3b04803de51ee7c96423ab5b78d2"),
        )
        .unwrap();
        assert_eq!(
            derive(&kdf, Label::RtpEncryption, 32),
            hex("5ba1064e30ec51613cad926c5a28ef731ec7fb397f70a960653caf06554cd8c4")
        );
        assert_eq!(
            derive(&kdf, Label::RtpSalt, 14),
            hex("fa31791685ca444a9e07c6c64e93")
        );
        assert_eq!(
            derive(&kdf, Label::RtpAuthentication, 20),
            hex("fd9c32d39ed5fbb5a9dc96b30818454d1313dc05")
        );
    }

    #[test]
    fn refuses_odd_sizes() {
        assert!(Kdf::new(&[0; 24], &[0; 14]).is_none());
        assert!(Kdf::new(&[0; 16], &[0; 15]).is_none());
        assert!(Kdf::new(&[0; 32], &[0; 12]).is_some());
    }
}
