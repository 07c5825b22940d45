//! Dot-product building blocks shared by the matrix-vector shaped kernels.
//!
//! Each dot product keeps four-lane partial sums (`[f32; 4]`, one SSE register) over
//! `chunks_exact(4)` of equally long slices, so the auto-vectoriser emits packed multiplies
//! and adds without bounds checks; the lanes are summed at the end, then the scalar tail.

/// Lanes of one partial-sum vector.
const L: usize = 4;

/// Sums the four lanes: `(v0 + v2) + (v1 + v3)` (the order a `movhlps` + shuffle reduction uses).
#[inline(always)]
fn hsum(v: [f32; L]) -> f32 {
    (v[0] + v[2]) + (v[1] + v[3])
}

/// Horizontal sums of four lane vectors.
///
/// Deliberately not inlined: seen from the caller, the accumulators are then stored as whole
/// lane vectors, so the SLP vectoriser keeps one register per row in the hot loop. Inlined, it
/// bundles the four rows' results instead and transposes every loaded chunk (about twice the
/// instructions per multiply-add).
#[inline(never)]
fn hsum4(a: &[[f32; L]; 4]) -> [f32; 4] {
    [hsum(a[0]), hsum(a[1]), hsum(a[2]), hsum(a[3])]
}

/// `a[l] += x[l] * w[l]` for the four lanes (one packed multiply and add).
#[inline(always)]
fn mac(a: &mut [f32; L], x: &[f32], w: &[f32]) {
    let (x, w) = (&x[..L], &w[..L]);
    for l in 0..L {
        a[l] += x[l] * w[l];
    }
}

/// `sum_i x[i] * w[i]` over `x.len()` elements; `w.len() >= x.len()`.
#[inline]
pub(crate) fn dot(x: &[f32], w: &[f32]) -> f32 {
    let n = x.len();
    let w = &w[..n];
    // Two independent vectors of partial sums hide the add latency on long rows.
    let mut a = [0.0f32; 2 * L];
    let (xc, wc) = (x.chunks_exact(2 * L), w.chunks_exact(2 * L));
    let (xr, wr) = (xc.remainder(), wc.remainder());
    for (xs, ws) in xc.zip(wc) {
        for l in 0..2 * L {
            a[l] += xs[l] * ws[l];
        }
    }
    let mut s = hsum([a[0] + a[4], a[1] + a[5], a[2] + a[6], a[3] + a[7]]);
    for (x, w) in xr.iter().zip(wr) {
        s += x * w;
    }
    s
}

/// Four dot products of `x` with the rows `w[0..4]` (each at least `x.len()` long).
#[inline]
pub(crate) fn dot_1x4(x: &[f32], w: [&[f32]; 4]) -> [f32; 4] {
    let n = x.len();
    let (w0, w1, w2, w3) = (&w[0][..n], &w[1][..n], &w[2][..n], &w[3][..n]);
    let mut a = [[0.0f32; L]; 4];
    let it = x
        .chunks_exact(L)
        .zip(w0.chunks_exact(L))
        .zip(w1.chunks_exact(L))
        .zip(w2.chunks_exact(L))
        .zip(w3.chunks_exact(L));
    for ((((xs, c0), c1), c2), c3) in it {
        mac(&mut a[0], xs, c0);
        mac(&mut a[1], xs, c1);
        mac(&mut a[2], xs, c2);
        mac(&mut a[3], xs, c3);
    }
    let mut s = hsum4(&a);
    for i in n / L * L..n {
        s[0] += x[i] * w0[i];
        s[1] += x[i] * w1[i];
        s[2] += x[i] * w2[i];
        s[3] += x[i] * w3[i];
    }
    s
}

/// Dot products of two vectors `x0`, `x1` (same length) with four rows `w[0..4]`:
/// `out[p][q] = x_p . w_q`. Eight accumulators: each loaded weight chunk is used twice.
#[inline]
pub(crate) fn dot_2x4(x0: &[f32], x1: &[f32], w: [&[f32]; 4]) -> [[f32; 4]; 2] {
    let n = x0.len();
    let x1 = &x1[..n];
    let (w0, w1, w2, w3) = (&w[0][..n], &w[1][..n], &w[2][..n], &w[3][..n]);
    let mut a = [[[0.0f32; L]; 4]; 2];
    let it = x0
        .chunks_exact(L)
        .zip(x1.chunks_exact(L))
        .zip(w0.chunks_exact(L))
        .zip(w1.chunks_exact(L))
        .zip(w2.chunks_exact(L))
        .zip(w3.chunks_exact(L));
    for (((((xa, xb), c0), c1), c2), c3) in it {
        mac(&mut a[0][0], xa, c0);
        mac(&mut a[0][1], xa, c1);
        mac(&mut a[0][2], xa, c2);
        mac(&mut a[0][3], xa, c3);
        mac(&mut a[1][0], xb, c0);
        mac(&mut a[1][1], xb, c1);
        mac(&mut a[1][2], xb, c2);
        mac(&mut a[1][3], xb, c3);
    }
    let mut s = [hsum4(&a[0]), hsum4(&a[1])];
    for i in n / L * L..n {
        s[0][0] += x0[i] * w0[i];
        s[0][1] += x0[i] * w1[i];
        s[0][2] += x0[i] * w2[i];
        s[0][3] += x0[i] * w3[i];
        s[1][0] += x1[i] * w0[i];
        s[1][1] += x1[i] * w1[i];
        s[1][2] += x1[i] * w2[i];
        s[1][3] += x1[i] * w3[i];
    }
    s
}

/// Matrix-vector product without epilogue: `out[o] = x . w[o*ld .. o*ld + x.len()]` for every
/// `o < out.len()`. Rows are taken four at a time so each chunk of `x` is loaded once per four.
#[inline]
pub(crate) fn matvec(x: &[f32], w: &[f32], ld: usize, out: &mut [f32]) {
    let n = x.len();
    let mut quads = out.chunks_exact_mut(4);
    let mut o = 0;
    for q in &mut quads {
        let row = |r: usize| &w[(o + r) * ld..(o + r) * ld + n];
        q.copy_from_slice(&dot_1x4(x, [row(0), row(1), row(2), row(3)]));
        o += 4;
    }
    for y in quads.into_remainder() {
        *y = dot(x, &w[o * ld..o * ld + n]);
        o += 1;
    }
}
