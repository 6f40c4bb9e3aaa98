//! The complete lab certificate set ([`LabPki`]): the lab CA, the good
//! certificates of every party, and the bad ones the negative tests need.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use crate::ca::Ca;
use crate::error::Result;
use crate::issue::{Issued, LeafSpec};
use crate::write::{create_dir, write_public};

/// File names [`LabPki::write_to`] uses, for code that reads the set back.
pub mod files {
    /// Lab CA certificate.
    pub const CA: &str = "ca.pem";
    /// Lab CA private key.
    pub const CA_KEY: &str = "ca-key.pem";
    /// The certificate of the other CA, the one that signs `gateway-untrusted.pem`.
    pub const UNTRUSTED_CA: &str = "untrusted-ca.pem";
    /// Mediation appliance certificate.
    pub const MEDIATION: &str = "mediation.pem";
    /// Mediation appliance private key.
    pub const MEDIATION_KEY: &str = "mediation-key.pem";
    /// Gateway 1 certificate.
    pub const GATEWAY: &str = "gateway.pem";
    /// Gateway 1 private key.
    pub const GATEWAY_KEY: &str = "gateway-key.pem";
    /// Gateway 1 certificate and key in one file (for baresip).
    pub const GATEWAY_BUNDLE: &str = "gateway-bundle.pem";
    /// Gateway 2 certificate.
    pub const GATEWAY2: &str = "gateway2.pem";
    /// Gateway 2 private key.
    pub const GATEWAY2_KEY: &str = "gateway2-key.pem";
    /// Next hop (front end) certificate.
    pub const NEXTHOP: &str = "nexthop.pem";
    /// Next hop (front end) private key.
    pub const NEXTHOP_KEY: &str = "nexthop-key.pem";
    /// Next hop certificate and key in one file (for baresip).
    pub const NEXTHOP_BUNDLE: &str = "nexthop-bundle.pem";
    /// Gateway 1 name, signed by the untrusted CA.
    pub const GATEWAY_UNTRUSTED: &str = "gateway-untrusted.pem";
    /// Key for [`GATEWAY_UNTRUSTED`].
    pub const GATEWAY_UNTRUSTED_KEY: &str = "gateway-untrusted-key.pem";
    /// Gateway 1 name, expired.
    pub const GATEWAY_EXPIRED: &str = "gateway-expired.pem";
    /// Key for [`GATEWAY_EXPIRED`].
    pub const GATEWAY_EXPIRED_KEY: &str = "gateway-expired-key.pem";
    /// `rogue.example.test`, signed by the lab CA.
    pub const GATEWAY_WRONG_NAME: &str = "gateway-wrong-name.pem";
    /// Key for [`GATEWAY_WRONG_NAME`].
    pub const GATEWAY_WRONG_NAME_KEY: &str = "gateway-wrong-name-key.pem";
    /// Gateway 1 name, signed by the lab CA, listed in [`CRL`].
    pub const GATEWAY_REVOKED: &str = "gateway-revoked.pem";
    /// Key for [`GATEWAY_REVOKED`].
    pub const GATEWAY_REVOKED_KEY: &str = "gateway-revoked-key.pem";
    /// CRL from the lab CA revoking [`GATEWAY_REVOKED`].
    pub const CRL: &str = "crl.pem";

    /// Every file [`super::LabPki::write_to`] writes, in the order it writes them.
    pub const ALL: &[&str] = &[
        CA,
        CA_KEY,
        UNTRUSTED_CA,
        MEDIATION,
        MEDIATION_KEY,
        GATEWAY,
        GATEWAY_KEY,
        GATEWAY_BUNDLE,
        GATEWAY2,
        GATEWAY2_KEY,
        NEXTHOP,
        NEXTHOP_KEY,
        NEXTHOP_BUNDLE,
        GATEWAY_UNTRUSTED,
        GATEWAY_UNTRUSTED_KEY,
        GATEWAY_EXPIRED,
        GATEWAY_EXPIRED_KEY,
        GATEWAY_WRONG_NAME,
        GATEWAY_WRONG_NAME_KEY,
        GATEWAY_REVOKED,
        GATEWAY_REVOKED_KEY,
        CRL,
    ];
}

/// Common name of the lab CA.
pub const LAB_CA_NAME: &str = "Mediation Lab CA";
/// Common name of the CA that nobody trusts.
pub const UNTRUSTED_CA_NAME: &str = "Untrusted Lab CA";

/// The whole lab certificate set, in memory. Every leaf is for both server
/// and client authentication.
#[derive(Debug)]
pub struct LabPki {
    /// The lab CA (`Mediation Lab CA`) that every party trusts.
    pub ca: Ca,
    /// A different CA, trusted by nobody; signs [`LabPki::gateway_untrusted`].
    pub untrusted_ca: Ca,
    /// The mediation appliance: `mediation.example.test`, `localhost`, `127.0.0.1`.
    pub mediation: Issued,
    /// Gateway 1: `gw1.example.test`, `127.0.0.1`.
    pub gateway: Issued,
    /// Gateway 2: `gw2.example.test`, `127.0.0.1`.
    pub gateway2: Issued,
    /// The next hop (front end): `frontend.example.test`, `127.0.0.1`.
    pub nexthop: Issued,
    /// `gw1.example.test`, `127.0.0.1`, signed by [`LabPki::untrusted_ca`].
    pub gateway_untrusted: Issued,
    /// `gw1.example.test`, `127.0.0.1`, signed by the lab CA, expired yesterday.
    pub gateway_expired: Issued,
    /// `rogue.example.test`, `127.0.0.1`, signed by the lab CA.
    pub gateway_wrong_name: Issued,
    /// `gw1.example.test`, `127.0.0.1`, signed by the lab CA, revoked in [`LabPki::crl_pem`].
    pub gateway_revoked: Issued,
    /// PEM CRL from the lab CA listing [`LabPki::gateway_revoked`].
    pub crl_pem: String,
}

impl LabPki {
    /// Makes the whole set in memory (fresh keys every time).
    pub fn generate() -> Result<LabPki> {
        const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let ca = Ca::new(LAB_CA_NAME)?;
        let untrusted_ca = Ca::new(UNTRUSTED_CA_NAME)?;
        let gw1 = || LeafSpec::new(["gw1.example.test"]).with_ip(LOOPBACK);

        let mediation =
            ca.issue(&LeafSpec::new(["mediation.example.test", "localhost"]).with_ip(LOOPBACK))?;
        let gateway = ca.issue(&gw1())?;
        let gateway2 = ca.issue(&LeafSpec::new(["gw2.example.test"]).with_ip(LOOPBACK))?;
        let nexthop = ca.issue(&LeafSpec::new(["frontend.example.test"]).with_ip(LOOPBACK))?;
        let gateway_untrusted = untrusted_ca.issue(&gw1())?;
        let gateway_expired = ca.issue(&gw1().expired())?;
        let gateway_wrong_name =
            ca.issue(&LeafSpec::new(["rogue.example.test"]).with_ip(LOOPBACK))?;
        let gateway_revoked = ca.issue(&gw1())?;
        let crl_pem = ca.crl(std::slice::from_ref(&gateway_revoked.serial))?;

        Ok(LabPki {
            ca,
            untrusted_ca,
            mediation,
            gateway,
            gateway2,
            nexthop,
            gateway_untrusted,
            gateway_expired,
            gateway_wrong_name,
            gateway_revoked,
            crl_pem,
        })
    }

    /// Writes the set into `dir` (created if needed) under the names in
    /// [`files`]: keys and bundles with mode 0600, certificates and the CRL
    /// with mode 0644. Returns the paths written, in [`files::ALL`] order.
    pub fn write_to(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        create_dir(dir)?;
        let mut written = self.ca.write_to(dir, "ca")?;

        let untrusted_ca = dir.join(files::UNTRUSTED_CA);
        write_public(&untrusted_ca, self.untrusted_ca.cert_pem().as_bytes())?;
        written.push(untrusted_ca);

        let leaves: [(&Issued, &str, Option<&str>); 8] = [
            (&self.mediation, "mediation", None),
            (&self.gateway, "gateway", Some(files::GATEWAY_BUNDLE)),
            (&self.gateway2, "gateway2", None),
            (&self.nexthop, "nexthop", Some(files::NEXTHOP_BUNDLE)),
            (&self.gateway_untrusted, "gateway-untrusted", None),
            (&self.gateway_expired, "gateway-expired", None),
            (&self.gateway_wrong_name, "gateway-wrong-name", None),
            (&self.gateway_revoked, "gateway-revoked", None),
        ];
        for (issued, stem, bundle) in leaves {
            written.extend(issued.write(&dir.join(stem))?);
            if let Some(bundle) = bundle {
                let path = dir.join(bundle);
                issued.write_bundle(&path)?;
                written.push(path);
            }
        }

        let crl = dir.join(files::CRL);
        write_public(&crl, self.crl_pem.as_bytes())?;
        written.push(crl);
        Ok(written)
    }
}
