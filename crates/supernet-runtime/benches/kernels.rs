//! Fast kernels vs. their naive references on the network's real shapes.
//!
//! Runs the criterion groups (kept short: small sample size and measurement time), then prints
//! one plain line per shape, `shape: fast X us, reference Y us, speed-up Z x`, timed in the same
//! run with `Instant` (best of many short batches, fast and reference interleaved).
//!
//! `cargo bench -p supernet-runtime --bench kernels`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use supernet_runtime::kernels::{self, Act, conv_out_dim, reference};

/// One shape: a name and the fast and reference kernels bound to their data.
struct Case {
    name: String,
    fast: Box<dyn FnMut()>,
    reference: Box<dyn FnMut()>,
}

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}

fn pointwise_case(pixels: usize, cin: usize, cout: usize) -> Case {
    let input = values(pixels * cin, 1);
    let weight = values(cout * cin, 2);
    let scale = values(cout, 3);
    let shift = values(cout, 4);
    let mut out_f = vec![0.0; pixels * cout];
    let mut out_r = vec![0.0; pixels * cout];
    let (i2, w2, sc2, sh2) = (input.clone(), weight.clone(), scale.clone(), shift.clone());
    Case {
        name: format!("pointwise {pixels}px {cin}->{cout}"),
        fast: Box::new(move || {
            kernels::pointwise(
                black_box(&input),
                pixels,
                cin,
                &weight,
                cin,
                cout,
                &scale,
                &shift,
                Act::HSwish,
                &mut out_f,
            );
            black_box(&out_f);
        }),
        reference: Box::new(move || {
            reference::pointwise(
                black_box(&i2),
                pixels,
                cin,
                &w2,
                cin,
                cout,
                &sc2,
                &sh2,
                Act::HSwish,
                &mut out_r,
            );
            black_box(&out_r);
        }),
    }
}

fn depthwise_case(hw: usize, c: usize, k: usize, stride: usize) -> Case {
    let input = values(hw * hw * c, 5);
    let weight = values(k * k * c, 6);
    let scale = values(c, 7);
    let shift = values(c, 8);
    let ho = conv_out_dim(hw, k, stride);
    let mut out_f = vec![0.0; ho * ho * c];
    let mut out_r = vec![0.0; ho * ho * c];
    let (i2, w2, sc2, sh2) = (input.clone(), weight.clone(), scale.clone(), shift.clone());
    Case {
        name: format!("depthwise {hw}x{hw}x{c} k{k} s{stride}"),
        fast: Box::new(move || {
            kernels::depthwise(
                black_box(&input),
                hw,
                hw,
                c,
                &weight,
                c,
                k,
                stride,
                &scale,
                &shift,
                Act::HSwish,
                &mut out_f,
            );
            black_box(&out_f);
        }),
        reference: Box::new(move || {
            reference::depthwise(
                black_box(&i2),
                hw,
                hw,
                c,
                &w2,
                c,
                k,
                stride,
                &sc2,
                &sh2,
                Act::HSwish,
                &mut out_r,
            );
            black_box(&out_r);
        }),
    }
}

fn stem_case(cin: usize, hw: usize, cout: usize) -> Case {
    let input = values(cin * hw * hw, 9);
    let weight = values(cout * 9 * cin, 10);
    let scale = values(cout, 11);
    let shift = values(cout, 12);
    let ho = conv_out_dim(hw, 3, 2);
    let mut out_f = vec![0.0; ho * ho * cout];
    let mut out_r = vec![0.0; ho * ho * cout];
    let (i2, w2, sc2, sh2) = (input.clone(), weight.clone(), scale.clone(), shift.clone());
    Case {
        name: format!("stem {cin}x{hw}x{hw} k3 s2 ->{cout}"),
        fast: Box::new(move || {
            kernels::conv_chw_to_hwc(
                black_box(&input),
                cin,
                hw,
                hw,
                &weight,
                cout,
                3,
                2,
                &scale,
                &shift,
                Act::HSwish,
                &mut out_f,
            );
            black_box(&out_f);
        }),
        reference: Box::new(move || {
            reference::conv_chw_to_hwc(
                black_box(&i2),
                cin,
                hw,
                hw,
                &w2,
                cout,
                3,
                2,
                &sc2,
                &sh2,
                Act::HSwish,
                &mut out_r,
            );
            black_box(&out_r);
        }),
    }
}

fn se_case(pixels: usize, c: usize, hidden: usize) -> Case {
    let x0 = values(pixels * c, 13);
    let w_reduce = values(hidden * c, 14);
    let b_reduce = values(hidden, 15);
    let w_expand = values(c * hidden, 16);
    let b_expand = values(c, 17);
    let (mut x_f, mut x_r, x1) = (x0.clone(), x0.clone(), x0.clone());
    let (mut s_f, mut s_r) = (vec![0.0; c + hidden], vec![0.0; c + hidden]);
    let (wr2, br2, we2, be2) = (
        w_reduce.clone(),
        b_reduce.clone(),
        w_expand.clone(),
        b_expand.clone(),
    );
    Case {
        name: format!("squeeze-excite {pixels}px c{c} hidden{hidden}"),
        // In place: restore x first (cheap), or repeated gating would drive it to subnormals.
        fast: Box::new(move || {
            x_f.copy_from_slice(&x0);
            kernels::squeeze_excite(
                black_box(&mut x_f),
                pixels,
                c,
                &w_reduce,
                c,
                &b_reduce,
                hidden,
                &w_expand,
                hidden,
                &b_expand,
                &mut s_f,
            );
        }),
        reference: Box::new(move || {
            x_r.copy_from_slice(&x1);
            reference::squeeze_excite(
                black_box(&mut x_r),
                pixels,
                c,
                &wr2,
                c,
                &br2,
                hidden,
                &we2,
                hidden,
                &be2,
                &mut s_r,
            );
        }),
    }
}

fn cases() -> Vec<Case> {
    vec![
        pointwise_case(196, 16, 96),
        pointwise_case(49, 24, 144),
        pointwise_case(49, 144, 24),
        pointwise_case(16, 40, 240),
        pointwise_case(4, 112, 672),
        pointwise_case(1, 960, 1280),
        depthwise_case(14, 96, 7, 2),
        depthwise_case(7, 144, 3, 1),
        depthwise_case(7, 144, 5, 1),
        depthwise_case(7, 144, 7, 1),
        depthwise_case(2, 672, 7, 1),
        stem_case(1, 28, 16),
        se_case(49, 144, 40),
    ]
}

/// Best per-call time over many short batches (about 1 ms each), fast and reference
/// interleaved: the minimum filters out preemption on a shared machine.
fn ratio_line(case: &mut Case) {
    fn per_call(f: &mut dyn FnMut(), iters: u32) -> f64 {
        let t = Instant::now();
        for _ in 0..iters {
            f();
        }
        t.elapsed().as_secs_f64() / f64::from(iters)
    }
    let calibrate = |f: &mut dyn FnMut()| {
        f();
        let once = per_call(f, 3).max(1e-8);
        ((1e-3 / once) as u32).clamp(1, 1_000_000)
    };
    let (n_fast, n_ref) = (calibrate(&mut case.fast), calibrate(&mut case.reference));
    let (mut fast, mut slow) = (f64::MAX, f64::MAX);
    for _ in 0..30 {
        fast = fast.min(per_call(&mut case.fast, n_fast));
        slow = slow.min(per_call(&mut case.reference, n_ref));
    }
    println!(
        "{}: fast {:.2} us, reference {:.2} us, speed-up {:.1} x",
        case.name,
        fast * 1e6,
        slow * 1e6,
        slow / fast
    );
}

fn main() {
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_millis(300))
        .configure_from_args();
    let mut cases = cases();
    for family in ["pointwise", "depthwise", "stem", "squeeze-excite"] {
        let mut group = criterion.benchmark_group(family);
        for case in cases.iter_mut().filter(|c| c.name.starts_with(family)) {
            let shape = case.name[family.len()..].trim().to_string();
            group.bench_function(format!("{shape}/fast"), |b| b.iter(&mut case.fast));
            group.bench_function(format!("{shape}/reference"), |b| {
                b.iter(&mut case.reference)
            });
        }
        group.finish();
    }
    criterion.final_summary();

    // `cargo test --benches` / `--list` only smoke-run the benchmarks: no timing lines then.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    println!();
    for case in &mut cases {
        ratio_line(case);
    }
}
