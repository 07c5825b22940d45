//! Pointwise (1x1) convolution and fully connected layers: `y = x @ w^T (+ b)`.
//!
//! Both are single GEMMs through ndarray's `dot` (matrixmultiply, single-threaded), which
//! takes arbitrary-stride views directly, so sliced supernet weights need no copy.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};

use super::matmul;

/// `y = x @ w^T`: `x` `[P, cin]`, `w` `[cout, cin]`, `y` `[P, cout]` (standard layout).
pub fn pointwise_forward(x: ArrayView2<f32>, w: ArrayView2<f32>) -> Array2<f32> {
    assert_eq!(
        x.ncols(),
        w.ncols(),
        "pointwise_forward: x has {} channels, w expects {}",
        x.ncols(),
        w.ncols()
    );
    matmul(x, w.t())
}

/// Gradients of [`pointwise_forward`]: `(dx = dy @ w  [P, cin], dw = dy^T @ x  [cout, cin])`.
pub fn pointwise_backward(
    x: ArrayView2<f32>,
    w: ArrayView2<f32>,
    dy: ArrayView2<f32>,
) -> (Array2<f32>, Array2<f32>) {
    assert_eq!(x.ncols(), w.ncols(), "pointwise_backward: cin mismatch");
    assert_eq!(dy.nrows(), x.nrows(), "pointwise_backward: row mismatch");
    assert_eq!(dy.ncols(), w.nrows(), "pointwise_backward: cout mismatch");
    let dx = matmul(dy, w);
    let dw = matmul(dy.t(), x);
    (dx, dw)
}

/// `y = x @ w^T + b`: `x` `[N, cin]`, `w` `[cout, cin]`, `b` `[cout]`.
pub fn linear_forward(
    x: ArrayView2<f32>,
    w: ArrayView2<f32>,
    b: Option<ArrayView1<f32>>,
) -> Array2<f32> {
    let mut y = pointwise_forward(x, w);
    if let Some(b) = b {
        assert_eq!(b.len(), w.nrows(), "linear_forward: bias length mismatch");
        y += &b;
    }
    y
}

/// Gradients of [`linear_forward`]: `(dx [N, cin], dw [cout, cin], db [cout])`, where `db` is
/// the column sums of `dy` (return it or ignore it when the layer has no bias).
pub fn linear_backward(
    x: ArrayView2<f32>,
    w: ArrayView2<f32>,
    dy: ArrayView2<f32>,
) -> (Array2<f32>, Array2<f32>, Array1<f32>) {
    let (dx, dw) = pointwise_backward(x, w, dy);
    let db = dy.sum_axis(Axis(0));
    (dx, dw, db)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::gradcheck::{check_grad, dot_loss, randn, randn1};
    use crate::rng::Rng;
    use ndarray::s;

    #[test]
    fn pointwise_matches_naive() {
        let mut rng = Rng::new(1);
        let x = randn(&mut rng, 7, 5);
        let w = randn(&mut rng, 4, 5);
        let y = pointwise_forward(x.view(), w.view());
        for p in 0..7 {
            for o in 0..4 {
                let mut acc = 0.0f64;
                for i in 0..5 {
                    acc += x[[p, i]] as f64 * w[[o, i]] as f64;
                }
                assert!((y[[p, o]] as f64 - acc).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn pointwise_gradcheck_strided_views() {
        let mut rng = Rng::new(2);
        let (p, cin, cout) = (6, 5, 4);
        // x is itself a strided view (every other column of a wider matrix).
        let x_wide = randn(&mut rng, p, 2 * cin);
        let w_wide = randn(&mut rng, cout + 3, cin + 2);
        let r = randn(&mut rng, p, cout);
        let f = |x: &Array2<f32>, w: &Array2<f32>| {
            let xv = x.slice(s![.., ..;2]);
            let wv = w.slice(s![..cout, ..cin]);
            dot_loss(pointwise_forward(xv, wv).view(), r.view())
        };
        let xv = x_wide.slice(s![.., ..;2]);
        let wv = w_wide.slice(s![..cout, ..cin]);
        let (dx, dw) = pointwise_backward(xv, wv, r.view());
        assert_eq!(dx.dim(), (p, cin));
        assert_eq!(dw.dim(), (cout, cin));
        let mut dx_wide = Array2::zeros(x_wide.raw_dim());
        dx_wide.slice_mut(s![.., ..;2]).assign(&dx);
        let mut dw_wide = Array2::zeros(w_wide.raw_dim());
        dw_wide.slice_mut(s![..cout, ..cin]).assign(&dw);
        check_grad("pointwise dx", &x_wide, &dx_wide, 1e-2, |x| f(x, &w_wide));
        check_grad("pointwise dw", &w_wide, &dw_wide, 1e-2, |w| f(&x_wide, w));
    }

    #[test]
    fn linear_gradcheck_with_bias() {
        let mut rng = Rng::new(3);
        let (n, cin, cout) = (5, 7, 3);
        let x = randn(&mut rng, n, cin);
        let w_wide = randn(&mut rng, cout + 2, cin + 1);
        let b_wide = randn1(&mut rng, cout + 2);
        let r = randn(&mut rng, n, cout);
        let f = |x: &Array2<f32>, w: &Array2<f32>, b: &Array1<f32>| {
            let y = linear_forward(
                x.view(),
                w.slice(s![..cout, ..cin]),
                Some(b.slice(s![..cout])),
            );
            dot_loss(y.view(), r.view())
        };
        let (dx, dw, db) = linear_backward(x.view(), w_wide.slice(s![..cout, ..cin]), r.view());
        let mut dw_wide = Array2::zeros(w_wide.raw_dim());
        dw_wide.slice_mut(s![..cout, ..cin]).assign(&dw);
        let mut db_wide = Array1::zeros(b_wide.raw_dim());
        db_wide.slice_mut(s![..cout]).assign(&db);
        check_grad("linear dx", &x, &dx, 1e-2, |x| f(x, &w_wide, &b_wide));
        check_grad("linear dw", &w_wide, &dw_wide, 1e-2, |w| f(&x, w, &b_wide));
        check_grad("linear db", &b_wide, &db_wide, 1e-2, |b| f(&x, &w_wide, b));
    }

    #[test]
    fn linear_without_bias_is_pointwise() {
        let mut rng = Rng::new(4);
        let x = randn(&mut rng, 3, 4);
        let w = randn(&mut rng, 2, 4);
        assert_eq!(
            linear_forward(x.view(), w.view(), None),
            pointwise_forward(x.view(), w.view())
        );
    }
}
