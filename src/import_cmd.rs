//! `supernet import-ofa`: an OFA MobileNetV3 state dict (safetensors, original tensor names)
//! becomes an artifact: shared weights with every kernel size baked through the checkpoint's
//! kernel-transformation matrices, the checkpoint's BN running statistics (sliced per subnet
//! as the original code does) or BN recalibrated on training images, and a table of stored
//! subnets (largest, smallest, and any listed).

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::json;
use supernet_format::space::{OFA_ACTS, OFA_BASE_WIDTHS, OFA_SE, OFA_STRIDES, SpaceParams};
use supernet_format::{Prep, Space, SubnetConfig};
use supernet_train::calibrate::calibrate_bn;
use supernet_train::data::{Dataset, Normalization, Split};
use supernet_train::export::{Stored, check_writable, export};
use supernet_train::import::{
    ImportError, checkpoint_classes_and_channels, import_ofa_safetensors,
};

use crate::run_cmd::config_arg;

#[derive(Args)]
pub struct ImportArgs {
    /// The checkpoint: an OFAMobileNetV3 state dict saved as safetensors with the original
    /// tensor names (convert a .pth first; see the README).
    checkpoint: PathBuf,
    /// Width multiplier the supernet was built with (e.g. 1.0, 1.2, 0.35).
    #[arg(long, value_name = "W")]
    width: f64,
    /// Number of classes of its classifier.
    #[arg(long, value_name = "N")]
    classes: u32,
    /// Input channels of its first convolution.
    #[arg(long, value_name = "C", default_value_t = 3)]
    in_channels: u32,
    /// Input resolution the artifact runs at (height = width).
    #[arg(long, value_name = "R")]
    resolution: u32,
    /// Where to write the artifact.
    #[arg(short = 'o', long = "out", value_name = "MODEL")]
    out: PathBuf,
    /// Kernel-size choices of the supernet.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "3,5,7"
    )]
    ks: Vec<u8>,
    /// Expand-ratio choices.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "3,4,6"
    )]
    e: Vec<u8>,
    /// Depth choices.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "2,3,4"
    )]
    d: Vec<u8>,
    /// Also store this subnet (config text as the original code prints it, or a file
    /// holding it). Repeat for several.
    #[arg(long = "subnet", value_name = "CONFIG")]
    subnets: Vec<String>,
    /// Recalibrate BN per stored subnet on training images of this IDX directory instead of
    /// slicing the checkpoint's running statistics.
    #[arg(long, value_name = "DIR")]
    calibrate_data: Option<PathBuf>,
    /// Training images used for recalibration.
    #[arg(long, value_name = "N", default_value_t = 2000)]
    calib_images: usize,
    /// Per-channel input mean after scaling pixels to [0, 1] (stored for callers that feed
    /// raw pixels). Default: ImageNet's for 3 channels, else 0 (or the data's with
    /// --calibrate-data).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    mean: Option<Vec<f32>>,
    /// Per-channel input std (default: ImageNet's for 3 channels, else 1).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    std: Option<Vec<f32>>,
    /// Replace MODEL if it exists.
    #[arg(long)]
    force: bool,
}

fn ofa_space(
    width: f64,
    in_channels: u32,
    resolution: u32,
    classes: u32,
    a: &ImportArgs,
) -> Result<Space, String> {
    Space::from_params(&SpaceParams {
        width_mult: width,
        in_channels,
        resolution,
        classes,
        base_widths: &OFA_BASE_WIDTHS,
        strides: &OFA_STRIDES,
        acts: &OFA_ACTS,
        se: &OFA_SE,
        ks: &a.ks,
        e: &a.e,
        d: &a.d,
        max_depth: None,
    })
    .map_err(|e| e.to_string())
}

/// What the checkpoint itself says about classes, input channels and width.
fn guess(bytes: &[u8], a: &ImportArgs) -> Option<String> {
    let (classes, cin) = checkpoint_classes_and_channels(bytes)?;
    (5..=40).map(|w| w as f64 * 0.05).find_map(|w| {
        let space = ofa_space(w, cin, a.resolution, classes, a).ok()?;
        import_ofa_safetensors(bytes, &space).ok()?;
        Some(format!(
            "the checkpoint matches --width {w:.2} --classes {classes} --in-channels {cin}"
        ))
    })
}

pub fn run(a: ImportArgs) -> anyhow::Result<()> {
    if a.out.is_dir() {
        bail!("-o {} is a directory", a.out.display());
    }
    if a.out.exists() && !a.force {
        bail!("{} exists; pass --force to replace it", a.out.display());
    }
    check_writable(&a.out)?;
    let space = ofa_space(a.width, a.in_channels, a.resolution, a.classes, &a)
        .map_err(anyhow::Error::msg)?;
    let bytes = std::fs::read(&a.checkpoint)
        .with_context(|| format!("cannot read {}", a.checkpoint.display()))?;
    if bytes.starts_with(b"PK") {
        bail!(
            "{} is a zip archive (a PyTorch .pth file?); convert it to safetensors first:\n  \
             python -c \"import torch; from safetensors.torch import save_file; sd = torch.load('{}', map_location='cpu'); sd = sd.get('state_dict', sd); save_file({{k: v.contiguous() for k, v in sd.items()}}, 'ofa.safetensors')\"",
            a.checkpoint.display(),
            a.checkpoint.display()
        );
    }
    let imported = match import_ofa_safetensors(&bytes, &space) {
        Ok(i) => i,
        Err(e @ (ImportError::Shape { .. } | ImportError::Missing { .. })) => {
            let hint = guess(&bytes, &a)
                .map(|h| format!("\n  hint: {h}"))
                .unwrap_or_default();
            bail!("{}: {e}{hint}", a.checkpoint.display());
        }
        Err(e) => bail!("{}: {e}", a.checkpoint.display()),
    };
    let net = imported.net;
    let unused: Vec<&String> = imported
        .unused
        .iter()
        .filter(|n| !n.ends_with("num_batches_tracked"))
        .collect();
    if !unused.is_empty() {
        println!(
            "note: {} checkpoint tensors are not part of the space and were ignored: {}",
            unused.len(),
            unused
                .iter()
                .take(5)
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    // Stored subnets: largest, smallest, then the listed ones (each once).
    let mut configs: Vec<(String, SubnetConfig)> = vec![
        ("largest".into(), SubnetConfig::largest(&space)),
        ("smallest".into(), SubnetConfig::smallest(&space)),
    ];
    for (i, text) in a.subnets.iter().enumerate() {
        let c = config_arg(text, &space).with_context(|| format!("--subnet #{}", i + 1))?;
        if configs.iter().all(|(_, k)| *k != c) {
            configs.push((format!("subnet-{}", i + 1), c));
        }
    }
    configs.dedup_by(|x, y| x.1 == y.1);

    let c = space.in_channels as usize;
    let (mean, std) = match (&a.mean, &a.std) {
        (Some(m), Some(s)) => (m.clone(), s.clone()),
        (None, None) if c == 3 => (vec![0.485, 0.456, 0.406], vec![0.229, 0.224, 0.225]),
        (None, None) => (vec![0.0; c], vec![1.0; c]),
        _ => bail!("give both --mean and --std, or neither"),
    };
    let stored: Vec<Stored>;
    let prep;
    match &a.calibrate_data {
        Some(dir) => {
            let data = Dataset::load(dir, Split::Train)?;
            if data.channels != c || data.rows != data.cols || data.rows as u32 != space.resolution
            {
                bail!(
                    "{}: images are {}x{}x{}, the artifact takes {r}x{r}x{c}",
                    dir.display(),
                    data.rows,
                    data.cols,
                    data.channels,
                    r = space.resolution
                );
            }
            let norm = match (&a.mean, &a.std) {
                (Some(_), Some(_)) => Normalization { mean, std },
                _ => Normalization::from_dataset(&data),
            };
            let idx: Vec<usize> = (0..a.calib_images.clamp(1, data.len())).collect();
            stored = configs
                .iter()
                .enumerate()
                .map(|(i, (name, cfg))| Stored {
                    id: i as u32,
                    name: name.clone(),
                    config: *cfg,
                    bn: calibrate_bn(&net, cfg, &data, &idx, &norm, 250),
                    accuracy: f32::NAN,
                })
                .collect();
            prep = Prep::new(1.0 / 255.0, &norm.mean, &norm.std);
        }
        None => {
            stored = configs
                .iter()
                .enumerate()
                .map(|(i, (name, cfg))| Stored {
                    id: i as u32,
                    name: name.clone(),
                    config: *cfg,
                    bn: net.running_bn_set(cfg),
                    accuracy: f32::NAN,
                })
                .collect();
            prep = Prep::new(1.0 / 255.0, &mean, &std);
        }
    }
    let prep =
        prep.with_context(|| format!("--mean/--std need {c} finite values each, std > 0"))?;
    let meta = json!({
        "tool": format!("supernet {}", env!("CARGO_PKG_VERSION")),
        "imported_from": a.checkpoint.display().to_string(),
        "source": "Once-for-All OFAMobileNetV3 state dict",
        "width_mult": a.width,
        "bn": if a.calibrate_data.is_some() { "recalibrated per stored subnet" } else { "checkpoint running statistics, sliced" },
    });
    let size = export(&net, prep, &stored, Some(meta.to_string()), &a.out, a.force)?;
    println!(
        "imported {} ({} tensors) as width {}, {} classes, {} input channels, {}x{}; wrote {} ({:.2} MB) with {} stored subnets:",
        a.checkpoint.display(),
        net.params.len() + 2 * net.running.len(),
        a.width,
        space.classes,
        space.in_channels,
        space.resolution,
        space.resolution,
        a.out.display(),
        size as f64 / 1e6,
        stored.len()
    );
    for s in &stored {
        let cost = supernet_format::arch::cost(&space, &s.config);
        println!(
            "  {:>3} {:<10} {:>8.2} M MACs {:>9} params  {}",
            s.id,
            s.name,
            cost.macs as f64 / 1e6,
            cost.params,
            s.config
        );
    }
    Ok(())
}
