//! `supernet run`: one subnet on a batch of inputs from a `.npy` file, through the runtime.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::json;
use supernet_format::SubnetConfig;
use supernet_runtime::{Session, argmax};

use crate::eval_cmd::config_json;
use crate::modelfile::ModelFile;

#[derive(Args)]
pub struct RunArgs {
    /// The artifact (.snet).
    model: PathBuf,
    /// A stored subnet, by id (see `supernet info`).
    #[arg(long, value_name = "ID", conflicts_with = "config")]
    subnet: Option<u32>,
    /// Any subnet of the space: the config as text ({"ks": [...], "e": [...], "d": [...]},
    /// as the original code prints it) or the path of a file holding it.
    #[arg(long, value_name = "CONFIG")]
    config: Option<String>,
    /// Inputs: a NumPy .npy file, float32, N x C x H x W (or C x H x W), already
    /// preprocessed.
    #[arg(long, value_name = "FILE.npy")]
    input: PathBuf,
    /// Print JSON: `logits` (one row per input) and `classes`.
    #[arg(long)]
    json: bool,
}

/// A config from text, or from a file holding the text.
pub fn config_arg(arg: &str, space: &supernet_format::Space) -> anyhow::Result<SubnetConfig> {
    let text = if arg.trim_start().starts_with('{') {
        arg.to_string()
    } else {
        std::fs::read_to_string(Path::new(arg)).with_context(|| {
            format!("--config {arg:?} is neither config text nor a readable file")
        })?
    };
    SubnetConfig::parse(text.trim(), space).map_err(|e| anyhow::anyhow!("{e}"))
}

pub fn run(a: RunArgs) -> anyhow::Result<()> {
    let file = ModelFile::open(&a.model)?;
    let model = file.model(&a.model)?;
    let space = *model.space();
    let x = crate::npy::read(&a.input)?;
    let (c, r) = (space.in_channels as usize, space.resolution as usize);
    let n = match x.shape.as_slice() {
        [n, ch, h, w] if (*ch, *h, *w) == (c, r, r) => *n,
        [ch, h, w] if (*ch, *h, *w) == (c, r, r) => 1,
        s => bail!(
            "{}: inputs have shape {s:?}; the model takes N x {c} x {r} x {r} (or {c} x {r} x {r})",
            a.input.display()
        ),
    };
    let mut arena = vec![0f32; model.max_arena_len()];
    let mut session = Session::new(&model, &mut arena).map_err(|e| anyhow::anyhow!("{e}"))?;
    match (&a.subnet, &a.config) {
        (Some(id), _) => session
            .select_subnet(*id)
            .map_err(|e| anyhow::anyhow!("{}: {e}", a.model.display()))?,
        (None, Some(text)) => {
            let cfg = config_arg(text, &space)?;
            session
                .select_config(&cfg)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        (None, None) => {}
    }
    let active = *session.active();
    let len = model.input_len();
    let mut logits = vec![0f32; n * model.classes()];
    for (xi, out) in x
        .data
        .chunks_exact(len)
        .zip(logits.chunks_exact_mut(model.classes()))
    {
        session.run(xi, out).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let rows: Vec<&[f32]> = logits.chunks_exact(model.classes()).collect();
    let classes: Vec<usize> = rows.iter().map(|r| argmax(r).unwrap_or(0)).collect();
    let name = active
        .index
        .and_then(|i| model.subnet(i))
        .map(|s| s.name.to_string());
    if a.json {
        let v = json!({
            "subnet": {
                "id": active.id,
                "name": name,
                "config": config_json(&active.config),
                "own_bn": active.has_own_bn(),
            },
            "logits": rows,
            "classes": classes,
        });
        return crate::emit(&serde_json::to_string_pretty(&v)?);
    }
    use std::fmt::Write;
    let mut out = String::new();
    match (active.id, name) {
        (Some(id), Some(name)) => writeln!(
            out,
            "subnet {id} ({}), {}",
            crate::modelfile::printable(&name),
            active.config
        )?,
        _ => writeln!(out, "subnet {} (default BN)", active.config)?,
    }
    for (i, (row, class)) in rows.iter().zip(&classes).enumerate() {
        let l: Vec<String> = row.iter().map(|v| format!("{v:.6}")).collect();
        writeln!(out, "input {i}: class {class}  logits [{}]", l.join(", "))?;
    }
    crate::emit(&out)
}
