//! The bundle-size chooser on measured curves, and its setting's serde form.

use super::*;

fn ms(x: f64) -> Duration {
    Duration::from_secs_f64(x / 1e3)
}

fn cfg() -> BundleConfig {
    BundleConfig::default()
}

#[test]
fn profile_sizes_are_powers_of_two_up_to_max() {
    assert_eq!(profile_sizes(64), [1, 2, 4, 8, 16, 32, 64]);
    assert_eq!(profile_sizes(10), [1, 2, 4, 8, 10]);
    assert_eq!(profile_sizes(1), [1]);
    assert!(profile_sizes(0).is_empty());
}

#[test]
fn u_shaped_curve_picks_the_bottom() {
    // Per-item latency 10, 6, 4, 3, 3.5, 5, 8 ms: best at 8.
    let per_item = [10.0, 6.0, 4.0, 3.0, 3.5, 5.0, 8.0];
    let profile: Vec<(usize, Duration)> = profile_sizes(64)
        .into_iter()
        .zip(per_item)
        .map(|(b, p)| (b, ms(p * b as f64)))
        .collect();
    let c = choose(&profile, &cfg()).unwrap();
    assert_eq!(c.size, 8);
    assert!((c.throughput - 1000.0 / 3.0).abs() < 1e-6);
    assert!((c.per_item.as_secs_f64() - 0.003).abs() < 1e-9);
    assert_eq!(cfg().resolve(&profile), 8);
    // A cap on one launch's latency (8 × 3 ms = 24 ms) pushes it down.
    let capped = BundleConfig {
        max_latency: Some(ms(20.0)),
        ..cfg()
    };
    assert_eq!(choose(&profile, &capped).unwrap().size, 4);
    // And max_size bounds it.
    let small = BundleConfig {
        max_size: 2,
        ..cfg()
    };
    assert_eq!(choose(&profile, &small).unwrap().size, 2);
}

#[test]
fn plateau_prefers_the_smallest_size_within_tolerance() {
    // t(b) = 1 ms + 0.1 ms · b: throughput keeps rising slowly toward 10,000/s.
    let profile: Vec<(usize, Duration)> = profile_sizes(64)
        .into_iter()
        .map(|b| (b, ms(1.0 + 0.1 * b as f64)))
        .collect();
    let exact = BundleConfig {
        tolerance: 0.0,
        ..cfg()
    };
    assert_eq!(choose(&profile, &exact).unwrap().size, 64);
    // Throughput at 64 is 64/7.4 ms = 8649/s; within 5% means ≥ 8216/s, first reached
    // at 64 too; with 20%, ≥ 6919/s: 32 gives 32/4.2 ms = 7619/s, 16 gives 6154/s.
    let loose = BundleConfig {
        tolerance: 0.2,
        ..cfg()
    };
    assert_eq!(choose(&profile, &loose).unwrap().size, 32);
}

#[test]
fn repeated_samples_are_averaged_and_empty_profiles_give_none() {
    let profile = vec![(1, ms(10.0)), (1, ms(12.0)), (2, ms(30.0)), (0, ms(1.0))];
    assert_eq!(summarize(&profile), vec![(1, ms(11.0)), (2, ms(30.0))]);
    assert_eq!(choose(&profile, &cfg()).unwrap().size, 1);
    assert!(choose(&[], &cfg()).is_none());
    assert_eq!(cfg().resolve(&[]), 1);
    let fixed = BundleConfig {
        size: BundleSize::Fixed(16),
        ..cfg()
    };
    assert_eq!(fixed.resolve(&profile), 16);
}

#[test]
fn simulated_exec_model_has_an_interior_optimum_with_a_latency_cap() {
    let model = crate::device::ExecModel::default();
    let profile: Vec<(usize, Duration)> = profile_sizes(64)
        .into_iter()
        .map(|b| (b, model.time(b, 1.0)))
        .collect();
    // Sublinear growth: the biggest bundle has the best throughput...
    assert_eq!(choose(&profile, &cfg()).unwrap().size, 64);
    // ...but a cap on launch latency picks the largest size under it.
    let capped = BundleConfig {
        max_latency: Some(model.time(16, 1.0)),
        ..cfg()
    };
    assert_eq!(choose(&profile, &capped).unwrap().size, 16);
}

#[test]
fn serde_forms() {
    let c: BundleConfig = serde_json::from_str(r#"{"size": 8, "linger_ms": 2.5}"#).unwrap();
    assert_eq!(c.size, BundleSize::Fixed(8));
    assert_eq!(c.linger, Duration::from_micros(2500));
    assert_eq!(c.max_size, 64);
    let c: BundleConfig = serde_json::from_str(r#"{"size": "auto", "max_latency_ms": 4}"#).unwrap();
    assert_eq!(c.size, BundleSize::Auto);
    assert_eq!(c.max_latency, Some(Duration::from_millis(4)));
    assert_eq!(
        serde_json::from_str::<BundleConfig>("{}").unwrap(),
        BundleConfig::default()
    );
    for bad in [
        r#"{"size": 0}"#,
        r#"{"size": -3}"#,
        r#"{"size": "big"}"#,
        r#"{"linger_ms": -1}"#,
    ] {
        let e = serde_json::from_str::<BundleConfig>(bad).unwrap_err();
        assert!(!e.to_string().is_empty(), "{bad}");
    }
    let back = serde_json::to_value(BundleConfig::default()).unwrap();
    assert_eq!(back["size"], "auto");
    assert_eq!(back["linger_ms"], 1.0);
    let fixed = serde_json::to_value(BundleSize::Fixed(4)).unwrap();
    assert_eq!(fixed, 4);
    assert!(BundleConfig::default().validate().is_ok());
    let bad = BundleConfig {
        tolerance: 1.5,
        ..cfg()
    };
    assert!(bad.validate().is_err());
}
