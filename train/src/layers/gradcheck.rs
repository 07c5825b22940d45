//! Test helpers: random tensors and a central-difference gradient checker.

use ndarray::{Array, Array1, Array2, ArrayView2, Dimension};

use crate::rng::Rng;

/// `[rows, cols]` of standard normal samples.
pub fn randn(rng: &mut Rng, rows: usize, cols: usize) -> Array2<f32> {
    Array2::from_shape_simple_fn((rows, cols), || rng.normal())
}

/// `[n]` of standard normal samples.
pub fn randn1(rng: &mut Rng, n: usize) -> Array1<f32> {
    Array1::from_shape_simple_fn(n, || rng.normal())
}

/// `[rows, cols]` uniform in `[lo, hi)`.
pub fn uniform(rng: &mut Rng, rows: usize, cols: usize, lo: f32, hi: f32) -> Array2<f32> {
    Array2::from_shape_simple_fn((rows, cols), || lo + (hi - lo) * rng.next_f32())
}

/// The scalar test loss `L = sum(y * r)`, accumulated in f64.
pub fn dot_loss(y: ArrayView2<f32>, r: ArrayView2<f32>) -> f64 {
    assert_eq!(y.dim(), r.dim(), "dot_loss: shape mismatch");
    y.iter()
        .zip(r.iter())
        .map(|(&a, &b)| a as f64 * b as f64)
        .sum()
}

/// Central-difference check of `analytic` = dL/dp for every element of `p`, with the default
/// tolerance `|num - ana| <= 1e-3 + 2e-2 * max(|num|, |ana|)`.
pub fn check_grad<D: Dimension>(
    name: &str,
    p: &Array<f32, D>,
    analytic: &Array<f32, D>,
    eps: f32,
    f: impl Fn(&Array<f32, D>) -> f64,
) {
    check_grad_tol(name, p, analytic, eps, 2e-2, 1e-3, f)
}

/// [`check_grad`] with explicit relative and absolute tolerances.
pub fn check_grad_tol<D: Dimension>(
    name: &str,
    p: &Array<f32, D>,
    analytic: &Array<f32, D>,
    eps: f32,
    rel: f64,
    abs: f64,
    f: impl Fn(&Array<f32, D>) -> f64,
) {
    assert_eq!(
        p.shape(),
        analytic.shape(),
        "{name}: gradient shape {:?} differs from parameter shape {:?}",
        analytic.shape(),
        p.shape()
    );
    let mut q = p.as_standard_layout().into_owned();
    let ana: Vec<f32> = analytic.iter().copied().collect();
    let mut failures = Vec::new();
    let mut checked_nonzero = 0usize;
    for (i, &a) in ana.iter().enumerate() {
        let orig = q.as_slice().unwrap()[i];
        let (up, down) = (orig + eps, orig - eps);
        q.as_slice_mut().unwrap()[i] = up;
        let lp = f(&q);
        q.as_slice_mut().unwrap()[i] = down;
        let lm = f(&q);
        q.as_slice_mut().unwrap()[i] = orig;
        let num = (lp - lm) / (up as f64 - down as f64);
        let a = a as f64;
        if num.abs() > abs {
            checked_nonzero += 1;
        }
        if (num - a).abs() > abs + rel * num.abs().max(a.abs()) {
            failures.push(format!("  [{i}] numeric {num:.6} analytic {a:.6}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {} of {} gradient entries differ:\n{}",
        failures.len(),
        ana.len(),
        failures[..failures.len().min(20)].join("\n")
    );
    // Guard against vacuous checks (an all-zero gradient on both sides).
    assert!(
        ana.is_empty() || checked_nonzero > 0,
        "{name}: numeric gradient is identically ~0"
    );
}
