//! Zero-copy reading of an artifact: [`Artifact::parse`] validates every byte the spec
//! constrains (FORMAT.md section 7) and then hands out borrowed `&[f32]` tensors.

use crate::arch::{self, bn_set_len, default_bn_len, tensor_at, tensor_count};
use crate::config::SubnetConfig;
use crate::crc32::Crc32;
use crate::error::{FormatError, SectionProblem, SubnetProblem, TensorProblem};
use crate::space::{MAX_IN_CHANNELS, MAX_SLOTS, MAX_STAGES, Space};
use crate::*;

/// Input preprocessing (section PREP).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prep {
    /// Multiplies raw pixels (e.g. 1/255).
    pub pixel_scale: f32,
    pub mean: [f32; MAX_IN_CHANNELS],
    pub std: [f32; MAX_IN_CHANNELS],
    pub channels: usize,
}

impl Prep {
    /// Preprocessing for `channels` channels: `(p * pixel_scale - mean) / std`.
    pub fn new(pixel_scale: f32, mean: &[f32], std: &[f32]) -> Option<Prep> {
        let n = mean.len();
        if n == 0 || n > MAX_IN_CHANNELS || std.len() != n {
            return None;
        }
        let mut p = Prep {
            pixel_scale,
            mean: [0.0; MAX_IN_CHANNELS],
            std: [1.0; MAX_IN_CHANNELS],
            channels: n,
        };
        p.mean[..n].copy_from_slice(mean);
        p.std[..n].copy_from_slice(std);
        p.valid().then_some(p)
    }

    fn valid(&self) -> bool {
        let n = self.channels;
        self.pixel_scale.is_finite()
            && self.mean[..n].iter().all(|m| m.is_finite())
            && self.std[..n].iter().all(|s| s.is_finite() && *s > 0.0)
    }

    /// Length of the PREP section for this many channels.
    pub fn section_len(channels: usize) -> usize {
        8 + 8 * channels
    }

    /// Converts raw CHW pixels to the network's input.
    pub fn apply_u8(&self, pixels: &[u8], out: &mut [f32]) {
        let plane = pixels.len() / self.channels.max(1);
        for (i, (&p, o)) in pixels.iter().zip(out.iter_mut()).enumerate() {
            let c = (i / plane.max(1)).min(self.channels - 1);
            *o = (p as f32 * self.pixel_scale - self.mean[c]) / self.std[c];
        }
    }
}

/// One record of the stored-subnet table.
#[derive(Clone, Copy, Debug)]
pub struct StoredSubnet<'a> {
    pub id: u32,
    pub name: &'a str,
    /// Fraction correct on held-out training images; NaN if unknown.
    pub accuracy: f32,
    pub arena_bytes: u32,
    pub macs: u64,
    pub params: u64,
    /// Expected latency of one run in microseconds, measured by the writer on its machine;
    /// 0 if unknown (and in version 1.0 files). Replace it by timing on the device.
    pub latency_us: u32,
    pub config: SubnetConfig,
    /// The subnet's own BN set (FORMAT.md 5.5).
    pub bn: &'a [f32],
}

/// A validated artifact, borrowing the bytes it was parsed from.
#[derive(Clone, Copy, Debug)]
pub struct Artifact<'a> {
    bytes: &'a [u8],
    space: Space,
    prep: Prep,
    version_minor: u16,
    tdir: (usize, usize),
    bnst: (usize, usize),
    subn_records: (usize, usize),
    subnet_count: usize,
    record_size: usize,
    meta: Option<&'a str>,
}

#[inline]
fn rd_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

#[inline]
fn rd_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline]
fn rd_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// `bytes[off .. off + len]` as f32, if in bounds and aligned.
fn f32s(bytes: &[u8], off: usize, len: usize) -> Option<&[f32]> {
    let end = off.checked_add(len.checked_mul(4)?)?;
    bytemuck::try_cast_slice(bytes.get(off..end)?).ok()
}

fn all_finite(v: &[f32]) -> bool {
    v.iter().all(|x| x.is_finite())
}

/// Size of the fixed part of a SUBN record.
pub const SUBN_RECORD_FIXED: usize = 56;

/// Size of a version 1.0 SUBN record for a space (fixed part, configs, padding to 4): the
/// smallest record size a reader accepts.
pub fn subn_record_len_v1_0(space: &Space) -> usize {
    (SUBN_RECORD_FIXED + 2 * space.n_slots() + space.n_stages).div_ceil(4) * 4
}

/// Offset of `latency_us` (added in version 1.1) in a SUBN record.
pub fn subn_latency_at(space: &Space) -> usize {
    subn_record_len_v1_0(space)
}

/// Size of the SUBN records this version writes (1.0 record plus `latency_us`).
pub fn subn_record_len(space: &Space) -> usize {
    subn_record_len_v1_0(space) + 4
}

struct SectionEntry {
    tag: [u8; 4],
    off: usize,
    len: usize,
}

impl<'a> Artifact<'a> {
    /// Validates `bytes` as an artifact (FORMAT.md section 7). Never panics and never reads
    /// outside `bytes`, whatever they hold.
    pub fn parse(bytes: &'a [u8]) -> Result<Artifact<'a>, FormatError> {
        if bytes.len() < HEADER_LEN {
            return Err(FormatError::TooShort { len: bytes.len() });
        }
        if bytes[..8] != MAGIC {
            return Err(FormatError::BadMagic);
        }
        let major = rd_u16(bytes, HDR_VERSION_MAJOR);
        let minor = rd_u16(bytes, HDR_VERSION_MINOR);
        if major != VERSION_MAJOR {
            return Err(FormatError::UnsupportedVersion { major, minor });
        }
        let header_size = rd_u32(bytes, HDR_HEADER_SIZE) as usize;
        let file_size = rd_u32(bytes, HDR_FILE_SIZE);
        if file_size as usize != bytes.len() {
            return Err(FormatError::SizeMismatch {
                header: file_size,
                actual: bytes.len(),
            });
        }
        if header_size < HEADER_LEN || header_size > bytes.len() {
            return Err(FormatError::BadHeader("header size"));
        }
        let stored = rd_u32(bytes, HDR_CHECKSUM);
        let computed = checksum(bytes);
        if stored != computed {
            return Err(FormatError::Checksum { stored, computed });
        }
        if bytes.as_ptr() as usize % 4 != 0 {
            return Err(FormatError::Misaligned);
        }

        // Section table.
        let count = rd_u32(bytes, HDR_SECTION_COUNT) as usize;
        let table = rd_u32(bytes, HDR_SECTION_TABLE) as usize;
        if count == 0 || count > MAX_SECTIONS {
            return Err(FormatError::BadHeader("section count"));
        }
        if table % 8 != 0 || table < header_size {
            return Err(FormatError::BadHeader("section table offset"));
        }
        let table_end = table + count * SECTION_ENTRY_LEN;
        if table_end > bytes.len() {
            return Err(FormatError::BadHeader("section table extends past the end"));
        }
        let mut entries: [Option<SectionEntry>; MAX_SECTIONS] = [const { None }; MAX_SECTIONS];
        for (i, slot) in entries.iter_mut().enumerate().take(count) {
            let e = table + i * SECTION_ENTRY_LEN;
            let mut tag = [0u8; 4];
            tag.copy_from_slice(&bytes[e..e + 4]);
            let off = rd_u32(bytes, e + 4) as usize;
            let len = rd_u32(bytes, e + 8) as usize;
            let sec_err = |problem| FormatError::Section { tag, problem };
            if rd_u32(bytes, e + 12) != 0 {
                return Err(sec_err(SectionProblem::Reserved));
            }
            if off.checked_add(len).is_none_or(|end| end > bytes.len()) {
                return Err(sec_err(SectionProblem::OutOfBounds));
            }
            if off % ALIGN != 0 {
                return Err(sec_err(SectionProblem::Misaligned));
            }
            if len > 0 && (off < header_size || (off < table_end && table < off + len)) {
                return Err(sec_err(SectionProblem::Overlap));
            }
            *slot = Some(SectionEntry { tag, off, len });
        }
        // Pairwise: duplicates and overlaps (count is at most 32).
        for i in 0..count {
            for j in 0..i {
                let (Some(a), Some(b)) = (&entries[i], &entries[j]) else {
                    continue;
                };
                if a.tag == b.tag {
                    return Err(FormatError::Section {
                        tag: a.tag,
                        problem: SectionProblem::Duplicate,
                    });
                }
                if a.len > 0 && b.len > 0 && a.off < b.off + b.len && b.off < a.off + a.len {
                    return Err(FormatError::Section {
                        tag: a.tag,
                        problem: SectionProblem::Overlap,
                    });
                }
            }
        }
        let find = |tag: [u8; 4]| -> Result<(usize, usize), FormatError> {
            entries[..count]
                .iter()
                .flatten()
                .find(|e| e.tag == tag)
                .map(|e| (e.off, e.len))
                .ok_or(FormatError::Section {
                    tag,
                    problem: SectionProblem::Missing,
                })
        };
        let spac = find(TAG_SPAC)?;
        let prep = find(TAG_PREP)?;
        let tdir = find(TAG_TDIR)?;
        let wght = find(TAG_WGHT)?;
        let bnst = find(TAG_BNST)?;
        let subn = find(TAG_SUBN)?;
        let meta = find(TAG_META).ok();

        // SPAC
        let space = Space::decode(&bytes[spac.0..spac.0 + spac.1])?;

        // PREP
        let prep = parse_prep(&bytes[prep.0..prep.0 + prep.1], space.in_channels as usize)?;

        // TDIR
        let tdir_err = |problem| FormatError::Section {
            tag: TAG_TDIR,
            problem,
        };
        let tb = &bytes[tdir.0..tdir.0 + tdir.1];
        if tb.len() < 8 {
            return Err(tdir_err(SectionProblem::Length));
        }
        let n_tensors = rd_u32(tb, 0) as usize;
        if rd_u32(tb, 4) != 0 {
            return Err(tdir_err(SectionProblem::Reserved));
        }
        let expected = tensor_count(&space);
        if n_tensors != expected {
            return Err(FormatError::Tensor {
                index: 0,
                problem: TensorProblem::Count {
                    expected: expected as u32,
                    found: n_tensors as u32,
                },
            });
        }
        if tb.len() != 8 + 8 * n_tensors {
            return Err(tdir_err(SectionProblem::Length));
        }
        for (i, spec) in arch::tensors(&space).enumerate() {
            let off = rd_u32(tb, 8 + 8 * i) as usize;
            let len = rd_u32(tb, 12 + 8 * i) as usize;
            let terr = |problem| FormatError::Tensor {
                index: i as u32,
                problem,
            };
            if len != spec.len() {
                return Err(terr(TensorProblem::Length {
                    expected: spec.len() as u32,
                    found: len as u32,
                }));
            }
            if off % ALIGN != 0 {
                return Err(terr(TensorProblem::Misaligned));
            }
            let end = off.checked_add(len * 4);
            if off < wght.0 || end.is_none_or(|e| e > wght.0 + wght.1) {
                return Err(terr(TensorProblem::OutOfBounds));
            }
            let data = f32s(bytes, off, len).ok_or(terr(TensorProblem::OutOfBounds))?;
            if !all_finite(data) {
                return Err(terr(TensorProblem::NotFinite));
            }
        }

        // BNST
        let default_len = default_bn_len(&space);
        if bnst.1 < default_len * 4 {
            return Err(FormatError::Section {
                tag: TAG_BNST,
                problem: SectionProblem::Length,
            });
        }
        if !f32s(bytes, bnst.0, default_len).is_some_and(all_finite) {
            return Err(FormatError::Section {
                tag: TAG_BNST,
                problem: SectionProblem::Invalid(
                    "the default BN set holds a NaN or infinite value",
                ),
            });
        }

        // SUBN
        let sb = &bytes[subn.0..subn.0 + subn.1];
        let subn_err = |problem| FormatError::Section {
            tag: TAG_SUBN,
            problem,
        };
        if sb.len() < 8 {
            return Err(subn_err(SectionProblem::Length));
        }
        let subnet_count = rd_u32(sb, 0) as usize;
        let record_size = rd_u32(sb, 4) as usize;
        if subnet_count > MAX_SUBNETS {
            return Err(subn_err(SectionProblem::Invalid("more than 1024 subnets")));
        }
        if record_size < subn_record_len_v1_0(&space) || record_size % 4 != 0 {
            return Err(subn_err(SectionProblem::Invalid("record size too small")));
        }
        if sb.len() != 8 + subnet_count * record_size {
            return Err(subn_err(SectionProblem::Length));
        }

        let meta = match meta {
            Some((off, len)) => {
                Some(core::str::from_utf8(&bytes[off..off + len]).map_err(|_| {
                    FormatError::Section {
                        tag: TAG_META,
                        problem: SectionProblem::Invalid("not UTF-8"),
                    }
                })?)
            }
            None => None,
        };

        let art = Artifact {
            bytes,
            space,
            prep,
            version_minor: minor,
            tdir,
            bnst,
            subn_records: (subn.0 + 8, subnet_count * record_size),
            subnet_count,
            record_size,
            meta,
        };
        // Every record, and unique ids.
        for i in 0..subnet_count {
            let s = art.decode_subnet(i)?;
            for j in 0..i {
                let other = rd_u32(bytes, art.subn_records.0 + j * record_size);
                if other == s.id {
                    return Err(FormatError::Subnet {
                        index: i as u32,
                        problem: SubnetProblem::DuplicateId(s.id),
                    });
                }
            }
        }
        Ok(art)
    }

    /// The search space.
    pub fn space(&self) -> &Space {
        &self.space
    }

    /// Input preprocessing.
    pub fn prep(&self) -> &Prep {
        &self.prep
    }

    /// `(major, minor)` version of the file.
    pub fn version(&self) -> (u16, u16) {
        (VERSION_MAJOR, self.version_minor)
    }

    /// The bytes the artifact was parsed from.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Directory tensor `index` (see [`crate::arch::tensor_at`]); `None` past the end.
    pub fn tensor(&self, index: usize) -> Option<&'a [f32]> {
        if index >= tensor_count(&self.space) {
            return None;
        }
        let e = self.tdir.0 + 8 + 8 * index;
        let off = rd_u32(self.bytes, e) as usize;
        let len = rd_u32(self.bytes, e + 4) as usize;
        f32s(self.bytes, off, len)
    }

    /// The default BN set (BN of the largest config, sliced by any config).
    pub fn default_bn(&self) -> &'a [f32] {
        f32s(self.bytes, self.bnst.0, default_bn_len(&self.space)).unwrap_or(&[])
    }

    /// Number of stored subnets.
    pub fn subnet_count(&self) -> usize {
        self.subnet_count
    }

    /// Stored subnet `index` (in table order).
    pub fn subnet(&self, index: usize) -> Option<StoredSubnet<'a>> {
        if index >= self.subnet_count {
            return None;
        }
        self.decode_subnet(index).ok()
    }

    /// The stored subnet with this id, and its position in the table.
    pub fn subnet_by_id(&self, id: u32) -> Option<(usize, StoredSubnet<'a>)> {
        (0..self.subnet_count)
            .find(|&i| rd_u32(self.bytes, self.subn_records.0 + i * self.record_size) == id)
            .and_then(|i| self.subnet(i).map(|s| (i, s)))
    }

    /// Provenance JSON, if present.
    pub fn meta(&self) -> Option<&'a str> {
        self.meta
    }

    fn decode_subnet(&self, index: usize) -> Result<StoredSubnet<'a>, FormatError> {
        let err = |problem| FormatError::Subnet {
            index: index as u32,
            problem,
        };
        let space = &self.space;
        let r = &self.bytes[self.subn_records.0 + index * self.record_size..][..self.record_size];
        let id = rd_u32(r, 0);
        if rd_u32(r, 4) != 0 {
            return Err(err(SubnetProblem::Reserved));
        }
        let name_bytes = &r[8..24];
        let name_len = name_bytes.iter().position(|&b| b == 0).unwrap_or(16);
        if name_bytes[name_len..].iter().any(|&b| b != 0) {
            return Err(err(SubnetProblem::Name));
        }
        let name =
            core::str::from_utf8(&name_bytes[..name_len]).map_err(|_| err(SubnetProblem::Name))?;
        if name.chars().any(char::is_control) {
            return Err(err(SubnetProblem::Name));
        }
        let accuracy = f32::from_bits(rd_u32(r, 24));
        if !(accuracy.is_nan() || (0.0..=1.0).contains(&accuracy)) {
            return Err(err(SubnetProblem::Accuracy));
        }
        let arena_bytes = rd_u32(r, 28);
        let macs = rd_u64(r, 32);
        let params = rd_u64(r, 40);
        let bn_off = rd_u32(r, 48) as usize;
        let bn_len = rd_u32(r, 52) as usize;
        let slots = space.n_slots();
        let stages = space.n_stages;
        let mut ks = [0u8; MAX_SLOTS];
        let mut e = [0u8; MAX_SLOTS];
        let mut d = [0u8; MAX_STAGES];
        let at = SUBN_RECORD_FIXED;
        ks[..slots].copy_from_slice(&r[at..at + slots]);
        e[..slots].copy_from_slice(&r[at + slots..at + 2 * slots]);
        d[..stages].copy_from_slice(&r[at + 2 * slots..at + 2 * slots + stages]);
        // Padding of the 1.0 record; bytes after it are later minor versions' fields.
        let v1_0 = subn_record_len_v1_0(space);
        if r[at + 2 * slots + stages..v1_0].iter().any(|&b| b != 0) {
            return Err(err(SubnetProblem::Reserved));
        }
        let latency_at = subn_latency_at(space);
        let latency_us = if self.record_size >= latency_at + 4 {
            rd_u32(r, latency_at)
        } else {
            0
        };
        let config = SubnetConfig::new(space, &ks[..slots], &e[..slots], &d[..stages])
            .map_err(|c| err(SubnetProblem::Config(c)))?;
        let expected = bn_set_len(space, &config);
        if bn_len != expected {
            return Err(err(SubnetProblem::BnLength {
                expected: expected as u32,
                found: bn_len as u32,
            }));
        }
        let (b0, blen) = self.bnst;
        if bn_off % ALIGN != 0
            || bn_off < b0
            || bn_off
                .checked_add(bn_len * 4)
                .is_none_or(|end| end > b0 + blen)
        {
            return Err(err(SubnetProblem::BnOutOfBounds));
        }
        let bn = f32s(self.bytes, bn_off, bn_len).ok_or(err(SubnetProblem::BnOutOfBounds))?;
        if !all_finite(bn) {
            return Err(err(SubnetProblem::BnNotFinite));
        }
        Ok(StoredSubnet {
            id,
            name,
            accuracy,
            arena_bytes,
            macs,
            params,
            latency_us,
            config,
            bn,
        })
    }
}

fn parse_prep(b: &[u8], channels: usize) -> Result<Prep, FormatError> {
    let err = |problem| FormatError::Section {
        tag: TAG_PREP,
        problem,
    };
    if b.len() != Prep::section_len(channels) {
        return Err(err(SectionProblem::Length));
    }
    if rd_u32(b, 0) != 0 {
        return Err(err(SectionProblem::Invalid("unknown input layout")));
    }
    let f = |at: usize| f32::from_bits(rd_u32(b, at));
    let mut mean = [0f32; MAX_IN_CHANNELS];
    let mut std = [0f32; MAX_IN_CHANNELS];
    for c in 0..channels {
        mean[c] = f(8 + 4 * c);
        std[c] = f(8 + 4 * channels + 4 * c);
    }
    Prep::new(f(4), &mean[..channels], &std[..channels]).ok_or(err(SectionProblem::Invalid(
        "pixel scale, mean or std not finite, or std not positive",
    )))
}

/// CRC-32 of `bytes` with the checksum field read as zero.
pub fn checksum(bytes: &[u8]) -> u32 {
    let mut c = Crc32::new();
    c.update(&bytes[..HDR_CHECKSUM]);
    c.update(&[0u8; 4]);
    c.update(&bytes[HDR_CHECKSUM + 4..]);
    c.finish()
}

/// Tensor directory index of a tensor of a space, for writers and tests.
pub fn tensor_index(space: &Space, kind: arch::TensorKind) -> Option<usize> {
    (0..tensor_count(space)).find(|&i| tensor_at(space, i).kind == kind)
}
