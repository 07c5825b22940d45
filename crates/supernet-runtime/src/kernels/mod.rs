//! Compute kernels of the runtime: every arithmetic operation a subnet needs.
//!
//! This module owns the numeric inner loops and nothing else: no weight lookup, no arena
//! management, no shape bookkeeping beyond the arguments of each call. The executor validates
//! shapes and slice lengths; the kernels only `debug_assert!` their preconditions and never
//! panic for valid arguments. Everything works on borrowed slices (`no_std`, no `alloc`).
//!
//! # Conventions
//!
//! * Activations are HWC (height, width, channels; channel fastest), batch 1, `f32`.
//!   Only the stem input ([`conv_chw_to_hwc`]) is CHW.
//! * Weights of a narrower subnet are read in place from the wider shared tensors: a weight
//!   matrix row `r` starts at `r * ld` and only its first `cin` (or `c`, `hidden`, `n_in`)
//!   columns are read. Columns past that are never touched, whatever they hold.
//! * Every `k x k` convolution pads by `k / 2` zeros; the output side is [`conv_out_dim`].
//! * Batch norm is folded: `y = acc * scale[c] + shift[c]`, then the activation.
//! * Inputs and outputs of a kernel never alias (the borrow checker enforces it for slices);
//!   the in-place kernels are [`squeeze_excite`] and [`add_inplace`].
//!
//! # Fast and reference kernels
//!
//! The kernels re-exported here are the optimised ones (register-blocked loops written for the
//! auto-vectoriser of a baseline target: SSE2 on x86_64, plain FPU on thumbv7em). Each has a
//! naive twin with the same signature in [`reference`](mod@reference): the simplest possible loops computing
//! one output at a time. The reference kernels are the ground truth that tests compare the
//! fast ones against; results agree up to float re-association (the fast kernels sum in a
//! different order), activations are computed identically.

mod conv;
mod depthwise;
mod dot;
mod misc;
mod pointwise;
pub mod reference;

pub use conv::conv_chw_to_hwc;
pub use depthwise::depthwise;
pub use misc::{add_inplace, global_avg_pool, linear, squeeze_excite};
pub use pointwise::pointwise;

/// Activation applied after the folded batch norm (or the bias of [`linear`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Act {
    /// Identity.
    None,
    /// `max(x, 0)`.
    Relu,
    /// `x * relu6(x + 3) / 6`.
    HSwish,
}

impl Act {
    /// Applies the activation to one value.
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Act::None => x,
            Act::Relu => relu(x),
            Act::HSwish => hswish(x),
        }
    }
}

/// `max(x, 0)` (written as a compare-select so it vectorises to `maxps`).
#[inline]
pub fn relu(x: f32) -> f32 {
    if x > 0.0 { x } else { 0.0 }
}

/// `min(max(x, 0), 6)`.
#[inline]
pub fn relu6(x: f32) -> f32 {
    let t = if x > 0.0 { x } else { 0.0 };
    if t < 6.0 { t } else { 6.0 }
}

/// Hard swish: `x * relu6(x + 3) / 6`, evaluated in exactly that order.
#[inline]
pub fn hswish(x: f32) -> f32 {
    x * relu6(x + 3.0) / 6.0
}

/// Hard sigmoid: `relu6(x + 3) / 6`.
#[inline]
pub fn hsigmoid(x: f32) -> f32 {
    relu6(x + 3.0) / 6.0
}

/// Output side of a `k x k` convolution with padding `k / 2` and stride `stride` over an input
/// side `n`: `(n + 2 * (k / 2) - k) / stride + 1`, and 0 for an empty input.
#[inline]
pub const fn conv_out_dim(n: usize, k: usize, stride: usize) -> usize {
    if n == 0 {
        0
    } else {
        (n + 2 * (k / 2) - k) / stride + 1
    }
}
