//! The store conformance suite and Redis-specific checks against real `redis-server`
//! processes (one per test, on a free port). Needs `--features redis,test-util` and
//! `redis-server` on PATH: `cargo test -p rukong-core --features redis,test-util`.
#![cfg(all(feature = "redis", feature = "test-util"))]

use bytes::Bytes;
use rukong_core::StoreError;
use rukong_core::ids::{ExecClass, ExecutorId, JobId, TaskIdx};
use rukong_core::messages::{Event, Invocation, JobState, ObjectKey, Payload, Start};
use rukong_core::store::conformance::sample_plan;
use rukong_core::store::redis::{RedisConfig, RedisStore};
use rukong_core::store::{
    ArrivalReq, EventLog, ExecutorInfo, FanInStore, InvocationQueue, JobStore, MembershipStore,
    ObjectStore, OutputStore, ProfileStore,
};
use rukong_core::testing::{RedisCluster, RedisServer};
use rukong_core::value::Value;
use std::sync::Arc;

use std::time::{Duration, Instant};

async fn store_for(url: String) -> RedisStore {
    RedisStore::connect(RedisConfig {
        url,
        ..Default::default()
    })
    .await
    .expect("connect to the test Redis")
}

rukong_core::store_conformance_tests!(async {
    let server = RedisServer::start();
    let store = store_for(server.url()).await;
    (server, Arc::new(store))
});

/// A raw client, to look at the keys behind the store's back.
async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn scan(con: &mut redis::aio::MultiplexedConnection, pattern: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(con)
            .await
            .unwrap();
        keys.extend(batch);
        if next == 0 {
            return keys;
        }
        cursor = next;
    }
}

#[path = "redis_conformance/objects.rs"]
mod objects;

fn arrival(plan: &rukong_core::JobPlan, child: &str, parent: &str) -> ArrivalReq {
    let d = &plan.dag;
    let c = d.lookup(child).unwrap();
    let p = d.lookup(parent).unwrap();
    let pos = d.children(p).iter().find(|e| e.task == c).unwrap().pos;
    ArrivalReq {
        child: c,
        pos,
        needed: d.needed(c),
    }
}

fn result(t: u32) -> Event {
    Event::TaskResult {
        task: TaskIdx(t),
        sink: true,
        payload: Some(Payload::Inline(Value::Int(t.into()))),
    }
}

/// Runs a job through every kind of job key.
async fn exercise_job(s: &RedisStore, job: &str) -> Arc<rukong_core::JobPlan> {
    let plan = sample_plan(job);
    let job = &plan.job;
    s.put_job(plan.clone()).await.unwrap();
    s.record_arrivals(job, &[arrival(&plan, "c", "a")])
        .await
        .unwrap();
    let a = plan.dag.lookup("a").unwrap();
    s.put_outputs(job, vec![(a, Payload::Inline(Value::Int(1)))])
        .await
        .unwrap();
    // A level's writes and arrivals in one script (its four keys share the job's tag).
    // `b` completes `c`, its only reader: its output is not stored (`b` holds it); an
    // output always stored is.
    let (b, c) = (plan.dag.lookup("b").unwrap(), plan.dag.lookup("c").unwrap());
    let done = s
        .put_outputs_and_arrive(
            job,
            vec![
                rukong_core::store::LevelWrite {
                    task: b,
                    payload: Payload::Inline(Value::Int(2)),
                    readers: vec![0],
                },
                rukong_core::store::LevelWrite::always(c, Payload::Inline(Value::Int(3))),
            ],
            &[rukong_core::store::FlaggedArrival {
                req: arrival(&plan, "c", "b"),
                skipped: false,
            }],
        )
        .await
        .unwrap();
    assert!(done[0].completes(), "{done:?}");
    assert_eq!(
        s.get_outputs(job, &[b, c]).await.unwrap(),
        vec![None, Some(Payload::Inline(Value::Int(3)))]
    );
    s.append_events(job, vec![result(1), result(2)])
        .await
        .unwrap();
    s.put_object(&ObjectKey::for_output(job, a), Bytes::from(vec![1u8; 100]))
        .await
        .unwrap();
    s.put_object(
        &ObjectKey::for_output(job, TaskIdx(2)),
        Bytes::from(vec![2u8; 3 << 20]),
    )
    .await
    .unwrap();
    s.set_job_state(job, JobState::Succeeded).await.unwrap();
    plan
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_keys_have_a_ttl_and_delete_job_frees_them_all() {
    let server = RedisServer::start();
    let s = store_for(server.url()).await;
    let mut con = raw(&server.url()).await;
    let plan = exercise_job(&s, "keys").await;
    let pattern = format!("rk:{{{}}}:*", plan.job);
    let keys = scan(&mut con, &pattern).await;
    for suffix in [
        "plan", "state", "arr", "cnt", "out", "events", "evseq", "objects",
    ] {
        assert!(
            keys.contains(&format!("rk:{{{}}}:{suffix}", plan.job)),
            "{suffix} missing from {keys:?}"
        );
    }
    assert!(keys.len() > 10, "chunked object expected: {keys:?}");
    for k in &keys {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(k)
            .query_async(&mut con)
            .await
            .unwrap();
        assert!(ttl > 0, "{k} has no expiry ({ttl})");
    }
    s.delete_job(&plan.job).await.unwrap();
    assert_eq!(scan(&mut con, &pattern).await, Vec::<String>::new());
    let jobs: Vec<String> = redis::cmd("SMEMBERS")
        .arg("rk:jobs")
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(jobs.is_empty(), "{jobs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lapsed_jobs_leave_the_job_list() {
    let server = RedisServer::start();
    let s = store_for(server.url()).await;
    let mut con = raw(&server.url()).await;
    let plan = sample_plan("lapsed");
    s.put_job(plan.clone()).await.unwrap();
    assert_eq!(s.list_jobs().await.unwrap(), vec![plan.job.clone()]);
    // As if its keys had expired.
    let _: i64 = redis::cmd("DEL")
        .arg(format!("rk:{{{}}}:state", plan.job))
        .arg(format!("rk:{{{}}}:plan", plan.job))
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(s.list_jobs().await.unwrap().is_empty());
    let jobs: Vec<String> = redis::cmd("SMEMBERS")
        .arg("rk:jobs")
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(jobs.is_empty());
}

fn is_retryable<T: std::fmt::Debug>(r: &Result<T, StoreError>) -> bool {
    matches!(
        r,
        Err(StoreError::Unavailable(_) | StoreError::Timeout { .. })
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_goes_away_fails_calls_fast_and_comes_back() {
    let mut server = RedisServer::start();
    let s = store_for(server.url()).await;
    let plan = sample_plan("away");
    let job = plan.job.clone();
    s.put_job(plan.clone()).await.unwrap();
    let epoch = s.run_epoch().await.unwrap();
    let me = ExecutorId::new("away-1");
    // Put a blocking connection in the pool.
    assert!(
        s.pull(ExecClass::Cpu, &me, 1, Duration::from_millis(20))
            .await
            .unwrap()
            .is_empty()
    );
    server.stop();

    let bound = Duration::from_secs(5);
    macro_rules! fails_fast {
        ($call:expr) => {{
            let t0 = Instant::now();
            let r = tokio::time::timeout(Duration::from_secs(30), $call)
                .await
                .expect("a call hung");
            let took = t0.elapsed();
            assert!(is_retryable(&r), "{}: {r:?}", stringify!($call));
            assert!(took < bound, "{} took {took:?}", stringify!($call));
            eprintln!("{} failed in {took:?}: {r:?}", stringify!($call));
        }};
    }
    fails_fast!(s.job_state(&job));
    fails_fast!(s.get_job(&JobId::new("not-cached")));
    fails_fast!(s.record_arrivals(&job, &[arrival(&plan, "c", "a")]));
    fails_fast!(s.put_object(
        &ObjectKey::for_output(&job, TaskIdx(1)),
        Bytes::from(vec![0u8; 1 << 20])
    ));
    fails_fast!(s.pull(ExecClass::Cpu, &me, 1, Duration::from_secs(10)));
    fails_fast!(s.read_events(&job, 0, 10, Duration::from_secs(10)));
    fails_fast!(s.executors());

    // An empty Redis comes back on the same port: the store reconnects on its own.
    server.restart();
    let t0 = Instant::now();
    loop {
        match s.job_state(&job).await {
            Err(StoreError::UnknownJob(_)) => break, // the data is gone, the store works
            r => assert!(
                t0.elapsed() < Duration::from_secs(10),
                "no recovery after restart: {r:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The data was lost, and the run epoch says so.
    assert_ne!(s.run_epoch().await.unwrap(), epoch);
    // The queue's consumer group and pooled blocking connections recover too.
    let inv = Invocation {
        job: job.clone(),
        warm: Vec::new(),
        warm_ttl_ms: 0,
        release: Vec::new(),
        starts: vec![Start {
            task: TaskIdx(0),
            inputs: Vec::new(),
        }],
    };
    s.push(ExecClass::Cpu, vec![inv.clone()]).await.unwrap();
    let got = s
        .pull(ExecClass::Cpu, &me, 1, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].invocation, inv);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restarted_with_its_append_only_file_keeps_jobs_queues_and_the_epoch() {
    let mut server = RedisServer::start_persistent();
    let s = store_for(server.url()).await;
    let plan = sample_plan("aof");
    let job = plan.job.clone();
    s.put_job(plan.clone()).await.unwrap();
    let epoch = s.run_epoch().await.unwrap();
    let first = s
        .record_arrivals(&job, &[arrival(&plan, "c", "a"), arrival(&plan, "c", "b")])
        .await
        .unwrap();
    assert!(first[1].completes());
    let inv = Invocation::new(
        job.clone(),
        vec![Start {
            task: TaskIdx(0),
            inputs: Vec::new(),
        }],
    );
    s.push(ExecClass::Cpu, vec![inv.clone()]).await.unwrap();
    let me = ExecutorId::new("aof-1");
    let held = s
        .pull(ExecClass::Cpu, &me, 1, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(held.len(), 1);

    server.restart();
    let t0 = Instant::now();
    let epoch_after = loop {
        match s.run_epoch().await {
            Ok(e) => break e,
            Err(e) => assert!(
                t0.elapsed() < Duration::from_secs(10),
                "no recovery after restart: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(epoch_after, epoch, "nothing was lost");
    assert_eq!(s.job_state(&job).await.unwrap(), JobState::Running);
    // The completer is still told so; the pending entry is still pending (reclaimable).
    let again = s
        .record_arrivals(&job, &[arrival(&plan, "c", "b")])
        .await
        .unwrap();
    assert!(again[0].completes() && !again[0].first_time);
    let other = ExecutorId::new("aof-2");
    let re = s
        .reclaim(ExecClass::Cpu, &other, Duration::ZERO, 10)
        .await
        .unwrap();
    assert_eq!(re.len(), 1);
    assert_eq!(re[0].invocation, inv);
    assert_eq!(re[0].deliveries, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_no_redis_fails_fast_without_leaking_the_password() {
    let mut server = RedisServer::start();
    server.stop();
    let url = format!("redis://:s3cret@127.0.0.1:{}", server.port());
    let t0 = Instant::now();
    let r = RedisStore::connect(RedisConfig {
        url: url.clone(),
        ..Default::default()
    })
    .await;
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    match r {
        Err(StoreError::Unavailable(m)) => assert!(!m.contains("s3cret"), "{m}"),
        other => panic!("{other:?}"),
    }
    let config = RedisConfig {
        url,
        ..Default::default()
    };
    assert!(!format!("{config:?}").contains("s3cret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_times_out_instead_of_hanging() {
    let server = RedisServer::start();
    let s = store_for(server.url()).await;
    let plan = sample_plan("hung");
    let job = plan.job.clone();
    s.put_job(plan.clone()).await.unwrap();
    let me = ExecutorId::new("hung");
    // The consumer group exists, so that pulls go straight to the blocking read.
    s.pull(ExecClass::Cpu, &me, 1, Duration::ZERO)
        .await
        .unwrap();
    server.pause();
    for wait in [Duration::ZERO, Duration::from_secs(10)] {
        let t0 = Instant::now();
        let r = tokio::time::timeout(Duration::from_secs(30), async {
            (
                s.job_state(&job).await,
                s.pull(ExecClass::Cpu, &me, 1, wait).await,
                s.read_events(&job, 0, 1, wait).await,
            )
        })
        .await
        .expect("a call hung");
        let took = t0.elapsed();
        eprintln!("hung server, wait {wait:?}: {took:?} {r:?}");
        assert!(
            is_retryable(&r.0) && is_retryable(&r.1) && is_retryable(&r.2),
            "{r:?}"
        );
        assert!(took < Duration::from_secs(12), "{took:?}");
    }
    server.resume();
    // Once it answers again, so does the store.
    let t0 = Instant::now();
    while s.job_state(&job).await.is_err() {
        assert!(t0.elapsed() < Duration::from_secs(10), "no recovery");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_arrival_after_a_lost_reply_counts_once() {
    let server = RedisServer::start();
    let s = store_for(server.url()).await;
    let plan = sample_plan("lost-reply");
    s.put_job(plan.clone()).await.unwrap();
    let r = arrival(&plan, "c", "a");
    let first = s.record_arrivals(&plan.job, &[r]).await.unwrap();
    // The reply was "lost": the executor sends the same arrival again.
    let retry = s.record_arrivals(&plan.job, &[r]).await.unwrap();
    assert!(first[0].first_time && first[0].arrived == 1);
    assert!(!retry[0].first_time && retry[0].arrived == 1);
    // A batch holding a duplicate counts it once, and the other parent completes.
    let both = s
        .record_arrivals(
            &plan.job,
            &[arrival(&plan, "c", "b"), arrival(&plan, "c", "b")],
        )
        .await
        .unwrap();
    assert!(both[0].completes());
    // The duplicate in the same batch is the completer re-arriving: told so again.
    assert!(!both[1].first_time && both[1].arrived == 2 && both[1].completes());
    // A second store (another process) sees the same records: `a` is not the completer,
    // `b` is.
    let other = store_for(server.url()).await;
    let again = other.record_arrivals(&plan.job, &[r]).await.unwrap();
    assert_eq!(again[0].arrived, 2);
    assert!(!again[0].first_time && !again[0].completes());
    let b = other
        .record_arrivals(&plan.job, &[arrival(&plan, "c", "b")])
        .await
        .unwrap();
    assert!(b[0].completes() && !b[0].first_time);
}

/// `GET` calls Redis has run, from `INFO commandstats`.
async fn gets_run(con: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(con)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_get:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_callers_of_a_cold_plan_read_it_once() {
    let server = RedisServer::start();
    let s = store_for(server.url()).await;
    let plan = sample_plan("cold-plan");
    s.put_job(plan.clone()).await.unwrap();
    // Another process (a cold executor) whose 16 slots want the plan at the same moment.
    let cold = Arc::new(store_for(server.url()).await);
    let mut con = raw(&server.url()).await;
    let before = gets_run(&mut con).await;
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (cold, job) = (cold.clone(), plan.job.clone());
        calls.spawn(async move { cold.get_job(&job).await.map(|p| p.dag.len()) });
    }
    while let Some(r) = calls.join_next().await {
        assert_eq!(r.unwrap().unwrap(), plan.dag.len());
    }
    assert_eq!(
        gets_run(&mut con).await - before,
        1,
        "the plan was read once"
    );
    // A job that is not there is an error for every caller, and is looked for again.
    let missing = rukong_core::JobId::new("never-submitted");
    for _ in 0..2 {
        assert!(matches!(
            cold.get_job(&missing).await,
            Err(StoreError::UnknownJob(_))
        ));
    }
    assert_eq!(gets_run(&mut con).await - before, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_profile_updates_are_not_lost() {
    let server = RedisServer::start();
    let s = Arc::new(store_for(server.url()).await);
    let mut tasks = Vec::new();
    for i in 0..20u64 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut p = rukong_core::profile::FnProfile::default();
            p.exec_us.record(10 + i);
            p.output_bytes.record(u64::MAX / 2);
            s.record_profile("dag", [("f".to_string(), p)].into())
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let got = s.get_profile("dag").await.unwrap();
    let f = &got["f"];
    assert_eq!(f.exec_us.count, 20);
    assert_eq!((f.exec_us.min, f.exec_us.max), (10, 29));
    assert_eq!(f.exec_us.sum, (10..30).sum::<u64>());
    assert_eq!(f.cold_start_us.count, 0);
    assert_eq!(f.output_bytes.max, u64::MAX / 2);
    let mut expected = rukong_core::profile::Histogram::default();
    for i in 0..20 {
        expected.record(10 + i);
    }
    assert_eq!(f.exec_us, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn blocked_readers_do_not_stall_the_store_and_wake_on_job_end() {
    let server = RedisServer::start();
    let s = Arc::new(store_for(server.url()).await);
    let plan = sample_plan("blocking");
    let job = plan.job.clone();
    s.put_job(plan).await.unwrap();
    // Several long blocking reads...
    let mut readers = Vec::new();
    for i in 0..3 {
        let s = s.clone();
        readers.push(tokio::spawn(async move {
            s.pull(
                ExecClass::Gpu,
                &ExecutorId::new(format!("idle-{i}")),
                1,
                Duration::from_secs(3),
            )
            .await
        }));
    }
    let events_reader = {
        let (s, job) = (s.clone(), job.clone());
        tokio::spawn(async move {
            let t0 = Instant::now();
            let b = s.read_events(&job, 0, 10, Duration::from_secs(30)).await;
            (b, t0.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    // ...and other calls still answer at once.
    let t0 = Instant::now();
    for _ in 0..20 {
        s.job_state(&job).await.unwrap();
    }
    assert!(
        t0.elapsed() < Duration::from_millis(500),
        "{:?}",
        t0.elapsed()
    );
    // A job that ends wakes its event readers (they do not wait out their 30 s).
    s.set_job_state(&job, JobState::Cancelled).await.unwrap();
    let (batch, waited) = events_reader.await.unwrap();
    let batch = batch.unwrap();
    assert!(batch.events.is_empty() && batch.next == 0, "{batch:?}");
    assert!(waited < Duration::from_secs(2), "{waited:?}");
    for r in readers {
        assert!(r.await.unwrap().unwrap().is_empty());
    }

    // A deleted job's waiting readers get UnknownJob.
    let plan = sample_plan("blocking-deleted");
    s.put_job(plan.clone()).await.unwrap();
    s.append_events(&plan.job, vec![result(1)]).await.unwrap();
    let reader = {
        let (s, job) = (s.clone(), plan.job.clone());
        tokio::spawn(async move { s.read_events(&job, 1, 10, Duration::from_secs(30)).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t0 = Instant::now();
    s.delete_job(&plan.job).await.unwrap();
    let r = reader.await.unwrap();
    assert!(matches!(r, Err(StoreError::UnknownJob(_))), "{r:?}");
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert!(matches!(
        s.append_events(&plan.job, vec![result(2)]).await,
        Err(StoreError::UnknownJob(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_job_reads_events_to_the_end_and_returns_at_once() {
    let server = RedisServer::start();
    let s = store_for(server.url()).await;
    let plan = sample_plan("finished");
    let job = plan.job.clone();
    s.put_job(plan).await.unwrap();
    s.append_events(&job, vec![result(1), result(2)])
        .await
        .unwrap();
    s.set_job_state(&job, JobState::Succeeded).await.unwrap();
    // Events after the end marker still read in order.
    s.append_events(&job, vec![result(3)]).await.unwrap();
    s.set_job_state(&job, JobState::Succeeded).await.unwrap();
    let mut got = Vec::new();
    let mut cursor = 0;
    let t0 = Instant::now();
    loop {
        let b = s
            .read_events(&job, cursor, 1, Duration::from_secs(10))
            .await
            .unwrap();
        if b.events.is_empty() {
            assert_eq!(b.next, cursor);
            break;
        }
        got.extend(b.events);
        cursor = b.next;
    }
    assert!(t0.elapsed() < Duration::from_secs(1));
    assert_eq!(got, vec![result(1), result(2), result(3)]);
    assert_eq!(cursor, 3);
}

/// A job's fan-in, outputs, events, objects and queue entries through a 3-node Redis
/// Cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_runs_through_a_redis_cluster() {
    let cluster = RedisCluster::start(3);
    let s = Arc::new(
        RedisStore::connect(RedisConfig {
            url: cluster.url(),
            chunk_size: 64 << 10,
            ..Default::default()
        })
        .await
        .expect("connect to the cluster"),
    );
    let plan = exercise_job(&s, "cluster").await;
    let job = plan.job.clone();
    rukong_core::store::conformance::jobs(&*s).await;
    rukong_core::store::conformance::fan_in_is_idempotent(&*s).await;
    rukong_core::store::conformance::fan_in_retry_repeats_every_answer(&*s).await;
    rukong_core::store::conformance::fan_in_batch_answers_as_one_by_one(&*s).await;
    rukong_core::store::conformance::fan_in_concurrent(s.clone()).await;
    rukong_core::store::conformance::fan_in_counts_skipped_parents(&*s).await;
    rukong_core::store::conformance::outputs(&*s).await;
    rukong_core::store::conformance::stall_queries(&*s).await;
    rukong_core::store::conformance::objects(&*s).await;
    rukong_core::store::conformance::queue(&*s).await;
    rukong_core::store::conformance::queue_wakes_a_waiting_puller(s.clone()).await;
    rukong_core::store::conformance::events(s.clone()).await;
    rukong_core::store::conformance::profiles(&*s).await;
    rukong_core::store::conformance::membership(&*s).await;

    let a = plan.dag.lookup("a").unwrap();
    assert_eq!(
        s.get_outputs(&job, &[a]).await.unwrap(),
        vec![Some(Payload::Inline(Value::Int(1)))]
    );
    assert_eq!(
        s.get_object(&ObjectKey::for_output(&job, TaskIdx(2)))
            .await
            .unwrap()
            .map(|b| b.len()),
        Some(3 << 20)
    );
    let b = s.read_events(&job, 0, 10, Duration::ZERO).await.unwrap();
    assert_eq!(b.events, vec![result(1), result(2)]);
    // Chunked objects under keys without a hash tag, and with odd braces (whose chunks lie
    // in other slots).
    for key in ["cluster-big", "odd}key{", "x{}y"] {
        let key = ObjectKey::new(key);
        let data: Bytes = (0..(1u32 << 20) + 3)
            .map(|i| (i % 253) as u8)
            .collect::<Vec<u8>>()
            .into();
        s.put_object(&key, data.clone()).await.unwrap();
        s.put_object(&key, data.slice(1..)).await.unwrap();
        assert_eq!(s.get_object(&key).await.unwrap(), Some(data.slice(1..)));
        s.delete_object(&key).await.unwrap();
        assert_eq!(s.get_object(&key).await.unwrap(), None);
    }
    assert!(s.list_jobs().await.unwrap().contains(&job));
    s.delete_job(&job).await.unwrap();
    for node in cluster.nodes() {
        let mut con = raw(&node.url()).await;
        let left = scan(&mut con, &format!("rk:{{{job}}}:*")).await;
        assert!(left.is_empty(), "node {}: {left:?}", node.port());
        let chunks = scan(&mut con, "*:v*").await;
        assert!(chunks.is_empty(), "node {}: {chunks:?}", node.port());
    }
    let info = ExecutorInfo {
        id: ExecutorId::new("cluster-exec"),
        class: ExecClass::Cpu,
        slots: 1,
        functions: vec![],
        devices: vec![],
        host: "h".into(),
        version: "0".into(),
        device_stats: Vec::new(),
    };
    s.heartbeat(&info, Duration::from_secs(10)).await.unwrap();
    assert_eq!(s.executors().await.unwrap(), vec![info]);
}
