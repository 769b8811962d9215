//! Cluster mode under process faults: the engine and the KV-store proxy are SIGKILLed while
//! jobs run and restarted on the same address. Real `rukong` processes against a real
//! `redis-server` on loopback (see `common::cluster`).

mod common;

use common::cluster::{Cluster, Options, TOKEN, finish_within, json, spin_tree, temp_file};
use rukong_client::JobBuilder;
use rukong_client::workloads::{blob_bytes, to_yaml};
use rukong_core::JobId;
use rukong_core::Value;
use rukong_core::ids::TaskIdx;
use rukong_core::messages::ObjectKey;
use rukong_core::proxy::Proxy;
use rukong_core::proxy::remote::{RemoteConfig, RemoteProxy};
use rukong_core::proxy::wire::{
    self, ClientHello, FromProxy, MAX_FRAME, MAX_HELLO, Request, Response, ServerHello, ToProxy,
};
use rukong_core::store::redis::{RedisConfig, RedisStore};
use rukong_core::store::{JobStore, ObjectStore};
use rukong_core::value::sha256_hex;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn store(rt: &tokio::runtime::Runtime, c: &Cluster) -> RedisStore {
    rt.block_on(RedisStore::connect(RedisConfig {
        url: c.redis.url(),
        ..RedisConfig::default()
    }))
    .unwrap()
}

/// The one job in the cluster's Redis, once it has been submitted (bounded: 30 s).
fn the_job(rt: &tokio::runtime::Runtime, store: &RedisStore) -> JobId {
    let t0 = Instant::now();
    loop {
        let jobs = rt.block_on(store.list_jobs()).unwrap();
        assert!(jobs.len() <= 1, "{jobs:?}");
        if let Some(j) = jobs.into_iter().next() {
            return j;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no job submitted within 30 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How many keys of the cluster's Redis match `pattern` (`KEYS`; the test Redis is small).
fn count_keys(c: &Cluster, pattern: &str) -> usize {
    let reply = c
        .redis
        .command(&format!("KEYS {pattern}"))
        .expect("redis answers");
    reply
        .strip_prefix('*')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("KEYS answered {reply:?}"))
}

/// Waits (up to `limit`) until some key matches `pattern`; whether one did.
fn wait_for_key(c: &Cluster, pattern: &str, limit: Duration) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if count_keys(c, pattern) > 0 {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn an_engine_sigkilled_mid_job_is_replaced_and_the_client_gets_the_exact_sum() {
    let mut c = Cluster::start(Options {
        executors: 3,
        slots: 1,
        ..Options::default()
    });
    let rt = runtime();
    let st = store(&rt, &c);
    // 64 leaves of 250 ms on 3 slots: about 5.5 s of work.
    let f = temp_file("spin-tree.yaml", &spin_tree(64, 250));
    let run = c.spawn_run(&f, &["--timeout", "120"]);
    let job = the_job(&rt, &st);
    std::thread::sleep(Duration::from_millis(500));

    // Down for a while (the client's polls are refused), then back on the same port,
    // within the 5 s outage grace of `rukong run`.
    let down = Instant::now();
    c.kill_engine();
    assert!(
        c.client().healthz().is_err(),
        "the engine still answers after SIGKILL"
    );
    std::thread::sleep(Duration::from_millis(500));
    c.start_engine();
    let outage = down.elapsed();
    assert!(outage < Duration::from_secs(5), "restart took {outage:?}");

    // The new engine replayed the job from Redis and follows it from where it is.
    let client = c.client();
    let mid = client.status(&job).unwrap();
    assert_eq!(mid.state(), "running", "{}", mid.json);
    let total = 64 + 64 + 63;
    assert!(mid.done() < total, "{}", mid.json);

    let out = finish_within(run, Duration::from_secs(150));
    let v = json(&out);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(v["job"], job.as_str());
    assert_eq!(v["stats"]["state"], "succeeded");
    assert_eq!(v["outputs"]["a6_0"], 64 * 63 / 2);

    // The engine that finished the job reports it too.
    let end = client.status(&job).unwrap();
    assert_eq!(end.state(), "succeeded", "{}", end.json);
    assert_eq!(end.done(), total, "{}", end.json);
    assert_eq!(end.total(), total, "{}", end.json);
    assert_eq!(client.outputs(&job).unwrap()["a6_0"], 64 * 63 / 2);
}

#[test]
fn the_client_waits_out_an_engine_restart_but_not_a_dead_engine() {
    let mut c = Cluster::start(Options {
        executors: 1,
        slots: 1,
        ..Options::default()
    });
    let f = temp_file("slow.yaml", &spin_tree(8, 300));
    let client = c.client();
    let job = client
        .submit_bytes(&std::fs::read(&f).unwrap(), "application/yaml")
        .unwrap();
    // Restarted within the grace: the wait carries on.
    let waiter = {
        let client = client.clone();
        let job = job.clone();
        std::thread::spawn(move || {
            client.wait(
                &job,
                Some(Duration::from_secs(60)),
                Duration::from_secs(10),
                |_, _| {},
            )
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    c.kill_engine();
    std::thread::sleep(Duration::from_millis(1_000));
    c.start_engine();
    let st = waiter.join().unwrap().unwrap();
    assert_eq!(st.state(), "succeeded", "{}", st.json);
    assert_eq!(client.outputs(&job).unwrap()["a3_0"], 8 * 7 / 2);

    // Gone for longer than the grace: a clear transport error, soon after the grace.
    c.kill_engine();
    let t0 = Instant::now();
    let err = client
        .wait(
            &job,
            Some(Duration::from_secs(60)),
            Duration::from_millis(800),
            |_, _| {},
        )
        .unwrap_err();
    assert!(
        t0.elapsed() >= Duration::from_millis(800) && t0.elapsed() < Duration::from_secs(10),
        "{:?}",
        t0.elapsed()
    );
    assert!(
        matches!(err, rukong_client::remote::RemoteError::Transport { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("cannot reach the engine"), "{err}");
}

const BLOB: usize = 8 << 20;
const PRODUCERS: usize = 6;

/// Six 8 MiB blobs, each digested, all concatenated, digested and measured.
fn big_puts() -> String {
    let mut b = JobBuilder::new("big-puts");
    for i in 0..PRODUCERS {
        b.task(format!("b{i}"), "blob")
            .arg(BLOB as i64)
            .arg(i as i64);
        b.task(format!("h{i}"), "sha256").dep(format!("b{i}"));
        b.output(format!("h{i}"));
    }
    let blobs: Vec<String> = (0..PRODUCERS).map(|i| format!("b{i}")).collect();
    b.task("all", "concat")
        .deps(blobs.iter().map(String::as_str));
    b.task("hall", "sha256").dep("all");
    b.task("n", "len").dep("all");
    b.output("hall").output("n");
    to_yaml(&b.build())
}

#[test]
fn a_proxy_sigkilled_during_large_puts_into_redis_gives_exact_results_or_a_clear_error() {
    proxy_killed_during_large_puts("store");
}

#[test]
fn a_proxy_sigkilled_while_executors_share_objects_gives_exact_results_or_a_clear_error() {
    proxy_killed_during_large_puts("shared");
}

/// A job's object, as the proxy would serve it: its file in the shared directory, else the
/// store's.
fn stored_object(
    rt: &tokio::runtime::Runtime,
    st: &RedisStore,
    c: &Cluster,
    key: &ObjectKey,
) -> Option<Vec<u8>> {
    let (job, name) = key.owner().unwrap();
    match std::fs::read(c.shared_dir.path().join(job).join(name)) {
        Ok(b) => Some(b),
        Err(_) => rt
            .block_on(ObjectStore::get_object(st, key))
            .unwrap()
            .map(|b| b.to_vec()),
    }
}

fn proxy_killed_during_large_puts(objects_in: &'static str) {
    let mut c = Cluster::start(Options {
        executors: 3,
        slots: 2,
        visibility_timeout_ms: 1_500,
        max_deliveries: 5,
        proxy_objects: objects_in,
        ..Options::default()
    });
    let rt = runtime();
    let st = store(&rt, &c);
    let f = temp_file("big-puts.yaml", &big_puts());
    let run = c.spawn_run(&f, &["--timeout", "120"]);
    let job = the_job(&rt, &st);
    // Kill the proxy as soon as the job's first object is being written (to Redis, a chunk
    // or a whole value; or a file in the shared directory): the other producers' puts are
    // then in flight or about to start.
    let objects = format!("{}obj:*", rukong_core::messages::job_prefix(&job));
    let files = c.shared_dir.path().join(job.as_str());
    let writing = if objects_in == "shared" {
        let t0 = Instant::now();
        while !files.is_dir() && t0.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(1));
        }
        files.is_dir()
    } else {
        wait_for_key(&c, &objects, Duration::from_secs(60))
    };
    c.kill_proxy();
    eprintln!(
        "proxy kill ({objects_in}): {} keys of objects at the kill (writing seen: {writing})",
        count_keys(&c, &objects)
    );
    std::thread::sleep(Duration::from_millis(1_000));
    c.start_proxy();
    let out = finish_within(run, Duration::from_secs(150));

    // What every object of the job must be, if it is there at all.
    let blobs: Vec<Vec<u8>> = (0..PRODUCERS).map(|i| blob_bytes(BLOB, i as u64)).collect();
    let all = blobs.concat();
    let mut whole: HashMap<String, Value> = blobs
        .iter()
        .enumerate()
        .map(|(i, b)| (format!("b{i}"), Value::Bytes(b.clone().into())))
        .collect();
    whole.insert("all".into(), Value::Bytes(all.clone().into()));

    let err = stderr(&out);
    match out.status.code() {
        Some(0) => {
            let v = json(&out);
            assert_eq!(v["stats"]["state"], "succeeded");
            for (i, b) in blobs.iter().enumerate() {
                assert_eq!(v["outputs"][format!("h{i}")], sha256_hex(b), "h{i}");
            }
            assert_eq!(v["outputs"]["hall"], sha256_hex(&all));
            assert_eq!(v["outputs"]["n"], all.len() as u64);
            eprintln!("proxy kill: the job succeeded; stats {}", v["stats"]);
        }
        Some(1) => {
            // Failed: the error must say that the proxy was the trouble.
            assert!(err.to_lowercase().contains("proxy"), "stderr: {err}");
            eprintln!("proxy kill: the job failed: {err}");
        }
        other => panic!("exit {other:?}; stderr: {err}"),
    }

    // No object of the job is readable in part: each one still stored is whole.
    let plan = rt.block_on(st.get_job(&job)).unwrap();
    let mut present = Vec::new();
    let mut released = Vec::new();
    for i in 0..plan.dag.len() {
        let idx = TaskIdx(i as u32);
        let id = plan.dag.id(idx).to_string();
        let key = ObjectKey::for_output(&job, idx);
        let Some(bytes) = stored_object(&rt, &st, &c, &key) else {
            continue;
        };
        if rukong_core::store::is_tombstone(&bytes) {
            // Every reader was done with it, and it was freed.
            released.push(id);
            continue;
        }
        let v = Value::from_msgpack(&bytes)
            .unwrap_or_else(|e| panic!("object {key} ({id}) does not decode: {e}"));
        if let Some(want) = whole.get(&id) {
            assert!(
                v == *want,
                "object {key} ({id}) is not the whole value: {} bytes",
                bytes.len()
            );
        }
        present.push(id);
    }
    present.sort();
    released.sort();
    eprintln!("proxy kill: objects stored after the job: {present:?}; released: {released:?}");
    if out.status.code() == Some(0) {
        // The blobs reached `all` from other invocations, over the inline limit: as objects,
        // freed once all their readers were done (the tombstone stays with the job).
        for i in 0..PRODUCERS {
            let b = format!("b{i}");
            assert!(
                present.contains(&b) || released.contains(&b),
                "b{i}: {present:?}, released {released:?}"
            );
        }
    }
}

/// Connects to the proxy and completes the handshake.
async fn raw_connection(addr: &str) -> tokio::net::TcpStream {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    wire::write_frame(&mut s, &ClientHello::new(Some(TOKEN.into())))
        .await
        .unwrap();
    let hello: ServerHello = wire::read_frame(&mut s, MAX_HELLO).await.unwrap().unwrap();
    hello
        .check(rukong_core::messages::PROTOCOL_VERSION)
        .unwrap();
    s
}

/// What a put of `data` at `key` sends: its frame, then the object's bytes.
fn put_frame(key: &ObjectKey, data: &[u8]) -> Vec<u8> {
    let req = Request {
        req_id: 1,
        body: ToProxy::Put {
            key: key.clone(),
            len: data.len() as u64,
        },
    };
    let mut sent = wire::encode_frame(&req, data.len() + 256).unwrap();
    sent.extend_from_slice(data);
    sent
}

#[test]
fn a_put_cut_off_by_a_proxy_kill_is_never_stored_in_part() {
    let mut c = Cluster::start(Options {
        executors: 0,
        ..Options::default()
    });
    let rt = runtime();
    let st = store(&rt, &c);
    let data = blob_bytes(32 << 20, 7);
    let get = |key: &ObjectKey| rt.block_on(ObjectStore::get_object(&st, key)).unwrap();

    // Half a 32 MiB put frame reaches the proxy, then the proxy dies: nothing is stored.
    let key = ObjectKey::new("faults:half");
    let frame = put_frame(&key, &data);
    let mut conn = rt.block_on(async {
        let mut s = raw_connection(&c.proxy_addr).await;
        s.write_all(&frame[..frame.len() / 2]).await.unwrap();
        s.flush().await.unwrap();
        s
    });
    std::thread::sleep(Duration::from_millis(300));
    c.kill_proxy();
    assert_eq!(get(&key), None, "a half-sent object is readable");
    // The rest of the frame goes nowhere (the connection died with the proxy).
    let rest = rt.block_on(async {
        conn.write_all(&frame[frame.len() / 2..]).await?;
        conn.flush().await
    });
    drop(conn);
    c.start_proxy();
    assert_eq!(get(&key), None, "a half-sent object is readable");
    let via_proxy = rt.block_on(async {
        let p = RemoteProxy::connect(
            c.proxy_addr.clone(),
            Some(TOKEN.into()),
            RemoteConfig::default(),
        )
        .await
        .unwrap();
        p.get_object(&key).await.unwrap()
    });
    assert_eq!(
        via_proxy, None,
        "the restarted proxy serves a half-sent object"
    );
    eprintln!("writing the rest after the kill: {rest:?}");

    // The whole frame arrives and the proxy dies: as soon as it writes the first chunk to
    // Redis, or after a delay (before, during or after its writes), or after it answered.
    // The object is absent or whole, never partial, and a put it acknowledged is there.
    let mut outcomes = Vec::new();
    let cases = [
        Kill::AtFirstChunk,
        Kill::After(0),
        Kill::After(100),
        Kill::After(1_000),
        Kill::AtFirstChunk,
        Kill::AfterAnswer,
    ];
    for (n, when) in cases.into_iter().enumerate() {
        let key = ObjectKey::new(format!("faults:whole:{n}"));
        let chunks = format!("{{{key}}}:v*");
        let frame = put_frame(&key, &data);
        let mut conn = rt.block_on(async {
            let mut s = raw_connection(&c.proxy_addr).await;
            s.write_all(&frame).await.unwrap();
            s.flush().await.unwrap();
            s
        });
        let read_answer = |conn: &mut tokio::net::TcpStream, limit: Duration| {
            let answer = rt.block_on(async {
                tokio::time::timeout(limit, wire::read_frame::<_, Response>(conn, MAX_FRAME)).await
            });
            matches!(
                answer,
                Ok(Ok(Some(Response {
                    body: FromProxy::Done,
                    ..
                })))
            )
        };
        let mut acked = false;
        match when {
            Kill::AtFirstChunk => assert!(
                wait_for_key(&c, &chunks, Duration::from_secs(30)),
                "the proxy wrote no chunk of {key} within 30 s"
            ),
            Kill::After(ms) => std::thread::sleep(Duration::from_millis(ms)),
            Kill::AfterAnswer => {
                acked = read_answer(&mut conn, Duration::from_secs(30));
                assert!(acked, "the proxy did not acknowledge the put of {key}");
            }
        }
        c.kill_proxy();
        acked = acked || read_answer(&mut conn, Duration::from_secs(5));
        let left = count_keys(&c, &chunks);
        match get(&key) {
            None => {
                assert!(!acked, "an acknowledged put is missing ({when:?})");
                outcomes.push(format!("{when:?}: absent, {left} chunks left behind"));
            }
            Some(v) => {
                assert!(
                    v.len() == data.len() && v.as_ref() == data.as_slice(),
                    "a partial object is readable after a kill ({when:?}): {} of {} bytes",
                    v.len(),
                    data.len()
                );
                outcomes.push(format!(
                    "{when:?}: whole{}",
                    if acked { " (acknowledged)" } else { "" }
                ));
            }
        }
        c.start_proxy();
    }
    eprintln!("kills after the whole frame: {outcomes:#?}");
}

/// When the proxy is killed after a put's whole frame was sent.
#[derive(Clone, Copy, Debug)]
enum Kill {
    /// As soon as the first chunk of the object is in Redis.
    AtFirstChunk,
    /// After so many milliseconds.
    After(u64),
    /// After it acknowledged the put.
    AfterAnswer,
}

#[test]
fn a_redis_restarted_with_its_append_only_file_mid_job_changes_nothing_in_the_result() {
    let mut c = Cluster::start(Options {
        persistent_redis: true,
        ..Options::default()
    });
    // 64 leaves of 150 ms on 6 slots: about 2 s of work.
    let f = temp_file("aof-tree.yaml", &spin_tree(64, 150));
    let run = c.spawn_run(&f, &["--timeout", "120"]);
    std::thread::sleep(Duration::from_millis(800));
    c.redis.restart();
    let out = finish_within(run, Duration::from_secs(120));
    let v = json(&out);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(v["stats"]["state"], "succeeded");
    assert_eq!(v["outputs"]["a6_0"], 64 * 63 / 2);
}

#[test]
fn a_redis_restarted_empty_mid_job_fails_the_job_as_lost_within_30_s() {
    let mut c = Cluster::start(Options::default());
    let f = temp_file("lost-tree.yaml", &spin_tree(64, 300));
    let run = c.spawn_run(&f, &["--timeout", "120"]);
    std::thread::sleep(Duration::from_millis(800));
    let t0 = Instant::now();
    c.redis.restart();
    let out = finish_within(run, Duration::from_secs(60));
    let err = stderr(&out);
    assert_ne!(out.status.code(), Some(0), "a lost job succeeded: {err}");
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "took {:?}",
        t0.elapsed()
    );
    assert!(err.contains("lost"), "not reported as lost: {err}");
    assert!(!err.contains("cancelled"), "reported as cancelled: {err}");
}

#[test]
fn an_executor_stopped_while_redis_is_down_exits_cleanly_within_10_s() {
    let mut c = Cluster::start(Options {
        executors: 0,
        gpu: "simulated",
        ..Options::default()
    });
    // A CPU and a GPU executor in one process, its stderr kept.
    let log = temp_file("executor.log", "");
    let mut cmd = c.executor_command(0);
    cmd.stderr(std::fs::File::create(&log).unwrap());
    let mut exec = cmd.spawn().unwrap();
    c.wait_healthy(1);
    c.redis.stop();
    std::thread::sleep(Duration::from_millis(700));
    let t0 = Instant::now();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &exec.id().to_string()])
        .status();
    let status = loop {
        if let Some(s) = exec.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > Duration::from_secs(10) {
            let _ = exec.kill();
            panic!(
                "the executor did not stop within 10 s of SIGTERM: {}",
                std::fs::read_to_string(&log).unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let err = std::fs::read_to_string(&log).unwrap();
    assert!(!err.contains("panicked"), "a panic on shutdown: {err}");
    assert!(status.success(), "exit {status:?}: {err}");
    assert!(err.contains("stopping"), "{err}");
}
