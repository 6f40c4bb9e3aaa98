//! `certs`: command-line front end of the lab PKI.
//!
//! - `certs init --out DIR` writes the whole lab set.
//! - `certs issue --ca-dir DIR --name NAME... [--ip IP...] [--days N] --out PREFIX`
//!   issues one certificate from the CA in `DIR`.
//! - `certs revoke --ca-dir DIR --cert FILE... --out crl.pem` writes a CRL.
#![forbid(unsafe_code)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use certs::{Ca, LabPki, LeafSpec};
use clap::{Parser, Subcommand};

/// Lab PKI for the SIP mediation appliance.
#[derive(Debug, Parser)]
#[command(name = "certs", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write the complete lab certificate set (CA, parties, bad certificates, CRL).
    Init {
        /// Directory to write into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Issue one leaf certificate (server + client auth) from an existing CA.
    Issue {
        /// Directory holding ca.pem and ca-key.pem.
        #[arg(long, value_name = "DIR")]
        ca_dir: PathBuf,
        /// DNS name; the first one is also the common name. Repeatable.
        #[arg(long = "name", value_name = "NAME", required = true)]
        names: Vec<String>,
        /// IP address subject alternative name. Repeatable.
        #[arg(long = "ip", value_name = "IP")]
        ips: Vec<IpAddr>,
        /// Validity in days from now (the certificate starts one day ago).
        #[arg(long, value_name = "N", default_value_t = certs::DEFAULT_VALIDITY_DAYS,
              value_parser = clap::value_parser!(i64).range(1..))]
        days: i64,
        /// Output prefix: writes PREFIX.pem and PREFIX-key.pem.
        #[arg(long, value_name = "PREFIX")]
        out: PathBuf,
    },
    /// Write a CRL from the CA revoking the given certificates.
    Revoke {
        /// Directory holding ca.pem and ca-key.pem.
        #[arg(long, value_name = "DIR")]
        ca_dir: PathBuf,
        /// PEM certificate(s) to revoke; each must have been issued by the CA.
        #[arg(long = "cert", value_name = "FILE", required = true, num_args = 1..)]
        certs: Vec<PathBuf>,
        /// Where to write the PEM CRL.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("certs: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Init { out } => init(&out),
        Command::Issue {
            ca_dir,
            names,
            ips,
            days,
            out,
        } => issue(&ca_dir, names, ips, days, &out),
        Command::Revoke { ca_dir, certs, out } => revoke(&ca_dir, &certs, &out),
    }
}

fn init(out: &Path) -> Result<()> {
    let pki = LabPki::generate().context("cannot generate the lab PKI")?;
    for path in pki.write_to(out)? {
        println!("{}", path.display());
    }
    Ok(())
}

fn issue(ca_dir: &Path, names: Vec<String>, ips: Vec<IpAddr>, days: i64, out: &Path) -> Result<()> {
    let ca = Ca::load_dir(ca_dir)?;
    let spec = LeafSpec::new(names).with_ips(ips).valid_for_days(days);
    let issued = ca.issue(&spec)?;
    for path in issued.write(out)? {
        println!("{}", path.display());
    }
    Ok(())
}

fn revoke(ca_dir: &Path, cert_paths: &[PathBuf], out: &Path) -> Result<()> {
    let ca = Ca::load_dir(ca_dir)?;
    let mut serials = Vec::with_capacity(cert_paths.len());
    for path in cert_paths {
        let pem = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let serial = certs::serial_from_pem(&pem, &path.display().to_string())?;
        if !ca.is_issuer_of(&pem)? {
            bail!(
                "{} was not issued by the CA in {} ({})",
                path.display(),
                ca_dir.display(),
                ca.common_name()
            );
        }
        serials.push(serial);
    }
    let crl = ca.crl(&serials)?;
    certs::write_public(out, crl.as_bytes())?;
    println!("{}", out.display());
    Ok(())
}
