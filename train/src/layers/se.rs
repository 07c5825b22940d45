//! Squeeze-and-excite: `m = mean_pixels(x)`, `r = relu(m @ w_r^T + b_r)`,
//! `g = hsigmoid(r @ w_e^T + b_e)`, `y = x * g` (broadcast over each image's pixels).

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Zip};

use super::act::{hsigmoid, hsigmoid_grad};
use super::linear::{linear_backward, linear_forward};
use super::pool::global_avg_pool_forward;
use super::{Dims, build_rows};

/// Per-image intermediates of [`se_forward`] (all tiny: `[N, C]` or `[N, hid]`).
#[derive(Clone, Debug)]
pub struct SeCache {
    /// Pooled input `m`, `[N, C]`.
    pub pooled: Array2<f32>,
    /// Reduce pre-activation `m @ w_r^T + b_r`, `[N, hid]`.
    pub z_r: Array2<f32>,
    /// `relu(z_r)`, `[N, hid]`.
    pub r: Array2<f32>,
    /// Expand pre-activation `r @ w_e^T + b_e`, `[N, C]`.
    pub z_e: Array2<f32>,
    /// Gate `hsigmoid(z_e)`, `[N, C]`.
    pub g: Array2<f32>,
}

/// Gradients of [`se_forward`], each shaped like the corresponding input view.
#[derive(Clone, Debug)]
pub struct SeGrads {
    pub dx: Array2<f32>,
    pub dw_r: Array2<f32>,
    pub db_r: Array1<f32>,
    pub dw_e: Array2<f32>,
    pub db_e: Array1<f32>,
}

/// Squeeze-excite forward on `x` `[N*H*W, C]`; `w_r` `[hid, C]`, `b_r` `[hid]`,
/// `w_e` `[C, hid]`, `b_e` `[C]`. Returns `y` `[N*H*W, C]` and the cache.
pub fn se_forward(
    x: ArrayView2<f32>,
    d: Dims,
    w_r: ArrayView2<f32>,
    b_r: ArrayView1<f32>,
    w_e: ArrayView2<f32>,
    b_e: ArrayView1<f32>,
) -> (Array2<f32>, SeCache) {
    let c = x.ncols();
    assert_eq!(w_r.ncols(), c, "se_forward: w_r must be [hid, C]");
    assert_eq!(
        w_e.dim(),
        (c, w_r.nrows()),
        "se_forward: w_e must be [C, hid]"
    );
    let xs = x.as_standard_layout();
    let xsl = xs.as_slice().expect("standard layout");
    let pooled = global_avg_pool_forward(xs.view(), d);
    let z_r = linear_forward(pooled.view(), w_r, Some(b_r));
    let r = z_r.mapv(|v| v.max(0.0));
    let z_e = linear_forward(r.view(), w_e, Some(b_e));
    let g = z_e.mapv(hsigmoid);

    let gsl = g.as_slice().unwrap();
    let hw = d.per_image();
    let y = build_rows(x.nrows(), c, |r, buf| {
        let gate = &gsl[(r / hw) * c..][..c];
        buf.extend(xsl[r * c..][..c].iter().zip(gate).map(|(&v, &s)| v * s));
    });
    (
        y,
        SeCache {
            pooled,
            z_r,
            r,
            z_e,
            g,
        },
    )
}

/// Gradients of [`se_forward`]. The biases are not needed (their effect is in the cache) and
/// are taken only to keep the call symmetric with the forward pass.
#[allow(clippy::too_many_arguments)]
pub fn se_backward(
    x: ArrayView2<f32>,
    d: Dims,
    w_r: ArrayView2<f32>,
    _b_r: ArrayView1<f32>,
    w_e: ArrayView2<f32>,
    _b_e: ArrayView1<f32>,
    cache: &SeCache,
    dy: ArrayView2<f32>,
) -> SeGrads {
    let c = x.ncols();
    assert_eq!(x.nrows(), d.pixels(), "se_backward: x rows != d.pixels()");
    assert_eq!(dy.dim(), x.dim(), "se_backward: dy shape mismatch");
    let xs = x.as_standard_layout();
    let xsl = xs.as_slice().expect("standard layout");
    let dys = dy.as_standard_layout();
    let dysl = dys.as_slice().expect("standard layout");
    let hw = d.per_image();
    let img = hw * c;
    // dg[n] = sum over the image's pixels of dy * x.
    let mut dg = Array2::<f32>::zeros((d.n, c));
    for ((xi, di), dgn) in xsl
        .chunks_exact(img)
        .zip(dysl.chunks_exact(img))
        .zip(dg.as_slice_mut().unwrap().chunks_exact_mut(c))
    {
        for (xr, dr) in xi.chunks_exact(c).zip(di.chunks_exact(c)) {
            for ((acc, &xv), &g) in dgn.iter_mut().zip(xr).zip(dr) {
                *acc += g * xv;
            }
        }
    }
    let mut dz_e = dg;
    Zip::from(&mut dz_e)
        .and(&cache.z_e)
        .for_each(|g, &z| *g *= hsigmoid_grad(z));
    let (mut dz_r, dw_e, db_e) = linear_backward(cache.r.view(), w_e, dz_e.view());
    Zip::from(&mut dz_r).and(&cache.z_r).for_each(|g, &z| {
        if z <= 0.0 {
            *g = 0.0;
        }
    });
    let (dm, dw_r, db_r) = linear_backward(cache.pooled.view(), w_r, dz_r.view());
    // dx = dy * g + dm / (h*w) (the pooling backward), broadcast over each image's pixels.
    let dm_hw = dm.mapv(|v| v / hw as f32);
    let dmsl = dm_hw.as_slice().unwrap();
    let gsl = cache.g.as_slice().expect("cache.g must be standard layout");
    let dx = build_rows(x.nrows(), c, |r, buf| {
        let n = r / hw;
        let (gate, add) = (&gsl[n * c..][..c], &dmsl[n * c..][..c]);
        buf.extend(
            dysl[r * c..][..c]
                .iter()
                .zip(gate.iter().zip(add))
                .map(|(&g, (&s, &a))| g * s + a),
        );
    });
    SeGrads {
        dx,
        dw_r,
        db_r,
        dw_e,
        db_e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::gradcheck::{check_grad, dot_loss, randn, randn1};
    use crate::rng::Rng;
    use ndarray::s;

    #[test]
    fn gate_values() {
        let mut rng = Rng::new(60);
        let d = Dims::new(2, 2, 3);
        let (c, hid) = (5, 2);
        let x = randn(&mut rng, d.pixels(), c);
        let w_r = randn(&mut rng, hid, c);
        let b_r = randn1(&mut rng, hid);
        let w_e = randn(&mut rng, c, hid);
        let b_e = randn1(&mut rng, c);
        let (y, cache) = se_forward(x.view(), d, w_r.view(), b_r.view(), w_e.view(), b_e.view());
        for n in 0..d.n {
            for j in 0..c {
                let m: f32 = (0..6).map(|p| x[[n * 6 + p, j]]).sum::<f32>() / 6.0;
                assert!((cache.pooled[[n, j]] - m).abs() < 1e-6);
            }
            for j in 0..c {
                let mut z = b_e[j];
                for h in 0..hid {
                    let mut zr = b_r[h];
                    for i in 0..c {
                        zr += w_r[[h, i]] * cache.pooled[[n, i]];
                    }
                    z += w_e[[j, h]] * zr.max(0.0);
                }
                let g = (z + 3.0).clamp(0.0, 6.0) / 6.0;
                for p in 0..6 {
                    let row = n * 6 + p;
                    assert!((y[[row, j]] - x[[row, j]] * g).abs() < 1e-5);
                }
            }
        }
    }

    #[test]
    fn gradcheck_x_and_all_params() {
        let eps = 1e-2f32;
        let d = Dims::new(3, 2, 3);
        let (c, hid) = (6, 3);
        let mut rng = Rng::new(61);
        // Draw until no pre-activation sits near a kink (relu at 0, hard-sigmoid at +-3), so
        // that perturbing any single input or parameter by eps cannot cross one.
        let mut attempts = 0;
        let (x, w_r, b_r, w_e, b_e) = loop {
            attempts += 1;
            assert!(attempts < 10_000, "no kink-free SE parameters found");
            let x = randn(&mut rng, d.pixels(), c).mapv(|v| 1.5 * v + 0.3);
            let w_r = randn(&mut rng, hid + 1, c + 2); // sliced to [hid, C]
            let b_r = randn1(&mut rng, hid + 1);
            let w_e = randn(&mut rng, c + 2, hid + 1).mapv(|v| 2.0 * v); // sliced to [C, hid]
            let b_e = randn1(&mut rng, c + 2);
            let (_, cache) = se_forward(
                x.view(),
                d,
                w_r.slice(s![..hid, ..c]),
                b_r.slice(s![..hid]),
                w_e.slice(s![..c, ..hid]),
                b_e.slice(s![..c]),
            );
            let absmax = |a: &Array2<f32>| a.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
            let (pmax, rmax) = (absmax(&cache.pooled), absmax(&cache.r));
            let wmax = absmax(&w_r).max(absmax(&w_e));
            // Largest change of z_r / z_e that one eps-perturbation can cause, with slack.
            let margin_r = 3.0 * eps * (1.0 + pmax + wmax);
            let margin_e = 3.0 * eps * ((1.0 + wmax) * (1.0 + pmax + wmax) + rmax);
            let near_relu = cache.z_r.iter().any(|&z| z.abs() < margin_r);
            let near_hsig = cache.z_e.iter().any(|&z| (z.abs() - 3.0).abs() < margin_e);
            let all_saturated = cache.z_e.iter().all(|&z| z.abs() > 3.0);
            let all_dead = cache.z_r.iter().all(|&z| z < 0.0);
            if !near_relu && !near_hsig && !all_saturated && !all_dead {
                break (x, w_r, b_r, w_e, b_e);
            }
        };
        let r = randn(&mut rng, d.pixels(), c);
        let loss = |x: &Array2<f32>,
                    w_r: &Array2<f32>,
                    b_r: &Array1<f32>,
                    w_e: &Array2<f32>,
                    b_e: &Array1<f32>| {
            let (y, _) = se_forward(
                x.view(),
                d,
                w_r.slice(s![..hid, ..c]),
                b_r.slice(s![..hid]),
                w_e.slice(s![..c, ..hid]),
                b_e.slice(s![..c]),
            );
            dot_loss(y.view(), r.view())
        };
        let (wr, br, we, be) = (
            w_r.slice(s![..hid, ..c]),
            b_r.slice(s![..hid]),
            w_e.slice(s![..c, ..hid]),
            b_e.slice(s![..c]),
        );
        let (_, cache) = se_forward(x.view(), d, wr, br, we, be);
        let gr = se_backward(x.view(), d, wr, br, we, be, &cache, r.view());
        let mut dw_r = Array2::zeros(w_r.raw_dim());
        dw_r.slice_mut(s![..hid, ..c]).assign(&gr.dw_r);
        let mut db_r = Array1::zeros(b_r.raw_dim());
        db_r.slice_mut(s![..hid]).assign(&gr.db_r);
        let mut dw_e = Array2::zeros(w_e.raw_dim());
        dw_e.slice_mut(s![..c, ..hid]).assign(&gr.dw_e);
        let mut db_e = Array1::zeros(b_e.raw_dim());
        db_e.slice_mut(s![..c]).assign(&gr.db_e);
        check_grad("se dx", &x, &gr.dx, eps, |x| {
            loss(x, &w_r, &b_r, &w_e, &b_e)
        });
        check_grad("se dw_r", &w_r, &dw_r, eps, |p| {
            loss(&x, p, &b_r, &w_e, &b_e)
        });
        check_grad("se db_r", &b_r, &db_r, eps, |p| {
            loss(&x, &w_r, p, &w_e, &b_e)
        });
        check_grad("se dw_e", &w_e, &dw_e, eps, |p| {
            loss(&x, &w_r, &b_r, p, &b_e)
        });
        check_grad("se db_e", &b_e, &db_e, eps, |p| {
            loss(&x, &w_r, &b_r, &w_e, p)
        });
    }
}
