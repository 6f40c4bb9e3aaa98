//! Standard base64 (RFC 4648 §4, `+/` alphabet) for SDES `inline:` keys, written here so the
//! crate needs no extra dependency.
//!
//! The encoder always pads. The decoder accepts padded and unpadded input, refuses characters
//! outside the alphabet, misplaced `=` and impossible lengths, and never echoes the input in its
//! errors (the input is key material). The decoded buffer is allocated once at its final size so
//! no stray copy of a key is left behind by a reallocation.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Why a base64 string could not be decoded. Positions are byte offsets; the text itself is
/// never included.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Base64Error {
    /// A byte that is not in the base64 alphabet.
    #[error("invalid base64 character at position {0}")]
    InvalidCharacter(usize),
    /// `=` somewhere other than the last one or two places of the final quantum.
    #[error("misplaced base64 padding at position {0}")]
    MisplacedPadding(usize),
    /// A length no base64 encoding can have (one character left over).
    #[error("base64 text of {0} characters cannot be decoded (truncated?)")]
    InvalidLength(usize),
}

/// Encodes `data` as padded standard base64.
pub fn encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    // Writing into a String cannot fail.
    let _ = encode_into(&mut out, data);
    out
}

fn value_of(c: u8) -> Option<u32> {
    let v = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

/// Decodes standard base64, padded or not.
pub fn decode(text: &str) -> Result<Vec<u8>, Base64Error> {
    let bytes = text.as_bytes();
    // Split off trailing padding (at most two `=`).
    let data_len = bytes.iter().rposition(|&b| b != b'=').map_or(0, |p| p + 1);
    let pad = bytes.len() - data_len;
    if let Some(pos) = bytes[..data_len].iter().position(|&b| b == b'=') {
        return Err(Base64Error::MisplacedPadding(pos));
    }
    if pad > 2 || (pad > 0 && !bytes.len().is_multiple_of(4)) {
        return Err(Base64Error::MisplacedPadding(data_len));
    }
    if let Some(pos) = bytes[..data_len]
        .iter()
        .position(|&b| value_of(b).is_none())
    {
        return Err(Base64Error::InvalidCharacter(pos));
    }
    if data_len % 4 == 1 {
        return Err(Base64Error::InvalidLength(data_len));
    }
    let mut out = Vec::with_capacity(data_len / 4 * 3 + 2);
    for chunk in bytes[..data_len].chunks(4) {
        let mut n: u32 = 0;
        for (i, &c) in chunk.iter().enumerate() {
            // Every character was checked above.
            let v = value_of(c).unwrap_or(0);
            n |= v << (18 - 6 * i as u32);
        }
        let [_, b0, b1, b2] = n.to_be_bytes();
        out.push(b0);
        if chunk.len() > 2 {
            out.push(b1);
        }
        if chunk.len() > 3 {
            out.push(b2);
        }
    }
    Ok(out)
}

/// Writes `data` as padded base64 into `out`; `Display` impls use it so that printing a key
/// does not leave an extra heap copy of its encoding behind.
pub(crate) fn encode_into(out: &mut impl std::fmt::Write, data: &[u8]) -> std::fmt::Result {
    for chunk in data.chunks(3) {
        let mut quad = [0u8; 4];
        let b0 = chunk[0];
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let n = (u32::from(b0) << 16) | (u32::from(b1) << 8) | u32::from(b2);
        for (i, slot) in quad.iter_mut().enumerate() {
            *slot = if i <= chunk.len() {
                ALPHABET[((n >> (18 - 6 * i as u32)) & 0x3f) as usize]
            } else {
                b'='
            };
        }
        for b in quad {
            out.write_char(char::from(b))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4648_vectors() {
        let vectors: [(&[u8], &str); 7] = [
            (b"", ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"fooba", "Zm9vYmE="),
            (b"foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(encode(plain), encoded);
            assert_eq!(decode(encoded).unwrap(), plain);
        }
    }

    #[test]
    fn unpadded_input_is_accepted() {
        assert_eq!(decode("Zg").unwrap(), b"f");
        assert_eq!(decode("Zm8").unwrap(), b"fo");
    }

    #[test]
    fn all_byte_values_round_trip() {
        let data: Vec<u8> = (0..=255u8).collect();
        for len in 0..data.len() {
            let text = encode(&data[..len]);
            assert_eq!(decode(&text).unwrap(), &data[..len]);
        }
    }

    #[test]
    fn malformed_input_is_refused() {
        assert_eq!(decode("Zm9v!"), Err(Base64Error::InvalidCharacter(4)));
        assert_eq!(decode("Zm=v"), Err(Base64Error::MisplacedPadding(2)));
        assert_eq!(decode("Zm9vY"), Err(Base64Error::InvalidLength(5)));
        assert!(decode("Zg===").is_err());
        assert!(decode("Zg=").is_err());
        assert!(decode("Zm 9v").is_err());
        assert!(decode("====").is_err());
    }

    #[test]
    fn errors_do_not_echo_input() {
        let err = decode("SECRETKEY!").unwrap_err().to_string();
        assert!(!err.contains("SECRET"), "{err}");
    }
}
