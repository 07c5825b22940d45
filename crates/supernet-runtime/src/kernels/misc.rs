//! The small kernels: squeeze-excite, global average pooling, fully connected, residual add.

#![allow(clippy::too_many_arguments)]

use super::dot::matvec;
use super::{Act, hsigmoid, relu};

/// Squeeze-excite in place on `x = [pixels][c]`:
/// `m` = mean over pixels (per channel);
/// `r[j] = relu(b_reduce[j] + sum_{i<c} w_reduce[j*ld_reduce + i] * m[i])` for `j < hidden`;
/// `g[i] = hsigmoid(b_expand[i] + sum_{j<hidden} w_expand[i*ld_expand + j] * r[j])` for `i < c`;
/// `x[p][i] *= g[i]`.
///
/// `scratch.len() >= c + hidden` (its contents on return are unspecified).
/// Lengths: `x >= pixels*c`, `w_reduce >= (hidden-1)*ld_reduce + c`, `b_reduce >= hidden`,
/// `w_expand >= (c-1)*ld_expand + hidden`, `b_expand >= c`.
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
    debug_assert!(x.len() >= pixels * c);
    debug_assert!(scratch.len() >= c + hidden);
    debug_assert!(ld_reduce >= c && ld_expand >= hidden);
    debug_assert!(hidden == 0 || w_reduce.len() >= (hidden - 1) * ld_reduce + c);
    debug_assert!(c == 0 || w_expand.len() >= (c - 1) * ld_expand + hidden);
    debug_assert!(b_reduce.len() >= hidden && b_expand.len() >= c);
    if c == 0 || pixels == 0 {
        return;
    }
    let x = &mut x[..pixels * c];
    let (m, rest) = scratch.split_at_mut(c);
    let r = &mut rest[..hidden];
    global_avg_pool(x, pixels, c, m);
    matvec(m, w_reduce, ld_reduce, r);
    for (r, &b) in r.iter_mut().zip(&b_reduce[..hidden]) {
        *r = relu(b + *r);
    }
    // The means are consumed: `m` becomes the gates.
    matvec(r, w_expand, ld_expand, m);
    for (g, &b) in m.iter_mut().zip(&b_expand[..c]) {
        *g = hsigmoid(b + *g);
    }
    let g = &*m;
    for row in x.chunks_exact_mut(c) {
        for (v, &g) in row.iter_mut().zip(g) {
            *v *= g;
        }
    }
}

/// `out[ch]` = mean over pixels of `input[p*c + ch]` (for `ch < c`).
/// Lengths: `input >= pixels*c`, `out >= c`. Zero pixels give NaN (0/0), like the reference.
pub fn global_avg_pool(input: &[f32], pixels: usize, c: usize, out: &mut [f32]) {
    debug_assert!(input.len() >= pixels * c);
    debug_assert!(out.len() >= c);
    if c == 0 {
        return;
    }
    let out = &mut out[..c];
    out.fill(0.0);
    for row in input[..pixels * c].chunks_exact(c) {
        for (o, &v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
    let n = pixels as f32;
    for o in out.iter_mut() {
        *o /= n;
    }
}

/// Fully connected: `out[o] = act(sum_{i<n_in} input[i]*weight[o*ld + i] + bias.map_or(0, |b| b[o]))`
/// for `o < n_out`.
///
/// Lengths: `input >= n_in`, `weight >= (n_out-1)*ld + n_in`, `ld >= n_in`, `bias >= n_out`,
/// `out >= n_out`.
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
    debug_assert!(input.len() >= n_in && ld >= n_in);
    debug_assert!(n_out == 0 || weight.len() >= (n_out - 1) * ld + n_in);
    debug_assert!(bias.is_none_or(|b| b.len() >= n_out));
    debug_assert!(out.len() >= n_out);
    let out = &mut out[..n_out];
    matvec(&input[..n_in], weight, ld, out);
    match bias {
        Some(b) => {
            for (y, &b) in out.iter_mut().zip(&b[..n_out]) {
                *y = act.apply(*y + b);
            }
        }
        None => {
            for y in out.iter_mut() {
                *y = act.apply(*y + 0.0);
            }
        }
    }
}

/// `acc[i] += other[i]` (residual add); `other.len() >= acc.len()`.
pub fn add_inplace(acc: &mut [f32], other: &[f32]) {
    debug_assert!(other.len() >= acc.len());
    for (a, &b) in acc.iter_mut().zip(other) {
        *a += b;
    }
}
