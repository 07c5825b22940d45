//! Importing supernets trained by the original Once-for-All code: an `OFAMobileNetV3` state
//! dict (safetensors, original tensor names) becomes a [`Supernet`] with the same weights,
//! kernel-transformation matrices and BN running statistics, ready to export.
//!
//! Layout conversions: convolution weights `[out, in, kh, kw]` become the artifact's
//! layouts (stem `[out, kh*kw*in]` in `(ky, kx, in)` order, depthwise `[kh*kw, channels]`,
//! pointwise `[out, in]`); vectors become `[n, 1]`; transformation matrices keep their
//! orientation (the original applies `F.linear(v, M)` to each channel's flattened kernel,
//! which is `M v`).

use std::collections::BTreeSet;
use std::fmt;

use ndarray::{Array1, Array2};
use safetensors::{Dtype, SafeTensors};
use supernet_format::Space;

use crate::rng::Rng;
use crate::supernet::Supernet;

/// Why a checkpoint cannot be imported.
#[derive(Debug, Clone, PartialEq)]
pub enum ImportError {
    /// The file is not a safetensors file (or is corrupt).
    NotSafetensors(String),
    /// The space parameters are invalid (e.g. a width multiplier out of range).
    Space(String),
    /// A tensor the space needs is absent.
    Missing {
        tensor: String,
        expected: Vec<usize>,
    },
    /// A tensor has another shape than the space needs (wrong width, classes, channels...).
    Shape {
        tensor: String,
        found: Vec<usize>,
        expected: Vec<usize>,
    },
    /// A tensor is not float32.
    Dtype { tensor: String, found: String },
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImportError::NotSafetensors(e) => write!(f, "not a readable safetensors file: {e}"),
            ImportError::Space(e) => write!(f, "{e}"),
            ImportError::Missing { tensor, expected } => write!(
                f,
                "checkpoint has no tensor {tensor:?} (expected shape {expected:?}): is it an OFAMobileNetV3 state dict?"
            ),
            ImportError::Shape {
                tensor,
                found,
                expected,
            } => write!(
                f,
                "tensor {tensor:?} has shape {found:?}, expected {expected:?} for this width, classes and input channels"
            ),
            ImportError::Dtype { tensor, found } => {
                write!(f, "tensor {tensor:?} is {found}, expected F32")
            }
        }
    }
}

impl std::error::Error for ImportError {}

/// Where a state-dict tensor goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// `[out, in, kh, kw]` to `[out, kh*kw*in]`.
    Stem,
    /// `[c, 1, kh, kw]` to `[kh*kw, c]`.
    Depthwise,
    /// `[out, in, 1, 1]` to `[out, in]`.
    Pointwise,
    /// `[out, in]` as is.
    Matrix,
    /// `[n]` to `[n, 1]`.
    Vector,
}

fn layout_of(name: &str) -> Layout {
    if name == "first_conv.conv.weight" {
        Layout::Stem
    } else if name.ends_with("depth_conv.conv.weight")
        || name.ends_with("depth_conv.conv.conv.weight")
    {
        Layout::Depthwise
    } else if name.ends_with("_matrix") || name == "classifier.linear.weight" {
        Layout::Matrix
    } else if name.ends_with(".weight") && !name.contains(".bn.") {
        Layout::Pointwise
    } else {
        Layout::Vector
    }
}

/// The PyTorch shape of one of our parameters, from its shape here.
fn torch_shape(layout: Layout, rows: usize, cols: usize, in_channels: usize) -> Vec<usize> {
    match layout {
        Layout::Stem => {
            let k2 = cols / in_channels;
            let k = (k2 as f64).sqrt().round() as usize;
            vec![rows, in_channels, k, k]
        }
        Layout::Depthwise => {
            let k = (rows as f64).sqrt().round() as usize;
            vec![cols, 1, k, k]
        }
        Layout::Pointwise => vec![rows, cols, 1, 1],
        Layout::Matrix => vec![rows, cols],
        Layout::Vector => vec![rows],
    }
}

fn read_f32(st: &SafeTensors<'_>, name: &str, expected: &[usize]) -> Result<Vec<f32>, ImportError> {
    let t = st.tensor(name).map_err(|_| ImportError::Missing {
        tensor: name.to_string(),
        expected: expected.to_vec(),
    })?;
    if t.dtype() != Dtype::F32 {
        return Err(ImportError::Dtype {
            tensor: name.to_string(),
            found: format!("{:?}", t.dtype()),
        });
    }
    if t.shape() != expected {
        return Err(ImportError::Shape {
            tensor: name.to_string(),
            found: t.shape().to_vec(),
            expected: expected.to_vec(),
        });
    }
    Ok(t.data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// Result of an import: the supernet and the checkpoint tensors it did not use (e.g.
/// `num_batches_tracked`).
pub struct Imported {
    pub net: Supernet,
    pub unused: Vec<String>,
}

/// Imports an `OFAMobileNetV3` state dict saved as safetensors (`bytes`) into the space
/// `space` (which must describe the checkpoint: width, classes, input channels).
pub fn import_ofa_safetensors(bytes: &[u8], space: &Space) -> Result<Imported, ImportError> {
    let st =
        SafeTensors::deserialize(bytes).map_err(|e| ImportError::NotSafetensors(e.to_string()))?;
    let mut net = Supernet::new(space, &mut Rng::new(0));
    let cin = space.in_channels as usize;
    let mut used: BTreeSet<String> = BTreeSet::new();
    for p in net.params.iter_mut() {
        let (rows, cols) = p.data.dim();
        let layout = layout_of(&p.name);
        let shape = torch_shape(layout, rows, cols, cin);
        let v = read_f32(&st, &p.name, &shape)?;
        p.data = match layout {
            Layout::Stem => {
                // [out][in][ky][kx] -> [out][ky][kx][in]
                let k2 = cols / cin;
                Array2::from_shape_fn((rows, cols), |(o, j)| {
                    let (tap, ci) = (j / cin, j % cin);
                    v[(o * cin + ci) * k2 + tap]
                })
            }
            Layout::Depthwise => Array2::from_shape_fn((rows, cols), |(tap, c)| v[c * rows + tap]),
            Layout::Pointwise | Layout::Matrix => {
                Array2::from_shape_vec((rows, cols), v).expect("shape checked")
            }
            Layout::Vector => Array2::from_shape_vec((rows, 1), v).expect("shape checked"),
        };
        used.insert(p.name.clone());
    }
    for (layer, name) in net.bn_names.clone().iter().enumerate() {
        let c = net.running[layer].mean.len();
        for (suffix, is_mean) in [("running_mean", true), ("running_var", false)] {
            let tname = format!("{name}.{suffix}");
            let v = Array1::from(read_f32(&st, &tname, &[c])?);
            if is_mean {
                net.running[layer].mean = v;
            } else {
                net.running[layer].var = v;
            }
            used.insert(tname);
        }
    }
    let unused = st
        .names()
        .into_iter()
        .filter(|n| !used.contains(*n))
        .map(|n| n.to_string())
        .collect();
    Ok(Imported { net, unused })
}

/// `(classes, input channels)` as a checkpoint's classifier and first convolution show them.
pub fn checkpoint_classes_and_channels(bytes: &[u8]) -> Option<(u32, u32)> {
    let st = SafeTensors::deserialize(bytes).ok()?;
    let classes = *st
        .tensor("classifier.linear.weight")
        .ok()?
        .shape()
        .first()? as u32;
    let cin = *st.tensor("first_conv.conv.weight").ok()?.shape().get(1)? as u32;
    Some((classes, cin))
}
