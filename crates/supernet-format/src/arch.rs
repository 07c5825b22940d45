//! What a space and a config imply (FORMAT.md section 4): per-slot channel counts and
//! strides, spatial sizes, the tensor directory order, BN-set layouts, multiply-adds and
//! parameters. Shared by the trainer, the writer, the reader and the runtime, so all agree.

use crate::config::SubnetConfig;
use crate::space::{Act, SE_REDUCTION, Space, make_divisible};

/// Middle (expanded) channels of a block with `cin` inputs and expand ratio `e`.
pub const fn mid_channels(cin: u32, e: u32) -> u32 {
    make_divisible(cin * e)
}

/// Hidden width of the squeeze-excite of a block with `mid` middle channels.
pub const fn se_hidden(mid: u32) -> u32 {
    make_divisible(mid / SE_REDUCTION)
}

/// Output size of a `k x k` convolution with padding `k / 2` and the given stride.
pub const fn conv_out(h: u32, k: u32, stride: u32) -> u32 {
    (h + 2 * (k / 2) - k) / stride + 1
}

/// Kernel size of the stem convolution and of the first block's depthwise convolution.
pub const STEM_KERNEL: u32 = 3;
/// Stride of the stem convolution.
pub const STEM_STRIDE: u32 = 2;

/// The fixed facts of one block slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotInfo {
    pub stage: usize,
    /// Position in the stage (0 = first block).
    pub j: usize,
    pub cin: u32,
    pub cout: u32,
    pub stride: u32,
    pub act: Act,
    pub se: bool,
    /// Residual add (stride 1 and `cin == cout`).
    pub residual: bool,
    /// Middle channels at the largest expand ratio.
    pub max_mid: u32,
    /// SE hidden width at `max_mid`.
    pub max_hidden: u32,
    /// Input height (= width) of the slot when it runs.
    pub h_in: u32,
    /// Output height (= width).
    pub h_out: u32,
}

impl SlotInfo {
    pub fn mid(&self, e: u8) -> u32 {
        mid_channels(self.cin, e as u32)
    }
}

/// Height (= width) after the stem.
pub fn stem_out(space: &Space) -> u32 {
    conv_out(space.resolution, STEM_KERNEL, STEM_STRIDE)
}

/// The facts of slot `i` (`i < space.n_slots()`).
pub fn slot(space: &Space, i: usize) -> SlotInfo {
    let stage = i / space.max_depth;
    let j = i % space.max_depth;
    let st = space.stage(stage);
    let cin = if j > 0 {
        st.width
    } else if stage == 0 {
        space.first_block_channels
    } else {
        space.stage(stage - 1).width
    };
    let stride = if j == 0 { st.stride } else { 1 };
    let mut h = stem_out(space);
    for s in 0..stage {
        h = conv_out(h, 1, space.stage(s).stride);
    }
    let h_in = if j == 0 { h } else { conv_out(h, 1, st.stride) };
    let h_out = conv_out(h_in, 1, stride);
    let max_mid = mid_channels(cin, space.e.max() as u32);
    SlotInfo {
        stage,
        j,
        cin,
        cout: st.width,
        stride,
        act: st.act,
        se: st.se,
        residual: stride == 1 && cin == st.width,
        max_mid,
        max_hidden: se_hidden(max_mid),
        h_in,
        h_out,
    }
}

/// Height (= width) of the last stage's output (input of the head).
pub fn head_in(space: &Space) -> u32 {
    let mut h = stem_out(space);
    for s in space.stages() {
        h = conv_out(h, 1, s.stride);
    }
    h
}

/// What a tensor of the directory holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorKind {
    StemWeight,
    FirstDepthwise,
    FirstProject,
    Expand { slot: usize },
    Depthwise { slot: usize, k: u8 },
    SeReduceWeight { slot: usize },
    SeReduceBias { slot: usize },
    SeExpandWeight { slot: usize },
    SeExpandBias { slot: usize },
    Project { slot: usize },
    FinalExpand,
    FeatureMix,
    ClassifierWeight,
    ClassifierBias,
}

/// One tensor of the directory: what it is and its row-major shape (`cols == 1` for
/// vectors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    pub kind: TensorKind,
    pub rows: u32,
    pub cols: u32,
}

impl TensorSpec {
    pub fn len(&self) -> usize {
        self.rows as usize * self.cols as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Number of tensors in slot `i`'s part of the directory.
pub fn slot_tensor_count(space: &Space, i: usize) -> usize {
    let se = space.stage(i / space.max_depth).se;
    2 + space.ks.len() + if se { 4 } else { 0 }
}

/// Number of directory entries before slot 0.
pub const FIXED_HEAD_TENSORS: usize = 3;
/// Number of directory entries after the last slot.
pub const FIXED_TAIL_TENSORS: usize = 4;

/// Total number of tensors in the directory.
pub fn tensor_count(space: &Space) -> usize {
    FIXED_HEAD_TENSORS
        + (0..space.n_slots())
            .map(|i| slot_tensor_count(space, i))
            .sum::<usize>()
        + FIXED_TAIL_TENSORS
}

/// Directory index of slot `i`'s first tensor (its expand weight).
pub fn slot_tensor_base(space: &Space, i: usize) -> usize {
    FIXED_HEAD_TENSORS + (0..i).map(|s| slot_tensor_count(space, s)).sum::<usize>()
}

/// The tensors of the directory, in order.
pub fn tensors(space: &Space) -> Tensors<'_> {
    Tensors {
        space,
        index: 0,
        count: tensor_count(space),
    }
}

/// Iterator over the tensor directory of a space (no allocation).
pub struct Tensors<'a> {
    space: &'a Space,
    index: usize,
    count: usize,
}

impl Iterator for Tensors<'_> {
    type Item = TensorSpec;

    fn next(&mut self) -> Option<TensorSpec> {
        if self.index >= self.count {
            return None;
        }
        let t = tensor_at(self.space, self.index);
        self.index += 1;
        Some(t)
    }
}

/// The directory entry at `index` (`index < tensor_count(space)`).
pub fn tensor_at(space: &Space, index: usize) -> TensorSpec {
    let sp = space;
    let t = |kind, rows: u32, cols: u32| TensorSpec { kind, rows, cols };
    match index {
        0 => {
            return t(
                TensorKind::StemWeight,
                sp.stem_channels,
                STEM_KERNEL * STEM_KERNEL * sp.in_channels,
            );
        }
        1 => {
            return t(
                TensorKind::FirstDepthwise,
                STEM_KERNEL * STEM_KERNEL,
                sp.stem_channels,
            );
        }
        2 => {
            return t(
                TensorKind::FirstProject,
                sp.first_block_channels,
                sp.stem_channels,
            );
        }
        _ => {}
    }
    let mut rest = index - FIXED_HEAD_TENSORS;
    for i in 0..sp.n_slots() {
        let n = slot_tensor_count(sp, i);
        if rest < n {
            let s = slot(sp, i);
            let nk = sp.ks.len();
            return match rest {
                0 => t(TensorKind::Expand { slot: i }, s.max_mid, s.cin),
                r if r < 1 + nk => {
                    let k = sp.ks.as_slice()[r - 1];
                    let kk = k as u32 * k as u32;
                    t(TensorKind::Depthwise { slot: i, k }, kk, s.max_mid)
                }
                r if r == n - 1 => t(TensorKind::Project { slot: i }, s.cout, s.max_mid),
                r => match r - 1 - nk {
                    0 => t(
                        TensorKind::SeReduceWeight { slot: i },
                        s.max_hidden,
                        s.max_mid,
                    ),
                    1 => t(TensorKind::SeReduceBias { slot: i }, s.max_hidden, 1),
                    2 => t(
                        TensorKind::SeExpandWeight { slot: i },
                        s.max_mid,
                        s.max_hidden,
                    ),
                    _ => t(TensorKind::SeExpandBias { slot: i }, s.max_mid, 1),
                },
            };
        }
        rest -= n;
    }
    let last_w = sp.stage(sp.n_stages - 1).width;
    match rest {
        0 => t(TensorKind::FinalExpand, sp.final_expand_channels, last_w),
        1 => t(
            TensorKind::FeatureMix,
            sp.feature_mix_channels,
            sp.final_expand_channels,
        ),
        2 => t(
            TensorKind::ClassifierWeight,
            sp.classes,
            sp.feature_mix_channels,
        ),
        _ => t(TensorKind::ClassifierBias, sp.classes, 1),
    }
}

/// Channel counts of the BN layers a config runs, in BN-set order (FORMAT.md 5.5),
/// passed to `f` one layer at a time.
pub fn for_each_bn_layer(space: &Space, config: &SubnetConfig, mut f: impl FnMut(u32)) {
    f(space.stem_channels);
    f(space.stem_channels);
    f(space.first_block_channels);
    for i in 0..space.n_slots() {
        if !config.active(space.max_depth, i) {
            continue;
        }
        let s = slot(space, i);
        let mid = s.mid(config.e()[i]);
        f(mid);
        f(mid);
        f(s.cout);
    }
    f(space.final_expand_channels);
}

/// Length in f32 of a config's BN set.
pub fn bn_set_len(space: &Space, config: &SubnetConfig) -> usize {
    let mut n = 0usize;
    for_each_bn_layer(space, config, |c| n += 2 * c as usize);
    n
}

/// Length in f32 of the default BN set (the BN set of the largest config).
pub fn default_bn_len(space: &Space) -> usize {
    bn_set_len(space, &SubnetConfig::largest(space))
}

/// Multiply-adds and parameters of a subnet (FORMAT.md section 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Cost {
    pub macs: u64,
    pub params: u64,
}

/// Multiply-adds and parameters of `config` (which must be valid for `space`).
pub fn cost(space: &Space, config: &SubnetConfig) -> Cost {
    let mut macs = 0u64;
    let mut params = 0u64;
    let mut conv = |pixels: u32, weights: u64, bias: u64, bn: u32| {
        macs += pixels as u64 * weights;
        params += weights + bias + 2 * bn as u64;
    };
    let h = stem_out(space);
    let stem_w = (STEM_KERNEL * STEM_KERNEL * space.in_channels * space.stem_channels) as u64;
    conv(h * h, stem_w, 0, space.stem_channels);
    let k2 = (STEM_KERNEL * STEM_KERNEL) as u64;
    conv(
        h * h,
        k2 * space.stem_channels as u64,
        0,
        space.stem_channels,
    );
    conv(
        h * h,
        (space.stem_channels * space.first_block_channels) as u64,
        0,
        space.first_block_channels,
    );
    for i in 0..space.n_slots() {
        if !config.active(space.max_depth, i) {
            continue;
        }
        let s = slot(space, i);
        let mid = s.mid(config.e()[i]);
        let k = config.ks()[i] as u64;
        conv(s.h_in * s.h_in, (s.cin * mid) as u64, 0, mid);
        conv(s.h_out * s.h_out, k * k * mid as u64, 0, mid);
        if s.se {
            let hid = se_hidden(mid) as u64;
            conv(1, hid * mid as u64, hid, 0);
            conv(1, hid * mid as u64, mid as u64, 0);
        }
        conv(s.h_out * s.h_out, (mid * s.cout) as u64, 0, s.cout);
    }
    let hh = head_in(space);
    let last_w = space.stage(space.n_stages - 1).width;
    conv(
        hh * hh,
        (last_w * space.final_expand_channels) as u64,
        0,
        space.final_expand_channels,
    );
    conv(
        1,
        (space.final_expand_channels * space.feature_mix_channels) as u64,
        0,
        0,
    );
    conv(
        1,
        (space.feature_mix_channels * space.classes) as u64,
        space.classes as u64,
        0,
    );
    Cost { macs, params }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fashion_mnist_space_costs_match_the_issue_figures() {
        // 28x28, 1 channel, width 1.0: largest about 14 M multiply-adds, smallest about 4 M.
        let s = Space::ofa_mobilenet_v3(1.0, 1, 28, 10).unwrap();
        let big = cost(&s, &SubnetConfig::largest(&s)).macs as f64 / 1e6;
        let small = cost(&s, &SubnetConfig::smallest(&s)).macs as f64 / 1e6;
        assert!((13.0..15.5).contains(&big), "largest {big} M");
        assert!((3.3..4.7).contains(&small), "smallest {small} M");
    }

    #[test]
    fn a_larger_choice_never_costs_less() {
        let s = Space::ofa_mobilenet_v3(1.0, 3, 224, 1000).unwrap();
        let base = SubnetConfig::smallest(&s);
        let c0 = cost(&s, &base);
        for i in 0..s.n_slots() {
            let mut c = base;
            c.ks_mut()[i] = 7;
            c.e_mut()[i] = 6;
            let c1 = cost(&s, &c);
            // inactive slots (j >= 2) cost nothing; active ones cost more
            if c.active(s.max_depth, i) {
                assert!(c1.macs > c0.macs && c1.params > c0.params, "slot {i}");
            } else {
                assert_eq!(c1, c0, "slot {i}");
            }
        }
        for st in 0..s.n_stages {
            let mut c = base;
            c.d_mut()[st] = 3;
            assert!(cost(&s, &c).macs > c0.macs);
        }
    }

    #[test]
    fn slots_follow_the_ofa_layout() {
        let s = Space::ofa_mobilenet_v3(1.0, 1, 28, 10).unwrap();
        let a = slot(&s, 0);
        assert_eq!((a.cin, a.cout, a.stride, a.residual), (16, 24, 2, false));
        assert_eq!((a.max_mid, a.h_in, a.h_out), (96, 14, 7));
        let b = slot(&s, 1);
        assert_eq!((b.cin, b.cout, b.stride, b.residual), (24, 24, 1, true));
        assert_eq!(b.max_mid, 144);
        let c = slot(&s, 12); // first block of stage 4 (stride 1, 80 -> 112)
        assert_eq!(
            (c.cin, c.cout, c.stride, c.residual, c.se),
            (80, 112, 1, false, true)
        );
        assert_eq!((c.max_mid, c.max_hidden), (480, 120));
        let d = slot(&s, 19);
        assert_eq!((d.h_in, d.h_out, d.max_mid), (1, 1, 960));
        assert_eq!(head_in(&s), 1);
    }

    #[test]
    fn tensor_directory_is_consistent() {
        let s = Space::ofa_mobilenet_v3(0.35, 3, 32, 10).unwrap();
        let all: [TensorSpec; 200] = {
            let mut a = [tensor_at(&s, 0); 200];
            for (i, t) in tensors(&s).enumerate() {
                a[i] = t;
            }
            a
        };
        let n = tensor_count(&s);
        // 3 fixed + stage 1 (4 x 5) + stage 2 (4 x 9) + stage 3 (4 x 5) + 2 x (4 x 9) + 4
        assert_eq!(n, 3 + 20 + 36 + 20 + 72 + 4);
        assert_eq!(tensors(&s).count(), n);
        for i in 0..s.n_slots() {
            let b = slot_tensor_base(&s, i);
            assert_eq!(all[b].kind, TensorKind::Expand { slot: i });
            let last = b + slot_tensor_count(&s, i) - 1;
            assert_eq!(all[last].kind, TensorKind::Project { slot: i });
        }
        // Shapes seen in the original checkpoint (w0.35): blocks.20 expand [336, 56].
        let b = slot_tensor_base(&s, 19);
        assert_eq!((all[b].rows, all[b].cols), (336, 56));
        assert_eq!(all[b + 4].kind, TensorKind::SeReduceWeight { slot: 19 });
        assert_eq!((all[b + 4].rows, all[b + 4].cols), (88, 336));
        assert_eq!(all[n - 1].kind, TensorKind::ClassifierBias);
        assert_eq!((all[n - 3].rows, all[n - 3].cols), (448, 336));
    }

    #[test]
    fn bn_set_lengths() {
        let s = Space::ofa_mobilenet_v3(1.0, 1, 28, 10).unwrap();
        let small = SubnetConfig::smallest(&s);
        let mut layers = 0;
        for_each_bn_layer(&s, &small, |_| layers += 1);
        assert_eq!(layers, 3 + 5 * 2 * 3 + 1);
        assert!(bn_set_len(&s, &small) < default_bn_len(&s));
    }
}
