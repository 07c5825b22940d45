//! Softmax and the two training losses (label-smoothed and soft-target cross entropy).
//! Per-row work is done in f64 (the logits matrices are tiny).

use ndarray::{Array2, ArrayView2};

/// `(max, ln sum exp(z - max))` of one row, in f64.
fn log_sum_exp(row: &[f32]) -> (f64, f64) {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
    let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
    (max, sum.ln())
}

/// Row-wise softmax of `[N, classes]`.
pub fn softmax_rows(logits: ArrayView2<f32>) -> Array2<f32> {
    let k = logits.ncols();
    let mut out = logits.as_standard_layout().into_owned();
    if k == 0 {
        return out;
    }
    for row in out.as_slice_mut().unwrap().chunks_exact_mut(k) {
        let (max, lse) = log_sum_exp(row);
        for v in row.iter_mut() {
            *v = (*v as f64 - max - lse).exp() as f32;
        }
    }
    out
}

/// Cross entropy with label smoothing `eps` (target `(1 - eps) * onehot + eps / classes`),
/// averaged over the batch. Returns `(loss, dloss/dlogits [N, classes]` (already divided by
/// `N`), `number of rows whose argmax equals the label)`. Ties in the argmax go to the lowest
/// index.
pub fn cross_entropy_smooth(
    logits: ArrayView2<f32>,
    labels: &[u8],
    eps: f32,
) -> (f32, Array2<f32>, usize) {
    let (n, k) = logits.dim();
    assert_eq!(labels.len(), n, "cross_entropy_smooth: one label per row");
    assert!(n > 0 && k > 0, "cross_entropy_smooth: empty logits");
    let ls = logits.as_standard_layout();
    let lsl = ls.as_slice().expect("standard layout");
    let mut grad = Array2::<f32>::zeros((n, k));
    let eps = eps as f64;
    let off = eps / k as f64;
    let on = 1.0 - eps + off;
    let inv_n = 1.0 / n as f64;
    let mut total = 0.0f64;
    let mut correct = 0usize;
    for ((row, grow), &label) in lsl
        .chunks_exact(k)
        .zip(grad.as_slice_mut().unwrap().chunks_exact_mut(k))
        .zip(labels)
    {
        let label = label as usize;
        assert!(
            label < k,
            "cross_entropy_smooth: label {label} >= classes {k}"
        );
        let (max, lse) = log_sum_exp(row);
        let mut best = 0;
        for (j, (&z, g)) in row.iter().zip(grow.iter_mut()).enumerate() {
            let logp = z as f64 - max - lse;
            let t = if j == label { on } else { off };
            total -= t * logp;
            *g = ((logp.exp() - t) * inv_n) as f32;
            if z > row[best] {
                best = j;
            }
        }
        if best == label {
            correct += 1;
        }
    }
    ((total * inv_n) as f32, grad, correct)
}

/// Soft-target cross entropy (in-place distillation):
/// `loss = mean_n sum_j -p_j * log softmax(logits)_j`, with `p` the teacher's probabilities.
/// Returns `(loss, dloss/dlogits [N, classes]` already divided by `N`). The gradient is
/// `(softmax * sum_j p_j - p) / N`, i.e. `(softmax - p) / N` for rows of `p` summing to 1.
pub fn soft_cross_entropy(
    logits: ArrayView2<f32>,
    target_probs: ArrayView2<f32>,
) -> (f32, Array2<f32>) {
    let (n, k) = logits.dim();
    assert_eq!(
        target_probs.dim(),
        (n, k),
        "soft_cross_entropy: targets must be shaped like the logits"
    );
    assert!(n > 0 && k > 0, "soft_cross_entropy: empty logits");
    let ls = logits.as_standard_layout();
    let lsl = ls.as_slice().expect("standard layout");
    let ts = target_probs.as_standard_layout();
    let tsl = ts.as_slice().expect("standard layout");
    let mut grad = Array2::<f32>::zeros((n, k));
    let inv_n = 1.0 / n as f64;
    let mut total = 0.0f64;
    for ((row, trow), grow) in lsl
        .chunks_exact(k)
        .zip(tsl.chunks_exact(k))
        .zip(grad.as_slice_mut().unwrap().chunks_exact_mut(k))
    {
        let (max, lse) = log_sum_exp(row);
        let psum: f64 = trow.iter().map(|&p| p as f64).sum();
        for ((&z, &p), g) in row.iter().zip(trow).zip(grow.iter_mut()) {
            let logq = z as f64 - max - lse;
            total -= p as f64 * logq;
            *g = ((logq.exp() * psum - p as f64) * inv_n) as f32;
        }
    }
    ((total * inv_n) as f32, grad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::gradcheck::{check_grad, randn};
    use crate::rng::Rng;

    #[test]
    fn uniform_logits_give_ln_classes() {
        let logits = Array2::<f32>::from_elem((4, 10), 0.7);
        let (loss, grad, _) = cross_entropy_smooth(logits.view(), &[0, 3, 9, 5], 0.0);
        assert!((loss - 10f32.ln()).abs() < 1e-6, "{loss}");
        // Smoothing does not change the loss of a uniform prediction.
        let (loss_s, _, _) = cross_entropy_smooth(logits.view(), &[0, 3, 9, 5], 0.1);
        assert!((loss_s - 10f32.ln()).abs() < 1e-6, "{loss_s}");
        assert!((grad[[1, 3]] - (0.1 - 1.0) / 4.0).abs() < 1e-7);
        assert!((grad[[1, 4]] - 0.1 / 4.0).abs() < 1e-7);
        let t = Array2::<f32>::from_elem((4, 10), 0.1);
        let (soft, g) = soft_cross_entropy(logits.view(), t.view());
        assert!((soft - 10f32.ln()).abs() < 1e-6);
        assert!(g.iter().all(|v| v.abs() < 1e-7));
    }

    #[test]
    fn label_smoothing_value() {
        // Logits [ln 1, ln 2, ln 1] -> softmax [1/4, 1/2, 1/4]; label 1, eps 0.3, 3 classes:
        // target [0.1, 0.8, 0.1], loss = -(0.1 ln(1/4) + 0.8 ln(1/2) + 0.1 ln(1/4)).
        let logits = ndarray::arr2(&[[0.0f32, 2f32.ln(), 0.0]]);
        let (loss, grad, correct) = cross_entropy_smooth(logits.view(), &[1], 0.3);
        let want = -(0.2 * 0.25f64.ln() + 0.8 * 0.5f64.ln());
        assert!((loss as f64 - want).abs() < 1e-6, "{loss} vs {want}");
        assert_eq!(correct, 1);
        let want_g = [0.25 - 0.1, 0.5 - 0.8, 0.25 - 0.1];
        for (g, w) in grad.iter().zip(want_g) {
            assert!((*g as f64 - w).abs() < 1e-6);
        }
        let (_, _, correct) = cross_entropy_smooth(logits.view(), &[2], 0.3);
        assert_eq!(correct, 0);
    }

    #[test]
    fn counts_correct_argmax() {
        let logits = ndarray::arr2(&[[1.0f32, 3.0, 2.0], [5.0, 0.0, 0.0], [0.0, 0.0, 9.0]]);
        let (_, _, correct) = cross_entropy_smooth(logits.view(), &[1, 0, 1], 0.1);
        assert_eq!(correct, 2);
    }

    #[test]
    fn softmax_rows_sum_to_one_and_are_shift_invariant() {
        let mut rng = Rng::new(70);
        let z = randn(&mut rng, 5, 7).mapv(|v| 10.0 * v);
        let p = softmax_rows(z.view());
        let p2 = softmax_rows(z.mapv(|v| v + 100.0).view());
        for (row, row2) in p.rows().into_iter().zip(p2.rows()) {
            assert!((row.sum() - 1.0).abs() < 1e-5);
            for (a, b) in row.iter().zip(row2.iter()) {
                assert!((a - b).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn gradcheck_cross_entropy_smooth() {
        let mut rng = Rng::new(71);
        let logits = randn(&mut rng, 6, 5).mapv(|v| 2.0 * v);
        let labels: Vec<u8> = (0..6).map(|_| rng.below(5) as u8).collect();
        for eps in [0.0, 0.1] {
            let (_, grad, _) = cross_entropy_smooth(logits.view(), &labels, eps);
            check_grad(&format!("ce eps {eps}"), &logits, &grad, 1e-2, |z| {
                cross_entropy_smooth(z.view(), &labels, eps).0 as f64
            });
        }
    }

    #[test]
    fn gradcheck_soft_cross_entropy() {
        let mut rng = Rng::new(72);
        let logits = randn(&mut rng, 6, 5).mapv(|v| 2.0 * v);
        let teacher = softmax_rows(randn(&mut rng, 6, 5).view());
        let (_, grad) = soft_cross_entropy(logits.view(), teacher.view());
        check_grad("soft ce", &logits, &grad, 1e-2, |z| {
            soft_cross_entropy(z.view(), teacher.view()).0 as f64
        });
        // Matching the teacher's logits minimises the loss: zero gradient there.
        let (_, g0) = soft_cross_entropy(teacher.mapv(f32::ln).view(), teacher.view());
        assert!(g0.iter().all(|v| v.abs() < 1e-6));
    }
}
