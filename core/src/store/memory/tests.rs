//! The memory store: the conformance suite, and what it does beyond the contract.

use super::*;

crate::store_conformance_tests!(async { MemoryStore::new() });

/// Work that continues a started walk is delivered before more sources are started;
/// each band keeps its order.
#[tokio::test]
async fn continuing_work_goes_before_sources() {
    use crate::messages::Start;
    use crate::store::conformance::sample_plan;
    let s = MemoryStore::new();
    let plan = sample_plan("bands");
    s.put_job(plan.clone()).await.unwrap();
    let d = &plan.dag;
    let inv = |t: &str| {
        Invocation::new(
            plan.job.clone(),
            vec![Start {
                task: d.lookup(t).unwrap(),
                inputs: Vec::new(),
            }],
        )
    };
    let mut hint = inv("a");
    hint.warm = vec!["const".into()];
    s.push(ExecClass::Cpu, vec![inv("a"), inv("b")])
        .await
        .unwrap();
    s.push(ExecClass::Cpu, vec![inv("c"), hint.clone()])
        .await
        .unwrap();
    let me = ExecutorId::new("x");
    let mut order = Vec::new();
    for _ in 0..4 {
        let got = s
            .pull(ExecClass::Cpu, &me, 1, Duration::from_millis(10))
            .await
            .unwrap();
        let i = &got[0].invocation;
        order.push((d.id(i.starts[0].task).to_string(), !i.warm.is_empty()));
    }
    let want = [("c", false), ("a", true), ("a", false), ("b", false)];
    assert_eq!(order, want.map(|(t, w)| (t.to_string(), w)));
}

/// Unlike the contract's "may", this store never keeps an output that only the
/// children its own writer completes read: nobody would ever read or release it.
#[tokio::test]
async fn an_output_only_its_completer_reads_is_not_kept() {
    use crate::Value;
    use crate::store::conformance::{req, sample_plan};
    let s = MemoryStore::new();
    let plan = sample_plan("elide");
    s.put_job(plan.clone()).await.unwrap();
    let d = &plan.dag;
    let (a, b) = (d.lookup("a").unwrap(), d.lookup("b").unwrap());
    let write = |task, v: i64| LevelWrite {
        task,
        payload: Payload::Inline(Value::Int(v)),
        readers: vec![0],
    };
    let at_c = |parent| FlaggedArrival {
        req: req(&plan, "c", parent),
        skipped: false,
    };
    let first = s
        .put_outputs_and_arrive(&plan.job, vec![write(a, 1)], &[at_c("a")])
        .await
        .unwrap();
    assert!(!first[0].completes());
    let done = s
        .put_outputs_and_arrive(&plan.job, vec![write(b, 2)], &[at_c("b")])
        .await
        .unwrap();
    assert!(done[0].completes());
    assert_eq!(
        s.get_outputs(&plan.job, &[a, b]).await.unwrap(),
        vec![Some(Payload::Inline(Value::Int(1))), None]
    );
}
