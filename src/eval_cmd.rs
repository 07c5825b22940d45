//! `supernet eval`: every stored subnet over the test split, through the no_std runtime
//! (one session and arena per worker thread, the model shared read-only).

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use rayon::prelude::*;
use serde_json::json;
use supernet_runtime::{Model, Session, argmax};
use supernet_train::data::{Dataset, Split};

use crate::modelfile::ModelFile;

/// One stored subnet's results on the test split.
pub struct SubnetResult {
    pub id: u32,
    pub name: String,
    pub config: supernet_format::SubnetConfig,
    pub accuracy: f64,
    pub val_accuracy: f32,
    pub macs: u64,
    pub params: u64,
    pub arena_bytes: usize,
    /// Single-thread runtime time per image (summed over workers / images).
    pub ms_per_image: f64,
}

/// Converts raw test images to the model's input (CHW f32, the artifact's preprocessing).
pub fn prepare_inputs(model: &Model<'_>, test: &Dataset, limit: usize) -> anyhow::Result<Vec<f32>> {
    let space = model.space();
    if test.rows != test.cols
        || test.rows as u32 != space.resolution
        || test.channels as u32 != space.in_channels
    {
        bail!(
            "the test images are {}x{}x{} but the model takes {}x{}x{}",
            test.rows,
            test.cols,
            test.channels,
            space.resolution,
            space.resolution,
            space.in_channels
        );
    }
    if test.classes > space.classes as usize {
        bail!(
            "the test labels go up to {} but the model has {} classes",
            test.classes - 1,
            space.classes
        );
    }
    let len = model.input_len();
    let px = test.rows * test.cols;
    let ch = test.channels;
    let mut out = vec![0f32; limit * len];
    out.par_chunks_mut(len).enumerate().for_each(|(i, dst)| {
        let img = test.image(i); // HWC u8
        let mut chw = vec![0u8; len];
        for p in 0..px {
            for c in 0..ch {
                chw[c * px + p] = img[p * ch + c];
            }
        }
        model.prep().apply_u8(&chw, dst);
    });
    Ok(out)
}

/// Evaluates every stored subnet on the first `limit` test images.
pub fn evaluate(
    model: &Model<'_>,
    test: &Dataset,
    limit: usize,
) -> anyhow::Result<Vec<SubnetResult>> {
    let inputs = prepare_inputs(model, test, limit)?;
    let len = model.input_len();
    let classes = model.classes();
    let mut results = vec![];
    for index in 0..model.subnet_count() {
        let sub = model.subnet(index).context("stored subnet")?;
        let arena_bytes = model.arena_bytes(&sub.config);
        let chunks: Vec<(usize, f64)> = inputs
            .par_chunks(len * 250)
            .enumerate()
            .map(|(chunk, xs)| {
                let mut arena = vec![0f32; arena_bytes / 4];
                let mut session =
                    Session::new(model, &mut arena).expect("arena sized for the subnet");
                session.select_index(index).expect("stored subnet");
                let mut logits = vec![0f32; classes];
                let mut correct = 0;
                let t = Instant::now();
                for (j, x) in xs.chunks_exact(len).enumerate() {
                    session
                        .run(x, &mut logits)
                        .expect("input sized for the model");
                    if argmax(&logits) == Some(test.labels[chunk * 250 + j] as usize) {
                        correct += 1;
                    }
                }
                (correct, t.elapsed().as_secs_f64())
            })
            .collect();
        let correct: usize = chunks.iter().map(|c| c.0).sum();
        let secs: f64 = chunks.iter().map(|c| c.1).sum();
        // The costs are computed from the config (the stored ones are informative only).
        let c = model.cost(&sub.config);
        results.push(SubnetResult {
            id: sub.id,
            name: sub.name.to_string(),
            config: sub.config,
            accuracy: correct as f64 / limit.max(1) as f64,
            val_accuracy: sub.accuracy,
            macs: c.macs,
            params: c.params,
            arena_bytes,
            ms_per_image: 1e3 * secs / limit.max(1) as f64,
        });
    }
    Ok(results)
}

/// The config as a JSON object in the original code's form.
pub fn config_json(c: &supernet_format::SubnetConfig) -> serde_json::Value {
    json!({"ks": c.ks(), "e": c.e(), "d": c.d()})
}

pub fn results_json(
    model_path: &Path,
    images: usize,
    results: &[SubnetResult],
) -> serde_json::Value {
    json!({
        "model": model_path.display().to_string(),
        "split": "test",
        "images": images,
        "subnets": results.iter().map(|r| json!({
            "id": r.id,
            "name": r.name,
            "config": config_json(&r.config),
            "accuracy": r.accuracy,
            "val_accuracy": if r.val_accuracy.is_nan() { serde_json::Value::Null } else { json!(r.val_accuracy) },
            "macs": r.macs,
            "params": r.params,
            "arena_bytes": r.arena_bytes,
            "ms_per_image": r.ms_per_image,
        })).collect::<Vec<_>>(),
    })
}

/// A compact description of a config: per stage, depth and the active kernels/expands.
pub fn config_summary(c: &supernet_format::SubnetConfig, max_depth: usize) -> String {
    let mut parts = vec![];
    for (s, &d) in c.d().iter().enumerate() {
        let mut p = format!("d{d}:");
        for j in 0..d as usize {
            let i = s * max_depth + j;
            p.push_str(&format!("{}{}", c.ks()[i], c.e()[i]));
            if j + 1 < d as usize {
                p.push(',');
            }
        }
        parts.push(p);
    }
    parts.join(" ")
}

pub fn table(results: &[SubnetResult], max_depth: usize, images: usize) -> String {
    use std::fmt::Write;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{:>3}  {:<12} {:>7} {:>8} {:>10} {:>8} {:>9} {:>7}  config (per stage: depth, kernel+expand of each block)",
        "id", "name", "MMACs", "params", "arena", "val acc", "test acc", "ms/img"
    );
    for r in results {
        let val = if r.val_accuracy.is_nan() {
            "-".to_string()
        } else {
            format!("{:.2}%", 100.0 * r.val_accuracy)
        };
        let _ = writeln!(
            t,
            "{:>3}  {:<12} {:>7.2} {:>8} {:>10} {:>8} {:>8.2}% {:>7.3}  {}",
            r.id,
            crate::modelfile::printable(&r.name),
            r.macs as f64 / 1e6,
            r.params,
            r.arena_bytes,
            val,
            100.0 * r.accuracy,
            r.ms_per_image,
            config_summary(&r.config, max_depth)
        );
    }
    let _ = writeln!(
        t,
        "(test acc: {images} test images through the runtime; val acc: held-out training images; ms/img: one core)"
    );
    t
}

pub fn run(
    model_path: &Path,
    data: &Path,
    as_json: bool,
    limit: Option<usize>,
) -> anyhow::Result<()> {
    let file = ModelFile::open(model_path)?;
    let model = file.model(model_path)?;
    let test = Dataset::load(data, Split::Test)?;
    let n = match limit {
        Some(0) => bail!("--limit must be at least 1"),
        Some(l) => l.min(test.len()),
        None => test.len(),
    };
    if model.subnet_count() == 0 {
        bail!("{} has no stored subnets", model_path.display());
    }
    let results = evaluate(&model, &test, n)?;
    if as_json {
        crate::emit(&serde_json::to_string_pretty(&results_json(
            model_path, n, &results,
        ))?)
    } else {
        crate::emit(&table(&results, model.space().max_depth, n))
    }
}
