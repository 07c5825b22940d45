//! `sn_session_*`: a session lives at the start of the one arena the caller gives it and
//! runs one subnet at a time; selection by index, id, config, latency budget or battery
//! level; running; on-device calibration of expected latencies with a caller clock. A
//! session belongs to one thread at a time.
//!
//! Arena layout (each part 64-byte aligned): the session object
//! (`SN_SESSION_OBJECT_BYTES`), the latency table (one `uint32_t` per stored subnet), a
//! logits scratch (one `float` per class, for calibration), then the activations.

use core::ffi::{c_char, c_void};
use core::fmt::Write;

use supernet_runtime::{BatteryPolicy, Clock, Error, Model, Selection, Session};

use crate::model::{SN_STORAGE_ALIGN, SnModel, parse_config};
use crate::status::{Failure, SnStatus};
use crate::text::BufWriter;
use crate::{Out, ptr_ok, slice_in, slice_out};

/// Bytes at the start of a session arena that hold the session object.
pub const SN_SESSION_OBJECT_BYTES: usize = 1024;

const _: () = assert!(core::mem::size_of::<SnSession>() <= SN_SESSION_OBJECT_BYTES);
const _: () = assert!(core::mem::align_of::<SnSession>() <= SN_STORAGE_ALIGN);
const _: () = assert!(SN_SESSION_OBJECT_BYTES % 64 == 0);

const SESSION_TAG: usize = 0x5e55_1011_u32 as usize;

fn align64(n: usize) -> usize {
    n.div_ceil(64) * 64
}

/// Bytes before the activations: session object, latency table, logits scratch.
fn overhead(model: &Model<'_>) -> usize {
    SN_SESSION_OBJECT_BYTES + align64(4 * model.subnet_count()) + align64(4 * model.classes())
}

/// Session arena bytes for a subnet whose activations need `activation_bytes`.
pub(crate) fn arena_bytes_for(model: &Model<'_>, activation_bytes: usize) -> usize {
    overhead(model) + activation_bytes
}

/// A session (opaque). Lives at the start of the caller's arena.
pub struct SnSession {
    /// `SESSION_TAG ^ address`: tells an open session from other memory, and from a copy.
    tag: usize,
    session: Session<'static, 'static>,
    /// One expected latency per stored subnet, in the arena.
    table: *mut u32,
    /// Logits scratch, `classes` floats, in the arena.
    logits: *mut f32,
    /// The most recent failure of a call on this session.
    last_error: Option<Failure>,
}

/// The subnet a session runs, as every selection call reports it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SnSelection {
    /// Table position of the active subnet; -1 if it is not a stored one (a config that no
    /// stored subnet has).
    pub index: i32,
    /// Its id; 0 if `index` is -1.
    pub id: u32,
    /// Stored held-out accuracy (fraction); NaN if unknown or not stored.
    pub accuracy: f32,
    pub macs: u64,
    pub params: u64,
    /// Activation bytes it needs in the arena.
    pub arena_bytes: u32,
    /// Expected latency of one run in microseconds (calibrated if the session has been
    /// calibrated, else the artifact's); 0 if unknown.
    pub latency_us: u32,
    /// The latency budget used (for battery selection, the budget the level mapped to);
    /// 0 for selections by index, id or config.
    pub budget_us: u32,
    /// 1 if the expected latency fits the budget (always 1 without a budget); 0 only with
    /// `SN_OVER_BUDGET`.
    pub fits: u8,
    /// 1 if the call changed the active subnet.
    pub changed: u8,
}

impl SnSelection {
    fn from(s: &Selection) -> SnSelection {
        SnSelection {
            index: s.index.map_or(-1, |i| i as i32),
            id: s.id.unwrap_or(0),
            accuracy: s.accuracy,
            macs: s.macs,
            params: s.params,
            arena_bytes: s.arena_bytes,
            latency_us: s.latency_us,
            budget_us: s.budget_us,
            fits: s.fits as u8,
            changed: s.changed as u8,
        }
    }
}

/// How `sn_session_select_battery` maps a battery level to a latency budget:
///
/// - charging (with `charging_full` non-zero), or level >= `high_level`: `full_budget_us`;
/// - level <= `low_level`: `min_budget_us`;
/// - in between: linear between the two.
///
/// A budget of 0 is derived from the expected latencies: `full_budget_us = 0` lets the
/// most accurate subnet run (the slowest latency plus the upgrade margin), `min_budget_us
/// = 0` the fastest one. Level changes smaller than `level_hysteresis` points are ignored
/// (unless charging changes or the level reaches 0 or 100). Default: 80, 20, 3, 1, 0, 0.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnBatteryPolicy {
    pub high_level: u8,
    pub low_level: u8,
    pub level_hysteresis: u8,
    /// Non-zero: charging means the full budget whatever the level.
    pub charging_full: u8,
    pub full_budget_us: u32,
    pub min_budget_us: u32,
}

impl SnBatteryPolicy {
    fn from(p: &BatteryPolicy) -> SnBatteryPolicy {
        SnBatteryPolicy {
            high_level: p.high_level,
            low_level: p.low_level,
            level_hysteresis: p.level_hysteresis,
            charging_full: p.charging_full as u8,
            full_budget_us: p.full_budget_us,
            min_budget_us: p.min_budget_us,
        }
    }

    fn to_policy(self) -> BatteryPolicy {
        BatteryPolicy {
            high_level: self.high_level,
            low_level: self.low_level,
            full_budget_us: self.full_budget_us,
            min_budget_us: self.min_budget_us,
            level_hysteresis: self.level_hysteresis,
            charging_full: self.charging_full != 0,
        }
    }
}

/// A monotonic clock in microseconds: `user` is passed back unchanged.
pub type SnClockFn = Option<unsafe extern "C" fn(user: *mut c_void) -> u64>;

struct CClock {
    f: unsafe extern "C" fn(*mut c_void) -> u64,
    user: *mut c_void,
}

impl Clock for CClock {
    fn now_us(&mut self) -> u64 {
        // SAFETY: the caller gave a valid function and its argument.
        unsafe { (self.f)(self.user) }
    }
}

impl SnSession {
    fn tag_for(p: *const SnSession) -> usize {
        SESSION_TAG ^ (p as usize)
    }

    /// # Safety
    /// `p` must be NULL or point to readable memory of `SN_SESSION_OBJECT_BYTES`.
    unsafe fn from_handle<'a>(p: *const SnSession) -> Result<&'a SnSession, Failure> {
        ptr_ok(p)?;
        // SAFETY: non-null, aligned, readable by contract; the tag is a plain integer.
        let tag = unsafe { core::ptr::addr_of!((*p).tag).read() };
        if tag != SnSession::tag_for(p) {
            return Err(Failure::BadHandle);
        }
        // SAFETY: the tag says `sn_session_open` initialised this object here.
        Ok(unsafe { &*p })
    }

    /// # Safety
    /// As [`SnSession::from_handle`], and no other reference to the session is live.
    unsafe fn from_handle_mut<'a>(p: *mut SnSession) -> Result<&'a mut SnSession, Failure> {
        // SAFETY: as above.
        unsafe { SnSession::from_handle(p)? };
        // SAFETY: checked above; exclusivity is the caller's contract (one thread).
        Ok(unsafe { &mut *p })
    }

    fn classes(&self) -> usize {
        self.session.model().classes()
    }

    fn subnets(&self) -> usize {
        self.session.model().subnet_count()
    }

    /// Checks a caller's latency table (NULL only if there are no stored subnets; one
    /// entry per stored subnet) and returns its length.
    fn latency_table_len(&self, is_null: bool, len: usize) -> Result<usize, Failure> {
        let n = self.subnets();
        if is_null && n > 0 {
            return Err(Failure::NullPointer);
        }
        if len != n {
            return Err(Failure::Runtime(Error::LatencyTableLength {
                expected: n,
                found: len,
            }));
        }
        Ok(n)
    }
}

/// Runs `f` on a checked session; a failure is remembered for `sn_session_get_last_error`.
///
/// # Safety
/// Session handle contract.
unsafe fn with_session(
    p: *mut SnSession,
    f: impl FnOnce(&mut SnSession) -> Result<SnStatus, Failure>,
) -> SnStatus {
    // SAFETY: caller's contract.
    let s = match unsafe { SnSession::from_handle_mut(p) } {
        Ok(s) => s,
        Err(e) => return e.status(),
    };
    match f(s) {
        Ok(status) => {
            s.last_error = None;
            status
        }
        Err(e) => {
            s.last_error = Some(e);
            e.status()
        }
    }
}

/// Opens a session of `model` in `arena` and writes its handle (which points into the
/// arena) to `*out_session`. The largest subnet that fits the arena is active: with
/// `sn_model_get_info`'s `session_arena_bytes` every subnet fits; a smaller arena (at least a
/// subnet's `session_arena_bytes`) runs the subnets that fit.
///
/// - `arena`: `arena_len` bytes, aligned to `SN_STORAGE_ALIGN`, owned by the caller, used
///   only by this session until the caller reuses it (no close call is needed; nothing is
///   allocated). It must stay valid, and must not be moved, while the session is used.
/// - `model` must outlive the session. Several sessions may share one model.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sn_session_open(
    model: *const SnModel,
    arena: *mut c_void,
    arena_len: usize,
    out_session: *mut *mut SnSession,
) -> SnStatus {
    crate::status::status_of((|| {
        // SAFETY: handle contract; the model outlives the session (contract).
        let m: &'static SnModel = unsafe { SnModel::from_handle(model)? };
        let out = Out::required(out_session)?;
        let base = arena.cast::<u8>();
        if base.is_null() {
            return Err(Failure::NullPointer);
        }
        if (base as usize) % SN_STORAGE_ALIGN != 0 {
            return Err(Failure::Misaligned);
        }
        // SAFETY: valid for `arena_len` bytes (contract); checks length and wrap-around.
        let bytes: &'static mut [u8] = unsafe { slice_out(base, arena_len)? };
        let model = &m.model;
        let head = overhead(model);
        let smallest = model.arena_bytes(&supernet_format::SubnetConfig::smallest(model.space()));
        if bytes.len() < head + smallest {
            return Err(Failure::Runtime(Error::ArenaTooSmall {
                needed_bytes: head + smallest,
                given_bytes: bytes.len(),
            }));
        }
        let (object, rest) = bytes.split_at_mut(SN_SESSION_OBJECT_BYTES);
        let (table, rest) = rest.split_at_mut(align64(4 * model.subnet_count()));
        let (logits, act) = rest.split_at_mut(align64(4 * model.classes()));
        // The parts start at multiples of 64 from a 16-aligned base: aligned for u32/f32.
        let table = table.as_mut_ptr().cast::<u32>();
        let logits = logits.as_mut_ptr().cast::<f32>();
        let act_len = act.len() / 4;
        // SAFETY: `act` is 4-aligned, `act_len * 4` bytes of it are ours; any bit pattern is
        // a valid f32.
        let act: &'static mut [f32] =
            unsafe { core::slice::from_raw_parts_mut(act.as_mut_ptr().cast::<f32>(), act_len) };
        let session = Session::new(model, act).map_err(|e| match e {
            Error::ArenaTooSmall { needed_bytes, .. } => Error::ArenaTooSmall {
                needed_bytes: needed_bytes + head,
                given_bytes: arena_len,
            },
            e => e,
        })?;
        let obj = object.as_mut_ptr().cast::<SnSession>();
        // SAFETY: `obj` is SN_STORAGE_ALIGN-aligned and SN_SESSION_OBJECT_BYTES long.
        unsafe {
            obj.write(SnSession {
                tag: SnSession::tag_for(obj),
                session,
                table,
                logits,
                last_error: None,
            });
            out.write(obj);
        }
        Ok(())
    })())
}

/// Runs a selection and reports it: `changed` from the state before.
fn report(
    s: &mut SnSession,
    out: Option<Out<SnSelection>>,
    select: impl FnOnce(&mut Session<'static, 'static>) -> Result<Option<Selection>, Error>,
) -> Result<SnStatus, Failure> {
    let before = (s.session.active().index, s.session.active().config);
    let sel = match select(&mut s.session)? {
        Some(sel) => sel,
        None => {
            let mut sel = s.session.selection();
            sel.changed = (s.session.active().index, s.session.active().config) != before;
            sel
        }
    };
    if let Some(o) = out {
        // SAFETY: out-pointer contract.
        unsafe { o.write(SnSelection::from(&sel)) };
    }
    Ok(if sel.fits {
        SnStatus::SnOk
    } else {
        SnStatus::SnOverBudget
    })
}

/// Writes the active subnet to `*out`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sn_session_get_active(
    session: *const SnSession,
    out: *mut SnSelection,
) -> SnStatus {
    crate::status::status_of((|| {
        // SAFETY: handle contract.
        let s = unsafe { SnSession::from_handle(session)? };
        let out = Out::required(out)?;
        // SAFETY: out-pointer contract.
        unsafe { out.write(SnSelection::from(&s.session.selection())) };
        Ok(())
    })())
}

/// Activates stored subnet `index` (table position) with its own recalibrated BN. `out`
/// (may be NULL) receives the selection.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sn_session_select_index(
    session: *mut SnSession,
    index: usize,
    out: *mut SnSelection,
) -> SnStatus {
    let call = |s: &mut SnSession| {
        let out = Out::optional(out)?;
        report(s, out, |se| se.select_index(index).map(|()| None))
    };
    // SAFETY: handle contract.
    unsafe { with_session(session, call) }
}

/// Activates the stored subnet with this `id`. `out` (may be NULL) receives the selection.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sn_session_select_id(
    session: *mut SnSession,
    id: u32,
    out: *mut SnSelection,
) -> SnStatus {
    let call = |s: &mut SnSession| {
        let out = Out::optional(out)?;
        report(s, out, |se| se.select_subnet(id).map(|()| None))
    };
    // SAFETY: handle contract.
    unsafe { with_session(session, call) }
}

/// Activates any subnet of the space, given as config text (`config_len` bytes, no NUL
/// needed) in the original Once-for-All form `{"ks": [...], "e": [...], "d": [...]}`
/// (Python's repr and an `r` key equal to the resolution are accepted). A config that a
/// stored subnet has uses that subnet's own BN; others the supernet's BN. An invalid
/// config gives `SN_ERR_CONFIG` and `sn_session_get_last_error` names the field.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sn_session_select_config(
    session: *mut SnSession,
    config: *const c_char,
    config_len: usize,
    out: *mut SnSelection,
) -> SnStatus {
    let call = |s: &mut SnSession| {
        let out = Out::optional(out)?;
        // SAFETY: text contract.
        let config = unsafe { parse_config(s.session.model(), config, config_len)? };
        report(s, out, |se| se.select_config(&config).map(|()| None))
    };
    // SAFETY: handle contract.
    unsafe { with_session(session, call) }
}

/// Activates the most accurate stored subnet whose expected latency fits `budget_us`,
/// with hysteresis: the active subnet is kept while it fits, unless a better one fits the
/// budget with the upgrade margin to spare (default 10 %). If none fits, the fastest one
/// is activated and the status is `SN_OVER_BUDGET`. `out` (may be NULL) receives the
/// selection.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sn_session_select_latency(
    session: *mut SnSession,
    budget_us: u32,
    out: *mut SnSelection,
) -> SnStatus {
    let call = |s: &mut SnSession| {
        let out = Out::optional(out)?;
        report(s, out, |se| se.select_latency(budget_us).map(Some))
    };
    // SAFETY: handle contract.
    unsafe { with_session(session, call) }
}

/// Maps a battery level (percent, 0 to 100; larger values count as 100) and a charging
/// flag (non-zero: charging) to a latency budget through the session's battery policy,
/// then selects as `sn_session_select_latency` does.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sn_session_select_battery(
    session: *mut SnSession,
    level_percent: u32,
    charging: i32,
    out: *mut SnSelection,
) -> SnStatus {
    let call = |s: &mut SnSession| {
        let out = Out::optional(out)?;
        let level = level_percent.min(100) as u8;
        report(s, out, |se| {
            se.select_battery(level, charging != 0).map(Some)
        })
    };
    // SAFETY: handle contract.
    unsafe { with_session(session, call) }
}

/// Runs the active subnet on one input (`input_len` = `input_len` of `sn_model_get_info`
/// floats, CHW, preprocessed) and writes `classes` logits to `logits` (`logits_len` >=
/// `classes`); `out_class` (may be NULL) receives the index of the largest logit. Both
/// buffers are 4-byte aligned and must not overlap the session's arena.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sn_session_run(
    session: *mut SnSession,
    input: *const f32,
    input_len: usize,
    logits: *mut f32,
    logits_len: usize,
    out_class: *mut usize,
) -> SnStatus {
    let call = |s: &mut SnSession| {
        let out_class = Out::optional(out_class)?;
        if input.is_null() || logits.is_null() {
            return Err(Failure::NullPointer);
        }
        // SAFETY: buffer contracts.
        let (input, logits) =
            unsafe { (slice_in(input, input_len)?, slice_out(logits, logits_len)?) };
        s.session.run(input, logits)?;
        if let Some(o) = out_class {
            let n = s.classes();
            let class = supernet_runtime::argmax(&logits[..n]).unwrap_or(0);
            // SAFETY: out-pointer contract.
            unsafe { o.write(class) };
        }
        Ok(SnStatus::SnOk)
    };
    // SAFETY: handle contract.
    unsafe { with_session(session, call) }
}

/// Times every stored subnet that fits the arena on `input` with `clock` (a warm-up run of
/// every subnet, then per subnet the median of `runs` runs, `runs` clamped to 1..15) and uses the result as the
/// session's expected latencies from now on; subnets that do not fit the arena get 0
/// (never selected by budget). The active subnet is kept. `sn_session_get_latencies` reads
/// the table (e.g. to store it and restore it with `sn_session_set_latencies` at the next
/// start). `clock` returns microseconds from any fixed origin; `clock_user` is passed to
/// it. On failure the session goes back to the artifact's latencies.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sn_session_calibrate(
    session: *mut SnSession,
    clock: SnClockFn,
    clock_user: *mut c_void,
    input: *const f32,
    input_len: usize,
    runs: u32,
) -> SnStatus {
    let call = |s: &mut SnSession| {
        let f = clock.ok_or(Failure::NullPointer)?;
        if input.is_null() {
            return Err(Failure::NullPointer);
        }
        // SAFETY: buffer contract.
        let input = unsafe { slice_in(input, input_len)? };
        let mut clock = CClock {
            f,
            user: clock_user,
        };
        let (n, classes) = (s.subnets(), s.classes());
        s.session.clear_latencies();
        // SAFETY: the table and the logits scratch are ours, in the arena, disjoint
        // from the activations; the session no longer borrows the table.
        let (table, logits) = unsafe {
            (
                core::slice::from_raw_parts_mut(s.table, n),
                core::slice::from_raw_parts_mut(s.logits, classes),
            )
        };
        s.session
            .calibrate(&mut clock, input, logits, runs, table)?;
        // SAFETY: as above; from now on the table is only read.
        let table: &'static [u32] = unsafe { core::slice::from_raw_parts(s.table, n) };
        s.session.set_latencies(table)?;
        Ok(SnStatus::SnOk)
    };
    // SAFETY: handle contract.
    unsafe { with_session(session, call) }
}

/// Writes the session's expected latency of every stored subnet (calibrated, set, or the
/// artifact's; 0 = unknown) to `out` (`out_len` = `subnet_count` entries, 4-byte aligned).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sn_session_get_latencies(
    session: *const SnSession,
    out: *mut u32,
    out_len: usize,
) -> SnStatus {
    crate::status::status_of((|| {
        // SAFETY: handle contract.
        let s = unsafe { SnSession::from_handle(session)? };
        let n = s.latency_table_len(out.is_null(), out_len)?;
        // SAFETY: buffer contract.
        let out = unsafe { slice_out(out, n)? };
        for (i, o) in out.iter_mut().enumerate() {
            *o = s.session.expected_latency_us(i);
        }
        Ok(())
    })())
}

/// Replaces the session's expected latencies by `table` (`table_len` = `subnet_count`
/// entries, microseconds, 0 = unknown), copied into the session, e.g. a calibration saved
/// at an earlier start.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sn_session_set_latencies(
    session: *mut SnSession,
    table: *const u32,
    table_len: usize,
) -> SnStatus {
    let call = |s: &mut SnSession| {
        let n = s.latency_table_len(table.is_null(), table_len)?;
        // SAFETY: buffer contract.
        let given = unsafe { slice_in(table, n)? };
        s.session.clear_latencies();
        // SAFETY: the session's own table; not borrowed by the session any more. The
        // caller's table must not overlap the arena (contract).
        let own = unsafe { core::slice::from_raw_parts_mut(s.table, n) };
        own.copy_from_slice(given);
        // SAFETY: as above; from now on the table is only read.
        let own: &'static [u32] = unsafe { core::slice::from_raw_parts(s.table, n) };
        s.session.set_latencies(own)?;
        Ok(SnStatus::SnOk)
    };
    // SAFETY: handle contract.
    unsafe { with_session(session, call) }
}

/// Goes back to the artifact's expected latencies.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sn_session_clear_latencies(session: *mut SnSession) -> SnStatus {
    let call = |s: &mut SnSession| {
        s.session.clear_latencies();
        Ok(SnStatus::SnOk)
    };
    // SAFETY: handle contract.
    unsafe { with_session(session, call) }
}

/// Writes the session's battery policy to `*out`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sn_session_get_battery_policy(
    session: *const SnSession,
    out: *mut SnBatteryPolicy,
) -> SnStatus {
    crate::status::status_of((|| {
        // SAFETY: handle contract.
        let s = unsafe { SnSession::from_handle(session)? };
        let out = Out::required(out)?;
        // SAFETY: out-pointer contract.
        unsafe { out.write(SnBatteryPolicy::from(&s.session.battery_policy())) };
        Ok(())
    })())
}

/// Replaces the battery policy (checked: `low_level < high_level <= 100`,
/// `level_hysteresis <= 50`, `min_budget_us <= full_budget_us` when both are non-zero;
/// else `SN_ERR_BAD_POLICY`), and forgets the filtered battery level.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sn_session_set_battery_policy(
    session: *mut SnSession,
    policy: *const SnBatteryPolicy,
) -> SnStatus {
    let call = |s: &mut SnSession| {
        ptr_ok(policy)?;
        // SAFETY: non-null, aligned, readable (contract); all fields are integers.
        let p = unsafe { policy.read() };
        s.session.set_battery_policy(p.to_policy())?;
        Ok(SnStatus::SnOk)
    };
    // SAFETY: handle contract.
    unsafe { with_session(session, call) }
}

/// Sets the upgrade margin of latency selection in percent (0 to 100; default 10).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sn_session_set_upgrade_margin(
    session: *mut SnSession,
    percent: u32,
) -> SnStatus {
    let call = |s: &mut SnSession| {
        let p = u8::try_from(percent)
            .map_err(|_| Error::BadPolicy("upgrade margin must be at most 100 percent"))?;
        s.session.set_upgrade_margin(p)?;
        Ok(SnStatus::SnOk)
    };
    // SAFETY: handle contract.
    unsafe { with_session(session, call) }
}

/// Writes a NUL-terminated description of the most recent failed call on this session
/// (e.g. `config field "e"[19] = 5 is not a choice of the space`), or `"no error"` if the
/// most recent call succeeded, to `buf` (`buf_len` > 0 bytes), cut to fit.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sn_session_get_last_error(
    session: *const SnSession,
    buf: *mut c_char,
    buf_len: usize,
) -> SnStatus {
    crate::status::status_of((|| {
        // SAFETY: handle contract.
        let s = unsafe { SnSession::from_handle(session)? };
        if buf.is_null() {
            return Err(Failure::NullPointer);
        }
        if buf_len == 0 {
            return Err(Failure::BufferTooSmall {
                what: "message buffer (bytes)",
                needed: 1,
                given: 0,
            });
        }
        // SAFETY: buffer contract.
        let buf = unsafe { slice_out(buf.cast::<u8>(), buf_len)? };
        let mut w = BufWriter::new(buf);
        let _ = match &s.last_error {
            None => w.write_str("no error"),
            Some(f) => write!(w, "{f}"),
        };
        w.finish();
        Ok(())
    })())
}
