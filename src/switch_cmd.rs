//! `supernet switch`: the run-time side of a supernet on this machine. One session times
//! every stored subnet (calibration with the host clock), then switches between them as a
//! simulated battery drains (the level jittering by a point at each step, the charger
//! plugged in at the end) and as a latency budget tightens, running test images at each
//! step. The main job (`supernet train`) ends with this.

use std::path::Path;
use std::time::Instant;

use anyhow::bail;
use serde_json::json;
use supernet_runtime::{Model, Selection, Session, argmax};
use supernet_train::data::{Dataset, Split};

use crate::eval_cmd::prepare_inputs;
use crate::modelfile::ModelFile;

/// One step of the demonstration.
pub struct Step {
    /// "battery" or "latency".
    pub kind: &'static str,
    pub level: Option<u8>,
    pub charging: bool,
    pub selection: Selection,
    pub name: String,
    /// Fraction of the step's test images classified correctly.
    pub accuracy: f64,
    /// Measured single-thread time per image, microseconds.
    pub measured_us: f64,
}

/// Calibrates, then runs the battery and the latency sequences on `limit` test images.
/// Returns the calibrated latencies and the steps.
pub fn demo(
    model: &Model<'_>,
    test: &Dataset,
    limit: usize,
) -> anyhow::Result<(Vec<u32>, Vec<Step>)> {
    if model.subnet_count() == 0 {
        bail!("the model has no stored subnets to switch between");
    }
    let limit = limit.clamp(1, test.len().max(1));
    let inputs = prepare_inputs(model, test, limit)?;
    let len = model.input_len();
    let mut arena = vec![0f32; model.max_arena_len()];
    let mut session = Session::new(model, &mut arena)?;
    let mut logits = vec![0f32; model.classes()];
    let start = Instant::now();
    let mut clock = || start.elapsed().as_micros() as u64;
    let mut table = vec![0u32; model.subnet_count()];
    session.calibrate(&mut clock, &inputs[..len], &mut logits, 9, &mut table)?;
    session.set_latencies(&table)?;

    let mut run_step = |session: &mut Session<'_, '_>,
                        kind: &'static str,
                        level: Option<u8>,
                        charging: bool,
                        selection: Selection|
     -> anyhow::Result<Step> {
        let t = Instant::now();
        let mut correct = 0;
        for (i, x) in inputs.chunks_exact(len).enumerate() {
            session.run(x, &mut logits)?;
            correct += (argmax(&logits) == Some(test.labels[i] as usize)) as usize;
        }
        let name = selection
            .index
            .and_then(|i| model.subnet(i))
            .map_or_else(|| "(config)".to_string(), |s| s.name.to_string());
        Ok(Step {
            kind,
            level,
            charging,
            selection,
            name,
            accuracy: correct as f64 / limit as f64,
            measured_us: 1e6 * t.elapsed().as_secs_f64() / limit as f64,
        })
    };

    let mut steps = vec![];
    // a draining battery, each level followed by a one-point jitter, then the charger
    for level in (0..=100u8).rev().step_by(10) {
        for l in [level, (level + 1).min(100)] {
            let sel = session.select_battery(l, false)?;
            steps.push(run_step(&mut session, "battery", Some(l), false, sel)?);
        }
    }
    let sel = session.select_battery(5, true)?;
    steps.push(run_step(&mut session, "battery", Some(5), true, sel)?);

    // a latency budget from 20 % above the slowest subnet to 20 % below the fastest
    let known: Vec<u32> = table.iter().copied().filter(|&t| t > 0).collect();
    let hi = known.iter().max().copied().unwrap_or(1) as f64 * 1.2;
    let lo = known.iter().min().copied().unwrap_or(1) as f64 * 0.8;
    for k in 0..8 {
        let budget = (hi - (hi - lo) * k as f64 / 7.0).round() as u32;
        let sel = session.select_latency(budget)?;
        steps.push(run_step(&mut session, "latency", None, false, sel)?);
    }
    Ok((table, steps))
}

/// The steps as a table.
pub fn table(model: &Model<'_>, latencies: &[u32], steps: &[Step], images: usize) -> String {
    let mut s = String::new();
    s.push_str("calibrated on this machine (median of 9 single-thread runs):");
    for (i, t) in latencies.iter().enumerate() {
        if let Some(sub) = model.subnet(i) {
            s.push_str(&format!(" {}={} us", sub.id, t));
        }
    }
    s.push('\n');
    s.push_str(&format!(
        "{:<18} {:>3}  {:<12} {:>8} {:>8} {:>9} {:>9} {:>9}\n",
        "step", "id", "name", "val acc", "acc", "budget", "expected", "measured"
    ));
    for st in steps {
        let what = match (st.kind, st.level) {
            ("battery", Some(l)) if st.charging => format!("battery {l:>3}% chg"),
            ("battery", Some(l)) => format!("battery {l:>3}%"),
            _ => format!("budget {:>6} us", st.selection.budget_us),
        };
        let sel = &st.selection;
        let val = if sel.accuracy.is_nan() {
            "-".to_string()
        } else {
            format!("{:.2}%", 100.0 * sel.accuracy)
        };
        let mut flags = String::new();
        if sel.changed {
            flags.push_str("  switched");
        }
        if !sel.fits {
            flags.push_str("  over budget: fastest");
        }
        s.push_str(&format!(
            "{:<18} {:>3}  {:<12} {:>8} {:>7.2}% {:>6} us {:>6} us {:>6.0} us{}\n",
            what,
            sel.id.map_or("-".to_string(), |i| i.to_string()),
            crate::modelfile::printable(&st.name),
            val,
            100.0 * st.accuracy,
            sel.budget_us,
            sel.latency_us,
            st.measured_us,
            flags
        ));
    }
    s.push_str(&format!(
        "(acc: the first {images} test images at each step; budget: what the battery level \
         maps to or the latency budget; expected: calibrated latency; measured: this step's \
         mean per image)\n"
    ));
    s
}

pub fn steps_json(latencies: &[u32], steps: &[Step]) -> serde_json::Value {
    json!({
        "calibrated_latency_us": latencies,
        "steps": steps.iter().map(|st| json!({
            "kind": st.kind,
            "level": st.level,
            "charging": st.charging,
            "budget_us": st.selection.budget_us,
            "subnet": {"index": st.selection.index, "id": st.selection.id, "name": st.name},
            "val_accuracy": if st.selection.accuracy.is_nan() { serde_json::Value::Null } else { json!(st.selection.accuracy) },
            "accuracy": st.accuracy,
            "expected_us": st.selection.latency_us,
            "measured_us": st.measured_us,
            "switched": st.selection.changed,
            "fits": st.selection.fits,
        })).collect::<Vec<_>>(),
    })
}

/// `supernet switch MODEL --data DIR [--images N] [--json]`.
pub fn run(model_path: &Path, data: &Path, images: usize, as_json: bool) -> anyhow::Result<()> {
    if images == 0 {
        bail!("--images must be at least 1");
    }
    let file = ModelFile::open(model_path)?;
    let model = file.model(model_path)?;
    let test = Dataset::load(data, Split::Test)?;
    let (latencies, steps) = demo(&model, &test, images)?;
    if as_json {
        let mut v = steps_json(&latencies, &steps);
        v["model"] = json!(model_path.display().to_string());
        v["images"] = json!(images.min(test.len()));
        return crate::emit(&serde_json::to_string_pretty(&v)?);
    }
    crate::emit(&table(&model, &latencies, &steps, images.min(test.len())))
}
