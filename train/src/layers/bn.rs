//! Batch normalisation over the rows of `[P, C]` (per channel), training and eval modes.
//!
//! Statistics take one pass: f32 partial sums over blocks of 32 rows, folded into f64 totals,
//! of values shifted by the first row (which keeps `E[d^2] - E[d]^2` well conditioned);
//! element-wise work is f32.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

use super::build_rows;

/// Rows per f32 partial sum before folding into the f64 totals.
const STAT_BLOCK_ROWS: usize = 32;

/// What [`bn_train_backward`] needs, plus the batch statistics for running-stat updates.
#[derive(Clone, Debug)]
pub struct BnCache {
    /// Normalised input `(x - mean) * inv_std`, `[P, C]` standard layout.
    pub xhat: Array2<f32>,
    /// `1 / sqrt(var + eps)`, `[C]`.
    pub inv_std: Array1<f32>,
    /// Batch mean, `[C]`.
    pub mean: Array1<f32>,
    /// Biased batch variance (divided by `P`), `[C]`. Multiply by `P / (P - 1)` for the
    /// unbiased estimate PyTorch puts into its running variance.
    pub var: Array1<f32>,
}

/// Training-mode batch norm: per-channel mean and biased variance over all `P` rows,
/// `y = gamma * (x - mean) / sqrt(var + eps) + beta`.
pub fn bn_train_forward(
    x: ArrayView2<f32>,
    gamma: ArrayView1<f32>,
    beta: ArrayView1<f32>,
    eps: f32,
) -> (Array2<f32>, BnCache) {
    let (p, c) = x.dim();
    assert_eq!(gamma.len(), c, "bn_train_forward: gamma length mismatch");
    assert_eq!(beta.len(), c, "bn_train_forward: beta length mismatch");
    assert!(p > 0 && c > 0, "bn_train_forward: empty input");
    let xs = x.as_standard_layout();
    let xsl = xs.as_slice().expect("standard layout");

    // Shifted sums (shift = first row, a sample of each channel, so the cancellation in
    // E[d^2] - E[d]^2 stays small even when |mean| >> std). Partial sums over blocks of rows
    // in f32 (vectorisable), folded into f64 totals.
    let shift: Vec<f32> = xsl[..c].to_vec();
    let mut sum = vec![0f64; c];
    let mut sumsq = vec![0f64; c];
    let mut bs = vec![0f32; c];
    let mut bq = vec![0f32; c];
    for block in xsl.chunks(c * STAT_BLOCK_ROWS) {
        bs.fill(0.0);
        bq.fill(0.0);
        for row in block.chunks_exact(c) {
            for (((s, q), &v), &m) in bs.iter_mut().zip(bq.iter_mut()).zip(row).zip(&shift) {
                let d = v - m;
                *s += d;
                *q += d * d;
            }
        }
        for ((s, q), (&a, &b)) in sum.iter_mut().zip(sumsq.iter_mut()).zip(bs.iter().zip(&bq)) {
            *s += a as f64;
            *q += b as f64;
        }
    }
    let inv_p = 1.0 / p as f64;
    let mut mean = Array1::<f32>::zeros(c);
    let mut var = Array1::<f32>::zeros(c);
    let mut inv_std = Array1::<f32>::zeros(c);
    for j in 0..c {
        let md = sum[j] * inv_p;
        let v = (sumsq[j] * inv_p - md * md).max(0.0);
        mean[j] = (shift[j] as f64 + md) as f32;
        var[j] = v as f32;
        inv_std[j] = (1.0 / (v + eps as f64).sqrt()) as f32;
    }

    let gv: Vec<f32> = gamma.iter().copied().collect();
    let bv: Vec<f32> = beta.iter().copied().collect();
    let mean_s = mean.as_slice().unwrap();
    let istd_s = inv_std.as_slice().unwrap();
    let xhat = build_rows(p, c, |r, buf| {
        let xr = &xsl[r * c..][..c];
        buf.extend(
            xr.iter()
                .zip(mean_s.iter().zip(istd_s))
                .map(|(&xv, (&m, &is))| (xv - m) * is),
        );
    });
    let xh = xhat.as_slice().unwrap();
    let y = build_rows(p, c, |r, buf| {
        let hr = &xh[r * c..][..c];
        buf.extend(
            hr.iter()
                .zip(gv.iter().zip(&bv))
                .map(|(&h, (&g, &b))| g * h + b),
        );
    });
    (
        y,
        BnCache {
            xhat,
            inv_std,
            mean,
            var,
        },
    )
}

/// Gradients of [`bn_train_forward`]: `(dx [P, C], dgamma [C], dbeta [C])`.
///
/// `dx = gamma * inv_std * (dy - mean(dy) - xhat * mean(dy * xhat))`.
pub fn bn_train_backward(
    cache: &BnCache,
    gamma: ArrayView1<f32>,
    dy: ArrayView2<f32>,
) -> (Array2<f32>, Array1<f32>, Array1<f32>) {
    let (p, c) = cache.xhat.dim();
    assert_eq!(dy.dim(), (p, c), "bn_train_backward: dy shape mismatch");
    assert_eq!(gamma.len(), c, "bn_train_backward: gamma length mismatch");
    let dys = dy.as_standard_layout();
    let dsl = dys.as_slice().expect("standard layout");
    let xh = cache
        .xhat
        .as_slice()
        .expect("cache.xhat must be standard layout");

    let mut sdy = vec![0f64; c];
    let mut sdyx = vec![0f64; c];
    let mut bs = vec![0f32; c];
    let mut bq = vec![0f32; c];
    for (dblock, hblock) in dsl
        .chunks(c * STAT_BLOCK_ROWS)
        .zip(xh.chunks(c * STAT_BLOCK_ROWS))
    {
        bs.fill(0.0);
        bq.fill(0.0);
        for (dr, hr) in dblock.chunks_exact(c).zip(hblock.chunks_exact(c)) {
            for (((s, q), &d), &h) in bs.iter_mut().zip(bq.iter_mut()).zip(dr).zip(hr) {
                *s += d;
                *q += d * h;
            }
        }
        for ((s, q), (&a, &b)) in sdy.iter_mut().zip(sdyx.iter_mut()).zip(bs.iter().zip(&bq)) {
            *s += a as f64;
            *q += b as f64;
        }
    }
    let dbeta: Array1<f32> = sdy.iter().map(|&v| v as f32).collect();
    let dgamma: Array1<f32> = sdyx.iter().map(|&v| v as f32).collect();

    let inv_p = 1.0 / p as f64;
    // dx = a * dy + b * xhat + cst, per channel.
    let mut a = vec![0f32; c];
    let mut bx = vec![0f32; c];
    let mut cst = vec![0f32; c];
    for j in 0..c {
        let k = gamma[j] as f64 * cache.inv_std[j] as f64;
        a[j] = k as f32;
        bx[j] = (-k * sdyx[j] * inv_p) as f32;
        cst[j] = (-k * sdy[j] * inv_p) as f32;
    }
    let dx = build_rows(p, c, |r, buf| {
        let (dr, hr) = (&dsl[r * c..][..c], &xh[r * c..][..c]);
        buf.extend(
            dr.iter()
                .zip(hr)
                .zip(a.iter().zip(&bx).zip(&cst))
                .map(|((&d, &h), ((&a, &b), &k))| a * d + b * h + k),
        );
    });
    (dx, dgamma, dbeta)
}

/// Eval-mode batch norm with folded parameters: `y = x * scale + shift` (per channel).
pub fn bn_eval_forward(
    x: ArrayView2<f32>,
    scale: ArrayView1<f32>,
    shift: ArrayView1<f32>,
) -> Array2<f32> {
    let c = x.ncols();
    assert_eq!(scale.len(), c, "bn_eval_forward: scale length mismatch");
    assert_eq!(shift.len(), c, "bn_eval_forward: shift length mismatch");
    let xs = x.as_standard_layout();
    let xsl = xs.as_slice().expect("standard layout");
    let sc: Vec<f32> = scale.iter().copied().collect();
    let sh: Vec<f32> = shift.iter().copied().collect();
    build_rows(x.nrows(), c, |r, buf| {
        let xr = &xsl[r * c..][..c];
        buf.extend(
            xr.iter()
                .zip(sc.iter().zip(&sh))
                .map(|(&v, (&a, &b))| v * a + b),
        );
    })
}

/// Folds batch-norm parameters and statistics into `(scale, shift)`:
/// `scale = gamma / sqrt(var + eps)` and `shift = beta - mean * scale`, both computed in f64
/// (with the unrounded scale) and then cast to f32.
pub fn bn_fold(
    gamma: ArrayView1<f32>,
    beta: ArrayView1<f32>,
    mean: ArrayView1<f32>,
    var: ArrayView1<f32>,
    eps: f32,
) -> (Array1<f32>, Array1<f32>) {
    let c = gamma.len();
    assert!(
        beta.len() == c && mean.len() == c && var.len() == c,
        "bn_fold: length mismatch"
    );
    let mut scale = Array1::<f32>::zeros(c);
    let mut shift = Array1::<f32>::zeros(c);
    for j in 0..c {
        let s = gamma[j] as f64 / (var[j] as f64 + eps as f64).sqrt();
        scale[j] = s as f32;
        shift[j] = (beta[j] as f64 - mean[j] as f64 * s) as f32;
    }
    (scale, shift)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::gradcheck::{check_grad, dot_loss, randn, randn1};
    use crate::rng::Rng;
    use ndarray::{Axis, s};

    #[test]
    fn normalises_to_zero_mean_unit_variance() {
        let mut rng = Rng::new(20);
        let x = randn(&mut rng, 300, 6).mapv(|v| 3.0 * v + 5.0);
        let c = 6;
        let (y, cache) = bn_train_forward(
            x.view(),
            Array1::ones(c).view(),
            Array1::zeros(c).view(),
            1e-5,
        );
        for j in 0..c {
            let col = y.column(j);
            let m = col.iter().map(|&v| v as f64).sum::<f64>() / 300.0;
            let v = col.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / 300.0;
            assert!(m.abs() < 1e-5, "mean {m}");
            assert!((v - 1.0).abs() < 1e-4, "var {v}");
            // Cached statistics agree with a direct computation.
            let xc = x.column(j);
            let xm = xc.iter().map(|&v| v as f64).sum::<f64>() / 300.0;
            let xv = xc.iter().map(|&v| (v as f64 - xm).powi(2)).sum::<f64>() / 300.0;
            assert!((cache.mean[j] as f64 - xm).abs() < 1e-5);
            assert!((cache.var[j] as f64 - xv).abs() < 1e-4 * xv);
        }
        assert_eq!(y, cache.xhat);
    }

    #[test]
    fn statistics_stay_accurate_when_mean_dwarfs_std() {
        let mut rng = Rng::new(23);
        let x = randn(&mut rng, 2000, 3).mapv(|v| 1000.0 + 0.01 * v);
        let (_, cache) = bn_train_forward(
            x.view(),
            Array1::ones(3).view(),
            Array1::zeros(3).view(),
            0.0,
        );
        for j in 0..3 {
            let col = x.column(j);
            let m = col.iter().map(|&v| v as f64).sum::<f64>() / 2000.0;
            let v = col.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / 2000.0;
            assert!(
                (cache.mean[j] as f64 - m).abs() < 1e-4,
                "mean {} vs {m}",
                cache.mean[j]
            );
            assert!(
                (cache.var[j] as f64 - v).abs() < 1e-3 * v,
                "var {} vs {v}",
                cache.var[j]
            );
        }
    }

    #[test]
    fn gradcheck_x_gamma_beta() {
        let mut rng = Rng::new(21);
        let (p, c) = (12, 5);
        // A strided x (every other row of a taller matrix) to exercise the view path.
        let x_tall = randn(&mut rng, 2 * p, c).mapv(|v| 2.0 * v + 1.0);
        let gamma = randn1(&mut rng, c);
        let beta = randn1(&mut rng, c);
        let r = randn(&mut rng, p, c);
        let eps = 1e-3;
        let f = |x: &Array2<f32>, g: &Array1<f32>, b: &Array1<f32>| {
            let (y, _) = bn_train_forward(x.slice(s![..;2, ..]), g.view(), b.view(), eps);
            dot_loss(y.view(), r.view())
        };
        let (_, cache) =
            bn_train_forward(x_tall.slice(s![..;2, ..]), gamma.view(), beta.view(), eps);
        let (dx, dg, db) = bn_train_backward(&cache, gamma.view(), r.view());
        let mut dx_tall = Array2::zeros(x_tall.raw_dim());
        dx_tall.slice_mut(s![..;2, ..]).assign(&dx);
        check_grad("bn dx", &x_tall, &dx_tall, 1e-2, |x| f(x, &gamma, &beta));
        check_grad("bn dgamma", &gamma, &dg, 1e-2, |g| f(&x_tall, g, &beta));
        check_grad("bn dbeta", &beta, &db, 1e-2, |b| f(&x_tall, &gamma, b));
    }

    #[test]
    fn fold_matches_normalised_eval() {
        let mut rng = Rng::new(22);
        let c = 7;
        let x = randn(&mut rng, 40, c).mapv(|v| 2.0 * v - 0.5);
        let gamma = randn1(&mut rng, c);
        let beta = randn1(&mut rng, c);
        let mean = x.mean_axis(Axis(0)).unwrap();
        let var = x.var_axis(Axis(0), 0.0);
        let eps = 1e-5;
        let (scale, shift) = bn_fold(gamma.view(), beta.view(), mean.view(), var.view(), eps);
        let y = bn_eval_forward(x.view(), scale.view(), shift.view());
        let (y_train, _) = bn_train_forward(x.view(), gamma.view(), beta.view(), eps);
        for (a, b) in y.iter().zip(y_train.iter()) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
        for ((i, j), &v) in y.indexed_iter() {
            let direct = gamma[j] * (x[[i, j]] - mean[j]) / (var[j] + eps).sqrt() + beta[j];
            assert!((v - direct).abs() < 1e-4);
        }
    }
}
