//! End-to-end tests of the `supernet` command line on the bundled Fashion-MNIST: a short
//! training run on a tiny space writes an artifact; `info` and `eval` read it through the
//! runtime; bad input gives clear errors and never destroys an existing file.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_supernet"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn data() -> PathBuf {
    root().join("data/fashion-mnist")
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("supernet-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Trains once (tiny space, few images) and shares the artifact between tests.
fn trained() -> &'static (PathBuf, String) {
    static MODEL: OnceLock<(PathBuf, String)> = OnceLock::new();
    MODEL.get_or_init(|| {
        let out = tmpdir("trained").join("tiny.snet");
        let o = bin()
            .args(["train", "--data"])
            .arg(data())
            .arg("--out")
            .arg(&out)
            .arg("--space")
            .arg(root().join("tests/data/tiny-space.toml"))
            .args([
                "--epochs",
                "4",
                "--lr",
                "0.1",
                "--train-limit",
                "1200",
                "--holdout",
                "300",
                "--calib-images",
                "100",
                "--batch-size",
                "32",
                "--subnets",
                "4",
                "--candidates",
                "2",
                "--eval-limit",
                "300",
                "--seed",
                "7",
                "--threads",
                "2",
                "--force",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "train failed:\n{}", text(&o));
        (out, text(&o))
    })
}

#[test]
fn train_writes_an_artifact_and_prints_the_runtime_table() {
    let (model, log) = trained();
    assert!(model.exists());
    assert!(
        log.contains("test split through the no_std runtime"),
        "{log}"
    );
    for name in ["smallest", "largest"] {
        assert!(log.contains(name), "{log}");
    }
    // 4 stored subnets, one table row each
    let rows = log
        .lines()
        .filter(|l| l.contains("d1:") || l.contains("d2:"))
        .count();
    assert!(rows >= 4, "{log}");
}

#[test]
fn eval_json_has_the_documented_fields() {
    let (model, _) = trained();
    let o = bin()
        .arg("eval")
        .arg(model)
        .arg("--data")
        .arg(data())
        .args(["--json", "--limit", "200"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["images"], 200);
    let subnets = v["subnets"].as_array().unwrap();
    assert_eq!(subnets.len(), 4);
    let mut last_macs = 0;
    for s in subnets {
        assert!(s["id"].is_u64());
        let acc = s["accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc));
        // better than chance on 10 classes, even after a tiny run
        assert!(acc > 0.2, "{s}");
        let macs = s["macs"].as_u64().unwrap();
        assert!(macs > last_macs);
        last_macs = macs;
        assert!(s["params"].as_u64().unwrap() > 0);
        assert!(s["arena_bytes"].as_u64().unwrap() > 0);
        let c = &s["config"];
        assert_eq!(c["ks"].as_array().unwrap().len(), 6);
        assert_eq!(c["e"].as_array().unwrap().len(), 6);
        assert_eq!(c["d"].as_array().unwrap().len(), 3);
    }
}

/// `supernet switch` (and the end of the main job): one session calibrated on this machine
/// switches as the battery drains and the latency budget tightens.
#[test]
fn switch_follows_the_battery_and_the_latency_budget() {
    let (model, log) = trained();
    assert!(log.contains("switching subnets at run time"), "{log}");
    let o = bin()
        .arg("switch")
        .arg(model)
        .arg("--data")
        .arg(data())
        .args(["--json", "--images", "20"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let lat: Vec<u64> = v["calibrated_latency_us"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap())
        .collect();
    assert_eq!(lat.len(), 4);
    assert!(lat.iter().all(|&t| t > 0), "{lat:?}");
    let steps = v["steps"].as_array().unwrap();
    let battery: Vec<&serde_json::Value> = steps
        .iter()
        .filter(|s| s["kind"] == "battery" && s["charging"] == false)
        .collect();
    let latency: Vec<&serde_json::Value> =
        steps.iter().filter(|s| s["kind"] == "latency").collect();
    assert!(battery.len() >= 10 && latency.len() >= 4, "{v}");
    // draining: the expected latency of the active subnet never grows; the empty battery
    // runs the fastest stored subnet
    let expected = |s: &serde_json::Value| s["expected_us"].as_u64().unwrap();
    for w in battery.windows(2) {
        assert!(expected(w[1]) <= expected(w[0]), "{v}");
    }
    assert_eq!(
        expected(battery.last().unwrap()),
        *lat.iter().min().unwrap()
    );
    // a tightening budget: every step fits, or is flagged and runs the fastest
    for s in &latency {
        let fits = s["fits"].as_bool().unwrap();
        assert_eq!(fits, expected(s) <= s["budget_us"].as_u64().unwrap(), "{s}");
        if !fits {
            assert_eq!(expected(s), *lat.iter().min().unwrap(), "{s}");
        }
        let acc = s["accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc));
    }
    let ids: std::collections::BTreeSet<u64> = steps
        .iter()
        .map(|s| s["subnet"]["id"].as_u64().unwrap())
        .collect();
    assert!(ids.len() >= 2, "{v}");
}

#[test]
fn info_shows_space_and_subnets() {
    let (model, _) = trained();
    let o = bin().arg("info").arg(model).arg("--json").output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["version"], "1.1");
    assert_eq!(v["space"]["resolution"], 28);
    assert_eq!(v["space"]["ks"], serde_json::json!([3, 5]));
    assert_eq!(v["subnets"].as_array().unwrap().len(), 4);
    for s in v["subnets"].as_array().unwrap() {
        // the trainer times every stored subnet through the runtime
        assert!(s["latency_us"].as_u64().unwrap() > 0, "{s}");
    }
    assert_eq!(v["meta"]["seed"], 7);
    let o = bin().arg("info").arg(model).output().unwrap();
    assert!(o.status.success());
    assert!(text(&o).contains("stored subnets: 4"));
}

#[test]
fn corrupted_and_truncated_models_give_clear_errors() {
    let (model, _) = trained();
    let bytes = std::fs::read(model).unwrap();
    let dir = tmpdir("corrupt");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated.snet",
            bytes[..bytes.len() / 2].to_vec(),
            "truncated",
        ),
        (
            "flipped.snet",
            {
                let mut b = bytes.clone();
                let i = b.len() - 100;
                b[i] ^= 1;
                b
            },
            "checksum",
        ),
        ("empty.snet", vec![], "too short"),
        (
            "text.snet",
            b"hello, this is not a model at all, just some text of the file".repeat(2),
            "magic",
        ),
    ];
    for (name, b, expect) in cases {
        let p = dir.join(name);
        std::fs::write(&p, b).unwrap();
        let info = bin().arg("info").arg(&p).output().unwrap();
        let eval = bin()
            .arg("eval")
            .arg(&p)
            .arg("--data")
            .arg(data())
            .output()
            .unwrap();
        for o in [info, eval] {
            assert!(!o.status.success());
            let t = text(&o);
            assert!(t.contains(name) && t.contains(expect), "{name}: {t}");
        }
    }
}

#[test]
fn bad_command_lines_are_clear_errors() {
    let run = |args: &[&str]| {
        let o = bin().args(args).output().unwrap();
        assert!(!o.status.success(), "{args:?} should fail");
        text(&o)
    };
    let d = data();
    let d = d.to_str().unwrap();
    let out = tmpdir("bad").join("x.snet");
    let out = out.to_str().unwrap();
    assert!(run(&["train", "--data", d, "--out", out, "--bogus"]).contains("--bogus"));
    assert!(run(&["train", "--data", d, "--out", out, "--epochs", "0"]).contains("positive"));
    assert!(run(&["train", "--data", d, "--out", out, "--epochs", "abc"]).contains("not a number"));
    assert!(
        run(&[
            "train",
            "--data",
            d,
            "--out",
            out,
            "--epochs",
            "1",
            "--minutes",
            "1"
        ])
        .contains("cannot be used with")
    );
    assert!(
        run(&["train", "--data", d, "--out", out, "--preset", "w9"]).contains("unknown preset")
    );
    let missing = run(&["train", "--data", "/nonexistent-dir", "--out", out]);
    assert!(missing.contains("/nonexistent-dir"), "{missing}");
    assert!(run(&["train", "--data", d, "--out", out, "--holdout", "0"]).contains("--holdout"));
    let help = bin().args(["train", "--help"]).output().unwrap();
    let h = text(&help);
    for flag in [
        "--data",
        "--out",
        "--preset",
        "--space",
        "--epochs",
        "--minutes",
        "--seed",
        "--threads",
    ] {
        assert!(h.contains(flag), "help lacks {flag}");
    }
}

#[test]
fn an_existing_output_is_never_replaced_without_force() {
    let dir = tmpdir("keep");
    let out = dir.join("keep.snet");
    std::fs::write(&out, b"precious").unwrap();
    let o = bin()
        .args(["train", "--data"])
        .arg(data())
        .arg("--out")
        .arg(&out)
        .args(["--epochs", "1"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("--force"));
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
}

/// `--epochs` with `--seed` is repeatable: two runs write the same weights, BN sets and
/// stored subnets (only the provenance, with its timings, differs); another seed differs.
#[test]
fn same_seed_same_artifact() {
    use supernet_format::Artifact;
    use supernet_format::writer::AlignedBytes;
    let dir = tmpdir("repeat");
    let run = |name: &str, seed: &str| {
        let out = dir.join(name);
        let o = bin()
            .args(["train", "--data"])
            .arg(data())
            .arg("--out")
            .arg(&out)
            .arg("--space")
            .arg(root().join("tests/data/tiny-space.toml"))
            .args([
                "--epochs",
                "1",
                "--train-limit",
                "700",
                "--holdout",
                "200",
                "--calib-images",
                "100",
                "--batch-size",
                "32",
                "--subnets",
                "3",
                "--candidates",
                "2",
                "--eval-limit",
                "50",
                "--seed",
                seed,
                "--force",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        AlignedBytes::from_slice(&std::fs::read(out).unwrap())
    };
    let (a, b, c) = (run("a.snet", "3"), run("b.snet", "3"), run("c.snet", "4"));
    let (a, b, c) = (
        Artifact::parse(a.as_bytes()).unwrap(),
        Artifact::parse(b.as_bytes()).unwrap(),
        Artifact::parse(c.as_bytes()).unwrap(),
    );
    let n = supernet_format::arch::tensor_count(a.space());
    let same = |x: &Artifact, y: &Artifact| {
        (0..n).all(|i| x.tensor(i) == y.tensor(i))
            && x.default_bn() == y.default_bn()
            && (0..x.subnet_count()).all(|i| {
                let (s, t) = (x.subnet(i).unwrap(), y.subnet(i).unwrap());
                s.config == t.config && s.bn == t.bn && s.accuracy.to_bits() == t.accuracy.to_bits()
            })
    };
    assert!(same(&a, &b), "same seed, different artifact");
    assert!(!same(&a, &c), "different seeds, same artifact");
}
