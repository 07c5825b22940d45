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
                latency_us: 0,
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
    /// The runtime failed on the artifact while timing its subnets (a bug: the writer
    /// checks everything the runtime does).
    Runtime(supernet_runtime::Error),
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
            ExportError::Runtime(e) => write!(f, "cannot time the stored subnets: {e}"),
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

/// Times every stored subnet of `w` through the runtime on this machine
/// ([`supernet_runtime::Session::calibrate`]: warm-up runs, then the median of `runs` runs,
/// one thread) and stores the result as its expected
/// latency (FORMAT.md 5.6, `latency_us`). Devices replace these figures by their own
/// calibration; on the writer's machine they rank the subnets by real speed.
pub fn measure_latencies(w: &mut ArtifactWriter, runs: u32) -> Result<(), ExportError> {
    use supernet_format::writer::AlignedBytes;
    use supernet_runtime::{Model, Session};
    let bytes = AlignedBytes::from_slice(&w.to_bytes().map_err(ExportError::Format)?);
    let model = Model::from_bytes(bytes.as_bytes()).map_err(ExportError::Runtime)?;
    let mut arena = vec![0f32; model.max_arena_len()];
    let mut session = Session::new(&model, &mut arena).map_err(ExportError::Runtime)?;
    // A fixed, non-trivial input: timing does not depend on the values.
    let input: Vec<f32> = (0..model.input_len())
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    let mut logits = vec![0f32; model.classes()];
    let mut table = vec![0u32; model.subnet_count()];
    let start = std::time::Instant::now();
    let mut clock = || start.elapsed().as_micros() as u64;
    session
        .calibrate(&mut clock, &input, &mut logits, runs, &mut table)
        .map_err(ExportError::Runtime)?;
    for (s, &t) in w.subnets.iter_mut().zip(&table) {
        s.latency_us = t;
    }
    Ok(())
}

/// Builds and writes the artifact, with expected latencies measured here; returns its size
/// in bytes.
pub fn export(
    net: &Supernet,
    prep: Prep,
    stored: &[Stored],
    meta: Option<String>,
    path: &Path,
    replace: bool,
) -> Result<usize, ExportError> {
    let mut w = artifact_writer(net, prep, stored, meta);
    measure_latencies(&mut w, 15)?;
    let bytes = w.to_bytes().map_err(ExportError::Format)?;
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
