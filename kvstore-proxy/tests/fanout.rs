//! Fan-outs through the TCP proxy behave exactly as through the in-process one.

mod common;

use common::{TestServer, server_config, within};
use rukong_core::error::StoreError;
use rukong_core::messages::{Invocation, Payload};
use rukong_core::proxy::{FanOutReply, FanOutRequest, Proxy, ProxyError};
use rukong_core::store::memory::MemoryStore;
use rukong_core::store::{InvocationQueue, JobStore};
use rukong_core::{ExecClass, ExecutorId, JobId, JobPlan, TaskIdx, Value};
use rukong_kvstore_proxy::LocalProxy;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

const WIDE: usize = 10_000;

/// `s` fans out to `c0..c9999` and to the fan-in `j`, which also waits for `o`.
fn wide_plan(job: &str) -> Arc<JobPlan> {
    let mut yaml = String::from("name: wide\ntasks:\n  - {id: s, fn: const, args: [1]}\n");
    yaml.push_str("  - {id: o, fn: const, args: [2]}\n");
    for i in 0..WIDE {
        yaml.push_str(&format!("  - {{id: c{i}, fn: identity, deps: [s]}}\n"));
    }
    yaml.push_str("  - {id: j, fn: add, deps: [s, o]}\n");
    common::plan(job, &yaml)
}

fn fan_out_of(plan: &JobPlan, parent: &str) -> FanOutRequest {
    let p = plan.dag.lookup(parent).unwrap();
    FanOutRequest {
        job: plan.job.clone(),
        parent: p,
        payload: Payload::Inline(Value::Int(1)),
        children: plan.dag.children(p).to_vec(),
    }
}

/// Every invocation waiting in the CPU queue.
async fn drain(store: &MemoryStore) -> Vec<Invocation> {
    let me = ExecutorId::new("test");
    let mut all = Vec::new();
    loop {
        let got = store
            .pull(ExecClass::Cpu, &me, 1 << 20, Duration::ZERO)
            .await
            .unwrap();
        if got.is_empty() {
            return all;
        }
        all.extend(got.into_iter().map(|d| d.invocation));
    }
}

fn started(invs: &[Invocation]) -> Vec<TaskIdx> {
    invs.iter()
        .flat_map(|i| i.starts.iter().map(|s| s.task))
        .collect()
}

#[tokio::test]
async fn a_wide_fan_out_matches_the_local_proxy() {
    let plan = wide_plan("wide");
    let local_store = Arc::new(MemoryStore::new());
    local_store.put_job(plan.clone()).await.unwrap();
    let local = LocalProxy::new(local_store.clone());
    let server = TestServer::start(Arc::new(MemoryStore::new()), server_config()).await;
    server.store.put_job(plan.clone()).await.unwrap();
    let remote = server.client(None).await;

    let req = fan_out_of(&plan, "s");
    let want = local.fan_out(req.clone()).await.unwrap();
    let got = within("fan-out", remote.fan_out(req)).await.unwrap();
    assert_eq!(got, want);
    assert_eq!(got.enqueued as usize, WIDE);
    assert_eq!(got.waiting, 1, "j still waits for o");
    assert_eq!(
        server.store.queue_len(ExecClass::Cpu),
        local_store.queue_len(ExecClass::Cpu)
    );
    assert_eq!(
        server.store.queue_len(ExecClass::Cpu).0,
        got.invocations as usize
    );

    let (remote_invs, local_invs) = (drain(&server.store).await, drain(&local_store).await);
    assert_eq!(remote_invs, local_invs);
    let tasks = started(&remote_invs);
    assert_eq!(tasks.len(), WIDE);
    let distinct: HashSet<TaskIdx> = tasks.iter().copied().collect();
    let children: HashSet<TaskIdx> = (0..WIDE)
        .map(|i| plan.dag.lookup(&format!("c{i}")).unwrap())
        .collect();
    assert_eq!(distinct, children, "every child exactly once");

    // The second parent completes the fan-in.
    let req = fan_out_of(&plan, "o");
    let got = remote.fan_out(req.clone()).await.unwrap();
    assert_eq!(got, local.fan_out(req).await.unwrap());
    assert_eq!(
        got,
        FanOutReply {
            enqueued: 1,
            invocations: 1,
            waiting: 0
        }
    );
    assert_eq!(
        started(&drain(&server.store).await),
        vec![plan.dag.lookup("j").unwrap()]
    );
    server.stop().await;
}

#[tokio::test]
async fn a_plan_prefetch_is_answered_at_once_and_changes_nothing() {
    let plan = wide_plan("prefetched");
    let server = TestServer::start(Arc::new(MemoryStore::new()), server_config()).await;
    server.store.put_job(plan.clone()).await.unwrap();
    let remote = server.client(None).await;
    // A known job, and one the store does not have (its load fails in the background and
    // the fan-out would report it): both answered Done, and the connection stays in step.
    within("prefetch", remote.prefetch_plan(&plan.job))
        .await
        .unwrap();
    within("prefetch", remote.prefetch_plan(&JobId::new("nowhere")))
        .await
        .unwrap();
    remote.ping().await.unwrap();
    let got = remote.fan_out(fan_out_of(&plan, "s")).await.unwrap();
    assert_eq!(got.enqueued as usize, WIDE);
    assert_eq!(
        server.store.queue_len(ExecClass::Cpu).0,
        got.invocations as usize
    );
    // The in-process proxy has nothing to load.
    let local = LocalProxy::new(server.store.clone());
    local.prefetch_plan(&plan.job).await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn fan_out_errors_travel_with_their_kind() {
    let plan = wide_plan("known");
    let server = TestServer::start(Arc::new(MemoryStore::new()), server_config()).await;
    let remote = server.client(None).await;

    let err = remote.fan_out(fan_out_of(&plan, "s")).await.unwrap_err();
    assert_eq!(
        err,
        ProxyError::Store(StoreError::UnknownJob(JobId::new("known")))
    );
    assert!(!err.is_retryable());

    server.store.put_job(plan.clone()).await.unwrap();
    let mut bad = fan_out_of(&plan, "o");
    bad.children[0].task = TaskIdx(u32::MAX);
    let err = remote.fan_out(bad).await.unwrap_err();
    assert!(matches!(err, ProxyError::Protocol(_)), "{err:?}");
    assert_eq!(server.store.queue_len(ExecClass::Cpu), (0, 0));
    remote.ping().await.unwrap();
    server.stop().await;
}
