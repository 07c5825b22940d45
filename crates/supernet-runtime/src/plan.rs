//! The arena plan: how a session splits the caller's arena into buffers, and how many
//! `f32` each buffer needs for a config. Sizes are computed before running, from the space
//! and the config only.

use supernet_format::arch::{self, head_in, slot, stem_out};
use supernet_format::{Space, SubnetConfig};

/// Buffer sizes in `f32` elements.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Each of the two block input/output buffers (ping-pong).
    pub io: usize,
    /// Expanded activations (output of a block's expand conv, or of the head's final expand).
    pub mid: usize,
    /// Depthwise output.
    pub dw: usize,
    /// Squeeze-excite and head vectors.
    pub scratch: usize,
}

/// Alignment of each buffer inside the arena, in `f32` (64 bytes).
const BUF_ALIGN: usize = 16;

fn up(v: usize) -> usize {
    v.div_ceil(BUF_ALIGN) * BUF_ALIGN
}

impl Plan {
    /// The buffers `config` needs (`config` must be valid for `space`). With `None`, the
    /// largest config, which needs at least as much as any config.
    pub fn new(space: &Space, config: Option<&SubnetConfig>) -> Plan {
        let largest;
        let config = match config {
            Some(c) => c,
            None => {
                largest = SubnetConfig::largest(space);
                &largest
            }
        };
        let h = stem_out(space) as usize;
        let px = h * h;
        let stem_c = space.stem_channels as usize;
        let first_c = space.first_block_channels as usize;
        let mut p = Plan {
            io: px * stem_c.max(first_c),
            mid: 0,
            dw: px * stem_c,
            scratch: 0,
        };
        for i in 0..space.n_slots() {
            if !config.active(space.max_depth, i) {
                continue;
            }
            let s = slot(space, i);
            let mid = s.mid(config.e()[i]) as usize;
            let pin = (s.h_in * s.h_in) as usize;
            let pout = (s.h_out * s.h_out) as usize;
            p.io = p.io.max(pout * s.cout as usize);
            p.mid = p.mid.max(pin * mid);
            p.dw = p.dw.max(pout * mid);
            if s.se {
                p.scratch = p.scratch.max(mid + arch::se_hidden(mid as u32) as usize);
            }
        }
        let hh = head_in(space) as usize;
        let fe = space.final_expand_channels as usize;
        let fm = space.feature_mix_channels as usize;
        p.mid = p.mid.max(hh * hh * fe);
        p.scratch = p.scratch.max(fe + fm);
        p
    }

    /// Total arena length in `f32` (buffers rounded up to 64 bytes each).
    pub fn total(&self) -> usize {
        2 * up(self.io) + up(self.mid) + up(self.dw) + up(self.scratch)
    }

    /// Total arena length in bytes.
    pub fn bytes(&self) -> usize {
        4 * self.total()
    }

    /// Splits an arena of at least `total()` elements into
    /// `(io_a, io_b, mid, dw, scratch)`; `None` if it is too short.
    #[allow(clippy::type_complexity)]
    pub fn split<'a>(
        &self,
        arena: &'a mut [f32],
    ) -> Option<(
        &'a mut [f32],
        &'a mut [f32],
        &'a mut [f32],
        &'a mut [f32],
        &'a mut [f32],
    )> {
        if arena.len() < self.total() {
            return None;
        }
        let (a, rest) = arena.split_at_mut(up(self.io));
        let (b, rest) = rest.split_at_mut(up(self.io));
        let (m, rest) = rest.split_at_mut(up(self.mid));
        let (d, rest) = rest.split_at_mut(up(self.dw));
        let (s, _) = rest.split_at_mut(up(self.scratch));
        Some((a, b, m, d, s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largest_config_bounds_every_config() {
        let s = Space::ofa_mobilenet_v3(1.0, 1, 28, 10).unwrap();
        let big = Plan::new(&s, None);
        assert_eq!(big, Plan::new(&s, Some(&SubnetConfig::largest(&s))));
        let small = Plan::new(&s, Some(&SubnetConfig::smallest(&s)));
        assert!(small.total() < big.total());
        // 14x14x96 expanded activations of stage 1's first block dominate at 28x28
        assert_eq!(big.mid, 14 * 14 * 96);
        assert_eq!(big.dw, 7 * 7 * 144);
        assert_eq!(big.io, 14 * 14 * 16);
    }
}
