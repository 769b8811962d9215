//! Fan-in checks of the conformance suite: idempotent counts and answers, skipped
//! parents, bad positions, concurrency, and a level's writes with its arrivals.

use super::{plan_with_wide_fan_in, req, sample_plan, unique_job};
use crate::messages::Payload;
use crate::plan::JobPlan;
use crate::store::*;
use crate::value::Value;
use std::sync::Arc;

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

/// One batch answers as if its arrivals were recorded one by one, in order: each parent of
/// the 70-way `w` twice in a row, and `c`'s two parents around them. The first copy counts;
/// the second is told the count so far and is not first; the arrival that completes `w`
/// is its completer, and so is its own copy right after it, never anyone else's.
pub async fn fan_in_batch_answers_as_one_by_one<S: Store>(s: &S) {
    let plan = sample_plan(&unique_job("fanin-batch"));
    let job = plan.job.clone();
    s.put_job(plan.clone()).await.unwrap();
    let mut batch = vec![req(&plan, "c", "a")];
    for i in 0..70 {
        batch.push(req(&plan, "w", &format!("p{i}")));
        batch.push(req(&plan, "w", &format!("p{i}")));
    }
    batch.push(req(&plan, "c", "a"));
    let got = s.record_arrivals(&job, &batch).await.unwrap();
    assert_eq!(got.len(), batch.len());
    assert!(got[0].first_time && got[0].arrived == 1 && !got[0].completes());
    for i in 0..70usize {
        let (one, two) = (&got[1 + 2 * i], &got[2 + 2 * i]);
        assert!(
            one.first_time && one.arrived == i as u32 + 1,
            "p{i}: {one:?}"
        );
        assert!(
            !two.first_time && two.arrived == i as u32 + 1,
            "p{i} again: {two:?}"
        );
        assert_eq!(
            (one.completes(), two.completes()),
            (i == 69, i == 69),
            "p{i}"
        );
    }
    let last = got.last().unwrap();
    assert!(!last.first_time && last.arrived == 1 && !last.completes());
    // And the same batch again answers the same, none of it for the first time.
    let again = s.record_arrivals(&job, &batch).await.unwrap();
    let answers = |v: &[Arrival]| {
        v.iter()
            .map(|a| (a.arrived, a.completes()))
            .collect::<Vec<_>>()
    };
    let mut want = answers(&got);
    for (i, w) in want.iter_mut().enumerate().skip(1).take(140) {
        w.0 = 70; // every parent of `w` has arrived by now
        w.1 = i >= 139;
    }
    want[0].0 = 1;
    assert_eq!(answers(&again), want);
    assert!(again.iter().all(|a| !a.first_time));
    s.delete_job(&job).await.unwrap();
}

/// A plan with a guard (so that parents may arrive skipped, `docs/conditional-branches.md`): `g`
/// guards the 2-way fan-in `c` (deps `a`, `g`) and the 70-way fan-in `w`.
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
/// completes the set sees how many were skipped (`docs/conditional-branches.md`).
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

/// A level's writes and arrivals in one call: an output a later completer reads is stored
/// once the call returns, the answers are those of separate calls, and a retry (after a
/// lost reply) writes nothing new and answers the same. An output read only by children
/// this very call completes may be left out (its completer holds it).
pub async fn outputs_and_arrivals_in_one_step<S: Store>(s: &S) {
    let plan = sample_plan(&unique_job("level"));
    let job = plan.job.clone();
    s.put_job(plan.clone()).await.unwrap();
    let d = &plan.dag;
    let (a, b, c) = (
        d.lookup("a").unwrap(),
        d.lookup("b").unwrap(),
        d.lookup("c").unwrap(),
    );
    let at_c = |parent: &str| FlaggedArrival {
        req: req(&plan, "c", parent),
        skipped: false,
    };
    let int = |v: i64| Payload::Inline(Value::Int(v));
    let read_by_first = |t, p| LevelWrite {
        task: t,
        payload: p,
        readers: vec![0],
    };
    // `a` does not complete `c`: its output is stored for the completer to read.
    let first = s
        .put_outputs_and_arrive(&job, vec![read_by_first(a, int(1))], &[at_c("a")])
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    assert!(first[0].first_time && !first[0].completes(), "{first:?}");
    assert_eq!(s.get_outputs(&job, &[a]).await.unwrap(), vec![Some(int(1))]);
    // `b` completes it: it may keep its output to itself.
    let done = s
        .put_outputs_and_arrive(&job, vec![read_by_first(b, int(2))], &[at_c("b")])
        .await
        .unwrap();
    assert!(done[0].completes(), "{done:?}");
    let b_stored = s.get_outputs(&job, &[b]).await.unwrap()[0].clone();
    assert!(matches!(
        &b_stored,
        None | Some(Payload::Inline(Value::Int(2)))
    ));
    // A retry with another payload (a re-run that computed it again) changes nothing.
    let again = s
        .put_outputs_and_arrive(&job, vec![read_by_first(b, int(99))], &[at_c("b")])
        .await
        .unwrap();
    assert!(again[0].completes() && !again[0].first_time, "{again:?}");
    assert_eq!(
        s.get_outputs(&job, &[a, b]).await.unwrap(),
        vec![Some(int(1)), b_stored]
    );
    // Writes alone (arrivals recorded elsewhere, by the proxy) are always stored.
    let none = s
        .put_outputs_and_arrive(&job, vec![LevelWrite::always(c, int(3))], &[])
        .await
        .unwrap();
    assert!(none.is_empty());
    assert_eq!(s.get_outputs(&job, &[c]).await.unwrap(), vec![Some(int(3))]);
    s.delete_job(&job).await.unwrap();
    assert!(matches!(
        s.put_outputs_and_arrive(&job, vec![LevelWrite::always(a, int(1))], &[at_c("a")])
            .await,
        Err(StoreError::UnknownJob(_))
    ));
}
