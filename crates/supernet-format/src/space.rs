//! The search space: widths, strides, activations, SE flags and choice lists of an
//! Once-for-All MobileNetV3 supernet (FORMAT.md section 4 and 5.1).

use core::fmt;

/// Largest number of stages a space may have.
pub const MAX_STAGES: usize = 8;
/// Largest number of block slots per stage.
pub const MAX_DEPTH: usize = 8;
/// Largest number of block slots.
pub const MAX_SLOTS: usize = MAX_STAGES * MAX_DEPTH;
/// Largest number of entries in a choice list.
pub const MAX_CHOICES: usize = 4;
/// Largest number of input channels.
pub const MAX_IN_CHANNELS: usize = 8;
/// Largest channel count of any fixed-width layer.
pub const MAX_WIDTH: u32 = 4096;
/// Largest input resolution.
pub const MAX_RESOLUTION: u32 = 4096;
/// Largest number of classes.
pub const MAX_CLASSES: u32 = 65535;
/// Length of the SPAC section without its stage records.
pub const SPAC_FIXED_LEN: usize = 56;
/// Length of one stage record in SPAC.
pub const SPAC_STAGE_LEN: usize = 8;
/// Divisor of `make_divisible`.
pub const CHANNEL_DIVISOR: u32 = 8;
/// SE reduction: hidden = make_divisible(mid / SE_REDUCTION).
pub const SE_REDUCTION: u32 = 4;

/// `make_divisible` on integers: the nearest multiple of 8, never below 8, never more than
/// 10% under `v`.
pub const fn make_divisible(v: u32) -> u32 {
    let d = CHANNEL_DIVISOR;
    let mut new_v = (v + d / 2) / d * d;
    if new_v < d {
        new_v = d;
    }
    // new_v < 0.9 * v  <=>  10 * new_v < 9 * v
    if (new_v as u64) * 10 < (v as u64) * 9 {
        new_v += d;
    }
    new_v
}

/// `make_divisible` on a real value, exactly as the original Python code computes it for
/// width-multiplied channel counts: `max(8, int(v + 4) // 8 * 8)`, plus 8 if under `0.9 v`.
pub fn make_divisible_f64(v: f64) -> u32 {
    let d = CHANNEL_DIVISOR as f64;
    let mut new_v = ((v + d / 2.0) as u64 / CHANNEL_DIVISOR as u64 * CHANNEL_DIVISOR as u64) as f64;
    if new_v < d {
        new_v = d;
    }
    if new_v < 0.9 * v {
        new_v += d;
    }
    new_v as u32
}

/// Activation of a stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Act {
    Relu,
    HSwish,
}

impl Act {
    pub fn code(self) -> u8 {
        match self {
            Act::Relu => 0,
            Act::HSwish => 1,
        }
    }

    pub fn from_code(c: u8) -> Option<Act> {
        match c {
            0 => Some(Act::Relu),
            1 => Some(Act::HSwish),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Act::Relu => "relu",
            Act::HSwish => "h_swish",
        }
    }
}

/// One stage of inverted-residual blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stage {
    /// Output channels of every block of the stage.
    pub width: u32,
    /// Stride of the stage's first block (1 or 2).
    pub stride: u32,
    pub act: Act,
    /// Squeeze-excite in every block of the stage.
    pub se: bool,
}

impl Stage {
    const EMPTY: Stage = Stage {
        width: 0,
        stride: 1,
        act: Act::Relu,
        se: false,
    };
}

/// A short, strictly increasing list of small integers (kernel sizes, expand ratios, depths).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Choices {
    len: u8,
    vals: [u8; MAX_CHOICES],
}

impl Choices {
    /// Builds a list; `None` if it is empty, too long, or not strictly increasing.
    pub fn new(vals: &[u8]) -> Option<Choices> {
        if vals.is_empty() || vals.len() > MAX_CHOICES {
            return None;
        }
        if vals.windows(2).any(|w| w[0] >= w[1]) {
            return None;
        }
        let mut c = Choices {
            len: vals.len() as u8,
            vals: [0; MAX_CHOICES],
        };
        c.vals[..vals.len()].copy_from_slice(vals);
        Some(c)
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.vals[..self.len as usize]
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn min(&self) -> u8 {
        self.vals[0]
    }

    pub fn max(&self) -> u8 {
        self.vals[self.len as usize - 1]
    }

    pub fn contains(&self, v: u8) -> bool {
        self.as_slice().contains(&v)
    }

    /// Position of `v` in the list.
    pub fn index_of(&self, v: u8) -> Option<usize> {
        self.as_slice().iter().position(|&x| x == v)
    }
}

impl fmt::Debug for Choices {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl fmt::Display for Choices {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, v) in self.as_slice().iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{v}")?;
        }
        write!(f, "]")
    }
}

/// What is wrong with a space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpaceError {
    /// A field is outside its valid range (FORMAT.md section 5.1); names the field.
    OutOfRange(&'static str),
    /// A choice list is empty, too long, not increasing, or holds an invalid value.
    BadChoices(&'static str),
    /// The SPAC section has the wrong length for its stage count.
    BadLength { expected: usize, found: usize },
    /// A reserved byte is not zero.
    Reserved,
}

impl fmt::Display for SpaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpaceError::OutOfRange(field) => {
                write!(f, "search space: {field} is out of range")?;
                let limits = match *field {
                    "in_channels" => "1 to 8",
                    "resolution" => "1 to 4096",
                    "classes" => "1 to 65535",
                    "n_stages" | "stages" => "1 to 8 stages",
                    "max_depth" => "1 to 8 blocks per stage",
                    "width_mult" => "a finite number above 0 (at most 16)",
                    "stage stride" => "1 or 2",
                    "stage act" => "relu or h_swish",
                    _ => "1 to 4096 channels",
                };
                write!(f, " (valid: {limits})")
            }
            SpaceError::BadChoices(field) => {
                let valid = match *field {
                    "ks" => "odd kernel sizes from 1 to 9",
                    "e" => "expand ratios from 2 to 8",
                    _ => "depths from 1 to the blocks per stage (at most 8)",
                };
                write!(
                    f,
                    "search space: choice list {field} must hold 1 to 4 strictly increasing {valid}"
                )
            }
            SpaceError::BadLength { expected, found } => write!(
                f,
                "search space section has {found} bytes, expected {expected}"
            ),
            SpaceError::Reserved => write!(f, "search space: a reserved byte is not zero"),
        }
    }
}

/// The search space of an elastic OFA MobileNetV3 supernet.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Space {
    pub in_channels: u32,
    pub resolution: u32,
    pub classes: u32,
    pub n_stages: usize,
    /// Block slots per stage.
    pub max_depth: usize,
    pub stem_channels: u32,
    pub first_block_channels: u32,
    pub final_expand_channels: u32,
    pub feature_mix_channels: u32,
    /// Width multiplier the widths were derived with (information only).
    pub width_mult: f32,
    pub ks: Choices,
    pub e: Choices,
    pub d: Choices,
    stages: [Stage; MAX_STAGES],
}

/// Base widths of the original OFA MobileNetV3: stem, first block, five stages, final
/// expand, feature mix.
pub const OFA_BASE_WIDTHS: [u32; 9] = [16, 16, 24, 40, 80, 112, 160, 960, 1280];
/// Strides of the five OFA MobileNetV3 stages.
pub const OFA_STRIDES: [u32; 5] = [2, 2, 2, 1, 2];
/// Activations of the five OFA MobileNetV3 stages.
pub const OFA_ACTS: [Act; 5] = [Act::Relu, Act::Relu, Act::HSwish, Act::HSwish, Act::HSwish];
/// Squeeze-excite flags of the five OFA MobileNetV3 stages.
pub const OFA_SE: [bool; 5] = [false, true, false, true, true];

/// Everything needed to build a space from base widths and a width multiplier.
#[derive(Clone, Debug, PartialEq)]
pub struct SpaceParams<'a> {
    pub width_mult: f64,
    pub in_channels: u32,
    pub resolution: u32,
    pub classes: u32,
    /// stem, first block, one per stage, final expand, feature mix (before the multiplier).
    pub base_widths: &'a [u32],
    pub strides: &'a [u32],
    pub acts: &'a [Act],
    pub se: &'a [bool],
    pub ks: &'a [u8],
    pub e: &'a [u8],
    pub d: &'a [u8],
    /// Slots per stage; the largest depth choice when `None`.
    pub max_depth: Option<usize>,
}

impl Space {
    /// The standard OFA MobileNetV3 space (kernel 3/5/7, expand 3/4/6, depth 2/3/4).
    pub fn ofa_mobilenet_v3(
        width_mult: f64,
        in_channels: u32,
        resolution: u32,
        classes: u32,
    ) -> Result<Space, SpaceError> {
        Space::from_params(&SpaceParams {
            width_mult,
            in_channels,
            resolution,
            classes,
            base_widths: &OFA_BASE_WIDTHS,
            strides: &OFA_STRIDES,
            acts: &OFA_ACTS,
            se: &OFA_SE,
            ks: &[3, 5, 7],
            e: &[3, 4, 6],
            d: &[2, 3, 4],
            max_depth: None,
        })
    }

    /// Builds a space the way the original `OFAMobileNetV3` constructor does: every width
    /// is `make_divisible(base * width_mult)`.
    pub fn from_params(p: &SpaceParams<'_>) -> Result<Space, SpaceError> {
        let n_stages = p.strides.len();
        if n_stages == 0 || n_stages > MAX_STAGES {
            return Err(SpaceError::OutOfRange("stages"));
        }
        if p.base_widths.len() != n_stages + 4 {
            return Err(SpaceError::OutOfRange(
                "base_widths (needs stages + 4 entries)",
            ));
        }
        if p.acts.len() != n_stages {
            return Err(SpaceError::OutOfRange("acts (needs one per stage)"));
        }
        if p.se.len() != n_stages {
            return Err(SpaceError::OutOfRange("se (needs one per stage)"));
        }
        if !(p.width_mult.is_finite() && p.width_mult > 0.0 && p.width_mult <= 16.0) {
            return Err(SpaceError::OutOfRange("width_mult"));
        }
        let w = |b: u32| make_divisible_f64(b as f64 * p.width_mult);
        let ks = Choices::new(p.ks).ok_or(SpaceError::BadChoices("ks"))?;
        let e = Choices::new(p.e).ok_or(SpaceError::BadChoices("e"))?;
        let d = Choices::new(p.d).ok_or(SpaceError::BadChoices("d"))?;
        let max_depth = p.max_depth.unwrap_or(d.max() as usize);
        let mut stages = [Stage::EMPTY; MAX_STAGES];
        for (s, st) in stages.iter_mut().enumerate().take(n_stages) {
            *st = Stage {
                width: w(p.base_widths[2 + s]),
                stride: p.strides[s],
                act: p.acts[s],
                se: p.se[s],
            };
        }
        let space = Space {
            in_channels: p.in_channels,
            resolution: p.resolution,
            classes: p.classes,
            n_stages,
            max_depth,
            stem_channels: w(p.base_widths[0]),
            first_block_channels: w(p.base_widths[1]),
            final_expand_channels: w(p.base_widths[n_stages + 2]),
            feature_mix_channels: w(p.base_widths[n_stages + 3]),
            width_mult: p.width_mult as f32,
            ks,
            e,
            d,
            stages,
        };
        space.validate()?;
        Ok(space)
    }

    /// Builds a space from explicit widths (no multiplier) and checks it.
    #[allow(clippy::too_many_arguments)]
    pub fn from_explicit(
        in_channels: u32,
        resolution: u32,
        classes: u32,
        stem_channels: u32,
        first_block_channels: u32,
        final_expand_channels: u32,
        feature_mix_channels: u32,
        width_mult: f32,
        stages: &[Stage],
        max_depth: usize,
        ks: Choices,
        e: Choices,
        d: Choices,
    ) -> Result<Space, SpaceError> {
        if stages.is_empty() || stages.len() > MAX_STAGES {
            return Err(SpaceError::OutOfRange("n_stages"));
        }
        let mut st = [Stage::EMPTY; MAX_STAGES];
        st[..stages.len()].copy_from_slice(stages);
        let space = Space {
            in_channels,
            resolution,
            classes,
            n_stages: stages.len(),
            max_depth,
            stem_channels,
            first_block_channels,
            final_expand_channels,
            feature_mix_channels,
            width_mult,
            ks,
            e,
            d,
            stages: st,
        };
        space.validate()?;
        Ok(space)
    }

    /// Checks every field against FORMAT.md section 5.1.
    pub fn validate(&self) -> Result<(), SpaceError> {
        use SpaceError::*;
        let in_range = |v: u32, lo: u32, hi: u32| v >= lo && v <= hi;
        if !in_range(self.in_channels, 1, MAX_IN_CHANNELS as u32) {
            return Err(OutOfRange("in_channels"));
        }
        if !in_range(self.resolution, 1, MAX_RESOLUTION) {
            return Err(OutOfRange("resolution"));
        }
        if !in_range(self.classes, 1, MAX_CLASSES) {
            return Err(OutOfRange("classes"));
        }
        if self.n_stages == 0 || self.n_stages > MAX_STAGES {
            return Err(OutOfRange("n_stages"));
        }
        if self.max_depth == 0 || self.max_depth > MAX_DEPTH {
            return Err(OutOfRange("max_depth"));
        }
        for (v, name) in [
            (self.stem_channels, "stem_channels"),
            (self.first_block_channels, "first_block_channels"),
            (self.final_expand_channels, "final_expand_channels"),
            (self.feature_mix_channels, "feature_mix_channels"),
        ] {
            if !in_range(v, 1, MAX_WIDTH) {
                return Err(OutOfRange(name));
            }
        }
        if !(self.width_mult.is_finite() && self.width_mult > 0.0) {
            return Err(OutOfRange("width_mult"));
        }
        for s in self.stages() {
            if !in_range(s.width, 1, MAX_WIDTH) {
                return Err(OutOfRange("stage width"));
            }
            if s.stride != 1 && s.stride != 2 {
                return Err(OutOfRange("stage stride"));
            }
        }
        check_choices(&self.ks, "ks", |k| k % 2 == 1 && k <= 9)?;
        check_choices(&self.e, "e", |e| (2..=8).contains(&e))?;
        let md = self.max_depth as u8;
        check_choices(&self.d, "d", |d| d >= 1 && d <= md)?;
        Ok(())
    }

    /// The stages in order.
    pub fn stages(&self) -> &[Stage] {
        &self.stages[..self.n_stages]
    }

    pub fn stage(&self, s: usize) -> &Stage {
        &self.stages[s]
    }

    /// Number of block slots (`n_stages * max_depth`).
    pub fn n_slots(&self) -> usize {
        self.n_stages * self.max_depth
    }

    /// Length of this space's SPAC section.
    pub fn spac_len(&self) -> usize {
        SPAC_FIXED_LEN + SPAC_STAGE_LEN * self.n_stages
    }

    /// Writes the SPAC section into `out` (which must be `spac_len()` bytes long).
    pub fn encode(&self, out: &mut [u8]) {
        assert_eq!(out.len(), self.spac_len());
        out.fill(0);
        let u32s = [
            self.in_channels,
            self.resolution,
            self.classes,
            self.n_stages as u32,
            self.max_depth as u32,
            self.stem_channels,
            self.first_block_channels,
            self.final_expand_channels,
            self.feature_mix_channels,
            self.width_mult.to_bits(),
        ];
        for (i, v) in u32s.iter().enumerate() {
            out[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
        }
        for (at, c) in [(40, &self.ks), (45, &self.e), (50, &self.d)] {
            out[at] = c.len;
            out[at + 1..at + 1 + c.len()].copy_from_slice(c.as_slice());
        }
        for (i, s) in self.stages().iter().enumerate() {
            let r = &mut out[SPAC_FIXED_LEN + i * SPAC_STAGE_LEN..][..SPAC_STAGE_LEN];
            r[0..2].copy_from_slice(&(s.width as u16).to_le_bytes());
            r[2] = s.stride as u8;
            r[3] = s.act.code();
            r[4] = s.se as u8;
        }
    }

    /// Parses and validates a SPAC section.
    pub fn decode(b: &[u8]) -> Result<Space, SpaceError> {
        if b.len() < SPAC_FIXED_LEN {
            return Err(SpaceError::BadLength {
                expected: SPAC_FIXED_LEN,
                found: b.len(),
            });
        }
        let u = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let n_stages = u(12);
        if n_stages == 0 || n_stages as usize > MAX_STAGES {
            return Err(SpaceError::OutOfRange("n_stages"));
        }
        let n_stages = n_stages as usize;
        let expected = SPAC_FIXED_LEN + SPAC_STAGE_LEN * n_stages;
        if b.len() != expected {
            return Err(SpaceError::BadLength {
                expected,
                found: b.len(),
            });
        }
        let choices = |at: usize, name: &'static str| -> Result<Choices, SpaceError> {
            let n = b[at] as usize;
            if n == 0 || n > MAX_CHOICES {
                return Err(SpaceError::BadChoices(name));
            }
            if b[at + 1 + n..at + 1 + MAX_CHOICES].iter().any(|&x| x != 0) {
                return Err(SpaceError::Reserved);
            }
            Choices::new(&b[at + 1..at + 1 + n]).ok_or(SpaceError::BadChoices(name))
        };
        let ks = choices(40, "ks")?;
        let e = choices(45, "e")?;
        let d = choices(50, "d")?;
        if b[55] != 0 {
            return Err(SpaceError::Reserved);
        }
        let mut stages = [Stage::EMPTY; MAX_STAGES];
        for (i, st) in stages.iter_mut().enumerate().take(n_stages) {
            let r = &b[SPAC_FIXED_LEN + i * SPAC_STAGE_LEN..][..SPAC_STAGE_LEN];
            let act = Act::from_code(r[3]).ok_or(SpaceError::OutOfRange("stage act"))?;
            let se = match r[4] {
                0 => false,
                1 => true,
                _ => return Err(SpaceError::OutOfRange("stage se")),
            };
            if r[5..8].iter().any(|&x| x != 0) {
                return Err(SpaceError::Reserved);
            }
            *st = Stage {
                width: u16::from_le_bytes([r[0], r[1]]) as u32,
                stride: r[2] as u32,
                act,
                se,
            };
        }
        let max_depth = u(16);
        if max_depth == 0 || max_depth as usize > MAX_DEPTH {
            return Err(SpaceError::OutOfRange("max_depth"));
        }
        let space = Space {
            in_channels: u(0),
            resolution: u(4),
            classes: u(8),
            n_stages,
            max_depth: max_depth as usize,
            stem_channels: u(20),
            first_block_channels: u(24),
            final_expand_channels: u(28),
            feature_mix_channels: u(32),
            width_mult: f32::from_bits(u(36)),
            ks,
            e,
            d,
            stages,
        };
        space.validate()?;
        Ok(space)
    }
}

fn check_choices(
    c: &Choices,
    name: &'static str,
    ok: impl Fn(u8) -> bool,
) -> Result<(), SpaceError> {
    if c.is_empty() || c.len() > MAX_CHOICES || !c.as_slice().iter().all(|&v| ok(v)) {
        return Err(SpaceError::BadChoices(name));
    }
    if c.as_slice().windows(2).any(|w| w[0] >= w[1]) {
        return Err(SpaceError::BadChoices(name));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn make_divisible_matches_the_python_original() {
        // Values computed with the original `make_divisible(v, 8)`.
        assert_eq!(make_divisible_f64(16.0 * 0.35), 8);
        assert_eq!(make_divisible_f64(24.0 * 0.35), 8);
        assert_eq!(make_divisible_f64(40.0 * 0.35), 16);
        assert_eq!(make_divisible_f64(80.0 * 0.35), 32);
        assert_eq!(make_divisible_f64(112.0 * 0.35), 40);
        assert_eq!(make_divisible_f64(160.0 * 0.35), 56);
        assert_eq!(make_divisible_f64(960.0 * 0.35), 336);
        assert_eq!(make_divisible_f64(1280.0 * 0.35), 448);
        assert_eq!(make_divisible_f64(3.0), 8);
        // 10% rule: 36 -> 40 (int(40)//8*8 = 40), 20 -> 24, 12 -> 16, 52 -> 56.
        assert_eq!(make_divisible(20), 24);
        assert_eq!(make_divisible(12), 16);
        assert_eq!(make_divisible(36), 40);
        assert_eq!(make_divisible(3), 8);
        assert_eq!(make_divisible(96), 96);
        assert_eq!(make_divisible(100), 104);
        for v in 1..5000u32 {
            assert_eq!(make_divisible(v), make_divisible_f64(v as f64), "v = {v}");
            let m = make_divisible(v);
            assert!(m % 8 == 0 && m >= 8 && (m as f64) >= 0.9 * v as f64);
        }
    }

    #[test]
    fn standard_space_widths() {
        let s = Space::ofa_mobilenet_v3(1.0, 3, 224, 1000).unwrap();
        let w: [u32; 5] = core::array::from_fn(|i| s.stage(i).width);
        assert_eq!(w, [24, 40, 80, 112, 160]);
        assert_eq!((s.stem_channels, s.first_block_channels), (16, 16));
        assert_eq!(
            (s.final_expand_channels, s.feature_mix_channels),
            (960, 1280)
        );
        assert_eq!(s.n_slots(), 20);
        let s = Space::ofa_mobilenet_v3(0.35, 3, 32, 10).unwrap();
        let w: [u32; 5] = core::array::from_fn(|i| s.stage(i).width);
        assert_eq!(w, [8, 16, 32, 40, 56]);
        assert_eq!(
            (s.final_expand_channels, s.feature_mix_channels),
            (336, 448)
        );
    }

    #[test]
    fn encode_decode_round_trip() {
        let s = Space::ofa_mobilenet_v3(1.2, 1, 28, 10).unwrap();
        let mut buf = [0u8; 96];
        let n = s.spac_len();
        s.encode(&mut buf[..n]);
        assert_eq!(Space::decode(&buf[..n]).unwrap(), s);
        assert!(matches!(
            Space::decode(&buf[..n - 1]),
            Err(SpaceError::BadLength { .. })
        ));
    }

    #[test]
    fn invalid_fields_are_named() {
        let s = Space::ofa_mobilenet_v3(1.0, 1, 28, 10).unwrap();
        let mut buf = [0u8; 96];
        let n = s.spac_len();
        s.encode(&mut buf[..n]);
        let mut bad = buf;
        bad[0] = 0; // in_channels = 0
        assert_eq!(
            Space::decode(&bad[..n]),
            Err(SpaceError::OutOfRange("in_channels"))
        );
        let mut bad = buf;
        bad[42] = 4; // ks = [3, 4, 7]: even kernel
        assert_eq!(Space::decode(&bad[..n]), Err(SpaceError::BadChoices("ks")));
        let mut bad = buf;
        bad[52] = 9; // depth choice above max_depth
        assert_eq!(Space::decode(&bad[..n]), Err(SpaceError::BadChoices("d")));
        let mut bad = buf;
        bad[SPAC_FIXED_LEN + 2] = 3; // stride 3
        assert_eq!(
            Space::decode(&bad[..n]),
            Err(SpaceError::OutOfRange("stage stride"))
        );
        let mut bad = buf;
        bad[SPAC_FIXED_LEN + 3] = 7; // unknown activation
        assert_eq!(
            Space::decode(&bad[..n]),
            Err(SpaceError::OutOfRange("stage act"))
        );
    }
}
