//! Errors of the format crate. Every variant is documented and stable; the C API maps each
//! top-level variant to one status code.

use core::fmt;

use crate::config::ConfigError;
use crate::space::SpaceError;

/// What is wrong with a section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SectionProblem {
    /// It extends past the end of the file.
    OutOfBounds,
    /// Its offset is not a multiple of 64.
    Misaligned,
    /// It overlaps another section, the header or the section table.
    Overlap,
    /// Its tag appears twice.
    Duplicate,
    /// A required section is absent.
    Missing,
    /// Its length is not what its contents require.
    Length,
    /// A reserved field is not zero.
    Reserved,
    /// A value in it is invalid (the text says which).
    Invalid(&'static str),
}

/// What is wrong with a tensor directory entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorProblem {
    /// The directory has the wrong number of entries.
    Count { expected: u32, found: u32 },
    /// The entry's length differs from what the space prescribes.
    Length { expected: u32, found: u32 },
    /// The data lies (partly) outside the WGHT section.
    OutOfBounds,
    /// The offset is not a multiple of 64.
    Misaligned,
    /// A value is NaN or infinite.
    NotFinite,
}

/// What is wrong with a stored-subnet record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubnetProblem {
    /// Its config is not valid for the space.
    Config(ConfigError),
    /// Its BN set has the wrong length.
    BnLength { expected: u32, found: u32 },
    /// Its BN set lies outside BNST or is not 64-byte aligned.
    BnOutOfBounds,
    /// Another record has the same id.
    DuplicateId(u32),
    /// The name is not NUL-padded UTF-8 without control characters.
    Name,
    /// Its BN set holds a NaN or infinite value.
    BnNotFinite,
    /// The accuracy is neither NaN nor in [0, 1].
    Accuracy,
    /// A reserved field is not zero.
    Reserved,
}

/// Why bytes are not a valid artifact (or cannot be written as one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatError {
    /// Fewer bytes than a header.
    TooShort { len: usize },
    /// The first 8 bytes are not the magic.
    BadMagic,
    /// A major version this reader does not know.
    UnsupportedVersion { major: u16, minor: u16 },
    /// The header's file size differs from the buffer length (truncated or padded file).
    SizeMismatch { header: u32, actual: usize },
    /// The header is inconsistent (the text names the field).
    BadHeader(&'static str),
    /// The checksum does not match the contents.
    Checksum { stored: u32, computed: u32 },
    /// The buffer does not start at a 4-byte aligned address.
    Misaligned,
    /// A section is invalid.
    Section {
        tag: [u8; 4],
        problem: SectionProblem,
    },
    /// The search space is invalid.
    Space(SpaceError),
    /// A tensor directory entry is invalid.
    Tensor { index: u32, problem: TensorProblem },
    /// A stored-subnet record is invalid.
    Subnet { index: u32, problem: SubnetProblem },
}

impl From<SpaceError> for FormatError {
    fn from(e: SpaceError) -> Self {
        FormatError::Space(e)
    }
}

struct Tag<'a>(&'a [u8; 4]);

impl fmt::Display for Tag<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.0 {
            if b.is_ascii_graphic() {
                write!(f, "{}", b as char)?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::TooShort { len } => {
                write!(f, "{len} bytes is too short for a supernet artifact")
            }
            FormatError::BadMagic => write!(f, "not a supernet artifact (bad magic)"),
            FormatError::UnsupportedVersion { major, minor } => write!(
                f,
                "artifact version {major}.{minor} is not supported (this reader knows major version {})",
                crate::VERSION_MAJOR
            ),
            FormatError::SizeMismatch { header, actual } => write!(
                f,
                "artifact is {actual} bytes but its header says {header} (truncated or padded file)"
            ),
            FormatError::BadHeader(what) => write!(f, "artifact header: {what}"),
            FormatError::Checksum { stored, computed } => write!(
                f,
                "artifact checksum mismatch (stored {stored:#010x}, computed {computed:#010x}): the file is corrupted"
            ),
            FormatError::Misaligned => write!(
                f,
                "artifact buffer must start at a 4-byte aligned address (64 recommended)"
            ),
            FormatError::Section { tag, problem } => {
                write!(f, "section {}: ", Tag(tag))?;
                match problem {
                    SectionProblem::OutOfBounds => write!(f, "extends past the end of the file"),
                    SectionProblem::Misaligned => write!(f, "offset is not a multiple of 64"),
                    SectionProblem::Overlap => write!(f, "overlaps another part of the file"),
                    SectionProblem::Duplicate => write!(f, "appears twice"),
                    SectionProblem::Missing => write!(f, "required but missing"),
                    SectionProblem::Length => write!(f, "has the wrong length"),
                    SectionProblem::Reserved => write!(f, "a reserved field is not zero"),
                    SectionProblem::Invalid(what) => write!(f, "{what}"),
                }
            }
            FormatError::Space(e) => write!(f, "{e}"),
            FormatError::Tensor { index, problem } => {
                write!(f, "tensor {index}: ")?;
                match problem {
                    TensorProblem::Count { expected, found } => write!(
                        f,
                        "directory has {found} tensors, the space needs {expected}"
                    ),
                    TensorProblem::Length { expected, found } => {
                        write!(f, "has {found} elements, the space needs {expected}")
                    }
                    TensorProblem::OutOfBounds => write!(f, "data lies outside the WGHT section"),
                    TensorProblem::Misaligned => write!(f, "offset is not a multiple of 64"),
                    TensorProblem::NotFinite => write!(f, "holds a NaN or infinite value"),
                }
            }
            FormatError::Subnet { index, problem } => {
                write!(f, "stored subnet #{index}: ")?;
                match problem {
                    SubnetProblem::Config(e) => write!(f, "{e}"),
                    SubnetProblem::BnLength { expected, found } => {
                        write!(f, "BN set has {found} values, its config needs {expected}")
                    }
                    SubnetProblem::BnOutOfBounds => {
                        write!(f, "BN set lies outside BNST or is misaligned")
                    }
                    SubnetProblem::DuplicateId(id) => write!(f, "id {id} is used twice"),
                    SubnetProblem::Name => {
                        write!(f, "name is not NUL-padded UTF-8 without control characters")
                    }
                    SubnetProblem::BnNotFinite => write!(f, "BN set holds a NaN or infinite value"),
                    SubnetProblem::Accuracy => write!(f, "accuracy is not NaN or in [0, 1]"),
                    SubnetProblem::Reserved => write!(f, "a reserved field is not zero"),
                }
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for FormatError {}
#[cfg(feature = "std")]
impl std::error::Error for SpaceError {}
#[cfg(feature = "std")]
impl std::error::Error for ConfigError {}
