//! The store conformance suite. Every [`Store`] implementation runs these same checks:
//! the in-memory store in `core`, Redis in cluster mode. Use
//! [`store_conformance_tests!`](crate::store_conformance_tests) to stamp them out as tests.

use super::*;
use crate::dag::{DagSpec, Limits, validate};
use crate::messages::{JobState, Start};
use crate::plan::{JobConfig, JobPlan};
use crate::profile::FnProfile;
use crate::value::Value;

mod fan_in;
pub use fan_in::*;

/// A small stored plan for tests: `a`, `b` feed the fan-in `c` (which lists `a` twice); a
/// 70-way fan-in `w` exercises multi-word arrival bitmaps.
pub fn sample_plan(job: &str) -> Arc<JobPlan> {
    plan_with_wide_fan_in(
        job,
        "name: conformance\ntasks:\n  - {id: a, fn: const, args: [1]}\n  - {id: b, fn: const, args: [2]}\n  - {id: c, fn: add, deps: [a, b, a]}\n",
    )
}

/// `head` (a DAG file's first tasks) plus 70 sources `p0..p69` and their fan-in `w`,
/// validated, scheduled and wrapped as job `job`'s plan.
pub(crate) fn plan_with_wide_fan_in(job: &str, head: &str) -> Arc<JobPlan> {
    let mut yaml = String::from(head);
    for i in 0..70 {
        yaml.push_str(&format!("  - {{id: p{i}, fn: const, args: [{i}]}}\n"));
    }
    let deps: Vec<String> = (0..70).map(|i| format!("p{i}")).collect();
    yaml.push_str(&format!(
        "  - {{id: w, fn: add, deps: [{}]}}\n",
        deps.join(", ")
    ));
    let dag = validate(
        DagSpec::from_yaml_str(&yaml).expect("test DAG parses"),
        &Limits::default(),
        &|_| true,
    )
    .expect("test DAG is valid");
    let schedule = crate::schedule::schedule(&dag, 10);
    Arc::new(JobPlan {
        job: JobId::new(job),
        dag,
        schedule,
        config: JobConfig::default(),
    })
}

pub(crate) fn unique_job(tag: &str) -> String {
    format!("{tag}-{}", JobId::generate())
}

pub(crate) fn req(plan: &JobPlan, child: &str, parent: &str) -> ArrivalReq {
    let d = &plan.dag;
    let c = d.lookup(child).expect("child exists");
    let p = d.lookup(parent).expect("parent exists");
    let pos = d
        .children(p)
        .iter()
        .find(|e| e.task == c)
        .expect("edge exists")
        .pos;
    ArrivalReq {
        child: c,
        pos,
        needed: d.needed(c),
    }
}

pub async fn jobs<S: Store>(s: &S) {
    let plan = sample_plan(&unique_job("jobs"));
    let job = plan.job.clone();
    assert!(matches!(
        s.get_job(&job).await,
        Err(StoreError::UnknownJob(_))
    ));
    s.put_job(plan.clone()).await.unwrap();
    s.put_job(plan.clone()).await.unwrap(); // idempotent
    assert!(s.list_jobs().await.unwrap().contains(&job));
    let got = s.get_job(&job).await.unwrap();
    assert_eq!(got.dag.len(), plan.dag.len());
    assert_eq!(got.dag.lookup("w"), plan.dag.lookup("w"));
    assert_eq!(got.schedule, plan.schedule);
    assert_eq!(s.job_state(&job).await.unwrap(), JobState::Running);
    let failed = JobState::Failed {
        task: "c".into(),
        error: "boom".into(),
    };
    s.set_job_state(&job, failed.clone()).await.unwrap();
    assert_eq!(s.job_state(&job).await.unwrap(), failed);
    s.delete_job(&job).await.unwrap();
    assert!(!s.list_jobs().await.unwrap().contains(&job));
    assert!(matches!(
        s.job_state(&job).await,
        Err(StoreError::UnknownJob(_))
    ));
    assert!(matches!(
        s.record_arrivals(&job, &[req(&plan, "c", "a")]).await,
        Err(StoreError::UnknownJob(_))
    ));
}

/// What the engine asks about a job that stopped moving: which fan-ins have parents
/// recorded, and whether any of its invocations is still queued (waiting or pending).
pub async fn stall_queries<S: Store>(s: &S) {
    let plan = sample_plan(&unique_job("stall"));
    let job = plan.job.clone();
    let other = JobId::new(unique_job("stall-other"));
    s.put_job(plan.clone()).await.unwrap();
    assert!(s.fan_in_counts(&job).await.unwrap().is_empty());
    s.record_arrivals(&job, &[req(&plan, "c", "a")])
        .await
        .unwrap();
    let all: Vec<ArrivalReq> = (0..70).map(|i| req(&plan, "w", &format!("p{i}"))).collect();
    s.record_arrivals(&job, &all).await.unwrap();
    let (c, w) = (plan.dag.lookup("c").unwrap(), plan.dag.lookup("w").unwrap());
    let mut want = vec![(c, 1), (w, 70)];
    want.sort_unstable();
    assert_eq!(s.fan_in_counts(&job).await.unwrap(), want);

    let me = ExecutorId::new("conformance-stall");
    let class = ExecClass::Cpu;
    let short = Duration::from_millis(20);
    assert!(!s.job_queued(&job).await.unwrap());
    s.push(ExecClass::Gpu, vec![inv(&other, 1)]).await.unwrap();
    assert!(!s.job_queued(&job).await.unwrap(), "another job's entry");
    assert!(s.job_queued(&other).await.unwrap());
    s.push(class, vec![inv(&job, 1)]).await.unwrap();
    assert!(s.job_queued(&job).await.unwrap(), "a waiting entry");
    // Delivered and not acked: still queued (a walk may be running it).
    let mut pulled = Vec::new();
    while !pulled
        .iter()
        .any(|d: &crate::store::Delivery| d.invocation.job == job)
    {
        let got = s.pull(class, &me, 100, short).await.unwrap();
        assert!(!got.is_empty(), "the pushed entry is delivered");
        pulled.extend(got);
    }
    assert!(s.job_queued(&job).await.unwrap(), "a pending entry");
    let ids: Vec<DeliveryId> = pulled.iter().map(|d| d.id).collect();
    s.ack(class, &ids).await.unwrap();
    assert!(!s.job_queued(&job).await.unwrap(), "acked");
    for d in s
        .reclaim(ExecClass::Gpu, &me, Duration::ZERO, 1000)
        .await
        .unwrap()
    {
        s.ack(ExecClass::Gpu, &[d.id]).await.unwrap();
    }
    while let Some(d) = s.pull(ExecClass::Gpu, &me, 100, short).await.unwrap().pop() {
        s.ack(ExecClass::Gpu, &[d.id]).await.unwrap();
    }
    s.delete_job(&job).await.unwrap();
}

/// The run epoch is made once and then stays the same.
pub async fn run_epoch<S: Store>(s: &S) {
    let a = s.run_epoch().await.unwrap();
    assert!(!a.is_empty());
    for _ in 0..3 {
        assert_eq!(s.run_epoch().await.unwrap(), a);
    }
}

pub async fn outputs<S: Store>(s: &S) {
    let plan = sample_plan(&unique_job("outputs"));
    let job = plan.job.clone();
    s.put_job(plan.clone()).await.unwrap();
    let a = plan.dag.lookup("a").unwrap();
    let b = plan.dag.lookup("b").unwrap();
    let key = ObjectKey::for_output(&job, b);
    s.put_outputs(
        &job,
        vec![
            (a, Payload::Inline(Value::Int(41))),
            (b, Payload::Object(key.clone())),
        ],
    )
    .await
    .unwrap();
    let got = s
        .get_outputs(&job, &[b, a, plan.dag.lookup("c").unwrap()])
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![
            Some(Payload::Object(key)),
            Some(Payload::Inline(Value::Int(41))),
            None
        ]
    );
    // Write-once, within one call too: the first of duplicate writes wins, and a later
    // call changes nothing.
    let c = plan.dag.lookup("c").unwrap();
    let int = |v| Payload::Inline(Value::Int(v));
    s.put_outputs(
        &job,
        vec![(c, int(1)), (a, int(99)), (c, int(2)), (c, int(3))],
    )
    .await
    .unwrap();
    s.put_outputs(&job, vec![(c, int(4))]).await.unwrap();
    assert_eq!(
        s.get_outputs(&job, &[c, a]).await.unwrap(),
        vec![Some(int(1)), Some(int(41))]
    );
    s.delete_job(&job).await.unwrap();
    assert!(matches!(
        s.get_outputs(&job, &[a]).await,
        Err(StoreError::UnknownJob(_))
    ));
}

pub async fn objects<S: Store>(s: &S) {
    let plan = sample_plan(&unique_job("objects"));
    let job = plan.job.clone();
    s.put_job(plan.clone()).await.unwrap();
    let mine = ObjectKey::for_output(&job, TaskIdx(1));
    let other = ObjectKey::new(format!("conformance-other-{}", JobId::generate()));
    let big = Bytes::from(vec![7u8; 3 << 20]);
    assert_eq!(s.get_object(&mine).await.unwrap(), None);
    s.put_object(&mine, big.clone()).await.unwrap();
    s.put_object(&other, Bytes::from_static(b"x"))
        .await
        .unwrap();
    assert_eq!(s.get_object(&mine).await.unwrap(), Some(big));
    // Deleting the job frees its objects, and only its objects.
    s.delete_job(&job).await.unwrap();
    assert_eq!(s.get_object(&mine).await.unwrap(), None);
    assert_eq!(
        s.get_object(&other).await.unwrap(),
        Some(Bytes::from_static(b"x"))
    );
    s.delete_object(&other).await.unwrap();
    assert_eq!(s.get_object(&other).await.unwrap(), None);
}

/// Releasing large outputs: idempotent per reader; the last reader frees the object and
/// leaves a tombstone; the job's deletion frees the tombstones too.
pub async fn object_release<S: Store>(s: &S) {
    let plan = sample_plan(&unique_job("release"));
    let job = plan.job.clone();
    s.put_job(plan.clone()).await.unwrap();
    let (a, b, c, w) = (TaskIdx(0), TaskIdx(1), TaskIdx(2), TaskIdx(73));
    let rel = |producer, reader, readers| Release {
        producer,
        reader,
        readers,
    };
    let big = Bytes::from(vec![5u8; 3 << 20]);
    let ka = ObjectKey::for_output(&job, a);
    let kb = ObjectKey::for_output(&job, b);
    s.put_object(&ka, big.clone()).await.unwrap();
    s.put_object(&kb, Bytes::from_static(b"y")).await.unwrap();
    // a's output cell points at its object; p0's is an inline value with no object.
    let p0 = TaskIdx(3);
    s.put_outputs(
        &job,
        vec![
            (a, Payload::Object(ka.clone())),
            (p0, Payload::Inline(Value::Int(7))),
        ],
    )
    .await
    .unwrap();
    // One of a's two readers, twice: nothing is freed.
    for _ in 0..2 {
        assert_eq!(
            s.release_outputs(&job, &[rel(a, c, 2)]).await.unwrap(),
            vec![]
        );
        assert_eq!(s.get_object(&ka).await.unwrap(), Some(big.clone()));
    }
    // The second reader, in a batch with b's only reader: both are freed.
    let mut freed = s
        .release_outputs(&job, &[rel(a, w, 2), rel(b, c, 1)])
        .await
        .unwrap();
    freed.sort();
    assert_eq!(freed, vec![a, b]);
    for k in [&ka, &kb] {
        let got = s.get_object(k).await.unwrap().expect("a tombstone is left");
        assert!(is_tombstone(&got), "{k} holds {} bytes", got.len());
    }
    // An inline output is released too: its cell then points at a tombstone.
    assert_eq!(
        s.release_outputs(&job, &[rel(p0, w, 1)]).await.unwrap(),
        vec![p0]
    );
    let k0 = ObjectKey::for_output(&job, p0);
    assert!(is_tombstone(&s.get_object(&k0).await.unwrap().unwrap()));
    let cells = s.get_outputs(&job, &[a, p0]).await.unwrap();
    assert_eq!(
        cells,
        vec![
            Some(Payload::Object(ka.clone())),
            Some(Payload::Object(k0.clone()))
        ]
    );
    // A duplicate's write-once put leaves the released cell as it is.
    s.put_outputs(&job, vec![(p0, Payload::Inline(Value::Int(7)))])
        .await
        .unwrap();
    assert_eq!(
        s.get_outputs(&job, &[p0]).await.unwrap(),
        vec![Some(Payload::Object(k0.clone()))]
    );
    // Releasing again (a duplicate walk) frees nothing and keeps the tombstones.
    let again = s
        .release_outputs(&job, &[rel(a, c, 2), rel(a, w, 2), rel(b, c, 1)])
        .await
        .unwrap();
    assert_eq!(again, vec![], "each producer is returned by one call only");
    assert!(is_tombstone(&s.get_object(&ka).await.unwrap().unwrap()));
    s.release_outputs(&job, &[]).await.unwrap();
    s.delete_job(&job).await.unwrap();
    assert_eq!(s.get_object(&ka).await.unwrap(), None);
    assert_eq!(s.get_object(&kb).await.unwrap(), None);
    assert_eq!(s.get_object(&k0).await.unwrap(), None);
}

fn inv(job: &JobId, task: u32) -> Invocation {
    Invocation {
        job: job.clone(),
        warm: Vec::new(),
        warm_ttl_ms: 0,
        release: Vec::new(),
        starts: vec![Start {
            task: TaskIdx(task),
            inputs: Vec::new(),
        }],
    }
}

pub async fn queue<S: Store>(s: &S) {
    let job = JobId::new(unique_job("queue"));
    let me = ExecutorId::new("conformance-1");
    let other = ExecutorId::new("conformance-2");
    let short = Duration::from_millis(50);
    // Use the GPU class so that a suite run never sees another test's CPU entries.
    let class = ExecClass::Gpu;
    // Drain leftovers from an earlier run against the same server.
    while !s.pull(class, &me, 1000, short).await.unwrap().is_empty() {}
    for d in s.reclaim(class, &me, Duration::ZERO, 1000).await.unwrap() {
        s.ack(class, &[d.id]).await.unwrap();
    }

    let t0 = std::time::Instant::now();
    assert!(s.pull(class, &me, 10, short).await.unwrap().is_empty());
    assert!(t0.elapsed() >= Duration::from_millis(40), "pull waits");

    s.push(class, vec![inv(&job, 1), inv(&job, 2), inv(&job, 3)])
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 3 {
        let batch = s.pull(class, &me, 10, short).await.unwrap();
        assert!(!batch.is_empty(), "pushed entries are delivered");
        got.extend(batch);
    }
    let tasks: Vec<u32> = got.iter().map(|d| d.invocation.starts[0].task.0).collect();
    assert_eq!(tasks, [1, 2, 3], "FIFO order");
    assert!(got.iter().all(|d| d.deliveries == 1));
    // Pending entries are not delivered again by pull.
    assert!(s.pull(class, &other, 10, short).await.unwrap().is_empty());
    s.ack(class, &[got[0].id]).await.unwrap();
    // A touched entry is not idle; the others are reclaimed by another consumer.
    tokio::time::sleep(Duration::from_millis(120)).await;
    s.touch(class, &me, &[got[1].id]).await.unwrap();
    let re = s
        .reclaim(class, &other, Duration::from_millis(100), 10)
        .await
        .unwrap();
    assert_eq!(re.len(), 1);
    assert_eq!(re[0].id, got[2].id);
    assert_eq!(re[0].deliveries, 2);
    assert_eq!(re[0].invocation, got[2].invocation);
    s.ack(class, &[got[1].id, got[2].id]).await.unwrap();
    s.ack(class, &[got[2].id]).await.unwrap(); // acking twice is harmless
    assert!(
        s.reclaim(class, &other, Duration::ZERO, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn queue_wakes_a_waiting_puller<S: Store>(s: Arc<S>) {
    let job = JobId::new(unique_job("wake"));
    let class = ExecClass::Gpu;
    let me = ExecutorId::new("conformance-waker");
    let s2 = s.clone();
    let puller = tokio::spawn(async move {
        let t0 = std::time::Instant::now();
        let got = s2
            .pull(class, &me, 10, Duration::from_secs(10))
            .await
            .unwrap();
        (got, t0.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.push(class, vec![inv(&job, 9)]).await.unwrap();
    let (got, waited) = puller.await.unwrap();
    assert_eq!(got.len(), 1);
    assert!(waited < Duration::from_secs(5), "woken by the push");
    s.ack(class, &[got[0].id]).await.unwrap();
}

pub async fn events<S: Store>(s: Arc<S>) {
    let plan = sample_plan(&unique_job("events"));
    let job = plan.job.clone();
    s.put_job(plan.clone()).await.unwrap();
    let ev = |t: u32| Event::TaskResult {
        task: TaskIdx(t),
        sink: true,
        payload: Some(Payload::Inline(Value::Int(t as i64))),
    };
    s.append_events(&job, vec![ev(1), ev(2)]).await.unwrap();
    let b = s
        .read_events(&job, 0, 100, Duration::from_millis(10))
        .await
        .unwrap();
    assert_eq!(b.events, vec![ev(1), ev(2)]);
    assert_eq!(b.next, 2);
    let b = s.read_events(&job, 1, 1, Duration::ZERO).await.unwrap();
    assert_eq!(b.events, vec![ev(2)]);
    // A reader at the end waits for the next append.
    let (s2, job2) = (s.clone(), job.clone());
    let reader = tokio::spawn(async move {
        s2.read_events(&job2, 2, 100, Duration::from_secs(10))
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.append_events(&job, vec![ev(3)]).await.unwrap();
    let b = reader.await.unwrap();
    assert_eq!(b.events, vec![ev(3)]);
    assert_eq!(b.next, 3);
    // Nothing new: a bounded wait returns empty at the same cursor.
    let b = s
        .read_events(&job, 3, 100, Duration::from_millis(20))
        .await
        .unwrap();
    assert!(b.events.is_empty());
    assert_eq!(b.next, 3);
    s.delete_job(&job).await.unwrap();
}

pub async fn profiles<S: Store>(s: &S) {
    let name = unique_job("profile");
    assert!(s.get_profile(&name).await.unwrap().is_empty());
    let mut p = FnProfile::default();
    p.exec_us.record(100);
    p.cold_start_us.record(5000);
    let delta: DagProfile = [("add".to_string(), p)].into();
    s.record_profile(&name, delta.clone()).await.unwrap();
    s.record_profile(&name, delta).await.unwrap();
    let got = s.get_profile(&name).await.unwrap();
    assert_eq!(got["add"].exec_us.count, 2);
    assert_eq!(got["add"].cold_start_us.sum, 10000);
    assert_eq!(got["add"].exec_us.quantile(0.5), Some(100));
    assert!(got.branches.is_empty());

    // Branch counts merge by addition, next to the histograms, and survive a round trip.
    let mut d = DagProfile::new();
    d.record_branch("then.1", true);
    d.record_branch("then.1", true);
    d.record_branch("then.1", false);
    d.record_branch("else", false);
    s.record_profile(&name, d.clone()).await.unwrap();
    s.record_profile(&name, d).await.unwrap();
    let got = s.get_profile(&name).await.unwrap();
    assert_eq!(got["add"].exec_us.count, 2);
    let b = got.branch("then.1").copied().unwrap_or_default();
    assert_eq!((b.taken, b.not_taken), (4, 2));
    let b = got.branch("else").copied().unwrap_or_default();
    assert_eq!((b.taken, b.not_taken), (0, 2));
    assert_eq!(got.branches.len(), 2);

    // A profile of branches only is still a profile; an empty delta changes nothing.
    let other = unique_job("profile-br");
    let mut d = DagProfile::new();
    d.record_branch("x", true);
    s.record_profile(&other, d.clone()).await.unwrap();
    s.record_profile(&other, DagProfile::new()).await.unwrap();
    let got = s.get_profile(&other).await.unwrap();
    assert!(got.functions.is_empty());
    assert_eq!(got, d);
}

pub async fn membership<S: Store>(s: &S) {
    let info = |id: &str, slots| ExecutorInfo {
        id: ExecutorId::new(format!("{id}-{}", JobId::generate())),
        class: ExecClass::Cpu,
        slots,
        functions: vec!["add".into(), "const".into()],
        devices: vec!["cpu".into()],
        host: "test:1".into(),
        version: "0".into(),
        device_stats: Vec::new(),
    };
    let a = info("member-a", 2);
    let mut b = info("member-b", 4);
    b.device_stats = vec![crate::store::DeviceStats {
        device: "simulated:sim-gpu".into(),
        hits: 3,
        misses: 1,
        launches: 2,
        bundled_calls: 4,
        ..Default::default()
    }];
    s.heartbeat(&a, Duration::from_secs(30)).await.unwrap();
    s.heartbeat(&b, Duration::from_millis(300)).await.unwrap();
    let live = s.executors().await.unwrap();
    assert!(live.contains(&a) && live.contains(&b));
    // A refreshed registration replaces the old one.
    let mut a2 = a.clone();
    a2.slots = 8;
    s.heartbeat(&a2, Duration::from_secs(30)).await.unwrap();
    let live = s.executors().await.unwrap();
    assert_eq!(live.iter().filter(|e| e.id == a.id).count(), 1);
    assert!(live.contains(&a2));
    // b lapses without a heartbeat.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let live = s.executors().await.unwrap();
    assert!(!live.iter().any(|e| e.id == b.id), "lapsed: {live:?}");
    s.deregister(&a.id).await.unwrap();
    assert!(!s.executors().await.unwrap().iter().any(|e| e.id == a.id));
}

/// A store under test, and whatever must stay alive while it is used (a server the test
/// started, say).
pub trait Fixture: Send + 'static {
    type S: Store;
    fn store(&self) -> Arc<Self::S>;
}

impl Fixture for crate::store::memory::MemoryStore {
    type S = crate::store::memory::MemoryStore;
    fn store(&self) -> Arc<Self::S> {
        Arc::new(self.clone())
    }
}

/// `(guard, store)`: the guard lives until the test ends.
impl<G: Send + 'static, S: Store> Fixture for (G, Arc<S>) {
    type S = S;
    fn store(&self) -> Arc<S> {
        self.1.clone()
    }
}

/// Stamps out the conformance suite as `#[tokio::test]`s. `$fixture` is a future (an
/// `async` block) yielding a [`Fixture`]; it is awaited once per test.
#[macro_export]
macro_rules! store_conformance_tests {
    ($fixture:expr) => {
        $crate::__conformance_test!(conformance_jobs, jobs, ref, $fixture);
        $crate::__conformance_test!(
            conformance_fan_in_is_idempotent,
            fan_in_is_idempotent,
            ref,
            $fixture
        );
        $crate::__conformance_test!(
            conformance_fan_in_retry_repeats_every_answer,
            fan_in_retry_repeats_every_answer,
            ref,
            $fixture
        );
        $crate::__conformance_test!(
            conformance_fan_in_batch_answers_as_one_by_one,
            fan_in_batch_answers_as_one_by_one,
            ref,
            $fixture
        );
        $crate::__conformance_test!(
            conformance_fan_in_rejects_bad_positions,
            fan_in_rejects_bad_positions,
            ref,
            $fixture
        );
        $crate::__conformance_test!(
            conformance_fan_in_concurrent,
            fan_in_concurrent,
            arc,
            $fixture
        );
        $crate::__conformance_test!(
            conformance_fan_in_counts_skipped_parents,
            fan_in_counts_skipped_parents,
            ref,
            $fixture
        );
        $crate::__conformance_test!(
            conformance_fan_in_skipped_concurrent,
            fan_in_skipped_concurrent,
            arc,
            $fixture
        );
        $crate::__conformance_test!(conformance_skipped_outputs, skipped_outputs, ref, $fixture);
        $crate::__conformance_test!(
            conformance_outputs_and_arrivals_in_one_step,
            outputs_and_arrivals_in_one_step,
            ref,
            $fixture
        );
        $crate::__conformance_test!(conformance_outputs, outputs, ref, $fixture);
        $crate::__conformance_test!(conformance_stall_queries, stall_queries, ref, $fixture);
        $crate::__conformance_test!(conformance_run_epoch, run_epoch, ref, $fixture);
        $crate::__conformance_test!(conformance_objects, objects, ref, $fixture);
        $crate::__conformance_test!(conformance_object_release, object_release, ref, $fixture);
        $crate::__conformance_test!(conformance_queue, queue, ref, $fixture);
        $crate::__conformance_test!(
            conformance_queue_wakes_a_waiting_puller,
            queue_wakes_a_waiting_puller,
            arc,
            $fixture
        );
        $crate::__conformance_test!(conformance_events, events, arc, $fixture);
        $crate::__conformance_test!(conformance_profiles, profiles, ref, $fixture);
        $crate::__conformance_test!(conformance_membership, membership, ref, $fixture);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_test {
    ($name:ident, $check:ident, ref, $fixture:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            use $crate::store::conformance::Fixture as _;
            let fixture = $fixture.await;
            let store = fixture.store();
            $crate::store::conformance::$check(&*store).await;
            drop(store);
            drop(fixture);
        }
    };
    ($name:ident, $check:ident, arc, $fixture:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $name() {
            use $crate::store::conformance::Fixture as _;
            let fixture = $fixture.await;
            $crate::store::conformance::$check(fixture.store()).await;
            drop(fixture);
        }
    };
}
