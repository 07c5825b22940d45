//! Depthwise `k x k` convolution on HWC activations.
//!
//! For each output pixel the valid tap window is computed once (clamped at the borders, so no
//! tap tests for padding and padding costs nothing); then the channels are processed in blocks
//! of [`CB`] (then 8, then 1) whose accumulators stay in registers while every tap adds
//! `input[pixel][block] * weight[tap][block]`, both contiguous runs walked as chunks (one
//! length check per operand per tap, no index arithmetic in the loop).

#![allow(clippy::too_many_arguments)]

use super::pointwise::finish_row;
use super::{Act, conv_out_dim};

/// Channels per register block: 32 floats = 8 SSE registers of accumulators. Channel counts
/// are multiples of 8 in practice, hence the remainder blocks of 8 (then single channels).
const CB: usize = 32;

/// Depthwise k x k conv, stride 1 or 2, padding k/2, on HWC input `[h][w][c]`;
/// weight layout `[k*k][ld]` (tap-major: tap `t = ky*k + kx`, channel `j` at `weight[t*ld + j]`).
/// `out` is `[ho][wo][c]` (see [`conv_out_dim`]); `y = act(acc*scale[c] + shift[c])`.
///
/// Lengths: `input >= h*w*c`, `weight >= (k*k-1)*ld + c`, `ld >= c`, `scale, shift >= c`,
/// `out >= ho*wo*c`. Any stride >= 1 works.
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
    let ho = conv_out_dim(h, k, stride);
    let wo = conv_out_dim(w, k, stride);
    debug_assert!(k >= 1 && stride >= 1 && ld >= c);
    debug_assert!(input.len() >= h * w * c);
    debug_assert!(c == 0 || weight.len() >= (k * k - 1) * ld + c);
    debug_assert!(scale.len() >= c && shift.len() >= c);
    debug_assert!(out.len() >= ho * wo * c);
    if c == 0 || ho == 0 || wo == 0 {
        return;
    }
    let pad = k / 2;
    let input = &input[..h * w * c];
    let (scale, shift) = (&scale[..c], &shift[..c]);
    let geo = Geometry {
        input,
        w,
        c,
        weight,
        ld,
        k,
    };
    for (oy, out_row) in out[..ho * wo * c].chunks_exact_mut(wo * c).enumerate() {
        // Padded coordinate of the window's top row; valid taps satisfy pad <= y0+ky < pad+h.
        let y0 = oy * stride;
        let ky = (pad.saturating_sub(y0), k.min(h + pad - y0));
        for (ox, dst) in out_row.chunks_exact_mut(c).enumerate() {
            let x0 = ox * stride;
            let kx = (pad.saturating_sub(x0), k.min(w + pad - x0));
            let taps = Taps {
                ky,
                kx,
                iy: y0 + ky.0 - pad,
                ix: x0 + kx.0 - pad,
            };
            let mut c0 = 0;
            while c0 + CB <= c {
                geo.block::<CB>(&taps, c0, &mut dst[c0..c0 + CB]);
                c0 += CB;
            }
            while c0 + 8 <= c {
                geo.block::<8>(&taps, c0, &mut dst[c0..c0 + 8]);
                c0 += 8;
            }
            while c0 < c {
                geo.block::<1>(&taps, c0, &mut dst[c0..c0 + 1]);
                c0 += 1;
            }
            finish_row(dst, scale, shift, act);
        }
    }
}

/// The arguments shared by every block of every pixel.
struct Geometry<'a> {
    input: &'a [f32],
    w: usize,
    c: usize,
    weight: &'a [f32],
    ld: usize,
    k: usize,
}

/// Valid tap window of one output pixel: `ky.0..ky.1` x `kx.0..kx.1`, whose first tap reads
/// input pixel `(iy, ix)`.
struct Taps {
    ky: (usize, usize),
    kx: (usize, usize),
    iy: usize,
    ix: usize,
}

impl Geometry<'_> {
    /// Raw sums of channels `c0..c0+B` of one output pixel into `dst` (`B` long).
    #[inline(always)]
    fn block<const B: usize>(&self, t: &Taps, c0: usize, dst: &mut [f32]) {
        let mut acc = [0.0f32; B];
        let nx = t.kx.1 - t.kx.0;
        for (dy, ky) in (t.ky.0..t.ky.1).enumerate() {
            // The taps of one kernel row read `nx` consecutive input pixels and `nx`
            // consecutive weight rows: walk both as chunks, so each tap costs one length check
            // per operand instead of index arithmetic with overflow and range checks.
            let ib = ((t.iy + dy) * self.w + t.ix) * self.c + c0;
            let wb = (ky * self.k + t.kx.0) * self.ld + c0;
            let xs = self.input[ib..].chunks(self.c).take(nx);
            let ws = self.weight[wb..].chunks(self.ld);
            for (x, wt) in xs.zip(ws) {
                let (x, wt) = (&x[..B], &wt[..B]);
                for j in 0..B {
                    acc[j] += x[j] * wt[j];
                }
            }
        }
        dst.copy_from_slice(&acc);
    }
}
