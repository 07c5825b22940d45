//! supernet-format: the artifact format of `docs/FORMAT.md`, shared by the trainer (which
//! writes it) and the runtime (which reads it in place).
//!
//! - [`space`]: the search space (widths, strides, activations, choice lists);
//! - [`config`]: subnet configs, their validation and their text form;
//! - [`arch`]: what a space and a config imply (shapes, tensor order, BN layout, costs);
//! - [`artifact`]: zero-copy parsing and validation;
//! - `writer` (feature `std`): building an artifact.
//!
//! `no_std` and no `alloc`, except the writer.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(target_endian = "big")]
compile_error!(
    "supernet artifacts hold little-endian f32 used in place: big-endian targets are not supported"
);

#[cfg(feature = "std")]
extern crate std;

pub mod arch;
pub mod artifact;
pub mod config;
pub mod crc32;
pub mod error;
pub mod space;
#[cfg(feature = "std")]
pub mod writer;

pub use artifact::{Artifact, Prep, StoredSubnet};
pub use config::{ConfigError, Field, SubnetConfig};
pub use error::{FormatError, SectionProblem, SubnetProblem, TensorProblem};
pub use space::{Act, Choices, Space, SpaceError, Stage};

/// The first 8 bytes of every artifact.
pub const MAGIC: [u8; 8] = [0x89, b'S', b'N', b'E', b'T', b'\r', b'\n', 0x1A];
/// Major version written and understood.
pub const VERSION_MAJOR: u16 = 1;
/// Minor version written.
pub const VERSION_MINOR: u16 = 1;
/// Length of the header written.
pub const HEADER_LEN: usize = 64;
/// Alignment of sections, tensors and BN sets.
pub const ALIGN: usize = 64;
/// Length of a section table entry.
pub const SECTION_ENTRY_LEN: usize = 16;
/// Largest number of sections.
pub const MAX_SECTIONS: usize = 32;
/// Largest number of stored subnets.
pub const MAX_SUBNETS: usize = 1024;

/// Header field offsets (FORMAT.md section 2).
pub const HDR_MAGIC: usize = 0;
pub const HDR_VERSION_MAJOR: usize = 8;
pub const HDR_VERSION_MINOR: usize = 10;
pub const HDR_HEADER_SIZE: usize = 12;
pub const HDR_FILE_SIZE: usize = 16;
pub const HDR_CHECKSUM: usize = 20;
pub const HDR_SECTION_COUNT: usize = 24;
pub const HDR_SECTION_TABLE: usize = 28;

/// Section tags (FORMAT.md section 3).
pub const TAG_SPAC: [u8; 4] = *b"SPAC";
pub const TAG_PREP: [u8; 4] = *b"PREP";
pub const TAG_TDIR: [u8; 4] = *b"TDIR";
pub const TAG_WGHT: [u8; 4] = *b"WGHT";
pub const TAG_BNST: [u8; 4] = *b"BNST";
pub const TAG_SUBN: [u8; 4] = *b"SUBN";
pub const TAG_META: [u8; 4] = *b"META";
