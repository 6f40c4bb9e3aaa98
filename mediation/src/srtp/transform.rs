//! The per-packet cryptography of each suite, with session keys derived once (RFC 3711 §4.3):
//! AES-CM + HMAC-SHA1 (RFC 3711 §4.1.1, §4.2.1; RFC 6188) and AES-GCM (RFC 7714). Pure: the
//! caller (a [`context`](super::context)) has checked the lengths and chosen the index.
//!
//! Nothing here allocates or keeps per-packet state; every key is zeroed on drop.

use aes::{Aes128Enc, Aes256Enc};
use aes_gcm::aead::consts::U12;
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::AesGcm;
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use super::aes_cm::AesKey;
use super::hmac_sha1::HmacSha1;
use super::kdf::{Kdf, Label};
use super::SrtpSuite;

/// Bytes of an AES-GCM tag (RFC 7714 §7: 16 octets for both AEAD suites).
pub(crate) const GCM_TAG_LEN: usize = 16;

/// The tag was not right: the packet is forged, damaged or under another key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadTag;

/// The two AEAD ciphers, keyed (AES key schedule and GHASH key zeroed on drop).
enum Gcm {
    Aes128(Box<AesGcm<Aes128Enc, U12>>),
    Aes256(Box<AesGcm<Aes256Enc, U12>>),
}

impl Gcm {
    fn seal(&self, nonce: &[u8; 12], aad: &[u8], data: &mut [u8]) -> [u8; GCM_TAG_LEN] {
        let nonce = GenericArray::from_slice(nonce);
        let tag = match self {
            Gcm::Aes128(c) => c.encrypt_in_place_detached(nonce, aad, data),
            Gcm::Aes256(c) => c.encrypt_in_place_detached(nonce, aad, data),
        };
        // Only fails for inputs longer than 2^36 bytes.
        tag.map(Into::into).unwrap_or([0; GCM_TAG_LEN])
    }

    /// Checks the tag in constant time, then decrypts (the `aes-gcm` crate's order).
    fn open(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        data: &mut [u8],
        tag: &[u8],
    ) -> Result<(), BadTag> {
        let nonce = GenericArray::from_slice(nonce);
        let tag = GenericArray::from_slice(tag);
        match self {
            Gcm::Aes128(c) => c.decrypt_in_place_detached(nonce, aad, data, tag),
            Gcm::Aes256(c) => c.decrypt_in_place_detached(nonce, aad, data, tag),
        }
        .map_err(|_| BadTag)
    }
}

/// The session keys of one direction of SRTP or of SRTCP. The cipher key schedules are boxed
/// at their own size (see `AesKey`), so neither variant makes the other pay for its room.
enum Keys {
    /// AES counter mode for confidentiality, HMAC-SHA1 for authentication.
    AesCm {
        cipher: AesKey,
        auth: HmacSha1,
        salt: [u8; 14],
    },
    /// AES-GCM for both.
    Gcm { aead: Gcm, salt: [u8; 12] },
}

impl Drop for Keys {
    fn drop(&mut self) {
        match self {
            Keys::AesCm { salt, .. } => salt.zeroize(),
            Keys::Gcm { salt, .. } => salt.zeroize(),
        }
    }
}

impl Keys {
    /// Derives the keys under the three labels for `suite` (RTP's or RTCP's).
    fn derive(suite: SrtpSuite, kdf: &Kdf, labels: [Label; 3]) -> Self {
        let [enc, auth, salt_label] = labels;
        let mut key = [0u8; 32];
        let key = &mut key[..suite.key_len()];
        kdf.derive(enc, key);
        let keys = if suite.is_aead() {
            let mut salt = [0u8; 12];
            kdf.derive(salt_label, &mut salt);
            let aead = match suite.key_len() {
                16 => Gcm::Aes128(Box::new(AesGcm::new(GenericArray::from_slice(key)))),
                _ => Gcm::Aes256(Box::new(AesGcm::new(GenericArray::from_slice(key)))),
            };
            Keys::Gcm { aead, salt }
        } else {
            let mut salt = [0u8; 14];
            kdf.derive(salt_label, &mut salt);
            let mut auth_key = [0u8; 20];
            kdf.derive(auth, &mut auth_key);
            let keys = Keys::AesCm {
                cipher: AesKey::new(key).expect("suite key lengths are 16 or 32"),
                auth: HmacSha1::new(&auth_key),
                salt,
            };
            auth_key.zeroize();
            keys
        };
        key.zeroize();
        keys
    }

    /// The AES-CM counter block for `ssrc` and a 48-bit `index` (RFC 3711 §4.1.1):
    /// ```text
    /// IV = (k_s * 2^16) XOR (SSRC * 2^64) XOR (i * 2^16)
    /// ```
    fn cm_iv(salt: &[u8; 14], ssrc: u32, index: u64) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv[..14].copy_from_slice(salt);
        for (b, x) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
            *b ^= x;
        }
        for (b, x) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
            *b ^= x;
        }
        iv
    }

    /// The AES-GCM nonce (RFC 7714 §8.1 and §9.1): `middle` is `ROC || SEQ` for SRTP and
    /// `0x0000 || SRTCP index` for SRTCP.
    /// ```text
    ///   0  0  0  0  0  0  0  0  0  0  1  1
    ///   0  1  2  3  4  5  6  7  8  9  0  1
    /// +--+--+--+--+--+--+--+--+--+--+--+--+
    /// |00|00|    SSRC   |     ROC   | SEQ |---+
    /// +--+--+--+--+--+--+--+--+--+--+--+--+   |
    ///                                         +--(XOR)-- Encryption Salt -- IV
    /// ```
    fn gcm_nonce(salt: &[u8; 12], ssrc: u32, middle: [u8; 6]) -> [u8; 12] {
        let mut nonce = [0u8; 12];
        nonce[2..6].copy_from_slice(&ssrc.to_be_bytes());
        nonce[6..].copy_from_slice(&middle);
        for (b, s) in nonce.iter_mut().zip(salt) {
            *b ^= s;
        }
        nonce
    }
}

/// `ROC || SEQ` of a 48-bit SRTP index, as the GCM nonce has them.
fn roc_seq(index: u64) -> [u8; 6] {
    let bytes = index.to_be_bytes();
    [bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7]]
}

/// Checks `tag` against the HMAC of `parts`, truncated, in constant time.
fn check_hmac(auth: &HmacSha1, parts: &[&[u8]], tag: &[u8]) -> Result<(), BadTag> {
    let full = auth.tag(parts);
    if bool::from(full[..tag.len()].ct_eq(tag)) {
        Ok(())
    } else {
        Err(BadTag)
    }
}

/// Every session key of one SRTP master key: SRTP's and SRTCP's.
pub(crate) struct SessionKeys {
    suite: SrtpSuite,
    rtp: Keys,
    rtcp: Keys,
}

/// Where the parts of an SRTP packet are, in bytes from its start.
///
/// ```text
/// AES-CM: | RTP header | encrypted payload | MKI (opt.) | auth tag |
/// AES-GCM:| RTP header | encrypted payload | GCM tag    | MKI (opt.) |
/// ```
/// RFC 3711 §3.1, RFC 7714 §8.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RtpLayout {
    /// End of the RTP header: the payload starts here.
    pub(crate) header: usize,
    /// End of the payload.
    pub(crate) payload_end: usize,
    /// Bytes of MKI.
    pub(crate) mki_len: usize,
}

/// Where the parts of an SRTCP packet are.
///
/// ```text
/// AES-CM: | header+SSRC (8) | encrypted | E || index | MKI (opt.) | auth tag (10) |
/// AES-GCM:| header+SSRC (8) | encrypted | GCM tag (16) | E || index | MKI (opt.) |
/// ```
/// RFC 3711 §3.4, RFC 7714 §9.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RtcpLayout {
    /// End of the encrypted part.
    pub(crate) payload_end: usize,
    /// Bytes of MKI.
    pub(crate) mki_len: usize,
}

/// Bytes of the clear RTCP prefix: header and sender SSRC.
const RTCP_PREFIX: usize = 8;

impl SessionKeys {
    /// Derives every session key from a master key and salt (RFC 3711 §4.3, kdr 0); `None` if
    /// their lengths are not the suite's.
    pub(crate) fn derive(suite: SrtpSuite, master_key: &[u8], master_salt: &[u8]) -> Option<Self> {
        if master_key.len() != suite.key_len() || master_salt.len() != suite.salt_len() {
            return None;
        }
        let kdf = Kdf::new(master_key, master_salt)?;
        Some(Self {
            suite,
            rtp: Keys::derive(
                suite,
                &kdf,
                [
                    Label::RtpEncryption,
                    Label::RtpAuthentication,
                    Label::RtpSalt,
                ],
            ),
            rtcp: Keys::derive(
                suite,
                &kdf,
                [
                    Label::RtcpEncryption,
                    Label::RtcpAuthentication,
                    Label::RtcpSalt,
                ],
            ),
        })
    }

    /// Keys given directly (test vectors that start from session keys). AES-CM only uses
    /// `auth`.
    #[cfg(test)]
    pub(crate) fn from_session_keys(
        suite: SrtpSuite,
        key: &[u8],
        salt: &[u8],
        auth: &[u8],
    ) -> Self {
        let make = || {
            if suite.is_aead() {
                let aead = match key.len() {
                    16 => Gcm::Aes128(Box::new(AesGcm::new(GenericArray::from_slice(key)))),
                    _ => Gcm::Aes256(Box::new(AesGcm::new(GenericArray::from_slice(key)))),
                };
                Keys::Gcm {
                    aead,
                    salt: salt.try_into().unwrap(),
                }
            } else {
                Keys::AesCm {
                    cipher: AesKey::new(key).unwrap(),
                    auth: HmacSha1::new(auth),
                    salt: salt.try_into().unwrap(),
                }
            }
        };
        Self {
            suite,
            rtp: make(),
            rtcp: make(),
        }
    }

    /// The suite.
    pub(crate) fn suite(&self) -> SrtpSuite {
        self.suite
    }

    /// Encrypts the payload and writes the MKI and tag after it: `packet` is exactly the
    /// SRTP packet's length, its first `layout.payload_end` bytes the RTP packet.
    pub(crate) fn protect_rtp(
        &self,
        packet: &mut [u8],
        layout: RtpLayout,
        ssrc: u32,
        index: u64,
        mki: &[u8],
    ) {
        let RtpLayout {
            header,
            payload_end,
            mki_len,
        } = layout;
        match &self.rtp {
            Keys::AesCm { cipher, auth, salt } => {
                let iv = Keys::cm_iv(salt, ssrc, index);
                cipher.apply_keystream(&iv, &mut packet[header..payload_end]);
                packet[payload_end..payload_end + mki_len].copy_from_slice(mki);
                // Authenticated portion || ROC (RFC 3711 §4.2).
                let roc = ((index >> 16) as u32).to_be_bytes();
                let tag = auth.tag(&[&packet[..payload_end], &roc]);
                let tag_len = self.suite.srtp_overhead();
                let at = payload_end + mki_len;
                packet[at..at + tag_len].copy_from_slice(&tag[..tag_len]);
            }
            Keys::Gcm { aead, salt } => {
                let nonce = Keys::gcm_nonce(salt, ssrc, roc_seq(index));
                let (aad, rest) = packet.split_at_mut(header);
                let tag = aead.seal(&nonce, aad, &mut rest[..payload_end - header]);
                packet[payload_end..payload_end + GCM_TAG_LEN].copy_from_slice(&tag);
                let at = payload_end + GCM_TAG_LEN;
                packet[at..at + mki_len].copy_from_slice(mki);
            }
        }
    }

    /// Checks the tag of an SRTP packet (in constant time) at `index`; for AES-GCM also
    /// decrypts. Nothing is decrypted if the tag is wrong.
    pub(crate) fn authenticate_rtp(
        &self,
        packet: &mut [u8],
        layout: RtpLayout,
        ssrc: u32,
        index: u64,
    ) -> Result<(), BadTag> {
        let RtpLayout {
            header,
            payload_end,
            mki_len,
        } = layout;
        match &self.rtp {
            Keys::AesCm { auth, .. } => {
                let roc = ((index >> 16) as u32).to_be_bytes();
                let at = payload_end + mki_len;
                check_hmac(auth, &[&packet[..payload_end], &roc], &packet[at..])
            }
            Keys::Gcm { aead, salt } => {
                let nonce = Keys::gcm_nonce(salt, ssrc, roc_seq(index));
                let (aad, rest) = packet.split_at_mut(header);
                let (data, tag) = rest.split_at_mut(payload_end - header);
                aead.open(&nonce, aad, data, &tag[..GCM_TAG_LEN])
            }
        }
    }

    /// Undoes the decryption [`authenticate_rtp`](Self::authenticate_rtp) did (AES-GCM) when
    /// the packet is refused after all, a replay: encrypting again under the same nonce gives
    /// back the same ciphertext, so a refused packet leaves the caller's buffer as it was.
    pub(crate) fn restore_rtp(&self, packet: &mut [u8], layout: RtpLayout, ssrc: u32, index: u64) {
        if let Keys::Gcm { aead, salt } = &self.rtp {
            let nonce = Keys::gcm_nonce(salt, ssrc, roc_seq(index));
            let (aad, rest) = packet.split_at_mut(layout.header);
            aead.seal(&nonce, aad, &mut rest[..layout.payload_end - layout.header]);
        }
    }

    /// Decrypts an SRTP packet whose tag [`authenticate_rtp`](Self::authenticate_rtp)
    /// accepted (AES-CM; AES-GCM has already decrypted).
    pub(crate) fn decrypt_rtp(&self, packet: &mut [u8], layout: RtpLayout, ssrc: u32, index: u64) {
        if let Keys::AesCm { cipher, salt, .. } = &self.rtp {
            let iv = Keys::cm_iv(salt, ssrc, index);
            cipher.apply_keystream(&iv, &mut packet[layout.header..layout.payload_end]);
        }
    }

    /// Encrypts an RTCP packet and appends `E=1 || index`, the MKI and the tag: `packet` is
    /// exactly the SRTCP packet's length, its first `layout.payload_end` bytes the RTCP packet.
    pub(crate) fn protect_rtcp(
        &self,
        packet: &mut [u8],
        layout: RtcpLayout,
        ssrc: u32,
        index: u32,
        mki: &[u8],
    ) {
        let RtcpLayout {
            payload_end,
            mki_len,
        } = layout;
        let e_index = (0x8000_0000 | index).to_be_bytes();
        match &self.rtcp {
            Keys::AesCm { cipher, auth, salt } => {
                let iv = Keys::cm_iv(salt, ssrc, u64::from(index));
                cipher.apply_keystream(&iv, &mut packet[RTCP_PREFIX..payload_end]);
                packet[payload_end..payload_end + 4].copy_from_slice(&e_index);
                let at = payload_end + 4;
                packet[at..at + mki_len].copy_from_slice(mki);
                let tag = auth.tag(&[&packet[..payload_end + 4]]);
                let at = at + mki_len;
                let tag_len = self.suite.srtcp_tag_len();
                packet[at..at + tag_len].copy_from_slice(&tag[..tag_len]);
            }
            Keys::Gcm { aead, salt } => {
                let nonce = Keys::gcm_nonce(salt, ssrc, rtcp_middle(index));
                let aad = rtcp_aad(packet, e_index);
                let tag = aead.seal(&nonce, &aad, &mut packet[RTCP_PREFIX..payload_end]);
                packet[payload_end..payload_end + GCM_TAG_LEN].copy_from_slice(&tag);
                let at = payload_end + GCM_TAG_LEN;
                packet[at..at + 4].copy_from_slice(&e_index);
                packet[at + 4..at + 4 + mki_len].copy_from_slice(mki);
            }
        }
    }

    /// Checks the tag of an SRTCP packet whose `E || index` word is `e_index` (in constant
    /// time); for AES-GCM also decrypts.
    pub(crate) fn authenticate_rtcp(
        &self,
        packet: &mut [u8],
        layout: RtcpLayout,
        ssrc: u32,
        e_index: u32,
    ) -> Result<(), BadTag> {
        let RtcpLayout {
            payload_end,
            mki_len,
        } = layout;
        match &self.rtcp {
            Keys::AesCm { auth, .. } => {
                let at = payload_end + 4 + mki_len;
                check_hmac(auth, &[&packet[..payload_end + 4]], &packet[at..])
            }
            Keys::Gcm { aead, salt } => {
                let nonce = Keys::gcm_nonce(salt, ssrc, rtcp_middle(e_index & 0x7FFF_FFFF));
                let aad = rtcp_aad(packet, e_index.to_be_bytes());
                let (data, tag) = packet[RTCP_PREFIX..].split_at_mut(payload_end - RTCP_PREFIX);
                aead.open(&nonce, &aad, data, &tag[..GCM_TAG_LEN])
            }
        }
    }

    /// As [`restore_rtp`](Self::restore_rtp), for SRTCP.
    pub(crate) fn restore_rtcp(
        &self,
        packet: &mut [u8],
        layout: RtcpLayout,
        ssrc: u32,
        e_index: u32,
    ) {
        if let Keys::Gcm { aead, salt } = &self.rtcp {
            let nonce = Keys::gcm_nonce(salt, ssrc, rtcp_middle(e_index & 0x7FFF_FFFF));
            let aad = rtcp_aad(packet, e_index.to_be_bytes());
            aead.seal(&nonce, &aad, &mut packet[RTCP_PREFIX..layout.payload_end]);
        }
    }

    /// Decrypts an SRTCP packet whose tag was accepted (AES-CM; AES-GCM already has).
    pub(crate) fn decrypt_rtcp(
        &self,
        packet: &mut [u8],
        layout: RtcpLayout,
        ssrc: u32,
        index: u32,
    ) {
        if let Keys::AesCm { cipher, salt, .. } = &self.rtcp {
            let iv = Keys::cm_iv(salt, ssrc, u64::from(index));
            cipher.apply_keystream(&iv, &mut packet[RTCP_PREFIX..layout.payload_end]);
        }
    }
}

/// `0x0000 || 0 || SRTCP index` of the SRTCP GCM nonce (RFC 7714 §9.1).
fn rtcp_middle(index: u32) -> [u8; 6] {
    let i = index.to_be_bytes();
    [0, 0, i[0], i[1], i[2], i[3]]
}

/// The SRTCP AAD (RFC 7714 §9.3): the clear header and SSRC, then `E || SRTCP index`.
fn rtcp_aad(packet: &[u8], e_index: [u8; 4]) -> [u8; 12] {
    let mut aad = [0u8; 12];
    aad[..8].copy_from_slice(&packet[..RTCP_PREFIX]);
    aad[8..].copy_from_slice(&e_index);
    aad
}
