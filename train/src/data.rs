//! IDX datasets (MNIST, Fashion-MNIST, KMNIST, ...): loading, the train/held-out split,
//! per-channel normalisation and batch assembly with augmentation.
//!
//! The IDX format is a big-endian header (magic `0x000008DD`, where `08` means unsigned
//! bytes and `DD` is the number of dimensions, then one `u32` per dimension) followed by
//! the raw payload. Images are `0x00000803` (`[n, rows, cols]`, one channel) or
//! `0x00000804` (`[n, rows, cols, channels]`, channels last); labels are `0x00000801`
//! (`[n]`). Files may be gzipped; gzip is detected by its magic bytes, not by the name.
//!
//! Loading never panics on a bad file: every problem is a [`DataError`] naming the file.

use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use flate2::bufread::MultiGzDecoder;
use serde::{Deserialize, Serialize};

use crate::rng::Rng;

/// IDX magic for unsigned-byte labels, `[n]`.
pub const MAGIC_LABELS: u32 = 0x0000_0801;
/// IDX magic for unsigned-byte grayscale images, `[n, rows, cols]`.
pub const MAGIC_IMAGES: u32 = 0x0000_0803;
/// IDX magic for unsigned-byte images with channels last, `[n, rows, cols, channels]`.
pub const MAGIC_IMAGES_CHANNELS: u32 = 0x0000_0804;

/// Deflate cannot expand data by more than about 1032:1, so a gzipped file of `c` bytes
/// decompresses to at most `c * 1032` bytes: a bound on what we may need to allocate.
const MAX_DEFLATE_RATIO: u64 = 1032;

/// Everything that can go wrong while loading a dataset.
#[derive(Debug)]
pub enum DataError {
    /// The data directory does not exist or is not a directory.
    NoDirectory { dir: PathBuf },
    /// The file could not be read.
    Io { path: PathBuf, source: io::Error },
    /// The file starts like gzip but does not decompress.
    Gzip { path: PathBuf, source: io::Error },
    /// None of the conventional file names exists in `dir`.
    NotFound { dir: PathBuf, tried: Vec<String> },
    /// The file is not an IDX file of the expected kind.
    BadMagic {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    /// The header declares dimensions that cannot be used (zero-sized images, overflow).
    BadHeader { path: PathBuf, reason: String },
    /// The (decompressed) file is shorter than its header says.
    Truncated {
        path: PathBuf,
        expected_bytes: u64,
        actual_bytes: u64,
    },
    /// The (decompressed) file is longer than its header says.
    TrailingBytes {
        path: PathBuf,
        expected_bytes: u64,
        actual_bytes: u64,
    },
    /// The image and label files disagree on the number of items.
    CountMismatch {
        images_path: PathBuf,
        labels_path: PathBuf,
        images: usize,
        labels: usize,
    },
    /// A label is not below the number of classes (test label unseen in training).
    LabelOutOfRange {
        path: PathBuf,
        index: usize,
        label: u8,
        classes: usize,
    },
    /// The file holds no images.
    Empty { path: PathBuf },
    /// Train and test images have different sizes.
    ShapeMismatch {
        train_path: PathBuf,
        test_path: PathBuf,
        /// `[rows, cols, channels]`
        train: [usize; 3],
        /// `[rows, cols, channels]`
        test: [usize; 3],
    },
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataError::Io { path, source } => {
                write!(f, "{}: cannot read: {source}", path.display())
            }
            DataError::Gzip { path, source } => {
                write!(f, "{}: corrupt gzip data: {source}", path.display())
            }
            DataError::NoDirectory { dir } if dir.exists() => {
                write!(
                    f,
                    "{}: not a directory (--data takes the dataset's directory)",
                    dir.display()
                )
            }
            DataError::NoDirectory { dir } => {
                write!(f, "{}: no such data directory", dir.display())
            }
            DataError::NotFound { dir, tried } => {
                write!(f, "no file named {} in {}", tried.join(", "), dir.display())
            }
            DataError::BadMagic {
                path,
                found,
                expected,
            } => {
                let kind = if *expected == MAGIC_LABELS {
                    "label"
                } else {
                    "image"
                };
                write!(
                    f,
                    "{}: not an IDX {kind} file (magic 0x{found:08x}, expected 0x{expected:08x})",
                    path.display()
                )
            }
            DataError::BadHeader { path, reason } => {
                write!(f, "{}: bad IDX header: {reason}", path.display())
            }
            DataError::Truncated {
                path,
                expected_bytes,
                actual_bytes,
            } => write!(
                f,
                "{}: truncated: header needs {expected_bytes} bytes, file has {actual_bytes} (after decompression)",
                path.display()
            ),
            DataError::TrailingBytes {
                path,
                expected_bytes,
                actual_bytes,
            } => write!(
                f,
                "{}: {} unexpected trailing bytes: header needs {expected_bytes} bytes, file has {actual_bytes} (after decompression)",
                path.display(),
                actual_bytes.saturating_sub(*expected_bytes)
            ),
            DataError::CountMismatch {
                images_path,
                labels_path,
                images,
                labels,
            } => write!(
                f,
                "{} has {images} images but {} has {labels} labels",
                images_path.display(),
                labels_path.display()
            ),
            DataError::LabelOutOfRange {
                path,
                index,
                label,
                classes,
            } => write!(
                f,
                "{}: label {label} of item {index} is out of range for {classes} classes",
                path.display()
            ),
            DataError::Empty { path } => write!(f, "{}: contains no images", path.display()),
            DataError::ShapeMismatch {
                train_path,
                test_path,
                train,
                test,
            } => write!(
                f,
                "{}: images are {}x{}x{} (rows x cols x channels) but {} images are {}x{}x{}",
                test_path.display(),
                test[0],
                test[1],
                test[2],
                train_path.display(),
                train[0],
                train[1],
                train[2]
            ),
        }
    }
}

/// The messages already include the underlying I/O or gzip error, so no `source()` is
/// reported (error chains would print it twice).
impl std::error::Error for DataError {}

/// Which half of an IDX dataset to load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    Train,
    Test,
}

impl Split {
    /// The file-name prefix: `train` or `t10k`.
    pub fn prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }

    /// Candidate image file names, in the order they are tried.
    pub fn image_names(self) -> Vec<String> {
        let p = self.prefix();
        vec![
            format!("{p}-images-idx3-ubyte.gz"),
            format!("{p}-images-idx3-ubyte"),
            format!("{p}-images.idx3-ubyte.gz"),
            format!("{p}-images.idx3-ubyte"),
            format!("{p}-images-idx4-ubyte.gz"),
            format!("{p}-images-idx4-ubyte"),
        ]
    }

    /// Candidate label file names, in the order they are tried.
    pub fn label_names(self) -> Vec<String> {
        let p = self.prefix();
        vec![
            format!("{p}-labels-idx1-ubyte.gz"),
            format!("{p}-labels-idx1-ubyte"),
            format!("{p}-labels.idx1-ubyte.gz"),
            format!("{p}-labels.idx1-ubyte"),
        ]
    }
}

/// An image classification dataset held in memory as raw bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Dataset {
    /// `n * rows * cols * channels` bytes, row-major, channels last.
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
    pub rows: usize,
    pub cols: usize,
    /// 1 for IDX `[n, rows, cols]` files.
    pub channels: usize,
    /// Number of classes: the largest label + 1 (inherited by subsets).
    pub classes: usize,
}

impl fmt::Debug for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dataset")
            .field("len", &self.len())
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .field("channels", &self.channels)
            .field("classes", &self.classes)
            .finish_non_exhaustive()
    }
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Bytes per image: `rows * cols * channels`.
    pub fn image_len(&self) -> usize {
        self.rows * self.cols * self.channels
    }

    /// The bytes of image `i` (`rows * cols * channels`, row-major, channels last).
    pub fn image(&self, i: usize) -> &[u8] {
        let len = self.image_len();
        &self.images[i * len..(i + 1) * len]
    }

    /// Loads `split` from `dir`, finding the files under their conventional names
    /// (see [`Split::image_names`] and [`Split::label_names`]).
    pub fn load(dir: &Path, split: Split) -> Result<Dataset, DataError> {
        let (images, labels) = locate(dir, split)?;
        load_files(&images, &labels)
    }

    /// The images at `indices`, in that order (indices may repeat). Keeps `classes`.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let len = self.image_len();
        let mut images = Vec::with_capacity(indices.len() * len);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            images.extend_from_slice(self.image(i));
            labels.push(self.labels[i]);
        }
        Dataset {
            images,
            labels,
            rows: self.rows,
            cols: self.cols,
            channels: self.channels,
            classes: self.classes,
        }
    }
}

/// Finds the image and label files of `split` in `dir`.
pub fn locate(dir: &Path, split: Split) -> Result<(PathBuf, PathBuf), DataError> {
    if !dir.is_dir() {
        return Err(DataError::NoDirectory {
            dir: dir.to_path_buf(),
        });
    }
    let find = |names: Vec<String>| {
        names
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file())
            .ok_or_else(|| DataError::NotFound {
                dir: dir.to_path_buf(),
                tried: names,
            })
    };
    Ok((find(split.image_names())?, find(split.label_names())?))
}

/// Loads an image file and a label file given by path.
pub fn load_files(images_path: &Path, labels_path: &Path) -> Result<Dataset, DataError> {
    let img = read_idx(images_path, Kind::Images)?;
    let (n, rows, cols, channels) = (img.dims[0], img.dims[1], img.dims[2], img.dims[3]);
    if n == 0 {
        return Err(DataError::Empty {
            path: images_path.to_path_buf(),
        });
    }
    let lab = read_idx(labels_path, Kind::Labels)?;
    if lab.dims[0] != n {
        return Err(DataError::CountMismatch {
            images_path: images_path.to_path_buf(),
            labels_path: labels_path.to_path_buf(),
            images: n,
            labels: lab.dims[0],
        });
    }
    let classes = lab.data.iter().copied().max().map_or(0, |m| m as usize + 1);
    Ok(Dataset {
        images: img.data,
        labels: lab.data,
        rows,
        cols,
        channels,
        classes,
    })
}

/// Loads both splits from `dir` and checks they fit together: same image size, and every
/// test label below the number of training classes. The test set's `classes` is set to
/// the training set's.
pub fn load_train_test(dir: &Path) -> Result<(Dataset, Dataset), DataError> {
    let (train_images, train_labels) = locate(dir, Split::Train)?;
    let (test_images, test_labels) = locate(dir, Split::Test)?;
    let train = load_files(&train_images, &train_labels)?;
    let mut test = load_files(&test_images, &test_labels)?;
    let shape = |d: &Dataset| [d.rows, d.cols, d.channels];
    if shape(&train) != shape(&test) {
        return Err(DataError::ShapeMismatch {
            train_path: train_images,
            test_path: test_images,
            train: shape(&train),
            test: shape(&test),
        });
    }
    if let Some((index, &label)) = test
        .labels
        .iter()
        .enumerate()
        .find(|&(_, &l)| l as usize >= train.classes)
    {
        return Err(DataError::LabelOutOfRange {
            path: test_labels,
            index,
            label,
            classes: train.classes,
        });
    }
    test.classes = train.classes;
    Ok((train, test))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Images,
    Labels,
}

/// A parsed IDX file: `dims` is `[n, rows, cols, channels]` for images, `[n, 1, 1, 1]`
/// for labels.
struct Idx {
    dims: [usize; 4],
    data: Vec<u8>,
}

/// Reads into `buf` until it is full or the reader is exhausted; returns the bytes read.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn read_idx(path: &Path, kind: Kind) -> Result<Idx, DataError> {
    let file = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let gz = file.starts_with(&[0x1f, 0x8b]);
    let mut gz_reader;
    let mut plain_reader;
    let reader: &mut dyn Read = if gz {
        gz_reader = MultiGzDecoder::new(&file[..]);
        &mut gz_reader
    } else {
        plain_reader = &file[..];
        &mut plain_reader
    };
    // Every read error below comes from the decoder: the file itself is in memory.
    let io_err = |source: io::Error| {
        if gz {
            DataError::Gzip {
                path: path.to_path_buf(),
                source,
            }
        } else {
            DataError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    };
    let truncated = |expected: u64, actual: u64| DataError::Truncated {
        path: path.to_path_buf(),
        expected_bytes: expected,
        actual_bytes: actual,
    };

    let mut magic = [0u8; 4];
    let got = read_full(reader, &mut magic).map_err(io_err)?;
    if got < 4 {
        return Err(truncated(4, got as u64));
    }
    let found = u32::from_be_bytes(magic);
    let expected = match kind {
        Kind::Images => MAGIC_IMAGES,
        Kind::Labels => MAGIC_LABELS,
    };
    let ndims = match (kind, found) {
        (Kind::Images, MAGIC_IMAGES) => 3,
        (Kind::Images, MAGIC_IMAGES_CHANNELS) => 4,
        (Kind::Labels, MAGIC_LABELS) => 1,
        _ => {
            return Err(DataError::BadMagic {
                path: path.to_path_buf(),
                found,
                expected,
            });
        }
    };
    let header_len = 4 + 4 * ndims as u64;
    let mut raw = [0u8; 16];
    let got = read_full(reader, &mut raw[..4 * ndims]).map_err(io_err)?;
    if got < 4 * ndims {
        return Err(truncated(header_len, 4 + got as u64));
    }
    let mut dims = [1u64; 4];
    for (d, b) in dims.iter_mut().zip(raw[..4 * ndims].chunks_exact(4)) {
        *d = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as u64;
    }
    let bad_header = |reason: String| DataError::BadHeader {
        path: path.to_path_buf(),
        reason,
    };
    if kind == Kind::Images && dims[1..].contains(&0) {
        return Err(bad_header(format!(
            "zero-sized images ({}x{}x{})",
            dims[1], dims[2], dims[3]
        )));
    }
    let payload = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .filter(|&p| p.checked_add(header_len).is_some())
        .ok_or_else(|| {
            bad_header(format!(
                "payload size {} overflows",
                dims[..ndims.max(1)]
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(" x ")
            ))
        })?;
    let expected_bytes = header_len + payload;

    // Never allocate more than the file can possibly hold.
    let available = if gz {
        (file.len() as u64).saturating_mul(MAX_DEFLATE_RATIO)
    } else {
        file.len() as u64 - header_len
    };
    if !gz && payload > available {
        return Err(truncated(expected_bytes, file.len() as u64));
    }
    let capacity = usize::try_from(payload.min(available))
        .map_err(|_| bad_header(format!("payload of {payload} bytes does not fit in memory")))?;
    let mut data = Vec::with_capacity(capacity);
    let got = reader
        .take(payload)
        .read_to_end(&mut data)
        .map_err(io_err)? as u64;
    if got < payload {
        return Err(truncated(expected_bytes, header_len + got));
    }
    let extra = io::copy(reader, &mut io::sink()).map_err(io_err)?;
    if extra > 0 {
        return Err(DataError::TrailingBytes {
            path: path.to_path_buf(),
            expected_bytes,
            actual_bytes: expected_bytes + extra,
        });
    }
    // `payload` fits in usize (it was allocated), so every dimension does too.
    Ok(Idx {
        dims: dims.map(|d| d as usize),
        data,
    })
}

/// Indices of a seeded random split of `0..n` into `(train, holdout)` with
/// `holdout` items held out; both lists are sorted. Deterministic for a given seed.
///
/// Panics unless `holdout < n`.
pub fn holdout_indices(n: usize, holdout: usize, seed: u64) -> (Vec<usize>, Vec<usize>) {
    assert!(
        holdout < n,
        "held-out set of {holdout} images must be smaller than the dataset ({n} images)"
    );
    let mut perm: Vec<usize> = (0..n).collect();
    // A stream of its own, so the split does not correlate with other uses of the seed.
    Rng::new(seed).fork(0x0053_504c_4954).shuffle(&mut perm);
    let mut held = perm[..holdout].to_vec();
    let mut train = perm[holdout..].to_vec();
    held.sort_unstable();
    train.sort_unstable();
    (train, held)
}

/// Splits `ds` into `(train, holdout)` by a seeded random permutation; see
/// [`holdout_indices`]. Both parts keep the original order and `classes`.
pub fn split_holdout(ds: &Dataset, holdout: usize, seed: u64) -> (Dataset, Dataset) {
    let (train, held) = holdout_indices(ds.len(), holdout, seed);
    (ds.subset(&train), ds.subset(&held))
}

/// Per-channel mean and standard deviation of pixels scaled to `[0, 1]`.
/// A pixel `p` becomes `(p / 255 - mean) / std`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalization {
    /// Statistics of all pixels of `ds` (exact integer sums). A constant channel gets
    /// `std = 1`; an empty dataset gets mean 0, std 1.
    pub fn from_dataset(ds: &Dataset) -> Normalization {
        let ch = ds.channels.max(1);
        // A histogram per channel, then exact integer moments.
        let mut hist = vec![0u64; 256 * ch];
        if ch == 1 {
            for &p in &ds.images {
                hist[p as usize] += 1;
            }
        } else {
            for px in ds.images.chunks_exact(ch) {
                for (c, &p) in px.iter().enumerate() {
                    hist[c * 256 + p as usize] += 1;
                }
            }
        }
        let mut sum = vec![0u64; ch];
        let mut sum_sq = vec![0u64; ch];
        for c in 0..ch {
            for (p, &k) in hist[c * 256..(c + 1) * 256].iter().enumerate() {
                sum[c] += k * p as u64;
                sum_sq[c] += k * (p * p) as u64;
            }
        }
        let count = (ds.images.len() / ch) as f64;
        let mut mean = Vec::with_capacity(ch);
        let mut std = Vec::with_capacity(ch);
        for c in 0..ch {
            if count == 0.0 {
                mean.push(0.0);
                std.push(1.0);
                continue;
            }
            let m = sum[c] as f64 / count;
            let var = (sum_sq[c] as f64 / count - m * m).max(0.0);
            let s = var.sqrt() / 255.0;
            mean.push((m / 255.0) as f32);
            std.push(if s > 1e-8 { s as f32 } else { 1.0 });
        }
        Normalization { mean, std }
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.mean.len()
    }

    /// The normalised value of raw pixel `p` in channel `c`.
    pub fn apply(&self, c: usize, p: u8) -> f32 {
        (p as f32 / 255.0 - self.mean[c]) / self.std[c]
    }

    /// `lut[c * 256 + p] == self.apply(c, p)`.
    fn lut(&self) -> Vec<f32> {
        let mut lut = Vec::with_capacity(256 * self.channels());
        for c in 0..self.channels() {
            lut.extend((0..=255u8).map(|p| self.apply(c, p)));
        }
        lut
    }
}

/// Training augmentation: random crop with zero padding, then optional horizontal flip.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Augment {
    /// Pixels of black padding on each side before a random `rows x cols` crop.
    pub pad: usize,
    /// Flip horizontally with probability 0.5.
    pub hflip: bool,
}

fn check_batch(ds: &Dataset, indices: &[usize], norm: &Normalization, out: &[f32]) {
    assert_eq!(
        norm.channels(),
        ds.channels,
        "normalisation has {} channels, dataset {}",
        norm.channels(),
        ds.channels
    );
    assert_eq!(
        out.len(),
        indices.len() * ds.image_len(),
        "batch buffer holds {} floats, {} images of {} need {}",
        out.len(),
        indices.len(),
        ds.image_len(),
        indices.len() * ds.image_len()
    );
}

/// Writes the images at `indices` into `out` as normalised f32 in NHWC layout
/// (`[n, rows, cols, channels]`), augmenting each with `aug` if given.
///
/// Per image, the random draws are: row offset then column offset (if `pad > 0`), then
/// the flip coin (if `hflip`); the output is a deterministic function of the rng state.
/// Panics if `out.len() != indices.len() * rows * cols * channels`.
pub fn fill_batch(
    ds: &Dataset,
    indices: &[usize],
    norm: &Normalization,
    aug: Option<&Augment>,
    rng: &mut Rng,
    out: &mut [f32],
) {
    check_batch(ds, indices, norm, out);
    let (rows, cols, ch) = (ds.rows, ds.cols, ds.channels);
    let len = ds.image_len();
    if len == 0 {
        return;
    }
    let lut = norm.lut();
    let black: Vec<f32> = (0..ch).map(|c| lut[c * 256]).collect();
    let aug = aug.filter(|a| a.pad > 0 || a.hflip);
    for (&i, dst) in indices.iter().zip(out.chunks_exact_mut(len)) {
        let img = ds.image(i);
        let Some(a) = aug else {
            if ch == 1 {
                for (o, &p) in dst.iter_mut().zip(img) {
                    *o = lut[p as usize];
                }
            } else {
                for (o, px) in dst.chunks_exact_mut(ch).zip(img.chunks_exact(ch)) {
                    for c in 0..ch {
                        o[c] = lut[c * 256 + px[c] as usize];
                    }
                }
            }
            continue;
        };
        let pad = a.pad;
        let (dy, dx) = if pad > 0 {
            let dy = rng.below(2 * pad + 1);
            (dy, rng.below(2 * pad + 1))
        } else {
            (0, 0)
        };
        let flip = a.hflip && rng.next_u64() >> 63 == 1;
        // Output (y, x) reads padded (y + dy, x' + dx), x' = x or cols - 1 - x when flipped;
        // padded (py, px) is source (py - pad, px - pad) when inside the image, else black.
        for (y, orow) in dst.chunks_exact_mut(cols * ch).enumerate() {
            let sy = (y + dy).wrapping_sub(pad);
            if sy >= rows {
                for o in orow.chunks_exact_mut(ch) {
                    o.copy_from_slice(&black);
                }
                continue;
            }
            let srow = &img[sy * cols * ch..(sy + 1) * cols * ch];
            for (x, o) in orow.chunks_exact_mut(ch).enumerate() {
                let xx = if flip { cols - 1 - x } else { x };
                let sx = (xx + dx).wrapping_sub(pad);
                if sx >= cols {
                    o.copy_from_slice(&black);
                } else if ch == 1 {
                    o[0] = lut[srow[sx] as usize];
                } else {
                    for c in 0..ch {
                        o[c] = lut[c * 256 + srow[sx * ch + c] as usize];
                    }
                }
            }
        }
    }
}

/// Writes the images at `indices` into `out` as normalised f32 in NCHW layout
/// (`[n, channels, rows, cols]`, the runtime's input layout), without augmentation.
/// Panics if `out.len() != indices.len() * rows * cols * channels`.
pub fn fill_batch_chw(ds: &Dataset, indices: &[usize], norm: &Normalization, out: &mut [f32]) {
    check_batch(ds, indices, norm, out);
    let len = ds.image_len();
    if len == 0 {
        return;
    }
    let ch = ds.channels;
    let plane = ds.rows * ds.cols;
    let lut = norm.lut();
    for (&i, dst) in indices.iter().zip(out.chunks_exact_mut(len)) {
        let img = ds.image(i);
        for (c, oplane) in dst.chunks_exact_mut(plane).enumerate() {
            let l = &lut[c * 256..(c + 1) * 256];
            for (o, px) in oplane.iter_mut().zip(img[c..].iter().step_by(ch)) {
                *o = l[*px as usize];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const FASHION: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/fashion-mnist");

    fn fashion() -> &'static (Dataset, Dataset) {
        static DATA: OnceLock<(Dataset, Dataset)> = OnceLock::new();
        DATA.get_or_init(|| load_train_test(Path::new(FASHION)).expect("load fashion-mnist"))
    }

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!(
                "supernet-data-test-{}-{tag}-{n}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
            let p = self.0.join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn idx(magic: u32, dims: &[u32], payload: &[u8]) -> Vec<u8> {
        let mut v = magic.to_be_bytes().to_vec();
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v.extend_from_slice(payload);
        v
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        MultiGzDecoder::new(bytes).read_to_end(&mut v).unwrap();
        v
    }

    /// A small valid split: `n` images of `rows x cols`, pixel bytes `i + k`, labels `i % 3`.
    fn small(n: u32, rows: u32, cols: u32) -> (Vec<u8>, Vec<u8>) {
        let len = (rows * cols) as usize;
        let pixels: Vec<u8> = (0..n as usize * len)
            .map(|k| (k / len + k % len) as u8)
            .collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 3) as u8).collect();
        (
            idx(MAGIC_IMAGES, &[n, rows, cols], &pixels),
            idx(MAGIC_LABELS, &[n], &labels),
        )
    }

    fn synthetic(rows: usize, cols: usize, channels: usize, n: usize) -> Dataset {
        let len = rows * cols * channels;
        Dataset {
            // Distinct non-zero values within an image, so crops can be identified.
            images: (0..n * len).map(|k| 1 + (k % len) as u8).collect(),
            labels: (0..n).map(|i| (i % 2) as u8).collect(),
            rows,
            cols,
            channels,
            classes: 2,
        }
    }

    /// Normalisation that maps p to p / 255, so raw pixels can be read back.
    fn identity_norm(ch: usize) -> Normalization {
        Normalization {
            mean: vec![0.0; ch],
            std: vec![1.0; ch],
        }
    }

    fn raw_back(out: &[f32]) -> Vec<u8> {
        out.iter().map(|v| (v * 255.0).round() as u8).collect()
    }

    #[test]
    fn loads_committed_fashion_mnist() {
        let (train, test) = fashion();
        assert_eq!(train.len(), 59_946);
        assert_eq!(test.len(), 10_000);
        for d in [train, test] {
            assert_eq!((d.rows, d.cols, d.channels, d.classes), (28, 28, 1, 10));
            assert_eq!(d.images.len(), d.len() * 784);
            assert!(d.labels.iter().all(|&l| l < 10));
            assert_eq!(d.image(d.len() - 1).len(), 784);
        }
        // Every class occurs in both splits.
        for c in 0..10u8 {
            assert!(train.labels.contains(&c) && test.labels.contains(&c));
        }
        let norm = Normalization::from_dataset(train);
        assert!((norm.mean[0] - 0.286).abs() < 0.01, "{norm:?}");
        assert!((norm.std[0] - 0.353).abs() < 0.01, "{norm:?}");
        assert_eq!(
            Dataset::load(Path::new(FASHION), Split::Test).unwrap(),
            *test
        );
    }

    #[test]
    fn plain_copy_and_mnist_names_load_identically() {
        let (train, test) = fashion();
        let tmp = TempDir::new("plain");
        let src = Path::new(FASHION);
        for name in [
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
        ] {
            let gz = std::fs::read(src.join(format!("{name}.gz"))).unwrap();
            tmp.write(name, &gunzip(&gz));
        }
        let plain_train = Dataset::load(&tmp.0, Split::Train).unwrap();
        assert!(plain_train == *train, "plain train differs");
        // MNIST's own spelling, plain and gzipped.
        let t_img = std::fs::read(tmp.0.join("t10k-images-idx3-ubyte")).unwrap();
        let t_lab = std::fs::read(tmp.0.join("t10k-labels-idx1-ubyte")).unwrap();
        let mnist = TempDir::new("mnist");
        mnist.write("t10k-images.idx3-ubyte", &t_img);
        mnist.write("t10k-labels.idx1-ubyte.gz", &gzip(&t_lab));
        let (img, lab) = locate(&mnist.0, Split::Test).unwrap();
        assert!(img.ends_with("t10k-images.idx3-ubyte"));
        assert!(lab.ends_with("t10k-labels.idx1-ubyte.gz"));
        assert!(Dataset::load(&mnist.0, Split::Test).unwrap() == *test);
    }

    #[test]
    fn gzip_detected_by_content_not_name() {
        let tmp = TempDir::new("sniff");
        let (img, lab) = small(4, 3, 5);
        // Gzipped data without .gz, plain data with .gz.
        tmp.write("train-images-idx3-ubyte", &gzip(&img));
        tmp.write("train-labels-idx1-ubyte.gz", &lab);
        let ds = Dataset::load(&tmp.0, Split::Train).unwrap();
        assert_eq!(
            (ds.len(), ds.rows, ds.cols, ds.channels, ds.classes),
            (4, 3, 5, 1, 3)
        );
        assert_eq!(ds.image(2)[..3], [2, 3, 4]);
    }

    #[test]
    fn four_dim_colour_images_load() {
        let tmp = TempDir::new("colour");
        let pixels: Vec<u8> = (0..2 * 2 * 3 * 3).map(|k| k as u8).collect();
        tmp.write(
            "train-images-idx4-ubyte",
            &idx(MAGIC_IMAGES_CHANNELS, &[2, 2, 3, 3], &pixels),
        );
        tmp.write(
            "train-labels-idx1-ubyte",
            &idx(MAGIC_LABELS, &[2], &[0, 255]),
        );
        let ds = Dataset::load(&tmp.0, Split::Train).unwrap();
        assert_eq!((ds.rows, ds.cols, ds.channels, ds.classes), (2, 3, 3, 256));
        assert_eq!(ds.image(1), &pixels[18..]);
        let norm = Normalization::from_dataset(&ds);
        assert_eq!(norm.channels(), 3);
        // NCHW: the first plane of image 0 is channel 0 = bytes 0, 3, 6, ...
        let mut chw = vec![0.0; 36];
        fill_batch_chw(&ds, &[0, 1], &identity_norm(3), &mut chw);
        assert_eq!(raw_back(&chw[..6]), [0, 3, 6, 9, 12, 15]);
        assert_eq!(raw_back(&chw[6..12]), [1, 4, 7, 10, 13, 16]);
        let mut hwc = vec![0.0; 36];
        fill_batch(
            &ds,
            &[0, 1],
            &identity_norm(3),
            None,
            &mut Rng::new(0),
            &mut hwc,
        );
        assert_eq!(raw_back(&hwc), pixels);
        // Each channel uses its own statistics: with means 0, 10, 20 the channels'
        // values land in disjoint ranges, with or without augmentation.
        let norm = Normalization {
            mean: vec![0.0, 10.0, 20.0],
            std: vec![1.0, 1.0, 1.0],
        };
        fill_batch_chw(&ds, &[0, 1], &norm, &mut chw);
        for (k, &v) in chw.iter().enumerate() {
            let (b, c, yx) = (k / 18, k / 6 % 3, k % 6);
            assert_eq!(v, norm.apply(c, ds.image(b)[yx * 3 + c]));
        }
        let aug = Augment {
            pad: 1,
            hflip: true,
        };
        let mut rng = Rng::new(4);
        for aug in [None, Some(&aug)] {
            for _ in 0..20 {
                fill_batch(&ds, &[0, 1], &norm, aug, &mut rng, &mut hwc);
                for (k, &v) in hwc.iter().enumerate() {
                    let lo = -10.0 * (k % 3) as f32;
                    assert!((lo..=lo + 1.0).contains(&v), "{k}: {v}");
                }
            }
        }
    }

    /// Writes a train split (`images`, `labels`) and returns the error of loading it.
    fn load_err(images: &[u8], labels: &[u8]) -> (DataError, String, TempDir) {
        let tmp = TempDir::new("bad");
        tmp.write("train-images-idx3-ubyte.gz", images);
        tmp.write("train-labels-idx1-ubyte.gz", labels);
        let err = Dataset::load(&tmp.0, Split::Train).unwrap_err();
        let msg = err.to_string();
        (err, msg, tmp)
    }

    #[test]
    fn bad_files_give_errors_naming_the_file() {
        let (img, lab) = small(4, 3, 5);

        // Wrong magic: a label file where images belong.
        let (e, msg, _t) = load_err(&lab, &lab);
        assert!(matches!(
            e,
            DataError::BadMagic {
                found: MAGIC_LABELS,
                expected: MAGIC_IMAGES,
                ..
            }
        ));
        assert!(msg.contains("train-images-idx3-ubyte.gz: not an IDX image file (magic 0x00000801, expected 0x00000803)"), "{msg}");
        let (e, msg, _t) = load_err(&img, &img);
        assert!(matches!(
            e,
            DataError::BadMagic {
                found: MAGIC_IMAGES,
                expected: MAGIC_LABELS,
                ..
            }
        ));
        assert!(
            msg.contains("train-labels-idx1-ubyte.gz: not an IDX label file"),
            "{msg}"
        );

        // Truncated header: inside the magic, and inside the dimensions (also gzipped).
        for bad in [img[..2].to_vec(), img[..10].to_vec(), gzip(&img[..10])] {
            let (e, msg, _t) = load_err(&bad, &lab);
            assert!(matches!(e, DataError::Truncated { .. }), "{e:?}");
            assert!(
                msg.contains("train-images-idx3-ubyte.gz: truncated"),
                "{msg}"
            );
        }

        // Truncated payload, plain and gzipped.
        for bad in [img[..img.len() - 1].to_vec(), gzip(&img[..img.len() - 1])] {
            let (e, msg, _t) = load_err(&bad, &lab);
            match e {
                DataError::Truncated {
                    expected_bytes,
                    actual_bytes,
                    ..
                } => {
                    assert_eq!((expected_bytes, actual_bytes), (16 + 60, 16 + 59));
                }
                e => panic!("{e:?}"),
            }
            assert!(msg.contains("train-images-idx3-ubyte.gz"), "{msg}");
        }

        // Trailing bytes, plain and gzipped.
        let mut long = lab.clone();
        long.extend_from_slice(&[0, 0, 0]);
        for bad in [long.clone(), gzip(&long)] {
            let (e, msg, _t) = load_err(&img, &bad);
            match e {
                DataError::TrailingBytes {
                    expected_bytes,
                    actual_bytes,
                    ..
                } => {
                    assert_eq!((expected_bytes, actual_bytes), (12, 15));
                }
                e => panic!("{e:?}"),
            }
            assert!(
                msg.contains("train-labels-idx1-ubyte.gz: 3 unexpected trailing bytes"),
                "{msg}"
            );
        }

        // Count mismatch.
        let (e, msg, _t) = load_err(&img, &idx(MAGIC_LABELS, &[3], &[0, 1, 2]));
        assert!(matches!(
            e,
            DataError::CountMismatch {
                images: 4,
                labels: 3,
                ..
            }
        ));
        assert!(
            msg.contains("train-images-idx3-ubyte.gz has 4 images but"),
            "{msg}"
        );
        assert!(
            msg.contains("train-labels-idx1-ubyte.gz has 3 labels"),
            "{msg}"
        );

        // Corrupt gzip: garbage after the gzip magic, and a gzip stream cut short.
        let gz = gzip(&img);
        let mut garbage = vec![0x1f, 0x8b];
        garbage.extend_from_slice(&[0xAB; 40]);
        for bad in [garbage, gz[..gz.len() / 2].to_vec()] {
            let (e, msg, _t) = load_err(&bad, &lab);
            assert!(matches!(e, DataError::Gzip { .. }), "{e:?}");
            assert!(
                msg.contains("train-images-idx3-ubyte.gz: corrupt gzip"),
                "{msg}"
            );
            assert!(std::error::Error::source(&e).is_none());
        }

        // Empty.
        let (e, msg, _t) = load_err(
            &idx(MAGIC_IMAGES, &[0, 28, 28], &[]),
            &idx(MAGIC_LABELS, &[0], &[]),
        );
        assert!(matches!(e, DataError::Empty { .. }));
        assert!(
            msg.contains("train-images-idx3-ubyte.gz: contains no images"),
            "{msg}"
        );

        // Absurd headers: overflow, zero-sized images, and huge sizes over a tiny payload
        // (must fail without trying to allocate terabytes).
        let (e, msg, _t) = load_err(&idx(MAGIC_IMAGES, &[u32::MAX; 3], &[1, 2, 3]), &lab);
        assert!(matches!(e, DataError::BadHeader { .. }), "{e:?}");
        assert!(
            msg.contains("train-images-idx3-ubyte.gz: bad IDX header"),
            "{msg}"
        );
        let (e, _, _t) = load_err(&idx(MAGIC_IMAGES, &[4, 0, 5], &[]), &lab);
        assert!(matches!(e, DataError::BadHeader { .. }), "{e:?}");
        let huge = idx(MAGIC_IMAGES, &[u32::MAX, 1 << 16, 1 << 8], &[7; 100]);
        for bad in [huge.clone(), gzip(&huge)] {
            let (e, _, _t) = load_err(&bad, &lab);
            assert!(
                matches!(
                    e,
                    DataError::Truncated {
                        actual_bytes: 116,
                        ..
                    }
                ),
                "{e:?}"
            );
        }

        // Io: the path is a directory.
        let tmp = TempDir::new("io");
        let dir = tmp.0.join("train-images-idx3-ubyte.gz");
        std::fs::create_dir(&dir).unwrap();
        let e = load_files(&dir, &dir).unwrap_err();
        assert!(matches!(e, DataError::Io { .. }), "{e:?}");
        assert!(
            e.to_string()
                .contains("train-images-idx3-ubyte.gz: cannot read"),
            "{e}"
        );
        assert!(
            std::error::Error::source(&e).is_none(),
            "the message holds the cause"
        );
    }

    #[test]
    fn missing_directory_is_named() {
        let e = Dataset::load(Path::new("/nonexistent-supernet-data"), Split::Train).unwrap_err();
        assert!(matches!(e, DataError::NoDirectory { .. }));
        assert_eq!(
            e.to_string(),
            "/nonexistent-supernet-data: no such data directory"
        );
        // a file where the directory should be
        let e = Dataset::load(Path::new("Cargo.toml"), Split::Test).unwrap_err();
        assert!(matches!(e, DataError::NoDirectory { .. }));
        assert!(e.to_string().contains("Cargo.toml: not a directory"), "{e}");
    }

    #[test]
    fn missing_file_lists_names_tried_and_dir() {
        let tmp = TempDir::new("missing");
        let e = Dataset::load(&tmp.0, Split::Test).unwrap_err();
        let msg = e.to_string();
        match &e {
            DataError::NotFound { dir, tried } => {
                assert_eq!(dir, &tmp.0);
                assert_eq!(tried, &Split::Test.image_names());
            }
            e => panic!("{e:?}"),
        }
        for name in [
            "t10k-images-idx3-ubyte.gz",
            "t10k-images-idx3-ubyte",
            "t10k-images.idx3-ubyte",
            "t10k-images.idx3-ubyte.gz",
        ] {
            assert!(msg.contains(name), "{msg}");
        }
        assert!(msg.contains(&tmp.0.display().to_string()), "{msg}");
        // Images present, labels missing.
        let (img, _) = small(2, 2, 2);
        tmp.write("t10k-images-idx3-ubyte", &img);
        let e = Dataset::load(&tmp.0, Split::Test).unwrap_err();
        assert!(e.to_string().contains("t10k-labels.idx1-ubyte.gz"), "{e}");
    }

    #[test]
    fn train_test_pair_checks_shape_and_labels() {
        let tmp = TempDir::new("pair");
        let (img, lab) = small(6, 3, 5);
        tmp.write("train-images-idx3-ubyte", &img);
        tmp.write("train-labels-idx1-ubyte", &lab);
        let (img4, _) = small(2, 4, 5);
        tmp.write("t10k-images-idx3-ubyte", &img4);
        tmp.write("t10k-labels-idx1-ubyte", &idx(MAGIC_LABELS, &[2], &[0, 1]));
        let e = load_train_test(&tmp.0).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::ShapeMismatch {
                    train: [3, 5, 1],
                    test: [4, 5, 1],
                    ..
                }
            ),
            "{e:?}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains("t10k-images-idx3-ubyte: images are 4x5x1"),
            "{msg}"
        );
        assert!(
            msg.contains("train-images-idx3-ubyte images are 3x5x1"),
            "{msg}"
        );

        let (img2, _) = small(2, 3, 5);
        tmp.write("t10k-images-idx3-ubyte", &img2);
        tmp.write("t10k-labels-idx1-ubyte", &idx(MAGIC_LABELS, &[2], &[1, 7]));
        let e = load_train_test(&tmp.0).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::LabelOutOfRange {
                    index: 1,
                    label: 7,
                    classes: 3,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(
            e.to_string().contains("t10k-labels-idx1-ubyte: label 7"),
            "{e}"
        );

        // A test set that lacks the top class still gets the training class count.
        tmp.write("t10k-labels-idx1-ubyte", &idx(MAGIC_LABELS, &[2], &[0, 0]));
        let (train, test) = load_train_test(&tmp.0).unwrap();
        assert_eq!((train.classes, test.classes), (3, 3));
    }

    #[test]
    fn holdout_split_is_deterministic_disjoint_and_complete() {
        let (a_train, a_held) = holdout_indices(1000, 100, 7);
        let (b_train, b_held) = holdout_indices(1000, 100, 7);
        assert_eq!((&a_train, &a_held), (&b_train, &b_held));
        assert_eq!((a_train.len(), a_held.len()), (900, 100));
        let mut all: Vec<usize> = a_train.iter().chain(&a_held).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        let (_, c_held) = holdout_indices(1000, 100, 8);
        assert_ne!(a_held, c_held);
        // Not just the first or last items.
        assert!(a_held.iter().any(|&i| i < 500) && a_held.iter().any(|&i| i >= 500));

        // Datasets: images made unique by their index.
        let n = 300;
        let ds = Dataset {
            images: (0..n)
                .flat_map(|i: usize| [(i >> 8) as u8, i as u8])
                .collect(),
            labels: (0..n).map(|i| (i % 4) as u8).collect(),
            rows: 1,
            cols: 2,
            channels: 1,
            classes: 4,
        };
        let (train, held) = split_holdout(&ds, 30, 99);
        assert_eq!((train.len(), held.len(), held.classes), (270, 30, 4));
        let id = |d: &Dataset, k: usize| (d.image(k)[0] as usize) << 8 | d.image(k)[1] as usize;
        let mut seen = vec![0u8; n];
        for d in [&train, &held] {
            for k in 0..d.len() {
                let i = id(d, k);
                seen[i] += 1;
                assert_eq!(d.labels[k], ds.labels[i]);
            }
        }
        assert!(seen.iter().all(|&s| s == 1));
        let (train2, held2) = split_holdout(&ds, 30, 99);
        assert!(train == train2 && held == held2);
        let (_, empty) = split_holdout(&ds, 0, 1);
        assert!(empty.is_empty());
    }

    #[test]
    #[should_panic(expected = "must be smaller")]
    fn holdout_must_be_smaller_than_dataset() {
        holdout_indices(10, 10, 0);
    }

    #[test]
    fn no_op_augmentation_equals_plain_and_chw_matches_hwc() {
        let (train, _) = fashion();
        let norm = Normalization::from_dataset(train);
        let idx: Vec<usize> = vec![0, 5, 59_945, 123, 5];
        let len = idx.len() * 784;
        let mut plain = vec![0.0; len];
        let mut noop = vec![1.0; len];
        let mut chw = vec![2.0; len];
        fill_batch(train, &idx, &norm, None, &mut Rng::new(1), &mut plain);
        let aug = Augment {
            pad: 0,
            hflip: false,
        };
        fill_batch(train, &idx, &norm, Some(&aug), &mut Rng::new(2), &mut noop);
        fill_batch_chw(train, &idx, &norm, &mut chw);
        assert_eq!(plain, noop);
        assert_eq!(plain, chw);
        for (k, &i) in idx.iter().enumerate() {
            for (j, &p) in train.image(i).iter().enumerate() {
                assert_eq!(
                    plain[k * 784 + j],
                    (p as f32 / 255.0 - norm.mean[0]) / norm.std[0]
                );
            }
        }
        // Deterministic given the rng.
        let aug = Augment {
            pad: 4,
            hflip: true,
        };
        let mut a = vec![0.0; len];
        let mut b = vec![0.0; len];
        fill_batch(train, &idx, &norm, Some(&aug), &mut Rng::new(3), &mut a);
        fill_batch(train, &idx, &norm, Some(&aug), &mut Rng::new(3), &mut b);
        assert_eq!(a, b);
        assert_ne!(a, plain);
    }

    #[test]
    fn hflip_mirrors_rows_half_the_time() {
        let ds = Dataset {
            images: vec![1, 2, 3, 4, 5, 6],
            labels: vec![0],
            rows: 2,
            cols: 3,
            channels: 1,
            classes: 1,
        };
        let aug = Augment {
            pad: 0,
            hflip: true,
        };
        let mut rng = Rng::new(5);
        let mut out = vec![0.0; 6];
        let mut flipped = 0;
        for _ in 0..1000 {
            fill_batch(&ds, &[0], &identity_norm(1), Some(&aug), &mut rng, &mut out);
            match raw_back(&out)[..] {
                [1, 2, 3, 4, 5, 6] => {}
                [3, 2, 1, 6, 5, 4] => flipped += 1,
                ref o => panic!("unexpected {o:?}"),
            }
        }
        assert!((400..600).contains(&flipped), "{flipped}");
    }

    /// The padded-crop of `img` at offsets (dy, dx), flipped or not, as raw bytes.
    fn expected_crop(
        ds: &Dataset,
        img: &[u8],
        pad: usize,
        dy: usize,
        dx: usize,
        flip: bool,
    ) -> Vec<u8> {
        let (rows, cols, ch) = (ds.rows, ds.cols, ds.channels);
        let mut v = Vec::with_capacity(rows * cols * ch);
        for y in 0..rows {
            for x in 0..cols {
                let xx = if flip { cols - 1 - x } else { x };
                for c in 0..ch {
                    let (py, px) = (y + dy, xx + dx);
                    let inside = py >= pad && py - pad < rows && px >= pad && px - pad < cols;
                    v.push(if inside {
                        img[((py - pad) * cols + px - pad) * ch + c]
                    } else {
                        0
                    });
                }
            }
        }
        v
    }

    #[test]
    fn crops_are_shifted_copies_with_black_padding_and_cover_all_offsets() {
        for (rows, cols, ch, pad, hflip) in [
            (5, 6, 1, 2, false),
            (5, 6, 1, 2, true),
            (4, 3, 2, 1, true),
            (3, 3, 1, 4, false),
        ] {
            let ds = synthetic(rows, cols, ch, 3);
            let norm = identity_norm(ch);
            let aug = Augment { pad, hflip };
            let side = 2 * pad + 1;
            let mut seen = vec![0usize; side * side * 2];
            let mut rng = Rng::new(11);
            let len = ds.image_len();
            let mut out = vec![0.0; 3 * len];
            for _ in 0..400 {
                fill_batch(&ds, &[0, 2, 1], &norm, Some(&aug), &mut rng, &mut out);
                for (k, &i) in [0usize, 2, 1].iter().enumerate() {
                    let got = raw_back(&out[k * len..(k + 1) * len]);
                    let mut matches = Vec::new();
                    for dy in 0..side {
                        for dx in 0..side {
                            for flip in [false, true].into_iter().take(1 + hflip as usize) {
                                if expected_crop(&ds, ds.image(i), pad, dy, dx, flip) == got {
                                    matches.push((dy * side + dx) * 2 + flip as usize);
                                }
                            }
                        }
                    }
                    assert!(!matches.is_empty(), "not a crop: {got:?}");
                    if matches.len() == 1 {
                        seen[matches[0]] += 1;
                    }
                }
            }
            for (m, &s) in seen.iter().enumerate() {
                let flip = m % 2 == 1;
                let (dy, dx) = (m / 2 / side, m / 2 % side);
                // Offsets that push the image entirely out are ambiguous (all black).
                let visible =
                    dy + rows > pad && dy < pad + rows && dx + cols > pad && dx < pad + cols;
                if visible && (hflip || !flip) {
                    assert!(s > 0, "offset ({dy}, {dx}, flip {flip}) never drawn");
                }
            }
        }
        // Black padding is the normalised value of a raw 0.
        let ds = synthetic(2, 2, 1, 1);
        let norm = Normalization {
            mean: vec![0.5],
            std: vec![0.25],
        };
        let aug = Augment {
            pad: 3,
            hflip: false,
        };
        let mut rng = Rng::new(0);
        let mut out = vec![0.0; 4];
        let mut saw_black = false;
        for _ in 0..50 {
            fill_batch(&ds, &[0], &norm, Some(&aug), &mut rng, &mut out);
            for &v in &out {
                let ok = v == -2.0 || (1..=4).any(|p| v == norm.apply(0, p));
                assert!(ok, "{v}");
                saw_black |= v == -2.0;
            }
        }
        assert!(saw_black);
    }

    #[test]
    #[should_panic(expected = "batch buffer")]
    fn wrong_batch_buffer_size_panics() {
        let ds = synthetic(2, 2, 1, 2);
        let mut out = vec![0.0; 7];
        fill_batch(
            &ds,
            &[0, 1],
            &identity_norm(1),
            None,
            &mut Rng::new(0),
            &mut out,
        );
    }
}
