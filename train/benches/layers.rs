//! Speed of the trainer's hot layer primitives at the supernet's shapes (batch 32 per
//! shard), each reported as GFLOP/s and as a ratio to a peer measured in the same run: a
//! large square f32 GEMM through ndarray (matrixmultiply), the practical peak of one core.
//! Run: `cargo bench -p supernet-train --bench layers`. No assertions: timings only.

use std::hint::black_box;
use std::time::Instant;

use ndarray::Array2;
use supernet_train::layers::*;
use supernet_train::rng::Rng;

fn randn(rng: &mut Rng, r: usize, c: usize) -> Array2<f32> {
    Array2::from_shape_fn((r, c), |_| rng.normal())
}

/// Mean seconds per call over at least 0.3 s.
fn time<T>(mut f: impl FnMut() -> T) -> f64 {
    black_box(f());
    let t = Instant::now();
    let mut reps = 0usize;
    while reps < 3 || t.elapsed().as_secs_f64() < 0.3 {
        black_box(f());
        reps += 1;
    }
    t.elapsed().as_secs_f64() / reps as f64
}

fn main() {
    let mut rng = Rng::new(99);
    let a = randn(&mut rng, 1024, 1024);
    let b = randn(&mut rng, 1024, 1024);
    let peak = 2.0 * 1024f64.powi(3) / time(|| a.dot(&b)) / 1e9;
    println!("peer: 1024^3 f32 GEMM (ndarray/matrixmultiply, one core): {peak:.1} GFLOP/s\n");
    println!(
        "{:<50} {:>10} {:>10} {:>9}",
        "primitive", "us/call", "GFLOP/s", "vs peer"
    );
    let report = |label: &str, flops: f64, secs: f64| {
        let g = flops / secs / 1e9;
        println!(
            "{label:<50} {:>10.1} {g:>10.2} {:>8.2}x",
            secs * 1e6,
            g / peak
        );
    };
    let n = 32;
    for &(h, c, k, stride) in &[
        (14usize, 96usize, 7usize, 2usize),
        (7, 144, 7, 1),
        (7, 144, 3, 1),
        (2, 672, 7, 1),
    ] {
        let d = Dims::new(n, h, h);
        let x = randn(&mut rng, d.pixels(), c);
        let f = randn(&mut rng, k * k, c);
        let od = d.conv_out(k, stride);
        let dy = randn(&mut rng, od.pixels(), c);
        // multiply-adds actually performed: taps that fall inside the (padded) image
        let valid = |len: usize, out: usize| -> usize {
            (0..out)
                .map(|o| {
                    (0..k)
                        .filter(|&t| (o * stride + t).checked_sub(k / 2).is_some_and(|i| i < len))
                        .count()
                })
                .sum()
        };
        let flops = 2.0 * (n * valid(h, od.h) * valid(h, od.w) * c) as f64;
        let tag = format!("N{n} {h}x{h}x{c} k{k} s{stride}");
        report(
            &format!("depthwise fwd {tag}"),
            flops,
            time(|| depthwise_forward(x.view(), d, f.view(), k, stride)),
        );
        report(
            &format!("depthwise bwd {tag}"),
            2.0 * flops,
            time(|| depthwise_backward(x.view(), d, f.view(), k, stride, dy.view())),
        );
    }
    for &(px, cin, cout) in &[
        (196usize, 16usize, 96usize),
        (49, 144, 24),
        (4, 480, 112),
        (1, 960, 1280),
    ] {
        let p = n * px;
        let x = randn(&mut rng, p, cin);
        let w = randn(&mut rng, cout, cin);
        let dy = randn(&mut rng, p, cout);
        let flops = 2.0 * (p * cin * cout) as f64;
        let tag = format!("[{n}*{px},{cin}]x[{cout},{cin}]^T");
        report(
            &format!("pointwise fwd {tag}"),
            flops,
            time(|| pointwise_forward(x.view(), w.view())),
        );
        report(
            &format!("pointwise bwd {tag}"),
            2.0 * flops,
            time(|| pointwise_backward(x.view(), w.view(), dy.view())),
        );
    }
    let x = randn(&mut rng, n * 196, 96);
    let dy = randn(&mut rng, n * 196, 96);
    let g = ndarray::Array1::<f32>::ones(96);
    let bta = ndarray::Array1::<f32>::zeros(96);
    let (_, cache) = bn_train_forward(x.view(), g.view(), bta.view(), 1e-5);
    // memory-bound: count ~5 flops per element to keep one scale
    let el = (n * 196 * 96) as f64;
    report(
        "bn train fwd [N*196, 96]",
        5.0 * el,
        time(|| bn_train_forward(x.view(), g.view(), bta.view(), 1e-5)),
    );
    report(
        "bn train bwd [N*196, 96]",
        8.0 * el,
        time(|| bn_train_backward(&cache, g.view(), dy.view())),
    );
    report(
        "h-swish fwd [N*196, 96]",
        4.0 * el,
        time(|| act_forward(x.view(), Act::HSwish)),
    );
    report(
        "h-swish bwd [N*196, 96]",
        4.0 * el,
        time(|| act_backward(x.view(), Act::HSwish, dy.view())),
    );
}
