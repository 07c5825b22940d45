//! Depthwise `k x k` convolution (padding `k/2`, stride 1 or 2) and the OFA elastic-kernel
//! transformation.
//!
//! The depthwise loops run over output pixels and the taps that land inside the image (the
//! padding is never materialised); the innermost loop is over the channels of one pixel,
//! i.e. over contiguous slices of equal length, which the compiler vectorises without
//! bounds checks.

use ndarray::{Array2, ArrayView2, s};

use super::{Dims, matmul, tap_range};

/// One gather-multiply-accumulate job: for every channel `j`,
/// `out[j] (+)= sum over (ao, bo) in pairs of a[ao + j] * b[bo + j]`.
///
/// Channels go in register-sized blocks (`BIG`, then 32, 16, 8 and 1 lanes): each block's
/// accumulators stay in registers across all pairs, so a pair costs two loads per vector and
/// no store. Per channel the pairs are summed in list order, whatever the block width, so the
/// result does not depend on the instruction set the kernel was compiled for.
#[inline(always)]
fn gather_mac<const BIG: usize>(
    out: &mut [f32],
    a: &[f32],
    b: &[f32],
    pairs: &[(usize, usize)],
    add: bool,
) {
    let c = out.len();
    let mut j = 0;
    j = gather_block::<BIG>(j, out, a, b, pairs, add);
    j = gather_block::<32>(j, out, a, b, pairs, add);
    j = gather_block::<16>(j, out, a, b, pairs, add);
    j = gather_block::<8>(j, out, a, b, pairs, add);
    j = gather_block::<1>(j, out, a, b, pairs, add);
    debug_assert_eq!(j, c);
}

#[inline(always)]
fn gather_block<const B: usize>(
    mut j: usize,
    out: &mut [f32],
    a: &[f32],
    b: &[f32],
    pairs: &[(usize, usize)],
    add: bool,
) -> usize {
    while j + B <= out.len() {
        let mut acc = [0f32; B];
        for &(ao, bo) in pairs {
            let av: &[f32; B] = a[ao + j..ao + j + B].try_into().unwrap();
            let bv: &[f32; B] = b[bo + j..bo + j + B].try_into().unwrap();
            for i in 0..B {
                acc[i] += av[i] * bv[i];
            }
        }
        let o: &mut [f32; B] = (&mut out[j..j + B]).try_into().unwrap();
        if add {
            for i in 0..B {
                o[i] += acc[i];
            }
        } else {
            *o = acc;
        }
        j += B;
    }
    j
}

/// Defines `fn $name(args)` that runs `$kernel` (an `#[inline(always)]` kernel generic over
/// the block width) compiled for AVX2 when the CPU has it (std caches the check), else for
/// the baseline instruction set. AVX2 only widens the vectors (no FMA contraction), so both
/// paths give bit-identical results.
macro_rules! simd_kernel {
    ($name:ident => $kernel:ident($($arg:ident: $ty:ty),* $(,)?)) => {
        fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                unsafe fn wide($($arg: $ty),*) {
                    $kernel::<64>($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: this CPU supports AVX2 (checked just above).
                    unsafe { wide($($arg),*) };
                    return;
                }
            }
            $kernel::<32>($($arg),*)
        }
    };
}

simd_kernel!(dw_forward_run => dw_forward_kernel(g: DwGeom, x: &[f32], f: &[f32], y: &mut [f32]));
simd_kernel!(dw_backward_input_run => dw_backward_input_kernel(
    g: DwGeom, dy: &[f32], f: &[f32], dx: &mut [f32]
));
simd_kernel!(dw_backward_filter_run => dw_backward_filter_kernel(
    g: DwGeom, dy: &[f32], x: &[f32], df: &mut [f32]
));

/// Geometry shared by the depthwise kernels.
#[derive(Clone, Copy)]
struct DwGeom {
    d: Dims,
    od: Dims,
    c: usize,
    k: usize,
    stride: usize,
}

impl DwGeom {
    fn new(d: Dims, c: usize, k: usize, stride: usize) -> Self {
        DwGeom {
            d,
            od: d.conv_out(k, stride),
            c,
            k,
            stride,
        }
    }
}

/// `y[o] = sum over taps t of x[in(o, t)] * f[t]`, per image.
#[inline(always)]
fn dw_forward_kernel<const BIG: usize>(g: DwGeom, x: &[f32], f: &[f32], y: &mut [f32]) {
    let DwGeom {
        d,
        od,
        c,
        k,
        stride,
    } = g;
    let pad = k / 2;
    let mut pairs: Vec<(usize, usize)> = Vec::with_capacity(k * k);
    for (xin, yimg) in x
        .chunks_exact(d.per_image() * c)
        .zip(y.chunks_exact_mut(od.per_image() * c))
    {
        for oy in 0..od.h {
            let (ky0, ky1) = tap_range(oy, stride, k, d.h);
            for ox in 0..od.w {
                let (kx0, kx1) = tap_range(ox, stride, k, d.w);
                pairs.clear();
                for ky in ky0..ky1 {
                    let iy = oy * stride + ky - pad;
                    for kx in kx0..kx1 {
                        let ix = ox * stride + kx - pad;
                        pairs.push(((iy * d.w + ix) * c, (ky * k + kx) * c));
                    }
                }
                let orow = &mut yimg[(oy * od.w + ox) * c..][..c];
                gather_mac::<BIG>(orow, xin, f, &pairs, false);
            }
        }
    }
}

/// `dx[i] = sum over (tap t, output o) with in(o, t) = i of dy[o] * f[t]`, per image.
#[inline(always)]
fn dw_backward_input_kernel<const BIG: usize>(g: DwGeom, dy: &[f32], f: &[f32], dx: &mut [f32]) {
    let DwGeom {
        d,
        od,
        c,
        k,
        stride,
    } = g;
    let pad = k / 2;
    // For each input coordinate, the (tap, output) pairs along one axis that reach it.
    let axis_taps = |len: usize, olen: usize| -> Vec<Vec<(usize, usize)>> {
        (0..len)
            .map(|i| {
                (0..k)
                    .filter_map(|t| {
                        let num = (i + pad).checked_sub(t)?;
                        (num % stride == 0 && num / stride < olen).then_some((t, num / stride))
                    })
                    .collect()
            })
            .collect()
    };
    let ytaps = axis_taps(d.h, od.h);
    let xtaps = axis_taps(d.w, od.w);
    let mut pairs: Vec<(usize, usize)> = Vec::with_capacity(k * k);
    for (dyimg, dximg) in dy
        .chunks_exact(od.per_image() * c)
        .zip(dx.chunks_exact_mut(d.per_image() * c))
    {
        for (iy, yt) in ytaps.iter().enumerate() {
            for (ix, xt) in xtaps.iter().enumerate() {
                pairs.clear();
                for &(ky, oy) in yt {
                    for &(kx, ox) in xt {
                        pairs.push(((oy * od.w + ox) * c, (ky * k + kx) * c));
                    }
                }
                let drow = &mut dximg[(iy * d.w + ix) * c..][..c];
                gather_mac::<BIG>(drow, dyimg, f, &pairs, false);
            }
        }
    }
}

/// `df[t] += sum over outputs o of dy[o] * x[in(o, t)]`, per image (per-image partial sums
/// stay in registers and are added to `df` once per image and tap).
#[inline(always)]
fn dw_backward_filter_kernel<const BIG: usize>(g: DwGeom, dy: &[f32], x: &[f32], df: &mut [f32]) {
    let DwGeom {
        d,
        od,
        c,
        k,
        stride,
    } = g;
    let pad = k / 2;
    // For each tap along one axis, the outputs whose input `o*stride + t - pad` is inside.
    let axis_outs = |len: usize, olen: usize| -> Vec<(usize, usize)> {
        (0..k)
            .map(|t| {
                let lo = (pad.saturating_sub(t)).div_ceil(stride);
                // o*stride + t - pad <= len - 1  <=>  o <= (len - 1 + pad - t) / stride
                let hi = match (len - 1 + pad).checked_sub(t) {
                    Some(v) => (v / stride + 1).min(olen),
                    None => 0,
                };
                (lo, hi.max(lo))
            })
            .collect()
    };
    let yr = axis_outs(d.h, od.h);
    let xr = axis_outs(d.w, od.w);
    let mut pairs: Vec<(usize, usize)> = Vec::with_capacity(od.per_image());
    for (dyimg, xin) in dy
        .chunks_exact(od.per_image() * c)
        .zip(x.chunks_exact(d.per_image() * c))
    {
        for ky in 0..k {
            let (oy0, oy1) = yr[ky];
            for kx in 0..k {
                let (ox0, ox1) = xr[kx];
                if oy0 == oy1 || ox0 == ox1 {
                    continue;
                }
                pairs.clear();
                for oy in oy0..oy1 {
                    let iy = oy * stride + ky - pad;
                    for ox in ox0..ox1 {
                        let ix = ox * stride + kx - pad;
                        pairs.push(((oy * od.w + ox) * c, (iy * d.w + ix) * c));
                    }
                }
                let frow = &mut df[(ky * k + kx) * c..][..c];
                gather_mac::<BIG>(frow, dyimg, xin, &pairs, true);
            }
        }
    }
}

fn check_depthwise_shapes(
    x: &ArrayView2<f32>,
    d: Dims,
    filt: &ArrayView2<f32>,
    k: usize,
    stride: usize,
) {
    assert_eq!(
        x.nrows(),
        d.pixels(),
        "depthwise: x has {} rows, dims {d:?} need {}",
        x.nrows(),
        d.pixels()
    );
    assert_eq!(
        filt.dim(),
        (k * k, x.ncols()),
        "depthwise: filter must be [k*k, C] = [{}, {}]",
        k * k,
        x.ncols()
    );
    assert!(x.ncols() > 0, "depthwise: no channels");
    assert!(
        k >= 1 && stride >= 1,
        "depthwise: k and stride must be >= 1"
    );
}

/// Depthwise conv: `x` `[N*H*W, C]`, `filt` `[k*k, C]` (row `ky*k + kx`), padding `k/2`.
/// Returns `y` `[N*Ho*Wo, C]` and its sizes.
pub fn depthwise_forward(
    x: ArrayView2<f32>,
    d: Dims,
    filt: ArrayView2<f32>,
    k: usize,
    stride: usize,
) -> (Array2<f32>, Dims) {
    check_depthwise_shapes(&x, d, &filt, k, stride);
    let g = DwGeom::new(d, x.ncols(), k, stride);
    let xs = x.as_standard_layout();
    let xsl = xs.as_slice().expect("standard layout");
    let fs = filt.as_standard_layout();
    let fsl = fs.as_slice().expect("standard layout");
    let mut y = Array2::<f32>::zeros((g.od.pixels(), g.c));
    let ysl = y.as_slice_mut().unwrap();
    dw_forward_run(g, xsl, fsl, ysl);
    (y, g.od)
}

/// Gradients of [`depthwise_forward`]: `(dx [N*H*W, C], dfilt [k*k, C])`.
pub fn depthwise_backward(
    x: ArrayView2<f32>,
    d: Dims,
    filt: ArrayView2<f32>,
    k: usize,
    stride: usize,
    dy: ArrayView2<f32>,
) -> (Array2<f32>, Array2<f32>) {
    check_depthwise_shapes(&x, d, &filt, k, stride);
    let g = DwGeom::new(d, x.ncols(), k, stride);
    assert_eq!(
        dy.dim(),
        (g.od.pixels(), g.c),
        "depthwise_backward: dy must be [N*Ho*Wo, C]"
    );
    let xs = x.as_standard_layout();
    let xsl = xs.as_slice().expect("standard layout");
    let fs = filt.as_standard_layout();
    let fsl = fs.as_slice().expect("standard layout");
    let dys = dy.as_standard_layout();
    let dysl = dys.as_slice().expect("standard layout");
    let mut dx = Array2::<f32>::zeros((d.pixels(), g.c));
    let mut dfilt = Array2::<f32>::zeros((k * k, g.c));
    let dxsl = dx.as_slice_mut().unwrap();
    let dfsl = dfilt.as_slice_mut().unwrap();
    dw_backward_input_run(g, dysl, fsl, dxsl);
    dw_backward_filter_run(g, dysl, xsl, dfsl);
    (dx, dfilt)
}

fn centre_crop(w_big: &ArrayView2<f32>, big_k: usize, k: usize) -> Array2<f32> {
    assert_eq!(
        w_big.nrows(),
        big_k * big_k,
        "kernel_transform: w_big must have K*K = {} rows",
        big_k * big_k
    );
    assert!(k <= big_k, "kernel_transform: k {k} > K {big_k}");
    let start = big_k / 2 - k / 2;
    let c = w_big.ncols();
    let mut v = Array2::<f32>::zeros((k * k, c));
    for ky in 0..k {
        for kx in 0..k {
            v.row_mut(ky * k + kx)
                .assign(&w_big.row((ky + start) * big_k + kx + start));
        }
    }
    v
}

/// OFA elastic-kernel transformation: the centre `k x k` crop `V` `[k*k, C]` of the
/// `[K*K, C]` filter `w_big` (offset `K/2 - k/2` in both axes), mapped by the
/// `[k*k, k*k]` matrix `m`: result `m @ V` `[k*k, C]`.
pub fn kernel_transform_forward(
    w_big: ArrayView2<f32>,
    big_k: usize,
    m: ArrayView2<f32>,
    k: usize,
) -> Array2<f32> {
    assert_eq!(
        m.dim(),
        (k * k, k * k),
        "kernel_transform: m must be [k*k, k*k]"
    );
    let v = centre_crop(&w_big, big_k, k);
    matmul(m, v.view())
}

/// Gradients of [`kernel_transform_forward`]: `(d_w_big [K*K, C]` (zero outside the crop),
/// `d_m [k*k, k*k])`.
pub fn kernel_transform_backward(
    w_big: ArrayView2<f32>,
    big_k: usize,
    m: ArrayView2<f32>,
    k: usize,
    d_out: ArrayView2<f32>,
) -> (Array2<f32>, Array2<f32>) {
    assert_eq!(
        m.dim(),
        (k * k, k * k),
        "kernel_transform: m must be [k*k, k*k]"
    );
    assert_eq!(
        d_out.dim(),
        (k * k, w_big.ncols()),
        "kernel_transform_backward: d_out must be [k*k, C]"
    );
    let v = centre_crop(&w_big, big_k, k);
    let dv = matmul(m.t(), d_out);
    let dm = matmul(d_out, v.t());
    let start = big_k / 2 - k / 2;
    let mut dw = Array2::<f32>::zeros(w_big.raw_dim());
    for ky in 0..k {
        dw.slice_mut(s![
            (ky + start) * big_k + start..(ky + start) * big_k + start + k,
            ..
        ])
        .assign(&dv.slice(s![ky * k..(ky + 1) * k, ..]));
    }
    (dw, dm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::gradcheck::{check_grad, dot_loss, randn};
    use crate::rng::Rng;

    fn naive_depthwise(
        x: &Array2<f32>,
        d: Dims,
        f: &Array2<f32>,
        k: usize,
        stride: usize,
    ) -> Array2<f32> {
        let c = x.ncols();
        let pad = (k / 2) as isize;
        let od = d.conv_out(k, stride);
        let mut y = Array2::zeros((od.pixels(), c));
        for n in 0..d.n {
            for oy in 0..od.h {
                for ox in 0..od.w {
                    for ch in 0..c {
                        let mut acc = 0.0f64;
                        for ky in 0..k {
                            for kx in 0..k {
                                let iy = (oy * stride + ky) as isize - pad;
                                let ix = (ox * stride + kx) as isize - pad;
                                if iy >= 0 && ix >= 0 && iy < d.h as isize && ix < d.w as isize {
                                    let row = (n * d.h + iy as usize) * d.w + ix as usize;
                                    acc += x[[row, ch]] as f64 * f[[ky * k + kx, ch]] as f64;
                                }
                            }
                        }
                        y[[(n * od.h + oy) * od.w + ox, ch]] = acc as f32;
                    }
                }
            }
        }
        y
    }

    #[test]
    fn output_sizes() {
        let d = Dims::new(1, 14, 14);
        assert_eq!(d.conv_out(3, 1), Dims::new(1, 14, 14));
        assert_eq!(d.conv_out(7, 2), Dims::new(1, 7, 7));
        assert_eq!(Dims::new(1, 7, 7).conv_out(5, 2), Dims::new(1, 4, 4));
        assert_eq!(Dims::new(1, 2, 2).conv_out(7, 2), Dims::new(1, 1, 1));
        assert_eq!(Dims::new(1, 1, 1).conv_out(7, 1), Dims::new(1, 1, 1));
    }

    #[test]
    fn matches_naive() {
        let mut rng = Rng::new(40);
        for k in [3, 5, 7] {
            for stride in [1, 2] {
                for (h, w) in [(7, 6), (8, 8), (1, 1), (2, 3), (14, 13)] {
                    let d = Dims::new(2, h, w);
                    let c = 11;
                    let x = randn(&mut rng, d.pixels(), c);
                    let f = randn(&mut rng, k * k, c);
                    let (y, od) = depthwise_forward(x.view(), d, f.view(), k, stride);
                    assert_eq!(od, d.conv_out(k, stride));
                    let yn = naive_depthwise(&x, d, &f, k, stride);
                    for (a, b) in y.iter().zip(yn.iter()) {
                        assert!((a - b).abs() < 1e-4, "k {k} s {stride} {h}x{w}: {a} vs {b}");
                    }
                }
            }
        }
    }

    #[test]
    fn gradcheck_all_kernels_strides_and_parities() {
        let mut rng = Rng::new(41);
        for k in [3, 5, 7] {
            for stride in [1, 2] {
                for (h, w) in [(5, 5), (6, 4)] {
                    let d = Dims::new(2, h, w);
                    let c = 3;
                    let od = d.conv_out(k, stride);
                    let x = randn(&mut rng, d.pixels(), c);
                    // Channel slice of a wider filter: a non-contiguous view.
                    let f_wide = randn(&mut rng, k * k, c + 2);
                    let r = randn(&mut rng, od.pixels(), c);
                    let loss = |x: &Array2<f32>, f: &Array2<f32>| {
                        let (y, _) =
                            depthwise_forward(x.view(), d, f.slice(s![.., ..c]), k, stride);
                        dot_loss(y.view(), r.view())
                    };
                    let (dx, df) = depthwise_backward(
                        x.view(),
                        d,
                        f_wide.slice(s![.., ..c]),
                        k,
                        stride,
                        r.view(),
                    );
                    assert_eq!(df.dim(), (k * k, c));
                    let mut df_wide = Array2::zeros(f_wide.raw_dim());
                    df_wide.slice_mut(s![.., ..c]).assign(&df);
                    let tag = format!("k {k} s {stride} {h}x{w}");
                    check_grad(&format!("depthwise dx {tag}"), &x, &dx, 1e-2, |x| {
                        loss(x, &f_wide)
                    });
                    check_grad(
                        &format!("depthwise dfilt {tag}"),
                        &f_wide,
                        &df_wide,
                        1e-2,
                        |f| loss(&x, f),
                    );
                }
            }
        }
    }

    #[test]
    fn kernel_transform_identity_is_centre_crop() {
        let mut rng = Rng::new(42);
        let c = 4;
        for (big_k, k) in [(7, 5), (5, 3), (7, 3), (5, 5)] {
            let w = randn(&mut rng, big_k * big_k, c);
            let eye = Array2::<f32>::eye(k * k);
            let out = kernel_transform_forward(w.view(), big_k, eye.view(), k);
            let start = big_k / 2 - k / 2;
            for ky in 0..k {
                for kx in 0..k {
                    assert_eq!(
                        out.row(ky * k + kx),
                        w.row((ky + start) * big_k + kx + start)
                    );
                }
            }
        }
    }

    #[test]
    fn kernel_transform_gradcheck() {
        let mut rng = Rng::new(43);
        for (big_k, k) in [(7, 5), (5, 3)] {
            let c = 3;
            // Channel slice of a wider filter.
            let w_wide = randn(&mut rng, big_k * big_k, c + 2);
            let m = randn(&mut rng, k * k, k * k);
            let r = randn(&mut rng, k * k, c);
            let loss = |w: &Array2<f32>, m: &Array2<f32>| {
                let out = kernel_transform_forward(w.slice(s![.., ..c]), big_k, m.view(), k);
                dot_loss(out.view(), r.view())
            };
            let (dw, dm) =
                kernel_transform_backward(w_wide.slice(s![.., ..c]), big_k, m.view(), k, r.view());
            let mut dw_wide = Array2::zeros(w_wide.raw_dim());
            dw_wide.slice_mut(s![.., ..c]).assign(&dw);
            check_grad(
                &format!("kt dw {big_k}->{k}"),
                &w_wide,
                &dw_wide,
                1e-2,
                |w| loss(w, &m),
            );
            check_grad(&format!("kt dm {big_k}->{k}"), &m, &dm, 1e-2, |m| {
                loss(&w_wide, m)
            });
        }
    }
}
