//! End to end in embedded mode: the examples, the conformance vectors, and data passing
//! across the inline threshold.

mod common;

use common::{data, load, local, repo};
use rukong_client::workloads::Workload;
use rukong_client::{JobBuilder, Local, LocalConfig};
use rukong_core::Value;
use rukong_core::messages::JobState;

fn assert_outputs(
    local: &Local,
    spec: rukong_client::DagSpec,
    expected: &[(rukong_core::TaskId, Value)],
) {
    let name = spec.name.clone();
    let report = local.run(spec).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(report.state, JobState::Succeeded, "{name}");
    for (id, v) in expected {
        assert_eq!(report.output(id.as_str()), Some(v), "{name}: output {id}");
    }
    assert_eq!(
        report.outputs.len(),
        expected.len(),
        "{name}: no extra outputs"
    );
}

#[test]
fn every_example_produces_its_known_output() {
    let local = local(2, 64 * 1024);
    let cases = [
        (
            "examples/tree-reduction.yaml",
            Workload::TreeReduction { leaves: 1024 },
        ),
        (
            "examples/fanout-fanin.yaml",
            Workload::FanoutFanin { width: 1000 },
        ),
        ("examples/chain.yaml", Workload::Chain { length: 1000 }),
        ("examples/diamond.yaml", Workload::Diamond),
        (
            "examples/blob-digest.yaml",
            Workload::BlobDigest {
                producers: 4,
                size: 100_000,
            },
        ),
    ];
    for (file, w) in cases {
        let spec = load(&repo(file));
        assert_eq!(spec.tasks.len(), w.task_count(), "{file}");
        assert_outputs(&local, spec, &w.expected());
    }
}

#[test]
fn generated_workloads_match_their_closed_forms_at_scale() {
    let local = local(3, 64 * 1024);
    for w in [
        Workload::TreeReduction { leaves: 5000 },
        Workload::FanoutFanin { width: 20_000 },
        Workload::Chain { length: 20_000 },
        Workload::SleepFanout { width: 40, ms: 1 },
        Workload::BigData {
            producers: 3,
            mib: 1,
        },
        Workload::BlobDigest {
            producers: 12,
            size: 70_000,
        },
    ] {
        assert_outputs(&local, w.generate(), &w.expected());
    }
}

/// `docs/dag-format.md` conformance vectors: random DAGs over the built-ins with expected sink
/// outputs.
#[test]
fn conformance_vectors_match_expected_outputs() {
    let local = local(2, 64 * 1024);
    for n in [101, 102, 103] {
        let spec = load(&data(&format!("conformance/random-{n}.json")));
        let text = std::fs::read_to_string(data(&format!("conformance/random-{n}.expected.json")))
            .unwrap();
        let expected: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&text).unwrap();
        let report = local.run(spec).unwrap();
        assert_eq!(report.state, JobState::Succeeded, "random-{n}");
        assert_eq!(
            report.outputs.len(),
            expected.len(),
            "random-{n}: one output per sink"
        );
        for (id, v) in &report.outputs {
            assert_eq!(
                Some(&v.to_output_json()),
                expected.get(id.as_str()),
                "random-{n}: {id}"
            );
        }
    }
}

/// random-104 sums strings (`add("βeta", 21)`), which `docs/dag-format.md` does not define: `add`
/// sums numbers. rukong fails such a task with a clear error. (The vector's expected file counts
/// a string as its length, and also expects `identity(identity(identity("βeta")))` to be 4,
/// which contradicts `identity` under any reading; see the README's conformance notes.)
#[test]
fn conformance_vector_104_fails_clearly_on_summing_a_string() {
    let local = local(2, 64 * 1024);
    let spec = load(&data("conformance/random-104.json"));
    let funcs: std::collections::HashMap<String, String> = spec
        .tasks
        .iter()
        .map(|t| (t.id.to_string(), t.func.clone()))
        .collect();
    let report = local.run(spec).unwrap();
    let JobState::Failed { task, error } = &report.state else {
        panic!("expected a failure, got {:?}", report.state)
    };
    let f = &funcs[task.as_str()];
    assert!(f == "add" || f == "mul", "{task} runs {f}");
    assert!(
        error.starts_with(&format!("{f}: input ")) && error.contains("is a string"),
        "{error}"
    );
}

/// Values that straddle the inline threshold give the same results whether P is tiny
/// (everything through the object store) or huge (everything inline).
#[test]
fn results_do_not_depend_on_the_inline_threshold() {
    let p = 1000;
    let mut b = JobBuilder::new("straddle");
    for (i, n) in [p - 1, p, p + 1, 10 * p, 1].iter().enumerate() {
        b.task(format!("b{i}"), "blob").arg(*n as i64).arg(i as i64);
        b.task(format!("h{i}"), "sha256").dep(format!("b{i}"));
        b.task(format!("n{i}"), "len").dep(format!("b{i}"));
        b.task(format!("c{i}"), "concat")
            .deps([format!("b{i}"), format!("b{i}")]);
        b.task(format!("ch{i}"), "sha256").dep(format!("c{i}"));
    }
    b.task("all", "concat")
        .deps((0..5).map(|i| format!("b{i}")));
    b.task("all_h", "sha256").dep("all");
    b.task("all_n", "len").dep("all");
    let spec = b.build();
    let mut results = Vec::new();
    for limit in [16, p, 1 << 30] {
        let local = local(2, limit);
        let r = local.run(spec.clone()).unwrap();
        assert_eq!(r.state, JobState::Succeeded);
        if limit == 16 {
            assert!(
                r.stats.objects_put >= 5,
                "small P sends blobs by key: {:?}",
                r.stats
            );
        }
        if limit == 1 << 30 {
            assert_eq!(r.stats.objects_put, 0, "huge P keeps everything inline");
        }
        results.push(r.outputs);
    }
    assert_eq!(results[0], results[1]);
    assert_eq!(results[1], results[2]);
    let all_n = results[0]
        .iter()
        .find(|(id, _)| id.as_str() == "all_n")
        .unwrap();
    assert_eq!(all_n.1, Value::Int((p - 1 + p + p + 1 + 10 * p + 1) as i64));
}

#[test]
fn requested_outputs_may_be_inner_tasks_and_large() {
    let local = local(2, 64);
    let mut b = JobBuilder::new("inner");
    b.task("big", "blob").arg(5000).arg(7);
    b.task("n", "len").dep("big");
    b.output("big").output("n");
    let r = local.run(b.build()).unwrap();
    assert_eq!(r.state, JobState::Succeeded);
    let Some(Value::Bytes(bytes)) = r.output("big") else {
        panic!("{:?}", r.outputs)
    };
    assert_eq!(
        bytes.as_ref(),
        rukong_client::workloads::blob_bytes(5000, 7).as_slice()
    );
    assert_eq!(r.output("n"), Some(&Value::Int(5000)));
}

#[test]
fn a_deployment_runs_many_jobs_and_frees_each() {
    let local = Local::start(LocalConfig::default()).unwrap();
    for i in 0..20 {
        let w = Workload::TreeReduction { leaves: 1 + i * 37 };
        let r = local.run(w.generate()).unwrap();
        assert_eq!(r.outputs, w.expected());
    }
    assert_eq!(local.store().object_count(), 0, "no objects left behind");
    // A slot acks its last invocation just after the result event that ends the job.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut left = local.store().queue_len(rukong_core::ExecClass::Cpu);
    while left != (0, 0) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
        left = local.store().queue_len(rukong_core::ExecClass::Cpu);
    }
    assert_eq!(
        left,
        (0, 0),
        "no queue entries left behind (ready, pending)"
    );
}

/// Locality: a fan-out no wider than the idle slots never goes through the queue. The
/// source keeps one child and the other children run on the executor's idle slots, each of
/// them in the same wall time (so they really ran side by side).
#[test]
fn a_fan_out_within_the_idle_slots_stays_in_the_process() {
    let local = Local::start(LocalConfig {
        slots: 4,
        ..LocalConfig::default()
    })
    .unwrap();
    let mut b = JobBuilder::new("local-fan-out");
    b.task("src", "const").arg(1);
    for i in 0..4 {
        b.task(format!("s{i}"), "sleep").dep("src").arg(300);
    }
    b.task("sum", "add").deps((0..4).map(|i| format!("s{i}")));
    let started = std::time::Instant::now();
    let r = local.run(b.build()).unwrap();
    let took = started.elapsed();
    assert_eq!(r.output("sum"), Some(&Value::Int(4)));
    assert_eq!(r.stats.invocations_sent, 0, "{:?}", r.stats);
    assert_eq!(r.stats.kept_local, 3, "{:?}", r.stats);
    assert!(
        took < std::time::Duration::from_millis(1_100),
        "4 sleeps of 300 ms on 4 slots took {took:?}"
    );
    // Wider than the idle slots: the rest goes through the queue, and the result is the same.
    let mut b = JobBuilder::new("wide-fan-out");
    b.task("src", "const").arg(1);
    for i in 0..9 {
        b.task(format!("s{i}"), "identity").dep("src");
    }
    b.task("sum", "add").deps((0..9).map(|i| format!("s{i}")));
    let r = local.run(b.build()).unwrap();
    assert_eq!(r.output("sum"), Some(&Value::Int(9)));
    assert!(r.stats.kept_local <= 3, "{:?}", r.stats);
    assert!(r.stats.invocations_sent >= 1, "{:?}", r.stats);
}

/// A walk longer than the visibility timeout keeps its claim fresh: it is never taken for
/// a dead one. With one delivery allowed, a reclaim would fail the job as a poison task.
#[test]
fn a_walk_longer_than_the_visibility_timeout_keeps_its_claim() {
    let local = Local::start(LocalConfig {
        slots: 2,
        visibility_timeout: Some(std::time::Duration::from_millis(300)),
        max_deliveries: 1,
        ..LocalConfig::default()
    })
    .unwrap();
    let mut b = JobBuilder::new("slow-walk");
    b.task("a", "const").arg(7);
    b.task("slow", "sleep").dep("a").arg(2_600);
    let r = local.run(b.build()).unwrap();
    assert!(matches!(r.state, JobState::Succeeded), "{:?}", r.state);
    assert_eq!(r.output("slow"), Some(&Value::Int(7)));
}
