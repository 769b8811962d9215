//! The `rukong` binary's contract: output format and exit codes (0 ok, 1 task failed,
//! 2 invalid DAG or usage).

mod common;

use common::{rukong, text};

use common::{data, repo};
use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn run_json_prints_one_object_with_job_outputs_and_stats() {
    let out = rukong(&[
        "run",
        repo("examples/diamond.yaml").to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["job"].as_str().unwrap().starts_with('j'));
    assert_eq!(v["outputs"], serde_json::json!({"d": 10}));
    assert_eq!(v["stats"]["tasks"], 4);
    assert_eq!(v["stats"]["state"], "succeeded");
}

#[test]
fn bytes_render_as_length_and_digest() {
    let dir = std::env::temp_dir().join(format!("rukong-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bytes.yaml");
    std::fs::write(&f, "tasks: [{id: b, fn: blob, args: [5, 3]}]\n").unwrap();
    let out = rukong(&["run", f.to_str().unwrap(), "--json", "--slots", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // blob(5, 3) = [3, 34, 65, 96, 127]
    assert_eq!(
        v["outputs"]["b"],
        serde_json::json!({"bytes": 5, "sha256": rukong_core::value::sha256_hex(&[3, 34, 65, 96, 127])})
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_failed_task_exits_1_naming_the_task() {
    let dir = std::env::temp_dir().join(format!("rukong-cli-fail-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("fail.json");
    std::fs::write(&f, r#"{"tasks":[{"id":"ok","fn":"const","args":[1]},{"id":"boom","fn":"fail","deps":["ok"],"args":["kaboom"]}]}"#).unwrap();
    let out = rukong(&["run", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("task boom failed: kaboom"),
        "{}",
        text(&out.stderr)
    );
    let out = rukong(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["error"],
        serde_json::json!({"task": "boom", "message": "kaboom"})
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Every invalid vector is rejected before anything runs, with exit code 2 and an error that
/// names the offending task or field.
#[test]
fn invalid_dags_exit_2_naming_the_problem() {
    let cases = [
        ("bad-id-brace.json", "{tag}"),
        ("bad-id-colon.json", "a:b"),
        ("cycle-2.json", "cycle through task"),
        ("cycle-self.json", "self needs self"),
        ("duplicate-id.json", "task d: duplicate id"),
        ("empty.json", "no tasks"),
        ("truncated.json", "invalid JSON at line"),
        ("unknown-dep.json", "task a: unknown dependency \"missing\""),
        (
            "unknown-fn.json",
            "task a: unknown function \"no_such_function\"",
        ),
    ];
    for (file, needle) in cases {
        let path = data(&format!("invalid/{file}"));
        for cmd in ["run", "validate"] {
            let out = rukong(&[cmd, path.to_str().unwrap()]);
            assert_eq!(out.status.code(), Some(2), "{cmd} {file}");
            let err = text(&out.stderr);
            assert!(err.contains(needle), "{cmd} {file}: {err}");
            assert!(out.stdout.is_empty(), "{cmd} {file}: nothing on stdout");
        }
    }
    let out = rukong(&["run", "/nonexistent/dag.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read /nonexistent/dag.yaml"));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(rukong(&[]).status.code(), Some(2));
    assert_eq!(rukong(&["run"]).status.code(), Some(2));
    assert_eq!(
        rukong(&["run", "x.yaml", "--slots", "0"]).status.code(),
        Some(2)
    );
    assert_eq!(rukong(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(rukong(&["--help"]).status.code(), Some(0));
}

#[test]
fn the_oracle_warm_up_mode_is_refused_outside_the_simulator() {
    let dag = repo("examples/diamond.yaml");
    let dag = dag.to_str().unwrap();
    let out = rukong(&["run", dag, "--warmup", "oracle"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("only in the simulator") && err.contains("jit"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    let out = rukong(&["run", dag, "--warmup", "jit"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // The library refuses it too, before anything starts.
    let mut config = rukong_client::LocalConfig::default();
    config.engine.warmup = rukong_engine::warmup::WarmupMode::Oracle;
    let e = rukong_client::Local::start(config).err().expect("refused");
    assert!(e.to_string().contains("only in the simulator"), "{e}");
}

#[test]
fn validate_accepts_every_example() {
    for f in [
        "tree-reduction",
        "fanout-fanin",
        "chain",
        "diamond",
        "blob-digest",
    ] {
        let out = rukong(&[
            "validate",
            repo(&format!("examples/{f}.yaml")).to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(0), "{f}: {}", text(&out.stderr));
        assert!(text(&out.stdout).starts_with("ok: "), "{f}");
    }
}

#[test]
fn gen_output_runs_from_standard_input() {
    let generated = rukong(&["gen", "tree-reduction", "--leaves", "100"]);
    assert_eq!(generated.status.code(), Some(0));
    let mut child = Command::new(env!("CARGO_BIN_EXE_rukong"))
        .args(["run", "-", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&generated.stdout)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["outputs"]["s7_0"], 4950);
    let json = rukong(&["gen", "chain", "--length", "3", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["tasks"].as_array().unwrap().len(), 3);
}

/// A GPU task with no GPU executor is refused up front, never left hanging; so is a guard
/// on a task that is not one of its deps.
#[test]
fn gpu_tasks_and_bad_guards_are_rejected_clearly() {
    let dir = std::env::temp_dir().join(format!("rukong-cli-unsup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let gpu = dir.join("gpu.yaml");
    std::fs::write(
        &gpu,
        "tasks: [{id: g, fn: const, args: [1], resources: {gpu: 1}}]\n",
    )
    .unwrap();
    let out = rukong(&["run", gpu.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("task g: requests a GPU"),
        "{}",
        text(&out.stderr)
    );
    let guard = dir.join("guard.yaml");
    std::fs::write(
        &guard,
        "tasks: [{id: a, fn: const, args: [1]}, {id: z, fn: const, args: [3]}, {id: b, fn: identity, deps: [a], guard: {dep: z, equals: 1}}]\n",
    )
    .unwrap();
    for cmd in ["run", "validate"] {
        let out = rukong(&[cmd, guard.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        assert!(
            text(&out.stderr).contains("task b: guard.dep \"z\" is not one of its deps (a)"),
            "{cmd}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty());
    }
    let join = dir.join("join.yaml");
    std::fs::write(
        &join,
        "tasks: [{id: a, fn: const, args: [1]}, {id: b, fn: identity, deps: [a], join: some}]\n",
    )
    .unwrap();
    let out = rukong(&["run", join.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("unknown variant `some`, expected `all` or `any`"),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// The inference-cascade example shows both branch outcomes: skipped outputs print as
/// `(skipped)`, and are listed under `"skipped"` in the JSON form.
#[test]
fn the_inference_cascade_example_takes_both_branches() {
    let file = common_repo("examples/inference-cascade.yaml");
    let out = rukong(&["run", &file, "--no-progress"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        vec![
            r#"street.answer: {"confidence":0.94,"label":"car"}"#,
            r#"fog.answer: {"confidence":0.87,"label":"truck"}"#,
            r#"fog.expensive: {"confidence":0.87,"label":"truck"}"#,
            "street.expensive: (skipped)",
        ]
    );
    let out = rukong(&["run", &file, "--json", "--no-progress"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["skipped"], serde_json::json!(["street.expensive"]));
    assert_eq!(v["outputs"]["street.answer"]["label"], "car");
    assert_eq!(v["outputs"]["fog.answer"]["label"], "truck");
    assert!(v["outputs"].get("street.expensive").is_none());
    assert_eq!(v["stats"]["skipped"], 2, "{}", v["stats"]);
    assert_eq!(v["stats"]["tasks"], 16, "{}", v["stats"]);
    // An unconditional job still says "skipped": [].
    let out = rukong(&["run", &common_repo("examples/diamond.yaml"), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["skipped"], serde_json::json!([]));
}

fn common_repo(rel: &str) -> String {
    common::repo(rel).to_string_lossy().into_owned()
}

#[test]
fn graph_draws_the_dag_as_dot_and_svg() {
    let file = repo("examples/diamond.yaml");
    let out = rukong(&["graph", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let dot = text(&out.stdout);
    assert!(dot.starts_with("digraph \"diamond\""), "{dot}");
    for edge in [
        "\"a\" -> \"b\"",
        "\"a\" -> \"c\"",
        "\"b\" -> \"d\"",
        "\"c\" -> \"d\"",
    ] {
        assert!(dot.contains(edge), "{edge} in {dot}");
    }
    // Graphviz renders it (scripts/test.sh installs graphviz).
    let out = rukong(&["graph", file.to_str().unwrap(), "--format", "svg"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("<svg"));
    let bad = data("invalid/cycle-2.json");
    assert_eq!(
        rukong(&["graph", bad.to_str().unwrap()]).status.code(),
        Some(2)
    );
}

#[test]
fn timeline_draws_every_task_on_its_slot() {
    let dir = std::env::temp_dir().join(format!("rukong-cli-timeline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join("t.svg");
    let html = dir.join("t.html");
    let file = repo("examples/diamond.yaml");
    for out_file in [&svg, &html] {
        let out = rukong(&[
            "run",
            file.to_str().unwrap(),
            "--timeline",
            out_file.to_str().unwrap(),
            "--slots",
            "2",
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
    let s = std::fs::read_to_string(&svg).unwrap();
    assert!(s.starts_with("<svg"), "{s}");
    for task in ["a", "b", "c", "d"] {
        assert!(s.contains(&format!("<title>{task} (")), "bar for {task}");
    }
    assert!(
        s.contains("critical path: d"),
        "the last task is on the critical path"
    );
    assert!(
        std::fs::read_to_string(&html)
            .unwrap()
            .starts_with("<!DOCTYPE html>")
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn import_wfformat_prints_a_dag_that_runs() {
    let file = data("wfformat/montage-small.json");
    let out = rukong(&[
        "import",
        "wfformat",
        file.to_str().unwrap(),
        "--time-scale",
        "0.0001",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mut child = Command::new(env!("CARGO_BIN_EXE_rukong"))
        .args(["run", "-", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    let run = child.wait_with_output().unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(v["stats"]["tasks"], 2 * 58);
    let bad = data("invalid/cycle-2.json");
    assert_eq!(
        rukong(&["import", "wfformat", bad.to_str().unwrap()])
            .status
            .code(),
        Some(2)
    );
}

/// `rukong bench` hands its arguments to the harness built beside it, or says how to build it.
#[test]
fn bench_runs_the_harness_or_says_how_to_build_it() {
    let out = rukong(&[
        "bench",
        "--workload",
        "diamond",
        "--repeats",
        "1",
        "--warmup",
        "0",
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    match out.status.code() {
        Some(0) => assert!(stdout.contains("diamond"), "{stdout}"),
        Some(2) => assert!(
            stderr.contains("cargo build --release -p rukong-client -p rukong-benches"),
            "{stderr}"
        ),
        other => panic!("exit {other:?}: {stderr}"),
    }
}
