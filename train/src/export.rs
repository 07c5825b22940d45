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
}

impl std::fmt::Display for ExportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExportError::Format(e) => write!(f, "cannot build the artifact: {e}"),
            ExportError::Io(p, e) => write!(f, "cannot write {}: {e}", p.display()),
        }
    }
}

impl std::error::Error for ExportError {}

/// Writes `bytes` to `path` atomically: a temporary file beside it, synced, then renamed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    let io = |e| ExportError::Io(path.to_path_buf(), e);
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a file path",
        ))
    })?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// Builds and writes the artifact; returns its size in bytes.
pub fn export(
    net: &Supernet,
    prep: Prep,
    stored: &[Stored],
    meta: Option<String>,
    path: &Path,
) -> Result<usize, ExportError> {
    let bytes = artifact_writer(net, prep, stored, meta)
        .to_bytes()
        .map_err(ExportError::Format)?;
    write_atomic(path, &bytes)?;
    Ok(bytes.len())
}
