//! Kernel tests: hand-computed cases that pin down the reference kernels, then property tests
//! comparing every fast kernel against its reference over random shapes, strides, leading
//! dimensions and activations.
//!
//! Unused columns of wide (`ld > cols`) weights are filled with NaN and weight slices end right
//! after the last used element, so any read outside the subnet's window shows up as a NaN or a
//! panic. Output buffers carry a sentinel tail that must stay untouched.

#![allow(clippy::too_many_arguments, clippy::type_complexity)]

use proptest::prelude::*;
use supernet_runtime::kernels::{self, Act, conv_out_dim, reference};

const SENTINEL: f32 = 12345.0;
const TAIL: usize = 3;
const ACTS: [Act; 3] = [Act::None, Act::Relu, Act::HSwish];

/// Deterministic xorshift64* source of values in [-1, 1).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40; // 24 bits
        bits as f32 / (1u64 << 23) as f32 - 1.0
    }
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.next_f32()).collect()
    }
    /// Values in [lo, hi).
    fn vec_in(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n)
            .map(|_| lo + (self.next_f32() + 1.0) * 0.5 * (hi - lo))
            .collect()
    }
    /// A `rows x cols` matrix stored with leading dimension `ld >= cols`: columns past `cols`
    /// are NaN and the slice ends right after the last used element of the last row.
    fn wide(&mut self, rows: usize, cols: usize, ld: usize) -> Vec<f32> {
        assert!(ld >= cols);
        if rows == 0 {
            return Vec::new();
        }
        let mut v = vec![f32::NAN; (rows - 1) * ld + cols];
        for r in 0..rows {
            for c in 0..cols {
                v[r * ld + c] = self.next_f32();
            }
        }
        v
    }
}

fn out_buf(n: usize) -> Vec<f32> {
    vec![SENTINEL; n + TAIL]
}

/// Checks `fast` against `expected` with |a - b| <= 1e-4 * (1 + |b|), both finite, and that
/// the sentinel tails are intact.
fn check_close(fast: &[f32], expected: &[f32], n: usize) -> Result<(), TestCaseError> {
    prop_assert_eq!(fast.len(), expected.len());
    for i in 0..n {
        let (a, b) = (fast[i], expected[i]);
        prop_assert!(b.is_finite(), "reference[{}] = {} not finite", i, b);
        prop_assert!(a.is_finite(), "fast[{}] = {} not finite", i, a);
        prop_assert!(
            (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
            "index {}: fast {} vs reference {}",
            i,
            a,
            b
        );
    }
    for i in n..fast.len() {
        prop_assert_eq!(fast[i], SENTINEL, "fast wrote past the output at {}", i);
        prop_assert_eq!(
            expected[i],
            SENTINEL,
            "reference wrote past the output at {}",
            i
        );
    }
    Ok(())
}

fn act_strategy() -> impl Strategy<Value = Act> {
    prop::sample::select(ACTS.to_vec())
}

fn assert_exact(got: &[f32], want: &[f32]) {
    assert_eq!(&got[..want.len()], want);
}

// ---------------------------------------------------------------------------------------------
// Hand-computed cases (pin the reference; the fast kernels must agree too).
// ---------------------------------------------------------------------------------------------

#[test]
fn activations_at_known_points() {
    let xs = [-4.0f32, -3.0, 0.0, 3.0, 4.0];
    let hswish: Vec<f32> = xs.iter().map(|&x| kernels::hswish(x)).collect();
    let hsigmoid: Vec<f32> = xs.iter().map(|&x| kernels::hsigmoid(x)).collect();
    let relu: Vec<f32> = xs.iter().map(|&x| kernels::relu(x)).collect();
    assert_eq!(hswish, [0.0, 0.0, 0.0, 3.0, 4.0]);
    assert_eq!(hsigmoid, [0.0, 0.0, 0.5, 1.0, 1.0]);
    assert_eq!(relu, [0.0, 0.0, 0.0, 3.0, 4.0]);
    assert_eq!(kernels::hswish(1.0), 1.0 * 4.0 / 6.0);
    assert_eq!(kernels::hswish(-1.0), -2.0 / 6.0);
    assert_eq!(kernels::hsigmoid(1.5), 0.75);
    assert_eq!(Act::None.apply(-2.5), -2.5);
    assert_eq!(Act::Relu.apply(-2.5), 0.0);
    assert_eq!(Act::Relu.apply(2.5), 2.5);
    assert_eq!(Act::HSwish.apply(3.0), 3.0);
    assert_eq!(Act::HSwish.apply(-1.0), kernels::hswish(-1.0));
}

#[test]
fn conv_out_dims() {
    assert_eq!(conv_out_dim(28, 3, 2), 14);
    assert_eq!(conv_out_dim(14, 7, 2), 7);
    assert_eq!(conv_out_dim(7, 5, 1), 7);
    assert_eq!(conv_out_dim(3, 3, 2), 2);
    assert_eq!(conv_out_dim(1, 7, 2), 1);
    assert_eq!(conv_out_dim(2, 1, 2), 1);
    assert_eq!(conv_out_dim(0, 3, 1), 0);
}

type Depthwise =
    fn(&[f32], usize, usize, usize, &[f32], usize, usize, usize, &[f32], &[f32], Act, &mut [f32]);
const DEPTHWISE: [Depthwise; 2] = [kernels::depthwise, reference::depthwise];

#[test]
fn depthwise_3x3_box_filter_on_3x3_image() {
    let input: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let weight = [1.0f32; 9];
    for f in DEPTHWISE {
        let mut out = out_buf(9);
        f(
            &input,
            3,
            3,
            1,
            &weight,
            1,
            3,
            1,
            &[1.0],
            &[0.0],
            Act::None,
            &mut out,
        );
        assert_exact(
            &out,
            &[12.0, 21.0, 16.0, 27.0, 45.0, 33.0, 24.0, 39.0, 28.0],
        );
        assert_eq!(out[9], SENTINEL);
        // Stride 2 keeps the corners.
        let mut out = out_buf(4);
        f(
            &input,
            3,
            3,
            1,
            &weight,
            1,
            3,
            2,
            &[1.0],
            &[0.0],
            Act::None,
            &mut out,
        );
        assert_exact(&out, &[12.0, 16.0, 24.0, 28.0]);
        // Folded BN and activation: y = relu(acc * 0.5 - 10).
        let mut out = out_buf(9);
        f(
            &input,
            3,
            3,
            1,
            &weight,
            1,
            3,
            1,
            &[0.5],
            &[-10.0],
            Act::Relu,
            &mut out,
        );
        assert_exact(&out, &[0.0, 0.5, 0.0, 3.5, 12.5, 6.5, 2.0, 9.5, 4.0]);
    }
}

#[test]
fn depthwise_channels_and_taps_are_independent() {
    // 2x2 image, 2 channels (HWC), k = 3, ld = 3 (third column NaN, never read).
    // Channel 0 keeps only the top-left tap: out(y, x) = in(y-1, x-1).
    // Channel 1 keeps only the bottom-right tap: out(y, x) = in(y+1, x+1).
    let input = [1.0f32, 10.0, 2.0, 20.0, 3.0, 30.0, 4.0, 40.0];
    let mut weight = vec![0.0f32; 8 * 3 + 2];
    for t in 0..8 {
        weight[t * 3 + 2] = f32::NAN;
    }
    weight[0] = 1.0; // tap 0, channel 0
    weight[8 * 3 + 1] = 2.0; // tap 8, channel 1
    for f in DEPTHWISE {
        let mut out = out_buf(8);
        f(
            &input,
            2,
            2,
            2,
            &weight,
            3,
            3,
            1,
            &[1.0, 1.0],
            &[0.0, 0.5],
            Act::None,
            &mut out,
        );
        assert_exact(&out, &[0.0, 80.5, 0.0, 0.5, 0.0, 0.5, 1.0, 0.5]);
    }
}

#[test]
fn depthwise_1x1_is_a_per_channel_scale() {
    let input = [1.0f32, -2.0, 3.0, -4.0, 5.0, -6.0];
    for f in DEPTHWISE {
        let mut out = out_buf(6);
        f(
            &input,
            1,
            3,
            2,
            &[2.0, 3.0],
            2,
            1,
            1,
            &[1.0, 1.0],
            &[0.0, 0.0],
            Act::None,
            &mut out,
        );
        assert_exact(&out, &[2.0, -6.0, 6.0, -12.0, 10.0, -18.0]);
        let mut out = out_buf(4);
        f(
            &input,
            1,
            3,
            2,
            &[2.0, 3.0],
            2,
            1,
            2,
            &[1.0, 1.0],
            &[0.0, 0.0],
            Act::None,
            &mut out,
        );
        assert_exact(&out, &[2.0, -6.0, 10.0, -18.0]);
    }
}

#[test]
fn pointwise_by_hand() {
    // 2 pixels x cin 2 -> cout 2, ld 3 (NaN column unused).
    let input = [1.0f32, 2.0, 3.0, 4.0];
    let weight = [1.0f32, 1.0, f32::NAN, 0.5, -1.0];
    let fs: [fn(&[f32], usize, usize, &[f32], usize, usize, &[f32], &[f32], Act, &mut [f32]); 2] =
        [kernels::pointwise, reference::pointwise];
    for f in fs {
        let mut out = out_buf(4);
        f(
            &input,
            2,
            2,
            &weight,
            3,
            2,
            &[2.0, 1.0],
            &[0.0, 1.0],
            Act::None,
            &mut out,
        );
        assert_exact(&out, &[6.0, -0.5, 14.0, -1.5]);
        let mut out = out_buf(4);
        f(
            &input,
            2,
            2,
            &weight,
            3,
            2,
            &[2.0, 1.0],
            &[0.0, 1.0],
            Act::Relu,
            &mut out,
        );
        assert_exact(&out, &[6.0, 0.0, 14.0, 0.0]);
    }
}

#[test]
fn conv_chw_to_hwc_by_hand() {
    // CHW input, 2 channels of 2x2; k = 3, stride 1, cout 2; OHWI weights.
    let input = [1.0f32, 2.0, 3.0, 4.0, 10.0, 20.0, 30.0, 40.0];
    let mut weight = vec![0.0f32; 2 * 9 * 2];
    // Output channel 0: centre tap, in0 + 0.5 * in1.
    weight[(4) * 2] = 1.0;
    weight[(4) * 2 + 1] = 0.5;
    // Output channel 1: top-left tap of input channel 1: out(y, x) = in1(y-1, x-1).
    weight[18] = 0.0;
    weight[18 + 1] = 1.0;
    let fs: [fn(
        &[f32],
        usize,
        usize,
        usize,
        &[f32],
        usize,
        usize,
        usize,
        &[f32],
        &[f32],
        Act,
        &mut [f32],
    ); 2] = [kernels::conv_chw_to_hwc, reference::conv_chw_to_hwc];
    for f in fs {
        let mut out = out_buf(8);
        f(
            &input,
            2,
            2,
            2,
            &weight,
            2,
            3,
            1,
            &[1.0, 1.0],
            &[0.0, 0.0],
            Act::None,
            &mut out,
        );
        // HWC: (0,0) (0,1) (1,0) (1,1), two channels each.
        assert_exact(&out, &[6.0, 0.0, 12.0, 0.0, 18.0, 0.0, 24.0, 10.0]);
        assert_eq!(out[8], SENTINEL);
        // Stride 2 on 2x2: a single output pixel centred on (0, 0).
        let mut out = out_buf(2);
        f(
            &input,
            2,
            2,
            2,
            &weight,
            2,
            3,
            2,
            &[1.0, 2.0],
            &[1.0, 0.0],
            Act::None,
            &mut out,
        );
        assert_exact(&out, &[7.0, 0.0]);
    }
}

#[test]
fn squeeze_excite_by_hand() {
    // pixels 2, c 2, hidden 1. Means: [2, 10]. r = relu(0.5*2 + 0*10 - 0.5) = 0.5.
    // g0 = hsigmoid(3*0.5 + 0) = 0.75; g1 = hsigmoid(-1*0.5 - 2.5) = 0.
    let w_reduce = [0.5f32, 0.0, f32::NAN];
    let w_expand = [3.0f32, f32::NAN, -1.0];
    let fs: [fn(
        &mut [f32],
        usize,
        usize,
        &[f32],
        usize,
        &[f32],
        usize,
        &[f32],
        usize,
        &[f32],
        &mut [f32],
    ); 2] = [kernels::squeeze_excite, reference::squeeze_excite];
    for f in fs {
        let mut x = [1.0f32, 8.0, 3.0, 12.0];
        let mut scratch = [0.0f32; 3];
        f(
            &mut x,
            2,
            2,
            &w_reduce[..2],
            3,
            &[-0.5],
            1,
            &w_expand,
            2,
            &[0.0, -2.5],
            &mut scratch,
        );
        assert_eq!(x, [0.75, 0.0, 2.25, 0.0]);
    }
}

#[test]
fn pool_linear_add_by_hand() {
    let fs: [fn(&[f32], usize, usize, &mut [f32]); 2] =
        [kernels::global_avg_pool, reference::global_avg_pool];
    for f in fs {
        let mut out = out_buf(2);
        f(&[1.0, -2.0, 3.0, 4.0, 5.0, 7.0], 3, 2, &mut out);
        assert_exact(&out, &[3.0, 3.0]);
        assert_eq!(out[2], SENTINEL);
    }
    let fs: [fn(&[f32], usize, &[f32], usize, Option<&[f32]>, usize, Act, &mut [f32]); 2] =
        [kernels::linear, reference::linear];
    let weight = [1.0f32, 2.0, 3.0, f32::NAN, -1.0, 0.0, 1.0];
    for f in fs {
        let mut out = out_buf(2);
        f(
            &[1.0, 1.0, 2.0],
            3,
            &weight,
            4,
            Some(&[0.5, -1.0]),
            2,
            Act::None,
            &mut out,
        );
        assert_exact(&out, &[9.5, 0.0]);
        f(
            &[1.0, 1.0, 2.0],
            3,
            &weight,
            4,
            None,
            2,
            Act::HSwish,
            &mut out,
        );
        assert_exact(&out, &[9.0, 1.0 * 4.0 / 6.0]);
        f(
            &[1.0, 1.0, -4.0],
            3,
            &weight,
            4,
            None,
            2,
            Act::Relu,
            &mut out,
        );
        assert_exact(&out, &[0.0, 0.0]);
        assert_eq!(out[2], SENTINEL);
    }
    let fs: [fn(&mut [f32], &[f32]); 2] = [kernels::add_inplace, reference::add_inplace];
    for f in fs {
        let mut acc = [1.0f32, 2.0, 3.0];
        f(&mut acc, &[0.5, -2.0, 10.0]);
        assert_eq!(acc, [1.5, 0.0, 13.0]);
    }
}

/// Wide weights whose unused columns are NaN must give finite outputs with `Act::None`
/// (an activation could hide a NaN), for every fast kernel, on shapes that hit every code path.
#[test]
fn wide_weights_unused_columns_are_never_read() {
    let mut rng = Rng::new(7);
    // Pointwise: matrix-vector path (pixels < 8) and packed path, incl. K blocking (cin > 128).
    for &(pixels, cin, cout) in &[
        (1, 37, 19),
        (3, 16, 96),
        (8, 24, 13),
        (49, 144, 24),
        (20, 300, 9),
    ] {
        let ld = cin + 5;
        let input = rng.vec(pixels * cin);
        let weight = rng.wide(cout, cin, ld);
        let scale = vec![1.0; cout];
        let shift = vec![0.0; cout];
        let mut out = out_buf(pixels * cout);
        kernels::pointwise(
            &input,
            pixels,
            cin,
            &weight,
            ld,
            cout,
            &scale,
            &shift,
            Act::None,
            &mut out,
        );
        assert!(
            out.iter().all(|v| v.is_finite()),
            "pointwise {pixels}x{cin}->{cout}"
        );
    }
    // Depthwise: several channel blocks plus remainders.
    for &(hw, c, k, s) in &[(5, 37, 3, 1), (7, 21, 7, 2), (2, 67, 5, 1)] {
        let ld = c + 11;
        let input = rng.vec(hw * hw * c);
        let weight = rng.wide(k * k, c, ld);
        let (scale, shift) = (vec![1.0; c], vec![0.0; c]);
        let ho = conv_out_dim(hw, k, s);
        let mut out = out_buf(ho * ho * c);
        kernels::depthwise(
            &input,
            hw,
            hw,
            c,
            &weight,
            ld,
            k,
            s,
            &scale,
            &shift,
            Act::None,
            &mut out,
        );
        assert!(
            out.iter().all(|v| v.is_finite()),
            "depthwise {hw}x{hw}x{c} k{k}"
        );
    }
    // Squeeze-excite and linear.
    let (pixels, c, hidden) = (6, 40, 10);
    let mut x = rng.vec(pixels * c);
    let w_reduce = rng.wide(hidden, c, c + 8);
    let w_expand = rng.wide(c, hidden, hidden + 6);
    let (b_reduce, b_expand) = (rng.vec(hidden), rng.vec(c));
    let mut scratch = vec![0.0; c + hidden];
    kernels::squeeze_excite(
        &mut x,
        pixels,
        c,
        &w_reduce,
        c + 8,
        &b_reduce,
        hidden,
        &w_expand,
        hidden + 6,
        &b_expand,
        &mut scratch,
    );
    assert!(x.iter().all(|v| v.is_finite()));
    let weight = rng.wide(13, 51, 60);
    let mut out = out_buf(13);
    kernels::linear(&rng.vec(51), 51, &weight, 60, None, 13, Act::None, &mut out);
    assert!(out.iter().all(|v| v.is_finite()));
}

// ---------------------------------------------------------------------------------------------
// Property tests: fast == reference (within tolerance).
// ---------------------------------------------------------------------------------------------

fn run_depthwise(
    h: usize,
    w: usize,
    c: usize,
    extra: usize,
    k: usize,
    stride: usize,
    act: Act,
    seed: u64,
) -> Result<(), TestCaseError> {
    let mut rng = Rng::new(seed);
    let ld = c + extra;
    let input = rng.vec(h * w * c);
    let weight = rng.wide(k * k, c, ld);
    let scale = rng.vec_in(c, 0.5, 1.5);
    let shift = rng.vec_in(c, -0.5, 0.5);
    let n = conv_out_dim(h, k, stride) * conv_out_dim(w, k, stride) * c;
    let mut fast = out_buf(n);
    let mut slow = out_buf(n);
    kernels::depthwise(
        &input, h, w, c, &weight, ld, k, stride, &scale, &shift, act, &mut fast,
    );
    reference::depthwise(
        &input, h, w, c, &weight, ld, k, stride, &scale, &shift, act, &mut slow,
    );
    check_close(&fast, &slow, n)
}

fn run_pointwise(
    pixels: usize,
    cin: usize,
    cout: usize,
    extra: usize,
    act: Act,
    seed: u64,
) -> Result<(), TestCaseError> {
    let mut rng = Rng::new(seed);
    let ld = cin + extra;
    let input = rng.vec(pixels * cin);
    let weight = rng.wide(cout, cin, ld);
    let scale = rng.vec_in(cout, 0.5, 1.5);
    let shift = rng.vec_in(cout, -0.5, 0.5);
    let n = pixels * cout;
    let mut fast = out_buf(n);
    let mut slow = out_buf(n);
    kernels::pointwise(
        &input, pixels, cin, &weight, ld, cout, &scale, &shift, act, &mut fast,
    );
    reference::pointwise(
        &input, pixels, cin, &weight, ld, cout, &scale, &shift, act, &mut slow,
    );
    check_close(&fast, &slow, n)
}

fn run_conv(
    cin: usize,
    h: usize,
    w: usize,
    cout: usize,
    k: usize,
    stride: usize,
    act: Act,
    seed: u64,
) -> Result<(), TestCaseError> {
    let mut rng = Rng::new(seed);
    let input = rng.vec(cin * h * w);
    let weight = rng.vec(cout * k * k * cin);
    let scale = rng.vec_in(cout, 0.5, 1.5);
    let shift = rng.vec_in(cout, -0.5, 0.5);
    let n = conv_out_dim(h, k, stride) * conv_out_dim(w, k, stride) * cout;
    let mut fast = out_buf(n);
    let mut slow = out_buf(n);
    kernels::conv_chw_to_hwc(
        &input, cin, h, w, &weight, cout, k, stride, &scale, &shift, act, &mut fast,
    );
    reference::conv_chw_to_hwc(
        &input, cin, h, w, &weight, cout, k, stride, &scale, &shift, act, &mut slow,
    );
    check_close(&fast, &slow, n)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn depthwise_matches_reference(
        k in prop::sample::select(vec![1usize, 3, 5, 7]),
        stride in 1usize..=2,
        h in 1usize..16,
        w in 1usize..16,
        c in 1usize..70,
        extra in 0usize..9,
        act in act_strategy(),
        seed in any::<u64>(),
    ) {
        run_depthwise(h, w, c, extra, k, stride, act, seed)?;
    }

    #[test]
    fn pointwise_matches_reference(
        pixels in 1usize..40,
        cin in 1usize..70,
        cout in 1usize..70,
        extra in 0usize..9,
        act in act_strategy(),
        seed in any::<u64>(),
    ) {
        run_pointwise(pixels, cin, cout, extra, act, seed)?;
    }

    #[test]
    fn conv_chw_to_hwc_matches_reference(
        k in prop::sample::select(vec![1usize, 3, 3, 5]),
        stride in 1usize..=2,
        cin in 1usize..4,
        cout in 1usize..24,
        h in 1usize..16,
        w in 1usize..16,
        act in act_strategy(),
        seed in any::<u64>(),
    ) {
        run_conv(cin, h, w, cout, k, stride, act, seed)?;
    }

    #[test]
    fn squeeze_excite_matches_reference(
        pixels in 1usize..20,
        c in 1usize..70,
        hidden in 1usize..24,
        extra_r in 0usize..9,
        extra_e in 0usize..9,
        seed in any::<u64>(),
    ) {
        let mut rng = Rng::new(seed);
        let (ld_r, ld_e) = (c + extra_r, hidden + extra_e);
        let x = rng.vec(pixels * c);
        let w_reduce = rng.wide(hidden, c, ld_r);
        let w_expand = rng.wide(c, hidden, ld_e);
        let b_reduce = rng.vec(hidden);
        let b_expand = rng.vec_in(c, -3.0, 3.0);
        let n = pixels * c;
        let mut fast = x.clone();
        fast.extend([SENTINEL; TAIL]);
        let mut slow = fast.clone();
        let mut scratch = vec![0.0; c + hidden];
        kernels::squeeze_excite(&mut fast, pixels, c, &w_reduce, ld_r, &b_reduce, hidden, &w_expand, ld_e, &b_expand, &mut scratch);
        let mut scratch = vec![0.0; c + hidden];
        reference::squeeze_excite(&mut slow, pixels, c, &w_reduce, ld_r, &b_reduce, hidden, &w_expand, ld_e, &b_expand, &mut scratch);
        check_close(&fast, &slow, n)?;
    }

    #[test]
    fn linear_matches_reference(
        n_in in 1usize..300,
        n_out in 1usize..70,
        extra in 0usize..9,
        with_bias in any::<bool>(),
        act in act_strategy(),
        seed in any::<u64>(),
    ) {
        let mut rng = Rng::new(seed);
        let ld = n_in + extra;
        let input = rng.vec(n_in);
        let weight = rng.wide(n_out, n_in, ld);
        let bias = rng.vec(n_out);
        let bias = with_bias.then_some(&bias[..]);
        let mut fast = out_buf(n_out);
        let mut slow = out_buf(n_out);
        kernels::linear(&input, n_in, &weight, ld, bias, n_out, act, &mut fast);
        reference::linear(&input, n_in, &weight, ld, bias, n_out, act, &mut slow);
        check_close(&fast, &slow, n_out)?;
    }

    #[test]
    fn global_avg_pool_matches_reference(pixels in 1usize..60, c in 1usize..100, seed in any::<u64>()) {
        let input = Rng::new(seed).vec(pixels * c);
        let mut fast = out_buf(c);
        let mut slow = out_buf(c);
        kernels::global_avg_pool(&input, pixels, c, &mut fast);
        reference::global_avg_pool(&input, pixels, c, &mut slow);
        check_close(&fast, &slow, c)?;
    }

    #[test]
    fn add_inplace_matches_reference(n in 0usize..200, seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let (a, b) = (rng.vec(n), rng.vec(n));
        let (mut fast, mut slow) = (a.clone(), a);
        kernels::add_inplace(&mut fast, &b);
        reference::add_inplace(&mut slow, &b);
        prop_assert_eq!(fast, slow);
    }
}

proptest! {
    // Rarer shapes, fewer cases: they are slower or only exercise one extra branch.
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// `cin` past the packing block (K blocking with partial sums in `out`).
    #[test]
    fn pointwise_long_rows_match_reference(
        pixels in 1usize..24,
        cin in 120usize..400,
        cout in 1usize..20,
        extra in 0usize..9,
        act in act_strategy(),
        seed in any::<u64>(),
    ) {
        run_pointwise(pixels, cin, cout, extra, act, seed)?;
    }

    /// Realistic network shapes.
    #[test]
    fn pointwise_network_shapes_match_reference(
        shape in prop::sample::select(vec![(196usize, 16usize, 96usize), (49, 24, 144), (49, 144, 24), (4, 112, 672), (1, 960, 160)]),
        act in act_strategy(),
        seed in any::<u64>(),
    ) {
        run_pointwise(shape.0, shape.1, shape.2, 3, act, seed)?;
    }

    /// Stems too large for the stack patch (`k*k*cin > 256`) take the direct loop.
    #[test]
    fn conv_chw_to_hwc_large_patch_matches_reference(
        cin in 5usize..8,
        cout in 1usize..6,
        h in 1usize..10,
        w in 1usize..10,
        stride in 1usize..=2,
        act in act_strategy(),
        seed in any::<u64>(),
    ) {
        run_conv(cin, h, w, cout, 7, stride, act, seed)?;
    }

    /// Depthwise on network shapes (wide channel counts: many register blocks).
    #[test]
    fn depthwise_network_shapes_match_reference(
        shape in prop::sample::select(vec![(14usize, 96usize, 7usize, 2usize), (7, 144, 3, 1), (7, 144, 5, 1), (7, 144, 7, 1), (2, 672, 7, 1), (1, 960, 5, 1)]),
        act in act_strategy(),
        seed in any::<u64>(),
    ) {
        let (hw, c, k, s) = shape;
        run_depthwise(hw, hw, c, 5, k, s, act, seed)?;
    }
}
