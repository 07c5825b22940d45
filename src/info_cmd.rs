//! `supernet info`: header, search space and stored subnets of an artifact.

use std::path::Path;

use serde_json::json;
use supernet_format::arch::{cost, slot};
use supernet_format::{Space, SubnetConfig};

use crate::eval_cmd::{config_json, config_summary};
use crate::modelfile::ModelFile;

fn space_json(s: &Space) -> serde_json::Value {
    json!({
        "in_channels": s.in_channels,
        "resolution": s.resolution,
        "classes": s.classes,
        "width_mult": s.width_mult,
        "stem_channels": s.stem_channels,
        "first_block_channels": s.first_block_channels,
        "final_expand_channels": s.final_expand_channels,
        "feature_mix_channels": s.feature_mix_channels,
        "stages": s.stages().iter().map(|st| json!({
            "width": st.width, "stride": st.stride, "act": st.act.name(), "se": st.se,
        })).collect::<Vec<_>>(),
        "max_depth": s.max_depth,
        "ks": s.ks.as_slice(),
        "e": s.e.as_slice(),
        "d": s.d.as_slice(),
    })
}

pub fn run(path: &Path, as_json: bool) -> anyhow::Result<()> {
    use std::fmt::Write;
    let mut out = String::new();
    let file = ModelFile::open(path)?;
    let model = file.model(path)?;
    let art = model.artifact();
    let s = model.space();
    let (major, minor) = art.version();
    let largest = cost(s, &SubnetConfig::largest(s));
    let smallest = cost(s, &SubnetConfig::smallest(s));
    let meta: serde_json::Value = art
        .meta()
        .map(|m| serde_json::from_str(m).unwrap_or_else(|_| json!(m)))
        .unwrap_or(serde_json::Value::Null);
    let subnets: Vec<serde_json::Value> = (0..model.subnet_count())
        .filter_map(|i| model.subnet(i))
        .map(|sub| {
            json!({
                "id": sub.id,
                "name": sub.name,
                "config": config_json(&sub.config),
                "val_accuracy": if sub.accuracy.is_nan() { serde_json::Value::Null } else { json!(sub.accuracy) },
                "macs": model.cost(&sub.config).macs,
                "params": model.cost(&sub.config).params,
                "arena_bytes": model.arena_bytes(&sub.config),
                "latency_us": if sub.latency_us == 0 { serde_json::Value::Null } else { json!(sub.latency_us) },
            })
        })
        .collect();
    if as_json {
        let v = json!({
            "file": path.display().to_string(),
            "bytes": file.bytes().len(),
            "version": format!("{major}.{minor}"),
            "space": space_json(s),
            "largest": {"macs": largest.macs, "params": largest.params},
            "smallest": {"macs": smallest.macs, "params": smallest.params},
            "max_arena_bytes": model.max_arena_bytes(),
            "subnets": subnets,
            "meta": meta,
        });
        return crate::emit(&serde_json::to_string_pretty(&v)?);
    }
    writeln!(
        out,
        "{}: supernet artifact version {major}.{minor}, {} bytes",
        path.display(),
        file.bytes().len()
    )?;
    writeln!(
        out,
        "input: {}x{}x{} CHW f32 = (pixel x {} - mean) / std, mean {:?}, std {:?}; {} classes",
        s.in_channels,
        s.resolution,
        s.resolution,
        model.prep().pixel_scale,
        &model.prep().mean[..s.in_channels as usize],
        &model.prep().std[..s.in_channels as usize],
        s.classes
    )?;
    writeln!(
        out,
        "space: OFA MobileNetV3, width {}, kernel {}, expand {}, depth {} ({} stages x {} slots)",
        s.width_mult, s.ks, s.e, s.d, s.n_stages, s.max_depth
    )?;
    writeln!(
        out,
        "  stem {} ch, first block {} ch, final expand {} ch, feature mix {} ch",
        s.stem_channels, s.first_block_channels, s.final_expand_channels, s.feature_mix_channels
    )?;
    for (i, st) in s.stages().iter().enumerate() {
        let sl = slot(s, i * s.max_depth);
        writeln!(
            out,
            "  stage {}: {:>4} ch, stride {}, {:<7} se {:<5} ({}x{} -> {}x{}, max mid {})",
            i + 1,
            st.width,
            st.stride,
            st.act.name(),
            st.se,
            sl.h_in,
            sl.h_in,
            sl.h_out,
            sl.h_out,
            sl.max_mid
        )?;
    }
    writeln!(
        out,
        "largest subnet: {:.2} M MACs, {} params; smallest: {:.2} M MACs, {} params; arena for any subnet: {} bytes",
        largest.macs as f64 / 1e6,
        largest.params,
        smallest.macs as f64 / 1e6,
        smallest.params,
        model.max_arena_bytes()
    )?;
    writeln!(out, "stored subnets: {}", model.subnet_count())?;
    for i in 0..model.subnet_count() {
        let Some(sub) = model.subnet(i) else { continue };
        let acc = if sub.accuracy.is_nan() {
            "-".into()
        } else {
            format!("{:.2}%", 100.0 * sub.accuracy)
        };
        let latency = if sub.latency_us == 0 {
            "-".into()
        } else {
            format!("{} us", sub.latency_us)
        };
        writeln!(
            out,
            "  {:>3} {:<12} {:>6.2} M MACs {:>8} params {:>8} arena bytes, held-out acc {:>7}, expected {:>9}  {}",
            sub.id,
            crate::modelfile::printable(sub.name),
            model.cost(&sub.config).macs as f64 / 1e6,
            model.cost(&sub.config).params,
            model.arena_bytes(&sub.config),
            acc,
            latency,
            config_summary(&sub.config, s.max_depth)
        )?;
        writeln!(out, "      {}", sub.config)?;
    }
    if !meta.is_null() {
        writeln!(out, "meta: {meta}")?;
    }
    crate::emit(&out)
}
