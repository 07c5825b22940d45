//! Opening an artifact file: memory-mapped (zero-copy, page aligned), validated by the
//! runtime's loader.

use std::fs::File;
use std::path::Path;

use anyhow::Context;
use memmap2::Mmap;

/// An artifact file mapped into memory.
pub struct ModelFile {
    map: Mmap,
}

impl ModelFile {
    pub fn open(path: &Path) -> anyhow::Result<ModelFile> {
        let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        // SAFETY: the map is read-only and private to this process; the artifact is validated
        // before use and only read. If another process truncates the file while it is mapped,
        // reads may fault, as with any memory-mapped file (documented in the README).
        let map =
            unsafe { Mmap::map(&f) }.with_context(|| format!("cannot map {}", path.display()))?;
        Ok(ModelFile { map })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Validates and loads the model.
    pub fn model(&self, path: &Path) -> anyhow::Result<supernet_runtime::Model<'_>> {
        supernet_runtime::Model::from_bytes(self.bytes())
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }
}
