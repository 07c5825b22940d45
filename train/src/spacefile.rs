//! Search spaces from TOML: the shipped presets (`train/presets/*.toml`) and user files.
//!
//! Keys: `width_mult`, `ks`, `e`, `d` (required); `in_channels`, `resolution`, `classes`
//! (taken from the dataset when absent); `base_widths` (stem, first block, one per stage,
//! final expand, feature mix), `strides`, `acts` (`"relu"` / `"h_swish"`), `se` (optional,
//! the original OFA MobileNetV3 layout by default), `max_depth` (block slots per stage,
//! default the largest depth choice). Unknown keys are errors.

use serde::Deserialize;
use supernet_format::space::{OFA_ACTS, OFA_BASE_WIDTHS, OFA_SE, OFA_STRIDES, SpaceParams};
use supernet_format::{Act, Space};

/// Presets shipped with the tool: `(name, TOML text)`.
pub const PRESETS: &[(&str, &str)] = &[
    ("w1.0", include_str!("../presets/w1.0.toml")),
    ("w0.5", include_str!("../presets/w0.5.toml")),
    ("micro", include_str!("../presets/micro.toml")),
];

/// A parsed space file; dataset-dependent fields may be missing.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SpaceFile {
    pub width_mult: f64,
    pub ks: Vec<u8>,
    pub e: Vec<u8>,
    pub d: Vec<u8>,
    pub in_channels: Option<u32>,
    pub resolution: Option<u32>,
    pub classes: Option<u32>,
    pub base_widths: Option<Vec<u32>>,
    pub strides: Option<Vec<u32>>,
    pub acts: Option<Vec<String>>,
    pub se: Option<Vec<bool>>,
    pub max_depth: Option<usize>,
}

/// The shape of the data a space is built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataShape {
    pub channels: u32,
    pub rows: u32,
    pub cols: u32,
    pub classes: u32,
}

impl SpaceFile {
    /// Parses TOML text; `origin` names the file or preset in errors.
    pub fn parse(text: &str, origin: &str) -> Result<SpaceFile, String> {
        toml::from_str(text).map_err(|e| format!("{origin}: {e}"))
    }

    /// A shipped preset by name.
    pub fn preset(name: &str) -> Result<SpaceFile, String> {
        let (_, text) = PRESETS.iter().find(|(n, _)| *n == name).ok_or_else(|| {
            let names: Vec<&str> = PRESETS.iter().map(|(n, _)| *n).collect();
            format!("unknown preset {name:?} (presets: {})", names.join(", "))
        })?;
        SpaceFile::parse(text, &format!("preset {name}"))
    }

    /// The space for data of `shape`; fields given in the file must agree with the data.
    pub fn build(&self, shape: DataShape, origin: &str) -> Result<Space, String> {
        if shape.rows != shape.cols {
            return Err(format!(
                "images are {}x{}; the supernet needs square images",
                shape.rows, shape.cols
            ));
        }
        let pick = |field: &str, given: Option<u32>, data: u32| -> Result<u32, String> {
            match given {
                Some(v) if v != data => Err(format!(
                    "{origin}: {field} = {v} but the dataset has {data}"
                )),
                _ => Ok(data),
            }
        };
        let in_channels = pick("in_channels", self.in_channels, shape.channels)?;
        let resolution = pick("resolution", self.resolution, shape.rows)?;
        let classes = match self.classes {
            Some(c) if c < shape.classes => {
                return Err(format!(
                    "{origin}: classes = {c} but the dataset has labels up to {}",
                    shape.classes - 1
                ));
            }
            Some(c) => c,
            None => shape.classes,
        };
        self.build_with(in_channels, resolution, classes, origin)
    }

    /// The space with explicit input shape and classes.
    pub fn build_with(
        &self,
        in_channels: u32,
        resolution: u32,
        classes: u32,
        origin: &str,
    ) -> Result<Space, String> {
        let stages = self.strides.as_ref().map_or(OFA_STRIDES.len(), |v| v.len());
        let lists: [(&str, Option<usize>, usize, usize); 3] = [
            (
                "base_widths",
                self.base_widths.as_ref().map(|v| v.len()),
                OFA_BASE_WIDTHS.len(),
                stages + 4,
            ),
            (
                "acts",
                self.acts.as_ref().map(|v| v.len()),
                OFA_ACTS.len(),
                stages,
            ),
            (
                "se",
                self.se.as_ref().map(|v| v.len()),
                OFA_SE.len(),
                stages,
            ),
        ];
        for (key, len, default_len, want) in lists {
            let len = len.unwrap_or(default_len);
            if len != want {
                return Err(format!(
                    "{origin}: {key} has {len} entries{} but {stages} stages (the length of strides{}) need {want}{}",
                    if len == default_len {
                        " (the default)"
                    } else {
                        ""
                    },
                    if self.strides.is_some() {
                        ""
                    } else {
                        ", 5 by default"
                    },
                    if key == "base_widths" {
                        ": stem, first block, one per stage, final expand, feature mix"
                    } else {
                        ""
                    }
                ));
            }
        }
        if let Some(&d) = self.d.iter().max()
            && d as usize > supernet_format::space::MAX_DEPTH
        {
            return Err(format!(
                "{origin}: d: depth {d} is above the limit of {} blocks per stage",
                supernet_format::space::MAX_DEPTH
            ));
        }
        let acts: Vec<Act> = match &self.acts {
            None => OFA_ACTS.to_vec(),
            Some(v) => v
                .iter()
                .map(|a| match a.as_str() {
                    "relu" => Ok(Act::Relu),
                    "h_swish" | "hswish" => Ok(Act::HSwish),
                    other => Err(format!(
                        "{origin}: acts: unknown activation {other:?} (use \"relu\" or \"h_swish\")"
                    )),
                })
                .collect::<Result<_, _>>()?,
        };
        let p = SpaceParams {
            width_mult: self.width_mult,
            in_channels,
            resolution,
            classes,
            base_widths: self.base_widths.as_deref().unwrap_or(&OFA_BASE_WIDTHS),
            strides: self.strides.as_deref().unwrap_or(&OFA_STRIDES),
            acts: &acts,
            se: self.se.as_deref().unwrap_or(&OFA_SE),
            ks: &self.ks,
            e: &self.e,
            d: &self.d,
            max_depth: self.max_depth,
        };
        Space::from_params(&p).map_err(|e| format!("{origin}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FMNIST: DataShape = DataShape {
        channels: 1,
        rows: 28,
        cols: 28,
        classes: 10,
    };

    #[test]
    fn presets_parse_and_build() {
        for (name, _) in PRESETS {
            let s = SpaceFile::preset(name)
                .unwrap()
                .build(FMNIST, name)
                .unwrap();
            assert_eq!((s.in_channels, s.resolution, s.classes), (1, 28, 10));
            assert_eq!(s.n_stages, 5);
            let slots = if *name == "micro" { 15 } else { 20 };
            assert_eq!(s.n_slots(), slots, "{name}");
        }
        assert!(SpaceFile::preset("nope").unwrap_err().contains("w1.0"));
    }

    /// The micro preset fits a microcontroller: the whole artifact at most 1 MB (10^6 bytes)
    /// and the largest subnet's arena at most 128 KiB. The artifact bound is the worst case
    /// of `supernet train`'s default of 6 stored subnets: every stored BN set as long as the
    /// largest subnet's, and 1 KiB of provenance.
    #[test]
    fn micro_preset_fits_a_microcontroller() {
        use supernet_format::arch::{self, cost, default_bn_len};
        use supernet_format::writer::{ArtifactWriter, SubnetEntry};
        use supernet_format::{Prep, SubnetConfig};
        use supernet_runtime::plan::Plan;

        let space = SpaceFile::preset("micro")
            .unwrap()
            .build(FMNIST, "micro")
            .unwrap();
        assert_eq!((space.ks.len(), space.e.len(), space.d.len()), (3, 3, 3));
        let largest = SubnetConfig::largest(&space);
        let arena = Plan::new(&space, None).bytes();
        assert!(arena <= 128 * 1024, "largest subnet's arena {arena} bytes");
        assert_eq!(arena, Plan::new(&space, Some(&largest)).bytes());

        let bn = vec![0.0f32; default_bn_len(&space)];
        let writer = ArtifactWriter {
            space,
            prep: Prep::new(1.0 / 255.0, &[0.5], &[0.5]).unwrap(),
            tensors: arch::tensors(&space).map(|t| vec![0.0; t.len()]).collect(),
            default_bn: bn.clone(),
            subnets: (0..6)
                .map(|id| SubnetEntry {
                    id,
                    name: "macs-1.23M".into(),
                    accuracy: 0.5,
                    arena_bytes: arena as u32,
                    latency_us: 1,
                    config: largest,
                    bn: bn.clone(),
                })
                .collect(),
            meta: Some("x".repeat(1024)),
        };
        let bytes = writer.to_bytes().unwrap().len();
        assert!(bytes <= 1_000_000, "worst-case artifact {bytes} bytes");
        // The stored parameters (every shared tensor, all kernel sizes) take most of it.
        let stored: usize = arch::tensors(&space).map(|t| t.len()).sum();
        assert!(
            4 * stored < bytes && stored < 250_000,
            "{stored} stored weights"
        );
        let big = cost(&space, &largest);
        let small = cost(&space, &SubnetConfig::smallest(&space));
        assert!(big.params as usize <= stored && small.macs < big.macs / 3);
    }

    #[test]
    fn bad_files_give_clear_errors() {
        let e = SpaceFile::parse(
            "width_mult = 1.0\nks=[3]\ne=[3]\nd=[2]\nkernel=7\n",
            "f.toml",
        )
        .unwrap_err();
        assert!(e.contains("f.toml") && e.contains("kernel"), "{e}");
        let f = SpaceFile::parse("width_mult = 1.0\nks=[3, 4]\ne=[3]\nd=[2]\n", "f.toml").unwrap();
        let e = f.build(FMNIST, "f.toml").unwrap_err();
        assert!(e.contains("ks"), "{e}");
        let f = SpaceFile::parse(
            "width_mult = 1.0\nks=[3]\ne=[3]\nd=[2]\nresolution = 32\n",
            "f.toml",
        )
        .unwrap();
        let e = f.build(FMNIST, "f.toml").unwrap_err();
        assert!(e.contains("resolution = 32") && e.contains("28"), "{e}");
        let parse = |t: &str| SpaceFile::parse(t, "f.toml").unwrap();
        let acts = "acts=[\"gelu\", \"relu\", \"relu\", \"relu\", \"relu\"]";
        let f = parse(&format!("width_mult = 1.0\nks=[3]\ne=[3]\nd=[2]\n{acts}\n"));
        assert!(f.build(FMNIST, "f.toml").unwrap_err().contains("gelu"));
        let f = parse("width_mult = 1.0\nks=[3]\ne=[3]\nd=[2]\nstrides=[2, 2, 2, 1]\n");
        let e = f.build(FMNIST, "f.toml").unwrap_err();
        assert!(
            e.contains("base_widths has 9 entries (the default) but 4 stages"),
            "{e}"
        );
        let f = parse("width_mult = 1.0\nks=[3]\ne=[3]\nd=[2, 9]\n");
        assert!(f.build(FMNIST, "f.toml").unwrap_err().contains("depth 9"));
    }
}
