//! Naive reference kernels: the ground truth the fast kernels are tested against.
//!
//! Same names, signatures and semantics as the fast kernels in [`super`]; the simplest loops
//! possible, one output value at a time, summing in natural index order. Always compiled
//! (they cost nothing unless called) so tests and benchmarks of dependents can use them too.

// Index loops are the point here: they mirror the maths one-to-one.
#![allow(clippy::needless_range_loop, clippy::too_many_arguments)]

use super::{Act, conv_out_dim, hsigmoid, relu};

/// Reference for [`super::conv_chw_to_hwc`].
pub fn conv_chw_to_hwc(
    input: &[f32],
    cin: usize,
    h: usize,
    w: usize,
    weight: &[f32],
    cout: usize,
    k: usize,
    stride: usize,
    scale: &[f32],
    shift: &[f32],
    act: Act,
    out: &mut [f32],
) {
    let pad = k / 2;
    let ho = conv_out_dim(h, k, stride);
    let wo = conv_out_dim(w, k, stride);
    for oy in 0..ho {
        for ox in 0..wo {
            for co in 0..cout {
                let mut acc = 0.0f32;
                for ky in 0..k {
                    for kx in 0..k {
                        // Input coordinate, shifted by `pad` so it stays unsigned.
                        let iy = oy * stride + ky;
                        let ix = ox * stride + kx;
                        if iy < pad || ix < pad || iy - pad >= h || ix - pad >= w {
                            continue;
                        }
                        let (iy, ix) = (iy - pad, ix - pad);
                        for ci in 0..cin {
                            let x = input[ci * h * w + iy * w + ix];
                            let wt = weight[co * k * k * cin + (ky * k + kx) * cin + ci];
                            acc += x * wt;
                        }
                    }
                }
                out[(oy * wo + ox) * cout + co] = act.apply(acc * scale[co] + shift[co]);
            }
        }
    }
}

/// Reference for [`super::pointwise`].
pub fn pointwise(
    input: &[f32],
    pixels: usize,
    cin: usize,
    weight: &[f32],
    ld: usize,
    cout: usize,
    scale: &[f32],
    shift: &[f32],
    act: Act,
    out: &mut [f32],
) {
    for p in 0..pixels {
        for co in 0..cout {
            let mut acc = 0.0f32;
            for ci in 0..cin {
                acc += input[p * cin + ci] * weight[co * ld + ci];
            }
            out[p * cout + co] = act.apply(acc * scale[co] + shift[co]);
        }
    }
}

/// Reference for [`super::depthwise`].
pub fn depthwise(
    input: &[f32],
    h: usize,
    w: usize,
    c: usize,
    weight: &[f32],
    ld: usize,
    k: usize,
    stride: usize,
    scale: &[f32],
    shift: &[f32],
    act: Act,
    out: &mut [f32],
) {
    let pad = k / 2;
    let ho = conv_out_dim(h, k, stride);
    let wo = conv_out_dim(w, k, stride);
    for oy in 0..ho {
        for ox in 0..wo {
            for j in 0..c {
                let mut acc = 0.0f32;
                for ky in 0..k {
                    for kx in 0..k {
                        let iy = oy * stride + ky;
                        let ix = ox * stride + kx;
                        if iy < pad || ix < pad || iy - pad >= h || ix - pad >= w {
                            continue;
                        }
                        let (iy, ix) = (iy - pad, ix - pad);
                        acc += input[(iy * w + ix) * c + j] * weight[(ky * k + kx) * ld + j];
                    }
                }
                out[(oy * wo + ox) * c + j] = act.apply(acc * scale[j] + shift[j]);
            }
        }
    }
}

/// Reference for [`super::squeeze_excite`].
pub fn squeeze_excite(
    x: &mut [f32],
    pixels: usize,
    c: usize,
    w_reduce: &[f32],
    ld_reduce: usize,
    b_reduce: &[f32],
    hidden: usize,
    w_expand: &[f32],
    ld_expand: usize,
    b_expand: &[f32],
    scratch: &mut [f32],
) {
    let (m, rest) = scratch.split_at_mut(c);
    let r = &mut rest[..hidden];
    for i in 0..c {
        let mut sum = 0.0f32;
        for p in 0..pixels {
            sum += x[p * c + i];
        }
        m[i] = sum / pixels as f32;
    }
    for j in 0..hidden {
        let mut acc = 0.0f32;
        for i in 0..c {
            acc += w_reduce[j * ld_reduce + i] * m[i];
        }
        r[j] = relu(b_reduce[j] + acc);
    }
    // The means are no longer needed: `m` now holds the gates.
    for i in 0..c {
        let mut acc = 0.0f32;
        for j in 0..hidden {
            acc += w_expand[i * ld_expand + j] * r[j];
        }
        m[i] = hsigmoid(b_expand[i] + acc);
    }
    for p in 0..pixels {
        for i in 0..c {
            x[p * c + i] *= m[i];
        }
    }
}

/// Reference for [`super::global_avg_pool`].
pub fn global_avg_pool(input: &[f32], pixels: usize, c: usize, out: &mut [f32]) {
    for ch in 0..c {
        let mut sum = 0.0f32;
        for p in 0..pixels {
            sum += input[p * c + ch];
        }
        out[ch] = sum / pixels as f32;
    }
}

/// Reference for [`super::linear`].
pub fn linear(
    input: &[f32],
    n_in: usize,
    weight: &[f32],
    ld: usize,
    bias: Option<&[f32]>,
    n_out: usize,
    act: Act,
    out: &mut [f32],
) {
    for o in 0..n_out {
        let mut acc = 0.0f32;
        for i in 0..n_in {
            acc += input[i] * weight[o * ld + i];
        }
        let b = match bias {
            Some(b) => b[o],
            None => 0.0,
        };
        out[o] = act.apply(acc + b);
    }
}

/// Reference for [`super::add_inplace`].
pub fn add_inplace(acc: &mut [f32], other: &[f32]) {
    debug_assert!(other.len() >= acc.len());
    for i in 0..acc.len() {
        acc[i] += other[i];
    }
}
