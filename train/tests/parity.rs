//! The trainer's eval-mode forward pass and the no_std runtime agree on the same subnet:
//! same artifact, same BN set, max |logit difference| <= 1e-4, for stored subnets (own BN)
//! and for configs outside the table (default BN), over several spaces and random configs.

use ndarray::Array2;
use supernet_format::writer::AlignedBytes;
use supernet_format::{Prep, Space, SubnetConfig};
use supernet_runtime::{Model, Session};
use supernet_train::export::{Stored, artifact_writer};
use supernet_train::rng::Rng;
use supernet_train::supernet::{BnMode, Supernet};
use supernet_train::trainer::random_config;

/// Moves every parameter and statistic away from its initial value, so that BN folding,
/// kernel transformations and biases are all exercised.
fn randomize(net: &mut Supernet, rng: &mut Rng) {
    for p in net.params.iter_mut() {
        let name = p.name.clone();
        if name.ends_with("_matrix") {
            p.data.mapv_inplace(|v| v + 0.15 * rng.normal());
        } else if name.ends_with("bn.weight") {
            p.data.mapv_inplace(|_| 0.5 + rng.next_f32());
        } else if name.ends_with("bias") {
            p.data.mapv_inplace(|_| 0.2 * rng.normal());
        }
    }
    for r in net.running.iter_mut() {
        r.mean.mapv_inplace(|_| 0.3 * rng.normal());
        r.var.mapv_inplace(|_| 0.5 + rng.next_f32());
    }
}

fn check_space(space: Space, seed: u64) -> f32 {
    let mut rng = Rng::new(seed);
    let mut net = Supernet::new(&space, &mut rng);
    randomize(&mut net, &mut rng);
    let cin = space.in_channels as usize;
    let prep = Prep::new(1.0, &vec![0.0; cin], &vec![1.0; cin]).unwrap();

    // Two stored subnets with their own (random) BN sets; other configs use default BN.
    let stored_cfgs = [
        random_config(&space, &mut rng),
        SubnetConfig::smallest(&space),
    ];
    let stored: Vec<Stored> = stored_cfgs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut bn = net.running_bn_set(c);
            for v in bn.iter_mut() {
                *v += 0.1 * rng.normal();
            }
            Stored {
                id: 10 + i as u32,
                name: format!("s{i}"),
                config: *c,
                bn,
                accuracy: f32::NAN,
            }
        })
        .collect();
    let bytes = artifact_writer(&net, prep, &stored, None)
        .to_bytes()
        .unwrap();
    let buf = AlignedBytes::from_slice(&bytes);
    let model = Model::from_bytes(buf.as_bytes()).unwrap();
    let mut arena = vec![0f32; model.max_arena_len()];
    let mut session = Session::new(&model, &mut arena).unwrap();

    let r = space.resolution as usize;
    let n = 3;
    let x_nhwc = Array2::from_shape_fn((n * r * r, cin), |_| rng.normal());
    let mut configs: Vec<(SubnetConfig, Option<Vec<f32>>)> = stored
        .iter()
        .map(|s| (s.config, Some(s.bn.clone())))
        .collect();
    configs.push((SubnetConfig::largest(&space), None));
    for _ in 0..4 {
        configs.push((random_config(&space, &mut rng), None));
    }
    let mut worst = 0f32;
    for (cfg, own_bn) in configs {
        let bn = own_bn.clone().unwrap_or_else(|| net.running_bn_set(&cfg));
        let (logits, _, _) = net.forward(x_nhwc.clone(), n, &cfg, BnMode::Eval(&bn));
        session.select_config(&cfg).unwrap();
        assert_eq!(session.active().has_own_bn(), own_bn.is_some());
        for img in 0..n {
            // NHWC rows of this image -> CHW
            let mut chw = vec![0f32; cin * r * r];
            for p in 0..r * r {
                for c in 0..cin {
                    chw[c * r * r + p] = x_nhwc[[img * r * r + p, c]];
                }
            }
            let mut out = vec![0f32; space.classes as usize];
            session.run(&chw, &mut out).unwrap();
            for (a, b) in out.iter().zip(logits.row(img)) {
                assert!(a.is_finite());
                worst = worst.max((a - b).abs());
            }
        }
    }
    assert!(worst <= 1e-4, "max |runtime - trainer| = {worst}");
    worst
}

#[test]
fn fashion_mnist_space_agrees() {
    let w = check_space(Space::ofa_mobilenet_v3(1.0, 1, 28, 10).unwrap(), 1);
    eprintln!("width 1.0, 28x28x1: max |diff| = {w:e}");
}

#[test]
fn narrow_rgb_space_agrees() {
    let w = check_space(Space::ofa_mobilenet_v3(0.35, 3, 32, 10).unwrap(), 2);
    eprintln!("width 0.35, 32x32x3: max |diff| = {w:e}");
}

#[test]
fn odd_resolution_agrees() {
    // 37x37 exercises odd sizes at every stride-2 step, and head spatial > 1 at 75.
    check_space(Space::ofa_mobilenet_v3(0.5, 2, 37, 7).unwrap(), 3);
    check_space(Space::ofa_mobilenet_v3(0.35, 1, 75, 5).unwrap(), 4);
}

/// After real training steps on real images (weights, BN statistics and kernel
/// transformations all moved by SGD), the trainer and the runtime still agree.
#[test]
fn trained_weights_on_real_images_agree() {
    use supernet_train::calibrate::calibrate_bn;
    use supernet_train::data::{Dataset, Normalization, Split};
    use supernet_train::trainer::{Budget, TrainOptions, train};

    let dir = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../data/fashion-mnist"
    ));
    let test = Dataset::load(dir, Split::Test).unwrap();
    let data = test.subset(&(0..640).collect::<Vec<_>>());
    let norm = Normalization::from_dataset(&data);
    let space = Space::ofa_mobilenet_v3(0.35, 1, 28, 10).unwrap();
    let mut rng = Rng::new(9);
    let mut net = Supernet::new(&space, &mut rng);
    let mut opts = TrainOptions::new(Budget::Epochs(2.0), 9, 2);
    opts.batch_size = 32;
    opts.lr = 0.1;
    train(&mut net, &data, &norm, &opts, |_| {}).unwrap();

    let configs = [
        SubnetConfig::largest(&space),
        SubnetConfig::smallest(&space),
        random_config(&space, &mut rng),
    ];
    let calib: Vec<usize> = (0..128).collect();
    let stored: Vec<Stored> = configs
        .iter()
        .enumerate()
        .map(|(i, c)| Stored {
            id: i as u32,
            name: format!("s{i}"),
            config: *c,
            bn: calibrate_bn(&net, c, &data, &calib, &norm, 64),
            accuracy: f32::NAN,
        })
        .collect();
    let prep = Prep::new(1.0 / 255.0, &norm.mean, &norm.std).unwrap();
    let bytes = artifact_writer(&net, prep, &stored, None)
        .to_bytes()
        .unwrap();
    let buf = AlignedBytes::from_slice(&bytes);
    let model = Model::from_bytes(buf.as_bytes()).unwrap();
    let mut arena = vec![0f32; model.max_arena_len()];
    let mut session = Session::new(&model, &mut arena).unwrap();

    let n = 8;
    let mut x = vec![0f32; n * 784];
    supernet_train::data::fill_batch(
        &data,
        &(0..n).collect::<Vec<_>>(),
        &norm,
        None,
        &mut rng,
        &mut x,
    );
    let x_nhwc = Array2::from_shape_vec((n * 784, 1), x.clone()).unwrap();
    let mut worst = 0f32;
    for s in &stored {
        let (logits, _, _) = net.forward(x_nhwc.clone(), n, &s.config, BnMode::Eval(&s.bn));
        session.select_subnet(s.id).unwrap();
        for img in 0..n {
            // one channel: NHWC and CHW coincide; and the artifact's preprocessing gives the
            // same input from raw pixels
            let mut from_pixels = vec![0f32; 784];
            model.prep().apply_u8(data.image(img), &mut from_pixels);
            for (a, b) in from_pixels.iter().zip(&x[img * 784..(img + 1) * 784]) {
                assert!((a - b).abs() < 1e-5);
            }
            let mut out = vec![0f32; 10];
            session
                .run(&x[img * 784..(img + 1) * 784], &mut out)
                .unwrap();
            for (a, b) in out.iter().zip(logits.row(img)) {
                worst = worst.max((a - b).abs());
            }
        }
    }
    eprintln!("trained width 0.35 on Fashion-MNIST: max |diff| = {worst:e}");
    assert!(worst <= 1e-4, "max |runtime - trainer| = {worst}");
}
