use super::sim::{SimFn, SimSpec, exact_profile, simulate, workloads};
use super::*;
use rukong_core::value::Value;

const C: u64 = 500_000;
const E: u64 = 50_000;

fn fns(dag: &Dag, c: u64, e: u64) -> BTreeMap<String, SimFn> {
    dag.funcs()
        .iter()
        .map(|f| {
            (
                f.clone(),
                SimFn {
                    exec_us: e,
                    cold_start_us: c,
                },
            )
        })
        .collect()
}

fn run_chain(n: usize, mode: WarmupMode) -> Accounting {
    let dag = workloads::chain(n);
    let fns = fns(&dag, C, E);
    let profile = exact_profile(&fns, &[]);
    let spec = SimSpec {
        dag: &dag,
        fns,
        default: SimFn {
            exec_us: E,
            cold_start_us: C,
        },
        outputs: BTreeMap::new(),
        profile: &profile,
    };
    simulate(&spec, mode, &WarmupConfig::default()).accounting
}

#[test]
fn modes_parse_and_serialize() {
    for m in WarmupMode::ALL {
        assert_eq!(m.as_str().parse::<WarmupMode>(), Ok(m));
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            format!("\"{}\"", m.as_str())
        );
        assert_eq!(
            serde_json::from_str::<WarmupMode>(&format!("\"{m}\"")).unwrap(),
            m
        );
    }
    assert_eq!(" JIT ".parse::<WarmupMode>(), Ok(WarmupMode::Jit));
    let e = "eager".parse::<WarmupMode>().unwrap_err();
    assert_eq!(
        e.to_string(),
        "unknown warm-up mode \"eager\": expected one of reactive, speculative, jit, oracle"
    );
}

/// The issue's chain: reactive ≈ n·(c+e), jit ≈ c + n·e, speculative = jit's latency with a
/// higher C_r.
#[test]
fn chain_reactive_pays_n_cold_starts_and_jit_one() {
    let margin = WarmupConfig::default().margin_us;
    for n in [1usize, 2, 5, 10, 20] {
        let nn = n as u64;
        let r = run_chain(n, WarmupMode::Reactive);
        let j = run_chain(n, WarmupMode::Jit);
        let s = run_chain(n, WarmupMode::Speculative);
        let o = run_chain(n, WarmupMode::Oracle);
        assert_eq!(r.latency_us, nn * (C + E), "n={n}");
        assert_eq!(r.c_d_us, nn * C);
        assert_eq!(r.cold_starts, n as u32);
        assert_eq!(r.c_r_us, nn * C);
        assert_eq!(r.hints_issued, 0);
        assert_eq!(j.latency_us, C + nn * E, "n={n}");
        assert_eq!(j.c_d_us, C);
        assert_eq!(j.cold_starts, 1);
        assert_eq!(j.hints_issued, n as u32);
        assert_eq!(j.hints_used, n as u32);
        assert_eq!(j.hints_wasted, 0);
        // Each later function is warm `margin` before its trigger.
        assert_eq!(j.c_r_us, nn * C + (nn - 1) * margin);
        assert_eq!(s.latency_us, j.latency_us);
        // Speculative: function i waits from 0 to c + i·e.
        assert_eq!(s.c_r_us, nn * C + E * nn * (nn - 1) / 2);
        if n > 1 {
            assert!(s.c_r_us > j.c_r_us);
        }
        assert_eq!(o, j);
    }
}

/// Length of each side of the branch in [`branchy`].
const K: usize = 12;

fn branchy(choose_b: bool, mode: WarmupMode) -> (Dag, sim::SimReport) {
    // root → if root == 0: a0 → … → a(K-1), else b0 → … → b(K-1); merged by m0 (join any).
    let dag = workloads::branching(1, K);
    let fns = fns(&dag, C, E);
    let profile = exact_profile(&fns, &[("s0a0", 90, 10), ("s0b0", 10, 90)]);
    let root = dag.lookup("root").unwrap();
    let spec = SimSpec {
        dag: &dag,
        fns,
        default: SimFn {
            exec_us: E,
            cold_start_us: C,
        },
        outputs: [(root, Value::Int(i64::from(choose_b)))].into(),
        profile: &profile,
    };
    let r = simulate(&spec, mode, &WarmupConfig::default());
    (dag.clone(), r)
}

#[test]
fn wrong_branch_costs_exactly_one_cold_start_and_cancels_stale_hints() {
    for mode in [WarmupMode::Jit, WarmupMode::Speculative] {
        let (dag, right) = branchy(false, mode);
        let (_, wrong) = branchy(true, mode);
        let (r, w) = (&right.accounting, &wrong.accounting);
        assert_eq!(r.cold_starts, 1, "{mode}: {r:?}");
        assert_eq!(r.replans, 0);
        assert_eq!(w.cold_starts, 2, "{mode}: {w:?}");
        assert_eq!(w.replans, 1);
        assert_eq!(w.latency_us, r.latency_us + C, "{mode}");
        assert_eq!(w.c_d_us, r.c_d_us + C);
        // The b-branch ran: root, b0..b(K-1), m0.
        let ran: Vec<&str> = wrong
            .tasks
            .iter()
            .map(|t| dag.id(t.task).as_str())
            .collect();
        let mut expect = vec!["root".to_string()];
        expect.extend((0..K).map(|i| format!("s0b{i}")));
        expect.push("m0".into());
        assert_eq!(ran, expect);
        // Hints for the a-branch not yet issued were cancelled, issued ones released, and
        // none of them was used.
        let a_hints: Vec<&Hint> = wrong
            .hints
            .iter()
            .filter(|h| dag.id(h.task).as_str().starts_with("s0a"))
            .collect();
        assert_eq!(a_hints.len(), K);
        for h in &a_hints {
            assert!(
                wrong.cancelled.contains(&h.id) || wrong.released.contains(&h.id),
                "{mode}: {h:?} still live"
            );
        }
        // Pending hints were cancelled, issued ones released. JIT issues a hint `c + margin`
        // before its trigger, so with c = 10·e the branch's first 11 hints were out when the
        // root finished; speculative had issued everything at 0.
        let root_done = C + E;
        for h in &a_hints {
            if h.issue_at_us <= root_done {
                assert!(wrong.released.contains(&h.id), "{mode}: {h:?}");
            } else {
                assert!(wrong.cancelled.contains(&h.id), "{mode}: {h:?}");
            }
        }
        // JIT also re-times m0's pending hint: m0 is now triggered a cold start later.
        let m0 = dag.lookup("m0").unwrap();
        let m0_hints: Vec<&Hint> = wrong.hints.iter().filter(|h| h.task == m0).collect();
        let (released, cancelled) = match mode {
            WarmupMode::Jit => {
                assert_eq!(m0_hints.len(), 2);
                assert!(wrong.cancelled.contains(&m0_hints[0].id));
                assert_eq!(
                    m0_hints[1].issue_at_us,
                    m0_hints[0].issue_at_us + C,
                    "{m0_hints:?}"
                );
                (11, K - 11 + 1)
            }
            _ => {
                assert_eq!(m0_hints.len(), 1);
                (K, 0)
            }
        };
        assert_eq!(wrong.released.len(), released, "{mode}");
        assert_eq!(wrong.cancelled.len(), cancelled, "{mode}");
        assert_eq!(w.hints_wasted, released as u32);
        // New hints for the b-branch from the moment the branch is known.
        let b_hints: Vec<&Hint> = wrong
            .hints
            .iter()
            .filter(|h| dag.id(h.task).as_str().starts_with("s0b"))
            .collect();
        assert_eq!(b_hints.len(), K);
        assert!(b_hints.iter().all(|h| h.issue_at_us >= root_done));
        assert_eq!(
            w.hints_used,
            1 + K as u32 + 1,
            "{mode}: root, the b-branch, m0"
        );
    }
    // Reactive never plans; oracle knows the branch.
    let (_, r) = branchy(true, WarmupMode::Reactive);
    assert_eq!(r.accounting.cold_starts, K as u32 + 2);
    assert_eq!(r.accounting.hints_planned, 0);
    let (_, o) = branchy(true, WarmupMode::Oracle);
    assert_eq!(o.accounting.cold_starts, 1);
    assert_eq!(o.accounting.replans, 0);
    assert_eq!(o.accounting.hints_wasted, 0);
}

/// research/gpu-speculation.md §1.5: A → {B (0.8), C (0.2)}, B → D; A 1.0 s (warm), B 2.0 s;
/// warm-up B 1.5 s, C 1.5 s, D 1.0 s; margin 0.2 s.
#[test]
fn worked_example_plan_and_replan() {
    let yaml = "
name: xanadu
tasks:
  - {id: A, fn: fa}
  - {id: B, fn: fb, deps: [A], guard: {dep: A, equals: b}}
  - {id: C, fn: fc, deps: [A], guard: {dep: A, equals: c}}
  - {id: D, fn: fd, deps: [B]}
";
    let dag = rukong_core::dag::validate(
        rukong_core::DagSpec::from_yaml_str(yaml).unwrap(),
        &rukong_core::Limits::default(),
        &|_| true,
    )
    .unwrap();
    let s = 1_000_000u64;
    let fns: BTreeMap<String, SimFn> = [
        ("fa", s, 0),
        ("fb", 2 * s, 3 * s / 2),
        ("fc", s, 3 * s / 2),
        ("fd", s, s),
    ]
    .into_iter()
    .map(|(f, e, c)| {
        (
            f.to_string(),
            SimFn {
                exec_us: e,
                cold_start_us: c,
            },
        )
    })
    .collect();
    let profile = exact_profile(&fns, &[("B", 8, 2), ("C", 2, 8)]);
    let cfg = WarmupConfig {
        margin_us: s / 5,
        ..WarmupConfig::default()
    };
    let id = |x: &str| dag.lookup(x).unwrap();
    let mut p = Planner::new(WarmupMode::Jit, &dag, &profile, &cfg, &[]);
    let names: Vec<&str> = p
        .mlp()
        .path
        .iter()
        .map(|t| dag.id(t.task).as_str())
        .collect();
    assert_eq!(names, ["A", "B", "D"]);
    let at: BTreeMap<&str, u64> = p
        .live_hints()
        .map(|h| (dag.id(h.task).as_str(), h.issue_at_us))
        .collect();
    // A is warm at once (cold start 0); B as soon as possible (its trigger at 1.0 s is
    // closer than its 1.5 s warm-up), so B starts at 1.5 s and D is triggered at 3.5 s:
    // D's warm-up starts at 3.5 − 1.0 − 0.2 = 2.3 s.
    assert_eq!(at["B"], 0);
    assert_eq!(at["D"], 23 * s / 10);
    let d_hint = p.live_hints().find(|h| h.task == id("D")).unwrap().id;
    let b_hint = p.live_hints().find(|h| h.task == id("B")).unwrap().id;
    // Misprediction: A's output selects C at 1.0 s.
    p.on_started(id("A"), 0);
    let r = p
        .on_finished(&dag, id("A"), s, &[(id("B"), false), (id("C"), true)])
        .unwrap();
    assert_eq!(r.cancel, [d_hint]);
    assert_eq!(r.release, [b_hint]);
    assert_eq!(r.issue.len(), 1);
    assert_eq!(r.issue[0].task, id("C"));
    assert_eq!(r.issue[0].issue_at_us, s);
    assert_eq!(r.issue[0].ready_at_us, s + 3 * s / 2);
    let names: Vec<&str> = p
        .mlp()
        .path
        .iter()
        .map(|t| dag.id(t.task).as_str())
        .collect();
    assert_eq!(names, ["A", "C"]);
    // An outcome that agrees with the MLP changes nothing.
    let mut q = Planner::new(WarmupMode::Jit, &dag, &profile, &cfg, &[]);
    assert!(
        q.on_finished(&dag, id("A"), s, &[(id("B"), true), (id("C"), false)])
            .is_none()
    );
}

#[test]
fn tasks_of_one_function_share_a_warm_instance() {
    // A chain of 4 tasks of the same function: one hint; the instance stays warm.
    let yaml = "
name: same
tasks:
  - {id: t0, fn: f}
  - {id: t1, fn: f, deps: [t0]}
  - {id: t2, fn: f, deps: [t1]}
  - {id: t3, fn: f, deps: [t2]}
  - {id: g, fn: g, deps: [t0], resources: {gpu: 1}}
";
    let dag = rukong_core::dag::validate(
        rukong_core::DagSpec::from_yaml_str(yaml).unwrap(),
        &rukong_core::Limits::default(),
        &|_| true,
    )
    .unwrap();
    let fns = fns(&dag, C, E);
    let profile = exact_profile(&fns, &[]);
    let cfg = WarmupConfig::default();
    let p = Planner::new(WarmupMode::Speculative, &dag, &profile, &cfg, &[]);
    let hints: Vec<(&str, ExecClass)> = p
        .live_hints()
        .map(|h| (dag.id(h.task).as_str(), h.class))
        .collect();
    assert_eq!(hints, [("t0", ExecClass::Cpu), ("g", ExecClass::Gpu)]);
    let spec = SimSpec {
        dag: &dag,
        fns,
        default: SimFn {
            exec_us: E,
            cold_start_us: C,
        },
        outputs: BTreeMap::new(),
        profile: &profile,
    };
    let a = simulate(&spec, WarmupMode::Jit, &cfg).accounting;
    assert_eq!(a.latency_us, C + 4 * E);
    assert_eq!(a.hints_used, 2);
    let r = simulate(&spec, WarmupMode::Reactive, &cfg).accounting;
    assert_eq!(r.cold_starts, 2, "f once, g once");
}

#[test]
fn a_hint_that_expires_before_use_is_wasted() {
    // The profile says exec 50 ms, but the real exec is 3 s: speculative hints for t1 expire
    // (TTL 1 s after its expected start) before t0 finishes.
    let dag = workloads::chain(2);
    let believed = fns(&dag, C, E);
    let profile = exact_profile(&believed, &[]);
    let mut real = believed.clone();
    real.get_mut("f0").unwrap().exec_us = 3_000_000;
    let spec = SimSpec {
        dag: &dag,
        fns: real,
        default: SimFn {
            exec_us: E,
            cold_start_us: C,
        },
        outputs: BTreeMap::new(),
        profile: &profile,
    };
    let a = simulate(&spec, WarmupMode::Speculative, &WarmupConfig::default()).accounting;
    assert_eq!(a.hints_issued, 2);
    assert_eq!(a.hints_wasted, 1);
    assert_eq!(a.cold_starts, 2);
    assert_eq!(a.latency_us, C + 3_000_000 + C + E);
    // Held from 0 to its expiry: expected start (c + e) + TTL.
    assert_eq!(a.c_r_us, C + (C + E + 1_000_000) + C);
}

#[test]
fn the_engine_runs_every_mode_but_oracle() {
    for mode in [
        WarmupMode::Reactive,
        WarmupMode::Speculative,
        WarmupMode::Jit,
    ] {
        assert_eq!(mode.for_engine(), Ok(mode));
        assert_eq!(WarmupMode::parse_for_engine(mode.as_str()), Ok(mode));
    }
    assert_eq!(WarmupMode::Oracle.for_engine(), Err(OracleOutsideSimulator));
    let e = WarmupMode::parse_for_engine("oracle").unwrap_err();
    assert!(
        e.contains("only in the simulator") && e.contains("jit"),
        "{e}"
    );
    // The simulator still parses it, and unknown names keep their own error.
    assert_eq!("oracle".parse::<WarmupMode>(), Ok(WarmupMode::Oracle));
    let e = WarmupMode::parse_for_engine("psychic").unwrap_err();
    assert!(e.contains("unknown warm-up mode"), "{e}");
}
