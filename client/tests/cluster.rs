//! Cluster mode end to end: real `rukong kvproxy`, `rukong engine` and executor processes
//! against a real `redis-server` on loopback, plus faults injected while jobs run.

mod common;

use common::cluster::{Cluster, Options, TOKEN, json, spin_tree, temp_file};
use common::repo;
use rukong_client::JobBuilder;
use rukong_client::workloads::{Workload, blob_bytes, to_yaml};
use rukong_core::value::sha256_hex;
use std::time::{Duration, Instant};

fn expected_json(w: &Workload) -> serde_json::Value {
    let m: serde_json::Map<String, serde_json::Value> = w
        .expected()
        .into_iter()
        .map(|(id, v)| (id.to_string(), v.to_output_json()))
        .collect();
    serde_json::Value::Object(m)
}

fn assert_ok(out: &std::process::Output) -> serde_json::Value {
    let v = json(out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(v["stats"]["state"], "succeeded");
    v
}

#[test]
fn the_cluster_runs_every_example_and_large_dags_exactly() {
    let c = Cluster::start(Options::default());
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
        let v = assert_ok(&c.run(&repo(file), &[]));
        assert_eq!(v["outputs"], expected_json(&w), "{file}");
        assert_eq!(v["stats"]["tasks"], w.task_count() as u64, "{file}");
    }
    // Over 1 MiB of YAML: `rukong run` parses it and sends the compact form, encoded while
    // it is sent (chunked, several chunks); the engine decodes it as it arrives.
    let wide = Workload::FanoutFanin { width: 30_000 };
    let yaml = to_yaml(&wide.generate());
    assert!(yaml.len() > 1 << 20, "{} bytes", yaml.len());
    let f = temp_file("wide.yaml", &yaml);
    let v = assert_ok(&c.run(&f, &[]));
    assert_eq!(v["outputs"], expected_json(&wide));
    assert!(
        v["stats"]["proxy_fanouts"].as_u64().unwrap() >= 1,
        "{}",
        v["stats"]
    );

    // 8 MiB values: through the proxy, chunked into Redis, and back.
    let n = 8 << 20;
    let mut b = JobBuilder::new("big-values");
    b.task("a", "blob").arg(n as i64).arg(1);
    b.task("b", "blob").arg(n as i64).arg(2);
    b.task("ab", "concat").deps(["a", "b"]);
    b.task("h", "sha256").dep("ab");
    b.task("n", "len").dep("ab");
    b.task("ha", "sha256").dep("a");
    b.output("h").output("n").output("ha").output("a");
    let f = temp_file("big.yaml", &to_yaml(&b.build()));
    let v = assert_ok(&c.run(&f, &[]));
    let (a, bb) = (blob_bytes(n, 1), blob_bytes(n, 2));
    let ab = [a.as_slice(), bb.as_slice()].concat();
    assert_eq!(v["outputs"]["h"], sha256_hex(&ab));
    assert_eq!(v["outputs"]["n"], 2 * n as u64);
    assert_eq!(v["outputs"]["ha"], sha256_hex(&a));
    assert_eq!(
        v["outputs"]["a"],
        serde_json::json!({"bytes": n, "sha256": sha256_hex(&a)})
    );
    assert!(v["stats"]["objects_put"].as_u64().unwrap() >= 3);
}

#[test]
fn large_objects_travel_as_files_on_the_proxy_s_host_and_go_once_read() {
    large_objects_in_the_shared_directory(true);
}

#[test]
fn large_objects_from_another_host_go_to_the_shared_directory_through_the_proxy() {
    large_objects_in_the_shared_directory(false);
}

/// Executors and the engine reach the objects as files (`share_host`) or only through the
/// proxy; either way the proxy's directory holds them, not Redis.
fn large_objects_in_the_shared_directory(share_host: bool) {
    let c = Cluster::start(Options {
        share_host,
        ..Options::default()
    });
    let n = 2 << 20;
    let mut b = JobBuilder::new("shared-objects");
    for i in 0..6 {
        b.task(format!("p{i}").as_str(), "blob")
            .arg(n as i64)
            .arg(i);
    }
    b.task("h", "sha256").deps(
        (0..6)
            .map(|i| format!("p{i}"))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str),
    );
    b.output("h").output("p0");
    let f = temp_file("shared-objects.yaml", &to_yaml(&b.build()));
    let v = assert_ok(&c.run(&f, &[]));
    let all: Vec<u8> = (0..6).flat_map(|i| blob_bytes(n, i)).collect();
    assert_eq!(v["outputs"]["h"], sha256_hex(&all));
    assert_eq!(v["outputs"]["p0"]["sha256"], sha256_hex(&blob_bytes(n, 0)));
    assert_eq!(v["stats"]["objects_put"], 6, "{}", v["stats"]);
    // No object bytes went into Redis: no chunk keys (`<object key>:v<version>:<i>`),
    // only the released outputs' one-byte tombstones.
    let job = v["job"].as_str().unwrap();
    let chunks = c.redis.command(&format!(
        "EVAL \"return #redis.call('KEYS', ARGV[1])\" 0 rk:{{{job}}}:obj:*:v*"
    ));
    assert_eq!(chunks.as_deref(), Some(":0"), "chunk keys in Redis");
    // What is left of the job in the shared directory: the job output p0, and none of
    // the five intermediates, which the reducer released once it had read them.
    let dir = c.shared_dir.path().join(job);
    let left: Vec<(String, u64)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].1 > n as u64, "{left:?}");
}

#[test]
fn a_fan_out_within_an_executor_s_idle_slots_never_goes_through_redis() {
    let c = Cluster::start(Options {
        executors: 1,
        slots: 4,
        ..Options::default()
    });
    c.wait_healthy(1);
    let mut yaml =
        String::from("name: local-fan-out\ntasks:\n  - {id: src, fn: const, args: [1]}\n");
    for i in 0..4 {
        yaml.push_str(&format!(
            "  - {{id: s{i}, fn: sleep, deps: [src], args: [200]}}\n"
        ));
    }
    yaml.push_str("  - {id: sum, fn: add, deps: [s0, s1, s2, s3]}\n");
    let f = temp_file("local-fan-out.yaml", &yaml);
    let v = assert_ok(&c.run(&f, &[]));
    assert_eq!(v["outputs"]["sum"], 4);
    assert_eq!(v["stats"]["kept_local"], 3, "{v}");
    assert_eq!(v["stats"]["invocations_sent"], 0, "{v}");
}

#[test]
fn a_sigkilled_executor_s_invocations_are_reclaimed_and_the_sum_is_exact() {
    let mut c = Cluster::start(Options::default());
    let f = temp_file("spin-tree.yaml", &spin_tree(256, 15));
    let run = c.spawn_run(&f, &["--timeout", "120"]);
    std::thread::sleep(Duration::from_millis(400));
    c.kill_executor(0);
    let out = run.wait_with_output().unwrap();
    let v = assert_ok(&out);
    assert_eq!(v["outputs"]["a8_0"], 256 * 255 / 2);
}

#[test]
fn duplicated_invocations_count_each_dependency_once() {
    use rukong_core::messages::{Invocation, Start};
    use rukong_core::store::InvocationQueue;
    use rukong_core::store::JobStore;
    use rukong_core::store::redis::{RedisConfig, RedisStore};
    let c = Cluster::start(Options::default());
    let f = temp_file("spin-tree.yaml", &spin_tree(64, 20));
    let client = c.client();
    let job = client
        .submit_bytes(std::fs::read(&f).unwrap().as_slice(), "application/yaml")
        .unwrap();
    // Inject a copy of every source invocation (as a redelivery would), while it runs.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = RedisStore::connect(RedisConfig {
            url: c.redis.url(),
            ..RedisConfig::default()
        })
        .await
        .unwrap();
        let plan = store.get_job(&job).await.unwrap();
        let dup: Vec<Invocation> = plan
            .dag
            .sources()
            .iter()
            .map(|&task| Invocation {
                job: job.clone(),
                warm: Vec::new(),
                warm_ttl_ms: 0,
                release: Vec::new(),
                starts: vec![Start {
                    task,
                    inputs: vec![],
                }],
            })
            .collect();
        store.push(rukong_core::ExecClass::Cpu, dup).await.unwrap();
    });
    let st = client
        .wait(
            &job,
            Some(Duration::from_secs(120)),
            Duration::from_secs(5),
            |_, _| {},
        )
        .unwrap();
    assert_eq!(st.state(), "succeeded", "{}", st.json);
    let outs = client.outputs(&job).unwrap();
    assert_eq!(outs["a6_0"], 64 * 63 / 2);
}

#[test]
fn redis_going_away_mid_job_is_a_clear_error_within_the_timeout() {
    let mut c = Cluster::start(Options::default());
    let f = temp_file("slow.yaml", &spin_tree(64, 200));
    let run = c.spawn_run(&f, &["--timeout", "60"]);
    std::thread::sleep(Duration::from_millis(700));
    let t0 = Instant::now();
    c.redis.stop();
    let out = run.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "took {:?}",
        t0.elapsed()
    );
    assert!(
        err.to_lowercase().contains("store") || err.to_lowercase().contains("redis"),
        "{err}"
    );
}

#[test]
fn a_poison_task_that_kills_its_executor_fails_the_job_after_n_attempts() {
    let c = Cluster::start(Options {
        executors: 3,
        slots: 1,
        max_deliveries: 2,
        visibility_timeout_ms: 900,
        test_functions: true,
        ..Options::default()
    });
    let f = temp_file(
        "poison.yaml",
        "name: poison\ntasks:\n  - {id: ok, fn: const, args: [1]}\n  - {id: killer, fn: crash, deps: [ok]}\n",
    );
    let out = c.run(&f, &["--timeout", "90"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("task killer failed"), "{err}");
    assert!(err.contains("delivered 3 times"), "{err}");
}

/// (what, body, content type, token, expected status, text the error must contain)
type BadRequest<'a> = (&'a str, Vec<u8>, &'a str, Option<&'a str>, u16, &'a str);

#[test]
fn bad_requests_get_clear_4xx_and_the_engine_keeps_serving() {
    let c = Cluster::start(Options {
        executors: 1,
        max_body: 1 << 20,
        ..Options::default()
    });
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let post = |body: &[u8], ctype: &str, token: Option<&str>| {
        let mut r = agent
            .post(&format!("{}/jobs", c.engine_url))
            .header("Content-Type", ctype);
        if let Some(t) = token {
            r = r.header("Authorization", &format!("Bearer {t}"));
        }
        let mut resp = r.send(body).unwrap();
        let status = resp.status().as_u16();
        (status, resp.body_mut().read_to_string().unwrap_or_default())
    };
    let good = br#"{"tasks":[{"id":"a","fn":"const","args":[1]}]}"#;
    let cases: Vec<BadRequest> = vec![
        (
            "no token",
            good.to_vec(),
            "application/json",
            None,
            401,
            "missing token",
        ),
        (
            "wrong token",
            good.to_vec(),
            "application/json",
            Some("nope"),
            401,
            "wrong token",
        ),
        (
            "malformed JSON",
            b"{\"tasks\": [".to_vec(),
            "application/json",
            Some(TOKEN),
            400,
            "invalid JSON",
        ),
        (
            "malformed YAML",
            b"tasks: [{id: a".to_vec(),
            "application/yaml",
            Some(TOKEN),
            400,
            "invalid YAML",
        ),
        (
            "malformed msgpack",
            vec![0xc1, 0x00],
            "application/msgpack",
            Some(TOKEN),
            400,
            "MessagePack",
        ),
        (
            "a compact DAG whose dependency is out of range",
            rukong_core::dag::CompactDag(
                "x".into(),
                vec!["const".into()],
                vec![rukong_core::dag::compact::CompactTask(
                    "a".into(),
                    0,
                    vec![9],
                    vec![],
                    None,
                )],
                None,
            )
            .to_msgpack(),
            rukong_core::dag::compact::CONTENT_TYPE,
            Some(TOKEN),
            400,
            "task 0 (a): dependency position 9",
        ),
        (
            "cycle",
            br#"{"tasks":[{"id":"a","fn":"add","deps":["b"]},{"id":"b","fn":"add","deps":["a"]}]}"#
                .to_vec(),
            "application/json",
            Some(TOKEN),
            400,
            "cycle through task",
        ),
        (
            "brace id",
            br#"{"tasks":[{"id":"{x}","fn":"const","args":[1]}]}"#.to_vec(),
            "application/json",
            Some(TOKEN),
            400,
            "bad id",
        ),
        (
            "colon id",
            br#"{"tasks":[{"id":"a:b","fn":"const","args":[1]}]}"#.to_vec(),
            "application/json",
            Some(TOKEN),
            400,
            "bad id",
        ),
        (
            "unknown fn",
            br#"{"tasks":[{"id":"a","fn":"exec","args":["rm -rf /"]}]}"#.to_vec(),
            "application/json",
            Some(TOKEN),
            400,
            "unknown function",
        ),
    ];
    for (what, body, ctype, token, status, needle) in cases {
        let (got, text) = post(&body, ctype, token);
        assert_eq!(got, status, "{what}: {text}");
        assert!(text.contains(needle), "{what}: {text}");
    }
    // An oversized body is refused with 413: at once when its declared length is over the
    // limit, and once the limit is crossed when it comes in chunks (a streamed compact
    // body). The connection may be closed while the client is still writing: send from a
    // thread, read the answer here.
    for (ctype, chunked) in [
        ("application/json", false),
        (rukong_core::dag::compact::CONTENT_TYPE, false),
        (rukong_core::dag::compact::CONTENT_TYPE, true),
        ("application/yaml", true),
    ] {
        use std::io::{Read as _, Write as _};
        let addr = c.engine_url.trim_start_matches("http://").to_owned();
        let mut sock = std::net::TcpStream::connect(&addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut writer = sock.try_clone().unwrap();
        let framing = if chunked {
            "Transfer-Encoding: chunked".to_owned()
        } else {
            format!("Content-Length: {}", 2 << 20)
        };
        let head = format!(
            "POST /jobs HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: {ctype}\r\n{framing}\r\n\r\n"
        );
        let sender = std::thread::spawn(move || {
            let _ = writer.write_all(head.as_bytes());
            // A compact DAG's first bytes (an array of four, a 4 GiB name), then filler that
            // the decoder reads as the name's bytes.
            let mut body = vec![0x94, 0xdb, 0xff, 0xff, 0xff, 0xff];
            body.resize(2 << 20, b' ');
            if chunked {
                for part in body.chunks(64 << 10) {
                    let _ = writer.write_all(format!("{:x}\r\n", part.len()).as_bytes());
                    let _ = writer.write_all(part);
                    let _ = writer.write_all(b"\r\n");
                }
                let _ = writer.write_all(b"0\r\n\r\n");
            } else {
                let _ = writer.write_all(&body);
            }
        });
        let mut buf = vec![0u8; 4096];
        let n = sock.read(&mut buf).unwrap();
        let answer = String::from_utf8_lossy(&buf[..n]);
        assert!(
            answer.starts_with("HTTP/1.1 413"),
            "{ctype} chunked={chunked}: {answer}"
        );
        drop(sock);
        let _ = sender.join();
    }
    // MessagePack is accepted too, and the engine still serves good jobs.
    let spec = rukong_core::DagSpec::from_json_str(std::str::from_utf8(good).unwrap()).unwrap();
    let mp = rmp_serde::to_vec_named(&spec).unwrap();
    let (status, text) = post(&mp, "application/msgpack", Some(TOKEN));
    assert_eq!(status, 201, "{text}");
    let job: serde_json::Value = serde_json::from_str(&text).unwrap();
    let client = c.client();
    let jid = rukong_core::JobId::new(job["job"].as_str().unwrap());
    let st = client
        .wait(
            &jid,
            Some(Duration::from_secs(30)),
            Duration::from_secs(5),
            |_, _| {},
        )
        .unwrap();
    assert_eq!(st.state(), "succeeded");
    assert_eq!(client.outputs(&jid).unwrap()["a"], 1);
    // Unknown and malformed job ids.
    let mut r = agent
        .get(&format!("{}/jobs/jdoesnotexist", c.engine_url))
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .call()
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        404,
        "{}",
        r.body_mut().read_to_string().unwrap_or_default()
    );
    let r = agent
        .get(&format!("{}/jobs/a%7Bb", c.engine_url))
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // Metrics are Prometheus text.
    let mut m = agent
        .get(&format!("{}/metrics", c.engine_url))
        .call()
        .unwrap();
    let text = m.body_mut().read_to_string().unwrap();
    assert!(text.contains("rukong_jobs_submitted_total 1"), "{text}");
    assert!(text.contains("rukong_executors 1"), "{text}");
}

#[test]
fn cancel_frees_the_job_and_status_reports_it() {
    let c = Cluster::start(Options {
        executors: 1,
        ..Options::default()
    });
    let f = temp_file("slow.yaml", &spin_tree(32, 300));
    let client = c.client();
    let job = client
        .submit_bytes(&std::fs::read(&f).unwrap(), "application/yaml")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(client.status(&job).unwrap().state(), "running");
    client.cancel(&job).unwrap();
    let st = client.wait(
        &job,
        Some(Duration::from_secs(20)),
        Duration::from_secs(5),
        |_, _| {},
    );
    match st {
        Ok(s) => assert_eq!(s.state(), "cancelled", "{}", s.json),
        Err(e) => assert!(e.to_string().contains("no job"), "{e}"),
    }
    // The CLI's status command talks to the same API.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rukong"))
        .args([
            "status",
            job.as_str(),
            "--engine",
            &c.engine_url,
            "--token",
            TOKEN,
        ])
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0) | Some(2)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_cluster_run_draws_its_timeline() {
    let c = Cluster::start(Options {
        executors: 2,
        ..Options::default()
    });
    let svg = temp_file("timeline.svg", "");
    let out = c.run(
        &repo("examples/diamond.yaml"),
        &["--timeline", svg.to_str().unwrap()],
    );
    let v = assert_ok(&out);
    assert_eq!(v["outputs"]["d"], 10);
    let s = std::fs::read_to_string(&svg).unwrap();
    assert!(s.starts_with("<svg"), "{s}");
    for task in ["a", "b", "c", "d"] {
        assert!(
            s.contains(&format!("<title>{task} (")),
            "bar for {task} in {s}"
        );
    }
    assert!(s.contains("critical path: d"));
    // Outputs over the inline limit cross the proxy: the timeline marks the put and the get.
    let dag = temp_file(
        "moves.yaml",
        "name: moves\ntasks:\n  - {id: a, fn: blob, args: [200000, 1]}\n  - {id: b, fn: blob, args: [200000, 2]}\n  - {id: h, fn: sha256, deps: [a, b]}\n",
    );
    let svg = temp_file("moves.svg", "");
    let out = c.run(&dag, &["--timeline", svg.to_str().unwrap()]);
    assert_ok(&out);
    let s = std::fs::read_to_string(&svg).unwrap();
    assert!(s.contains("put of a's output: 195.3 KiB"), "{s}");
    assert!(s.contains("put of b's output: 195.3 KiB"), "{s}");
    // The fan-in's last parent has its own output in hand and reads the other one.
    assert!(
        s.contains("get of a's output: 195.3 KiB") || s.contains("get of b's output: 195.3 KiB"),
        "{s}"
    );
    assert!(s.contains("3 tasks on"), "{s}");
    // Untraced jobs have no spans.
    let client = c.client();
    let job = client
        .submit_bytes(
            &std::fs::read(repo("examples/diamond.yaml")).unwrap(),
            "application/yaml",
        )
        .unwrap();
    client
        .wait(
            &job,
            Some(Duration::from_secs(30)),
            Duration::from_secs(5),
            |_, _| {},
        )
        .unwrap();
    assert!(client.trace(&job).unwrap().is_empty());
}

#[test]
fn gpu_tasks_run_on_a_gpu_executor_in_cluster_mode() {
    let dag = temp_file(
        "gpu.yaml",
        "name: gpu\ntasks:\n  - {id: b, fn: matrix, args: [8, 8, 9]}\n  - {id: a0, fn: matrix, args: [8, 8, 0]}\n  - {id: a1, fn: matrix, args: [8, 8, 1]}\n  - {id: p0, fn: gpu_matmul, deps: [a0, b], resources: {gpu: 1}}\n  - {id: p1, fn: gpu_matmul, deps: [a1, b], resources: {gpu: 1}}\n  - {id: r0, fn: matmul, deps: [a0, b]}\n  - {id: d0, fn: max_abs_diff, deps: [p0, r0]}\n  - {id: s, fn: madd, deps: [p0, p1]}\n  - {id: n, fn: frobenius, deps: [s]}\n",
    );
    // No executor with a GPU: rejected at submission, naming the task.
    let c = Cluster::start(Options {
        executors: 1,
        ..Options::default()
    });
    let out = c.run(&dag, &[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("p0") && err.contains("GPU"), "{err}");
    drop(c);
    // With simulated GPUs, the GPU tasks run there and match the CPU reference.
    let c = Cluster::start(Options {
        executors: 2,
        gpu: "simulated",
        ..Options::default()
    });
    let v = assert_ok(&c.run(&dag, &[]));
    assert!(v["outputs"]["d0"].as_f64().unwrap() < 1e-5, "{v}");
    assert!(v["outputs"]["n"].as_f64().unwrap() > 0.0, "{v}");
    assert_eq!(v["stats"]["bundled"], 2, "{v}");
    // Each GPU executor reports its device's counters with its heartbeat; the engine
    // exports them. Wait for a heartbeat after the run.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let launches = loop {
        let mut m = agent
            .get(&format!("{}/metrics", c.engine_url))
            .call()
            .unwrap();
        let text = m.body_mut().read_to_string().unwrap();
        let total: u64 = text
            .lines()
            .filter(|l| l.starts_with("rukong_gpu_bundled_calls_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum();
        if total >= 2 || std::time::Instant::now() > deadline {
            assert!(
                text.contains("rukong_gpu_cache_misses_total{executor="),
                "{text}"
            );
            break total;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        launches, 2,
        "both GPU calls went through a device's bundler"
    );
    let mut h = agent
        .get(&format!("{}/healthz", c.engine_url))
        .call()
        .unwrap();
    let health: serde_json::Value =
        serde_json::from_str(&h.body_mut().read_to_string().unwrap()).unwrap();
    let gpus = health["gpus"].as_array().unwrap();
    assert_eq!(gpus.len(), 2, "{health}");
    assert!(
        gpus[0]["device"]
            .as_str()
            .unwrap()
            .starts_with("simulated:"),
        "{health}"
    );
}

/// Conditional branches (`docs/conditional-branches.md`) in cluster mode: the same shapes as the
/// embedded tests, across executor processes and Redis (flagged arrivals in the fan-in script, skip
/// markers in the outputs hash, proxy-handled fan-outs of skipped parents); skipped outputs come
/// back from `GET /jobs/{id}/outputs` and print as `(skipped)`.
#[test]
fn the_cluster_propagates_skips_through_every_shape() {
    use common::conditional::{all_cases, check_json};
    let c = Cluster::start(Options::default());
    for case in all_cases() {
        let f = temp_file(&format!("cond-{}.yaml", case.name), &case.yaml);
        let v = assert_ok(&c.run(&f, &[]));
        check_json(&case, &v, "cluster");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rukong"))
        .arg("run")
        .arg(repo("examples/inference-cascade.yaml"))
        .args(["--engine", &c.engine_url, "--no-progress"])
        .env("RUKONG_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().any(|l| l == "street.expensive: (skipped)"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l == r#"fog.answer: {"confidence":0.87,"label":"truck"}"#),
        "{text}"
    );
}
