//! Supernet training: the sandwich rule with in-place distillation (per step, the largest
//! subnet learns from the labels, then the smallest and `random_subnets` random subnets
//! learn from the largest's soft outputs; one optimizer step per batch), SGD with Nesterov
//! momentum, warm-up then cosine learning rate, label smoothing, weight decay on
//! convolution and linear weights only, random-crop and flip augmentation.
//!
//! Both cores are used by data parallelism: the batch is split into one shard per thread,
//! each shard runs the whole sandwich on its images (BatchNorm statistics per shard, as
//! with several GPUs without synchronised BN), and the shards' gradients are averaged.

use std::time::Instant;

use ndarray::Array2;
use rayon::prelude::*;
use supernet_format::{Space, SubnetConfig};

use crate::data::{Augment, Dataset, Normalization, fill_batch};
use crate::layers::{cross_entropy_smooth, soft_cross_entropy, softmax_rows};
use crate::rng::Rng;
use crate::supernet::{BatchStat, BnMode, Grads, Supernet};

/// How long to train.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Budget {
    /// Passes over the training images (may be fractional). Repeatable with the seed.
    Epochs(f64),
    /// Wall-clock minutes; the schedule follows elapsed time, so the number of steps
    /// depends on the machine.
    Minutes(f64),
}

/// Training hyper-parameters.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    pub budget: Budget,
    pub batch_size: usize,
    /// Peak learning rate (after warm-up).
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    pub label_smoothing: f32,
    /// Fraction of the budget spent warming the learning rate up linearly.
    pub warmup: f32,
    /// Random subnets per step besides the largest and the smallest.
    pub random_subnets: usize,
    pub augment: Augment,
    pub seed: u64,
    /// Data-parallel shards (one per thread).
    pub threads: usize,
}

impl TrainOptions {
    pub fn new(budget: Budget, seed: u64, threads: usize) -> TrainOptions {
        TrainOptions {
            budget,
            batch_size: 64,
            lr: 0.025,
            momentum: 0.9,
            weight_decay: 4e-5,
            label_smoothing: 0.1,
            warmup: 0.03,
            random_subnets: 2,
            augment: Augment {
                pad: 2,
                hflip: true,
            },
            seed,
            threads: threads.max(1),
        }
    }
}

/// What a progress callback sees.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    pub step: usize,
    pub epoch: f64,
    /// Fraction of the budget done, in [0, 1].
    pub fraction: f64,
    /// Smoothed label loss of the largest subnet.
    pub loss: f32,
    /// Smoothed distillation loss of the other subnets.
    pub kd_loss: f32,
    /// Smoothed training accuracy of the largest subnet.
    pub accuracy: f32,
    pub lr: f32,
    /// Training images per second (each image counted once per step).
    pub images_per_sec: f64,
    pub elapsed_s: f64,
}

/// Summary of a finished run.
#[derive(Clone, Copy, Debug)]
pub struct TrainReport {
    pub steps: usize,
    pub images: usize,
    pub epochs: f64,
    pub seconds: f64,
    pub images_per_sec: f64,
    pub final_loss: f32,
    pub final_accuracy: f32,
}

/// A uniformly random config (each slot's kernel and expand, each stage's depth).
pub fn random_config(space: &Space, rng: &mut Rng) -> SubnetConfig {
    let mut c = SubnetConfig::largest(space);
    for v in c.ks_mut() {
        *v = rng.choose(space.ks.as_slice());
    }
    for v in c.e_mut() {
        *v = rng.choose(space.e.as_slice());
    }
    for v in c.d_mut() {
        *v = rng.choose(space.d.as_slice());
    }
    c
}

/// Learning rate at `fraction` of the budget: linear warm-up, then cosine to zero.
pub fn lr_at(opts: &TrainOptions, fraction: f64) -> f32 {
    let w = opts.warmup as f64;
    let f = fraction.clamp(0.0, 1.0);
    let v = if f < w {
        f / w
    } else {
        0.5 * (1.0 + (std::f64::consts::PI * (f - w) / (1.0 - w)).cos())
    };
    (opts.lr as f64 * v) as f32
}

struct Shard {
    grads: Grads,
    rng: Rng,
    buf: Vec<f32>,
}

struct ShardOut {
    loss: f32,
    kd_loss: f32,
    correct: usize,
    stats: Vec<Vec<BatchStat>>,
}

/// One shard's sandwich step: forward and backward of every subnet on its images.
fn shard_step(
    net: &Supernet,
    shard: &mut Shard,
    data: &Dataset,
    norm: &Normalization,
    idx: &[usize],
    configs: &[SubnetConfig],
    opts: &TrainOptions,
) -> ShardOut {
    for g in shard.grads.iter_mut() {
        g.fill(0.0);
    }
    let n = idx.len();
    let ch = data.channels;
    let px = data.rows * data.cols;
    shard.buf.resize(n * px * ch, 0.0);
    fill_batch(
        data,
        idx,
        norm,
        Some(&opts.augment),
        &mut shard.rng,
        &mut shard.buf,
    );
    let x = Array2::from_shape_vec((n * px, ch), shard.buf.clone()).expect("batch shape");
    let labels: Vec<u8> = idx.iter().map(|&i| data.labels[i]).collect();

    let mut stats = Vec::with_capacity(configs.len());
    let (logits, tape, st) = net.forward(x.clone(), n, &configs[0], BnMode::Train { tape: true });
    stats.push(st);
    let (loss, dl, correct) = cross_entropy_smooth(logits.view(), &labels, opts.label_smoothing);
    net.backward(tape.expect("tape"), dl, &mut shard.grads);
    let soft = softmax_rows(logits.view());
    let mut kd_loss = 0.0;
    for cfg in &configs[1..] {
        let (lg, tape, st) = net.forward(x.clone(), n, cfg, BnMode::Train { tape: true });
        stats.push(st);
        let (kl, d) = soft_cross_entropy(lg.view(), soft.view());
        kd_loss += kl / (configs.len() - 1) as f32;
        net.backward(tape.expect("tape"), d, &mut shard.grads);
    }
    ShardOut {
        loss,
        kd_loss,
        correct,
        stats,
    }
}

/// SGD with Nesterov momentum (PyTorch semantics) and decoupled-from-BN weight decay.
pub struct Sgd {
    velocity: Grads,
    momentum: f32,
    weight_decay: f32,
}

impl Sgd {
    pub fn new(net: &Supernet, momentum: f32, weight_decay: f32) -> Sgd {
        Sgd {
            velocity: net.zero_grads(),
            momentum,
            weight_decay,
        }
    }

    pub fn step(&mut self, net: &mut Supernet, grads: &Grads, lr: f32) {
        let mu = self.momentum;
        let wd = self.weight_decay;
        net.params
            .par_iter_mut()
            .zip(self.velocity.par_iter_mut())
            .zip(grads.par_iter())
            .for_each(|((p, v), g)| {
                let decay = if p.decay { wd } else { 0.0 };
                let ps = p.data.as_slice_mut().expect("contiguous");
                let vs = v.as_slice_mut().expect("contiguous");
                let gs = g.as_slice().expect("contiguous");
                for ((w, v), &g) in ps.iter_mut().zip(vs.iter_mut()).zip(gs) {
                    let g = g + decay * *w;
                    *v = mu * *v + g;
                    *w -= lr * (g + mu * *v);
                }
            });
    }
}

/// Trains `net` on `data` and returns a summary; `progress` is called after every step.
pub fn train(
    net: &mut Supernet,
    data: &Dataset,
    norm: &Normalization,
    opts: &TrainOptions,
    mut progress: impl FnMut(&Progress),
) -> Result<TrainReport, TrainError> {
    if data.len() < 2 {
        return Err(TrainError::TooFewImages(data.len()));
    }
    let space = net.space;
    let mut rng = Rng::new(opts.seed);
    // Every shard gets at least two images (BatchNorm needs a batch).
    let batch = opts.batch_size.clamp(2, data.len());
    let shards_n = opts.threads.clamp(1, batch / 2);
    let mut shards: Vec<Shard> = (0..shards_n)
        .map(|i| Shard {
            grads: net.zero_grads(),
            rng: rng.fork(1000 + i as u64),
            buf: vec![],
        })
        .collect();
    let mut sgd = Sgd::new(net, opts.momentum, opts.weight_decay);

    let steps_per_epoch = (data.len() / batch).max(1);
    let total_steps = match opts.budget {
        Budget::Epochs(e) => Some(((e * steps_per_epoch as f64).round() as usize).max(1)),
        Budget::Minutes(_) => None,
    };
    let start = Instant::now();
    let largest = SubnetConfig::largest(&space);
    let smallest = SubnetConfig::smallest(&space);
    let mut order: Vec<usize> = (0..data.len()).collect();
    let mut cursor = order.len();
    let (mut loss_avg, mut kd_avg, mut acc_avg) = (0f32, 0f32, 0f32);
    let mut step = 0usize;
    loop {
        let elapsed = start.elapsed().as_secs_f64();
        let fraction = match (opts.budget, total_steps) {
            (_, Some(t)) => step as f64 / t as f64,
            (Budget::Minutes(m), None) => elapsed / (m * 60.0),
            _ => 1.0,
        };
        if fraction >= 1.0 {
            break;
        }
        let lr = lr_at(opts, fraction);
        if cursor + batch > order.len() {
            rng.shuffle(&mut order);
            cursor = 0;
        }
        let idx = &order[cursor..cursor + batch];
        cursor += batch;
        let mut configs = vec![largest, smallest];
        for _ in 0..opts.random_subnets {
            configs.push(random_config(&space, &mut rng));
        }
        let per = batch / shards_n;
        let net_ref: &Supernet = net;
        let outs: Vec<ShardOut> = shards
            .par_iter_mut()
            .enumerate()
            .map(|(i, shard)| {
                let hi = if i + 1 == shards_n {
                    batch
                } else {
                    (i + 1) * per
                };
                shard_step(
                    net_ref,
                    shard,
                    data,
                    norm,
                    &idx[i * per..hi],
                    &configs,
                    opts,
                )
            })
            .collect();
        // Average the shards' gradients into shard 0.
        if shards_n > 1 {
            let (first, rest) = shards.split_at_mut(1);
            let scale = 1.0 / shards_n as f32;
            first[0]
                .grads
                .par_iter_mut()
                .enumerate()
                .for_each(|(pi, g)| {
                    for other in rest.iter() {
                        *g += &other.grads[pi];
                    }
                    *g *= scale;
                });
        }
        sgd.step(net, &shards[0].grads, lr);
        for c in 0..configs.len() {
            let per_cfg: Vec<Vec<BatchStat>> = outs.iter().map(|o| o.stats[c].clone()).collect();
            net.update_running(&per_cfg);
        }
        let loss = outs.iter().map(|o| o.loss).sum::<f32>() / shards_n as f32;
        let kd = outs.iter().map(|o| o.kd_loss).sum::<f32>() / shards_n as f32;
        if !(loss.is_finite() && kd.is_finite()) {
            return Err(TrainError::Diverged { step: step + 1, lr });
        }
        let acc = outs.iter().map(|o| o.correct).sum::<usize>() as f32 / batch as f32;
        let beta = if step < 20 {
            1.0 / (step as f32 + 1.0)
        } else {
            0.05
        };
        loss_avg += beta * (loss - loss_avg);
        kd_avg += beta * (kd - kd_avg);
        acc_avg += beta * (acc - acc_avg);
        step += 1;
        let elapsed = start.elapsed().as_secs_f64();
        progress(&Progress {
            step,
            epoch: (step * batch) as f64 / data.len() as f64,
            fraction: match total_steps {
                Some(t) => step as f64 / t as f64,
                None => fraction,
            },
            loss: loss_avg,
            kd_loss: kd_avg,
            accuracy: acc_avg,
            lr,
            images_per_sec: (step * batch) as f64 / elapsed.max(1e-9),
            elapsed_s: elapsed,
        });
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(TrainReport {
        steps: step,
        images: step * batch,
        epochs: (step * batch) as f64 / data.len() as f64,
        seconds,
        images_per_sec: (step * batch) as f64 / seconds.max(1e-9),
        final_loss: loss_avg,
        final_accuracy: acc_avg,
    })
}

/// Why training stopped without a result.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TrainError {
    /// Fewer than two training images.
    TooFewImages(usize),
    /// The loss became NaN or infinite (learning rate too high?).
    Diverged { step: usize, lr: f32 },
}

impl std::fmt::Display for TrainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrainError::TooFewImages(n) => {
                write!(f, "training needs at least 2 images, it has {n}")
            }
            TrainError::Diverged { step, lr } => write!(
                f,
                "training diverged at step {step} (loss is not finite, learning rate {lr}); try a lower --lr. Nothing was written"
            ),
        }
    }
}

impl std::error::Error for TrainError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lr_warms_up_then_decays_to_zero() {
        let o = TrainOptions::new(Budget::Epochs(1.0), 0, 1);
        assert_eq!(lr_at(&o, 0.0), 0.0);
        assert!((lr_at(&o, o.warmup as f64) - o.lr).abs() < 1e-6);
        assert!(lr_at(&o, 0.5) < o.lr && lr_at(&o, 0.5) > 0.0);
        assert!(lr_at(&o, 1.0).abs() < 1e-6);
    }

    #[test]
    fn divergence_is_an_error_and_tiny_data_works() {
        use crate::data::Dataset;
        let space = Space::ofa_mobilenet_v3(0.25, 1, 8, 3).unwrap();
        let data = Dataset {
            images: (0..64 * 3).map(|i| (i * 37 % 256) as u8).collect(),
            labels: vec![0, 1, 2],
            rows: 8,
            cols: 8,
            channels: 1,
            classes: 3,
        };
        let norm = Normalization::from_dataset(&data);
        // 3 images, 4 threads: shards are clamped so that each gets two or more images
        let mut opts = TrainOptions::new(Budget::Epochs(6.0), 1, 4);
        let mut net = Supernet::new(&space, &mut Rng::new(1));
        let r = train(&mut net, &data, &norm, &opts, |_| {}).unwrap();
        assert!(r.steps >= 1);
        opts.lr = 1e30;
        let mut net = Supernet::new(&space, &mut Rng::new(1));
        let e = train(&mut net, &data, &norm, &opts, |_| {}).unwrap_err();
        assert!(matches!(e, TrainError::Diverged { .. }), "{e}");
        let one = data.subset(&[0]);
        assert_eq!(
            train(&mut net, &one, &norm, &opts, |_| {}).unwrap_err(),
            TrainError::TooFewImages(1)
        );
    }

    #[test]
    fn random_configs_are_valid_and_vary() {
        let s = Space::ofa_mobilenet_v3(1.0, 1, 28, 10).unwrap();
        let mut rng = Rng::new(3);
        let a = random_config(&s, &mut rng);
        let b = random_config(&s, &mut rng);
        a.validate(&s).unwrap();
        b.validate(&s).unwrap();
        assert_ne!(a, b);
    }
}
