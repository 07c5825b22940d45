//! `supernet train`: data, space, sandwich-rule training, subnet choice and BN
//! recalibration on held-out images, the artifact, and the test-split table through the
//! runtime.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use supernet_format::arch::cost;
use supernet_format::{Prep, SubnetConfig};
use supernet_train::calibrate::{accuracy, calibrate_bn};
use supernet_train::data::{Normalization, holdout_indices, load_train_test};
use supernet_train::export::{Stored, check_writable, export};
use supernet_train::rng::Rng;
use supernet_train::search::{SearchOptions, choose_subnets};
use supernet_train::spacefile::{DataShape, SpaceFile};
use supernet_train::supernet::Supernet;
use supernet_train::trainer::{Budget, Progress, TrainOptions, train};

use crate::eval_cmd;
use crate::modelfile::ModelFile;
use crate::switch_cmd;

/// `println!` that ignores a closed or failing stdout: training goes on and the artifact is
/// still written when the output is piped into `head` or a full disk.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout().lock(), $($t)*);
    }};
}

/// Training budget used when neither --epochs nor --minutes is given.
pub const DEFAULT_MINUTES: f64 = 7.0;
/// Search space used when neither --preset nor --space is given.
pub const DEFAULT_PRESET: &str = "w0.5";

#[derive(Args)]
pub struct TrainArgs {
    /// Directory with the IDX files: train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz],
    /// t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz] (MNIST format; gzip optional).
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Where to write the artifact (refuses to replace an existing file without --force).
    #[arg(long, value_name = "MODEL")]
    out: PathBuf,
    /// A shipped search space: w0.5 (OFA MobileNetV3 at width 0.5, the default), w1.0 (the
    /// original width) or micro (narrow stages and head, depth 1-3: under 1 MB and a 128 KB
    /// arena, for microcontrollers).
    #[arg(long, value_name = "NAME", conflicts_with = "space")]
    preset: Option<String>,
    /// A search space file (TOML; see train/presets/*.toml for the keys).
    #[arg(long, value_name = "FILE")]
    space: Option<PathBuf>,
    /// Train for N passes over the training images (fractions allowed); repeatable with --seed.
    #[arg(long, value_name = "N", conflicts_with = "minutes", value_parser = budget)]
    epochs: Option<f64>,
    /// Train for N minutes of wall time (the learning-rate schedule follows the clock).
    /// Default when neither --epochs nor --minutes is given: 7.
    #[arg(long, value_name = "N", value_parser = budget)]
    minutes: Option<f64>,
    /// Random seed (initialisation, data order, augmentation, sampled subnets, held-out split).
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=256))]
    pub threads: Option<u64>,
    /// Images per optimizer step (split over the threads).
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u64).range(2..=8192))]
    batch_size: u64,
    /// Peak learning rate (SGD, Nesterov momentum 0.9, warm-up then cosine).
    #[arg(long, value_name = "LR", default_value_t = 0.025, value_parser = positive_f32)]
    lr: f32,
    /// Fraction of the budget spent warming the learning rate up.
    #[arg(long, value_name = "F", default_value_t = 0.03)]
    warmup: f32,
    /// Weight decay (convolution and linear weights only, not BN or biases).
    #[arg(long, value_name = "WD", default_value_t = 4e-5)]
    weight_decay: f32,
    /// Label smoothing of the largest subnet's loss.
    #[arg(long, value_name = "EPS", default_value_t = 0.1)]
    label_smoothing: f32,
    /// Random subnets per step besides the largest and the smallest (sandwich rule).
    #[arg(long, value_name = "N", default_value_t = 2)]
    random_subnets: usize,
    /// Subnets to store in the artifact: smallest, largest, and the best found near evenly
    /// spaced multiply-add targets between them.
    #[arg(long, value_name = "N", default_value_t = 6, value_parser = clap::value_parser!(u64).range(2..=64))]
    subnets: u64,
    /// Candidates evaluated on held-out images per multiply-add target.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1000))]
    candidates: u64,
    /// Training images held out for BN recalibration, the subnet search and the stored
    /// accuracies (never the test split).
    #[arg(long, value_name = "N", default_value_t = 5000)]
    holdout: usize,
    /// Held-out images used to recalibrate BN (the rest measure accuracy).
    #[arg(long, value_name = "N", default_value_t = 2000)]
    calib_images: usize,
    /// Use only the first N training images (quick experiments and tests).
    #[arg(long, value_name = "N")]
    train_limit: Option<usize>,
    /// Evaluate only the first N test images in the final table.
    #[arg(long, value_name = "N")]
    eval_limit: Option<usize>,
    /// Replace MODEL if it exists.
    #[arg(long)]
    force: bool,
}

fn positive_f64(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(format!("{s} must be a positive number"))
    }
}

/// A training budget: positive, at least 1e-6 and at most 100000 (epochs or minutes).
fn budget(s: &str) -> Result<f64, String> {
    let v = positive_f64(s)?;
    if (1e-6..=1e5).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{s} is outside 0.000001 to 100000"))
    }
}

fn positive_f32(s: &str) -> Result<f32, String> {
    positive_f64(s).map(|v| v as f32)
}

pub fn run(a: TrainArgs, threads: usize) -> anyhow::Result<()> {
    let t_all = Instant::now();
    // Everything that can be checked before the long work is checked here.
    if a.out.is_dir() {
        bail!("--out {} is a directory", a.out.display());
    }
    if a.out.exists() && !a.force {
        bail!("{} exists; pass --force to replace it", a.out.display());
    }
    check_writable(&a.out)?;
    if !(0.0..1.0).contains(&a.warmup) {
        bail!("--warmup {} must be in [0, 1)", a.warmup);
    }
    if !(a.weight_decay >= 0.0 && a.weight_decay.is_finite()) {
        bail!(
            "--weight-decay {} must be a non-negative number",
            a.weight_decay
        );
    }
    if !(0.0..1.0).contains(&a.label_smoothing) {
        bail!("--label-smoothing {} must be in [0, 1)", a.label_smoothing);
    }
    if a.train_limit.is_some_and(|l| l < 2) {
        bail!("--train-limit must be at least 2");
    }
    if a.eval_limit == Some(0) {
        bail!("--eval-limit must be at least 1");
    }
    let (file, origin) = match (&a.preset, &a.space) {
        (_, Some(p)) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read space file {}", p.display()))?;
            (
                SpaceFile::parse(&text, &p.display().to_string()).map_err(anyhow::Error::msg)?,
                p.display().to_string(),
            )
        }
        (name, None) => {
            let name = name.as_deref().unwrap_or(DEFAULT_PRESET);
            (
                SpaceFile::preset(name).map_err(anyhow::Error::msg)?,
                format!("preset {name}"),
            )
        }
    };

    // Data
    let (full, test) = load_train_test(&a.data)?;
    let mut train_all = full;
    if let Some(l) = a.train_limit {
        let idx: Vec<usize> = (0..l.min(train_all.len())).collect();
        train_all = train_all.subset(&idx);
    }
    if a.holdout == 0 || a.holdout >= train_all.len() {
        bail!(
            "--holdout {} must be between 1 and {} (the training images)",
            a.holdout,
            train_all.len() - 1
        );
    }
    if a.calib_images == 0 || a.calib_images >= a.holdout {
        bail!(
            "--calib-images {} must be between 1 and --holdout - 1 = {}",
            a.calib_images,
            a.holdout - 1
        );
    }
    let (train_idx, hold_idx) = holdout_indices(train_all.len(), a.holdout, a.seed);
    let train_set = train_all.subset(&train_idx);
    let held = train_all.subset(&hold_idx);
    let calib: Vec<usize> = (0..a.calib_images).collect();
    let val: Vec<usize> = (a.calib_images..held.len()).collect();
    let norm = Normalization::from_dataset(&train_set);
    say!(
        "data {}: {} training images ({} for training, {} held out), {} test images, {}x{}x{}, {} classes",
        a.data.display(),
        train_all.len(),
        train_set.len(),
        held.len(),
        test.len(),
        train_all.rows,
        train_all.cols,
        train_all.channels,
        train_all.classes
    );

    // Space
    let shape = DataShape {
        channels: train_all.channels as u32,
        rows: train_all.rows as u32,
        cols: train_all.cols as u32,
        classes: train_all.classes.max(test.classes) as u32,
    };
    let space = file.build(shape, &origin).map_err(anyhow::Error::msg)?;
    let big = cost(&space, &SubnetConfig::largest(&space));
    let small = cost(&space, &SubnetConfig::smallest(&space));

    let mut rng = Rng::new(a.seed);
    let mut net = Supernet::new(&space, &mut rng);
    say!(
        "space {origin}: width {}, kernel {}, expand {}, depth {}; largest subnet {:.2} M MACs, smallest {:.2} M MACs; {} shared parameters",
        space.width_mult,
        space.ks,
        space.e,
        space.d,
        big.macs as f64 / 1e6,
        small.macs as f64 / 1e6,
        net.num_params()
    );

    // Train
    let budget = match (a.epochs, a.minutes) {
        (Some(e), _) => Budget::Epochs(e),
        (None, Some(m)) => Budget::Minutes(m),
        (None, None) => Budget::Minutes(DEFAULT_MINUTES),
    };
    let mut opts = TrainOptions::new(budget, a.seed, threads);
    opts.batch_size = a.batch_size as usize;
    opts.lr = a.lr;
    if !(0.0..1.0).contains(&a.warmup) {
        bail!("--warmup {} must be in [0, 1)", a.warmup);
    }
    if !(a.weight_decay >= 0.0 && a.weight_decay.is_finite()) {
        bail!(
            "--weight-decay {} must be a non-negative number",
            a.weight_decay
        );
    }
    if !(0.0..1.0).contains(&a.label_smoothing) {
        bail!("--label-smoothing {} must be in [0, 1)", a.label_smoothing);
    }
    opts.warmup = a.warmup;
    opts.weight_decay = a.weight_decay;
    opts.label_smoothing = a.label_smoothing;
    opts.random_subnets = a.random_subnets;
    say!(
        "training: {}, batch {}, {} threads, sandwich rule (largest on labels; smallest + {} random on its soft outputs)",
        match budget {
            Budget::Epochs(e) => format!("{e} epoch{}", if e == 1.0 { "" } else { "s" }),
            Budget::Minutes(m) => format!("{m} minute{}", if m == 1.0 { "" } else { "s" }),
        },
        opts.batch_size,
        threads,
        opts.random_subnets
    );
    let tty = std::io::stderr().is_terminal();
    let bar = if tty {
        let b = ProgressBar::new(1000);
        b.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] [{bar:30}] {percent:>3}% ETA {eta} {msg}",
            )
            .expect("template")
            .progress_chars("=> "),
        );
        Some(b)
    } else {
        None
    };
    let mut next_log = 0.1;
    let msg = |p: &Progress| {
        format!(
            "ep {:.2} loss {:.3} kd {:.3} acc {:.1}% lr {:.4} {:.0} img/s",
            p.epoch,
            p.loss,
            p.kd_loss,
            100.0 * p.accuracy,
            p.lr,
            p.images_per_sec
        )
    };
    let report = train(&mut net, &train_set, &norm, &opts, |p| {
        if let Some(b) = &bar {
            b.set_position((p.fraction * 1000.0) as u64);
            b.set_message(msg(p));
        } else if p.fraction >= next_log {
            say!(
                "  {:>3.0}% [{:>5.0} s] {}",
                100.0 * p.fraction,
                p.elapsed_s,
                msg(p)
            );
            next_log += 0.1;
        }
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let report = report?;
    say!(
        "trained {} steps ({:.2} epochs, {} images) in {:.1} s: {:.0} images/s; largest subnet's training accuracy {:.1}%",
        report.steps,
        report.epochs,
        report.images,
        report.seconds,
        report.images_per_sec,
        100.0 * report.final_accuracy
    );

    // Subnets to store
    let t = Instant::now();
    say!(
        "choosing {} subnets on held-out images ({} candidate{} per target, each judged with BN recalibrated on {} images and accuracy on {}):",
        a.subnets,
        a.candidates,
        if a.candidates == 1 { "" } else { "s" },
        calib.len().min(500),
        val.len().min(1000)
    );
    let choices = choose_subnets(
        &net,
        &held,
        &norm,
        &calib,
        &val,
        &SearchOptions {
            count: a.subnets as usize,
            candidates: a.candidates as usize,
            seed: a.seed,
            batch_size: 250,
            search_calib: 500,
            search_val: 1000,
        },
        |line| say!("{line}"),
    );
    let stored: Vec<Stored> = choices
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let bn = calibrate_bn(&net, &c.config, &held, &calib, &norm, 250);
            let acc = accuracy(&net, &c.config, &bn, &held, &val, &norm, 250);
            Stored {
                id: i as u32,
                name: c.name.clone(),
                config: c.config,
                bn,
                accuracy: acc,
            }
        })
        .collect();
    let search_s = t.elapsed().as_secs_f64();

    // Artifact
    let prep = Prep::new(1.0 / 255.0, &norm.mean, &norm.std).context("normalisation statistics")?;
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let meta = json!({
        "tool": format!("supernet {}", env!("CARGO_PKG_VERSION")),
        "created_unix": created,
        "dataset": a.data.display().to_string(),
        "space": origin,
        "train_images": train_set.len(),
        "holdout_images": held.len(),
        "calibration_images": calib.len(),
        "seed": a.seed,
        "threads": threads,
        "batch_size": opts.batch_size,
        "lr": opts.lr,
        "steps": report.steps,
        "epochs": report.epochs,
        "train_seconds": report.seconds,
        "images_per_sec": report.images_per_sec,
    });
    let size = export(&net, prep, &stored, Some(meta.to_string()), &a.out, a.force)?;
    say!(
        "stored {} subnets, BN recalibrated per subnet ({:.1} s); wrote {} ({:.2} MB)",
        stored.len(),
        search_s,
        a.out.display(),
        size as f64 / 1e6
    );

    // Test split through the runtime
    let file = ModelFile::open(&a.out)?;
    let model = file.model(&a.out)?;
    let n = a.eval_limit.unwrap_or(test.len()).min(test.len()).max(1);
    let t = Instant::now();
    let results = eval_cmd::evaluate(&model, &test, n)?;
    say!(
        "test split through the no_std runtime ({n} images, {:.1} s):",
        t.elapsed().as_secs_f64()
    );
    say!(
        "{}",
        eval_cmd::table(&results, space.max_depth, n).trim_end()
    );

    // The run-time side: one session switching between the stored subnets
    let images = n.min(300);
    let t = Instant::now();
    let (latencies, steps) = switch_cmd::demo(&model, &test, images)?;
    say!(
        "switching subnets at run time in one session ({:.1} s; also: supernet switch {} --data {}):",
        t.elapsed().as_secs_f64(),
        a.out.display(),
        a.data.display()
    );
    say!(
        "{}",
        switch_cmd::table(&model, &latencies, &steps, images).trim_end()
    );
    say!("total {:.1} s", t_all.elapsed().as_secs_f64());
    Ok(())
}
