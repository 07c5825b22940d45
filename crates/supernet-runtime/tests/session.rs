//! Model and Session behaviour: errors as values for every misuse, stored versus default
//! BN, arena sizing, and no panic on any (resealed) corruption of a valid artifact.

use proptest::prelude::*;
use supernet_format::arch::{bn_set_len, default_bn_len, tensors};
use supernet_format::artifact::checksum;
use supernet_format::writer::{AlignedBytes, ArtifactWriter, SubnetEntry};
use supernet_format::{ConfigError, Field, HDR_CHECKSUM, Prep, Space, SubnetConfig};
use supernet_runtime::{Error, Model, Session};
use supernet_testkit::{space, values};

fn artifact() -> Vec<u8> {
    let sp = space();
    let tensors = tensors(&sp)
        .enumerate()
        .map(|(i, t)| values(i as u64, t.len()).iter().map(|v| v * 0.5).collect())
        .collect();
    let mut mixed = SubnetConfig::largest(&sp);
    mixed.ks_mut()[0] = 3;
    mixed.d_mut()[1] = 2;
    let subnets = [
        (1, "smallest", SubnetConfig::smallest(&sp)),
        (5, "mixed", mixed),
    ]
    .into_iter()
    .map(|(id, name, config)| SubnetEntry {
        id,
        name: name.into(),
        accuracy: 0.5,
        arena_bytes: 0,
        latency_us: 0,
        config,
        bn: values(100 + id as u64, bn_set_len(&sp, &config))
            .iter()
            .map(|v| v + 1.0)
            .collect(),
    })
    .collect();
    ArtifactWriter {
        space: sp,
        prep: Prep::new(1.0 / 255.0, &[0.5], &[0.25]).unwrap(),
        tensors,
        default_bn: values(7, default_bn_len(&sp))
            .iter()
            .map(|v| v + 1.0)
            .collect(),
        subnets,
        meta: None,
    }
    .to_bytes()
    .unwrap()
}

#[test]
fn misuse_gives_error_values() {
    let buf = AlignedBytes::from_slice(&artifact());
    let model = Model::from_bytes(buf.as_bytes()).unwrap();
    let sp = *model.space();
    assert_eq!(model.input_len(), 16 * 16);
    assert_eq!(model.classes(), 4);

    // too small an arena for even the smallest config
    let mut tiny = vec![0f32; 10];
    assert!(matches!(
        Session::new(&model, &mut tiny),
        Err(Error::ArenaTooSmall { .. })
    ));

    let mut arena = vec![0f32; model.max_arena_len()];
    let mut s = Session::new(&model, &mut arena).unwrap();
    let mut out = [0f32; 4];
    let input = vec![0.1f32; model.input_len()];
    assert_eq!(
        s.run(&input[1..], &mut out),
        Err(Error::InputLength {
            expected: 256,
            found: 255
        })
    );
    assert_eq!(
        s.run(&input, &mut out[..3]),
        Err(Error::OutputLength {
            expected: 4,
            found: 3
        })
    );
    assert_eq!(s.select_subnet(99), Err(Error::UnknownSubnet { id: 99 }));
    let mut bad = SubnetConfig::largest(&sp);
    bad.ks_mut()[7] = 4;
    assert_eq!(
        s.select_config(&bad),
        Err(Error::Config(ConfigError::NotInSpace {
            field: Field::Ks,
            index: 7,
            value: 4
        }))
    );
    let other = Space::ofa_mobilenet_v3(0.35, 1, 16, 4).unwrap();
    let wrong_len = SubnetConfig::parse("{\"ks\": [3], \"e\": [3], \"d\": [2]}", &other);
    assert!(matches!(
        wrong_len,
        Err(ConfigError::Length {
            field: Field::Ks,
            expected: 20,
            found: 1
        })
    ));
    // a failed selection leaves the previous one active
    s.select_subnet(5).unwrap();
    assert!(s.select_subnet(99).is_err());
    assert_eq!(s.active().id, Some(5));
    s.run(&input, &mut out).unwrap();
    assert!(out.iter().all(|v| v.is_finite()));
}

#[test]
fn stored_configs_use_their_own_bn_and_others_the_default() {
    let buf = AlignedBytes::from_slice(&artifact());
    let model = Model::from_bytes(buf.as_bytes()).unwrap();
    let sp = *model.space();
    let mut arena = vec![0f32; model.max_arena_len()];
    let mut s = Session::new(&model, &mut arena).unwrap();
    let input: Vec<f32> = values(3, model.input_len())
        .iter()
        .map(|v| v * 2.0)
        .collect();
    let mut a = [0f32; 4];
    let mut b = [0f32; 4];
    s.select_subnet(1).unwrap();
    assert!(s.active().has_own_bn());
    s.run(&input, &mut a).unwrap();
    s.select_config(&SubnetConfig::smallest(&sp)).unwrap();
    assert_eq!(s.active().id, Some(1), "a stored config is recognised");
    s.run(&input, &mut b).unwrap();
    assert_eq!(a, b);
    let mut c = SubnetConfig::smallest(&sp);
    c.e_mut()[0] = 4;
    s.select_config(&c).unwrap();
    assert!(!s.active().has_own_bn());
    assert_eq!(s.active().id, None);
    s.run(&input, &mut b).unwrap();
    assert_ne!(a, b);
}

#[test]
fn a_small_arena_runs_small_subnets_only() {
    let buf = AlignedBytes::from_slice(&artifact());
    let model = Model::from_bytes(buf.as_bytes()).unwrap();
    let sp = *model.space();
    let small = model.arena_bytes(&SubnetConfig::smallest(&sp)) / 4;
    assert!(small < model.max_arena_len());
    let mut arena = vec![0f32; small];
    let mut s = Session::new(&model, &mut arena).unwrap();
    // the largest config does not fit: the biggest stored subnet that fits is active
    assert_eq!(s.active().id, Some(1));
    assert!(matches!(
        s.select_config(&SubnetConfig::largest(&sp)),
        Err(Error::ArenaTooSmall { .. })
    ));
    let mut out = [0f32; 4];
    s.run(&vec![0.0; model.input_len()], &mut out).unwrap();
}

fn reseal(b: &mut [u8]) {
    let c = checksum(b);
    b[HDR_CHECKSUM..HDR_CHECKSUM + 4].copy_from_slice(&c.to_le_bytes());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    /// Corrupted artifacts (checksum resealed so deep checks are reached): loading never
    /// panics; whatever loads runs every stored subnet and the extreme configs without
    /// panicking.
    #[test]
    fn corrupted_models_never_panic(
        flips in prop::collection::vec((0usize..1_000_000, 0u8..8), 1..8),
        cut in prop::option::of(0usize..1_000_000),
    ) {
        let mut b = artifact();
        let n = b.len();
        for (at, bit) in flips {
            // bias half of the flips towards the header, section table and directory
            let at = if at % 2 == 0 { at % 1024.min(n) } else { at % n };
            b[at] ^= 1 << bit;
        }
        if let Some(c) = cut {
            b.truncate(c % (n + 1));
        }
        if b.len() >= 64 {
            reseal(&mut b);
        }
        let buf = AlignedBytes::from_slice(&b);
        if let Ok(model) = Model::from_bytes(buf.as_bytes()) {
            let sp = *model.space();
            let mut arena = vec![0f32; model.max_arena_len()];
            if let Ok(mut s) = Session::new(&model, &mut arena) {
                let input = vec![0.5f32; model.input_len()];
                let mut out = vec![0f32; model.classes()];
                for i in 0..model.subnet_count() {
                    if s.select_index(i).is_ok() {
                        let _ = s.run(&input, &mut out);
                    }
                }
                for c in [SubnetConfig::largest(&sp), SubnetConfig::smallest(&sp)] {
                    if s.select_config(&c).is_ok() {
                        let _ = s.run(&input, &mut out);
                    }
                }
            }
        }
    }
}
