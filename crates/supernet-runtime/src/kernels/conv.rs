//! Dense `k x k` convolution reading a CHW image and writing HWC activations (the stem).
//!
//! Per output pixel the receptive field is gathered (zero-padded) into a stack patch laid out
//! `[ky][kx][ci]`, like one weight row. When the whole weight is small (`k*k*cin*cout <=`
//! [`WT_MAX`], always true for a stem) it is transposed once per call into a stack buffer
//! `[k*k*cin][cout]`, and each patch value scales a run of output channels held in registers
//! (blocks of 8, 4, 1). Otherwise every output channel is a contiguous dot product of the patch
//! with its weight row. Patches longer than [`PATCH_MAX`] (`k*k*cin` is 27 for a 3x3 RGB stem)
//! take a direct loop.

#![allow(clippy::too_many_arguments)]

use super::dot::matvec;
use super::pointwise::finish_row;
use super::{Act, conv_out_dim};

/// Largest `k*k*cin` gathered into a stack patch (1 KiB).
const PATCH_MAX: usize = 256;
/// Largest `k*k*cin*cout` transposed into a stack buffer (4 KiB; a 3x3 RGB stem to 32
/// channels is 864).
const WT_MAX: usize = 1024;

/// `k x k` conv, stride `stride`, padding `k/2`, reading CHW input and writing HWC output;
/// weight layout `[cout][k][k][cin]` (OHWI), row stride for one output channel = `k*k*cin`
/// (dense, no `ld`).
///
/// Lengths: `input >= cin*h*w`, `weight >= cout*k*k*cin`, `scale, shift >= cout`,
/// `out >= ho*wo*cout` with `ho`, `wo` from [`conv_out_dim`].
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
    let ho = conv_out_dim(h, k, stride);
    let wo = conv_out_dim(w, k, stride);
    let kk = k * k * cin;
    debug_assert!(k >= 1 && stride >= 1);
    debug_assert!(input.len() >= cin * h * w);
    debug_assert!(weight.len() >= cout * kk);
    debug_assert!(scale.len() >= cout && shift.len() >= cout);
    debug_assert!(out.len() >= ho * wo * cout);
    if cout == 0 || ho == 0 || wo == 0 {
        return;
    }
    let pad = k / 2;
    let plane = h * w;
    let input = &input[..cin * plane];
    let weight = &weight[..cout * kk];
    let (scale, shift) = (&scale[..cout], &shift[..cout]);
    let mut patch_buf = [0.0f32; PATCH_MAX];
    // Weights transposed to `[k*k*cin][cout]` when small enough: each patch value then scales
    // a contiguous run of output channels.
    let mut wt_buf = [0.0f32; WT_MAX];
    let wt = if kk <= PATCH_MAX && kk * cout <= WT_MAX {
        let wt = &mut wt_buf[..kk * cout];
        for (co, row) in weight.chunks_exact(kk.max(1)).enumerate() {
            for (t, &v) in row.iter().enumerate() {
                wt[t * cout + co] = v;
            }
        }
        Some(&*wt)
    } else {
        None
    };
    for (oy, out_row) in out[..ho * wo * cout]
        .chunks_exact_mut(wo * cout)
        .enumerate()
    {
        let y0 = oy * stride;
        let ky = (pad.saturating_sub(y0), k.min(h + pad - y0));
        for (ox, dst) in out_row.chunks_exact_mut(cout).enumerate() {
            let x0 = ox * stride;
            let kx = (pad.saturating_sub(x0), k.min(w + pad - x0));
            if kk <= PATCH_MAX {
                let patch = &mut patch_buf[..kk];
                patch.fill(0.0);
                for ky in ky.0..ky.1 {
                    let iy = y0 + ky - pad;
                    for kx in kx.0..kx.1 {
                        let ix = x0 + kx - pad;
                        let tap = &mut patch[(ky * k + kx) * cin..(ky * k + kx + 1) * cin];
                        for (ci, v) in tap.iter_mut().enumerate() {
                            *v = input[ci * plane + iy * w + ix];
                        }
                    }
                }
                if let Some(wt) = wt {
                    let patch = &*patch;
                    let mut co0 = 0;
                    while co0 + 8 <= cout {
                        outer_block::<8>(patch, wt, cout, co0, &mut dst[co0..co0 + 8]);
                        co0 += 8;
                    }
                    while co0 + 4 <= cout {
                        outer_block::<4>(patch, wt, cout, co0, &mut dst[co0..co0 + 4]);
                        co0 += 4;
                    }
                    while co0 < cout {
                        outer_block::<1>(patch, wt, cout, co0, &mut dst[co0..co0 + 1]);
                        co0 += 1;
                    }
                } else {
                    matvec(patch, weight, kk, dst);
                }
            } else {
                for (co, y) in dst.iter_mut().enumerate() {
                    let row = &weight[co * kk..(co + 1) * kk];
                    let mut acc = 0.0f32;
                    for ky in ky.0..ky.1 {
                        let iy = y0 + ky - pad;
                        for kx in kx.0..kx.1 {
                            let ix = x0 + kx - pad;
                            let taps = &row[(ky * k + kx) * cin..(ky * k + kx + 1) * cin];
                            for (ci, &wt) in taps.iter().enumerate() {
                                acc += input[ci * plane + iy * w + ix] * wt;
                            }
                        }
                    }
                    *y = acc;
                }
            }
            finish_row(dst, scale, shift, act);
        }
    }
}

/// Channels `co0..co0+B` of one output pixel: `dst[j] = sum_t patch[t] * wt[t*cout + co0 + j]`,
/// summed in patch order with the accumulators in registers.
#[inline(always)]
fn outer_block<const B: usize>(
    patch: &[f32],
    wt: &[f32],
    cout: usize,
    co0: usize,
    dst: &mut [f32],
) {
    let mut acc = [0.0f32; B];
    for (row, &v) in wt.chunks_exact(cout).zip(patch) {
        let w = &row[co0..co0 + B];
        for j in 0..B {
            acc[j] += v * w[j];
        }
    }
    dst.copy_from_slice(&acc);
}
