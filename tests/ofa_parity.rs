//! The command line reproduces the original Once-for-All code: `supernet import-ofa` on the
//! width-0.35 fixture, then `supernet run --config ... --json` for each golden subnet (in the
//! original code's text form) gives its logits within 1e-4; listed subnets are stored; bad
//! imports and bad configs are clear errors.

use std::path::PathBuf;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_supernet"))
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/ofa-parity")
        .join(name)
}

fn out_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("supernet-ofa-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn import_and_run_reproduce_the_golden_logits() {
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("golden_logits.json")).unwrap())
            .unwrap();
    let subnets = golden["subnets"].as_array().unwrap();
    let model = out_dir().join("ofa.snet");
    // store one random config by its text, written in Python's repr as the original prints it
    let r0 = &subnets[3];
    let py = format!("{{'ks': {}, 'e': {}, 'd': {}}}", r0["ks"], r0["e"], r0["d"]);
    let o = bin()
        .arg("import-ofa")
        .arg(fixture("ofa_mbv3_w035_supernet.safetensors"))
        .args([
            "--width",
            "0.35",
            "--classes",
            "10",
            "--in-channels",
            "3",
            "--resolution",
            "32",
            "-o",
        ])
        .arg(&model)
        .args(["--subnet", &py, "--force"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("3 stored subnets"), "{}", text(&o));

    let mut worst = 0f64;
    for s in subnets {
        let config = serde_json::json!({"ks": s["ks"], "e": s["e"], "d": s["d"]}).to_string();
        let o = bin()
            .arg("run")
            .arg(&model)
            .args(["--config", &config, "--json", "--input"])
            .arg(fixture("inputs_4x3x32x32.npy"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let got = v["logits"].as_array().unwrap();
        let want = s["logits"].as_array().unwrap();
        assert_eq!(got.len(), 4);
        for (g, w) in got.iter().zip(want) {
            for (a, b) in g.as_array().unwrap().iter().zip(w.as_array().unwrap()) {
                worst = worst.max((a.as_f64().unwrap() - b.as_f64().unwrap()).abs());
            }
        }
        assert_eq!(v["classes"].as_array().unwrap().len(), 4);
    }
    eprintln!("command line vs original code: max |logit difference| = {worst:e}");
    assert!(worst <= 1e-4, "{worst}");

    // the stored random subnet runs by id with the same result
    let o = bin()
        .arg("run")
        .arg(&model)
        .args(["--subnet", "2", "--json", "--input"])
        .arg(fixture("inputs_4x3x32x32.npy"))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["subnet"]["id"], 2);
    let a = v["logits"][0][0].as_f64().unwrap();
    assert!((a - r0["logits"][0][0].as_f64().unwrap()).abs() <= 1e-4);
}

#[test]
fn bad_imports_and_configs_are_clear_errors() {
    let dir = out_dir();
    let run = |args: &[&str]| {
        let o = bin().args(args).output().unwrap();
        assert!(!o.status.success(), "{args:?} should fail");
        text(&o)
    };
    let ckpt = fixture("ofa_mbv3_w035_supernet.safetensors");
    let ckpt = ckpt.to_str().unwrap();
    let out = dir.join("bad.snet");
    let out = out.to_str().unwrap();
    let base = [
        "import-ofa",
        ckpt,
        "--classes",
        "10",
        "--resolution",
        "32",
        "-o",
        out,
    ];
    // wrong width: names the tensor, both shapes, and suggests the right width
    let e = run(&[&base[..], &["--width", "1.0"]].concat());
    assert!(
        e.contains("first_conv.conv.weight")
            && e.contains("[16, 3, 3, 3]")
            && e.contains("--width 0.35"),
        "{e}"
    );
    // wrong classes
    let e = run(&[
        "import-ofa",
        ckpt,
        "--classes",
        "100",
        "--resolution",
        "32",
        "--width",
        "0.35",
        "-o",
        out,
    ]);
    assert!(
        e.contains("classifier.linear.weight") && e.contains("--classes 10"),
        "{e}"
    );
    // a .pth (zip) gets the conversion recipe
    let zip = dir.join("model.pth");
    std::fs::write(&zip, b"PK\x03\x04 not really a zip").unwrap();
    let e = run(&[
        "import-ofa",
        zip.to_str().unwrap(),
        "--classes",
        "10",
        "--resolution",
        "32",
        "--width",
        "0.35",
        "-o",
        out,
    ]);
    assert!(e.contains("safetensors") && e.contains("save_file"), "{e}");
    // configs with the wrong number of entries or values outside the space
    let mut args: Vec<&str> = [&base[..], &["--width", "0.35"]].concat();
    let short = "{\"ks\": [3, 3], \"e\": [3, 3], \"d\": [2, 2]}";
    args.extend(["--subnet", short]);
    let e = run(&args);
    assert!(
        e.contains("\"ks\" has 2 entries, the space needs 20"),
        "{e}"
    );
    let model = dir.join("ok.snet");
    let o = bin()
        .args([
            "import-ofa",
            ckpt,
            "--classes",
            "10",
            "--resolution",
            "32",
            "--width",
            "0.35",
            "-o",
        ])
        .arg(&model)
        .arg("--force")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let input = fixture("inputs_4x3x32x32.npy");
    let bad_e = "{\"ks\": [3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3], \"e\": [3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,5], \"d\": [2,2,2,2,2]}";
    let e = run(&[
        "run",
        model.to_str().unwrap(),
        "--config",
        bad_e,
        "--input",
        input.to_str().unwrap(),
    ]);
    assert!(e.contains("\"e\"[19] = 5"), "{e}");
    let e = run(&[
        "run",
        model.to_str().unwrap(),
        "--subnet",
        "9",
        "--input",
        input.to_str().unwrap(),
    ]);
    assert!(e.contains("no stored subnet has id 9"), "{e}");
    // an input of the wrong shape
    let e = run(&[
        "run",
        model.to_str().unwrap(),
        "--input",
        fixture("golden_logits.json").to_str().unwrap(),
    ]);
    assert!(e.contains("npy"), "{e}");
}

/// Writes a small colour IDX dataset (`[n, 32, 32, 3]` images) that the importer can
/// recalibrate BN on.
fn colour_idx(dir: &std::path::Path, n: usize) {
    let mut img = vec![0, 0, 0x08, 0x04];
    for d in [n as u32, 32, 32, 3] {
        img.extend(d.to_be_bytes());
    }
    let mut s = 12345u32;
    for _ in 0..n * 32 * 32 * 3 {
        s = s.wrapping_mul(1103515245).wrapping_add(12345);
        img.push((s >> 24) as u8);
    }
    let mut lab = vec![0, 0, 0x08, 0x01];
    lab.extend((n as u32).to_be_bytes());
    lab.extend((0..n).map(|i| (i % 10) as u8));
    std::fs::write(dir.join("train-images-idx3-ubyte"), img).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), lab).unwrap();
}

#[test]
fn calibrate_data_recalibrates_bn_per_stored_subnet() {
    let dir = out_dir().join("calib");
    std::fs::create_dir_all(&dir).unwrap();
    colour_idx(&dir, 120);
    let ckpt = fixture("ofa_mbv3_w035_supernet.safetensors");
    let import = |out: &PathBuf, calib: bool| {
        let mut c = bin();
        c.arg("import-ofa").arg(&ckpt);
        c.args([
            "--width",
            "0.35",
            "--classes",
            "10",
            "--resolution",
            "32",
            "--force",
            "-o",
        ])
        .arg(out);
        if calib {
            c.arg("--calibrate-data")
                .arg(&dir)
                .args(["--calib-images", "100"]);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", text(&o));
    };
    let (plain, calibrated) = (
        out_dir().join("plain.snet"),
        out_dir().join("calibrated.snet"),
    );
    import(&plain, false);
    import(&calibrated, true);
    let logits = |m: &PathBuf| {
        let o = bin()
            .arg("run")
            .arg(m)
            .args(["--subnet", "1", "--json", "--input"])
            .arg(fixture("inputs_4x3x32x32.npy"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["logits"][0]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect::<Vec<_>>()
    };
    let (a, b) = (logits(&plain), logits(&calibrated));
    assert!(
        a.iter().zip(&b).any(|(x, y)| (x - y).abs() > 1e-3),
        "{a:?} {b:?}"
    );
    let info = bin()
        .arg("info")
        .arg(&calibrated)
        .arg("--json")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(v["meta"]["bn"], "recalibrated per stored subnet");
    // data of another shape is refused, naming both shapes
    let fm = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/fashion-mnist");
    let o = bin()
        .arg("import-ofa")
        .arg(&ckpt)
        .args([
            "--width",
            "0.35",
            "--classes",
            "10",
            "--resolution",
            "32",
            "--force",
            "-o",
        ])
        .arg(out_dir().join("x.snet"))
        .arg("--calibrate-data")
        .arg(&fm)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        text(&o).contains("28x28x1") && text(&o).contains("32x32x3"),
        "{}",
        text(&o)
    );
}
