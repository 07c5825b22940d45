//! Release-mode timing of the hot primitives at the supernet's shapes (no assertions).
//! Run: `cargo test -p supernet-train --release layers::timing -- --ignored --nocapture`.
//! Reports this thread's CPU time per call (from `/proc/thread-self/schedstat` where
//! available, so that other processes on a shared machine distort it less), else wall time.

use std::hint::black_box;
use std::time::Instant;

use ndarray::Array2;

use super::*;
use crate::layers::gradcheck::randn;
use crate::rng::Rng;

/// Nanoseconds this thread has run on a CPU, if the kernel tells.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Runs `f` repeatedly for at least 0.3 s of wall time and prints the mean per call.
fn time<T>(label: &str, mut f: impl FnMut() -> T) {
    black_box(f());
    let cpu0 = thread_cpu_ns();
    let t = Instant::now();
    let mut reps = 0usize;
    while reps < 3 || t.elapsed().as_secs_f64() < 0.3 {
        black_box(f());
        reps += 1;
    }
    let wall = t.elapsed().as_secs_f64() * 1e6 / reps as f64;
    let cpu = thread_cpu_ns()
        .zip(cpu0)
        .map(|(b, a)| (b - a) as f64 / 1e3 / reps as f64);
    match cpu {
        Some(cpu) => println!("{label:<52} {cpu:>10.1} us cpu {wall:>10.1} us wall"),
        None => println!("{label:<52} {wall:>10.1} us wall"),
    }
}

#[test]
#[ignore]
fn timing() {
    let mut rng = Rng::new(99);
    let n = 32;
    for &(h, c, k, stride) in &[
        (14usize, 96usize, 3usize, 1usize),
        (14, 96, 5, 1),
        (14, 96, 7, 1),
        (14, 96, 7, 2),
        (7, 144, 7, 1),
        (7, 144, 5, 2),
        (4, 240, 7, 1),
        (2, 672, 7, 1),
        (2, 672, 7, 2),
        (1, 960, 7, 1),
    ] {
        let d = Dims::new(n, h, h);
        let x = randn(&mut rng, d.pixels(), c);
        let f = randn(&mut rng, k * k, c);
        let od = d.conv_out(k, stride);
        let dy = randn(&mut rng, od.pixels(), c);
        let tag = format!("N{n} {h}x{h}x{c} k{k} s{stride}");
        time(&format!("depthwise fwd {tag}"), || {
            depthwise_forward(x.view(), d, f.view(), k, stride)
        });
        time(&format!("depthwise bwd {tag}"), || {
            depthwise_backward(x.view(), d, f.view(), k, stride, dy.view())
        });
    }
    let p = n * 196;
    let x = randn(&mut rng, p, 16);
    let w_wide = randn(&mut rng, 144, 24);
    let wv = w_wide.slice(ndarray::s![..96, ..16]);
    let dy = randn(&mut rng, p, 96);
    time("pointwise fwd [N*196,16]x[96,16]^T (strided w)", || {
        pointwise_forward(x.view(), wv)
    });
    time("pointwise bwd [N*196,16]x[96,16]^T (strided w)", || {
        pointwise_backward(x.view(), wv, dy.view())
    });
    let xb = randn(&mut rng, p, 96);
    let g = Array2::<f32>::ones((1, 96)).row(0).to_owned();
    let b = Array2::<f32>::zeros((1, 96)).row(0).to_owned();
    let (_, cache) = bn_train_forward(xb.view(), g.view(), b.view(), 1e-5);
    time("bn train fwd [N*196, 96]", || {
        bn_train_forward(xb.view(), g.view(), b.view(), 1e-5)
    });
    time("bn train bwd [N*196, 96]", || {
        bn_train_backward(&cache, g.view(), dy.view())
    });
    time("bn eval fwd [N*196, 96]", || {
        bn_eval_forward(xb.view(), g.view(), b.view())
    });
    time("hswish fwd [N*196, 96]", || {
        act_forward(xb.view(), Act::HSwish)
    });
    time("hswish bwd [N*196, 96]", || {
        act_backward(xb.view(), Act::HSwish, dy.view())
    });
    let mut buf = xb.clone();
    time("copy + hswish fwd in place [N*196, 96]", || {
        buf.assign(&xb);
        act_forward_inplace(&mut buf, Act::HSwish)
    });
    let d = Dims::new(n, 14, 14);
    let wr = randn(&mut rng, 24, 96);
    let br = randn(&mut rng, 24, 1).column(0).to_owned();
    let we = randn(&mut rng, 96, 24);
    let be = randn(&mut rng, 96, 1).column(0).to_owned();
    let (_, sc) = se_forward(xb.view(), d, wr.view(), br.view(), we.view(), be.view());
    time("se fwd N 14x14x96 hid 24", || {
        se_forward(xb.view(), d, wr.view(), br.view(), we.view(), be.view())
    });
    time("se bwd N 14x14x96 hid 24", || {
        se_backward(
            xb.view(),
            d,
            wr.view(),
            br.view(),
            we.view(),
            be.view(),
            &sc,
            dy.view(),
        )
    });
    let ds = Dims::new(n, 28, 28);
    let xs = randn(&mut rng, ds.pixels(), 1);
    let ws = randn(&mut rng, 16, 9);
    let (ys, _) = conv_forward(xs.view(), ds, ws.view(), 3, 2);
    time("im2col N 28x28x1 k3 s2", || im2col(xs.view(), ds, 3, 2));
    let xs3 = randn(&mut rng, ds.pixels(), 3);
    let ws3 = randn(&mut rng, 16, 27);
    time("stem conv fwd N 28x28x3 -> 14x14x16", || {
        conv_forward(xs3.view(), ds, ws3.view(), 3, 2)
    });
    time("stem conv fwd N 28x28x1 -> 14x14x16", || {
        conv_forward(xs.view(), ds, ws.view(), 3, 2)
    });
    time("stem conv bwd weight", || {
        conv_backward_weight(xs.view(), ds, 16, 3, 2, ys.view())
    });
    let w7 = randn(&mut rng, 49, 96);
    let m = randn(&mut rng, 25, 25);
    time("kernel transform 7->5 C=96", || {
        kernel_transform_forward(w7.view(), 7, m.view(), 5)
    });
}
