//! supernet-train: the std side. Defines the elastic OFA MobileNetV3 supernet on ndarray,
//! loads IDX datasets, trains with the sandwich rule and in-place distillation,
//! recalibrates BatchNorm per subnet and writes the weight-sharing artifact.
//!
//! - [`data`]: IDX datasets (any MNIST-format data), held-out split, augmentation;
//! - [`layers`]: forward and backward of every layer type, gradient-checked;
//! - [`supernet`]: the elastic network, its forward/backward for any subnet;
//! - [`trainer`]: sandwich-rule training with in-place distillation;
//! - [`calibrate`]: BN recalibration per subnet and held-out accuracy;
//! - [`export`]: writing the artifact;
//! - [`import`]: supernets trained by the original Once-for-All code.

pub mod calibrate;
pub mod data;
pub mod export;
pub mod import;
pub mod layers;
pub mod rng;
pub mod search;
pub mod spacefile;
pub mod supernet;
pub mod trainer;
