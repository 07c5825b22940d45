//! A session runs one subnet at a time in a caller-provided arena. Selecting a subnet
//! validates its config and checks the arena (a few hundred operations, independent of the
//! model's size) and allocates nothing; running walks the active layers and reads every
//! weight in place from the shared tensors.

use supernet_format::arch::{self, STEM_KERNEL, STEM_STRIDE, head_in, slot, stem_out};
use supernet_format::{Act as SpaceAct, SubnetConfig};

use crate::Error;
use crate::budget::{self, BatteryPolicy, BudgetState, Candidate, Clock, Selection};
use crate::kernels::{self, Act};
use crate::model::Model;
use crate::plan::Plan;

/// Which BN a run uses.
#[derive(Clone, Copy, Debug)]
enum BnSource<'a> {
    /// A stored subnet's own BN set: layers packed at their active widths.
    Own(&'a [f32]),
    /// The default BN set: layers at their largest widths, sliced.
    Default(&'a [f32]),
}

/// The subnet a session runs.
#[derive(Clone, Copy, Debug)]
pub struct Active<'a> {
    pub config: SubnetConfig,
    /// The stored subnet's id, if the config is one of the table's.
    pub id: Option<u32>,
    /// Its position in the table.
    pub index: Option<usize>,
    bn: BnSource<'a>,
    plan: Plan,
}

impl Active<'_> {
    /// Whether the session uses the subnet's own (recalibrated) BN rather than the
    /// supernet's default BN.
    pub fn has_own_bn(&self) -> bool {
        matches!(self.bn, BnSource::Own(_))
    }

    /// Arena bytes this subnet needs.
    pub fn arena_bytes(&self) -> usize {
        self.plan.bytes()
    }
}

/// Runs subnets of one model in one arena. Belongs to one thread at a time.
pub struct Session<'m, 'a> {
    model: &'m Model<'a>,
    arena: &'m mut [f32],
    active: Active<'a>,
    /// Calibrated expected latencies (one per stored subnet), replacing the artifact's.
    latencies: Option<&'m [u32]>,
    budget: BudgetState,
}

impl<'m, 'a> Session<'m, 'a> {
    /// A session over `arena` with the largest stored subnet that fits active (or, with no
    /// stored subnets, the largest config that fits, else the smallest config). Fails only
    /// if the arena cannot hold even the smallest config.
    pub fn new(model: &'m Model<'a>, arena: &'m mut [f32]) -> Result<Self, Error> {
        let space = *model.space();
        let smallest = SubnetConfig::smallest(&space);
        let plan = Plan::new(&space, Some(&smallest));
        if arena.len() < plan.total() {
            return Err(Error::ArenaTooSmall {
                needed_bytes: plan.bytes(),
                given_bytes: arena.len() * 4,
            });
        }
        let mut s = Session {
            model,
            arena,
            active: Active {
                config: smallest,
                id: None,
                index: None,
                bn: BnSource::Default(model.artifact().default_bn()),
                plan,
            },
            latencies: None,
            budget: BudgetState::default(),
        };
        let _ = s.select_config(&smallest);
        let largest = SubnetConfig::largest(&space);
        if s.select_config(&largest).is_err() {
            // the largest config does not fit: take the biggest stored subnet that does
            let mut best: Option<(u64, usize)> = None;
            for i in 0..model.subnet_count() {
                if let Some(sub) = model.subnet(i)
                    && model.arena_bytes(&sub.config) <= s.arena.len() * 4
                    && best.is_none_or(|(m, _)| sub.macs > m)
                {
                    best = Some((sub.macs, i));
                }
            }
            if let Some((_, i)) = best {
                s.select_index(i)?;
            }
        }
        Ok(s)
    }

    /// The model this session runs.
    pub fn model(&self) -> &'m Model<'a> {
        self.model
    }

    /// The active subnet.
    pub fn active(&self) -> &Active<'a> {
        &self.active
    }

    /// Arena length in `f32` given to the session.
    pub fn arena_len(&self) -> usize {
        self.arena.len()
    }

    /// Activates stored subnet `index` (table position) with its own BN.
    pub fn select_index(&mut self, index: usize) -> Result<(), Error> {
        let sub = self.model.subnet(index).ok_or(Error::UnknownSubnet {
            id: index.min(u32::MAX as usize) as u32,
        })?;
        self.activate(sub.config, Some((sub.id, index)), BnSource::Own(sub.bn))
    }

    /// Activates the stored subnet with this id, with its own BN.
    pub fn select_subnet(&mut self, id: u32) -> Result<(), Error> {
        let (index, sub) = self
            .model
            .artifact()
            .subnet_by_id(id)
            .ok_or(Error::UnknownSubnet { id })?;
        self.activate(sub.config, Some((sub.id, index)), BnSource::Own(sub.bn))
    }

    /// Activates any valid config. If a stored subnet has exactly this config, its own
    /// (recalibrated) BN is used; otherwise the supernet's default BN, sliced.
    pub fn select_config(&mut self, config: &SubnetConfig) -> Result<(), Error> {
        self.model.check_config(config)?;
        let art = self.model.artifact();
        for i in 0..art.subnet_count() {
            if let Some(sub) = art.subnet(i)
                && sub.config == *config
            {
                return self.activate(sub.config, Some((sub.id, i)), BnSource::Own(sub.bn));
            }
        }
        self.activate(*config, None, BnSource::Default(art.default_bn()))
    }

    fn activate(
        &mut self,
        config: SubnetConfig,
        stored: Option<(u32, usize)>,
        bn: BnSource<'a>,
    ) -> Result<(), Error> {
        let plan = Plan::new(self.model.space(), Some(&config));
        if plan.total() > self.arena.len() {
            return Err(Error::ArenaTooSmall {
                needed_bytes: plan.bytes(),
                given_bytes: self.arena.len() * 4,
            });
        }
        self.active = Active {
            config,
            id: stored.map(|s| s.0),
            index: stored.map(|s| s.1),
            bn,
            plan,
        };
        Ok(())
    }

    /// Expected latency of stored subnet `index` in microseconds: the calibrated table's if
    /// the session has one, else the artifact's; 0 if unknown.
    pub fn expected_latency_us(&self, index: usize) -> u32 {
        match self.latencies {
            Some(t) => t.get(index).copied().unwrap_or(0),
            None => self.model.subnet(index).map_or(0, |s| s.latency_us),
        }
    }

    /// Uses `table` (one latency in microseconds per stored subnet, 0 for unknown) instead
    /// of the artifact's expected latencies, e.g. the output of [`Session::calibrate`].
    pub fn set_latencies(&mut self, table: &'m [u32]) -> Result<(), Error> {
        if table.len() != self.model.subnet_count() {
            return Err(Error::LatencyTableLength {
                expected: self.model.subnet_count(),
                found: table.len(),
            });
        }
        self.latencies = Some(table);
        Ok(())
    }

    /// Goes back to the artifact's expected latencies.
    pub fn clear_latencies(&mut self) {
        self.latencies = None;
    }

    /// Times every stored subnet that fits the arena on `input` with `clock`: a warm-up run
    /// of every subnet (the first runs after a pause are slower, and would otherwise be
    /// charged to the first subnet), then per subnet one more warm-up run and `runs` timed
    /// runs (clamped to 1..=15); writes the median of each to
    /// `out[index]` (at least 1 microsecond; 0 for subnets that do not fit the arena).
    /// `logits` receives the outputs, as in [`Session::run`]. The active subnet is restored
    /// afterwards. Pass `out` to [`Session::set_latencies`] to use it.
    pub fn calibrate(
        &mut self,
        clock: &mut impl Clock,
        input: &[f32],
        logits: &mut [f32],
        runs: u32,
        out: &mut [u32],
    ) -> Result<(), Error> {
        let n = self.model.subnet_count();
        if out.len() != n {
            return Err(Error::LatencyTableLength {
                expected: n,
                found: out.len(),
            });
        }
        // Check input and output lengths before touching `out`.
        if input.len() != self.model.input_len() {
            return Err(Error::InputLength {
                expected: self.model.input_len(),
                found: input.len(),
            });
        }
        if logits.len() < self.model.classes() {
            return Err(Error::OutputLength {
                expected: self.model.classes(),
                found: logits.len(),
            });
        }
        let runs = runs.clamp(1, 15) as usize;
        let saved = self.active;
        let mut times = [0u64; 15];
        let mut result = Ok(());
        // Warm-up pass over every subnet first (see above).
        for i in 0..n {
            if self.select_index(i).is_err() {
                continue;
            }
            if let Err(e) = self.run(input, logits) {
                self.active = saved;
                return Err(e);
            }
        }
        for (i, slot) in out.iter_mut().enumerate() {
            if self.select_index(i).is_err() {
                *slot = 0;
                continue;
            }
            if let Err(e) = self.run(input, logits) {
                result = Err(e);
                break;
            }
            for t in times.iter_mut().take(runs) {
                let start = clock.now_us();
                if let Err(e) = self.run(input, logits) {
                    result = Err(e);
                    break;
                }
                *t = clock.now_us().saturating_sub(start);
            }
            if result.is_err() {
                break;
            }
            let ts = &mut times[..runs];
            ts.sort_unstable();
            *slot = ts[runs / 2].clamp(1, u32::MAX as u64) as u32;
        }
        self.active = saved;
        result
    }

    /// The battery policy used by [`Session::select_battery`].
    pub fn battery_policy(&self) -> BatteryPolicy {
        self.budget.policy
    }

    /// Replaces the battery policy (validated) and forgets the filtered level.
    pub fn set_battery_policy(&mut self, policy: BatteryPolicy) -> Result<(), Error> {
        policy.validate()?;
        self.budget.policy = policy;
        self.budget.level = None;
        Ok(())
    }

    /// Sets the upgrade margin of latency selection in percent (default 10; at most 100).
    pub fn set_upgrade_margin(&mut self, percent: u8) -> Result<(), Error> {
        if percent > 100 {
            return Err(Error::BadPolicy(
                "upgrade margin must be at most 100 percent",
            ));
        }
        self.budget.upgrade_margin_pct = percent;
        Ok(())
    }

    fn candidate(&self, index: usize) -> Option<Candidate> {
        let sub = self.model.subnet(index)?;
        let latency_us = self.expected_latency_us(index);
        (latency_us > 0 && self.model.arena_bytes(&sub.config) <= self.arena.len() * 4).then_some(
            Candidate {
                index,
                accuracy: sub.accuracy,
                latency_us,
            },
        )
    }

    fn candidates(&self) -> impl Iterator<Item = Candidate> + Clone + '_ {
        (0..self.model.subnet_count()).filter_map(|i| self.candidate(i))
    }

    /// Activates the most accurate stored subnet whose expected latency fits `budget_us`,
    /// with hysteresis (see [`crate::budget`]). If none fits, the fastest is activated and
    /// the selection's `fits` is false. Fails with [`Error::NoLatencies`] if no stored
    /// subnet has a known latency and fits the arena.
    pub fn select_latency(&mut self, budget_us: u32) -> Result<Selection, Error> {
        let current = self.active.index.and_then(|i| self.candidate(i));
        let (chosen, fits) = budget::choose(
            self.candidates(),
            current,
            budget_us,
            self.budget.upgrade_margin_pct,
        )
        .ok_or(Error::NoLatencies)?;
        let changed = self.active.index != Some(chosen.index);
        if changed {
            self.select_index(chosen.index)?;
        }
        let mut sel = self.selection();
        sel.budget_us = budget_us;
        sel.fits = fits;
        sel.changed = changed;
        Ok(sel)
    }

    /// Maps a battery level (percent; values above 100 count as 100) and a charging flag to
    /// a latency budget through the session's [`BatteryPolicy`], then selects as
    /// [`Session::select_latency`] does.
    pub fn select_battery(&mut self, level: u8, charging: bool) -> Result<Selection, Error> {
        let (mut fastest, mut slowest) = (u32::MAX, 0u32);
        for c in self.candidates() {
            fastest = fastest.min(c.latency_us);
            slowest = slowest.max(c.latency_us);
        }
        if slowest == 0 {
            return Err(Error::NoLatencies);
        }
        let level = self.budget.filter_level(level, charging);
        // Headroom so that the full budget also upgrades to the slowest subnet.
        let margin = self.budget.upgrade_margin_pct as u64;
        let top = (slowest as u64 * (100 + margin))
            .div_ceil(100)
            .min(u32::MAX as u64) as u32;
        let budget_us = self.budget.policy.budget_us(level, charging, fastest, top);
        self.select_latency(budget_us)
    }

    /// What is active now: its table position and id if it is a stored subnet, its stored
    /// accuracy (NaN if not stored or unknown), costs, arena bytes and expected latency.
    pub fn selection(&self) -> Selection {
        let cost = self.model.cost(&self.active.config);
        let stored = self.active.index.and_then(|i| self.model.subnet(i));
        Selection {
            index: self.active.index,
            id: self.active.id,
            accuracy: stored.map_or(f32::NAN, |s| s.accuracy),
            macs: cost.macs,
            params: cost.params,
            arena_bytes: self.active.plan.bytes() as u32,
            latency_us: self.active.index.map_or(0, |i| self.expected_latency_us(i)),
            budget_us: 0,
            fits: true,
            changed: false,
        }
    }

    /// Runs the active subnet on one input (CHW, `model.input_len()` values, already
    /// preprocessed) and writes `model.classes()` logits to the start of `logits`.
    pub fn run(&mut self, input: &[f32], logits: &mut [f32]) -> Result<(), Error> {
        let model = self.model;
        if input.len() != model.input_len() {
            return Err(Error::InputLength {
                expected: model.input_len(),
                found: input.len(),
            });
        }
        if logits.len() < model.classes() {
            return Err(Error::OutputLength {
                expected: model.classes(),
                found: logits.len(),
            });
        }
        let active = self.active;
        let given_bytes = self.arena.len() * 4;
        let (a, b, mid, dw, scratch) =
            active.plan.split(self.arena).ok_or(Error::ArenaTooSmall {
                needed_bytes: active.plan.bytes(),
                given_bytes,
            })?;
        execute(
            model,
            &active,
            input,
            a,
            b,
            mid,
            dw,
            scratch,
            &mut logits[..model.classes()],
        )
        .ok_or(Error::Internal)
    }
}

/// Reads BN layers in BN-set order.
struct BnCursor<'a> {
    data: &'a [f32],
    pos: usize,
    own: bool,
}

impl<'a> BnCursor<'a> {
    fn new(src: BnSource<'a>) -> Self {
        match src {
            BnSource::Own(d) => BnCursor {
                data: d,
                pos: 0,
                own: true,
            },
            BnSource::Default(d) => BnCursor {
                data: d,
                pos: 0,
                own: false,
            },
        }
    }

    /// `(scale, shift)` of the next layer with `c` active of `max` channels.
    fn next(&mut self, c: usize, max: usize) -> Option<(&'a [f32], &'a [f32])> {
        let stride = if self.own { c } else { max };
        let scale = self.data.get(self.pos..self.pos + c)?;
        let shift = self.data.get(self.pos + stride..self.pos + stride + c)?;
        self.pos += 2 * stride;
        Some((scale, shift))
    }

    /// Skips an inactive slot (only the default set stores it).
    fn skip_slot(&mut self, max_mid: usize, cout: usize) {
        if !self.own {
            self.pos += 2 * (2 * max_mid + cout);
        }
    }
}

fn act(a: SpaceAct) -> Act {
    match a {
        SpaceAct::Relu => Act::Relu,
        SpaceAct::HSwish => Act::HSwish,
    }
}

/// Sub-slice helpers that turn a size mistake into `None` instead of a panic.
fn part(s: &[f32], n: usize) -> Option<&[f32]> {
    s.get(..n)
}

fn part_mut(s: &mut [f32], n: usize) -> Option<&mut [f32]> {
    s.get_mut(..n)
}

/// The forward pass. Returns `None` only if a size invariant is broken (validated models
/// never do that); nothing panics.
#[allow(clippy::too_many_arguments)]
fn execute<'b>(
    model: &Model<'_>,
    active: &Active<'_>,
    input: &[f32],
    mut a: &'b mut [f32],
    mut b: &'b mut [f32],
    mid_buf: &mut [f32],
    dw_buf: &mut [f32],
    scratch: &mut [f32],
    logits: &mut [f32],
) -> Option<()> {
    let space = model.space();
    let art = model.artifact();
    let t = |i: usize| art.tensor(i);
    let cfg = &active.config;
    let mut bn = BnCursor::new(active.bn);

    // Stem: CHW input -> HWC, 3x3 stride 2, BN, h-swish.
    let r = space.resolution as usize;
    let cin = space.in_channels as usize;
    let h = stem_out(space) as usize;
    let px = h * h;
    let stem_c = space.stem_channels as usize;
    let first_c = space.first_block_channels as usize;
    let (sc, sh) = bn.next(stem_c, stem_c)?;
    let stem_w = t(0)?;
    kernels::conv_chw_to_hwc(
        input,
        cin,
        r,
        r,
        stem_w,
        stem_c,
        STEM_KERNEL as usize,
        STEM_STRIDE as usize,
        sc,
        sh,
        Act::HSwish,
        part_mut(a, px * stem_c)?,
    );

    // First block: depthwise 3x3 + BN + ReLU, project + BN, residual.
    let (sc, sh) = bn.next(stem_c, stem_c)?;
    kernels::depthwise(
        part(a, px * stem_c)?,
        h,
        h,
        stem_c,
        t(1)?,
        stem_c,
        STEM_KERNEL as usize,
        1,
        sc,
        sh,
        Act::Relu,
        part_mut(dw_buf, px * stem_c)?,
    );
    let (sc, sh) = bn.next(first_c, first_c)?;
    kernels::pointwise(
        part(dw_buf, px * stem_c)?,
        px,
        stem_c,
        t(2)?,
        stem_c,
        first_c,
        sc,
        sh,
        Act::None,
        part_mut(b, px * first_c)?,
    );
    if stem_c == first_c {
        kernels::add_inplace(part_mut(b, px * first_c)?, part(a, px * stem_c)?);
    }
    core::mem::swap(&mut a, &mut b);

    // Stages.
    let nk = space.ks.len();
    for i in 0..space.n_slots() {
        let s = slot(space, i);
        let max_mid = s.max_mid as usize;
        let cout = s.cout as usize;
        if !cfg.active(space.max_depth, i) {
            bn.skip_slot(max_mid, cout);
            continue;
        }
        let cin = s.cin as usize;
        let mid = s.mid(cfg.e()[i]) as usize;
        let k = cfg.ks()[i] as usize;
        let pin = (s.h_in * s.h_in) as usize;
        let pout = (s.h_out * s.h_out) as usize;
        let hin = s.h_in as usize;
        let a_act = act(s.act);
        let base = model.slot_base(i);
        let k_index = space.ks.index_of(k as u8)?;

        // expand
        let (sc, sh) = bn.next(mid, max_mid)?;
        kernels::pointwise(
            part(a, pin * cin)?,
            pin,
            cin,
            t(base)?,
            cin,
            mid,
            sc,
            sh,
            a_act,
            part_mut(mid_buf, pin * mid)?,
        );
        // depthwise
        let (sc, sh) = bn.next(mid, max_mid)?;
        kernels::depthwise(
            part(mid_buf, pin * mid)?,
            hin,
            hin,
            mid,
            t(base + 1 + k_index)?,
            max_mid,
            k,
            s.stride as usize,
            sc,
            sh,
            a_act,
            part_mut(dw_buf, pout * mid)?,
        );
        // squeeze-excite
        let mut next_t = base + 1 + nk;
        if s.se {
            let hidden = arch::se_hidden(mid as u32) as usize;
            let max_hidden = s.max_hidden as usize;
            kernels::squeeze_excite(
                part_mut(dw_buf, pout * mid)?,
                pout,
                mid,
                t(next_t)?,
                max_mid,
                t(next_t + 1)?,
                hidden,
                t(next_t + 2)?,
                max_hidden,
                t(next_t + 3)?,
                part_mut(scratch, mid + hidden)?,
            );
            next_t += 4;
        }
        // project
        let (sc, sh) = bn.next(cout, cout)?;
        kernels::pointwise(
            part(dw_buf, pout * mid)?,
            pout,
            mid,
            t(next_t)?,
            max_mid,
            cout,
            sc,
            sh,
            Act::None,
            part_mut(b, pout * cout)?,
        );
        if s.residual {
            kernels::add_inplace(part_mut(b, pout * cout)?, part(a, pin * cin)?);
        }
        core::mem::swap(&mut a, &mut b);
    }

    // Head: final expand + BN + h-swish, pool, feature mix + h-swish, classifier.
    let hh = head_in(space) as usize;
    let hpx = hh * hh;
    let last_w = space.stage(space.n_stages - 1).width as usize;
    let fe = space.final_expand_channels as usize;
    let fm = space.feature_mix_channels as usize;
    let classes = space.classes as usize;
    let n = arch::tensor_count(space);
    let (sc, sh) = bn.next(fe, fe)?;
    kernels::pointwise(
        part(a, hpx * last_w)?,
        hpx,
        last_w,
        t(n - 4)?,
        last_w,
        fe,
        sc,
        sh,
        Act::HSwish,
        part_mut(mid_buf, hpx * fe)?,
    );
    let (pooled, rest) = scratch.get_mut(..fe + fm)?.split_at_mut(fe);
    kernels::global_avg_pool(part(mid_buf, hpx * fe)?, hpx, fe, pooled);
    kernels::linear(pooled, fe, t(n - 3)?, fe, None, fm, Act::HSwish, rest);
    kernels::linear(
        rest,
        fm,
        t(n - 2)?,
        fm,
        Some(t(n - 1)?),
        classes,
        Act::None,
        logits,
    );
    Some(())
}

/// Index of the largest logit (the first on ties); `None` for an empty slice.
pub fn argmax(logits: &[f32]) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in logits.iter().enumerate() {
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i)
}

/// Softmax in place (numerically stable).
pub fn softmax(x: &mut [f32]) {
    let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in x.iter_mut() {
        *v = libm::expf(*v - m);
        sum += *v;
    }
    if sum > 0.0 {
        for v in x.iter_mut() {
            *v /= sum;
        }
    }
}
