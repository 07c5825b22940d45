//! Choosing a subnet from a latency budget or a battery level: calibration with a fake
//! clock, the fit rule, the fallback when nothing fits, and hysteresis under jitter.

use proptest::prelude::*;
use supernet_format::arch::{bn_set_len, default_bn_len, tensors};
use supernet_format::writer::{AlignedBytes, ArtifactWriter, SubnetEntry};
use supernet_format::{Prep, SubnetConfig};
use supernet_runtime::{BatteryPolicy, Error, Model, Session};
use supernet_testkit::{space, values};

/// Distinct configs: the smallest with the first `i` stages one block deeper.
fn config(i: usize) -> SubnetConfig {
    let sp = space();
    let mut c = SubnetConfig::smallest(&sp);
    for s in 0..i.min(5) {
        c.d_mut()[s] = 3;
    }
    if i > 5 {
        c.d_mut()[0] = 4;
    }
    if i >= 4 {
        // wider expansions: a bigger arena than the others
        let e = sp.e.max();
        c.e_mut().fill(e);
    }
    c
}

/// An artifact whose stored subnet `i` has accuracy `acc[i]` and latency `lat[i]`.
fn artifact(acc: &[f32], lat: &[u32]) -> AlignedBytes {
    let sp = space();
    let subnets = acc
        .iter()
        .zip(lat)
        .enumerate()
        .map(|(i, (&accuracy, &latency_us))| {
            let config = config(i);
            SubnetEntry {
                id: 10 + i as u32,
                name: format!("s{i}"),
                accuracy,
                arena_bytes: 0,
                latency_us,
                config,
                bn: vec![1.0; bn_set_len(&sp, &config)],
            }
        })
        .collect();
    let w = ArtifactWriter {
        space: sp,
        prep: Prep::new(1.0 / 255.0, &[0.5], &[0.25]).unwrap(),
        tensors: tensors(&sp)
            .enumerate()
            .map(|(i, t)| values(i as u64, t.len()))
            .collect(),
        default_bn: vec![1.0; default_bn_len(&sp)],
        subnets,
        meta: None,
    };
    AlignedBytes::from_slice(&w.to_bytes().unwrap())
}

const ACC: [f32; 5] = [0.70, 0.80, 0.85, 0.84, 0.90];
const LAT: [u32; 5] = [100, 200, 300, 250, 500];

#[test]
fn latency_budget_picks_the_most_accurate_subnet_that_fits() {
    let buf = artifact(&ACC, &LAT);
    let model = Model::from_bytes(buf.as_bytes()).unwrap();
    let mut arena = vec![0f32; model.max_arena_len()];
    let mut s = Session::new(&model, &mut arena).unwrap();
    s.set_upgrade_margin(0).unwrap();
    for (budget, want, fits) in [
        (1000, 4, true),
        (500, 4, true),
        (499, 2, true),
        (300, 2, true),
        (299, 3, true),
        (250, 3, true),
        (249, 1, true),
        (200, 1, true),
        (150, 0, true),
        (100, 0, true),
        (99, 0, false),
        (1, 0, false),
    ] {
        let sel = s.select_latency(budget).unwrap();
        assert_eq!(sel.index, Some(want), "budget {budget}");
        assert_eq!(sel.id, Some(10 + want as u32));
        assert_eq!(sel.fits, fits, "budget {budget}");
        assert_eq!(sel.budget_us, budget);
        assert_eq!(sel.latency_us, LAT[want]);
        assert_eq!(sel.accuracy, ACC[want]);
        let cost = model.cost(&config(want));
        assert_eq!((sel.macs, sel.params), (cost.macs, cost.params));
        assert_eq!(sel.arena_bytes as usize, model.arena_bytes(&config(want)));
        assert_eq!(s.active().index, Some(want));
    }
}

#[test]
fn calibration_with_a_fake_clock_replaces_the_artifact_latencies() {
    // The artifact claims the opposite order of speed.
    let buf = artifact(&ACC, &[500, 400, 300, 200, 100]);
    let model = Model::from_bytes(buf.as_bytes()).unwrap();
    let mut arena = vec![0f32; model.max_arena_len()];
    let mut s = Session::new(&model, &mut arena).unwrap();
    s.select_index(2).unwrap();
    let input = vec![0.1f32; model.input_len()];
    let mut logits = [0f32; 4];
    // The fake clock: every timed run of subnet i takes LAT[i] us, except one outlier per
    // subnet that the median must ignore. Calls come in pairs (start, end), 5 runs each.
    let runs = 5u64;
    let mut calls = 0u64;
    let mut now = 0u64;
    let mut clock = || {
        let k = calls;
        calls += 1;
        let run = k / 2;
        let subnet = (run / runs) as usize;
        if k % 2 == 1 {
            now += LAT[subnet] as u64 + if run % runs == 3 { 10_000 } else { 0 };
        }
        now
    };
    let mut table = [0u32; 5];
    s.calibrate(&mut clock, &input, &mut logits, runs as u32, &mut table)
        .unwrap();
    assert_eq!(table, LAT);
    assert_eq!(calls, 2 * runs * 5);
    // the active subnet is restored
    assert_eq!(s.active().index, Some(2));
    s.set_latencies(&table).unwrap();
    assert_eq!(s.expected_latency_us(4), 500);
    s.set_upgrade_margin(0).unwrap();
    assert_eq!(s.select_latency(260).unwrap().index, Some(3));
    s.clear_latencies();
    // with the artifact's numbers, subnet 3 (200 us) and 4 (100 us) fit; 4 is best
    assert_eq!(s.select_latency(260).unwrap().index, Some(4));
}

#[test]
fn calibration_skips_subnets_that_do_not_fit_the_arena() {
    let buf = artifact(&ACC, &LAT);
    let model = Model::from_bytes(buf.as_bytes()).unwrap();
    let small = model.arena_bytes(&config(0)) / 4;
    assert!(small < model.arena_bytes(&config(4)) / 4);
    let mut arena = vec![0f32; small];
    let mut s = Session::new(&model, &mut arena).unwrap();
    let input = vec![0.1f32; model.input_len()];
    let mut logits = [0f32; 4];
    let mut t = 0u64;
    let mut clock = || {
        t += 7;
        t
    };
    let mut table = [99u32; 5];
    s.calibrate(&mut clock, &input, &mut logits, 3, &mut table)
        .unwrap();
    assert_eq!(table[0], 7);
    for (i, &v) in table.iter().enumerate().skip(1) {
        let fits = model.arena_bytes(&config(i)) <= small * 4;
        assert_eq!(v != 0, fits, "subnet {i}");
    }
    // budget selection only considers subnets that fit the arena
    let sel = s.select_latency(u32::MAX).unwrap();
    assert!(model.arena_bytes(&config(sel.index.unwrap())) <= small * 4);
}

#[test]
fn misuse_is_an_error_value() {
    let buf = artifact(&ACC, &[0; 5]);
    let model = Model::from_bytes(buf.as_bytes()).unwrap();
    let mut arena = vec![0f32; model.max_arena_len()];
    let mut s = Session::new(&model, &mut arena).unwrap();
    assert_eq!(s.select_latency(1000), Err(Error::NoLatencies));
    assert_eq!(s.select_battery(50, false), Err(Error::NoLatencies));
    let short = [1u32; 4];
    assert_eq!(
        s.set_latencies(&short),
        Err(Error::LatencyTableLength {
            expected: 5,
            found: 4
        })
    );
    let input = vec![0f32; model.input_len()];
    let mut logits = [0f32; 4];
    let mut out = [7u32; 5];
    let mut clock = || 0u64;
    assert!(matches!(
        s.calibrate(&mut clock, &input[1..], &mut logits, 3, &mut out),
        Err(Error::InputLength { .. })
    ));
    assert!(matches!(
        s.calibrate(&mut clock, &input, &mut logits[..3], 3, &mut out),
        Err(Error::OutputLength { .. })
    ));
    assert_eq!(out, [7; 5], "nothing written on error");
    for bad in [
        BatteryPolicy {
            low_level: 80,
            high_level: 80,
            ..Default::default()
        },
        BatteryPolicy {
            high_level: 101,
            ..Default::default()
        },
        BatteryPolicy {
            level_hysteresis: 51,
            ..Default::default()
        },
        BatteryPolicy {
            min_budget_us: 10,
            full_budget_us: 5,
            ..Default::default()
        },
    ] {
        assert!(matches!(
            s.set_battery_policy(bad),
            Err(Error::BadPolicy(_))
        ));
    }
    assert!(s.set_upgrade_margin(101).is_err());
    assert_eq!(s.battery_policy(), BatteryPolicy::default());
}

#[test]
fn a_draining_battery_steps_down_and_charging_steps_back_up() {
    let buf = artifact(&ACC, &LAT);
    let model = Model::from_bytes(buf.as_bytes()).unwrap();
    let mut arena = vec![0f32; model.max_arena_len()];
    let mut s = Session::new(&model, &mut arena).unwrap();
    let full = s.select_battery(100, false).unwrap();
    assert_eq!(full.index, Some(4), "a full battery runs the most accurate");
    let mut last_latency = full.latency_us;
    let mut seen = vec![];
    for level in (0..=100u8).rev() {
        let sel = s.select_battery(level, false).unwrap();
        assert!(sel.fits);
        assert!(sel.latency_us <= sel.budget_us);
        assert!(
            sel.latency_us <= last_latency,
            "never steps up while draining"
        );
        last_latency = sel.latency_us;
        if seen.last() != sel.index.as_ref() {
            seen.push(sel.index.unwrap());
        }
    }
    assert_eq!(
        *seen.last().unwrap(),
        0,
        "an empty battery runs the fastest"
    );
    assert!(
        seen.len() >= 3,
        "passes through intermediate subnets: {seen:?}"
    );
    let charging = s.select_battery(5, true).unwrap();
    assert_eq!(charging.index, Some(4));
    // an explicit policy: fixed budgets
    s.set_battery_policy(BatteryPolicy {
        full_budget_us: 300,
        min_budget_us: 200,
        charging_full: false,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(s.select_battery(100, true).unwrap().index, Some(2));
    assert_eq!(s.select_battery(0, false).unwrap().index, Some(1));
}

#[test]
fn a_jittering_battery_level_does_not_flap() {
    let buf = artifact(&ACC, &LAT);
    let model = Model::from_bytes(buf.as_bytes()).unwrap();
    let mut arena = vec![0f32; model.max_arena_len()];
    let mut s = Session::new(&model, &mut arena).unwrap();
    // Find a level where the choice changes when draining one point at a time.
    let mut boundary = None;
    let mut prev = s.select_battery(100, false).unwrap().index;
    s.set_battery_policy(BatteryPolicy {
        level_hysteresis: 0,
        ..Default::default()
    })
    .unwrap();
    for level in (0..=100u8).rev() {
        let idx = s.select_battery(level, false).unwrap().index;
        if idx != prev {
            boundary = Some(level);
            break;
        }
        prev = idx;
    }
    let b = boundary.expect("some level changes the subnet");
    // Jitter of +-2 points around that boundary, with the default policy: at most one
    // switch, however long it jitters.
    s.set_battery_policy(BatteryPolicy::default()).unwrap();
    s.select_battery(b + 2, false).unwrap();
    let mut switches = 0;
    let mut cur = s.active().index;
    for k in 0..200u32 {
        let level = (b as i32 + [2, -2, 1, -1, 0][k as usize % 5]) as u8;
        let sel = s.select_battery(level, false).unwrap();
        assert!(sel.fits && sel.latency_us <= sel.budget_us);
        if sel.index != cur {
            switches += 1;
            cur = sel.index;
        }
    }
    assert!(switches <= 1, "{switches} switches");
}

#[test]
fn a_jittering_budget_does_not_flap() {
    let buf = artifact(&ACC, &LAT);
    let model = Model::from_bytes(buf.as_bytes()).unwrap();
    let mut arena = vec![0f32; model.max_arena_len()];
    let mut s = Session::new(&model, &mut arena).unwrap();
    // Around 500 us (the most accurate subnet's latency): 495, 505, 498, 502, ...
    let mut switches = 0;
    let mut cur = s.select_latency(495).unwrap().index;
    for k in 0..200 {
        let budget = if k % 2 == 0 { 505 - k % 7 } else { 495 + k % 5 };
        let sel = s.select_latency(budget).unwrap();
        assert!(sel.fits && sel.latency_us <= budget);
        if sel.index != cur {
            switches += 1;
            cur = sel.index;
        }
    }
    assert!(switches <= 1, "{switches} switches");
    // With the margin cleared, it upgrades.
    assert_eq!(s.select_latency(551).unwrap().index, Some(4));
    // Without hysteresis the same jitter flaps: the margin is what prevents it.
    s.set_upgrade_margin(0).unwrap();
    let mut flaps = 0;
    let mut cur = s.select_latency(495).unwrap().index;
    for k in 0..20 {
        let sel = s
            .select_latency(if k % 2 == 0 { 505 } else { 495 })
            .unwrap();
        if sel.index != cur {
            flaps += 1;
            cur = sel.index;
        }
    }
    assert_eq!(flaps, 20);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Whatever the table and the budget sequence: the chosen subnet fits the budget when
    /// any does; otherwise it is the fastest, flagged as not fitting.
    #[test]
    fn the_chosen_subnet_fits_when_one_does(
        subnets in proptest::collection::vec((0.0f32..1.0, 1u32..2000), 1..7),
        budgets in proptest::collection::vec(0u32..2500, 1..40),
        margin in 0u8..50,
    ) {
        let acc: Vec<f32> = subnets.iter().map(|s| s.0).collect();
        let lat: Vec<u32> = subnets.iter().map(|s| s.1).collect();
        let buf = artifact(&acc, &lat);
        let model = Model::from_bytes(buf.as_bytes()).unwrap();
        let mut arena = vec![0f32; model.max_arena_len()];
        let mut s = Session::new(&model, &mut arena).unwrap();
        s.set_upgrade_margin(margin).unwrap();
        let fastest = *lat.iter().min().unwrap();
        for &b in &budgets {
            let sel = s.select_latency(b).unwrap();
            if fastest <= b {
                prop_assert!(sel.fits);
                prop_assert!(sel.latency_us <= b);
            } else {
                prop_assert!(!sel.fits);
                prop_assert_eq!(sel.latency_us, fastest);
            }
            // the same budget again never changes the choice
            let again = s.select_latency(b).unwrap();
            prop_assert_eq!(again.index, sel.index);
            prop_assert!(!again.changed);
        }
    }
}
