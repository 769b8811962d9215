//! A store that loses replies: [`Faulty`] wraps any [`Store`] and, at a seeded random
//! subset of calls, either fails the call **before** performing it (the request never
//! arrived) or performs it and then fails **after** (the reply was lost: the effect is
//! durable, but the caller sees [`StoreError::Timeout`]). Both errors are retryable, as a
//! real network fault's would be.
//!
//! A correct engine gives the same results through it as through the bare store: every
//! effect it retries (writes, arrivals, pushes, acks, events) must be idempotent, or at
//! least harmless when repeated.

use crate::error::StoreError;
use crate::ids::{ExecClass, ExecutorId, JobId, TaskIdx};
use crate::messages::{Event, Invocation, JobState, ObjectKey, Payload};
use crate::plan::JobPlan;
use crate::profile::DagProfile;
use crate::rng::SplitMix64;
use crate::store::*;
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How often [`Faulty`] injects each fault: one call in `n` (0: never).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultRates {
    pub seed: u64,
    /// Fail before the call (it has no effect).
    pub before_one_in: u64,
    /// Perform the call, then lose its reply.
    pub after_one_in: u64,
}

/// What [`Faulty`] has injected so far.
#[derive(Debug, Default)]
pub struct FaultCounts {
    pub calls: AtomicU64,
    pub before: AtomicU64,
    pub after: AtomicU64,
}

/// See the module doc. Clones share the wrapped store and the counters.
#[derive(Clone, Debug)]
pub struct Faulty<S> {
    inner: Arc<S>,
    rates: FaultRates,
    counts: Arc<FaultCounts>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    Before,
    After,
}

impl<S: Store> Faulty<S> {
    pub fn new(inner: Arc<S>, rates: FaultRates) -> Self {
        Faulty {
            inner,
            rates,
            counts: Arc::default(),
        }
    }

    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }

    pub fn counts(&self) -> &FaultCounts {
        &self.counts
    }

    /// (calls, failed before, replies lost) so far.
    pub fn totals(&self) -> (u64, u64, u64) {
        let c = &self.counts;
        (
            c.calls.load(Ordering::Relaxed),
            c.before.load(Ordering::Relaxed),
            c.after.load(Ordering::Relaxed),
        )
    }

    fn roll(&self) -> Fault {
        let n = self.counts.calls.fetch_add(1, Ordering::Relaxed);
        let mut rng = SplitMix64::new(self.rates.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let (r1, r2) = (rng.next_u64(), rng.next_u64());
        let hit = |r: u64, one_in: u64| one_in > 0 && r.is_multiple_of(one_in);
        if hit(r1, self.rates.before_one_in) {
            self.counts.before.fetch_add(1, Ordering::Relaxed);
            Fault::Before
        } else if hit(r2, self.rates.after_one_in) {
            self.counts.after.fetch_add(1, Ordering::Relaxed);
            Fault::After
        } else {
            Fault::None
        }
    }

    /// Runs `call` under a rolled fault.
    async fn call<T>(&self, call: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
        match self.roll() {
            Fault::Before => Err(StoreError::Unavailable(
                "injected fault: the request was lost".into(),
            )),
            Fault::None => call.await,
            Fault::After => {
                call.await?;
                Err(StoreError::Timeout { ms: 0 })
            }
        }
    }
}

impl<S: Store> JobStore for Faulty<S> {
    async fn put_job(&self, plan: Arc<JobPlan>) -> StoreResult<()> {
        self.call(self.inner.put_job(plan)).await
    }
    async fn get_job(&self, job: &JobId) -> StoreResult<Arc<JobPlan>> {
        self.call(self.inner.get_job(job)).await
    }
    async fn set_job_state(&self, job: &JobId, state: JobState) -> StoreResult<()> {
        self.call(self.inner.set_job_state(job, state)).await
    }
    async fn job_state(&self, job: &JobId) -> StoreResult<JobState> {
        self.call(self.inner.job_state(job)).await
    }
    async fn delete_job(&self, job: &JobId) -> StoreResult<()> {
        self.call(self.inner.delete_job(job)).await
    }
    async fn list_jobs(&self) -> StoreResult<Vec<JobId>> {
        self.call(self.inner.list_jobs()).await
    }
    async fn run_epoch(&self) -> StoreResult<String> {
        self.call(self.inner.run_epoch()).await
    }
}

impl<S: Store> FanInStore for Faulty<S> {
    async fn record_arrivals(&self, job: &JobId, reqs: &[ArrivalReq]) -> StoreResult<Vec<Arrival>> {
        self.call(self.inner.record_arrivals(job, reqs)).await
    }
    async fn record_flagged_arrivals(
        &self,
        job: &JobId,
        reqs: &[FlaggedArrival],
    ) -> StoreResult<Vec<Arrival>> {
        self.call(self.inner.record_flagged_arrivals(job, reqs))
            .await
    }
    async fn put_outputs_and_arrive(
        &self,
        job: &JobId,
        outputs: Vec<LevelWrite>,
        reqs: &[FlaggedArrival],
    ) -> StoreResult<Vec<Arrival>> {
        self.call(self.inner.put_outputs_and_arrive(job, outputs, reqs))
            .await
    }
    fn level_writes_are_atomic(&self) -> bool {
        self.inner.level_writes_are_atomic()
    }
    async fn fan_in_counts(&self, job: &JobId) -> StoreResult<Vec<(TaskIdx, u32)>> {
        self.call(self.inner.fan_in_counts(job)).await
    }
}

impl<S: Store> OutputStore for Faulty<S> {
    async fn put_outputs(&self, job: &JobId, items: Vec<(TaskIdx, Payload)>) -> StoreResult<()> {
        self.call(self.inner.put_outputs(job, items)).await
    }
    async fn get_outputs(
        &self,
        job: &JobId,
        tasks: &[TaskIdx],
    ) -> StoreResult<Vec<Option<Payload>>> {
        self.call(self.inner.get_outputs(job, tasks)).await
    }
}

impl<S: Store> ObjectStore for Faulty<S> {
    async fn put_object(&self, key: &ObjectKey, data: Bytes) -> StoreResult<()> {
        self.call(self.inner.put_object(key, data)).await
    }
    async fn get_object(&self, key: &ObjectKey) -> StoreResult<Option<Bytes>> {
        self.call(self.inner.get_object(key)).await
    }
    async fn delete_object(&self, key: &ObjectKey) -> StoreResult<()> {
        self.call(self.inner.delete_object(key)).await
    }
    async fn release_outputs(
        &self,
        job: &JobId,
        releases: &[Release],
    ) -> StoreResult<Vec<TaskIdx>> {
        self.call(self.inner.release_outputs(job, releases)).await
    }
}

impl<S: Store> InvocationQueue for Faulty<S> {
    async fn push(&self, class: ExecClass, invocations: Vec<Invocation>) -> StoreResult<()> {
        self.call(self.inner.push(class, invocations)).await
    }
    async fn pull(
        &self,
        class: ExecClass,
        consumer: &ExecutorId,
        max: usize,
        wait: Duration,
    ) -> StoreResult<Vec<Delivery>> {
        self.call(self.inner.pull(class, consumer, max, wait)).await
    }
    async fn ack(&self, class: ExecClass, ids: &[DeliveryId]) -> StoreResult<()> {
        self.call(self.inner.ack(class, ids)).await
    }
    async fn touch(
        &self,
        class: ExecClass,
        consumer: &ExecutorId,
        ids: &[DeliveryId],
    ) -> StoreResult<()> {
        self.call(self.inner.touch(class, consumer, ids)).await
    }
    async fn job_queued(&self, job: &JobId) -> StoreResult<bool> {
        self.call(self.inner.job_queued(job)).await
    }
    async fn reclaim(
        &self,
        class: ExecClass,
        consumer: &ExecutorId,
        min_idle: Duration,
        max: usize,
    ) -> StoreResult<Vec<Delivery>> {
        self.call(self.inner.reclaim(class, consumer, min_idle, max))
            .await
    }
}

impl<S: Store> EventLog for Faulty<S> {
    async fn append_events(&self, job: &JobId, events: Vec<Event>) -> StoreResult<()> {
        self.call(self.inner.append_events(job, events)).await
    }
    async fn read_events(
        &self,
        job: &JobId,
        from: u64,
        max: usize,
        wait: Duration,
    ) -> StoreResult<EventBatch> {
        self.call(self.inner.read_events(job, from, max, wait))
            .await
    }
}

impl<S: Store> ProfileStore for Faulty<S> {
    async fn record_profile(&self, dag_name: &str, delta: DagProfile) -> StoreResult<()> {
        self.call(self.inner.record_profile(dag_name, delta)).await
    }
    async fn get_profile(&self, dag_name: &str) -> StoreResult<DagProfile> {
        self.call(self.inner.get_profile(dag_name)).await
    }
}

impl<S: Store> MembershipStore for Faulty<S> {
    async fn heartbeat(&self, info: &ExecutorInfo, ttl: Duration) -> StoreResult<()> {
        self.call(self.inner.heartbeat(info, ttl)).await
    }
    async fn deregister(&self, id: &ExecutorId) -> StoreResult<()> {
        self.call(self.inner.deregister(id)).await
    }
    async fn executors(&self) -> StoreResult<Vec<ExecutorInfo>> {
        self.call(self.inner.executors()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    #[tokio::test]
    async fn a_lost_reply_keeps_the_effect_and_a_lost_request_does_not() {
        let always_after = Faulty::new(
            Arc::new(MemoryStore::new()),
            FaultRates {
                seed: 1,
                before_one_in: 0,
                after_one_in: 1,
            },
        );
        let key = ObjectKey::new("k");
        let e = always_after
            .put_object(&key, Bytes::from_static(b"x"))
            .await
            .unwrap_err();
        assert!(e.is_retryable());
        assert!(
            always_after
                .inner()
                .get_object(&key)
                .await
                .unwrap()
                .is_some()
        );

        let always_before = Faulty::new(
            Arc::new(MemoryStore::new()),
            FaultRates {
                seed: 1,
                before_one_in: 1,
                after_one_in: 0,
            },
        );
        let e = always_before
            .put_object(&key, Bytes::from_static(b"x"))
            .await
            .unwrap_err();
        assert!(e.is_retryable());
        assert!(
            always_before
                .inner()
                .get_object(&key)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(always_before.totals(), (1, 1, 0));
    }

    #[tokio::test]
    async fn rates_inject_about_as_often_as_asked() {
        let f = Faulty::new(
            Arc::new(MemoryStore::new()),
            FaultRates {
                seed: 7,
                before_one_in: 10,
                after_one_in: 5,
            },
        );
        let key = ObjectKey::new("k");
        for _ in 0..10_000 {
            let _ = f.get_object(&key).await;
        }
        let (calls, before, after) = f.totals();
        assert_eq!(calls, 10_000);
        assert!((800..1200).contains(&before), "{before}");
        assert!((1500..2100).contains(&after), "{after}");
    }
}
