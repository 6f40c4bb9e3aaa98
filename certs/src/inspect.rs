//! Reading facts back out of PEM certificates (with `x509-parser`).

use rcgen::SerialNumber;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::{Error, Result};

/// The serial number of the first certificate in `pem`, as encoded in the
/// certificate (leading zero bytes removed).
///
/// `what` names the input in error messages (usually a file name).
pub fn serial_from_pem(pem: &str, what: &str) -> Result<SerialNumber> {
    let bad = |reason: String| Error::BadCertificate {
        what: what.to_owned(),
        reason,
    };
    let der = pem_to_der(pem).map_err(bad)?;
    let (_, cert) =
        X509Certificate::from_der(&der).map_err(|e| bad(format!("cannot parse DER: {e}")))?;
    let raw = cert.raw_serial();
    let first_nonzero = raw
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(raw.len().saturating_sub(1));
    Ok(SerialNumber::from_slice(&raw[first_nonzero..]))
}

/// The DER contents of the first `CERTIFICATE` block in `pem`.
pub(crate) fn pem_to_der(pem: &str) -> Result<Vec<u8>, String> {
    for item in x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes()) {
        let item = item.map_err(|e| format!("bad PEM: {e}"))?;
        if item.label == "CERTIFICATE" {
            return Ok(item.contents);
        }
    }
    Err("no CERTIFICATE block in PEM".to_owned())
}
