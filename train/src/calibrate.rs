//! BatchNorm recalibration per subnet and held-out accuracy.
//!
//! A subnet of a supernet sees different activation statistics than the mixture the shared
//! running statistics accumulated during training, so before it is stored, its BN mean and
//! variance are re-estimated on held-out training images (never the test split): a
//! training-mode forward pass per batch, batch means and biased variances averaged over
//! batches weighted by batch size (as the original code's `set_running_statistics`).

use ndarray::{Array2, s};
use rayon::prelude::*;
use supernet_format::SubnetConfig;

use crate::data::{Dataset, Normalization, fill_batch};
use crate::rng::Rng;
use crate::supernet::{BnMode, RunningBn, Supernet};

fn batch(ds: &Dataset, idx: &[usize], norm: &Normalization) -> Array2<f32> {
    let px = ds.rows * ds.cols;
    let mut buf = vec![0f32; idx.len() * px * ds.channels];
    // no augmentation: the rng is not used
    fill_batch(ds, idx, norm, None, &mut Rng::new(0), &mut buf);
    Array2::from_shape_vec((idx.len() * px, ds.channels), buf).expect("batch shape")
}

/// Re-estimates the BN statistics of `config` on `indices` of `ds` and returns its folded
/// BN set (FORMAT.md 5.5).
pub fn calibrate_bn(
    net: &Supernet,
    config: &SubnetConfig,
    ds: &Dataset,
    indices: &[usize],
    norm: &Normalization,
    batch_size: usize,
) -> Vec<f32> {
    assert!(!indices.is_empty(), "calibrate_bn: no images");
    let per_batch: Vec<(usize, Vec<crate::supernet::BatchStat>)> = indices
        .par_chunks(batch_size.max(2))
        .map(|idx| {
            let x = batch(ds, idx, norm);
            let (_, _, stats) = net.forward(x, idx.len(), config, BnMode::Train { tape: false });
            (idx.len(), stats)
        })
        .collect();
    let total: usize = per_batch.iter().map(|(n, _)| n).sum();
    let mut stats: Vec<RunningBn> = net.running.clone();
    let mut seen = vec![false; stats.len()];
    for (n, batch_stats) in &per_batch {
        let w = *n as f32 / total as f32;
        for (layer, mean, var, _) in batch_stats {
            let c = mean.len();
            let st = &mut stats[*layer];
            if !seen[*layer] {
                st.mean.slice_mut(s![..c]).fill(0.0);
                st.var.slice_mut(s![..c]).fill(0.0);
                seen[*layer] = true;
            }
            st.mean.slice_mut(s![..c]).scaled_add(w, mean);
            st.var.slice_mut(s![..c]).scaled_add(w, var);
        }
    }
    net.fold_bn(config, &stats)
}

/// Fraction of `indices` of `ds` that `config` classifies correctly with BN set `bn`.
pub fn accuracy(
    net: &Supernet,
    config: &SubnetConfig,
    bn: &[f32],
    ds: &Dataset,
    indices: &[usize],
    norm: &Normalization,
    batch_size: usize,
) -> f32 {
    let correct: usize = indices
        .par_chunks(batch_size.max(1))
        .map(|idx| {
            let x = batch(ds, idx, norm);
            let (logits, _, _) = net.forward(x, idx.len(), config, BnMode::Eval(bn));
            logits
                .outer_iter()
                .zip(idx)
                .filter(|(row, i)| argmax(row) == ds.labels[**i] as usize)
                .count()
        })
        .sum();
    correct as f32 / indices.len().max(1) as f32
}

fn argmax(row: &ndarray::ArrayView1<f32>) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}
