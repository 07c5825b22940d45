//! supernet-runtime: loads a supernet artifact once, in place, and runs any of its subnets
//! in a caller-provided arena. `no_std`, no `alloc`, no panics on any input.
//!
//! - [`Model`]: the validated artifact, borrowed (from a byte slice, a memory map or flash);
//! - [`Session`]: one arena, one active subnet; switching validates a config and allocates
//!   nothing; [`Session::run`] computes logits;
//! - [`budget`]: choosing a stored subnet from a latency budget or a battery level;
//! - [`plan`]: arena sizes, known before running;
//! - [`kernels`]: the compute kernels, each with a naive reference in [`kernels::reference`].
#![no_std]
#![forbid(unsafe_code)]

#[cfg(feature = "std")]
extern crate std;

pub mod budget;
pub mod error;
pub mod kernels;
pub mod model;
pub mod plan;
pub mod session;

pub use budget::{BatteryPolicy, Clock, Selection};
pub use error::Error;
pub use model::Model;
pub use session::{Active, Session, argmax, softmax};
pub use supernet_format as format;
