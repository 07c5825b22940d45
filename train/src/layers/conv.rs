//! Dense `k x k` convolution (the stem) via im2col + GEMM.
//!
//! The im2col matrix has one row per output pixel and `k*k*cin` columns in `(ky, kx, ci)`
//! order, matching the OHWI-flattened weight `[cout, k*k*cin]`; taps that fall into the
//! zero padding stay zero.

use ndarray::{Array2, ArrayView2};

use super::{Dims, matmul};

/// The im2col matrix `[N*Ho*Wo, k*k*cin]` of `x` (`[N*H*W, cin]`) and the output sizes.
///
/// Each image is first copied into a zero-bordered buffer, so that every output pixel's
/// row is `k` contiguous runs of `k*cin` values (one per kernel row) with no edge cases.
pub fn im2col(x: ArrayView2<f32>, d: Dims, k: usize, stride: usize) -> (Array2<f32>, Dims) {
    let cin = x.ncols();
    assert_eq!(x.nrows(), d.pixels(), "im2col: x rows != d.pixels()");
    assert!(cin > 0, "im2col: no input channels");
    let od = d.conv_out(k, stride);
    let xs = x.as_standard_layout();
    let xsl = xs.as_slice().expect("standard layout");
    let mut col = Array2::<f32>::zeros((od.pixels(), k * k * cin));
    let csl = col.as_slice_mut().unwrap();
    let pad = k / 2;
    let (hp, wp) = (d.h + 2 * pad, d.w + 2 * pad);
    let mut padded = vec![0f32; hp * wp * cin];
    let row_len = d.w * cin;
    for (xin, cimg) in xsl
        .chunks_exact(d.per_image() * cin)
        .zip(csl.chunks_exact_mut(od.per_image() * k * k * cin))
    {
        // Interior rows only: the zero border is never written.
        for (y, src) in xin.chunks_exact(row_len).enumerate() {
            padded[((y + pad) * wp + pad) * cin..][..row_len].copy_from_slice(src);
        }
        // A compile-time run length (usual stems: 3x3 over 1 or 3 channels) turns each run
        // into a few moves instead of a `memcpy` call.
        match k * cin {
            3 => im2col_image::<3>(&padded, wp, od, k, stride, cin, cimg),
            9 => im2col_image::<9>(&padded, wp, od, k, stride, cin, cimg),
            _ => im2col_image::<0>(&padded, wp, od, k, stride, cin, cimg),
        }
    }
    (col, od)
}

/// im2col of one zero-bordered image; `RUN` is `k*cin` when known at compile time, else 0.
#[inline(always)]
fn im2col_image<const RUN: usize>(
    padded: &[f32],
    wp: usize,
    od: Dims,
    k: usize,
    stride: usize,
    cin: usize,
    cimg: &mut [f32],
) {
    let run = if RUN == 0 { k * cin } else { RUN };
    let kk = k * run;
    for oy in 0..od.h {
        for ox in 0..od.w {
            let crow = &mut cimg[(oy * od.w + ox) * kk..][..kk];
            for (ky, dst) in crow.chunks_exact_mut(run).enumerate() {
                let src = &padded[((oy * stride + ky) * wp + ox * stride) * cin..][..run];
                if RUN == 0 {
                    dst.copy_from_slice(src);
                } else {
                    let dst: &mut [f32; RUN] = dst.try_into().unwrap();
                    let src: &[f32; RUN] = src.try_into().unwrap();
                    *dst = *src;
                }
            }
        }
    }
}

/// Scatter-adds an im2col-shaped gradient `[N*Ho*Wo, k*k*cin]` back onto the input
/// `[N*H*W, cin]` (the adjoint of [`im2col`]), through a zero-bordered per-image buffer.
pub fn col2im(dcol: ArrayView2<f32>, d: Dims, cin: usize, k: usize, stride: usize) -> Array2<f32> {
    let od = d.conv_out(k, stride);
    let run = k * cin;
    let kk = k * run;
    assert_eq!(dcol.dim(), (od.pixels(), kk), "col2im: dcol shape mismatch");
    assert!(cin > 0, "col2im: no input channels");
    let cs = dcol.as_standard_layout();
    let csl = cs.as_slice().expect("standard layout");
    let pad = k / 2;
    let (hp, wp) = (d.h + 2 * pad, d.w + 2 * pad);
    let mut padded = vec![0f32; hp * wp * cin];
    let row_len = d.w * cin;
    let mut dx = Array2::<f32>::zeros((d.pixels(), cin));
    let dsl = dx.as_slice_mut().unwrap();
    for (dimg, cimg) in dsl
        .chunks_exact_mut(d.per_image() * cin)
        .zip(csl.chunks_exact(od.per_image() * kk))
    {
        padded.fill(0.0);
        for oy in 0..od.h {
            for ox in 0..od.w {
                let crow = &cimg[(oy * od.w + ox) * kk..][..kk];
                for (ky, src) in crow.chunks_exact(run).enumerate() {
                    let dst = &mut padded[((oy * stride + ky) * wp + ox * stride) * cin..][..run];
                    for (o, &g) in dst.iter_mut().zip(src) {
                        *o += g;
                    }
                }
            }
        }
        for (y, out) in dimg.chunks_exact_mut(row_len).enumerate() {
            out.copy_from_slice(&padded[((y + pad) * wp + pad) * cin..][..row_len]);
        }
    }
    dx
}

/// `y = col @ w^T` for a precomputed [`im2col`] matrix.
pub fn conv_forward_from_col(col: ArrayView2<f32>, w: ArrayView2<f32>) -> Array2<f32> {
    assert_eq!(
        col.ncols(),
        w.ncols(),
        "conv_forward_from_col: k*k*cin mismatch"
    );
    matmul(col, w.t())
}

/// Stem conv: `k x k`, stride `stride`, padding `k/2`; `x` `[N*H*W, cin]`,
/// `w` `[cout, k*k*cin]` in `(ky, kx, ci)` order. Returns `y` `[N*Ho*Wo, cout]` and its sizes.
pub fn conv_forward(
    x: ArrayView2<f32>,
    d: Dims,
    w: ArrayView2<f32>,
    k: usize,
    stride: usize,
) -> (Array2<f32>, Dims) {
    assert_eq!(
        w.ncols(),
        k * k * x.ncols(),
        "conv_forward: w has {} columns, expected k*k*cin = {}",
        w.ncols(),
        k * k * x.ncols()
    );
    let (col, od) = im2col(x, d, k, stride);
    (conv_forward_from_col(col.view(), w), od)
}

/// `dW = dy^T @ col`, `[cout, k*k*cin]`, for a precomputed [`im2col`] matrix.
pub fn conv_backward_weight_from_col(col: ArrayView2<f32>, dy: ArrayView2<f32>) -> Array2<f32> {
    assert_eq!(
        col.nrows(),
        dy.nrows(),
        "conv_backward_weight: row mismatch"
    );
    matmul(dy.t(), col)
}

/// Weight gradient of [`conv_forward`]: `dW` `[cout, k*k*cin]` (recomputes im2col of `x`).
pub fn conv_backward_weight(
    x: ArrayView2<f32>,
    d: Dims,
    w_shape_cout: usize,
    k: usize,
    stride: usize,
    dy: ArrayView2<f32>,
) -> Array2<f32> {
    assert_eq!(
        dy.ncols(),
        w_shape_cout,
        "conv_backward_weight: dy has wrong cout"
    );
    let (col, od) = im2col(x, d, k, stride);
    assert_eq!(
        dy.nrows(),
        od.pixels(),
        "conv_backward_weight: dy rows mismatch"
    );
    conv_backward_weight_from_col(col.view(), dy)
}

/// Input gradient of [`conv_forward`]: `dx` `[N*H*W, cin]` with `cin = w.ncols() / (k*k)`.
pub fn conv_backward_input(
    d: Dims,
    w: ArrayView2<f32>,
    k: usize,
    stride: usize,
    dy: ArrayView2<f32>,
) -> Array2<f32> {
    assert_eq!(
        w.ncols() % (k * k),
        0,
        "conv_backward_input: w columns not k*k*cin"
    );
    assert_eq!(dy.ncols(), w.nrows(), "conv_backward_input: cout mismatch");
    let cin = w.ncols() / (k * k);
    let dcol = matmul(dy, w);
    col2im(dcol.view(), d, cin, k, stride)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::gradcheck::{check_grad, dot_loss, randn};
    use crate::rng::Rng;
    use ndarray::s;

    fn naive_conv(
        x: &Array2<f32>,
        d: Dims,
        w: &Array2<f32>,
        k: usize,
        stride: usize,
    ) -> (Array2<f32>, Dims) {
        let cin = x.ncols();
        let cout = w.nrows();
        let pad = (k / 2) as isize;
        let od = d.conv_out(k, stride);
        let mut y = Array2::zeros((od.pixels(), cout));
        for n in 0..d.n {
            for oy in 0..od.h {
                for ox in 0..od.w {
                    for co in 0..cout {
                        let mut acc = 0.0f64;
                        for ky in 0..k {
                            for kx in 0..k {
                                let iy = (oy * stride + ky) as isize - pad;
                                let ix = (ox * stride + kx) as isize - pad;
                                if iy < 0 || ix < 0 || iy >= d.h as isize || ix >= d.w as isize {
                                    continue;
                                }
                                let row = (n * d.h + iy as usize) * d.w + ix as usize;
                                for ci in 0..cin {
                                    acc += x[[row, ci]] as f64
                                        * w[[co, (ky * k + kx) * cin + ci]] as f64;
                                }
                            }
                        }
                        y[[(n * od.h + oy) * od.w + ox, co]] = acc as f32;
                    }
                }
            }
        }
        (y, od)
    }

    #[test]
    fn matches_naive() {
        let mut rng = Rng::new(30);
        for &(h, w, cin, k, stride) in &[
            (8, 8, 3, 3, 2),
            (7, 9, 1, 3, 2),
            (6, 5, 2, 5, 1),
            (5, 6, 3, 3, 1),
            (9, 7, 3, 7, 2),
        ] {
            let d = Dims::new(2, h, w);
            let x = randn(&mut rng, d.pixels(), cin);
            let wt = randn(&mut rng, 4, k * k * cin);
            let (y, od) = conv_forward(x.view(), d, wt.view(), k, stride);
            let (yn, odn) = naive_conv(&x, d, &wt, k, stride);
            assert_eq!(od, odn);
            for (a, b) in y.iter().zip(yn.iter()) {
                assert!(
                    (a - b).abs() < 1e-4,
                    "{a} vs {b} (h {h} w {w} cin {cin} k {k} s {stride})"
                );
            }
        }
    }

    #[test]
    fn gradcheck_stem_stride2() {
        let mut rng = Rng::new(31);
        for &(cin, h, w) in &[(1usize, 7usize, 8usize), (3, 6, 5)] {
            let (k, stride, cout) = (3, 2, 4);
            let d = Dims::new(2, h, w);
            let od = d.conv_out(k, stride);
            let x = randn(&mut rng, d.pixels(), cin);
            // Weight as a leading sub-block of a wider supernet matrix.
            let w_wide = randn(&mut rng, cout + 2, k * k * cin + 3);
            let r = randn(&mut rng, od.pixels(), cout);
            let f = |x: &Array2<f32>, w: &Array2<f32>| {
                let (y, _) =
                    conv_forward(x.view(), d, w.slice(s![..cout, ..k * k * cin]), k, stride);
                dot_loss(y.view(), r.view())
            };
            let wv = w_wide.slice(s![..cout, ..k * k * cin]);
            let dw = conv_backward_weight(x.view(), d, cout, k, stride, r.view());
            assert_eq!(dw.dim(), (cout, k * k * cin));
            let mut dw_wide = Array2::zeros(w_wide.raw_dim());
            dw_wide.slice_mut(s![..cout, ..k * k * cin]).assign(&dw);
            check_grad(
                &format!("conv dw cin {cin}"),
                &w_wide,
                &dw_wide,
                1e-2,
                |w| f(&x, w),
            );
            let dx = conv_backward_input(d, wv, k, stride, r.view());
            check_grad(&format!("conv dx cin {cin}"), &x, &dx, 1e-2, |x| {
                f(x, &w_wide)
            });
        }
    }
}
