//! The exported functions driven from Rust: the status mapping, agreement with the Rust
//! runtime, misuse, and a mutation fuzz of loading and running through the C API. (The C
//! programs in examples/c exercise the same functions from C, under valgrind.)

use core::ffi::c_char;
use std::ffi::CStr;
use std::vec;
use std::vec::Vec;

use proptest::prelude::*;
use supernet_format::arch::{bn_set_len, default_bn_len, tensors};
use supernet_format::artifact::checksum;
use supernet_format::writer::{ArtifactWriter, SubnetEntry};
use supernet_format::{
    ConfigError, FormatError, HDR_CHECKSUM, HDR_SECTION_COUNT, HDR_SECTION_TABLE, Prep,
    SECTION_ENTRY_LEN, SubnetConfig,
};
use supernet_runtime::{Error, Model, Session};
use supernet_testkit::{space, values};

use crate::model::*;
use crate::session::*;
use crate::status::{ALL, Failure, SnStatus, runtime_status, sn_status_message};

/// Three stored subnets (ids 7, 8, 9) with latencies 100, 200, 300 us.
fn artifact() -> Vec<u8> {
    let sp = space();
    let mut mid = SubnetConfig::largest(&sp);
    mid.d_mut().fill(3);
    let subnets = [SubnetConfig::smallest(&sp), mid, SubnetConfig::largest(&sp)]
        .into_iter()
        .enumerate()
        .map(|(i, config)| SubnetEntry {
            id: 7 + i as u32,
            name: std::format!("s{i}"),
            accuracy: 0.6 + 0.1 * i as f32,
            arena_bytes: 0,
            latency_us: 100 * (i as u32 + 1),
            config,
            bn: values(50 + i as u64, bn_set_len(&sp, &config))
                .iter()
                .map(|v| v + 1.0)
                .collect(),
        })
        .collect();
    ArtifactWriter {
        space: sp,
        prep: Prep::new(1.0 / 255.0, &[0.5], &[0.25]).unwrap(),
        tensors: tensors(&sp)
            .enumerate()
            .map(|(i, t)| values(i as u64, t.len()))
            .collect(),
        default_bn: values(3, default_bn_len(&sp))
            .iter()
            .map(|v| v + 1.0)
            .collect(),
        subnets,
        meta: None,
    }
    .to_bytes()
    .unwrap()
}

/// 16-byte aligned memory of exactly `len` bytes at its start.
struct Mem(Vec<u128>, usize);

impl Mem {
    fn new(len: usize) -> Mem {
        Mem(vec![0u128; len.div_ceil(16).max(1)], len)
    }
    fn from(bytes: &[u8]) -> Mem {
        let mut m = Mem::new(bytes.len());
        m.bytes_mut().copy_from_slice(bytes);
        m
    }
    fn ptr(&mut self) -> *mut u8 {
        self.0.as_mut_ptr().cast()
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        let n = self.1;
        // SAFETY: the vector holds at least `n` bytes.
        unsafe { core::slice::from_raw_parts_mut(self.ptr(), n) }
    }
}

fn load(bytes: &mut Mem, storage: &mut Mem) -> Result<*mut SnModel, SnStatus> {
    let mut m = core::ptr::null_mut();
    let st = unsafe {
        sn_model_load(
            storage.ptr().cast(),
            SN_MODEL_STORAGE_BYTES,
            bytes.ptr(),
            bytes.1,
            &mut m,
        )
    };
    if st == SnStatus::SnOk { Ok(m) } else { Err(st) }
}

fn info(m: *const SnModel) -> SnModelInfo {
    let mut i = core::mem::MaybeUninit::uninit();
    assert_eq!(
        unsafe { sn_model_get_info(m, i.as_mut_ptr()) },
        SnStatus::SnOk
    );
    unsafe { i.assume_init() }
}

fn open(m: *const SnModel, arena: &mut Mem) -> Result<*mut SnSession, SnStatus> {
    let mut s = core::ptr::null_mut();
    let st = unsafe { sn_session_open(m, arena.ptr().cast(), arena.1, &mut s) };
    if st == SnStatus::SnOk { Ok(s) } else { Err(st) }
}

fn last_error(s: *const SnSession) -> std::string::String {
    let mut buf = [0 as c_char; 256];
    assert_eq!(
        unsafe { sn_session_get_last_error(s, buf.as_mut_ptr(), buf.len()) },
        SnStatus::SnOk
    );
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_str()
        .unwrap()
        .into()
}

#[test]
fn status_codes_are_distinct_ordered_and_described() {
    for w in ALL.windows(2) {
        assert!((w[0] as i32) < (w[1] as i32), "{w:?}");
    }
    for s in ALL {
        let m = unsafe { CStr::from_ptr(sn_status_message(s as i32)) };
        assert!(!m.to_bytes().is_empty());
        assert_eq!(
            m.to_bytes().len() + 1,
            s.message().len(),
            "one NUL, at the end"
        );
    }
    for bad in [-1, 7, 29, 39, i32::MAX, i32::MIN] {
        let m = unsafe { CStr::from_ptr(sn_status_message(bad)) };
        assert_eq!(m.to_str().unwrap(), "unknown status code");
    }
    // every runtime error variant has a code of its own
    let errors = [
        Error::Format(FormatError::TooShort { len: 0 }),
        Error::Format(FormatError::BadMagic),
        Error::Format(FormatError::UnsupportedVersion { major: 2, minor: 0 }),
        Error::Format(FormatError::SizeMismatch {
            header: 0,
            actual: 1,
        }),
        Error::Format(FormatError::BadHeader("x")),
        Error::Format(FormatError::Checksum {
            stored: 0,
            computed: 1,
        }),
        Error::Format(FormatError::Misaligned),
        Error::Format(FormatError::Section {
            tag: *b"SPAC",
            problem: supernet_format::SectionProblem::Missing,
        }),
        Error::Format(FormatError::Space(supernet_format::SpaceError::Reserved)),
        Error::Format(FormatError::Tensor {
            index: 0,
            problem: supernet_format::TensorProblem::NotFinite,
        }),
        Error::Format(FormatError::Subnet {
            index: 0,
            problem: supernet_format::SubnetProblem::Name,
        }),
        Error::Config(ConfigError::Missing(supernet_format::Field::D)),
        Error::UnknownSubnet { id: 0 },
        Error::ArenaTooSmall {
            needed_bytes: 1,
            given_bytes: 0,
        },
        Error::InputLength {
            expected: 1,
            found: 0,
        },
        Error::OutputLength {
            expected: 1,
            found: 0,
        },
        Error::NoLatencies,
        Error::LatencyTableLength {
            expected: 1,
            found: 0,
        },
        Error::BadPolicy("x"),
        Error::Internal,
    ];
    let mut codes: Vec<i32> = errors.iter().map(|e| runtime_status(e) as i32).collect();
    codes.extend(
        [
            Failure::NullPointer,
            Failure::Misaligned,
            Failure::BufferTooSmall {
                what: "x",
                needed: 1,
                given: 0,
            },
            Failure::BadHandle,
            Failure::BadArgument("x"),
        ]
        .iter()
        .map(|f| f.status() as i32),
    );
    let mut sorted = codes.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), codes.len(), "codes are 1:1");
    assert_eq!(
        sorted.len() + 2,
        ALL.len(),
        "all codes but OK and OVER_BUDGET are errors"
    );
}

#[test]
fn the_c_api_computes_what_the_runtime_computes() {
    let raw = artifact();
    let mut bytes = Mem::from(&raw);
    let mut storage = Mem::new(SN_MODEL_STORAGE_BYTES);
    let m = load(&mut bytes, &mut storage).unwrap();
    let inf = info(m);
    assert_eq!((inf.subnet_count, inf.classes, inf.input_len), (3, 4, 256));
    assert_eq!((inf.format_version_major, inf.format_version_minor), (1, 1));
    let mut arena = Mem::new(inf.session_arena_bytes);
    let s = open(m, &mut arena).unwrap();

    let model = Model::from_bytes(&raw).unwrap();
    let mut rust_arena = vec![0f32; model.max_arena_len()];
    let mut rs = Session::new(&model, &mut rust_arena).unwrap();
    let pixels: Vec<u8> = (0..256).map(|i| (i * 7 % 256) as u8).collect();
    let mut input = vec![0f32; 256];
    assert_eq!(
        unsafe { sn_model_preprocess_u8(m, pixels.as_ptr(), 256, input.as_mut_ptr(), 256) },
        SnStatus::SnOk
    );
    assert!((input[1] - ((7.0 / 255.0 - 0.5) / 0.25)).abs() < 1e-6);
    for index in 0..3 {
        let mut sub = core::mem::MaybeUninit::<SnSubnetInfo>::uninit();
        assert_eq!(
            unsafe { sn_model_get_subnet(m, index, sub.as_mut_ptr()) },
            SnStatus::SnOk
        );
        let sub = unsafe { sub.assume_init() };
        assert_eq!(sub.id, 7 + index as u32);
        assert_eq!(sub.latency_us, 100 * (index as u32 + 1));
        let name = unsafe { CStr::from_ptr(sub.name.as_ptr()) };
        assert_eq!(name.to_str().unwrap(), std::format!("s{index}"));
        let mut found = 99;
        assert_eq!(
            unsafe { sn_model_find_subnet(m, sub.id, &mut found) },
            SnStatus::SnOk
        );
        assert_eq!(found, index);

        // by id, and by config text: the same subnet, the same logits as the runtime
        let mut sel = core::mem::MaybeUninit::<SnSelection>::uninit();
        assert_eq!(
            unsafe { sn_session_select_id(s, sub.id, sel.as_mut_ptr()) },
            SnStatus::SnOk
        );
        let sel = unsafe { sel.assume_init() };
        assert_eq!((sel.index, sel.id, sel.fits), (index as i32, sub.id, 1));
        assert_eq!(sel.macs, sub.macs);
        let mut logits = [0f32; 4];
        let mut class = 99usize;
        let st =
            unsafe { sn_session_run(s, input.as_ptr(), 256, logits.as_mut_ptr(), 4, &mut class) };
        assert_eq!(st, SnStatus::SnOk);
        rs.select_index(index).unwrap();
        let mut expect = [0f32; 4];
        rs.run(&input, &mut expect).unwrap();
        assert_eq!(logits, expect);
        assert_eq!(Some(class), supernet_runtime::argmax(&expect));

        let mut text = [0 as c_char; SN_CONFIG_TEXT_BYTES];
        let mut len = 0;
        let st = unsafe {
            sn_model_get_subnet_config(m, index, text.as_mut_ptr(), text.len(), &mut len)
        };
        assert_eq!(st, SnStatus::SnOk);
        let st = unsafe { sn_session_select_index(s, (index + 1) % 3, core::ptr::null_mut()) };
        assert_eq!(st, SnStatus::SnOk);
        let mut sel = core::mem::MaybeUninit::<SnSelection>::uninit();
        let st = unsafe { sn_session_select_config(s, text.as_ptr(), len, sel.as_mut_ptr()) };
        assert_eq!(st, SnStatus::SnOk);
        let sel = unsafe { sel.assume_init() };
        assert_eq!((sel.index, sel.changed), (index as i32, 1));
        let mut need = 0;
        let st = unsafe { sn_model_get_config_arena_bytes(m, text.as_ptr(), len, &mut need) };
        assert_eq!(st, SnStatus::SnOk);
        assert_eq!(need, sub.session_arena_bytes);
    }
}

#[test]
fn budgets_select_through_the_c_api() {
    let mut bytes = Mem::from(&artifact());
    let mut storage = Mem::new(SN_MODEL_STORAGE_BYTES);
    let m = load(&mut bytes, &mut storage).unwrap();
    let mut arena = Mem::new(info(m).session_arena_bytes);
    let s = open(m, &mut arena).unwrap();
    let mut sel = core::mem::MaybeUninit::<SnSelection>::uninit();
    let st = unsafe { sn_session_select_latency(s, 250, sel.as_mut_ptr()) };
    assert_eq!(st, SnStatus::SnOk);
    assert_eq!(unsafe { sel.assume_init() }.index, 1);
    let st = unsafe { sn_session_select_latency(s, 50, sel.as_mut_ptr()) };
    assert_eq!(st, SnStatus::SnOverBudget);
    let got = unsafe { sel.assume_init() };
    assert_eq!((got.index, got.fits, got.budget_us), (0, 0, 50));
    let st = unsafe { sn_session_select_battery(s, 100, 0, sel.as_mut_ptr()) };
    assert_eq!(st, SnStatus::SnOk);
    assert_eq!(unsafe { sel.assume_init() }.index, 2);

    // calibration with a fake clock: each run of subnet i takes 1000 * (3 - i) us
    struct Fake {
        now: u64,
        calls: u64,
    }
    unsafe extern "C" fn tick(user: *mut core::ffi::c_void) -> u64 {
        let f = unsafe { &mut *user.cast::<Fake>() };
        f.calls += 1;
        // calls come in (start, end) pairs, 5 runs per subnet
        if f.calls % 2 == 0 {
            let subnet = (f.calls - 1) / 10;
            f.now += 1000 * (3 - subnet);
        }
        f.now
    }
    let mut fake = Fake { now: 0, calls: 0 };
    let input = vec![0.1f32; 256];
    let st = unsafe {
        sn_session_calibrate(
            s,
            Some(tick),
            (&mut fake as *mut Fake).cast(),
            input.as_ptr(),
            256,
            5,
        )
    };
    assert_eq!(st, SnStatus::SnOk, "{}", last_error(s));
    let mut table = [0u32; 3];
    let st = unsafe { sn_session_get_latencies(s, table.as_mut_ptr(), 3) };
    assert_eq!(st, SnStatus::SnOk);
    assert_eq!(table, [3000, 2000, 1000]);
    // now the largest is also the fastest
    let st = unsafe { sn_session_select_latency(s, 1500, sel.as_mut_ptr()) };
    assert_eq!(st, SnStatus::SnOk);
    assert_eq!(unsafe { sel.assume_init() }.index, 2);
    let saved = [10u32, 20, 30];
    assert_eq!(
        unsafe { sn_session_set_latencies(s, saved.as_ptr(), 3) },
        SnStatus::SnOk
    );
    let st = unsafe { sn_session_get_latencies(s, table.as_mut_ptr(), 3) };
    assert_eq!(st, SnStatus::SnOk);
    assert_eq!(table, saved);
    assert_eq!(unsafe { sn_session_clear_latencies(s) }, SnStatus::SnOk);
    let st = unsafe { sn_session_get_latencies(s, table.as_mut_ptr(), 3) };
    assert_eq!(st, SnStatus::SnOk);
    assert_eq!(table, [100, 200, 300]);

    let mut p = core::mem::MaybeUninit::<SnBatteryPolicy>::uninit();
    assert_eq!(
        unsafe { sn_session_get_battery_policy(s, p.as_mut_ptr()) },
        SnStatus::SnOk
    );
    let mut p = unsafe { p.assume_init() };
    assert_eq!((p.high_level, p.low_level, p.charging_full), (80, 20, 1));
    p.full_budget_us = 250;
    assert_eq!(
        unsafe { sn_session_set_battery_policy(s, &p) },
        SnStatus::SnOk
    );
    let st = unsafe { sn_session_select_battery(s, 1000, 1, sel.as_mut_ptr()) };
    assert_eq!(st, SnStatus::SnOk);
    assert_eq!(unsafe { sel.assume_init() }.index, 1);
    p.low_level = 90;
    assert_eq!(
        unsafe { sn_session_set_battery_policy(s, &p) },
        SnStatus::SnErrBadPolicy
    );
    assert!(last_error(s).contains("low_level"), "{}", last_error(s));
    assert_eq!(
        unsafe { sn_session_set_upgrade_margin(s, 101) },
        SnStatus::SnErrBadPolicy
    );
    assert_eq!(
        unsafe { sn_session_set_upgrade_margin(s, 0) },
        SnStatus::SnOk
    );
    assert_eq!(last_error(s), "no error");
}

#[test]
fn misuse_is_a_status_and_writes_nothing() {
    let raw = artifact();
    let mut bytes = Mem::from(&raw);
    let mut storage = Mem::new(SN_MODEL_STORAGE_BYTES + 16);
    let mut m = core::ptr::null_mut();
    let null = core::ptr::null_mut();
    unsafe {
        let st = sn_model_load(null, 4096, bytes.ptr(), bytes.1, &mut m);
        assert_eq!(st, SnStatus::SnErrNullPointer);
        let st = sn_model_load(
            storage.ptr().add(8).cast(),
            4096,
            bytes.ptr(),
            bytes.1,
            &mut m,
        );
        assert_eq!(st, SnStatus::SnErrMisaligned);
        let st = sn_model_load(storage.ptr().cast(), 100, bytes.ptr(), bytes.1, &mut m);
        assert_eq!(st, SnStatus::SnErrBufferTooSmall);
        let st = sn_model_load(storage.ptr().cast(), 4096, bytes.ptr(), bytes.1 - 1, &mut m);
        assert_eq!(st, SnStatus::SnErrSizeMismatch);
        let st = sn_model_load(storage.ptr().cast(), 4096, bytes.ptr(), 10, &mut m);
        assert_eq!(st, SnStatus::SnErrTooShort);
        assert!(m.is_null(), "nothing written on failure");
        let st = sn_model_load(
            storage.ptr().cast(),
            4096,
            bytes.ptr(),
            bytes.1,
            null.cast(),
        );
        assert_eq!(st, SnStatus::SnErrNullPointer);
        let mut msg = [0 as c_char; 128];
        bytes.bytes_mut()[100] ^= 1;
        let st = sn_model_check(bytes.ptr(), bytes.1, msg.as_mut_ptr(), msg.len());
        assert_eq!(st, SnStatus::SnErrChecksum);
        let text = CStr::from_ptr(msg.as_ptr()).to_str().unwrap();
        assert!(text.contains("checksum"), "{text}");
        bytes.bytes_mut()[100] ^= 1;
        let st = sn_model_check(bytes.ptr(), bytes.1, msg.as_mut_ptr(), 3);
        assert_eq!(st, SnStatus::SnOk);
        assert_eq!(CStr::from_ptr(msg.as_ptr()).to_str().unwrap(), "ok");
    }
    let m = load(&mut bytes, &mut storage).unwrap();
    let inf = info(m);
    unsafe {
        // handles that are not handles
        let mut junk = Mem::new(4096);
        let mut i = core::mem::MaybeUninit::uninit();
        assert_eq!(
            sn_model_get_info(junk.ptr().cast(), i.as_mut_ptr()),
            SnStatus::SnErrBadHandle
        );
        assert_eq!(
            sn_model_get_info(core::ptr::null(), i.as_mut_ptr()),
            SnStatus::SnErrNullPointer
        );
        assert_eq!(
            sn_model_get_info(storage.ptr().add(4).cast(), i.as_mut_ptr()),
            SnStatus::SnErrMisaligned
        );
        let mut sub = core::mem::MaybeUninit::uninit();
        assert_eq!(
            sn_model_get_subnet(m, 3, sub.as_mut_ptr()),
            SnStatus::SnErrUnknownSubnet
        );
        let mut idx = 0;
        assert_eq!(
            sn_model_find_subnet(m, 1234, &mut idx),
            SnStatus::SnErrUnknownSubnet
        );
        let mut small = [0 as c_char; 8];
        let mut len = 77;
        assert_eq!(
            sn_model_get_subnet_config(m, 0, small.as_mut_ptr(), 8, &mut len),
            SnStatus::SnErrBufferTooSmall
        );
        assert_eq!(len, 77);
    }
    // arenas
    let mut tiny = Mem::new(2000);
    assert_eq!(open(m, &mut tiny), Err(SnStatus::SnErrArenaTooSmall));
    let mut smallest = core::mem::MaybeUninit::<SnSubnetInfo>::uninit();
    unsafe { sn_model_get_subnet(m, 0, smallest.as_mut_ptr()) };
    let need = unsafe { smallest.assume_init() }.session_arena_bytes;
    let mut exact = Mem::new(need);
    let s = open(m, &mut exact).unwrap();
    let mut sel = core::mem::MaybeUninit::<SnSelection>::uninit();
    unsafe {
        assert_eq!(sn_session_get_active(s, sel.as_mut_ptr()), SnStatus::SnOk);
        assert_eq!(sel.assume_init().index, 0, "only the smallest fits");
        assert_eq!(
            sn_session_select_index(s, 2, core::ptr::null_mut()),
            SnStatus::SnErrArenaTooSmall
        );
        assert!(last_error(s).contains("too small"), "{}", last_error(s));
        // over budget with only the smallest eligible
        assert_eq!(
            sn_session_select_latency(s, 1, core::ptr::null_mut()),
            SnStatus::SnOverBudget
        );
    }
    let mut arena = Mem::new(inf.session_arena_bytes);
    let s = open(m, &mut arena).unwrap();
    let input = vec![0f32; inf.input_len];
    let mut logits = vec![0f32; 8];
    unsafe {
        assert_eq!(
            sn_session_run(s, input.as_ptr(), 255, logits.as_mut_ptr(), 4, null.cast()),
            SnStatus::SnErrInputLength
        );
        assert_eq!(
            sn_session_run(s, input.as_ptr(), 256, logits.as_mut_ptr(), 3, null.cast()),
            SnStatus::SnErrOutputLength
        );
        assert_eq!(
            sn_session_run(
                s,
                core::ptr::null(),
                256,
                logits.as_mut_ptr(),
                4,
                null.cast()
            ),
            SnStatus::SnErrNullPointer
        );
        let odd = logits.as_mut_ptr().cast::<u8>().add(1).cast::<f32>();
        assert_eq!(
            sn_session_run(s, input.as_ptr(), 256, odd, 4, null.cast()),
            SnStatus::SnErrMisaligned
        );
        assert_eq!(
            sn_session_select_id(s, 99, null.cast()),
            SnStatus::SnErrUnknownSubnet
        );
        let bad = br#"{"ks": [3], "e": [3], "d": [2]}"#;
        assert_eq!(
            sn_session_select_config(s, bad.as_ptr().cast(), bad.len(), null.cast()),
            SnStatus::SnErrConfig
        );
        assert!(last_error(s).contains("\"ks\""), "{}", last_error(s));
        let not_utf8 = [0xffu8, 0xfe];
        assert_eq!(
            sn_session_select_config(s, not_utf8.as_ptr().cast(), 2, null.cast()),
            SnStatus::SnErrBadArgument
        );
        let mut table = [0u32; 2];
        assert_eq!(
            sn_session_get_latencies(s, table.as_mut_ptr(), 2),
            SnStatus::SnErrLatencyTableLength
        );
        assert_eq!(
            sn_session_set_latencies(s, table.as_ptr(), 2),
            SnStatus::SnErrLatencyTableLength
        );
        assert_eq!(
            sn_session_calibrate(s, None, null, input.as_ptr(), 256, 3),
            SnStatus::SnErrNullPointer
        );
        // a session object copied elsewhere is not a session
        let mut copy = Mem::new(SN_SESSION_OBJECT_BYTES);
        core::ptr::copy_nonoverlapping(s.cast::<u8>(), copy.ptr(), SN_SESSION_OBJECT_BYTES);
        assert_eq!(
            sn_session_select_index(copy.ptr().cast(), 0, null.cast()),
            SnStatus::SnErrBadHandle
        );
        // the failures changed nothing
        assert_eq!(sn_session_get_active(s, sel.as_mut_ptr()), SnStatus::SnOk);
        assert_eq!(sel.assume_init().index, 2);
    }
}

/// Resealed so that the checks behind the checksum are reached.
fn reseal(b: &mut [u8]) {
    let c = checksum(b);
    b[HDR_CHECKSUM..HDR_CHECKSUM + 4].copy_from_slice(&c.to_le_bytes());
}

/// Loads (possibly corrupted) bytes through the C API and, if they load, runs every
/// stored subnet and both extreme configs, and every budget selection.
fn exercise(b: &[u8]) -> SnStatus {
    let mut bytes = Mem::from(b);
    let mut storage = Mem::new(SN_MODEL_STORAGE_BYTES);
    let m = match load(&mut bytes, &mut storage) {
        Ok(m) => m,
        Err(st) => return st,
    };
    let inf = info(m);
    let mut arena = Mem::new(inf.session_arena_bytes);
    let Ok(s) = open(m, &mut arena) else {
        return SnStatus::SnOk;
    };
    let input = vec![0.5f32; inf.input_len];
    let mut logits = vec![0f32; inf.classes as usize];
    let null = core::ptr::null_mut();
    unsafe {
        for i in 0..inf.subnet_count {
            if sn_session_select_index(s, i, null) == SnStatus::SnOk {
                sn_session_run(
                    s,
                    input.as_ptr(),
                    input.len(),
                    logits.as_mut_ptr(),
                    logits.len(),
                    null.cast(),
                );
            }
            let mut text = [0 as c_char; SN_CONFIG_TEXT_BYTES];
            let mut len = 0;
            if sn_model_get_subnet_config(m, i, text.as_mut_ptr(), text.len(), &mut len)
                == SnStatus::SnOk
            {
                sn_session_select_config(s, text.as_ptr(), len, null);
            }
        }
        sn_session_select_latency(s, 150, null);
        sn_session_select_battery(s, 10, 0, null);
        sn_session_run(
            s,
            input.as_ptr(),
            input.len(),
            logits.as_mut_ptr(),
            logits.len(),
            null.cast(),
        );
    }
    SnStatus::SnOk
}

#[test]
fn the_valid_artifact_exercises_cleanly() {
    assert_eq!(exercise(&artifact()), SnStatus::SnOk);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("SUPERNET_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(400),
        .. ProptestConfig::default()
    })]

    /// Mutation fuzz through the C API: bit flips, truncations, and edited section
    /// offsets and lengths, resealed or not. Nothing panics; errors are status codes.
    /// `SUPERNET_FUZZ_CASES=100000 cargo test -p supernet-capi --release fuzz` runs longer.
    #[test]
    fn fuzz_loading_and_running_never_panics(
        flips in prop::collection::vec((0usize..1_000_000, 0u8..8), 0..6),
        section_edits in prop::collection::vec((0usize..32, 1usize..4, any::<u32>(), 0u8..3), 0..3),
        cut in prop::option::weighted(0.15, 0usize..1_000_000),
        reseal_it in prop::bool::weighted(0.8),
    ) {
        let mut b = artifact();
        let n = b.len();
        for (at, bit) in flips {
            let at = if at % 2 == 0 { at % 1024 } else { at % n };
            b[at] ^= 1 << bit;
        }
        let count = u32::from_le_bytes(b[HDR_SECTION_COUNT..HDR_SECTION_COUNT + 4].try_into().unwrap()) as usize;
        let table = u32::from_le_bytes(b[HDR_SECTION_TABLE..HDR_SECTION_TABLE + 4].try_into().unwrap()) as usize;
        for (entry, field, v, how) in section_edits {
            // field 1: offset, 2: length, 3: reserved; small nudges or any value
            let at = table + (entry % count.max(1)) * SECTION_ENTRY_LEN + 4 * field;
            if at + 4 <= n {
                let old = u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
                let new = match how {
                    0 => old.wrapping_add(v % 256),
                    1 => old.wrapping_sub(v % 256),
                    _ => v,
                };
                b[at..at + 4].copy_from_slice(&new.to_le_bytes());
            }
        }
        if let Some(c) = cut {
            b.truncate(c % (n + 1));
        }
        if reseal_it && b.len() >= 64 {
            reseal(&mut b);
        }
        let st = exercise(&b);
        prop_assert!(st == SnStatus::SnOk || (st as i32) >= 10, "{st:?}");
    }
}
