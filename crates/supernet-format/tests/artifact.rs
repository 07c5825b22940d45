//! Round trips through the writer and the reader, and the reader's rejection of every kind
//! of malformed input (never a panic, always a named error).

mod common;

use common::*;
use proptest::prelude::*;
use supernet_format::arch::{self, bn_set_len, tensor_count};
use supernet_format::artifact::checksum;
use supernet_format::writer::AlignedBytes;
use supernet_format::*;

fn valid_bytes() -> Vec<u8> {
    writer(&small_space()).to_bytes().unwrap()
}

fn parse(bytes: &[u8]) -> Result<(), FormatError> {
    let buf = AlignedBytes::from_slice(bytes);
    Artifact::parse(buf.as_bytes()).map(|_| ())
}

/// Rewrites the checksum so that a test reaches the checks behind it.
fn reseal(b: &mut [u8]) {
    let c = checksum(b);
    b[HDR_CHECKSUM..HDR_CHECKSUM + 4].copy_from_slice(&c.to_le_bytes());
}

fn section(b: &[u8], tag: [u8; 4]) -> (usize, usize, usize) {
    let n = u32::from_le_bytes(b[24..28].try_into().unwrap()) as usize;
    let t = u32::from_le_bytes(b[28..32].try_into().unwrap()) as usize;
    for i in 0..n {
        let e = t + 16 * i;
        if b[e..e + 4] == tag {
            let off = u32::from_le_bytes(b[e + 4..e + 8].try_into().unwrap()) as usize;
            let len = u32::from_le_bytes(b[e + 8..e + 12].try_into().unwrap()) as usize;
            return (e, off, len);
        }
    }
    panic!("no section");
}

#[test]
fn round_trip_keeps_every_value() {
    let space = small_space();
    let w = writer(&space);
    let buf = AlignedBytes::from_slice(&w.to_bytes().unwrap());
    let a = Artifact::parse(buf.as_bytes()).unwrap();
    assert_eq!(*a.space(), space);
    assert_eq!(a.version(), (1, 1));
    assert_eq!(*a.prep(), w.prep);
    assert_eq!(a.meta(), w.meta.as_deref());
    for i in 0..tensor_count(&space) {
        let t = a.tensor(i).unwrap();
        assert_eq!(t, &w.tensors[i][..], "tensor {i}");
        // zero-copy: the slice points into the buffer, 64-byte aligned relative to its start
        let off = t.as_ptr() as usize - buf.as_bytes().as_ptr() as usize;
        assert_eq!(off % 64, 0);
    }
    assert!(a.tensor(tensor_count(&space)).is_none());
    assert_eq!(a.default_bn(), &w.default_bn[..]);
    assert_eq!(a.subnet_count(), 2);
    for (i, e) in w.subnets.iter().enumerate() {
        let s = a.subnet(i).unwrap();
        assert_eq!(
            (s.id, s.name, s.arena_bytes, s.latency_us),
            (e.id, e.name.as_str(), e.arena_bytes, e.latency_us)
        );
        assert_eq!(s.config, e.config);
        assert_eq!(s.bn, &e.bn[..]);
        assert_eq!(s.accuracy.to_bits(), e.accuracy.to_bits());
        let c = arch::cost(&space, &e.config);
        assert_eq!((s.macs, s.params), (c.macs, c.params));
        assert_eq!(a.subnet_by_id(e.id).unwrap().0, i);
    }
    assert!(a.subnet(2).is_none());
    assert!(a.subnet_by_id(12345).is_none());
}

/// A version 1.0 file (SUBN records without `latency_us`) still reads, with latency 0.
#[test]
fn version_1_0_records_read_with_unknown_latency() {
    let space = small_space();
    let mut b = valid_bytes();
    let (entry, off, len) = section(&b, TAG_SUBN);
    let n = u32::from_le_bytes(b[off..off + 4].try_into().unwrap()) as usize;
    let r = u32::from_le_bytes(b[off + 4..off + 8].try_into().unwrap()) as usize;
    let r0 = supernet_format::artifact::subn_record_len_v1_0(&space);
    assert_eq!(r, r0 + 4);
    for i in 0..n {
        b.copy_within(off + 8 + i * r..off + 8 + i * r + r0, off + 8 + i * r0);
    }
    b[off + 4..off + 8].copy_from_slice(&(r0 as u32).to_le_bytes());
    let new_len = 8 + n * r0;
    assert!(new_len < len);
    b[entry + 8..entry + 12].copy_from_slice(&(new_len as u32).to_le_bytes());
    b[off + new_len..off + len].fill(0);
    b[HDR_VERSION_MINOR..HDR_VERSION_MINOR + 2].copy_from_slice(&0u16.to_le_bytes());
    reseal(&mut b);
    let buf = AlignedBytes::from_slice(&b);
    let a = Artifact::parse(buf.as_bytes()).unwrap();
    assert_eq!(a.version(), (1, 0));
    assert_eq!(a.subnet_count(), n);
    for i in 0..n {
        let s = a.subnet(i).unwrap();
        assert_eq!(s.latency_us, 0);
        assert_eq!(s.arena_bytes, writer(&space).subnets[i].arena_bytes);
    }
    // a record shorter than 1.0's is still an error
    b[off + 4..off + 8].copy_from_slice(&((r0 - 4) as u32).to_le_bytes());
    reseal(&mut b);
    assert!(parse(&b).is_err());
}

#[test]
fn header_errors_are_named() {
    let good = valid_bytes();
    assert!(matches!(
        parse(&good[..10]),
        Err(FormatError::TooShort { len: 10 })
    ));
    let mut b = good.clone();
    b[1] = b'X';
    assert_eq!(parse(&b), Err(FormatError::BadMagic));
    let mut b = good.clone();
    b[8] = 2;
    assert_eq!(
        parse(&b),
        Err(FormatError::UnsupportedVersion {
            major: 2,
            minor: supernet_format::VERSION_MINOR
        })
    );
    assert!(matches!(
        parse(&good[..good.len() - 1]),
        Err(FormatError::SizeMismatch { .. })
    ));
    let mut b = good.clone();
    let last = b.len() - 1;
    b[last] ^= 0x40;
    assert!(matches!(parse(&b), Err(FormatError::Checksum { .. })));
    // a newer minor version is accepted
    let mut b = good.clone();
    b[10] = 3;
    reseal(&mut b);
    assert!(parse(&b).is_ok());
}

#[test]
fn misaligned_buffer_is_rejected() {
    let good = valid_bytes();
    let mut words = vec![0u32; good.len() / 4 + 2];
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut words);
    bytes[1..1 + good.len()].copy_from_slice(&good);
    assert_eq!(
        Artifact::parse(&bytes[1..1 + good.len()]).unwrap_err(),
        FormatError::Misaligned
    );
}

#[test]
fn section_errors_are_named() {
    let good = valid_bytes();
    // WGHT pointing past the end
    let mut b = good.clone();
    let (e, _, _) = section(&b, TAG_WGHT);
    b[e + 8..e + 12].copy_from_slice(&u32::MAX.to_le_bytes());
    reseal(&mut b);
    assert_eq!(
        parse(&b),
        Err(FormatError::Section {
            tag: TAG_WGHT,
            problem: SectionProblem::OutOfBounds
        })
    );
    // misaligned section
    let mut b = good.clone();
    let (e, off, _) = section(&b, TAG_SPAC);
    b[e + 4..e + 8].copy_from_slice(&(off as u32 + 4).to_le_bytes());
    reseal(&mut b);
    assert_eq!(
        parse(&b),
        Err(FormatError::Section {
            tag: TAG_SPAC,
            problem: SectionProblem::Misaligned
        })
    );
    // overlapping sections
    let mut b = good.clone();
    let (_, poff, _) = section(&b, TAG_PREP);
    let (e, _, _) = section(&b, TAG_SPAC);
    b[e + 4..e + 8].copy_from_slice(&(poff as u32).to_le_bytes());
    reseal(&mut b);
    assert!(matches!(
        parse(&b),
        Err(FormatError::Section {
            problem: SectionProblem::Overlap,
            ..
        })
    ));
    // a section over the header
    let mut b = good.clone();
    b[e + 4..e + 8].copy_from_slice(&0u32.to_le_bytes());
    reseal(&mut b);
    assert!(matches!(
        parse(&b),
        Err(FormatError::Section {
            problem: SectionProblem::Overlap,
            ..
        })
    ));
    // missing section (rename its tag)
    let mut b = good.clone();
    let (e, _, _) = section(&b, TAG_BNST);
    b[e..e + 4].copy_from_slice(b"XXXX");
    reseal(&mut b);
    assert_eq!(
        parse(&b),
        Err(FormatError::Section {
            tag: TAG_BNST,
            problem: SectionProblem::Missing
        })
    );
    // duplicate tag
    let mut b = good.clone();
    let (e, _, _) = section(&b, TAG_META);
    b[e..e + 4].copy_from_slice(&TAG_SPAC);
    reseal(&mut b);
    assert!(matches!(
        parse(&b),
        Err(FormatError::Section {
            problem: SectionProblem::Duplicate,
            ..
        })
    ));
    // unknown sections are ignored
    let mut b = good.clone();
    let (e, _, _) = section(&b, TAG_META);
    b[e..e + 4].copy_from_slice(b"ZZZZ");
    reseal(&mut b);
    assert!(parse(&b).is_ok());
}

#[test]
fn tensor_and_subnet_errors_are_named() {
    let good = valid_bytes();
    let space = small_space();
    let (_, tdir, _) = section(&good, TAG_TDIR);
    // wrong length of tensor 2
    let mut b = good.clone();
    let at = tdir + 8 + 8 * 2 + 4;
    let len = u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    b[at..at + 4].copy_from_slice(&(len + 1).to_le_bytes());
    reseal(&mut b);
    assert_eq!(
        parse(&b),
        Err(FormatError::Tensor {
            index: 2,
            problem: TensorProblem::Length {
                expected: len,
                found: len + 1
            }
        })
    );
    // tensor 5 outside WGHT
    let mut b = good.clone();
    let at = tdir + 8 + 8 * 5;
    b[at..at + 4].copy_from_slice(&64u32.to_le_bytes());
    reseal(&mut b);
    assert_eq!(
        parse(&b),
        Err(FormatError::Tensor {
            index: 5,
            problem: TensorProblem::OutOfBounds
        })
    );
    // misaligned tensor
    let mut b = good.clone();
    let off = u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    b[at..at + 4].copy_from_slice(&(off + 4).to_le_bytes());
    reseal(&mut b);
    assert_eq!(
        parse(&b),
        Err(FormatError::Tensor {
            index: 5,
            problem: TensorProblem::Misaligned
        })
    );

    let (_, subn, _) = section(&good, TAG_SUBN);
    let rec = u32::from_le_bytes(good[subn + 4..subn + 8].try_into().unwrap()) as usize;
    let r1 = subn + 8 + rec;
    // a kernel size that is not a choice, in the second record, slot 4
    let mut b = good.clone();
    b[r1 + 56 + 4] = 4;
    reseal(&mut b);
    assert_eq!(
        parse(&b),
        Err(FormatError::Subnet {
            index: 1,
            problem: SubnetProblem::Config(ConfigError::NotInSpace {
                field: Field::Ks,
                index: 4,
                value: 4
            })
        })
    );
    // duplicate id
    let mut b = good.clone();
    b[r1..r1 + 4].copy_from_slice(&7u32.to_le_bytes());
    reseal(&mut b);
    assert_eq!(
        parse(&b),
        Err(FormatError::Subnet {
            index: 1,
            problem: SubnetProblem::DuplicateId(7)
        })
    );
    // BN set of the wrong length
    let mut b = good.clone();
    let cfg = SubnetConfig::smallest(&space);
    let want = bn_set_len(&space, &cfg) as u32;
    let r0 = subn + 8;
    b[r0 + 52..r0 + 56].copy_from_slice(&(want - 2).to_le_bytes());
    reseal(&mut b);
    assert_eq!(
        parse(&b),
        Err(FormatError::Subnet {
            index: 0,
            problem: SubnetProblem::BnLength {
                expected: want,
                found: want - 2
            }
        })
    );
    // BN set outside BNST
    let mut b = good.clone();
    b[r0 + 48..r0 + 52].copy_from_slice(&64u32.to_le_bytes());
    reseal(&mut b);
    assert_eq!(
        parse(&b),
        Err(FormatError::Subnet {
            index: 0,
            problem: SubnetProblem::BnOutOfBounds
        })
    );
    // a NaN weight, a NaN in a BN set, a control character in a name
    let mut b = good.clone();
    let at = tdir + 8 + 8 * 3;
    let off = u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
    b[off..off + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    reseal(&mut b);
    assert_eq!(
        parse(&b),
        Err(FormatError::Tensor {
            index: 3,
            problem: TensorProblem::NotFinite
        })
    );
    let mut b = good.clone();
    let bn_off = u32::from_le_bytes(b[r1 + 48..r1 + 52].try_into().unwrap()) as usize;
    b[bn_off + 8..bn_off + 12].copy_from_slice(&f32::INFINITY.to_le_bytes());
    reseal(&mut b);
    assert_eq!(
        parse(&b),
        Err(FormatError::Subnet {
            index: 1,
            problem: SubnetProblem::BnNotFinite
        })
    );
    let mut b = good.clone();
    b[r1 + 9] = b'\n';
    reseal(&mut b);
    assert_eq!(
        parse(&b),
        Err(FormatError::Subnet {
            index: 1,
            problem: SubnetProblem::Name
        })
    );
    // accuracy out of range
    let mut b = good.clone();
    b[r0 + 24..r0 + 28].copy_from_slice(&1.5f32.to_le_bytes());
    reseal(&mut b);
    assert_eq!(
        parse(&b),
        Err(FormatError::Subnet {
            index: 0,
            problem: SubnetProblem::Accuracy
        })
    );
}

#[test]
fn writer_rejects_inconsistent_contents() {
    let space = small_space();
    let mut w = writer(&space);
    w.tensors[3].push(0.0);
    assert!(matches!(
        w.to_bytes(),
        Err(FormatError::Tensor { index: 3, .. })
    ));
    let mut w = writer(&space);
    w.subnets[1].bn.pop();
    assert!(matches!(
        w.to_bytes(),
        Err(FormatError::Subnet { index: 1, .. })
    ));
    let mut w = writer(&space);
    w.subnets[1].id = w.subnets[0].id;
    assert!(matches!(
        w.to_bytes(),
        Err(FormatError::Subnet {
            index: 1,
            problem: SubnetProblem::DuplicateId(_)
        })
    ));
    let mut w = writer(&space);
    w.subnets[0].name = "a name longer than sixteen".into();
    assert!(w.to_bytes().is_err());
    let mut w = writer(&space);
    w.tensors[2][0] = f32::NAN;
    assert!(matches!(
        w.to_bytes(),
        Err(FormatError::Tensor {
            index: 2,
            problem: TensorProblem::NotFinite
        })
    ));
}

#[test]
fn the_standard_space_round_trips() {
    let space = Space::ofa_mobilenet_v3(1.0, 1, 28, 10).unwrap();
    let bytes = writer(&space).to_bytes().unwrap();
    let buf = AlignedBytes::from_slice(&bytes);
    let a = Artifact::parse(buf.as_bytes()).unwrap();
    assert_eq!(a.space().n_slots(), 20);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("SUPERNET_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(3000),
        .. ProptestConfig::default()
    })]

    /// Bit flips, byte edits and truncations, with the checksum resealed half of the time
    /// so that the checks behind it are reached: the reader never panics, and whatever it
    /// accepts can be read in full. A longer run:
    /// `SUPERNET_FUZZ_CASES=100000 cargo test --release -p supernet-format --test artifact mutations`.
    #[test]
    fn mutations_never_panic(
        flips in prop::collection::vec((0usize..100_000, 0u8..8), 1..6),
        edits in prop::collection::vec((0usize..100_000, any::<u32>()), 0..3),
        cut in prop::option::of(0usize..100_000),
        reseal_it in any::<bool>(),
    ) {
        let mut b = valid_bytes();
        let n = b.len();
        for (at, bit) in flips {
            b[at % n] ^= 1 << bit;
        }
        for (at, v) in edits {
            let at = (at % (n - 4)) & !3;
            b[at..at + 4].copy_from_slice(&v.to_le_bytes());
        }
        if let Some(c) = cut {
            b.truncate(c % (n + 1));
        }
        if reseal_it && b.len() >= HEADER_LEN {
            reseal(&mut b);
        }
        let buf = AlignedBytes::from_slice(&b);
        if let Ok(a) = Artifact::parse(buf.as_bytes()) {
            let mut sum = 0f32;
            for i in 0..tensor_count(a.space()) {
                sum += a.tensor(i).unwrap().iter().sum::<f32>();
            }
            for i in 0..a.subnet_count() {
                let s = a.subnet(i).unwrap();
                sum += s.bn.iter().sum::<f32>();
            }
            sum += a.default_bn().iter().sum::<f32>();
            let _ = sum;
        }
    }
}
