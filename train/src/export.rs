//! Writing the weight-sharing artifact from a trained supernet: shared tensors (every
//! kernel size baked), the default BN set, and the table of stored subnets with their own
//! BN sets. Files are written atomically (temporary file, then rename), so a failed write
//! never leaves a half-written artifact or destroys an existing one.

use std::io::Write;
use std::path::Path;

use supernet_format::writer::{ArtifactWriter, SubnetEntry};
use supernet_format::{FormatError, Prep, SubnetConfig};
use supernet_runtime::plan::Plan;

use crate::supernet::Supernet;

/// A subnet to store in the artifact's table.
#[derive(Clone, Debug)]
pub struct Stored {
    pub id: u32,
    pub name: String,
    pub config: SubnetConfig,
    /// Its BN set (recalibrated).
    pub bn: Vec<f32>,
    /// Held-out accuracy (fraction), NaN if not measured.
    pub accuracy: f32,
}

/// Everything the artifact needs from a supernet.
pub fn artifact_writer(
    net: &Supernet,
    prep: Prep,
    stored: &[Stored],
    meta: Option<String>,
) -> ArtifactWriter {
    let largest = SubnetConfig::largest(&net.space);
    ArtifactWriter {
        space: net.space,
        prep,
        tensors: net.artifact_tensors(),
        default_bn: net.running_bn_set(&largest),
        subnets: stored
            .iter()
            .map(|s| SubnetEntry {
                id: s.id,
                name: s.name.clone(),
                accuracy: s.accuracy,
                arena_bytes: Plan::new(&net.space, Some(&s.config)).bytes() as u32,
                config: s.config,
                bn: s.bn.clone(),
            })
            .collect(),
        meta,
    }
}

/// Why an artifact could not be written.
#[derive(Debug)]
pub enum ExportError {
    Format(FormatError),
    Io(std::path::PathBuf, std::io::Error),
    /// `path` appeared while we worked and replacing was not allowed; the new artifact was
    /// kept as `saved_as`.
    Exists {
        path: std::path::PathBuf,
        saved_as: std::path::PathBuf,
    },
}

impl std::fmt::Display for ExportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExportError::Format(e) => write!(f, "cannot build the artifact: {e}"),
            ExportError::Io(p, e) => write!(f, "cannot write {}: {e}", p.display()),
            ExportError::Exists { path, saved_as } => write!(
                f,
                "{} was created by someone else meanwhile and is left as it is; the new artifact is saved as {}",
                path.display(),
                saved_as.display()
            ),
        }
    }
}

impl std::error::Error for ExportError {}

fn dir_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Checks, before any long work, that `path` can be written: its directory exists and
/// accepts a new file (a probe file is created and removed).
pub fn check_writable(path: &Path) -> Result<(), ExportError> {
    let io = |e| ExportError::Io(path.to_path_buf(), e);
    if path.file_name().is_none() {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a file path",
        )));
    }
    let probe = dir_of(path).join(format!(".supernet-probe-{}", std::process::id()));
    std::fs::File::create(&probe).map_err(io)?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, synced, then moved into
/// place. With `replace == false` an existing `path` is never touched (the move is a
/// no-clobber hard link); the new file is then kept beside it and reported.
pub fn write_atomic(path: &Path, bytes: &[u8], replace: bool) -> Result<(), ExportError> {
    let io = |e| ExportError::Io(path.to_path_buf(), e);
    let name = path.file_name().ok_or_else(|| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a file path",
        ))
    })?;
    let tmp = dir_of(path).join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    if replace {
        return std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(e)
        });
    }
    match std::fs::hard_link(&tmp, path) {
        Ok(()) => {
            let _ = std::fs::remove_file(&tmp);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let saved_as = dir_of(path).join(format!(
                "{}.new-{}",
                name.to_string_lossy(),
                std::process::id()
            ));
            std::fs::rename(&tmp, &saved_as).map_err(io)?;
            Err(ExportError::Exists {
                path: path.to_path_buf(),
                saved_as,
            })
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(io(e))
        }
    }
}

/// Builds and writes the artifact; returns its size in bytes.
pub fn export(
    net: &Supernet,
    prep: Prep,
    stored: &[Stored],
    meta: Option<String>,
    path: &Path,
    replace: bool,
) -> Result<usize, ExportError> {
    let bytes = artifact_writer(net, prep, stored, meta)
        .to_bytes()
        .map_err(ExportError::Format)?;
    write_atomic(path, &bytes, replace)?;
    Ok(bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("supernet-export-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn never_replaces_without_permission_and_keeps_the_new_file() {
        let d = dir("noclobber");
        let p = d.join("m.snet");
        write_atomic(&p, b"first", false).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"first");
        let e = write_atomic(&p, b"second", false).unwrap_err();
        let ExportError::Exists { saved_as, .. } = e else {
            panic!("{e}")
        };
        assert_eq!(std::fs::read(&p).unwrap(), b"first");
        assert_eq!(std::fs::read(&saved_as).unwrap(), b"second");
        write_atomic(&p, b"third", true).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"third");
        // no temporary files left behind
        let left: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(left.is_empty());
    }

    #[test]
    fn unwritable_places_are_found_before_work() {
        let d = dir("probe");
        assert!(check_writable(&d.join("x.snet")).is_ok());
        assert!(check_writable(&d.join("no/such/dir/x.snet")).is_err());
    }
}
