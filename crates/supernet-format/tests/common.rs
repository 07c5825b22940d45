//! Builds small valid artifacts for the tests.
#![allow(dead_code)]

use supernet_format::arch::{self, bn_set_len, default_bn_len};
use supernet_format::space::{Act, Choices, Stage};
use supernet_format::writer::{ArtifactWriter, SubnetEntry};
use supernet_format::{Prep, Space, SubnetConfig};

/// A small space with SE and non-SE stages, strides 1 and 2, and a residual first slot.
pub fn small_space() -> Space {
    Space::from_explicit(
        1,
        12,
        3,
        8,
        8,
        16,
        24,
        0.25,
        &[
            Stage {
                width: 8,
                stride: 1,
                act: Act::Relu,
                se: false,
            },
            Stage {
                width: 16,
                stride: 2,
                act: Act::HSwish,
                se: true,
            },
        ],
        3,
        Choices::new(&[3, 5]).unwrap(),
        Choices::new(&[2, 4]).unwrap(),
        Choices::new(&[1, 3]).unwrap(),
    )
    .unwrap()
}

/// Deterministic pseudo-random floats.
pub fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

pub fn writer(space: &Space) -> ArtifactWriter {
    let tensors = arch::tensors(space)
        .enumerate()
        .map(|(i, t)| values(i as u64, t.len()))
        .collect();
    let small = SubnetConfig::smallest(space);
    let mut mixed = SubnetConfig::largest(space);
    mixed.ks_mut()[1] = space.ks.min();
    mixed.e_mut()[0] = space.e.min();
    mixed.d_mut()[0] = space.d.min();
    let subnets = [(7, "smallest", small, 0.5), (9, "mixed", mixed, f32::NAN)]
        .into_iter()
        .map(|(id, name, config, accuracy)| SubnetEntry {
            id,
            name: name.to_string(),
            accuracy,
            arena_bytes: 1000 + id,
            latency_us: 500 + id,
            config,
            bn: values(100 + id as u64, bn_set_len(space, &config)),
        })
        .collect();
    ArtifactWriter {
        space: *space,
        prep: Prep::new(
            1.0 / 255.0,
            &[0.5][..space.in_channels as usize],
            &[0.25][..space.in_channels as usize],
        )
        .unwrap(),
        tensors,
        default_bn: values(99, default_bn_len(space)),
        subnets,
        meta: Some("{\"dataset\": \"test\"}".to_string()),
    }
}
