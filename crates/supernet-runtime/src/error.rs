//! Runtime errors: a small enum, each variant one C status code (issue 4's C ABI maps them
//! 1:1).

use core::fmt;

use supernet_format::{ConfigError, FormatError};

/// Why a runtime call failed. Nothing is written to outputs when an error is returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The bytes are not a valid artifact.
    Format(FormatError),
    /// The config is not valid for the model's space (names the field).
    Config(ConfigError),
    /// No stored subnet has this id.
    UnknownSubnet { id: u32 },
    /// The arena is smaller than the active config needs.
    ArenaTooSmall {
        needed_bytes: usize,
        given_bytes: usize,
    },
    /// The input slice has the wrong length.
    InputLength { expected: usize, found: usize },
    /// The output slice is shorter than the number of classes.
    OutputLength { expected: usize, found: usize },
    /// Budget selection needs expected latencies, and no stored subnet that fits the arena
    /// has one (the artifact has none and no calibrated table was set).
    NoLatencies,
    /// A latency table's length differs from the number of stored subnets.
    LatencyTableLength { expected: usize, found: usize },
    /// A battery policy or selection setting is invalid (says which rule).
    BadPolicy(&'static str),
    /// A size invariant of the executor failed. Validated models never cause this; it
    /// reports a runtime bug as a value instead of a panic.
    Internal,
}

impl From<FormatError> for Error {
    fn from(e: FormatError) -> Self {
        Error::Format(e)
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Format(e) => write!(f, "{e}"),
            Error::Config(e) => write!(f, "{e}"),
            Error::UnknownSubnet { id } => write!(f, "no stored subnet has id {id}"),
            Error::ArenaTooSmall {
                needed_bytes,
                given_bytes,
            } => write!(
                f,
                "arena of {given_bytes} bytes is too small: this subnet needs {needed_bytes}"
            ),
            Error::InputLength { expected, found } => write!(
                f,
                "input has {found} values, the model takes {expected} (channels x height x width)"
            ),
            Error::OutputLength { expected, found } => write!(
                f,
                "output buffer has room for {found} logits, the model has {expected} classes"
            ),
            Error::NoLatencies => write!(
                f,
                "no stored subnet that fits the arena has an expected latency; calibrate first"
            ),
            Error::LatencyTableLength { expected, found } => write!(
                f,
                "latency table has {found} entries, the model stores {expected} subnets"
            ),
            Error::BadPolicy(why) => write!(f, "invalid battery policy: {why}"),
            Error::Internal => write!(
                f,
                "internal size check failed (a runtime bug; please report it)"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}
