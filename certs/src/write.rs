//! Writing PEM files with the right permissions: private keys 0600,
//! certificates and CRLs 0644.

use std::fs::{self, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::error::{Error, Result};

/// Writes secret material (a private key or a cert+key bundle) to `path`
/// with mode 0600, replacing any existing file. The mode is fixed before
/// anything is written, even if the file already existed with a wider mode.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    write_with_mode(path, contents, 0o600)
}

/// Writes public material (a certificate or CRL) to `path` with mode 0644,
/// replacing any existing file.
pub fn write_public(path: &Path, contents: &[u8]) -> Result<()> {
    write_with_mode(path, contents, 0o644)
}

/// Creates `dir` and its parents if they do not exist.
pub(crate) fn create_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|error| Error::Write {
        path: dir.to_owned(),
        error,
    })
}

fn write_with_mode(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let err = |error| Error::Write {
        path: path.to_owned(),
        error,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(err)?;
    // `mode` only applies when the file is created (and is masked by the
    // umask); set it explicitly so an existing file gets it too.
    file.set_permissions(Permissions::from_mode(mode))
        .map_err(err)?;
    file.write_all(contents).map_err(err)?;
    file.sync_all().map_err(err)
}
