//! The store conformance suite. Every [`Store`] implementation runs these same checks:
//! the in-memory store in `core`, Redis in cluster mode. Use
//! [`store_conformance_tests!`](crate::store_conformance_tests) to stamp them out as tests.

use super::*;
use crate::dag::{DagSpec, Limits, validate};
use crate::messages::{JobState, Start};
use crate::plan::{JobConfig, JobPlan};
use crate::profile::FnProfile;
use crate::value::Value;

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
fn plan_with_wide_fan_in(job: &str, head: &str) -> Arc<JobPlan> {
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

fn unique_job(tag: &str) -> String {
    format!("{tag}-{}", JobId::generate())
}

fn req(plan: &JobPlan, child: &str, parent: &str) -> ArrivalReq {
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

pub async fn fan_in_is_idempotent<S: Store>(s: &S) {
    let plan = sample_plan(&unique_job("fanin"));
    let job = plan.job.clone();
    s.put_job(plan.clone()).await.unwrap();
    let a = s
        .record_arrivals(&job, &[req(&plan, "c", "a")])
        .await
        .unwrap();
    assert_eq!(
        a,
        vec![Arrival {
            arrived: 1,
            needed: 2,
            first_time: true,
            skipped: 0,
            completer: false,
        }]
    );
    // The same parent again (a retry, or a lost reply) counts once.
    let again = s
        .record_arrivals(&job, &[req(&plan, "c", "a")])
        .await
        .unwrap();
    assert_eq!(again[0].arrived, 1);
    assert!(!again[0].first_time);
    assert!(!again[0].completes());
    let b = s
        .record_arrivals(&job, &[req(&plan, "c", "b")])
        .await
        .unwrap();
    assert!(b[0].completes() && b[0].first_time && b[0].arrived == 2);
    // Late arrivals: the completer `b` is told `completes` again on every re-arrival (its
    // first reply may have been lost); the other parent never is.
    for _ in 0..3 {
        let late = s
            .record_arrivals(&job, &[req(&plan, "c", "b"), req(&plan, "c", "a")])
            .await
            .unwrap();
        assert!(late.iter().all(|x| !x.first_time && x.arrived == 2));
        assert!(late[0].completes(), "the completer re-arrives: {late:?}");
        assert!(!late[1].completes(), "not the completer: {late:?}");
    }
    // Positions past the 64th use a second bitmap word.
    let mut completions = 0;
    for i in (0..70).rev() {
        let r = s
            .record_arrivals(&job, &[req(&plan, "w", &format!("p{i}"))])
            .await
            .unwrap();
        completions += usize::from(r[0].completes());
        assert_eq!(r[0].arrived, 70 - i);
    }
    assert_eq!(completions, 1);
    // Every parent again: only the completer (p0, the last to arrive, past the 64th bit's
    // word boundary for the others) is told `completes`.
    for i in 0..70 {
        let r = s
            .record_arrivals(&job, &[req(&plan, "w", &format!("p{i}"))])
            .await
            .unwrap();
        assert_eq!((r[0].arrived, r[0].completes()), (70, i == 0), "p{i}");
    }
    s.delete_job(&job).await.unwrap();
}

/// A lost reply on the completing arrival, then the retry of the whole batch in which it
/// stood: the retry is told exactly what the lost reply said, for every arrival in it.
pub async fn fan_in_retry_repeats_every_answer<S: Store>(s: &S) {
    let plan = sample_plan(&unique_job("fanin-retry"));
    let job = plan.job.clone();
    s.put_job(plan.clone()).await.unwrap();
    let batch: Vec<ArrivalReq> = (0..70)
        .map(|i| req(&plan, "w", &format!("p{i}")))
        .chain([req(&plan, "c", "a")])
        .collect();
    let first = s.record_arrivals(&job, &batch[..35]).await.unwrap();
    assert!(first.iter().all(|a| !a.completes()));
    // This batch completes `w` (with p69) but not `c`.
    let lost = s.record_arrivals(&job, &batch[35..]).await.unwrap();
    let retried = s.record_arrivals(&job, &batch[35..]).await.unwrap();
    let completes = |v: &[Arrival]| v.iter().map(Arrival::completes).collect::<Vec<_>>();
    assert_eq!(completes(&retried), completes(&lost));
    assert_eq!(lost.iter().filter(|a| a.completes()).count(), 1);
    assert!(lost[34].completes(), "p69 completes w: {:?}", lost[34]);
    assert!(!lost[35].completes() && lost[35].arrived == 1);
    assert!(retried.iter().all(|a| !a.first_time));
    s.delete_job(&job).await.unwrap();
}

/// A plan with a guard (so that parents may arrive skipped, DESIGN §8): `g` guards the
/// 2-way fan-in `c` (deps `a`, `g`) and the 70-way fan-in `w`.
pub fn conditional_plan(job: &str) -> Arc<JobPlan> {
    let plan = plan_with_wide_fan_in(
        job,
        "name: conformance-skip\ntasks:\n  - {id: a, fn: const, args: [1]}\n  - {id: g, fn: const, args: [2], deps: [a], guard: {dep: a, equals: 1}}\n  - {id: c, fn: add, deps: [a, g], join: any}\n",
    );
    assert!(plan.dag.has_guards());
    plan
}

fn flagged(plan: &JobPlan, child: &str, parent: &str, skipped: bool) -> FlaggedArrival {
    FlaggedArrival {
        req: req(plan, child, parent),
        skipped,
    }
}

/// Skipped parents arrive too; the record counts them once each, and the arrival that
/// completes the set sees how many were skipped (DESIGN §8).
pub async fn fan_in_counts_skipped_parents<S: Store>(s: &S) {
    use crate::dag::Join;
    let plan = conditional_plan(&unique_job("skips"));
    let job = plan.job.clone();
    s.put_job(plan.clone()).await.unwrap();
    let g = s
        .record_flagged_arrivals(&job, &[flagged(&plan, "c", "g", true)])
        .await
        .unwrap();
    assert_eq!((g[0].arrived, g[0].first_time), (1, true));
    assert!(!g[0].completes());
    // A retried skipped arrival counts once, as an arrival and as a skip.
    let again = s
        .record_flagged_arrivals(&job, &[flagged(&plan, "c", "g", true)])
        .await
        .unwrap();
    assert_eq!((again[0].arrived, again[0].first_time), (1, false));
    let a = s
        .record_flagged_arrivals(&job, &[flagged(&plan, "c", "a", false)])
        .await
        .unwrap();
    assert!(a[0].completes());
    assert_eq!(a[0].skipped, 1, "{a:?}");
    assert!(
        a[0].skips(Join::All),
        "join all: one skipped parent skips it"
    );
    assert!(!a[0].skips(Join::Any), "join any: one parent completed");
    // Late duplicates still report the settled record; the completer `a` is told
    // `completes` again, with the exact skip count, so its re-run decides the same way.
    let late = s
        .record_flagged_arrivals(
            &job,
            &[
                flagged(&plan, "c", "a", false),
                flagged(&plan, "c", "g", true),
            ],
        )
        .await
        .unwrap();
    assert!(late.iter().all(|x| x.arrived == 2 && !x.first_time));
    assert!(late[0].completes() && late[0].skipped == 1, "{late:?}");
    assert!(!late[1].completes(), "{late:?}");
    // A plain re-arrival of the completer reads the skips too.
    let plain = s
        .record_arrivals(&job, &[req(&plan, "c", "a")])
        .await
        .unwrap();
    assert!(
        plain[0].completes() && plain[0].skips(Join::All),
        "{plain:?}"
    );
    // Plain arrivals on a job with guards read the skip count too.
    let mut completing = None;
    for i in 0..70 {
        let r = if i % 2 == 0 {
            s.record_flagged_arrivals(&job, &[flagged(&plan, "w", &format!("p{i}"), true)])
                .await
                .unwrap()
        } else {
            s.record_arrivals(&job, &[req(&plan, "w", &format!("p{i}"))])
                .await
                .unwrap()
        };
        if r[0].completes() {
            completing = Some(r[0]);
        }
    }
    let done = completing.expect("one arrival completes w");
    assert_eq!((done.arrived, done.needed, done.skipped), (70, 70, 35));
    assert!(done.skips(Join::All) && !done.skips(Join::Any));
    s.delete_job(&job).await.unwrap();
}

/// Every parent skipped, each arriving three times concurrently: one parent completes, and
/// each answer to it sees every skip (so `join: any` skips too).
pub async fn fan_in_skipped_concurrent<S: Store>(s: Arc<S>) {
    use crate::dag::Join;
    let plan = conditional_plan(&unique_job("skipconc"));
    let job = plan.job.clone();
    s.put_job(plan.clone()).await.unwrap();
    let mut handles = Vec::new();
    for round in 0..3 {
        for i in 0..70 {
            let s = s.clone();
            let job = job.clone();
            let r = flagged(&plan, "w", &format!("p{}", (i * 3 + round * 11) % 70), true);
            handles.push(tokio::spawn(async move {
                (
                    r.req.pos,
                    s.record_flagged_arrivals(&job, &[r]).await.unwrap()[0],
                )
            }));
        }
    }
    let mut completing = Vec::new();
    for h in handles {
        let (pos, a) = h.await.unwrap();
        if a.completes() {
            // Every answer to the completer sees every skip.
            assert_eq!(a.skipped, 70, "{a:?}");
            assert!(a.skips(Join::Any));
            completing.push((pos, a.first_time));
        }
    }
    assert_one_completer(&completing);
    s.delete_job(&job).await.unwrap();
}

/// A skipped task's marker is stored and read back like an output.
pub async fn skipped_outputs<S: Store>(s: &S) {
    let plan = conditional_plan(&unique_job("skipout"));
    let job = plan.job.clone();
    s.put_job(plan.clone()).await.unwrap();
    let (a, g) = (plan.dag.lookup("a").unwrap(), plan.dag.lookup("g").unwrap());
    s.put_outputs(
        &job,
        vec![(a, Payload::Inline(Value::Int(1))), (g, Payload::Skipped)],
    )
    .await
    .unwrap();
    // Write-once: a later write does not turn a skip into a value.
    s.put_outputs(&job, vec![(g, Payload::Inline(Value::Int(2)))])
        .await
        .unwrap();
    assert_eq!(
        s.get_outputs(&job, &[g, a]).await.unwrap(),
        vec![Some(Payload::Skipped), Some(Payload::Inline(Value::Int(1)))]
    );
    s.delete_job(&job).await.unwrap();
}

pub async fn fan_in_rejects_bad_positions<S: Store>(s: &S) {
    let plan = sample_plan(&unique_job("badpos"));
    let job = plan.job.clone();
    s.put_job(plan.clone()).await.unwrap();
    let mut r = req(&plan, "c", "a");
    r.pos = 5;
    assert!(matches!(
        s.record_arrivals(&job, &[r]).await,
        Err(StoreError::Corrupt { .. })
    ));
    s.delete_job(&job).await.unwrap();
}

/// Many concurrent arrivals, each parent sent three times: one parent completes.
pub async fn fan_in_concurrent<S: Store>(s: Arc<S>) {
    let plan = sample_plan(&unique_job("concurrent"));
    let job = plan.job.clone();
    s.put_job(plan.clone()).await.unwrap();
    let mut handles = Vec::new();
    for round in 0..3 {
        for i in 0..70 {
            let s = s.clone();
            let job = job.clone();
            let r = req(&plan, "w", &format!("p{}", (i * 3 + round * 11) % 70));
            handles.push(tokio::spawn(async move {
                (r.pos, s.record_arrivals(&job, &[r]).await.unwrap()[0])
            }));
        }
    }
    let mut completing = Vec::new();
    let mut firsts = 0;
    for h in handles {
        let (pos, a) = h.await.unwrap();
        if a.completes() {
            completing.push((pos, a.first_time));
        }
        firsts += usize::from(a.first_time);
    }
    assert_one_completer(&completing);
    assert_eq!(firsts, 70, "each parent is first exactly once");
    // Afterwards, every re-arrival of the completer (and only of it) completes.
    let completer = completing[0].0;
    for pos in 0..70 {
        let r = req(&plan, "w", &format!("p{pos}"));
        let a = s.record_arrivals(&job, &[r]).await.unwrap()[0];
        assert_eq!(a.completes(), r.pos == completer, "p{pos}: {a:?}");
    }
    s.delete_job(&job).await.unwrap();
}

/// Of concurrent arrivals (each parent several times), the ones told `completes` are all of
/// one parent, and its first-time arrival is among them. Its duplicates may be told too
/// (when they ran after it), never another parent's.
fn assert_one_completer(completing: &[(u32, bool)]) {
    assert!(!completing.is_empty(), "no arrival completes the fan-in");
    assert!(
        completing.iter().all(|(p, _)| *p == completing[0].0),
        "more than one parent was told it completes: {completing:?}"
    );
    assert_eq!(
        completing.iter().filter(|(_, first)| *first).count(),
        1,
        "exactly one first-time arrival completes: {completing:?}"
    );
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
        $crate::__conformance_test!(conformance_outputs, outputs, ref, $fixture);
        $crate::__conformance_test!(conformance_stall_queries, stall_queries, ref, $fixture);
        $crate::__conformance_test!(conformance_run_epoch, run_epoch, ref, $fixture);
        $crate::__conformance_test!(conformance_objects, objects, ref, $fixture);
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
