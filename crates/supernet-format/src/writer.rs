//! Building an artifact (feature `std`). The writer checks every length against the space
//! before it lays out the file, so it never writes a file the reader would reject.

use std::string::String;
use std::vec::Vec;

use crate::arch::{self, bn_set_len, default_bn_len, tensor_count};
use crate::artifact::{SUBN_RECORD_FIXED, checksum, subn_latency_at, subn_record_len};
use crate::config::SubnetConfig;
use crate::error::{FormatError, SectionProblem, SubnetProblem, TensorProblem};
use crate::space::Space;
use crate::{Prep, *};

/// A stored subnet to write.
#[derive(Clone, Debug)]
pub struct SubnetEntry {
    pub id: u32,
    /// Up to 16 bytes of UTF-8.
    pub name: String,
    /// Fraction correct on held-out data, NaN if unknown.
    pub accuracy: f32,
    pub arena_bytes: u32,
    /// Expected latency of one run in microseconds on the writer's machine, 0 if unknown.
    pub latency_us: u32,
    pub config: SubnetConfig,
    /// Its BN set (FORMAT.md 5.5).
    pub bn: Vec<f32>,
}

/// Everything an artifact holds, owned.
#[derive(Clone, Debug)]
pub struct ArtifactWriter {
    pub space: Space,
    pub prep: Prep,
    /// One per directory entry, in the order of [`crate::arch::tensors`].
    pub tensors: Vec<Vec<f32>>,
    /// The default BN set (largest config).
    pub default_bn: Vec<f32>,
    pub subnets: Vec<SubnetEntry>,
    /// Provenance JSON.
    pub meta: Option<String>,
}

fn align(v: usize) -> usize {
    v.div_ceil(ALIGN) * ALIGN
}

fn put_u32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_f32s(buf: &mut [u8], at: usize, v: &[f32]) {
    for (i, x) in v.iter().enumerate() {
        buf[at + 4 * i..at + 4 * i + 4].copy_from_slice(&x.to_le_bytes());
    }
}

impl ArtifactWriter {
    /// Checks the contents against the space (the same rules the reader applies).
    pub fn check(&self) -> Result<(), FormatError> {
        self.space.validate()?;
        if self.prep.channels != self.space.in_channels as usize {
            return Err(FormatError::Section {
                tag: TAG_PREP,
                problem: SectionProblem::Length,
            });
        }
        let n = tensor_count(&self.space);
        if self.tensors.len() != n {
            return Err(FormatError::Tensor {
                index: 0,
                problem: TensorProblem::Count {
                    expected: n as u32,
                    found: self.tensors.len() as u32,
                },
            });
        }
        for (i, (t, spec)) in self
            .tensors
            .iter()
            .zip(arch::tensors(&self.space))
            .enumerate()
        {
            if t.iter().any(|v| !v.is_finite()) {
                return Err(FormatError::Tensor {
                    index: i as u32,
                    problem: TensorProblem::NotFinite,
                });
            }
            if t.len() != spec.len() {
                return Err(FormatError::Tensor {
                    index: i as u32,
                    problem: TensorProblem::Length {
                        expected: spec.len() as u32,
                        found: t.len() as u32,
                    },
                });
            }
        }
        if self.default_bn.iter().any(|v| !v.is_finite()) {
            return Err(FormatError::Section {
                tag: TAG_BNST,
                problem: SectionProblem::Invalid(
                    "the default BN set holds a NaN or infinite value",
                ),
            });
        }
        if self.default_bn.len() != default_bn_len(&self.space) {
            return Err(FormatError::Section {
                tag: TAG_BNST,
                problem: SectionProblem::Length,
            });
        }
        if self.subnets.len() > MAX_SUBNETS {
            return Err(FormatError::Section {
                tag: TAG_SUBN,
                problem: SectionProblem::Invalid("more than 1024 subnets"),
            });
        }
        for (i, s) in self.subnets.iter().enumerate() {
            let err = |problem| FormatError::Subnet {
                index: i as u32,
                problem,
            };
            s.config
                .validate(&self.space)
                .map_err(|c| err(SubnetProblem::Config(c)))?;
            let want = bn_set_len(&self.space, &s.config);
            if s.bn.iter().any(|v| !v.is_finite()) {
                return Err(err(SubnetProblem::BnNotFinite));
            }
            if s.bn.len() != want {
                return Err(err(SubnetProblem::BnLength {
                    expected: want as u32,
                    found: s.bn.len() as u32,
                }));
            }
            if s.name.len() > 16 || s.name.chars().any(char::is_control) {
                return Err(err(SubnetProblem::Name));
            }
            if !(s.accuracy.is_nan() || (0.0..=1.0).contains(&s.accuracy)) {
                return Err(err(SubnetProblem::Accuracy));
            }
            if self.subnets[..i].iter().any(|o| o.id == s.id) {
                return Err(err(SubnetProblem::DuplicateId(s.id)));
            }
        }
        Ok(())
    }

    /// The artifact's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, FormatError> {
        self.check()?;
        let space = &self.space;
        let meta = self.meta.as_deref().unwrap_or("");
        let has_meta = self.meta.is_some();
        let n_sections = 6 + has_meta as usize;

        // Section sizes.
        let spac_len = space.spac_len();
        let prep_len = Prep::section_len(space.in_channels as usize);
        let n_tensors = self.tensors.len();
        let tdir_len = 8 + 8 * n_tensors;
        let rec = subn_record_len(space);
        let subn_len = 8 + rec * self.subnets.len();
        let wght_len: usize = self.tensors.iter().map(|t| align(4 * t.len())).sum();
        let bnst_len = align(4 * self.default_bn.len())
            + self
                .subnets
                .iter()
                .map(|s| align(4 * s.bn.len()))
                .sum::<usize>();

        // Layout.
        let table = HEADER_LEN;
        let mut at = align(table + SECTION_ENTRY_LEN * n_sections);
        let mut place = |len: usize| {
            let off = at;
            at = align(at + len);
            off
        };
        let spac_off = place(spac_len);
        let prep_off = place(prep_len);
        let tdir_off = place(tdir_len);
        let subn_off = place(subn_len);
        let meta_off = if has_meta { place(meta.len()) } else { 0 };
        let wght_off = place(wght_len);
        let bnst_off = place(bnst_len);
        let file_len = at;
        if file_len > u32::MAX as usize {
            return Err(FormatError::BadHeader("file larger than 4 GiB"));
        }
        let mut b = std::vec![0u8; file_len];

        // Header and section table.
        b[..8].copy_from_slice(&MAGIC);
        b[HDR_VERSION_MAJOR..HDR_VERSION_MAJOR + 2].copy_from_slice(&VERSION_MAJOR.to_le_bytes());
        b[HDR_VERSION_MINOR..HDR_VERSION_MINOR + 2].copy_from_slice(&VERSION_MINOR.to_le_bytes());
        put_u32(&mut b, HDR_HEADER_SIZE, HEADER_LEN as u32);
        put_u32(&mut b, HDR_FILE_SIZE, file_len as u32);
        put_u32(&mut b, HDR_SECTION_COUNT, n_sections as u32);
        put_u32(&mut b, HDR_SECTION_TABLE, table as u32);
        let mut sections = std::vec![
            (TAG_SPAC, spac_off, spac_len),
            (TAG_PREP, prep_off, prep_len),
            (TAG_TDIR, tdir_off, tdir_len),
            (TAG_SUBN, subn_off, subn_len),
        ];
        if has_meta {
            sections.push((TAG_META, meta_off, meta.len()));
        }
        sections.push((TAG_WGHT, wght_off, wght_len));
        sections.push((TAG_BNST, bnst_off, bnst_len));
        for (i, (tag, off, len)) in sections.iter().enumerate() {
            let e = table + i * SECTION_ENTRY_LEN;
            b[e..e + 4].copy_from_slice(tag);
            put_u32(&mut b, e + 4, *off as u32);
            put_u32(&mut b, e + 8, *len as u32);
        }

        // SPAC, PREP
        space.encode(&mut b[spac_off..spac_off + spac_len]);
        let c = space.in_channels as usize;
        put_u32(&mut b, prep_off, 0);
        put_f32s(&mut b, prep_off + 4, &[self.prep.pixel_scale]);
        put_f32s(&mut b, prep_off + 8, &self.prep.mean[..c]);
        put_f32s(&mut b, prep_off + 8 + 4 * c, &self.prep.std[..c]);

        // TDIR + WGHT
        put_u32(&mut b, tdir_off, n_tensors as u32);
        let mut w = wght_off;
        for (i, t) in self.tensors.iter().enumerate() {
            put_u32(&mut b, tdir_off + 8 + 8 * i, w as u32);
            put_u32(&mut b, tdir_off + 12 + 8 * i, t.len() as u32);
            put_f32s(&mut b, w, t);
            w += align(4 * t.len());
        }

        // BNST + SUBN
        put_f32s(&mut b, bnst_off, &self.default_bn);
        let mut bn_at = bnst_off + align(4 * self.default_bn.len());
        put_u32(&mut b, subn_off, self.subnets.len() as u32);
        put_u32(&mut b, subn_off + 4, rec as u32);
        let slots = space.n_slots();
        for (i, s) in self.subnets.iter().enumerate() {
            let r = subn_off + 8 + i * rec;
            let cost = arch::cost(space, &s.config);
            put_u32(&mut b, r, s.id);
            b[r + 8..r + 8 + s.name.len()].copy_from_slice(s.name.as_bytes());
            put_f32s(&mut b, r + 24, &[s.accuracy]);
            put_u32(&mut b, r + 28, s.arena_bytes);
            b[r + 32..r + 40].copy_from_slice(&cost.macs.to_le_bytes());
            b[r + 40..r + 48].copy_from_slice(&cost.params.to_le_bytes());
            put_u32(&mut b, r + 48, bn_at as u32);
            put_u32(&mut b, r + 52, s.bn.len() as u32);
            let cfg = r + SUBN_RECORD_FIXED;
            b[cfg..cfg + slots].copy_from_slice(s.config.ks());
            b[cfg + slots..cfg + 2 * slots].copy_from_slice(s.config.e());
            b[cfg + 2 * slots..cfg + 2 * slots + space.n_stages].copy_from_slice(s.config.d());
            put_u32(&mut b, r + subn_latency_at(space), s.latency_us);
            put_f32s(&mut b, bn_at, &s.bn);
            bn_at += align(4 * s.bn.len());
        }

        // META
        if has_meta {
            b[meta_off..meta_off + meta.len()].copy_from_slice(meta.as_bytes());
        }

        let crc = checksum(&b);
        put_u32(&mut b, HDR_CHECKSUM, crc);
        Ok(b)
    }
}

/// Bytes in an 8-byte aligned heap buffer, so an artifact read from a file can be parsed in
/// place (the reader needs 4-byte alignment; a memory map gives page alignment).
#[derive(Clone, Debug, Default)]
pub struct AlignedBytes {
    words: Vec<u64>,
    len: usize,
}

impl AlignedBytes {
    pub fn from_slice(bytes: &[u8]) -> AlignedBytes {
        let mut words = std::vec![0u64; bytes.len().div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        AlignedBytes {
            words,
            len: bytes.len(),
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &bytemuck::cast_slice::<u64, u8>(&self.words)[..self.len]
    }

    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut::<u64, u8>(&mut self.words)[..self.len]
    }
}
