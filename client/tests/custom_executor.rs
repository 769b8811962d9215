//! User functions end to end: the template in `examples/custom-executor/` is built with
//! cargo, `rukong up --executor-bin` runs it as a 3-executor local cluster (with a
//! simulated GPU, so `weighted_sum` is bundled), and its example DAGs give their exact
//! results. The engine admits a DAG that uses the template's functions only while an
//! executor that has them is registered, and otherwise names the missing functions.
//!
//! Needs `redis-server` (as every cluster test does) and cargo on PATH or in `CARGO`.

mod common;

use common::cluster::{Cluster, Options, TOKEN, json};
use common::repo;
use rukong_client::cli::up::free_port;
use rukong_client::remote::EngineClient;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const TEMPLATE: &str = "custom-executor";

/// Builds the template's executor binary with cargo and returns its path. Cargo decides
/// what needs building; the command follows this test's own build, so that nothing this
/// test's `rukong` binary shares with the template is built twice:
/// - with the `cuda` feature, this is the whole workspace with every feature (CI runs
///   `cargo nextest run --workspace --all-features`): the same build again, which has
///   nothing left to do;
/// - otherwise, the template alone, with the features the test build gives `rukong-core`.
fn template_bin() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(repo(""));
    if cfg!(feature = "cuda") {
        cmd.args(["test", "--workspace", "--all-features", "--no-run"]);
    } else {
        cmd.args(["build", "-p", TEMPLATE, "--bin", TEMPLATE])
            .args(["--features", "rukong-core/test-util"]);
    }
    cmd.args(["--message-format", "json-render-diagnostics"])
        .stderr(Stdio::inherit());
    if Path::new(env!("CARGO_BIN_EXE_rukong"))
        .parent()
        .is_some_and(|d| d.ends_with("release"))
    {
        cmd.arg("--release");
    }
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run cargo ({cargo:?}) to build the template: {e}; set CARGO to cargo's path")
    });
    assert!(
        out.status.success(),
        "building the template ({cmd:?}) failed ({}); the errors are above",
        out.status
    );
    // The binary's artifact message names its path, wherever the target dir is.
    let exe = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| {
            m["reason"] == "compiler-artifact"
                && m["target"]["name"] == TEMPLATE
                && m["target"]["kind"][0] == "bin"
                && m["profile"]["test"] == false
        })
        .find_map(|m| m["executable"].as_str().map(PathBuf::from));
    exe.unwrap_or_else(|| panic!("cargo built {TEMPLATE} but named no executable"))
}

fn example(file: &str) -> PathBuf {
    repo("examples/custom-executor").join(file)
}

/// The example DAG's outputs (see the comments in `dag.yaml`).
fn check_dag_outputs(out: &Output) {
    let v = json(out);
    assert!(
        out.status.success(),
        "{v}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let o = &v["outputs"];
    assert_eq!(o["loud"], "HELLO, RUKONG!", "{v}");
    assert_eq!(o["primes"], 7919 + 104_729, "{v}");
    assert_eq!(o["score"], 14, "{v}");
    assert_eq!(o["total"], 14 + 7919 + 104_729 + 14, "{v}");
}

/// `rukong up`, started with a clean `RUKONG_*` environment and the test token; its
/// stdout (the engine's URL) and stderr are piped.
fn spawn_up(args: &[&str]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rukong"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("RUKONG_") {
            cmd.env_remove(&k);
        }
    }
    cmd.arg("up")
        .args(args)
        .env("RUKONG_TOKEN", TOKEN)
        .env("RUKONG_EXECUTOR__HEARTBEAT_MS", "300")
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rukong up starts")
}

/// Kills the cluster if the test fails before stopping it.
struct Up {
    child: Child,
    stderr: mpsc::Receiver<String>,
}

impl Drop for Up {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let t0 = Instant::now();
            while self.child.try_wait().ok().flatten().is_none()
                && t0.elapsed() < Duration::from_secs(15)
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
        }
    }
}

#[test]
fn up_runs_the_template_as_a_three_executor_cluster() {
    let bin = template_bin();
    let listen = format!("127.0.0.1:{}", free_port().unwrap());
    let mut child = spawn_up(&[
        "--executors",
        "3",
        "--slots",
        "2",
        "--gpu",
        "simulated",
        "--listen",
        &listen,
        "--executor-bin",
        bin.to_str().expect("a UTF-8 path"),
    ]);
    // stderr in the background (it must not fill up), stdout's first line is the URL once
    // every executor has registered.
    let mut err = child.stderr.take().unwrap();
    let (err_tx, err_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        let _ = err_tx.send(s);
    });
    let stdout = child.stdout.take().unwrap();
    let (url_tx, url_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = url_tx.send(line.trim().to_owned());
    });
    let mut up = Up {
        child,
        stderr: err_rx,
    };
    let url = match url_rx.recv_timeout(Duration::from_secs(60)) {
        Ok(u) if !u.is_empty() => u,
        _ => {
            let _ = Command::new("kill")
                .args(["-TERM", &up.child.id().to_string()])
                .status();
            let err = up
                .stderr
                .recv_timeout(Duration::from_secs(20))
                .unwrap_or_default();
            panic!("rukong up did not come up within 60 s:\n{err}");
        }
    };
    assert_eq!(url, format!("http://{listen}"));
    let health = EngineClient::new(&url, Some(TOKEN.into()), Duration::from_secs(10))
        .healthz()
        .unwrap();
    assert_eq!(
        health["executors"], 6,
        "3 CPU and 3 GPU executors: {health}"
    );

    let run = |file: &str| {
        Command::new(env!("CARGO_BIN_EXE_rukong"))
            .arg("run")
            .arg(example(file))
            .args([
                "--engine",
                &url,
                "--json",
                "--no-progress",
                "--timeout",
                "60",
            ])
            .env("RUKONG_TOKEN", TOKEN)
            .output()
            .unwrap()
    };
    check_dag_outputs(&run("dag.yaml"));
    let out = run("bundled.yaml");
    let v = json(&out);
    assert!(out.status.success(), "{v}");
    assert_eq!(v["outputs"]["s0"], 2, "{v}");
    assert_eq!(v["outputs"]["s15"], 47, "{v}");
    assert_eq!(v["outputs"]["sum"], 392, "{v}");
    assert_eq!(
        v["stats"]["bundled"], 16,
        "every GPU call went through a bundler: {v}"
    );

    // Ctrl-C (here SIGTERM) stops the template's executors cleanly, then everything else.
    let _ = Command::new("kill")
        .args(["-TERM", &up.child.id().to_string()])
        .status();
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = up.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "rukong up did not stop within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let err = up
        .stderr
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_default();
    assert!(status.success(), "rukong up exited {status}:\n{err}");
    for i in 0..3 {
        assert!(
            err.contains(&format!("-{i}: stopping")),
            "executor {i} stopped cleanly:\n{err}"
        );
    }
    assert!(err.contains("rukong up: stopped"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn the_engine_admits_template_dags_only_while_an_executor_has_the_functions() {
    let bin = template_bin();
    let mut c = Cluster::start(Options {
        executors: 1,
        ..Options::default()
    });
    // Only the built-in executor: the DAG is invalid (exit 2), and the error names every
    // function that no executor has.
    let dag = example("dag.yaml");
    let out = c.run(&dag, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for f in ["shout", "nth_prime", "weighted_sum"] {
        assert!(
            err.contains(&format!(
                "unknown function \"{f}\": none of the 1 registered executors has it"
            )),
            "names {f}: {err}"
        );
    }
    assert!(err.contains("--executor-bin"), "says how to fix it: {err}");

    // A template executor joins. Any executor may pull any task, so the built-in one
    // could get `shout`: the DAG is still refused, saying which executors lack what.
    c.opts.executor_bin = Some(bin);
    let e = c.spawn_executor(1);
    c.executors.push(Some(e));
    c.wait_healthy(2);
    let out = c.run(&dag, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("function \"shout\" is on only 1 of the 2 registered executors"),
        "{err}"
    );

    // The built-in executor stops cleanly (SIGTERM) and deregisters: now every executor
    // has the functions, and the DAG runs.
    if let Some(mut e) = c.executors[0].take() {
        e.stop(Duration::from_secs(10));
        assert!(
            e.exited().is_some_and(|s| s.success()),
            "the executor exits 0"
        );
    }
    let client = c.client();
    let t0 = Instant::now();
    while client.healthz().ok().and_then(|h| h["executors"].as_u64()) != Some(1) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the stopped executor deregisters"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    check_dag_outputs(&c.run(&dag, &[]));
}

#[test]
fn up_refuses_an_executor_bin_that_cannot_run() {
    let missing = std::env::temp_dir().join(format!("rukong-no-such-bin-{}", std::process::id()));
    let readme = repo("examples/custom-executor/README.md");
    for (path, why) in [
        (missing.as_path(), "No such file"),
        (readme.as_path(), "not executable"),
    ] {
        let out = spawn_up(&["--executor-bin", path.to_str().unwrap()])
            .wait_with_output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("--executor-bin") && err.contains(why), "{err}");
    }
}

// ---- The container files: checked offline (no Docker engine in CI) --------------------

/// `docker-compose -f docker-compose.yml -f examples/custom-executor/docker-compose.yml
/// config`, resolved, with a token and an empty env file.
fn compose_with_override() -> serde_yaml::Value {
    let empty = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("custom-compose-empty.env");
    std::fs::write(&empty, "").expect("write an empty env file");
    let out = Command::new("docker-compose")
        .current_dir(repo(""))
        .arg("--env-file")
        .arg(&empty)
        .args(["-f", "docker-compose.yml"])
        .args(["-f", "examples/custom-executor/docker-compose.yml", "config"])
        .env_remove("COMPOSE_FILE")
        .env("RUKONG_TOKEN", "test")
        .output()
        .unwrap_or_else(|e| {
            panic!("docker-compose: {e} (install it: apt-get install -y --no-install-recommends docker-compose; scripts/test.sh does)")
        });
    assert!(
        out.status.success(),
        "docker-compose config failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_yaml::from_slice(&out.stdout).expect("docker-compose config prints YAML")
}

#[test]
fn the_compose_override_runs_the_template_image_as_the_executors() {
    let v = compose_with_override();
    let exec = &v["services"]["executor"];
    let root = std::fs::canonicalize(repo("")).unwrap();
    let context = exec["build"]["context"].as_str().expect("a build context");
    assert_eq!(
        std::fs::canonicalize(context).unwrap(),
        root,
        "builds from the repository root (the build needs the workspace)"
    );
    assert_eq!(
        exec["build"]["dockerfile"],
        "examples/custom-executor/Dockerfile"
    );
    assert!(repo("examples/custom-executor/Dockerfile").is_file());
    assert_eq!(exec["image"], "rukong-custom-executor:latest");
    let cmd: Vec<&str> = exec["command"]
        .as_sequence()
        .expect("a command list")
        .iter()
        .filter_map(|w| w.as_str())
        .collect();
    assert_eq!(
        cmd,
        ["--proxy", "kvproxy:7070"],
        "flags only: the entrypoint is the executor"
    );
    // What the base file gives the executors still holds.
    let env = &exec["environment"];
    assert_eq!(env["RUKONG_TOKEN"], "test");
    assert_eq!(env["RUKONG_REDIS__URL"], "redis://redis:6379");
    for dep in ["redis", "kvproxy", "engine"] {
        assert_eq!(
            exec["depends_on"][dep]["condition"], "service_healthy",
            "waits for {dep}"
        );
    }
    assert!(exec["deploy"]["replicas"].as_u64().is_some_and(|n| n >= 2));
    // The other services still run the rukong image.
    for name in ["kvproxy", "engine"] {
        assert_eq!(v["services"][name]["image"], "rukong:latest", "{name}");
    }
}

#[test]
fn the_template_dockerfile_builds_the_executor_in_two_stages() {
    let text = std::fs::read_to_string(repo("examples/custom-executor/Dockerfile")).unwrap();
    // Instructions, with comments dropped and continuation lines joined.
    let mut ins: Vec<(String, String)> = Vec::new();
    let mut cur = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            cur.push_str(head);
            continue;
        }
        cur.push_str(line);
        let (op, rest) = cur.split_once(' ').unwrap_or((&cur, ""));
        ins.push((op.to_ascii_uppercase(), rest.trim().to_owned()));
        cur.clear();
    }
    let froms: Vec<&String> = ins
        .iter()
        .filter(|(op, _)| op == "FROM")
        .map(|(_, r)| r)
        .collect();
    assert_eq!(froms.len(), 2, "build and runtime stages: {froms:?}");
    assert!(froms[0].starts_with("rust:"), "{froms:?}");
    let build = ins
        .iter()
        .find(|(op, r)| op == "RUN" && r.contains("cargo build"))
        .expect("cargo build");
    for want in [
        "--release",
        "--locked",
        "-p custom-executor",
        "--bin custom-executor",
    ] {
        assert!(
            build.1.contains(want),
            "cargo build has {want}: {}",
            build.1
        );
    }
    let last = |op: &str| {
        ins.iter()
            .rev()
            .find(|(o, _)| o == op)
            .map(|(_, r)| r.as_str())
    };
    assert_eq!(last("ENTRYPOINT"), Some(r#"["custom-executor"]"#));
    assert!(
        !matches!(last("USER"), None | Some("root" | "0")),
        "runs as non-root"
    );
}
