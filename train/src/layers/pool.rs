//! Global average pooling over each image's pixels: `[N*H*W, C] -> [N, C]`.

use ndarray::{Array2, ArrayView2};

use super::{Dims, build_rows};

/// Mean over the `h*w` pixels of each image: `[N*H*W, C] -> [N, C]`.
pub fn global_avg_pool_forward(x: ArrayView2<f32>, d: Dims) -> Array2<f32> {
    assert_eq!(
        x.nrows(),
        d.pixels(),
        "global_avg_pool_forward: x rows != d.pixels()"
    );
    let c = x.ncols();
    assert!(c > 0, "global_avg_pool_forward: no channels");
    let xs = x.as_standard_layout();
    let xsl = xs.as_slice().expect("standard layout");
    let mut y = Array2::<f32>::zeros((d.n, c));
    let inv = 1.0 / d.per_image() as f32;
    for (img, out) in xsl
        .chunks_exact(d.per_image() * c)
        .zip(y.as_slice_mut().unwrap().chunks_exact_mut(c))
    {
        for row in img.chunks_exact(c) {
            for (o, &v) in out.iter_mut().zip(row) {
                *o += v;
            }
        }
        for o in out.iter_mut() {
            *o *= inv;
        }
    }
    y
}

/// Gradient of [`global_avg_pool_forward`]: every pixel of image `n` gets `dy[n] / (h*w)`.
pub fn global_avg_pool_backward(d: Dims, dy: ArrayView2<f32>) -> Array2<f32> {
    assert_eq!(
        dy.nrows(),
        d.n,
        "global_avg_pool_backward: dy must be [N, C]"
    );
    let c = dy.ncols();
    assert!(c > 0, "global_avg_pool_backward: no channels");
    let hw = d.per_image();
    let inv = 1.0 / hw as f32;
    let g = dy.as_standard_layout().mapv(|v| v * inv);
    let gsl = g.as_slice().expect("standard layout");
    build_rows(d.pixels(), c, |r, buf| {
        buf.extend_from_slice(&gsl[(r / hw) * c..][..c]);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::gradcheck::{check_grad, dot_loss, randn};
    use crate::rng::Rng;

    #[test]
    fn values_and_gradcheck() {
        let mut rng = Rng::new(50);
        let d = Dims::new(3, 3, 2);
        let c = 4;
        let x = randn(&mut rng, d.pixels(), c);
        let y = global_avg_pool_forward(x.view(), d);
        for n in 0..d.n {
            for j in 0..c {
                let m: f32 = (0..6).map(|p| x[[n * 6 + p, j]]).sum::<f32>() / 6.0;
                assert!((y[[n, j]] - m).abs() < 1e-6);
            }
        }
        let r = randn(&mut rng, d.n, c);
        let dx = global_avg_pool_backward(d, r.view());
        check_grad("gap dx", &x, &dx, 1e-2, |x| {
            dot_loss(global_avg_pool_forward(x.view(), d).view(), r.view())
        });
    }

    #[test]
    fn one_by_one_is_identity() {
        let mut rng = Rng::new(51);
        let d = Dims::new(4, 1, 1);
        let x = randn(&mut rng, 4, 5);
        assert_eq!(global_avg_pool_forward(x.view(), d), x);
    }
}
