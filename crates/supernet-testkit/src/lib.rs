//! Test fixtures shared by the runtime's and the C API's tests: the small search space
//! their artifacts are built on, and deterministic pseudo-random values for weights and BN.
//! A dev-dependency only; nothing the device build compiles.

use supernet_format::Space;

/// OFA MobileNetV3 at width 0.35, 1 input channel, 16x16 input, 4 classes.
pub fn space() -> Space {
    Space::ofa_mobilenet_v3(0.35, 1, 16, 4).unwrap()
}

/// `n` deterministic values in [-0.5, 0.5) (xorshift64 seeded by `seed`).
pub fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}
