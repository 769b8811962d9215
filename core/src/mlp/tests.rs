use super::*;
use crate::dag::{DagSpec, Limits, validate};
use crate::profile::FnProfile;

fn dag(yaml: &str) -> Dag {
    validate(
        DagSpec::from_yaml_str(yaml).unwrap(),
        &Limits::default(),
        &|_| true,
    )
    .unwrap()
}

fn t(d: &Dag, id: &str) -> TaskIdx {
    d.lookup(id).unwrap()
}

/// Functions with a fixed exec and cold start (µs), and branch counts per guarded task.
fn profile(fns: &[(&str, u64, u64)], branches: &[(&str, u64, u64)]) -> DagProfile {
    let mut p = DagProfile::new();
    for &(f, exec, cold) in fns {
        let mut fp = FnProfile::default();
        fp.exec_us.record(exec);
        fp.cold_start_us.record(cold);
        p.insert(f, fp);
    }
    for &(task, taken, not) in branches {
        for _ in 0..taken {
            p.record_branch(task, true);
        }
        for _ in 0..not {
            p.record_branch(task, false);
        }
    }
    p
}

fn on_path(m: &Mlp, d: &Dag) -> Vec<String> {
    m.path
        .iter()
        .map(|p| d.id(p.task).as_str().to_owned())
        .collect()
}

fn cfg(prior: f64, strategy: Strategy) -> MlpConfig {
    MlpConfig {
        prior,
        strategy,
        ..MlpConfig::default()
    }
}

/// research/gpu-speculation.md §9: v→a 0.6, v→b 0.4; a→a1 0.5, a→a2 0.5; b→b1 1.0.
const GREEDY_VS_PRODUCT: &str = "
name: gp
tasks:
  - {id: v, fn: f}
  - {id: a, fn: f, deps: [v], guard: {dep: v, equals: 0}}
  - {id: b, fn: f, deps: [v], guard: {dep: v, equals: 1}}
  - {id: a1, fn: f, deps: [a], guard: {dep: a, equals: 0}}
  - {id: a2, fn: f, deps: [a], guard: {dep: a, equals: 1}}
  - {id: b1, fn: f, deps: [b], guard: {dep: b, equals: 0}}
";

fn gp_profile() -> DagProfile {
    profile(
        &[("f", 10, 100)],
        &[
            ("a", 60, 40),
            ("b", 40, 60),
            ("a1", 30, 30),
            ("a2", 30, 30),
            ("b1", 40, 0),
        ],
    )
}

#[test]
fn greedy_and_max_product_disagree() {
    let d = dag(GREEDY_VS_PRODUCT);
    let p = gp_profile();
    let obs = Observed::default();
    let greedy = mlp(&d, &p, &obs, &cfg(0.0, Strategy::Greedy));
    assert_eq!(on_path(&greedy, &d), ["v", "a", "a1"]);
    assert!(
        (greedy.probability - 0.30).abs() < 1e-12,
        "{}",
        greedy.probability
    );
    let best = mlp(&d, &p, &obs, &cfg(0.0, Strategy::MaxProduct));
    assert_eq!(on_path(&best, &d), ["v", "b", "b1"]);
    assert!(
        (best.probability - 0.40).abs() < 1e-12,
        "{}",
        best.probability
    );
    assert!(best.exact);
    assert_eq!(best.choices.len(), 2);
    assert_eq!(best.choices[0].dep, t(&d, "v"));
    assert_eq!(best.choices[0].taken, [t(&d, "b")]);
    // With Laplace smoothing the answer is the same: 41/102 · 41/42 > 61/102 · 1/2.
    let smoothed = mlp(&d, &p, &obs, &cfg(1.0, Strategy::MaxProduct));
    assert_eq!(on_path(&smoothed, &d), ["v", "b", "b1"]);
    let expect = 41.0 / 102.0 * 41.0 / 42.0;
    assert!((smoothed.probability - expect).abs() < 1e-12);
}

#[test]
fn a_search_bound_falls_back_to_greedy_completion() {
    let d = dag(GREEDY_VS_PRODUCT);
    let c = MlpConfig {
        prior: 0.0,
        max_expansions: 1,
        ..MlpConfig::default()
    };
    let m = mlp(&d, &gp_profile(), &Observed::default(), &c);
    assert!(!m.exact);
    assert_eq!(on_path(&m, &d), ["v", "a", "a1"]);
}

#[test]
fn observed_outcomes_pin_branches() {
    let d = dag(GREEDY_VS_PRODUCT);
    let p = gp_profile();
    let c = cfg(0.0, Strategy::MaxProduct);
    // v's output was 0: a ran, b was skipped.
    let obs = Observed {
        outcomes: vec![(t(&d, "a"), true), (t(&d, "b"), false)],
        ..Observed::default()
    };
    let m = mlp(&d, &p, &obs, &c);
    assert_eq!(on_path(&m, &d), ["v", "a", "a1"]);
    assert!(m.choices[0].pinned);
    assert_eq!(m.choices[0].probability, 1.0);
    assert!((m.probability - 0.5).abs() < 1e-12);
    // Only "b not taken" seen: that rules b out, which leaves a.
    let obs = Observed {
        outcomes: vec![(t(&d, "b"), false)],
        ..Observed::default()
    };
    assert_eq!(on_path(&mlp(&d, &p, &obs, &c), &d), ["v", "a", "a1"]);
    // a1 not taken either: a2.
    let obs = Observed {
        outcomes: vec![
            (t(&d, "a"), true),
            (t(&d, "b"), false),
            (t(&d, "a1"), false),
        ],
        ..Observed::default()
    };
    let m = mlp(&d, &p, &obs, &c);
    assert_eq!(on_path(&m, &d), ["v", "a", "a2"]);
    assert_eq!(m.probability, 1.0);
}

#[test]
fn an_if_without_else_may_skip_and_unseen_edges_are_even() {
    let d = dag("
name: maybe
tasks:
  - {id: r, fn: f}
  - {id: x, fn: f, deps: [r], guard: {dep: r, equals: true}}
  - {id: y, fn: f, deps: [x]}
  - {id: z, fn: f, deps: [r]}
");
    let c = MlpConfig::default();
    // Unseen: taken and none both 1/2; ties go to the guarded branch (DAG order).
    let m = mlp(&d, &DagProfile::new(), &Observed::default(), &c);
    assert_eq!(on_path(&m, &d), ["r", "x", "z", "y"]);
    assert_eq!(m.probability, 0.5);
    // Mostly skipped: the MLP leaves x and its dependent y out.
    let p = profile(&[], &[("x", 10, 90)]);
    let m = mlp(&d, &p, &Observed::default(), &c);
    assert_eq!(on_path(&m, &d), ["r", "z"]);
    assert_eq!(m.choices[0].taken, Vec::<TaskIdx>::new());
    assert!((m.probability - 91.0 / 102.0).abs() < 1e-12);
    let bps = branch_points(&d, &p, &Observed::default(), 1.0);
    assert_eq!(bps.len(), 1);
    assert_eq!(bps[0].outcomes.len(), 2);
    assert!((bps[0].outcomes[1].probability - 11.0 / 102.0).abs() < 1e-12);
}

#[test]
fn a_switch_counts_none_only_once_seen_and_groups_share_a_value() {
    let d = dag("
name: switch
tasks:
  - {id: r, fn: f}
  - {id: a, fn: f, deps: [r], guard: {dep: r, equals: 1}}
  - {id: a2, fn: f, deps: [r], guard: {dep: r, equals: 1}}
  - {id: b, fn: f, deps: [r], guard: {dep: r, equals: 2}}
");
    let bps = branch_points(&d, &DagProfile::new(), &Observed::default(), 1.0);
    assert_eq!(bps[0].outcomes.len(), 2, "{bps:?}");
    assert_eq!(bps[0].outcomes[0].taken, [t(&d, "a"), t(&d, "a2")]);
    // 10 runs: 3 took a, 2 took b, 5 neither.
    let p = profile(&[], &[("a", 3, 7), ("a2", 3, 7), ("b", 2, 8)]);
    let bps = branch_points(&d, &p, &Observed::default(), 1.0);
    let probs: Vec<f64> = bps[0].outcomes.iter().map(|o| o.probability).collect();
    assert_eq!(probs, [6.0 / 13.0, 4.0 / 13.0, 3.0 / 13.0]);
    assert!(bps[0].outcomes[0].taken.is_empty());
    let m = mlp(&d, &p, &Observed::default(), &MlpConfig::default());
    assert_eq!(on_path(&m, &d), ["r"]);
}

#[test]
fn chain_timing_follows_the_warmth() {
    let d = dag("
name: chain
tasks:
  - {id: t0, fn: f0}
  - {id: t1, fn: f1, deps: [t0]}
  - {id: t2, fn: f2, deps: [t1]}
");
    let p = profile(&[("f0", 50, 500), ("f1", 50, 500), ("f2", 50, 500)], &[]);
    let run = |warmth| {
        let c = MlpConfig {
            warmth,
            ..MlpConfig::default()
        };
        let m = mlp(&d, &p, &Observed::default(), &c);
        let starts: Vec<u64> = m.path.iter().map(|x| x.start_us).collect();
        (starts, m.makespan_us)
    };
    assert_eq!(run(Warmth::Warm), (vec![0, 50, 100], 150));
    assert_eq!(run(Warmth::Cold), (vec![0, 550, 1100], 1650));
    // Warm-up from t=0: only the first task waits for it.
    assert_eq!(run(Warmth::ReadyAfter(0)), (vec![0, 550, 600], 650));
    let m = mlp(&d, &p, &Observed::default(), &MlpConfig::default());
    assert_eq!(m.path[1].exec_us, 50);
    assert_eq!(m.path[1].cold_start_us, 500);
}

#[test]
fn start_times_are_the_critical_path_and_join_any_follows_the_branch_taken() {
    let d = dag("
name: diamond
tasks:
  - {id: r, fn: short}
  - {id: slow, fn: long, deps: [r]}
  - {id: fast, fn: short, deps: [r]}
  - {id: both, fn: short, deps: [slow, fast]}
  - {id: yes, fn: long, deps: [both], guard: {dep: both, equals: true}}
  - {id: no, fn: short, deps: [both], guard: {dep: both, equals: false}}
  - {id: end, fn: short, deps: [yes, no], join: any}
");
    let p = profile(
        &[("short", 10, 0), ("long", 100, 0)],
        &[("yes", 1, 3), ("no", 3, 1)],
    );
    let c = MlpConfig {
        hop_us: 1,
        ..MlpConfig::default()
    };
    let m = mlp(&d, &p, &Observed::default(), &c);
    assert_eq!(on_path(&m, &d), ["r", "slow", "fast", "both", "no", "end"]);
    let at = |id: &str| m.task(t(&d, id)).unwrap().start_us;
    assert_eq!(at("slow"), 11);
    assert_eq!(at("fast"), 11);
    assert_eq!(at("both"), 112); // after slow (11 + 100 + 1)
    assert_eq!(at("no"), 123);
    assert_eq!(at("end"), 134);
    assert_eq!(m.makespan_us, 144);
    assert!(!m.on_path(t(&d, "yes")));
    // Observed: both finished late, and chose yes.
    let obs = Observed {
        outcomes: vec![(t(&d, "yes"), true), (t(&d, "no"), false)],
        started: vec![(t(&d, "both"), 300)],
        finished: vec![(t(&d, "both"), 310)],
        ..Observed::default()
    };
    let m = mlp(&d, &p, &obs, &c);
    assert_eq!(on_path(&m, &d), ["r", "slow", "fast", "both", "yes", "end"]);
    let at = |id: &str| m.task(t(&d, id)).unwrap().start_us;
    assert_eq!(at("yes"), 311);
    assert_eq!(at("end"), 412);
}

#[test]
fn skipping_propagates_through_join_all() {
    let d = dag("
name: skip
tasks:
  - {id: r, fn: f}
  - {id: g, fn: f, deps: [r], guard: {dep: r, equals: 1}}
  - {id: h, fn: f, deps: [r]}
  - {id: all, fn: f, deps: [g, h]}
  - {id: any, fn: f, deps: [g, h], join: any}
");
    let p = profile(&[], &[("g", 0, 5)]);
    let m = mlp(&d, &p, &Observed::default(), &MlpConfig::default());
    assert_eq!(on_path(&m, &d), ["r", "h", "any"]);
}
