//! The elastic OFA MobileNetV3 supernet on ndarray: every parameter at its largest width,
//! the forward pass of any subnet (training mode with a tape for backward, or eval mode
//! with a folded BN set), the backward pass, and conversion to the artifact's tensors.
//!
//! Layouts are the artifact's (FORMAT.md 5.3); a subnet uses leading sub-blocks of each
//! tensor, exactly as the runtime does. Depthwise kernels smaller than the largest are
//! derived by the Once-for-All kernel transformation (centre crop, then a learned
//! `k*k x k*k` matrix per kernel-size step).

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, s};
use supernet_format::arch::{self, STEM_KERNEL, STEM_STRIDE, head_in, slot, stem_out};
use supernet_format::{Space, SubnetConfig};

use crate::layers::{self, Act, BnCache, Dims, SeCache};
use crate::rng::Rng;

/// BatchNorm epsilon (as the original code: `bn_param = (0.1, 1e-5)`).
pub const BN_EPS: f32 = 1e-5;
/// Running-statistics momentum.
pub const BN_MOMENTUM: f32 = 0.1;

/// One trainable tensor (vectors are stored as `[n, 1]`).
#[derive(Clone, Debug)]
pub struct Param {
    pub name: String,
    pub data: Array2<f32>,
    /// Weight decay applies (not to BN parameters and biases).
    pub decay: bool,
}

/// Running statistics of one BN layer, at its largest width.
#[derive(Clone, Debug)]
pub struct RunningBn {
    pub mean: Array1<f32>,
    pub var: Array1<f32>,
}

#[derive(Clone, Copy, Debug)]
struct BnId {
    gamma: usize,
    beta: usize,
    layer: usize,
}

#[derive(Clone, Debug)]
struct SlotIds {
    expand: usize,
    /// Depthwise weight of the largest kernel, `[K*K, max_mid]`.
    dw: usize,
    /// `transforms[i]` maps kernel `ks[i+1]` to `ks[i]`: `[ks[i]^2, ks[i]^2]`.
    transforms: Vec<usize>,
    /// SE reduce weight, reduce bias, expand weight, expand bias.
    se: Option<[usize; 4]>,
    project: usize,
    bn: [BnId; 3],
}

#[derive(Clone, Debug)]
struct Ids {
    stem: usize,
    bn_stem: BnId,
    first_dw: usize,
    bn_first_dw: BnId,
    first_proj: usize,
    bn_first_proj: BnId,
    slots: Vec<SlotIds>,
    final_expand: usize,
    bn_final: BnId,
    feature_mix: usize,
    cls_w: usize,
    cls_b: usize,
}

/// The supernet: parameters, running BN statistics, and the space they belong to.
#[derive(Clone, Debug)]
pub struct Supernet {
    pub space: Space,
    /// Trainable tensors, named as in the original code's state dict.
    pub params: Vec<Param>,
    /// Running statistics per BN layer.
    pub running: Vec<RunningBn>,
    /// Module name of each BN layer (`running[i]` is `<bn_names[i]>.running_mean/var`).
    pub bn_names: Vec<String>,
    ids: Ids,
}

/// Gradients, shaped like [`Supernet::params`].
pub type Grads = Vec<Array2<f32>>;

/// How a forward pass treats BatchNorm.
#[derive(Clone, Copy, Debug)]
pub enum BnMode<'a> {
    /// Batch statistics; keep what backward needs if `tape`.
    Train { tape: bool },
    /// Folded scale/shift from a BN set packed for the config (FORMAT.md 5.5).
    Eval(&'a [f32]),
}

/// Batch statistics one BN layer saw: `(layer, mean, biased var, rows)`.
pub type BatchStat = (usize, Array1<f32>, Array1<f32>, usize);

/// What backward needs from a training-mode forward pass.
pub struct Tape {
    config: SubnetConfig,
    n: usize,
    stem: Option<ConvTape>,
    first: Option<FirstTape>,
    slots: Vec<Option<SlotTape>>,
    head: Option<HeadTape>,
}

struct ConvTape {
    x: Array2<f32>,
    bn: BnCache,
    pre: Array2<f32>,
}

struct FirstTape {
    dims: Dims,
    dw: ConvTape,
    proj_x: Array2<f32>,
    proj_bn: BnCache,
}

struct SlotTape {
    dims_in: Dims,
    mid: usize,
    k: usize,
    /// Inputs of each kernel-transformation step, in application order.
    chain: Vec<Array2<f32>>,
    filt: Array2<f32>,
    expand: ConvTape,
    dw: ConvTape,
    se: Option<(Array2<f32>, SeCache, usize)>,
    proj_x: Array2<f32>,
    proj_bn: BnCache,
}

struct HeadTape {
    dims: Dims,
    fe: ConvTape,
    pooled: Array2<f32>,
    fm_pre: Array2<f32>,
    fm_act: Array2<f32>,
}

fn to_act(a: supernet_format::Act) -> Act {
    match a {
        supernet_format::Act::Relu => Act::Relu,
        supernet_format::Act::HSwish => Act::HSwish,
    }
}

/// Forward-pass state: BN mode, BN-set cursor, collected batch statistics.
struct Fwd<'a> {
    net: &'a Supernet,
    mode: BnMode<'a>,
    pos: usize,
    stats: Vec<BatchStat>,
}

impl Fwd<'_> {
    fn tape(&self) -> bool {
        matches!(self.mode, BnMode::Train { tape: true })
    }

    /// BN on `x` with `c` channels; returns the output and (in train mode with tape) the cache.
    fn bn(&mut self, x: &Array2<f32>, id: BnId) -> (Array2<f32>, Option<BnCache>) {
        let c = x.ncols();
        match self.mode {
            BnMode::Train { tape } => {
                let g = self.net.p1(id.gamma, c);
                let b = self.net.p1(id.beta, c);
                let (y, cache) = layers::bn_train_forward(x.view(), g, b, BN_EPS);
                self.stats
                    .push((id.layer, cache.mean.clone(), cache.var.clone(), x.nrows()));
                (y, tape.then_some(cache))
            }
            BnMode::Eval(set) => {
                let sc = ArrayView1::from(&set[self.pos..self.pos + c]);
                let sh = ArrayView1::from(&set[self.pos + c..self.pos + 2 * c]);
                self.pos += 2 * c;
                (layers::bn_eval_forward(x.view(), sc, sh), None)
            }
        }
    }

    /// conv output -> BN -> activation, keeping a tape entry if asked.
    fn bn_act(
        &mut self,
        x_in: Array2<f32>,
        conv_out: Array2<f32>,
        id: BnId,
        act: Act,
    ) -> (Array2<f32>, Option<ConvTape>) {
        let (pre, cache) = self.bn(&conv_out, id);
        let y = layers::act_forward(pre.view(), act);
        let t = cache.map(|bn| ConvTape { x: x_in, bn, pre });
        (y, t)
    }
}

impl Supernet {
    /// A freshly initialised supernet (He fan-out normal for convolutions, uniform for the
    /// classifier, BN gamma 1 and beta 0, kernel transformations identity), as the original
    /// code initialises it.
    pub fn new(space: &Space, rng: &mut Rng) -> Supernet {
        let mut params: Vec<Param> = vec![];
        let mut running: Vec<RunningBn> = vec![];
        let mut add = |name: String, data: Array2<f32>, decay: bool| {
            params.push(Param { name, data, decay });
            params.len() - 1
        };
        let he = |rows: usize, cols: usize, fan_out: usize, rng: &mut Rng| {
            let std = (2.0 / fan_out as f32).sqrt();
            Array2::from_shape_fn((rows, cols), |_| rng.normal() * std)
        };
        // BN modules are named as in the original code: `<module>.weight`, `.bias`,
        // `.running_mean`, `.running_var` (dynamic blocks nest one more `.bn`).
        let mut bn_names: Vec<String> = vec![];
        let mut bn =
            |name: &str, c: usize, add: &mut dyn FnMut(String, Array2<f32>, bool) -> usize| {
                let gamma = add(format!("{name}.weight"), Array2::ones((c, 1)), false);
                let beta = add(format!("{name}.bias"), Array2::zeros((c, 1)), false);
                let layer = bn_names.len();
                bn_names.push(name.to_string());
                BnId { gamma, beta, layer }
            };
        let sc = space.stem_channels as usize;
        let fc = space.first_block_channels as usize;
        let cin = space.in_channels as usize;
        let k0 = STEM_KERNEL as usize;
        let stem = add(
            "first_conv.conv.weight".into(),
            he(sc, k0 * k0 * cin, k0 * k0 * sc, rng),
            true,
        );
        let bn_stem = bn("first_conv.bn", sc, &mut add);
        let first_dw = add(
            "blocks.0.conv.depth_conv.conv.weight".into(),
            he(k0 * k0, sc, k0 * k0 * sc, rng),
            true,
        );
        let bn_first_dw = bn("blocks.0.conv.depth_conv.bn", sc, &mut add);
        let first_proj = add(
            "blocks.0.conv.point_linear.conv.weight".into(),
            he(fc, sc, fc, rng),
            true,
        );
        let bn_first_proj = bn("blocks.0.conv.point_linear.bn", fc, &mut add);
        let ks = space.ks.as_slice();
        let big_k = space.ks.max() as usize;
        let mut slots = vec![];
        for i in 0..space.n_slots() {
            let s = slot(space, i);
            let (mm, ci, co) = (s.max_mid as usize, s.cin as usize, s.cout as usize);
            let pre = format!("blocks.{}.conv", i + 1);
            let expand = add(
                format!("{pre}.inverted_bottleneck.conv.conv.weight"),
                he(mm, ci, mm, rng),
                true,
            );
            let bn_e = bn(&format!("{pre}.inverted_bottleneck.bn.bn"), mm, &mut add);
            let dw = add(
                format!("{pre}.depth_conv.conv.conv.weight"),
                he(big_k * big_k, mm, big_k * big_k * mm, rng),
                true,
            );
            let transforms = (0..ks.len() - 1)
                .map(|j| {
                    let small = ks[j] as usize;
                    add(
                        format!("{pre}.depth_conv.conv.{}to{}_matrix", ks[j + 1], ks[j]),
                        Array2::eye(small * small),
                        false,
                    )
                })
                .collect();
            let bn_d = bn(&format!("{pre}.depth_conv.bn.bn"), mm, &mut add);
            let se = s.se.then(|| {
                let h = s.max_hidden as usize;
                [
                    add(
                        format!("{pre}.depth_conv.se.fc.reduce.weight"),
                        he(h, mm, h, rng),
                        true,
                    ),
                    add(
                        format!("{pre}.depth_conv.se.fc.reduce.bias"),
                        Array2::zeros((h, 1)),
                        false,
                    ),
                    add(
                        format!("{pre}.depth_conv.se.fc.expand.weight"),
                        he(mm, h, mm, rng),
                        true,
                    ),
                    add(
                        format!("{pre}.depth_conv.se.fc.expand.bias"),
                        Array2::zeros((mm, 1)),
                        false,
                    ),
                ]
            });
            let project = add(
                format!("{pre}.point_linear.conv.conv.weight"),
                he(co, mm, co, rng),
                true,
            );
            let bn_p = bn(&format!("{pre}.point_linear.bn.bn"), co, &mut add);
            slots.push(SlotIds {
                expand,
                dw,
                transforms,
                se,
                project,
                bn: [bn_e, bn_d, bn_p],
            });
        }
        let last_w = space.stage(space.n_stages - 1).width as usize;
        let fe = space.final_expand_channels as usize;
        let fm = space.feature_mix_channels as usize;
        let classes = space.classes as usize;
        let final_expand = add(
            "final_expand_layer.conv.weight".into(),
            he(fe, last_w, fe, rng),
            true,
        );
        let bn_final = bn("final_expand_layer.bn", fe, &mut add);
        let feature_mix = add(
            "feature_mix_layer.conv.weight".into(),
            he(fm, fe, fm, rng),
            true,
        );
        let bound = 1.0 / (fm as f32).sqrt();
        let cls_w = add(
            "classifier.linear.weight".into(),
            Array2::from_shape_fn((classes, fm), |_| (rng.next_f32() * 2.0 - 1.0) * bound),
            true,
        );
        let cls_b = add(
            "classifier.linear.bias".into(),
            Array2::zeros((classes, 1)),
            false,
        );
        let ids = Ids {
            stem,
            bn_stem,
            first_dw,
            bn_first_dw,
            first_proj,
            bn_first_proj,
            slots,
            final_expand,
            bn_final,
            feature_mix,
            cls_w,
            cls_b,
        };
        // BN layers in creation order have increasing `layer` ids; size them.
        let mut sizes = vec![0usize; bn_names.len()];
        let mut note = |id: BnId| sizes[id.layer] = params[id.gamma].data.nrows();
        note(ids.bn_stem);
        note(ids.bn_first_dw);
        note(ids.bn_first_proj);
        for s in &ids.slots {
            for b in s.bn {
                note(b);
            }
        }
        note(ids.bn_final);
        for c in sizes {
            running.push(RunningBn {
                mean: Array1::zeros(c),
                var: Array1::ones(c),
            });
        }
        Supernet {
            space: *space,
            params,
            running,
            bn_names,
            ids,
        }
    }

    /// Zero gradients shaped like the parameters.
    pub fn zero_grads(&self) -> Grads {
        self.params
            .iter()
            .map(|p| Array2::zeros(p.data.raw_dim()))
            .collect()
    }

    /// Number of trainable values.
    pub fn num_params(&self) -> usize {
        self.params.iter().map(|p| p.data.len()).sum()
    }

    fn p2(&self, id: usize, rows: usize, cols: usize) -> ArrayView2<'_, f32> {
        self.params[id].data.slice(s![..rows, ..cols])
    }

    fn p1(&self, id: usize, n: usize) -> ArrayView1<'_, f32> {
        self.params[id].data.slice(s![..n, 0])
    }

    fn full(&self, id: usize) -> ArrayView2<'_, f32> {
        self.params[id].data.view()
    }

    /// The depthwise filter of slot `i` for kernel `k` over its first `mid` channels, and
    /// the inputs of each transformation step (for backward).
    fn slot_filter(&self, i: usize, k: usize, mid: usize) -> (Array2<f32>, Vec<Array2<f32>>) {
        let ids = &self.ids.slots[i];
        let ks = self.space.ks.as_slice();
        let mut f = self.params[ids.dw].data.slice(s![.., ..mid]).to_owned();
        let mut chain = vec![];
        let target = self
            .space
            .ks
            .index_of(k as u8)
            .expect("kernel size in the space");
        for j in (target..ks.len() - 1).rev() {
            let (src, dst) = (ks[j + 1] as usize, ks[j] as usize);
            let next =
                layers::kernel_transform_forward(f.view(), src, self.full(ids.transforms[j]), dst);
            chain.push(std::mem::replace(&mut f, next));
        }
        (f, chain)
    }

    /// The depthwise filter of slot `i` for kernel `k` at full width `[k*k, max_mid]`, as
    /// the artifact stores it.
    pub fn baked_filter(&self, i: usize, k: usize) -> Array2<f32> {
        let mm = slot(&self.space, i).max_mid as usize;
        self.slot_filter(i, k, mm).0
    }

    /// Forward pass of `config` on `x` (NHWC `[N*R*R, in_channels]`). Returns the logits
    /// `[N, classes]`, the tape (train mode with `tape: true`) and the BN batch statistics
    /// (train mode).
    pub fn forward(
        &self,
        x: Array2<f32>,
        n: usize,
        config: &SubnetConfig,
        mode: BnMode<'_>,
    ) -> (Array2<f32>, Option<Tape>, Vec<BatchStat>) {
        let sp = &self.space;
        let ids = &self.ids;
        let mut f = Fwd {
            net: self,
            mode,
            pos: 0,
            stats: vec![],
        };
        let keep = f.tape();
        let r = sp.resolution as usize;
        let d0 = Dims::new(n, r, r);
        let sc = sp.stem_channels as usize;
        let fc = sp.first_block_channels as usize;
        let k0 = STEM_KERNEL as usize;

        // Stem
        let (col, d1) = layers::im2col(x.view(), d0, k0, STEM_STRIDE as usize);
        let y = layers::conv_forward_from_col(col.view(), self.full(ids.stem));
        let (x1, stem_t) = f.bn_act(col, y, ids.bn_stem, Act::HSwish);
        debug_assert_eq!(d1.h, stem_out(sp) as usize);

        // First block
        let filt = self.full(ids.first_dw);
        let (y, _) = layers::depthwise_forward(x1.view(), d1, filt, k0, 1);
        let (dwa, dw_t) = f.bn_act(
            if keep {
                x1.clone()
            } else {
                Array2::zeros((0, 0))
            },
            y,
            ids.bn_first_dw,
            Act::Relu,
        );
        let y = layers::pointwise_forward(dwa.view(), self.full(ids.first_proj));
        let (mut out, proj_bn) = f.bn(&y, ids.bn_first_proj);
        if sc == fc {
            out += &x1;
        }
        let first_t = match (dw_t, proj_bn) {
            (Some(dw), Some(proj_bn)) => Some(FirstTape {
                dims: d1,
                dw,
                proj_x: dwa,
                proj_bn,
            }),
            _ => None,
        };
        let mut x = out;
        let mut dims = d1;

        // Stages
        let mut slot_tapes = Vec::with_capacity(sp.n_slots());
        for i in 0..sp.n_slots() {
            if !config.active(sp.max_depth, i) {
                slot_tapes.push(None);
                continue;
            }
            let s = slot(sp, i);
            let sid = &ids.slots[i];
            let mid = s.mid(config.e()[i]) as usize;
            let (cin, cout) = (s.cin as usize, s.cout as usize);
            let k = config.ks()[i] as usize;
            let act = to_act(s.act);
            let y = layers::pointwise_forward(x.view(), self.p2(sid.expand, mid, cin));
            let (ea, e_t) = f.bn_act(
                if keep {
                    x.clone()
                } else {
                    Array2::zeros((0, 0))
                },
                y,
                sid.bn[0],
                act,
            );
            let (filt, chain) = self.slot_filter(i, k, mid);
            let (y, dims_out) =
                layers::depthwise_forward(ea.view(), dims, filt.view(), k, s.stride as usize);
            let (mut da, d_t) = f.bn_act(ea, y, sid.bn[1], act);
            let mut se_t = None;
            if let Some(se) = sid.se {
                let hid = arch::se_hidden(mid as u32) as usize;
                let (y, cache) = layers::se_forward(
                    da.view(),
                    dims_out,
                    self.p2(se[0], hid, mid),
                    self.p1(se[1], hid),
                    self.p2(se[2], mid, hid),
                    self.p1(se[3], mid),
                );
                if keep {
                    se_t = Some((std::mem::replace(&mut da, y), cache, hid));
                } else {
                    da = y;
                }
            }
            let y = layers::pointwise_forward(da.view(), self.p2(sid.project, cout, mid));
            let (mut out, p_bn) = f.bn(&y, sid.bn[2]);
            if s.residual {
                out += &x;
            }
            let tape = match (e_t, d_t, p_bn) {
                (Some(expand), Some(dw), Some(proj_bn)) => Some(SlotTape {
                    dims_in: dims,
                    mid,
                    k,
                    chain,
                    filt,
                    expand,
                    dw,
                    se: se_t,
                    proj_x: da,
                    proj_bn,
                }),
                _ => None,
            };
            slot_tapes.push(tape);
            x = out;
            dims = dims_out;
        }
        debug_assert_eq!(dims.h, head_in(sp) as usize);

        // Head
        let fe = sp.final_expand_channels as usize;
        let y = layers::pointwise_forward(x.view(), self.full(ids.final_expand));
        let (fea, fe_t) = f.bn_act(x, y, ids.bn_final, Act::HSwish);
        let pooled = layers::global_avg_pool_forward(fea.view(), dims);
        debug_assert_eq!(pooled.ncols(), fe);
        let fm_pre = layers::pointwise_forward(pooled.view(), self.full(ids.feature_mix));
        let fm_act = layers::act_forward(fm_pre.view(), Act::HSwish);
        let logits = layers::linear_forward(
            fm_act.view(),
            self.full(ids.cls_w),
            Some(self.params[ids.cls_b].data.column(0)),
        );
        let stats = std::mem::take(&mut f.stats);
        let tape = keep.then(|| Tape {
            config: *config,
            n,
            stem: stem_t,
            first: first_t,
            slots: slot_tapes,
            head: fe_t.map(|fe| HeadTape {
                dims,
                fe,
                pooled,
                fm_pre,
                fm_act,
            }),
        });
        (logits, tape, stats)
    }

    /// Backward pass: adds the gradients of `sum(dlogits * logits)` to `grads`.
    pub fn backward(&self, tape: Tape, dlogits: Array2<f32>, grads: &mut Grads) {
        let sp = &self.space;
        let ids = &self.ids;
        let config = tape.config;
        let _ = tape.n;
        let add2 = |grads: &mut Grads, id: usize, d: &Array2<f32>| {
            let (r, c) = d.dim();
            let mut g = grads[id].slice_mut(s![..r, ..c]);
            g += d;
        };
        let add1 = |grads: &mut Grads, id: usize, d: &Array1<f32>| {
            let mut g = grads[id].slice_mut(s![..d.len(), 0]);
            g += d;
        };
        let bn_back = |grads: &mut Grads, id: BnId, cache: &BnCache, dy: ArrayView2<f32>| {
            let c = dy.ncols();
            let (dx, dg, db) = layers::bn_train_backward(cache, self.p1(id.gamma, c), dy);
            add1(grads, id.gamma, &dg);
            add1(grads, id.beta, &db);
            dx
        };

        // Head
        let head = tape.head.expect("tape without head");
        let (d_fm_act, dw, db) =
            layers::linear_backward(head.fm_act.view(), self.full(ids.cls_w), dlogits.view());
        add2(grads, ids.cls_w, &dw);
        add1(grads, ids.cls_b, &db);
        let d_fm_pre = layers::act_backward(head.fm_pre.view(), Act::HSwish, d_fm_act.view());
        let (d_pooled, dw) = layers::pointwise_backward(
            head.pooled.view(),
            self.full(ids.feature_mix),
            d_fm_pre.view(),
        );
        add2(grads, ids.feature_mix, &dw);
        let d_fea = layers::global_avg_pool_backward(head.dims, d_pooled.view());
        let d_pre = layers::act_backward(head.fe.pre.view(), Act::HSwish, d_fea.view());
        let d_y = bn_back(grads, ids.bn_final, &head.fe.bn, d_pre.view());
        let (mut dx, dw) =
            layers::pointwise_backward(head.fe.x.view(), self.full(ids.final_expand), d_y.view());
        add2(grads, ids.final_expand, &dw);

        // Stages, last to first
        for (i, t) in tape.slots.into_iter().enumerate().rev() {
            let Some(t) = t else { continue };
            debug_assert!(config.active(sp.max_depth, i));
            let s = slot(sp, i);
            let sid = &ids.slots[i];
            let (cin, cout, mid) = (s.cin as usize, s.cout as usize, t.mid);
            let act = to_act(s.act);
            let d_out = dx;
            let d_p = bn_back(grads, sid.bn[2], &t.proj_bn, d_out.view());
            let (d_se_out, dw) = layers::pointwise_backward(
                t.proj_x.view(),
                self.p2(sid.project, cout, mid),
                d_p.view(),
            );
            add2(grads, sid.project, &dw);
            let d_da = match (&t.se, sid.se) {
                (Some((se_in, cache, hid)), Some(se)) => {
                    let hid = *hid;
                    let g = layers::se_backward(
                        se_in.view(),
                        layers::Dims::new(tape.n, s.h_out as usize, s.h_out as usize),
                        self.p2(se[0], hid, mid),
                        self.p1(se[1], hid),
                        self.p2(se[2], mid, hid),
                        self.p1(se[3], mid),
                        cache,
                        d_se_out.view(),
                    );
                    add2(grads, se[0], &g.dw_r);
                    add1(grads, se[1], &g.db_r);
                    add2(grads, se[2], &g.dw_e);
                    add1(grads, se[3], &g.db_e);
                    g.dx
                }
                _ => d_se_out,
            };
            let d_dpre = layers::act_backward(t.dw.pre.view(), act, d_da.view());
            let d_dw = bn_back(grads, sid.bn[1], &t.dw.bn, d_dpre.view());
            let (d_ea, d_filt) = layers::depthwise_backward(
                t.dw.x.view(),
                t.dims_in,
                t.filt.view(),
                t.k,
                s.stride as usize,
                d_dw.view(),
            );
            // kernel transformation chain, undone last step first
            let ks = sp.ks.as_slice();
            let target = sp.ks.index_of(t.k as u8).expect("kernel in space");
            let mut d_f = d_filt;
            let steps: Vec<usize> = (target..ks.len() - 1).rev().collect();
            for (step, &j) in steps.iter().enumerate().rev() {
                let (src, dst) = (ks[j + 1] as usize, ks[j] as usize);
                let (d_in, d_m) = layers::kernel_transform_backward(
                    t.chain[step].view(),
                    src,
                    self.full(sid.transforms[j]),
                    dst,
                    d_f.view(),
                );
                add2(grads, sid.transforms[j], &d_m);
                d_f = d_in;
            }
            add2(grads, sid.dw, &d_f);
            let d_epre = layers::act_backward(t.expand.pre.view(), act, d_ea.view());
            let d_e = bn_back(grads, sid.bn[0], &t.expand.bn, d_epre.view());
            let (mut d_x, dw) = layers::pointwise_backward(
                t.expand.x.view(),
                self.p2(sid.expand, mid, cin),
                d_e.view(),
            );
            add2(grads, sid.expand, &dw);
            if s.residual {
                d_x += &d_out;
            }
            dx = d_x;
        }

        // First block
        let first = tape.first.expect("tape without first block");
        let d_out = dx;
        let d_p = bn_back(grads, ids.bn_first_proj, &first.proj_bn, d_out.view());
        let (d_dwa, dw) =
            layers::pointwise_backward(first.proj_x.view(), self.full(ids.first_proj), d_p.view());
        add2(grads, ids.first_proj, &dw);
        let d_pre = layers::act_backward(first.dw.pre.view(), Act::Relu, d_dwa.view());
        let d_y = bn_back(grads, ids.bn_first_dw, &first.dw.bn, d_pre.view());
        let k0 = STEM_KERNEL as usize;
        let (mut d_x1, d_filt) = layers::depthwise_backward(
            first.dw.x.view(),
            first.dims,
            self.full(ids.first_dw),
            k0,
            1,
            d_y.view(),
        );
        add2(grads, ids.first_dw, &d_filt);
        if sp.stem_channels == sp.first_block_channels {
            d_x1 += &d_out;
        }

        // Stem
        let stem = tape.stem.expect("tape without stem");
        let d_pre = layers::act_backward(stem.pre.view(), Act::HSwish, d_x1.view());
        let d_y = bn_back(grads, ids.bn_stem, &stem.bn, d_pre.view());
        let dw = layers::conv_backward_weight_from_col(stem.x.view(), d_y.view());
        add2(grads, ids.stem, &dw);
    }

    /// Calls `f(layer, c_active, bn_id)` for every BN layer `config` runs, in BN-set order.
    fn for_each_bn(&self, config: &SubnetConfig, mut f: impl FnMut(usize, usize, usize, usize)) {
        let sp = &self.space;
        let ids = &self.ids;
        let mut visit = |id: BnId, c: usize| f(id.layer, c, id.gamma, id.beta);
        visit(ids.bn_stem, sp.stem_channels as usize);
        visit(ids.bn_first_dw, sp.stem_channels as usize);
        visit(ids.bn_first_proj, sp.first_block_channels as usize);
        for i in 0..sp.n_slots() {
            if !config.active(sp.max_depth, i) {
                continue;
            }
            let s = slot(sp, i);
            let mid = s.mid(config.e()[i]) as usize;
            let b = ids.slots[i].bn;
            visit(b[0], mid);
            visit(b[1], mid);
            visit(b[2], s.cout as usize);
        }
        visit(ids.bn_final, sp.final_expand_channels as usize);
    }

    /// The BN set of `config` (FORMAT.md 5.5) folded from per-layer `(mean, var)`
    /// statistics (`stats[layer]`, at least as long as the active width).
    pub fn fold_bn(&self, config: &SubnetConfig, stats: &[RunningBn]) -> Vec<f32> {
        let mut out = Vec::with_capacity(arch::bn_set_len(&self.space, config));
        self.for_each_bn(config, |layer, c, gamma, beta| {
            let st = &stats[layer];
            let (scale, shift) = layers::bn_fold(
                self.p1(gamma, c),
                self.p1(beta, c),
                st.mean.slice(s![..c]),
                st.var.slice(s![..c]),
                BN_EPS,
            );
            out.extend(scale.iter());
            out.extend(shift.iter());
        });
        debug_assert_eq!(out.len(), arch::bn_set_len(&self.space, config));
        out
    }

    /// The BN set of `config` from the supernet's running statistics (what the original
    /// code uses for a subnet that was not recalibrated).
    pub fn running_bn_set(&self, config: &SubnetConfig) -> Vec<f32> {
        self.fold_bn(config, &self.running)
    }

    /// Folds batch statistics of one or more training-mode passes into running statistics
    /// with momentum (PyTorch semantics: unbiased variance into the running variance).
    pub fn update_running(&mut self, batches: &[Vec<BatchStat>]) {
        // Average each layer's statistics over the shards first.
        let mut sum_mean: Vec<Option<Array1<f32>>> = vec![None; self.running.len()];
        let mut sum_var: Vec<Option<Array1<f32>>> = vec![None; self.running.len()];
        let mut count = vec![0usize; self.running.len()];
        for stats in batches {
            for (layer, mean, var, rows) in stats {
                let unbiased = var * (*rows as f32 / (*rows as f32 - 1.0).max(1.0));
                match (&mut sum_mean[*layer], &mut sum_var[*layer]) {
                    (Some(m), Some(v)) => {
                        assert_eq!(m.len(), mean.len(), "one subnet per update");
                        *m += mean;
                        *v += &unbiased;
                    }
                    (m, v) => {
                        *m = Some(mean.clone());
                        *v = Some(unbiased);
                    }
                }
                count[*layer] += 1;
            }
        }
        for layer in 0..self.running.len() {
            let (Some(m), Some(v)) = (&sum_mean[layer], &sum_var[layer]) else {
                continue;
            };
            let k = count[layer] as f32;
            let c = m.len();
            let run = &mut self.running[layer];
            let mut rm = run.mean.slice_mut(s![..c]);
            rm *= 1.0 - BN_MOMENTUM;
            rm.scaled_add(BN_MOMENTUM / k, m);
            let mut rv = run.var.slice_mut(s![..c]);
            rv *= 1.0 - BN_MOMENTUM;
            rv.scaled_add(BN_MOMENTUM / k, v);
        }
    }

    /// The artifact's tensors (FORMAT.md 5.3, in directory order), with every kernel size's
    /// depthwise filter baked.
    pub fn artifact_tensors(&self) -> Vec<Vec<f32>> {
        let sp = &self.space;
        let ids = &self.ids;
        let flat = |a: ArrayView2<f32>| a.iter().copied().collect::<Vec<f32>>();
        let mut out = vec![
            flat(self.full(ids.stem)),
            flat(self.full(ids.first_dw)),
            flat(self.full(ids.first_proj)),
        ];
        for i in 0..sp.n_slots() {
            let sid = &ids.slots[i];
            out.push(flat(self.full(sid.expand)));
            for &k in sp.ks.as_slice() {
                out.push(flat(self.baked_filter(i, k as usize).view()));
            }
            if let Some(se) = sid.se {
                for id in se {
                    out.push(flat(self.full(id)));
                }
            }
            out.push(flat(self.full(sid.project)));
        }
        out.push(flat(self.full(ids.final_expand)));
        out.push(flat(self.full(ids.feature_mix)));
        out.push(flat(self.full(ids.cls_w)));
        out.push(flat(self.full(ids.cls_b)));
        out
    }

    /// Index of a parameter by its original (PyTorch) name.
    pub fn param_index(&self, name: &str) -> Option<usize> {
        self.params.iter().position(|p| p.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use supernet_format::space::{Choices, Stage};

    /// A tiny space with every feature: residual first block, SE and non-SE stages, strides
    /// 1 and 2, three kernel sizes (two transformation steps), two expand ratios.
    fn tiny_space() -> Space {
        Space::from_explicit(
            1,
            9,
            3,
            8,
            8,
            16,
            16,
            0.1,
            &[
                Stage {
                    width: 8,
                    stride: 1,
                    act: supernet_format::Act::Relu,
                    se: false,
                },
                Stage {
                    width: 16,
                    stride: 2,
                    act: supernet_format::Act::HSwish,
                    se: true,
                },
            ],
            2,
            Choices::new(&[3, 5, 7]).unwrap(),
            Choices::new(&[2, 3]).unwrap(),
            Choices::new(&[1, 2]).unwrap(),
        )
        .unwrap()
    }

    fn loss(net: &Supernet, x: &Array2<f32>, n: usize, cfg: &SubnetConfig, r: &Array2<f32>) -> f64 {
        let (y, _, _) = net.forward(x.clone(), n, cfg, BnMode::Train { tape: false });
        y.iter()
            .zip(r.iter())
            .map(|(a, b)| *a as f64 * *b as f64)
            .sum()
    }

    /// Whole-network gradient check: backward agrees with central finite differences for
    /// sampled entries of every parameter tensor, for a config that uses every kernel size.
    #[test]
    fn backward_matches_finite_differences() {
        let space = tiny_space();
        let mut rng = Rng::new(5);
        let mut net = Supernet::new(&space, &mut rng);
        for p in net.params.iter_mut() {
            if p.name.ends_with("_matrix") {
                p.data.mapv_inplace(|v| v + 0.2 * rng.normal());
            } else if p.name.ends_with("bias") {
                p.data.mapv_inplace(|_| 0.1 * rng.normal());
            }
        }
        let mut cfg = SubnetConfig::largest(&space);
        cfg.ks_mut().copy_from_slice(&[3, 5, 7, 5]);
        cfg.e_mut().copy_from_slice(&[2, 3, 3, 2]);
        let n = 2;
        let x = Array2::from_shape_fn((n * 81, 1), |_| rng.normal());
        let (y, tape, _) = net.forward(x.clone(), n, &cfg, BnMode::Train { tape: true });
        let r = Array2::from_shape_fn(y.raw_dim(), |_| rng.normal());
        let mut grads = net.zero_grads();
        net.backward(tape.unwrap(), r.clone(), &mut grads);

        // Small enough that few activations cross a ReLU / h-swish kink (larger steps, e.g.
        // 5e-3, make early layers' estimates drift by curvature), large enough for f32.
        let eps = 1e-3f32;
        let mut checked = 0;
        let mut bad = vec![];
        #[allow(clippy::needless_range_loop)] // the index addresses params and grads alike
        for pi in 0..net.params.len() {
            let len = net.params[pi].data.len();
            for _ in 0..3 {
                let flat = rng.below(len);
                let idx = (
                    flat / net.params[pi].data.ncols(),
                    flat % net.params[pi].data.ncols(),
                );
                let g = grads[pi][idx];
                let orig = net.params[pi].data[idx];
                net.params[pi].data[idx] = orig + eps;
                let lp = loss(&net, &x, n, &cfg, &r);
                net.params[pi].data[idx] = orig - eps;
                let lm = loss(&net, &x, n, &cfg, &r);
                net.params[pi].data[idx] = orig;
                let fd = ((lp - lm) / (2.0 * eps as f64)) as f32;
                checked += 1;
                if (fd - g).abs() > 3e-2 * fd.abs().max(g.abs()) + 3e-3 {
                    bad.push(format!(
                        "{}{idx:?}: analytic {g}, numeric {fd}",
                        net.params[pi].name
                    ));
                }
            }
        }
        assert!(checked > 100);
        assert!(
            bad.is_empty(),
            "{} of {checked} mismatches:\n{}",
            bad.len(),
            bad.join("\n")
        );
    }

    /// Entries of wider tensors that a narrower subnet does not use get zero gradient.
    #[test]
    fn unused_weights_get_no_gradient() {
        let space = tiny_space();
        let mut rng = Rng::new(6);
        let net = Supernet::new(&space, &mut rng);
        let cfg = SubnetConfig::smallest(&space);
        let x = Array2::from_shape_fn((2 * 81, 1), |_| rng.normal());
        let (y, tape, _) = net.forward(x, 2, &cfg, BnMode::Train { tape: true });
        let mut grads = net.zero_grads();
        net.backward(tape.unwrap(), Array2::ones(y.raw_dim()), &mut grads);
        // slot 1 (second block of stage 1) is skipped at depth 1
        let id = net
            .param_index("blocks.2.conv.inverted_bottleneck.conv.conv.weight")
            .unwrap();
        assert!(grads[id].iter().all(|&g| g == 0.0));
        // slot 0 at expand 2: mid = make_divisible(8*2) = 16 of max_mid 24 rows
        let id = net
            .param_index("blocks.1.conv.inverted_bottleneck.conv.conv.weight")
            .unwrap();
        assert!(grads[id].slice(s![16.., ..]).iter().all(|&g| g == 0.0));
        assert!(grads[id].slice(s![..16, ..]).iter().any(|&g| g != 0.0));
        // kernel 3 from 7: the 7x7 ring outside the 5x5 centre gets nothing
        let id = net
            .param_index("blocks.1.conv.depth_conv.conv.conv.weight")
            .unwrap();
        for ky in 0..7 {
            for kx in 0..7 {
                let outer = ky == 0 || kx == 0 || ky == 6 || kx == 6;
                let row = grads[id].row(ky * 7 + kx);
                if outer {
                    assert!(row.iter().all(|&g| g == 0.0));
                }
            }
        }
    }

    #[test]
    fn running_statistics_follow_momentum() {
        let space = tiny_space();
        let mut rng = Rng::new(7);
        let mut net = Supernet::new(&space, &mut rng);
        let cfg = SubnetConfig::largest(&space);
        let x = Array2::from_shape_fn((4 * 81, 1), |_| 3.0 + rng.normal());
        let (_, _, stats) = net.forward(x, 4, &cfg, BnMode::Train { tape: false });
        let (layer, mean, var, rows) = stats[0].clone();
        net.update_running(&[stats]);
        let r = &net.running[layer];
        for c in 0..mean.len() {
            assert!((r.mean[c] - 0.1 * mean[c]).abs() < 1e-6);
            let unbiased = var[c] * rows as f32 / (rows as f32 - 1.0);
            assert!((r.var[c] - (0.9 + 0.1 * unbiased)).abs() < 1e-5);
        }
    }
}
