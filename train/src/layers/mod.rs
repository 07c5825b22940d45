//! Layer primitives of the trainer: forward and backward passes on ndarray.
//!
//! Conventions shared by every function here:
//!
//! * Activations are NHWC stored as `Array2<f32>` of shape `[N*H*W, C]`: one row per pixel of
//!   one image, rows ordered by image, then y, then x. The spatial sizes travel separately as
//!   [`Dims`].
//! * Weights use the deployed artifact's layouts: pointwise / linear `[cout, cin]`, depthwise
//!   `[k*k, C]` (tap-major, row `ky*k + kx`), stem conv `[cout, k*k*cin]` in `(ky, kx, ci)` order.
//! * Every function accepts arbitrary-stride views (a subnet passes leading sub-blocks of the
//!   supernet's wider weights) and returns gradients shaped like the view it was given.
//! * Padding of every `k x k` conv is `k/2` zeros; `ho = (h + 2*(k/2) - k)/s + 1`.
//! * Functions are pure and single-threaded, so two shards can run them in parallel threads.

mod act;
mod bn;
mod conv;
mod depthwise;
mod linear;
mod loss;
mod pool;
mod se;

#[cfg(test)]
pub(crate) mod gradcheck;

pub use act::{
    Act, act_backward, act_backward_inplace, act_forward, act_forward_inplace, hsigmoid,
    hsigmoid_grad, hswish, hswish_grad, relu6,
};
pub use bn::{BnCache, bn_eval_forward, bn_fold, bn_train_backward, bn_train_forward};
pub use conv::{
    col2im, conv_backward_input, conv_backward_weight, conv_backward_weight_from_col, conv_forward,
    conv_forward_from_col, im2col,
};
pub use depthwise::{
    depthwise_backward, depthwise_forward, kernel_transform_backward, kernel_transform_forward,
};
pub use linear::{linear_backward, linear_forward, pointwise_backward, pointwise_forward};
pub use loss::{cross_entropy_smooth, soft_cross_entropy, softmax_rows};
pub use pool::{global_avg_pool_backward, global_avg_pool_forward};
pub use se::{SeCache, SeGrads, se_backward, se_forward};

use ndarray::{Array2, ArrayView2};

/// Spatial sizes of an NHWC activation stored as `[N*H*W, C]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    pub n: usize,
    pub h: usize,
    pub w: usize,
}

impl Dims {
    pub fn new(n: usize, h: usize, w: usize) -> Self {
        Dims { n, h, w }
    }

    /// Rows of the activation matrix: `n*h*w`.
    pub fn pixels(&self) -> usize {
        self.n * self.h * self.w
    }

    /// Pixels of one image: `h*w`.
    pub fn per_image(&self) -> usize {
        self.h * self.w
    }

    /// Output sizes of a `k x k` conv with padding `k/2` and stride `stride`.
    pub fn conv_out(&self, k: usize, stride: usize) -> Dims {
        Dims {
            n: self.n,
            h: conv_out_size(self.h, k, stride),
            w: conv_out_size(self.w, k, stride),
        }
    }
}

/// Output length of a `k`-tap conv with padding `k/2` and stride `stride` over `len` inputs:
/// `(len + 2*(k/2) - k)/stride + 1`.
pub fn conv_out_size(len: usize, k: usize, stride: usize) -> usize {
    assert!(
        k >= 1 && stride >= 1,
        "conv_out_size: k and stride must be >= 1"
    );
    assert!(len >= 1, "conv_out_size: empty spatial axis");
    (len + 2 * (k / 2) - k) / stride + 1
}

/// `a @ b` as a standard-layout array, for views of any strides, single thread. Uses the
/// `gemm` crate, which reads any row/column strides directly and has fast paths for the
/// small and skinny products of this network (measured against ndarray's matrixmultiply in
/// `cargo bench -p supernet-train --bench layers`).
#[inline]
pub(crate) fn matmul(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Array2<f32> {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    assert_eq!(k, k2, "matmul: inner dimensions differ");
    let mut c = Array2::<f32>::zeros((m, n));
    if m == 0 || n == 0 || k == 0 {
        return c;
    }
    let (a_rs, a_cs) = (a.strides()[0], a.strides()[1]);
    let (b_rs, b_cs) = (b.strides()[0], b.strides()[1]);
    // SAFETY: the pointers and strides describe the live views `a`, `b` (m x k, k x n) and
    // the owned, contiguous `c` (m x n, row stride n); `gemm` reads only those elements and
    // writes only `c`'s. `read_dst = false`, so `c`'s initial values are not used.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
    c
}

/// Builds a standard-layout `[rows, cols]` array row by row without zero-filling it first:
/// `fill(r, buf)` must append exactly `cols` values (row `r`) to `buf`. Saves one pass over
/// memory compared with `zeros` + overwrite, which matters for the large element-wise layers.
#[inline]
pub(crate) fn build_rows(
    rows: usize,
    cols: usize,
    mut fill: impl FnMut(usize, &mut Vec<f32>),
) -> Array2<f32> {
    let mut buf = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        fill(r, &mut buf);
        debug_assert_eq!(
            buf.len(),
            (r + 1) * cols,
            "build_rows: row {r} has the wrong length"
        );
    }
    assert_eq!(buf.len(), rows * cols, "build_rows: wrong total length");
    Array2::from_shape_vec((rows, cols), buf).expect("shape matches length")
}

/// For output position `o` of a `k`-tap conv (stride `stride`, padding `k/2`) over `len`
/// inputs, the half-open range of taps whose input `o*stride + t - k/2` lies inside `0..len`.
#[inline]
pub(crate) fn tap_range(o: usize, stride: usize, k: usize, len: usize) -> (usize, usize) {
    let pad = k / 2;
    let base = o * stride;
    let t0 = pad.saturating_sub(base);
    let t1 = k.min(len + pad - base);
    (t0, t1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::gradcheck::{randn, randn1};
    use crate::rng::Rng;
    use ndarray::Array1;

    /// The same matrix stored column-major (so its views have unit row stride).
    fn fortran(a: &Array2<f32>) -> Array2<f32> {
        a.t().as_standard_layout().into_owned().reversed_axes()
    }

    fn same(label: &str, a: &Array2<f32>, b: &Array2<f32>) {
        assert!(
            a.is_standard_layout(),
            "{label}: result not standard layout"
        );
        assert!(
            b.is_standard_layout(),
            "{label}: result not standard layout"
        );
        assert_eq!(a.dim(), b.dim(), "{label}: shape");
        for (x, y) in a.iter().zip(b.iter()) {
            assert!(
                (x - y).abs() <= 1e-5 * (1.0 + x.abs()),
                "{label}: {x} vs {y}"
            );
        }
    }

    fn same1(label: &str, a: &Array1<f32>, b: &Array1<f32>) {
        same(
            label,
            &a.clone().insert_axis(ndarray::Axis(0)),
            &b.clone().insert_axis(ndarray::Axis(0)),
        );
    }

    #[test]
    fn dims_helpers() {
        let d = Dims::new(2, 5, 4);
        assert_eq!(d.pixels(), 40);
        assert_eq!(d.per_image(), 20);
        assert_eq!(d.conv_out(3, 2), Dims::new(2, 3, 2));
        assert_eq!(conv_out_size(14, 7, 2), 7);
        assert_eq!(conv_out_size(13, 5, 1), 13);
    }

    /// Every function returns standard-layout arrays equal to the standard-input results when
    /// given column-major views (including the single-column case where ndarray's `dot`
    /// would return a column-major matrix).
    #[test]
    fn column_major_inputs_give_standard_outputs() {
        let mut rng = Rng::new(5);
        for cin in [1usize, 3] {
            let x = randn(&mut rng, 12, cin);
            let w = randn(&mut rng, 4, cin);
            let b = randn1(&mut rng, 4);
            let dy = randn(&mut rng, 12, 4);
            let (xf, wf, dyf) = (fortran(&x), fortran(&w), fortran(&dy));
            same(
                "pointwise",
                &pointwise_forward(x.view(), w.view()),
                &pointwise_forward(xf.view(), wf.view()),
            );
            let (a, b2) = pointwise_backward(x.view(), w.view(), dy.view());
            let (af, bf) = pointwise_backward(xf.view(), wf.view(), dyf.view());
            same("pointwise dx", &a, &af);
            same("pointwise dw", &b2, &bf);
            same(
                "linear",
                &linear_forward(x.view(), w.view(), Some(b.view())),
                &linear_forward(xf.view(), wf.view(), Some(b.view())),
            );
            let (a, b2, c) = linear_backward(x.view(), w.view(), dy.view());
            let (af, bf, cf) = linear_backward(xf.view(), wf.view(), dyf.view());
            same("linear dx", &a, &af);
            same("linear dw", &b2, &bf);
            same1("linear db", &c, &cf);

            let d = Dims::new(2, 3, 2);
            let (k, s) = (3, 2);
            let od = d.conv_out(k, s);
            let wc = randn(&mut rng, 5, k * k * cin);
            let dyc = randn(&mut rng, od.pixels(), 5);
            let (wcf, dycf) = (fortran(&wc), fortran(&dyc));
            same(
                "conv",
                &conv_forward(x.view(), d, wc.view(), k, s).0,
                &conv_forward(xf.view(), d, wcf.view(), k, s).0,
            );
            same(
                "conv dw",
                &conv_backward_weight(x.view(), d, 5, k, s, dyc.view()),
                &conv_backward_weight(xf.view(), d, 5, k, s, dycf.view()),
            );
            same(
                "conv dx",
                &conv_backward_input(d, wc.view(), k, s, dyc.view()),
                &conv_backward_input(d, wcf.view(), k, s, dycf.view()),
            );
        }

        let d = Dims::new(2, 3, 3);
        let c = 5;
        let x = randn(&mut rng, d.pixels(), c);
        let xf = fortran(&x);
        let dy = randn(&mut rng, d.pixels(), c);
        let dyf = fortran(&dy);
        let k = 3;
        let f = randn(&mut rng, k * k, c);
        let ff = fortran(&f);
        same(
            "depthwise",
            &depthwise_forward(x.view(), d, f.view(), k, 1).0,
            &depthwise_forward(xf.view(), d, ff.view(), k, 1).0,
        );
        let (a, b) = depthwise_backward(x.view(), d, f.view(), k, 1, dy.view());
        let (af, bf) = depthwise_backward(xf.view(), d, ff.view(), k, 1, dyf.view());
        same("depthwise dx", &a, &af);
        same("depthwise dfilt", &b, &bf);

        let w5 = randn(&mut rng, 25, c);
        let m = randn(&mut rng, 9, 9);
        let d_out = randn(&mut rng, 9, c);
        let (w5f, mf, d_outf) = (fortran(&w5), fortran(&m), fortran(&d_out));
        same(
            "kernel transform",
            &kernel_transform_forward(w5.view(), 5, m.view(), 3),
            &kernel_transform_forward(w5f.view(), 5, mf.view(), 3),
        );
        let (a, b) = kernel_transform_backward(w5.view(), 5, m.view(), 3, d_out.view());
        let (af, bf) = kernel_transform_backward(w5f.view(), 5, mf.view(), 3, d_outf.view());
        same("kt dw", &a, &af);
        same("kt dm", &b, &bf);

        let gamma = randn1(&mut rng, c);
        let beta = randn1(&mut rng, c);
        let (y, cache) = bn_train_forward(x.view(), gamma.view(), beta.view(), 1e-5);
        let (yf, cachef) = bn_train_forward(xf.view(), gamma.view(), beta.view(), 1e-5);
        same("bn", &y, &yf);
        let (a, b, c2) = bn_train_backward(&cache, gamma.view(), dy.view());
        let (af, bf, cf) = bn_train_backward(&cachef, gamma.view(), dyf.view());
        same("bn dx", &a, &af);
        same1("bn dgamma", &b, &bf);
        same1("bn dbeta", &c2, &cf);
        same(
            "bn eval",
            &bn_eval_forward(x.view(), gamma.view(), beta.view()),
            &bn_eval_forward(xf.view(), gamma.view(), beta.view()),
        );
        for act in [Act::Identity, Act::Relu, Act::HSwish] {
            same(
                "act",
                &act_forward(x.view(), act),
                &act_forward(xf.view(), act),
            );
            same(
                "act dx",
                &act_backward(x.view(), act, dy.view()),
                &act_backward(xf.view(), act, dyf.view()),
            );
        }

        let hid = 2;
        let w_r = randn(&mut rng, hid, c);
        let b_r = randn1(&mut rng, hid);
        let w_e = randn(&mut rng, c, hid);
        let b_e = randn1(&mut rng, c);
        let (w_rf, w_ef) = (fortran(&w_r), fortran(&w_e));
        let (y, sc) = se_forward(x.view(), d, w_r.view(), b_r.view(), w_e.view(), b_e.view());
        let (yf, scf) = se_forward(
            xf.view(),
            d,
            w_rf.view(),
            b_r.view(),
            w_ef.view(),
            b_e.view(),
        );
        same("se", &y, &yf);
        let g = se_backward(
            x.view(),
            d,
            w_r.view(),
            b_r.view(),
            w_e.view(),
            b_e.view(),
            &sc,
            dy.view(),
        );
        let gf = se_backward(
            xf.view(),
            d,
            w_rf.view(),
            b_r.view(),
            w_ef.view(),
            b_e.view(),
            &scf,
            dyf.view(),
        );
        same("se dx", &g.dx, &gf.dx);
        same("se dw_r", &g.dw_r, &gf.dw_r);
        same("se dw_e", &g.dw_e, &gf.dw_e);
        same1("se db_r", &g.db_r, &gf.db_r);
        same1("se db_e", &g.db_e, &gf.db_e);

        let pooled = global_avg_pool_forward(x.view(), d);
        same("gap", &pooled, &global_avg_pool_forward(xf.view(), d));
        let pf = fortran(&pooled);
        same(
            "gap dx",
            &global_avg_pool_backward(d, pooled.view()),
            &global_avg_pool_backward(d, pf.view()),
        );
        same(
            "softmax",
            &softmax_rows(pooled.view()),
            &softmax_rows(pf.view()),
        );
        let labels = [1u8, 4];
        let (l, g, n) = cross_entropy_smooth(pooled.view(), &labels, 0.1);
        let (lf, gf, nf) = cross_entropy_smooth(pf.view(), &labels, 0.1);
        assert_eq!((l, n), (lf, nf));
        same("ce grad", &g, &gf);
        let t = softmax_rows(pooled.view());
        let tf = fortran(&t);
        let (l, g) = soft_cross_entropy(pooled.view(), t.view());
        let (lf, gf) = soft_cross_entropy(pf.view(), tf.view());
        assert_eq!(l, lf);
        same("soft ce grad", &g, &gf);
    }
}
