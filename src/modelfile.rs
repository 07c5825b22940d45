//! Opening an artifact file for the command line: the file is read into an aligned buffer
//! (a few MB) and validated by the runtime's loader. Reading rather than memory-mapping
//! keeps the tool safe when the file is truncated or rewritten while it runs; the runtime
//! itself takes any byte slice, including a memory map.

use std::path::Path;

use anyhow::{Context, bail};
use supernet_format::writer::AlignedBytes;

/// An artifact file's bytes.
pub struct ModelFile {
    bytes: AlignedBytes,
}

impl ModelFile {
    pub fn open(path: &Path) -> anyhow::Result<ModelFile> {
        let meta =
            std::fs::metadata(path).with_context(|| format!("cannot open {}", path.display()))?;
        if !meta.is_file() {
            bail!("{} is not a regular file", path.display());
        }
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        Ok(ModelFile {
            bytes: AlignedBytes::from_slice(&bytes),
        })
    }

    pub fn bytes(&self) -> &[u8] {
        self.bytes.as_bytes()
    }

    /// Validates and loads the model.
    pub fn model(&self, path: &Path) -> anyhow::Result<supernet_runtime::Model<'_>> {
        supernet_runtime::Model::from_bytes(self.bytes())
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }
}

/// A stored name made safe for a terminal: control characters escaped.
pub fn printable(name: &str) -> String {
    name.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}
