//! `process` tasks end to end in embedded mode: a pipeline of real programs through the
//! `rukong` binary and through the library, and the refusals without an allow-list.

mod common;

use common::{rukong, text};

use common::repo;
use rukong_client::{DagSpec, Local, LocalConfig};
use rukong_core::Value;
use rukong_core::messages::JobState;
use rukong_executor::functions::builtins::process::AllowList;
use std::time::{Duration, Instant};

const PIPELINE: [&str; 5] = ["tr", "sort", "uniq", "wc", "cat"];

fn example() -> String {
    repo("examples/process-pipeline.yaml")
        .to_str()
        .unwrap()
        .to_owned()
}

fn allow_flags(programs: &[&str]) -> Vec<String> {
    programs
        .iter()
        .flat_map(|p| ["--allow-process".to_owned(), (*p).to_owned()])
        .collect()
}

#[test]
fn the_example_pipeline_runs_with_its_programs_allowed() {
    let file = example();
    let mut args = vec!["run", file.as_str(), "--json", "--slots", "2"];
    let flags = allow_flags(&PIPELINE);
    args.extend(flags.iter().map(String::as_str));
    let out = rukong(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let report = v["outputs"]["report"].as_str().expect("a string output");
    // wc -l's count first ({in1}), then uniq -c's counts ({in0}), words sorted.
    let lines: Vec<&str> = report.lines().map(str::trim).collect();
    assert_eq!(
        lines,
        [
            "12", "1 and", "1 brown", "1 dog", "1 end", "1 fox", "1 jumps", "1 lazy", "1 over",
            "1 quick", "3 the"
        ],
        "{report}"
    );
    assert_eq!(v["stats"]["tasks"], 6);
}

#[test]
fn validate_accepts_the_example() {
    let out = rukong(&["validate", &example()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn without_an_allow_list_the_dag_is_rejected_before_anything_runs() {
    let out = rukong(&["run", &example()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    let err = text(&out.stderr);
    assert!(
        err.contains("task words: unknown function \"process\"")
            && err.contains("--allow-process PROGRAM"),
        "{err}"
    );
}

#[test]
fn a_program_off_the_list_or_failing_fails_its_task_clearly() {
    // `uniq` is not allowed: the job fails at that task, naming the program.
    let file = example();
    let mut args = vec!["run", file.as_str()];
    let flags = allow_flags(&["tr", "sort", "wc", "cat"]);
    args.extend(flags.iter().map(String::as_str));
    let out = rukong(&args);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("task counts failed")
            && err.contains(
                "program \"uniq\" is not on this executor's allow-list (tr, sort, wc, cat)"
            ),
        "{err}"
    );
    // A bad allow-list entry is a usage error.
    let out = rukong(&["run", &file, "--allow-process", "./tr"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("a relative path"),
        "{}",
        text(&out.stderr)
    );
}

fn yaml(text: &str) -> Result<DagSpec, rukong_core::DagError> {
    DagSpec::parse(text, rukong_core::dag::DagFormat::Yaml)
}

fn local(programs: &[&str]) -> Local {
    let mut config = LocalConfig {
        slots: 2,
        ..LocalConfig::default()
    };
    config
        .registry
        .allow_process(AllowList::resolve(programs).expect("programs installed"));
    Local::start(config).expect("embedded runtime starts")
}

#[test]
fn through_the_library_exit_codes_stderr_and_timeouts_reach_the_job_error() {
    let local = local(&["sort", "sleep"]);
    let spec = yaml(
        "tasks:\n  - {id: in, fn: const, args: [\"b\\na\\n\"]}\n  - {id: s, fn: process, deps: [in], args: [[sort]]}\n",
    )
    .unwrap();
    let r = local.run(spec).unwrap();
    assert_eq!(r.state, JobState::Succeeded);
    assert!(
        matches!(&r.outputs[0].1, Value::Bytes(b) if b.as_ref() == b"a\nb\n"),
        "{:?}",
        r.outputs
    );

    let spec =
        yaml("tasks:\n  - {id: bad, fn: process, args: [[sort, --no-such-flag]]}\n").unwrap();
    match local.run(spec).unwrap().state {
        JobState::Failed { task, error } => {
            assert_eq!(task.as_str(), "bad");
            assert!(
                error.contains("process: \"sort\" exited with code 2; stderr: ")
                    && error.contains("no-such-flag"),
                "{error}"
            );
        }
        s => panic!("expected a failure, got {s:?}"),
    }

    // The task's own timeout_ms ends the program, too.
    let spec = yaml("tasks:\n  - {id: slow, fn: process, timeout_ms: 200, args: [[sleep, 30]]}\n")
        .unwrap();
    let t0 = Instant::now();
    match local.run(spec).unwrap().state {
        JobState::Failed { task, error } => {
            assert_eq!(task.as_str(), "slow");
            // The executor stops waiting at the deadline, and the program is killed there.
            assert!(
                error.contains("timed out after 200 ms")
                    || error.contains("\"sleep\" ran past the task's timeout_ms and was killed"),
                "{error}"
            );
        }
        s => panic!("expected a timeout, got {s:?}"),
    }
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
}

/// Cluster mode (needs `redis-server`): executors run `process` only with `--allow-process`,
/// and an engine whose executors lack it rejects the DAG with the same hint.
#[test]
fn in_a_cluster_the_executors_allow_list_decides() {
    use common::cluster::{Cluster, Options, json};
    let file = repo("examples/process-pipeline.yaml");
    let allowed = Cluster::start(Options {
        executors: 2,
        executor_args: allow_flags(&PIPELINE),
        ..Options::default()
    });
    let out = allowed.run(&file, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report = json(&out)["outputs"]["report"].as_str().unwrap().to_owned();
    assert!(
        report.starts_with("12\n") && report.ends_with("3 the\n"),
        "{report}"
    );
    drop(allowed);

    let off = Cluster::start(Options {
        executors: 1,
        ..Options::default()
    });
    let out = off.run(&file, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("unknown function \"process\"") && err.contains("--allow-process"),
        "{err}"
    );
}
