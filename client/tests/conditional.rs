//! Conditional branches (`docs/conditional-branches.md`) in embedded mode: skip propagation through
//! chains, fan-outs (in-process and proxy-handled), fan-ins (`join: all` / `join: any`), skipped
//! outputs in the report and the CLI JSON, and branch outcomes in the profile.

mod common;

use common::conditional::{Case, all_cases, cascade, check_json, fan_in};
use rukong_client::output::{output_lines, report_json};
use rukong_client::{DagSpec, JobBuilder, JobReport, Local, LocalConfig};
use rukong_core::Value;
use rukong_core::store::ProfileStore;

fn local_with(slots: usize, inline_limit: usize, proxy_fanout: u32) -> Local {
    let mut c = LocalConfig {
        slots,
        ..LocalConfig::default()
    };
    c.engine.job.inline_limit = inline_limit;
    c.engine.job.proxy_fanout = proxy_fanout;
    Local::start(c).expect("embedded runtime starts")
}

fn run(local: &Local, case: &Case) -> JobReport {
    let spec = DagSpec::from_yaml_str(&case.yaml).expect("case parses");
    local
        .run(spec)
        .unwrap_or_else(|e| panic!("{}: {e}", case.name))
}

fn check_report(case: &Case, r: &JobReport, how: &str) {
    for (id, want) in &case.expect {
        match want {
            Some(w) => {
                let got = r
                    .output(id)
                    .unwrap_or_else(|| panic!("{} ({how}): no output {id}", case.name));
                assert_eq!(&got.to_output_json(), w, "{} ({how}): {id}", case.name);
                assert!(!r.is_skipped(id));
            }
            None => {
                assert!(r.is_skipped(id), "{} ({how}): {id} not skipped", case.name);
                assert_eq!(r.output(id), None);
            }
        }
    }
    assert_eq!(
        r.outputs.len() + r.skipped.len(),
        case.expect.len(),
        "{} ({how}): every output is a value or skipped",
        case.name
    );
    check_json(case, &report_json(r, 2), how);
}

/// Every shape, under configurations that take every path: one slot or two; fan-outs kept
/// in-process (F = 1000) or all handed to the proxy (F = 2); outputs inline, or every one
/// through the object store (P = 0).
#[test]
fn skips_propagate_through_every_shape_on_every_path() {
    for (slots, inline, fanout) in [
        (2, 512 << 20, 10),
        (1, 512 << 20, 1000),
        (2, 512 << 20, 2),
        (2, 0, 2),
        (3, 0, 1000),
    ] {
        let local = local_with(slots, inline, fanout);
        for case in all_cases() {
            let how = format!("slots {slots}, P {inline}, F {fanout}");
            let r = run(&local, &case);
            check_report(&case, &r, &how);
        }
    }
}

/// Timing must not matter: run the fan-in case (a skipped parent arriving first or last)
/// many times on several slots.
#[test]
fn fan_in_decisions_do_not_depend_on_arrival_order() {
    let local = local_with(4, 512 << 20, 2);
    let case = fan_in();
    for i in 0..20 {
        let r = run(&local, &case);
        check_report(&case, &r, &format!("round {i}"));
    }
}

#[test]
fn the_plain_output_says_skipped() {
    let local = local_with(2, 512 << 20, 10);
    let r = run(&local, &cascade());
    assert_eq!(
        output_lines(&r),
        vec![
            r#"street.answer: {"confidence":0.94,"label":"car"}"#,
            r#"fog.answer: {"confidence":0.87,"label":"truck"}"#,
            r#"fog.expensive: {"confidence":0.87,"label":"truck"}"#,
            "street.expensive: (skipped)",
        ]
    );
    assert_eq!(r.stats.skipped, 2);
    assert_eq!(r.tasks, 16);
}

/// Each evaluated guard feeds the DAG's profile: taken or not taken.
#[test]
fn branch_outcomes_reach_the_profile() {
    let local = local_with(2, 512 << 20, 10);
    let case = cascade();
    for _ in 0..3 {
        run(&local, &case);
    }
    // The last invocation merges its profile just after its results are in: poll briefly.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let p = loop {
        let p = futures_executor(local.store().get_profile("inference-cascade"));
        let total = |id: &str| p.branch(id).map_or(0, |b| b.total());
        if total("street.expensive.run") + total("fog.expensive.run") >= 6
            || std::time::Instant::now() > deadline
        {
            break p;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let street = p.branch("street.expensive.run").expect("street's guard");
    let fog = p.branch("fog.expensive.run").expect("fog's guard");
    assert_eq!((street.taken, street.not_taken), (0, 3));
    assert_eq!((fog.taken, fog.not_taken), (3, 0));
    assert!(p.branch("street.answer").is_none(), "no guard, no branch");
}

fn futures_executor<T>(
    f: impl std::future::Future<Output = Result<T, rukong_core::StoreError>>,
) -> T {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
        .unwrap()
}

/// A skipped source of a whole subtree: a guard at the top skips 1,000 tasks below it, and
/// nothing runs or waits.
#[test]
fn a_large_skipped_subtree_finishes_quickly() {
    let local = local_with(2, 512 << 20, 10);
    let mut b = JobBuilder::new("skip-tree");
    b.task("a", "const").arg(1);
    b.task("g", "fail").dep("a").arg("ran");
    let mut spec = b.build();
    spec.tasks[1].guard = Some(rukong_core::dag::Guard {
        dep: "a".into(),
        equals: Value::Int(0),
    });
    // g fans out to 500 chains of two, which fan in to one sink.
    let mut ends = Vec::new();
    for i in 0..500 {
        let mut t = spec.tasks[1].clone();
        t.id = format!("x{i}").into();
        t.deps = vec!["g".into()];
        t.guard = None;
        let mut u = t.clone();
        u.id = format!("y{i}").into();
        u.deps = vec![t.id.clone()];
        ends.push(u.id.clone());
        spec.tasks.push(t);
        spec.tasks.push(u);
    }
    let mut sink = spec.tasks[1].clone();
    sink.id = "sink".into();
    sink.deps = ends;
    sink.guard = None;
    spec.tasks.push(sink);
    let started = std::time::Instant::now();
    let r = local.run(spec).expect("runs");
    assert!(r.is_skipped("sink"), "{:?}", r.skipped);
    // (An invocation may flush its count just after the job ends: at most, not exactly.)
    assert!((1..=1002).contains(&r.stats.skipped), "{}", r.stats.skipped);
    assert!(r.tasks <= 1);
    assert!(started.elapsed().as_secs() < 10);
}
