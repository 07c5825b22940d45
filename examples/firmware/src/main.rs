//! The supernet runtime in Cortex-M4F firmware (QEMU mps2-an386), with no heap.
//!
//! The artifact `examples/models/fmnist-micro.snet` is embedded in flash, 64-byte aligned,
//! and loaded in place (`Model::from_bytes` copies nothing); one static arena, sized at
//! build time for the largest subnet, serves every subnet. A simulated battery drains from
//! 100 % to 0 % and then charges; at each step `select_battery` picks a stored subnet and
//! the firmware classifies a few embedded Fashion-MNIST test images with it. Every
//! prediction is compared with the class the host runtime computed for that subnet and image
//! (build.rs). Exits by semihosting with status 0 only if all of them match and at least two
//! different subnets ran, else 1.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use panic_semihosting as _;
use supernet_runtime::{Model, Session, argmax};

// ARENA_LEN, MODEL_LEN, MODEL_CHECKSUM, INPUT_LEN, CLASSES, N_IMAGES, N_SUBNETS, IMAGES,
// LABELS, EXPECTED: see build.rs.
include!(concat!(env!("OUT_DIR"), "/testdata.rs"));

/// Gives its contents the 64-byte alignment the format recommends (4 is required).
#[repr(C, align(64))]
struct Aligned<T: ?Sized>(T);

/// The artifact, in flash (read-only data), used in place.
static ARTIFACT: &Aligned<[u8]> = &Aligned(*include_bytes!("../../models/fmnist-micro.snet"));

/// Battery levels (percent) and charging flags of the simulated day.
const BATTERY: [(u8, bool); 14] = [
    (100, false),
    (90, false),
    (80, false),
    (70, false),
    (60, false),
    (50, false),
    (40, false),
    (30, false),
    (20, false),
    (10, false),
    (0, false),
    (5, true),
    (30, true),
    (60, true),
];

/// Formats a fraction as a percentage with two decimals without float formatting code.
struct Percent(f32);

impl core::fmt::Display for Percent {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.0.is_nan() {
            return f.write_str("-");
        }
        let bp = (self.0 * 10000.0 + 0.5) as u32;
        write!(f, "{}.{:02}%", bp / 100, bp % 100)
    }
}

fn exit(ok: bool) -> ! {
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::wfi();
    }
}

/// Peak stack use in bytes: cortex-m-rt (feature `paint-stack`) fills the stack region with
/// `STACK_PAINT_VALUE` at reset; the lowest word no longer holding it marks the deepest use.
fn stack_peak_bytes() -> usize {
    unsafe extern "C" {
        static _stack_start: u32;
        static _stack_end: u32;
    }
    let top = (&raw const _stack_start) as usize;
    let mut p = (&raw const _stack_end) as usize;
    // SAFETY: every word between the linker's `_stack_end` and `_stack_start` is RAM.
    while p < top
        && unsafe { core::ptr::read_volatile(p as *const u32) } == cortex_m_rt::STACK_PAINT_VALUE
    {
        p += 4;
    }
    top - p
}

#[entry]
fn main() -> ! {
    // cortex-m-rt turns these into `&'static mut` references: zero-initialised RAM (.bss).
    static mut ARENA: [f32; ARENA_LEN] = [0.0; ARENA_LEN];
    static mut INPUT: [f32; INPUT_LEN] = [0.0; INPUT_LEN];

    let bytes = &ARTIFACT.0;
    let checksum = u32::from_le_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
    if bytes.len() != MODEL_LEN || checksum != MODEL_CHECKSUM {
        hprintln!(
            "FAIL: the embedded artifact is not the one build.rs computed the expectations from"
        );
        exit(false);
    }
    let model = match Model::from_bytes(bytes) {
        Ok(m) => m,
        Err(e) => {
            hprintln!("FAIL: cannot load the artifact: {}", e);
            exit(false);
        }
    };
    if model.max_arena_len() != ARENA_LEN
        || model.subnet_count() != N_SUBNETS
        || model.classes() != CLASSES
    {
        hprintln!("FAIL: the model does not match the build-time figures");
        exit(false);
    }
    hprintln!(
        "model: {} bytes in flash at {:#010x}, {} stored subnets, {} classes; arena {} bytes at {:#010x}",
        bytes.len(),
        bytes.as_ptr() as usize,
        model.subnet_count(),
        model.classes(),
        model.max_arena_bytes(),
        ARENA.as_ptr() as usize
    );
    let mut session = match Session::new(&model, &mut ARENA[..]) {
        Ok(s) => s,
        Err(e) => {
            hprintln!("FAIL: session: {}", e);
            exit(false);
        }
    };

    let mut logits = [0f32; CLASSES];
    let (mut runs, mut mismatches, mut correct) = (0u32, 0u32, 0u32);
    let mut used = [false; N_SUBNETS];
    for (level, charging) in BATTERY {
        let sel = match session.select_battery(level, charging) {
            Ok(s) => s,
            Err(e) => {
                hprintln!("FAIL: select_battery({}, {}): {}", level, charging, e);
                exit(false);
            }
        };
        let Some(index) = sel.index else {
            hprintln!("FAIL: select_battery chose a subnet that is not stored");
            exit(false);
        };
        used[index] = true;
        let name = model.subnet(index).map_or("?", |s| s.name);
        hprintln!(
            "battery {:>3}% {}: subnet {} {:<11} {:>7} MACs, held-out acc {}, expected {} us of a {} us budget{}",
            level,
            if charging {
                "charging   "
            } else {
                "discharging"
            },
            sel.id.unwrap_or(u32::MAX),
            name,
            sel.macs,
            Percent(sel.accuracy),
            sel.latency_us,
            sel.budget_us,
            if sel.changed { " (switched)" } else { "" }
        );
        for (i, pixels) in IMAGES.iter().enumerate() {
            model.prep().apply_u8(pixels, &mut INPUT[..]);
            if let Err(e) = session.run(&INPUT[..], &mut logits) {
                hprintln!("FAIL: run: {}", e);
                exit(false);
            }
            let class = argmax(&logits).unwrap_or(usize::MAX);
            let host = EXPECTED[index][i] as usize;
            let label = LABELS[i] as usize;
            runs += 1;
            correct += (class == label) as u32;
            let same = class == host;
            if !same {
                mismatches += 1;
            }
            hprintln!(
                "  image {}: predicted {} label {} host {}{}",
                i,
                class,
                label,
                host,
                if same { "" } else { "  MISMATCH" }
            );
        }
    }

    let distinct = used.iter().filter(|&&u| u).count();
    hprintln!(
        "{} runs on {} distinct subnets: {} correct vs labels, {} differ from the host runtime; stack peak {} bytes",
        runs,
        distinct,
        correct,
        mismatches,
        stack_peak_bytes()
    );
    let ok = mismatches == 0 && distinct >= 2;
    hprintln!("{}", if ok { "PASS" } else { "FAIL" });
    exit(ok)
}
