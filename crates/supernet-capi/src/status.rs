//! Status codes: one per runtime error variant (format errors by their top-level variant),
//! plus the codes of the C layer itself (NULL, alignment, buffer sizes, handles). Values are
//! stable: a code keeps its number in every 0.x and 1.x release; new codes get new numbers.

use core::ffi::c_char;
use core::fmt;

use supernet_format::FormatError;
use supernet_runtime::Error;

/// What a call did. `SN_OK` and `SN_OVER_BUDGET` are successes (outputs written); every
/// other code is a failure (nothing written, nothing changed).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnStatus {
    /// Success.
    SnOk = 0,
    /// Success of a budget selection that no stored subnet meets: the fastest one is now
    /// active, and the selection says `fits = 0`.
    SnOverBudget = 1,
    /// A required pointer argument is NULL.
    SnErrNullPointer = 2,
    /// A pointer is not aligned as documented (`SN_STORAGE_ALIGN` for storage and arenas,
    /// 4 bytes for `float` and `uint32_t` buffers, the type's alignment for structs).
    SnErrMisaligned = 3,
    /// A storage or output buffer is shorter than documented.
    SnErrBufferTooSmall = 4,
    /// A handle is not one this library made, or its memory was moved or overwritten.
    SnErrBadHandle = 5,
    /// An argument is invalid in another way (text not UTF-8, length beyond the address
    /// space); `sn_session_get_last_error` says which.
    SnErrBadArgument = 6,
    /// The model bytes are shorter than a header (truncated file?).
    SnErrTooShort = 10,
    /// The bytes do not start with the artifact magic (not a supernet artifact).
    SnErrBadMagic = 11,
    /// The artifact's major format version is not one this library reads.
    SnErrUnsupportedVersion = 12,
    /// The header's file size differs from the number of bytes given (truncated or padded).
    SnErrSizeMismatch = 13,
    /// The header is inconsistent.
    SnErrBadHeader = 14,
    /// The checksum does not match the contents (corrupted).
    SnErrChecksum = 15,
    /// The model bytes do not start at a 4-byte aligned address.
    SnErrModelMisaligned = 16,
    /// A section of the artifact is invalid.
    SnErrBadSection = 17,
    /// The artifact's search space is invalid.
    SnErrBadSpace = 18,
    /// A tensor directory entry is invalid.
    SnErrBadTensor = 19,
    /// A stored-subnet record is invalid.
    SnErrBadSubnet = 20,
    /// A subnet config is not valid text or not in the model's space (the detail names the
    /// field).
    SnErrConfig = 30,
    /// No stored subnet has this id or index.
    SnErrUnknownSubnet = 31,
    /// The session's arena is too small for this subnet.
    SnErrArenaTooSmall = 32,
    /// The input has the wrong number of values.
    SnErrInputLength = 33,
    /// The output buffer is shorter than the number of classes.
    SnErrOutputLength = 34,
    /// Budget selection needs expected latencies and no stored subnet that fits the arena
    /// has one: calibrate first.
    SnErrNoLatencies = 35,
    /// A latency table's length differs from the number of stored subnets.
    SnErrLatencyTableLength = 36,
    /// A battery policy or upgrade margin is invalid.
    SnErrBadPolicy = 37,
    /// An internal size check failed (a bug in this library; please report it).
    SnErrInternal = 38,
}

/// Every status, in code order (tests and `sn_status_message` use it).
pub(crate) const ALL: [SnStatus; 27] = [
    SnStatus::SnOk,
    SnStatus::SnOverBudget,
    SnStatus::SnErrNullPointer,
    SnStatus::SnErrMisaligned,
    SnStatus::SnErrBufferTooSmall,
    SnStatus::SnErrBadHandle,
    SnStatus::SnErrBadArgument,
    SnStatus::SnErrTooShort,
    SnStatus::SnErrBadMagic,
    SnStatus::SnErrUnsupportedVersion,
    SnStatus::SnErrSizeMismatch,
    SnStatus::SnErrBadHeader,
    SnStatus::SnErrChecksum,
    SnStatus::SnErrModelMisaligned,
    SnStatus::SnErrBadSection,
    SnStatus::SnErrBadSpace,
    SnStatus::SnErrBadTensor,
    SnStatus::SnErrBadSubnet,
    SnStatus::SnErrConfig,
    SnStatus::SnErrUnknownSubnet,
    SnStatus::SnErrArenaTooSmall,
    SnStatus::SnErrInputLength,
    SnStatus::SnErrOutputLength,
    SnStatus::SnErrNoLatencies,
    SnStatus::SnErrLatencyTableLength,
    SnStatus::SnErrBadPolicy,
    SnStatus::SnErrInternal,
];

impl SnStatus {
    /// A short static message, NUL-terminated.
    pub const fn message(self) -> &'static str {
        match self {
            SnStatus::SnOk => "ok\0",
            SnStatus::SnOverBudget => {
                "no stored subnet meets the budget; the fastest one is active\0"
            }
            SnStatus::SnErrNullPointer => "a required pointer argument is NULL\0",
            SnStatus::SnErrMisaligned => "a pointer argument is not aligned as documented\0",
            SnStatus::SnErrBufferTooSmall => {
                "a storage or output buffer is shorter than documented\0"
            }
            SnStatus::SnErrBadHandle => {
                "not a handle made by this library, or its memory was moved or overwritten\0"
            }
            SnStatus::SnErrBadArgument => "an argument is invalid\0",
            SnStatus::SnErrTooShort => "model bytes are shorter than an artifact header\0",
            SnStatus::SnErrBadMagic => "not a supernet artifact (bad magic)\0",
            SnStatus::SnErrUnsupportedVersion => "unsupported artifact format version\0",
            SnStatus::SnErrSizeMismatch => {
                "artifact size differs from its header (truncated or padded file)\0"
            }
            SnStatus::SnErrBadHeader => "inconsistent artifact header\0",
            SnStatus::SnErrChecksum => "artifact checksum mismatch (corrupted file)\0",
            SnStatus::SnErrModelMisaligned => "model bytes are not 4-byte aligned\0",
            SnStatus::SnErrBadSection => "invalid artifact section\0",
            SnStatus::SnErrBadSpace => "invalid search space in the artifact\0",
            SnStatus::SnErrBadTensor => "invalid tensor entry in the artifact\0",
            SnStatus::SnErrBadSubnet => "invalid stored-subnet record in the artifact\0",
            SnStatus::SnErrConfig => "invalid subnet config\0",
            SnStatus::SnErrUnknownSubnet => "no stored subnet has this id or index\0",
            SnStatus::SnErrArenaTooSmall => "the session arena is too small for this subnet\0",
            SnStatus::SnErrInputLength => "the input has the wrong number of values\0",
            SnStatus::SnErrOutputLength => {
                "the output buffer is shorter than the number of classes\0"
            }
            SnStatus::SnErrNoLatencies => {
                "no stored subnet has an expected latency; calibrate first\0"
            }
            SnStatus::SnErrLatencyTableLength => {
                "latency table length differs from the number of stored subnets\0"
            }
            SnStatus::SnErrBadPolicy => "invalid battery policy or upgrade margin\0",
            SnStatus::SnErrInternal => "internal error in the supernet library (a bug)\0",
        }
    }
}

/// Why a call failed: a runtime error, or a problem the C layer found in the arguments.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Failure {
    Runtime(Error),
    NullPointer,
    Misaligned,
    /// `what` (which names its unit) has `given`, `needed` are required.
    BufferTooSmall {
        what: &'static str,
        needed: usize,
        given: usize,
    },
    BadHandle,
    BadArgument(&'static str),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Runtime(e)
    }
}

impl From<FormatError> for Failure {
    fn from(e: FormatError) -> Self {
        Failure::Runtime(Error::Format(e))
    }
}

impl Failure {
    /// The status code of this failure.
    pub fn status(&self) -> SnStatus {
        match *self {
            Failure::NullPointer => SnStatus::SnErrNullPointer,
            Failure::Misaligned => SnStatus::SnErrMisaligned,
            Failure::BufferTooSmall { .. } => SnStatus::SnErrBufferTooSmall,
            Failure::BadHandle => SnStatus::SnErrBadHandle,
            Failure::BadArgument(_) => SnStatus::SnErrBadArgument,
            Failure::Runtime(e) => runtime_status(&e),
        }
    }
}

/// The code of a runtime error: 1:1 with [`Error`]'s variants, and with
/// [`FormatError`]'s top-level variants.
pub fn runtime_status(e: &Error) -> SnStatus {
    match *e {
        Error::Format(f) => match f {
            FormatError::TooShort { .. } => SnStatus::SnErrTooShort,
            FormatError::BadMagic => SnStatus::SnErrBadMagic,
            FormatError::UnsupportedVersion { .. } => SnStatus::SnErrUnsupportedVersion,
            FormatError::SizeMismatch { .. } => SnStatus::SnErrSizeMismatch,
            FormatError::BadHeader(_) => SnStatus::SnErrBadHeader,
            FormatError::Checksum { .. } => SnStatus::SnErrChecksum,
            FormatError::Misaligned => SnStatus::SnErrModelMisaligned,
            FormatError::Section { .. } => SnStatus::SnErrBadSection,
            FormatError::Space(_) => SnStatus::SnErrBadSpace,
            FormatError::Tensor { .. } => SnStatus::SnErrBadTensor,
            FormatError::Subnet { .. } => SnStatus::SnErrBadSubnet,
        },
        Error::Config(_) => SnStatus::SnErrConfig,
        Error::UnknownSubnet { .. } => SnStatus::SnErrUnknownSubnet,
        Error::ArenaTooSmall { .. } => SnStatus::SnErrArenaTooSmall,
        Error::InputLength { .. } => SnStatus::SnErrInputLength,
        Error::OutputLength { .. } => SnStatus::SnErrOutputLength,
        Error::NoLatencies => SnStatus::SnErrNoLatencies,
        Error::LatencyTableLength { .. } => SnStatus::SnErrLatencyTableLength,
        Error::BadPolicy(_) => SnStatus::SnErrBadPolicy,
        Error::Internal => SnStatus::SnErrInternal,
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Runtime(e) => write!(f, "{e}"),
            Failure::BufferTooSmall {
                what,
                needed,
                given,
            } => write!(f, "{what} has {given}, {needed} are needed"),
            Failure::BadArgument(why) => write!(f, "invalid argument: {why}"),
            other => {
                let m = other.status().message();
                f.write_str(&m[..m.len() - 1])
            }
        }
    }
}

/// Turns a result into a status (`SN_OK` on success).
pub(crate) fn status_of(r: Result<(), Failure>) -> SnStatus {
    match r {
        Ok(()) => SnStatus::SnOk,
        Err(f) => f.status(),
    }
}

/// A static NUL-terminated message for a status code; never NULL (unknown codes give
/// `"unknown status code"`). Takes the code as an integer so that any value is safe.
#[unsafe(no_mangle)]
pub extern "C" fn sn_status_message(status: i32) -> *const c_char {
    let m = ALL
        .iter()
        .find(|s| **s as i32 == status)
        .map_or("unknown status code\0", |s| s.message());
    m.as_ptr().cast()
}
