//! Parity with the original Once-for-All code: a width-0.35 OFAMobileNetV3 supernet saved by
//! the original code is imported; for six subnets (largest, smallest, k5/e4/d3, three random
//! per-block configs) both the trainer's forward pass and the no_std runtime reproduce the
//! original code's eval-mode logits on four inputs within 1e-4.

use ndarray::Array2;
use supernet_format::writer::AlignedBytes;
use supernet_format::{Prep, Space, SubnetConfig};
use supernet_runtime::{Model, Session};
use supernet_train::export::{Stored, artifact_writer};
use supernet_train::import::{ImportError, import_ofa_safetensors};
use supernet_train::supernet::BnMode;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/ofa-parity");

/// The float32 payload of a C-ordered `.npy` file (format version 1).
fn npy_f32(bytes: &[u8]) -> Vec<f32> {
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let header = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let h = std::str::from_utf8(&bytes[10..10 + header]).unwrap();
    assert!(h.contains("'<f4'") && h.contains("False"), "{h}");
    bytes[10 + header..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

struct Golden {
    name: String,
    config: SubnetConfig,
    logits: Vec<Vec<f32>>,
}

fn golden(space: &Space) -> Vec<Golden> {
    let text = std::fs::read_to_string(format!("{DIR}/golden_logits.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["width_mult"], 0.35);
    v["subnets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let list = |k: &str| -> Vec<u8> {
                s[k].as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap() as u8)
                    .collect()
            };
            Golden {
                name: s["name"].as_str().unwrap().to_string(),
                config: SubnetConfig::new(space, &list("ks"), &list("e"), &list("d")).unwrap(),
                logits: s["logits"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| {
                        r.as_array()
                            .unwrap()
                            .iter()
                            .map(|x| x.as_f64().unwrap() as f32)
                            .collect()
                    })
                    .collect(),
            }
        })
        .collect()
}

#[test]
fn runtime_and_trainer_reproduce_the_original_logits() {
    let space = Space::ofa_mobilenet_v3(0.35, 3, 32, 10).unwrap();
    let ckpt = std::fs::read(format!("{DIR}/ofa_mbv3_w035_supernet.safetensors")).unwrap();
    let imported = import_ofa_safetensors(&ckpt, &space).unwrap();
    assert!(
        imported
            .unused
            .iter()
            .all(|n| n.ends_with("num_batches_tracked")),
        "{:?}",
        imported.unused
    );
    let net = imported.net;
    let x = npy_f32(&std::fs::read(format!("{DIR}/inputs_4x3x32x32.npy")).unwrap());
    let n = 4;
    let golden = golden(&space);
    assert_eq!(golden.len(), 6);

    // Store half of the subnets (BN = sliced running statistics, as the original code uses);
    // the others run as configs outside the table, on the default BN set.
    let stored: Vec<Stored> = golden
        .iter()
        .step_by(2)
        .enumerate()
        .map(|(i, g)| Stored {
            id: i as u32,
            name: g.name.chars().take(16).collect(),
            config: g.config,
            bn: net.running_bn_set(&g.config),
            accuracy: f32::NAN,
        })
        .collect();
    let prep = Prep::new(1.0, &[0.0; 3], &[1.0; 3]).unwrap();
    let bytes = artifact_writer(&net, prep, &stored, None)
        .to_bytes()
        .unwrap();
    let buf = AlignedBytes::from_slice(&bytes);
    let model = Model::from_bytes(buf.as_bytes()).unwrap();
    let mut arena = vec![0f32; model.max_arena_len()];
    let mut session = Session::new(&model, &mut arena).unwrap();

    // NCHW -> NHWC for the trainer
    let px = 32 * 32;
    let nhwc = Array2::from_shape_fn((n * px, 3), |(r, c)| x[(r / px) * 3 * px + c * px + r % px]);
    let (mut worst_rt, mut worst_tr) = (0f32, 0f32);
    for g in &golden {
        session.select_config(&g.config).unwrap();
        let bn = net.running_bn_set(&g.config);
        let (tr, _, _) = net.forward(nhwc.clone(), n, &g.config, BnMode::Eval(&bn));
        for i in 0..n {
            let mut out = [0f32; 10];
            session
                .run(&x[i * 3 * px..(i + 1) * 3 * px], &mut out)
                .unwrap();
            for j in 0..10 {
                worst_rt = worst_rt.max((out[j] - g.logits[i][j]).abs());
                worst_tr = worst_tr.max((tr[[i, j]] - g.logits[i][j]).abs());
            }
        }
    }
    eprintln!(
        "largest |difference| from the original code: runtime {worst_rt:e}, trainer {worst_tr:e}"
    );
    assert!(worst_rt <= 1e-4, "runtime differs by {worst_rt}");
    assert!(worst_tr <= 1e-4, "trainer differs by {worst_tr}");
}

#[test]
fn wrong_width_names_the_tensor_and_its_expected_shape() {
    let ckpt = std::fs::read(format!("{DIR}/ofa_mbv3_w035_supernet.safetensors")).unwrap();
    let space = Space::ofa_mobilenet_v3(1.0, 3, 32, 10).unwrap();
    let Err(e) = import_ofa_safetensors(&ckpt, &space) else {
        panic!("width 1.0 accepted")
    };
    assert!(matches!(e, ImportError::Shape { .. }));
    let msg = e.to_string();
    assert!(
        msg.contains("first_conv.conv.weight")
            && msg.contains("[16, 3, 3, 3]")
            && msg.contains("[8, 3, 3, 3]"),
        "{msg}"
    );
    let space = Space::ofa_mobilenet_v3(0.35, 3, 32, 100).unwrap();
    let msg = import_ofa_safetensors(&ckpt, &space)
        .err()
        .unwrap()
        .to_string();
    assert!(msg.contains("classifier.linear.weight"), "{msg}");
    let space = Space::ofa_mobilenet_v3(0.5, 3, 32, 10).unwrap();
    let msg = import_ofa_safetensors(&ckpt, &space)
        .err()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("[8, 48, 1, 1]") && msg.contains("[16, 48, 1, 1]"),
        "{msg}"
    );
    let msg = import_ofa_safetensors(b"not a checkpoint", &space)
        .err()
        .unwrap()
        .to_string();
    assert!(msg.contains("safetensors"), "{msg}");
}
