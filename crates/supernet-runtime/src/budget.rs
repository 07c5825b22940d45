//! Choosing a stored subnet from a budget: a latency budget in microseconds, or a battery
//! level mapped to a latency budget by a [`BatteryPolicy`]. Both have hysteresis so that a
//! budget or a level jittering around a boundary does not make a session flap between two
//! subnets. Expected latencies come from the artifact (measured by its writer) or from
//! timing the subnets on the device ([`crate::Session::calibrate`] with a [`Clock`]).
//!
//! Selection is O(number of stored subnets), reads only the subnet table, and allocates
//! nothing. The rules, exactly:
//!
//! - *Eligible*: a stored subnet with a known expected latency (non-zero) whose arena need
//!   fits the session's arena.
//! - *Better*: higher stored accuracy (an unknown, NaN accuracy ranks lowest); on a tie,
//!   lower expected latency; then lower table position.
//! - `select_latency(B)`: if no eligible subnet has latency at most `B`, the fastest eligible
//!   subnet is chosen and the result says the budget is not met ([`Selection::fits`] false;
//!   `SN_OVER_BUDGET` in C). Otherwise, if the active subnet is eligible and fits `B`, it is
//!   kept unless a better subnet fits `B * 100 / (100 + margin)` (upgrade margin, default
//!   10 %); if the active subnet does not fit, the best subnet that fits `B` is chosen. So a
//!   budget never stays above the active subnet's latency without being honoured, and an
//!   upgrade needs the budget to clear the bigger subnet's latency by the margin.
//! - `select_battery(level, charging)`: the level (percent) is first filtered by a dead band
//!   (a change smaller than `level_hysteresis` points is ignored, unless the charging flag
//!   changed or the level reaches 0 or 100), then mapped to a budget by the policy, then
//!   selected as above.

use crate::Error;

/// A monotonic clock in microseconds, supplied by the caller (a timer peripheral on a
/// microcontroller, `clock_gettime` on a phone). Any `FnMut() -> u64` is a clock.
pub trait Clock {
    fn now_us(&mut self) -> u64;
}

impl<F: FnMut() -> u64> Clock for F {
    fn now_us(&mut self) -> u64 {
        self()
    }
}

/// Maps a battery level to a latency budget:
///
/// - charging (and `charging_full`), or level at or above `high_level`: `full_budget_us`;
/// - level at or below `low_level`: `min_budget_us`;
/// - in between: linear from `min_budget_us` at `low_level` to `full_budget_us` at
///   `high_level`.
///
/// A budget of 0 means "derive it from the expected latencies": `full_budget_us = 0` is the
/// slowest eligible subnet's latency plus the session's upgrade margin (so a full battery
/// runs the most accurate subnet, also after a drain) and `min_budget_us = 0` the fastest
/// one's (so an empty battery runs the cheapest).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatteryPolicy {
    /// Level (percent) from which the full budget applies. Default 80.
    pub high_level: u8,
    /// Level (percent) at or below which the minimum budget applies. Default 20.
    pub low_level: u8,
    /// Budget at a full battery, microseconds; 0: the slowest eligible subnet's latency
    /// plus the upgrade margin.
    pub full_budget_us: u32,
    /// Budget at a low battery, microseconds; 0: the fastest eligible subnet's latency.
    pub min_budget_us: u32,
    /// Level changes smaller than this (percentage points) are ignored. Default 3.
    pub level_hysteresis: u8,
    /// Whether charging means the full budget whatever the level. Default true.
    pub charging_full: bool,
}

impl Default for BatteryPolicy {
    fn default() -> Self {
        BatteryPolicy {
            high_level: 80,
            low_level: 20,
            full_budget_us: 0,
            min_budget_us: 0,
            level_hysteresis: 3,
            charging_full: true,
        }
    }
}

impl BatteryPolicy {
    /// Checks the policy: `low_level < high_level <= 100`, `level_hysteresis <= 50`, and
    /// `min_budget_us <= full_budget_us` when both are given.
    pub fn validate(&self) -> Result<(), Error> {
        if self.low_level >= self.high_level || self.high_level > 100 {
            return Err(Error::BadPolicy(
                "low_level must be below high_level, and high_level at most 100",
            ));
        }
        if self.level_hysteresis > 50 {
            return Err(Error::BadPolicy("level_hysteresis must be at most 50"));
        }
        if self.full_budget_us != 0
            && self.min_budget_us != 0
            && self.min_budget_us > self.full_budget_us
        {
            return Err(Error::BadPolicy(
                "min_budget_us must not exceed full_budget_us",
            ));
        }
        Ok(())
    }

    /// The budget for an (already filtered) level, given the fastest eligible expected
    /// latency and the slowest one plus the upgrade margin (used where a budget is 0).
    pub fn budget_us(&self, level: u8, charging: bool, fastest_us: u32, slowest_us: u32) -> u32 {
        let full = if self.full_budget_us == 0 {
            slowest_us
        } else {
            self.full_budget_us
        };
        let min = if self.min_budget_us == 0 {
            fastest_us
        } else {
            self.min_budget_us
        }
        .min(full);
        let level = level.min(100);
        if (charging && self.charging_full) || level >= self.high_level {
            full
        } else if level <= self.low_level {
            min
        } else {
            let span = (self.high_level - self.low_level) as u64;
            let above = (level - self.low_level) as u64;
            min + ((full - min) as u64 * above / span) as u32
        }
    }
}

/// The subnet a budget selection made active, and why.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Selection {
    /// Table position of the active subnet, if it is a stored one (budget selections
    /// always choose stored subnets).
    pub index: Option<usize>,
    /// Its id, if it is a stored one.
    pub id: Option<u32>,
    /// Stored (held-out) accuracy, fraction; NaN if unknown.
    pub accuracy: f32,
    pub macs: u64,
    pub params: u64,
    pub arena_bytes: u32,
    /// Expected latency of one run (calibrated if the session has a latency table); 0 if
    /// unknown.
    pub latency_us: u32,
    /// The latency budget the selection used (for battery selection, the mapped budget);
    /// 0 for selections by id, index or config.
    pub budget_us: u32,
    /// Whether the subnet's expected latency fits the budget. False only when no eligible
    /// subnet fits; the fastest one is then active. True for selections without a budget.
    pub fits: bool,
    /// Whether the selection changed the active subnet.
    pub changed: bool,
}

/// Budget state a session keeps between selections.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BudgetState {
    pub policy: BatteryPolicy,
    pub upgrade_margin_pct: u8,
    /// Filtered battery level and charging flag of the last battery selection.
    pub level: Option<(u8, bool)>,
}

impl Default for BudgetState {
    fn default() -> Self {
        BudgetState {
            policy: BatteryPolicy::default(),
            upgrade_margin_pct: 10,
            level: None,
        }
    }
}

impl BudgetState {
    /// Applies the dead band to a new level; returns the level to use.
    pub fn filter_level(&mut self, level: u8, charging: bool) -> u8 {
        let level = level.min(100);
        let keep = match self.level {
            Some((prev, was_charging)) => {
                was_charging == charging
                    && level != 0
                    && level != 100
                    && prev.abs_diff(level) < self.policy.level_hysteresis
            }
            None => false,
        };
        if keep {
            self.level.map_or(level, |(p, _)| p)
        } else {
            self.level = Some((level, charging));
            level
        }
    }
}

/// One candidate for selection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Candidate {
    pub index: usize,
    pub accuracy: f32,
    pub latency_us: u32,
}

/// Whether `a` ranks above `b` (see the module docs).
pub(crate) fn better(a: &Candidate, b: &Candidate) -> bool {
    let acc = |c: &Candidate| {
        if c.accuracy.is_nan() {
            f32::NEG_INFINITY
        } else {
            c.accuracy
        }
    };
    let (x, y) = (acc(a), acc(b));
    if x != y {
        return x > y;
    }
    if a.latency_us != b.latency_us {
        return a.latency_us < b.latency_us;
    }
    a.index < b.index
}

/// Chooses among candidates (see the module docs). `current` is the active candidate, if it
/// is eligible. Returns the chosen candidate and whether it fits `budget_us`; `None` if
/// there are no candidates.
pub(crate) fn choose(
    candidates: impl Iterator<Item = Candidate> + Clone,
    current: Option<Candidate>,
    budget_us: u32,
    upgrade_margin_pct: u8,
) -> Option<(Candidate, bool)> {
    let best_under = |limit: u64| {
        candidates
            .clone()
            .filter(|c| c.latency_us as u64 <= limit)
            .fold(None, |best: Option<Candidate>, c| match best {
                Some(b) if !better(&c, &b) => Some(b),
                _ => Some(c),
            })
    };
    let Some(target) = best_under(budget_us as u64) else {
        let fastest = candidates
            .clone()
            .fold(None, |f: Option<Candidate>, c| match f {
                Some(f)
                    if f.latency_us < c.latency_us
                        || (f.latency_us == c.latency_us && !better(&c, &f)) =>
                {
                    Some(f)
                }
                _ => Some(c),
            })?;
        return Some((fastest, false));
    };
    match current {
        Some(cur) if cur.latency_us <= budget_us => {
            let limit = budget_us as u64 * 100 / (100 + upgrade_margin_pct as u64);
            match best_under(limit) {
                Some(up) if better(&up, &cur) => Some((up, true)),
                _ => Some((cur, true)),
            }
        }
        _ => Some((target, true)),
    }
}
