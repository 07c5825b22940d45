//! Element-wise activations: identity, ReLU and h-swish (plus the hard-sigmoid used by SE).

use ndarray::{Array2, ArrayView2, Zip};

/// Training-side activation id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    Identity,
    Relu,
    HSwish,
}

/// `min(max(x, 0), 6)`.
#[inline(always)]
pub fn relu6(x: f32) -> f32 {
    x.clamp(0.0, 6.0)
}

/// `relu6(x + 3) / 6`.
#[inline(always)]
pub fn hsigmoid(x: f32) -> f32 {
    relu6(x + 3.0) * (1.0 / 6.0)
}

/// `1/6` for `-3 < x < 3`, else 0.
#[inline(always)]
pub fn hsigmoid_grad(x: f32) -> f32 {
    if x > -3.0 && x < 3.0 { 1.0 / 6.0 } else { 0.0 }
}

/// `x * relu6(x + 3) / 6`.
#[inline(always)]
pub fn hswish(x: f32) -> f32 {
    x * relu6(x + 3.0) * (1.0 / 6.0)
}

/// 0 for `x < -3`, 1 for `x > 3`, `(2x + 3)/6` in between.
#[inline(always)]
pub fn hswish_grad(x: f32) -> f32 {
    if x < -3.0 {
        0.0
    } else if x > 3.0 {
        1.0
    } else {
        (2.0 * x + 3.0) * (1.0 / 6.0)
    }
}

#[inline(always)]
fn relu(x: f32) -> f32 {
    x.max(0.0)
}

/// Applies `f` element-wise into a new standard-layout array (no zero-fill pass).
#[inline]
fn map_std(x: ArrayView2<f32>, f: impl Fn(f32) -> f32) -> Array2<f32> {
    let xs = x.as_standard_layout();
    let v: Vec<f32> = xs
        .as_slice()
        .expect("standard layout")
        .iter()
        .map(|&v| f(v))
        .collect();
    Array2::from_shape_vec(x.raw_dim(), v).expect("shape matches length")
}

/// Applies `f(x, g)` element-wise to two equally shaped arrays into a new standard-layout one.
#[inline]
fn zip_map_std(x: ArrayView2<f32>, g: ArrayView2<f32>, f: impl Fn(f32, f32) -> f32) -> Array2<f32> {
    assert_eq!(x.dim(), g.dim(), "act_backward: shape mismatch");
    let xs = x.as_standard_layout();
    let gs = g.as_standard_layout();
    let v: Vec<f32> = xs
        .as_slice()
        .expect("standard layout")
        .iter()
        .zip(gs.as_slice().expect("standard layout"))
        .map(|(&x, &g)| f(x, g))
        .collect();
    Array2::from_shape_vec(x.raw_dim(), v).expect("shape matches length")
}

/// `act(x)` into a new standard-layout array.
pub fn act_forward(x: ArrayView2<f32>, act: Act) -> Array2<f32> {
    match act {
        Act::Identity => x.as_standard_layout().into_owned(),
        Act::Relu => map_std(x, relu),
        Act::HSwish => map_std(x, hswish),
    }
}

/// `x = act(x)` in place.
pub fn act_forward_inplace(x: &mut Array2<f32>, act: Act) {
    match act {
        Act::Identity => {}
        Act::Relu => x.mapv_inplace(relu),
        Act::HSwish => x.mapv_inplace(hswish),
    }
}

/// `dx = dy * act'(x_pre)`, where `x_pre` is the activation's input.
pub fn act_backward(x_pre: ArrayView2<f32>, act: Act, dy: ArrayView2<f32>) -> Array2<f32> {
    match act {
        Act::Identity => {
            assert_eq!(x_pre.dim(), dy.dim(), "act_backward: shape mismatch");
            dy.as_standard_layout().into_owned()
        }
        Act::Relu => zip_map_std(x_pre, dy, |x, g| if x > 0.0 { g } else { 0.0 }),
        Act::HSwish => zip_map_std(x_pre, dy, |x, g| g * hswish_grad(x)),
    }
}

/// `dy *= act'(x_pre)` in place (turns the output gradient into the input gradient).
pub fn act_backward_inplace(x_pre: ArrayView2<f32>, act: Act, dy: &mut Array2<f32>) {
    assert_eq!(x_pre.dim(), dy.dim(), "act_backward: shape mismatch");
    match act {
        Act::Identity => {}
        Act::Relu => Zip::from(dy).and(&x_pre).for_each(|g, &x| {
            if x <= 0.0 {
                *g = 0.0;
            }
        }),
        Act::HSwish => Zip::from(dy)
            .and(&x_pre)
            .for_each(|g, &x| *g *= hswish_grad(x)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::gradcheck::{check_grad, dot_loss, randn, uniform};
    use crate::rng::Rng;

    /// Points in [-5, 5] kept at least `margin` away from the kinks 0 and +-3.
    fn away_from_kinks(rng: &mut Rng, rows: usize, cols: usize, margin: f32) -> Array2<f32> {
        let mut x = uniform(rng, rows, cols, -5.0, 5.0);
        x.mapv_inplace(|v| {
            let mut v = v;
            for kink in [-3.0f32, 0.0, 3.0] {
                if (v - kink).abs() < margin {
                    v = kink + if v >= kink { margin } else { -margin };
                }
            }
            v
        });
        x
    }

    #[test]
    fn scalar_values() {
        assert_eq!(hswish(-4.0), 0.0);
        assert_eq!(hswish(4.0), 4.0);
        assert!((hswish(1.0) - 4.0 / 6.0).abs() < 1e-7);
        assert_eq!(hsigmoid(-3.5), 0.0);
        assert_eq!(hsigmoid(3.5), 1.0);
        assert!((hsigmoid(0.0) - 0.5).abs() < 1e-7);
        assert_eq!(relu6(7.0), 6.0);
        assert_eq!(relu6(-1.0), 0.0);
        assert_eq!(hswish_grad(-3.5), 0.0);
        assert_eq!(hswish_grad(3.5), 1.0);
        assert!((hswish_grad(0.0) - 0.5).abs() < 1e-7);
        assert_eq!(hsigmoid_grad(0.0), 1.0 / 6.0);
        assert_eq!(hsigmoid_grad(3.5), 0.0);
    }

    #[test]
    fn gradcheck_each_activation() {
        let eps = 1e-2;
        let mut rng = Rng::new(10);
        let x = away_from_kinks(&mut rng, 9, 7, 3.0 * eps);
        let r = randn(&mut rng, 9, 7);
        for act in [Act::Identity, Act::Relu, Act::HSwish] {
            let dx = act_backward(x.view(), act, r.view());
            check_grad(&format!("{act:?} dx"), &x, &dx, eps, |x| {
                dot_loss(act_forward(x.view(), act).view(), r.view())
            });
        }
    }

    #[test]
    fn inplace_variants_match() {
        let mut rng = Rng::new(11);
        let x = randn(&mut rng, 4, 6).mapv(|v| 3.0 * v);
        let dy = randn(&mut rng, 4, 6);
        for act in [Act::Identity, Act::Relu, Act::HSwish] {
            let mut y = x.clone();
            act_forward_inplace(&mut y, act);
            assert_eq!(y, act_forward(x.view(), act));
            let mut g = dy.clone();
            act_backward_inplace(x.view(), act, &mut g);
            assert_eq!(g, act_backward(x.view(), act, dy.view()));
        }
    }

    #[test]
    fn accepts_strided_views() {
        let mut rng = Rng::new(12);
        let x = randn(&mut rng, 5, 8);
        let xv = x.slice(ndarray::s![.., ..;2]);
        let y = act_forward(xv, Act::HSwish);
        for ((i, j), &v) in y.indexed_iter() {
            assert_eq!(v, hswish(x[[i, 2 * j]]));
        }
    }
}
