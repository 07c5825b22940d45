//! Choosing the subnets to store: the smallest, the largest, and between them the most
//! accurate subnet found near each of several multiply-add targets, judged on held-out
//! training images (never the test split) after BN recalibration.

use rayon::prelude::*;
use supernet_format::arch::cost;
use supernet_format::{Space, SubnetConfig};

use crate::calibrate::{accuracy, calibrate_bn};
use crate::data::{Dataset, Normalization};
use crate::rng::Rng;
use crate::supernet::Supernet;

/// A config sampled with every choice biased towards the large end with probability
/// `level` (binomial over the choice list), so that configs cover the whole cost range.
pub fn sample_at_level(space: &Space, level: f64, rng: &mut Rng) -> SubnetConfig {
    fn pick(choices: &[u8], level: f64, rng: &mut Rng) -> u8 {
        let n = choices.len() - 1;
        let i = (0..n).filter(|_| rng.next_f64() < level).count();
        choices[i]
    }
    let mut c = SubnetConfig::smallest(space);
    for v in c.ks_mut() {
        *v = pick(space.ks.as_slice(), level, rng);
    }
    for v in c.e_mut() {
        *v = pick(space.e.as_slice(), level, rng);
    }
    for v in c.d_mut() {
        *v = pick(space.d.as_slice(), level, rng);
    }
    c
}

/// A subnet chosen for the table.
#[derive(Clone, Debug)]
pub struct Choice {
    pub name: String,
    pub config: SubnetConfig,
    pub macs: u64,
    /// Held-out accuracy measured during the search (NaN for smallest/largest, which are
    /// not searched).
    pub search_accuracy: f32,
}

/// Search settings.
#[derive(Clone, Debug)]
pub struct SearchOptions {
    /// Subnets to store in total (at least 2: smallest and largest).
    pub count: usize,
    /// Candidates evaluated per target.
    pub candidates: usize,
    pub seed: u64,
    pub batch_size: usize,
    /// Images (from the start of `calib` / `val`) used to judge each candidate; the final
    /// stored numbers use all of them.
    pub search_calib: usize,
    pub search_val: usize,
}

/// Picks `count` subnets: smallest, largest, and the best of `candidates` near each of
/// `count - 2` evenly spaced multiply-add targets. `calib` and `val` index held-out images.
pub fn choose_subnets(
    net: &Supernet,
    data: &Dataset,
    norm: &Normalization,
    calib: &[usize],
    val: &[usize],
    opts: &SearchOptions,
    mut log: impl FnMut(&str),
) -> Vec<Choice> {
    let space = &net.space;
    let small = SubnetConfig::smallest(space);
    let big = SubnetConfig::largest(space);
    let min = cost(space, &small).macs;
    let max = cost(space, &big).macs;
    let mut rng = Rng::new(opts.seed ^ 0x5EA2C4);
    let calib = &calib[..opts.search_calib.clamp(1, calib.len())];
    let val = &val[..opts.search_val.clamp(1, val.len())];
    // A pool of configs spread over the cost range.
    let mut pool: Vec<(SubnetConfig, u64)> = (0..4000)
        .map(|i| {
            let level = (i as f64 + 0.5) / 4000.0;
            let c = sample_at_level(space, level, &mut rng);
            let m = cost(space, &c).macs;
            (c, m)
        })
        .collect();
    pool.sort_by_key(|(_, m)| *m);
    pool.dedup_by(|a, b| a.0 == b.0);

    let mut out = vec![Choice {
        name: "smallest".into(),
        config: small,
        macs: min,
        search_accuracy: f32::NAN,
    }];
    if big != small {
        out.push(Choice {
            name: "largest".into(),
            config: big,
            macs: max,
            search_accuracy: f32::NAN,
        });
    }
    let between = opts.count.saturating_sub(2);
    for t in 0..between {
        let target = min as f64 + (max - min) as f64 * (t + 1) as f64 / (between + 1) as f64;
        // the candidates nearest the target that are not stored yet
        let mut near: Vec<&(SubnetConfig, u64)> = pool
            .iter()
            .filter(|(c, _)| out.iter().all(|o| o.config != *c))
            .collect();
        if near.is_empty() {
            log(&format!(
                "  the space has no more distinct subnets: storing {} instead of {}",
                out.len(),
                opts.count
            ));
            break;
        }
        near.sort_by(|a, b| {
            let da = (a.1 as f64 - target).abs();
            let db = (b.1 as f64 - target).abs();
            da.total_cmp(&db)
        });
        near.truncate(opts.candidates.max(1));
        let scored: Vec<(f32, SubnetConfig, u64)> = near
            .into_par_iter()
            .map(|(c, m)| {
                let bn = calibrate_bn(net, c, data, calib, norm, opts.batch_size);
                let acc = accuracy(net, c, &bn, data, val, norm, opts.batch_size);
                (acc, *c, *m)
            })
            .collect();
        let Some(best) = scored
            .iter()
            .max_by(|a, b| a.0.total_cmp(&b.0).then(b.2.cmp(&a.2)))
        else {
            break;
        };
        log(&format!(
            "  target {:.2} M MACs: best of {} candidate{} {:.2} M MACs, held-out accuracy {:.2}%",
            target / 1e6,
            scored.len(),
            if scored.len() == 1 { "" } else { "s" },
            best.2 as f64 / 1e6,
            100.0 * best.0
        ));
        out.push(Choice {
            name: String::new(),
            config: best.1,
            macs: best.2,
            search_accuracy: best.0,
        });
    }
    out.sort_by_key(|c| c.macs);
    // Names: smallest, largest, and `macs-<M>` for the others, made unique.
    let mut names: Vec<String> = vec![];
    for c in out.iter_mut() {
        if c.name.is_empty() {
            let base = format!("macs-{:.2}M", c.macs as f64 / 1e6);
            let mut name = base.clone();
            let mut k = 2;
            while names.contains(&name) {
                name = format!("{base}-{k}");
                k += 1;
            }
            c.name = name;
        }
        names.push(c.name.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrow_spaces_store_each_distinct_subnet_once() {
        use crate::data::Dataset;
        let data = Dataset {
            images: vec![7; 64 * 8],
            labels: vec![0, 1, 0, 1, 0, 1, 0, 1],
            rows: 8,
            cols: 8,
            channels: 1,
            classes: 2,
        };
        let norm = Normalization::from_dataset(&data);
        let idx: Vec<usize> = (0..8).collect();
        let opts = SearchOptions {
            count: 40,
            candidates: 2,
            seed: 1,
            batch_size: 4,
            search_calib: 8,
            search_val: 8,
        };
        let space = |d: &[u8], max_depth: usize| {
            Space::from_params(&supernet_format::space::SpaceParams {
                width_mult: 0.25,
                in_channels: 1,
                resolution: 8,
                classes: 2,
                base_widths: &supernet_format::space::OFA_BASE_WIDTHS,
                strides: &supernet_format::space::OFA_STRIDES,
                acts: &supernet_format::space::OFA_ACTS,
                se: &supernet_format::space::OFA_SE,
                ks: &[3],
                e: &[3],
                d,
                max_depth: Some(max_depth),
            })
            .unwrap()
        };
        // one config only
        let net = Supernet::new(&space(&[2], 2), &mut Rng::new(1));
        let c = choose_subnets(&net, &data, &norm, &idx, &idx, &opts, |_| {});
        assert_eq!(c.len(), 1);
        // depth only: 2^5 = 32 configs, fewer than the 40 requested
        let sp = space(&[2, 3], 3);
        let net = Supernet::new(&sp, &mut Rng::new(1));
        let c = choose_subnets(&net, &data, &norm, &idx, &idx, &opts, |_| {});
        assert!(c.len() <= 32 && c.len() > 2);
        for (i, a) in c.iter().enumerate() {
            for b in &c[..i] {
                assert_ne!(a.config, b.config);
                assert_ne!(a.name, b.name);
            }
        }
    }

    #[test]
    fn levels_span_the_cost_range() {
        let s = Space::ofa_mobilenet_v3(1.0, 1, 28, 10).unwrap();
        let mut rng = Rng::new(1);
        let lo = sample_at_level(&s, 0.0, &mut rng);
        let hi = sample_at_level(&s, 1.0, &mut rng);
        assert_eq!(lo, SubnetConfig::smallest(&s));
        assert_eq!(hi, SubnetConfig::largest(&s));
        let mid: Vec<u64> = (0..50)
            .map(|_| cost(&s, &sample_at_level(&s, 0.5, &mut rng)).macs)
            .collect();
        let (a, b) = (cost(&s, &lo).macs, cost(&s, &hi).macs);
        assert!(mid.iter().all(|&m| m > a && m < b));
    }
}
