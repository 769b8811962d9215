//! The in-memory store: the embedded mode's backend, a first-class implementation that
//! passes the same conformance suite as Redis.
//!
//! Per job, fan-in records are atomic bitmaps plus counters (and the completer's position)
//! and outputs are write-once cells, all indexed by task: recording an arrival is two or
//! three atomic operations, with no lock.

use super::*;
use crate::messages::JobState;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, RwLock};
use std::time::Instant;
use tokio::sync::Notify;

/// Default cap on one object's size (the proxy enforces the same).
pub const DEFAULT_MAX_OBJECT: usize = 512 << 20;

#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

struct Inner {
    jobs: RwLock<HashMap<JobId, Arc<JobEntry>>>,
    objects: Mutex<HashMap<ObjectKey, Bytes>>,
    queues: [Queue; 2],
    profiles: Mutex<HashMap<String, DagProfile>>,
    members: Mutex<HashMap<ExecutorId, (ExecutorInfo, Instant)>>,
    max_object: usize,
    /// Made with the store: an in-memory store never loses its data and lives on.
    epoch: String,
}

struct JobEntry {
    plan: Arc<JobPlan>,
    state: Mutex<JobState>,
    /// Word offset of each task's arrival bitmap in `words` (`off[t]..off[t+1]`).
    off: Vec<u32>,
    words: Vec<AtomicU64>,
    count: Vec<AtomicU32>,
    /// Per task, the completer's position plus one (0 until the set is complete), so that a
    /// re-arrival of the completer is told `completes` again.
    completer: Vec<AtomicU32>,
    /// Per task, how many distinct parents arrived skipped; made on the first skipped
    /// arrival, so jobs without conditional branches never pay for it.
    skipped: OnceLock<Vec<AtomicU32>>,
    /// Write-once cells; a released output's cell points at its tombstone object.
    outputs: Vec<Mutex<Option<Payload>>>,
    /// Per producer whose large output is being released: the readers done with it, or
    /// `None` once all were and the object became a tombstone.
    released: Mutex<HashMap<TaskIdx, Option<HashSet<TaskIdx>>>>,
    events: Mutex<Vec<Event>>,
    events_changed: Notify,
}

/// Locks, recovering from a poisoned lock: every critical section here leaves the data
/// consistent, so a panic elsewhere must not wedge the store.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::with_max_object(DEFAULT_MAX_OBJECT)
    }

    pub fn with_max_object(max_object: usize) -> Self {
        MemoryStore {
            inner: Arc::new(Inner {
                jobs: RwLock::new(HashMap::new()),
                objects: Mutex::new(HashMap::new()),
                queues: [Queue::default(), Queue::default()],
                profiles: Mutex::new(HashMap::new()),
                members: Mutex::new(HashMap::new()),
                max_object,
                epoch: crate::ids::JobId::generate().to_string(),
            }),
        }
    }

    fn job(&self, job: &JobId) -> StoreResult<Arc<JobEntry>> {
        let jobs = self.inner.jobs.read().unwrap_or_else(|e| e.into_inner());
        jobs.get(job)
            .cloned()
            .ok_or_else(|| StoreError::UnknownJob(job.clone()))
    }

    fn queue(&self, class: ExecClass) -> &Queue {
        &self.inner.queues[class as usize]
    }

    /// Number of objects held (for tests and stats).
    pub fn object_count(&self) -> usize {
        lock(&self.inner.objects).len()
    }

    /// Bytes of `job`'s outputs still held: its output cells' inline values (approximate
    /// sizes) and its objects (tombstones hold none). For tests and stats.
    pub fn held_bytes(&self, job: &JobId) -> StoreResult<usize> {
        let entry = self.job(job)?;
        let cells: usize = entry
            .outputs
            .iter()
            .map(|c| match &*lock(c) {
                Some(Payload::Inline(v)) => v.approx_size(),
                _ => 0,
            })
            .sum();
        let objects: usize = lock(&self.inner.objects)
            .iter()
            .filter(|(k, _)| k.belongs_to(job))
            .map(|(_, v)| v.len())
            .sum();
        Ok(cells + objects)
    }

    /// Entries waiting plus entries pending ack in `class` (for tests and stats).
    pub fn queue_len(&self, class: ExecClass) -> (usize, usize) {
        let q = lock(&self.queue(class).state);
        (q.ready.len(), q.pending.len())
    }
}

impl JobEntry {
    fn new(plan: Arc<JobPlan>) -> Self {
        let n = plan.dag.len();
        let mut off = Vec::with_capacity(n + 1);
        let mut total = 0u32;
        off.push(0);
        for t in plan.dag.tasks() {
            total += plan.dag.needed(t).div_ceil(64);
            off.push(total);
        }
        JobEntry {
            state: Mutex::new(JobState::Running),
            words: (0..total).map(|_| AtomicU64::new(0)).collect(),
            count: (0..n).map(|_| AtomicU32::new(0)).collect(),
            completer: (0..n).map(|_| AtomicU32::new(0)).collect(),
            skipped: OnceLock::new(),
            outputs: (0..n).map(|_| Mutex::new(None)).collect(),
            released: Mutex::new(HashMap::new()),
            off,
            plan,
            events: Mutex::new(Vec::new()),
            events_changed: Notify::new(),
        }
    }

    fn check_task(&self, t: TaskIdx) -> StoreResult<()> {
        if t.get() >= self.outputs.len() {
            return Err(StoreError::Corrupt {
                key: format!(
                    "{}task:{}",
                    crate::messages::job_prefix(&self.plan.job),
                    t.0
                ),
                message: format!("task index out of range (job has {})", self.outputs.len()),
            });
        }
        Ok(())
    }
}

impl JobStore for MemoryStore {
    async fn put_job(&self, plan: Arc<JobPlan>) -> StoreResult<()> {
        let mut jobs = self.inner.jobs.write().unwrap_or_else(|e| e.into_inner());
        jobs.entry(plan.job.clone())
            .or_insert_with(|| Arc::new(JobEntry::new(plan)));
        Ok(())
    }

    async fn get_job(&self, job: &JobId) -> StoreResult<Arc<JobPlan>> {
        Ok(self.job(job)?.plan.clone())
    }

    async fn set_job_state(&self, job: &JobId, state: JobState) -> StoreResult<()> {
        let entry = self.job(job)?;
        *lock(&entry.state) = state;
        // Wake readers waiting on events: a finished job has nothing more to wait for.
        entry.events_changed.notify_waiters();
        Ok(())
    }

    async fn job_state(&self, job: &JobId) -> StoreResult<JobState> {
        Ok(lock(&self.job(job)?.state).clone())
    }

    async fn delete_job(&self, job: &JobId) -> StoreResult<()> {
        let removed = self
            .inner
            .jobs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(job);
        lock(&self.inner.objects).retain(|k, _| !k.belongs_to(job));
        if let Some(entry) = removed {
            entry.events_changed.notify_waiters();
        }
        Ok(())
    }

    async fn list_jobs(&self) -> StoreResult<Vec<JobId>> {
        let jobs = self.inner.jobs.read().unwrap_or_else(|e| e.into_inner());
        let mut ids: Vec<JobId> = jobs.keys().cloned().collect();
        ids.sort();
        Ok(ids)
    }

    async fn run_epoch(&self) -> StoreResult<String> {
        Ok(self.inner.epoch.clone())
    }
}

impl FanInStore for MemoryStore {
    async fn record_arrivals(&self, job: &JobId, reqs: &[ArrivalReq]) -> StoreResult<Vec<Arrival>> {
        let entry = self.job(job)?;
        let mut out = Vec::with_capacity(reqs.len());
        for r in reqs {
            out.push(entry.arrive(job, r, false)?);
        }
        Ok(out)
    }

    async fn record_flagged_arrivals(
        &self,
        job: &JobId,
        reqs: &[FlaggedArrival],
    ) -> StoreResult<Vec<Arrival>> {
        let entry = self.job(job)?;
        let mut out = Vec::with_capacity(reqs.len());
        for r in reqs {
            out.push(entry.arrive(job, &r.req, r.skipped)?);
        }
        Ok(out)
    }

    async fn put_outputs_and_arrive(
        &self,
        job: &JobId,
        outputs: Vec<LevelWrite>,
        reqs: &[FlaggedArrival],
    ) -> StoreResult<Vec<Arrival>> {
        // Write before counting, so that a child another parent completes meanwhile finds
        // the output; then clear what this call wrote of an output whose every reader its
        // own arrivals completed: this parent continues with it in hand, and a re-run of it
        // is told "completes" again (as Redis, which leaves such an output unstored).
        let entry = self.job(job)?;
        let mut elidable = Vec::new();
        for w in outputs {
            entry.check_task(w.task)?;
            let mut cell = lock(&entry.outputs[w.task.get()]);
            if cell.is_none() {
                *cell = Some(w.payload);
                if !w.readers.is_empty() {
                    elidable.push((w.task, w.readers));
                }
            }
        }
        let arrivals = self.record_flagged_arrivals(job, reqs).await?;
        for (task, readers) in elidable {
            let completed = |&p: &u32| arrivals.get(p as usize).is_some_and(Arrival::completes);
            if readers.iter().all(completed) {
                lock(&entry.outputs[task.get()]).take();
            }
        }
        Ok(arrivals)
    }

    async fn fan_in_counts(&self, job: &JobId) -> StoreResult<Vec<(TaskIdx, u32)>> {
        let entry = self.job(job)?;
        let dag = &entry.plan.dag;
        Ok(dag
            .tasks()
            .filter(|&t| dag.needed(t) > 1)
            .filter_map(|t| {
                let n = entry.count[t.get()].load(Ordering::Acquire);
                (n > 0).then_some((t, n))
            })
            .collect())
    }
}

impl JobEntry {
    /// One arrival: set the parent's bit; on the first time, count it (and, before that, its
    /// skip, so that the arrival that completes the count sees every skip).
    #[inline]
    fn arrive(&self, job: &JobId, r: &ArrivalReq, skipped: bool) -> StoreResult<Arrival> {
        self.check_task(r.child)?;
        let c = r.child.get();
        let needed = self.plan.dag.needed(r.child);
        if r.pos >= needed || r.needed != needed {
            return Err(StoreError::Corrupt {
                key: format!("{}in:{}", crate::messages::job_prefix(job), c),
                message: format!(
                    "arrival at position {} of {} (task has {} dependencies)",
                    r.pos, r.needed, needed
                ),
            });
        }
        let word = self.off[c] as usize + (r.pos / 64) as usize;
        let bit = 1u64 << (r.pos % 64);
        let before = self.words[word].fetch_or(bit, Ordering::AcqRel);
        let first_time = before & bit == 0;
        if first_time && skipped {
            let n = self.count.len();
            self.skipped
                .get_or_init(|| (0..n).map(|_| AtomicU32::new(0)).collect())[c]
                .fetch_add(1, Ordering::AcqRel);
        }
        let (arrived, completer) = if first_time {
            let arrived = self.count[c].fetch_add(1, Ordering::AcqRel) + 1;
            if arrived == needed {
                self.completer[c].store(r.pos + 1, Ordering::Release);
            }
            (arrived, arrived == needed)
        } else {
            // A re-arrival: the completer is told so again. A duplicate racing the
            // completer's first arrival may not see it yet; then the first one goes on.
            let arrived = self.count[c].load(Ordering::Acquire);
            let completer =
                arrived == needed && self.completer[c].load(Ordering::Acquire) == r.pos + 1;
            (arrived, completer)
        };
        let skipped = self
            .skipped
            .get()
            .map_or(0, |s| s[c].load(Ordering::Acquire));
        Ok(Arrival {
            arrived,
            needed,
            first_time,
            skipped,
            completer,
        })
    }
}

impl OutputStore for MemoryStore {
    async fn put_outputs(&self, job: &JobId, items: Vec<(TaskIdx, Payload)>) -> StoreResult<()> {
        let entry = self.job(job)?;
        for (t, p) in items {
            entry.check_task(t)?;
            // Write-once: a re-run of a deterministic task writes the same value again.
            lock(&entry.outputs[t.get()]).get_or_insert(p);
        }
        Ok(())
    }

    async fn get_outputs(
        &self,
        job: &JobId,
        tasks: &[TaskIdx],
    ) -> StoreResult<Vec<Option<Payload>>> {
        let entry = self.job(job)?;
        tasks
            .iter()
            .map(|&t| {
                entry.check_task(t)?;
                Ok(lock(&entry.outputs[t.get()]).clone())
            })
            .collect()
    }
}

impl ObjectStore for MemoryStore {
    async fn put_object(&self, key: &ObjectKey, data: Bytes) -> StoreResult<()> {
        if data.len() > self.inner.max_object {
            return Err(StoreError::TooLarge {
                key: key.to_string(),
                size: data.len(),
                max: self.inner.max_object,
            });
        }
        let mut objects = lock(&self.inner.objects);
        match objects.get(key) {
            // A released output stays released: its readers are all done.
            Some(old) if super::is_tombstone(old) => {}
            _ => {
                objects.insert(key.clone(), data);
            }
        }
        Ok(())
    }

    async fn get_object(&self, key: &ObjectKey) -> StoreResult<Option<Bytes>> {
        Ok(lock(&self.inner.objects).get(key).cloned())
    }

    async fn delete_object(&self, key: &ObjectKey) -> StoreResult<()> {
        lock(&self.inner.objects).remove(key);
        Ok(())
    }

    async fn release_outputs(
        &self,
        job: &JobId,
        releases: &[Release],
    ) -> StoreResult<Vec<TaskIdx>> {
        if releases.is_empty() {
            return Ok(Vec::new());
        }
        let entry = self.job(job)?;
        let mut full = Vec::new();
        {
            let mut sets = lock(&entry.released);
            for r in releases {
                entry.check_task(r.producer)?;
                let state = sets
                    .entry(r.producer)
                    .or_insert_with(|| Some(HashSet::new()));
                let Some(readers) = state else {
                    continue;
                };
                readers.insert(r.reader);
                if readers.len() >= r.readers as usize {
                    *state = None;
                    full.push(r.producer);
                }
            }
        }
        let mut objects = lock(&self.inner.objects);
        for &producer in &full {
            let key = ObjectKey::for_output(job, producer);
            // The cell now points at the tombstone, so a reader of it learns the same.
            lock(&entry.outputs[producer.get()]).replace(Payload::Object(key.clone()));
            objects.insert(key, Bytes::new());
        }
        Ok(full)
    }
}

#[derive(Default)]
struct Queue {
    state: Mutex<QueueState>,
    changed: Notify,
}

/// Entries waiting for a slot, in two bands: work that continues a running walk (a fan-out's
/// siblings, a fan-in's child, warm-up hints) goes before a job's source invocations, so
/// that what is started finishes before more is started. This bounds memory where every
/// source's output waits for later work (a blocked GEMM's tiles for their products), and
/// each band stays in order.
#[derive(Default)]
struct Ready {
    started: VecDeque<(DeliveryId, u32, Invocation)>,
    sources: VecDeque<(DeliveryId, u32, Invocation)>,
}

impl Ready {
    fn len(&self) -> usize {
        self.started.len() + self.sources.len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn pop_front(&mut self) -> Option<(DeliveryId, u32, Invocation)> {
        self.started
            .pop_front()
            .or_else(|| self.sources.pop_front())
    }

    fn iter(&self) -> impl Iterator<Item = &(DeliveryId, u32, Invocation)> {
        self.started.iter().chain(self.sources.iter())
    }
}

#[derive(Default)]
struct QueueState {
    ready: Ready,
    pending: HashMap<DeliveryId, PendingEntry>,
    consumers: std::collections::HashSet<ExecutorId>,
    next: u64,
}

struct PendingEntry {
    consumer: ExecutorId,
    since: Instant,
    deliveries: u32,
    invocation: Invocation,
}

impl QueueState {
    fn deliver(&mut self, consumer: &ExecutorId, max: usize) -> Vec<Delivery> {
        // Fair share: with a backlog of B and C consumers, take about B/C so that one slot
        // does not hoard work that idle slots could run.
        let share = self.ready.len().div_ceil(self.consumers.len().max(1));
        let take = max.min(share.max(1)).min(self.ready.len());
        let now = Instant::now();
        let mut out = Vec::with_capacity(take);
        for _ in 0..take {
            let Some((id, deliveries, invocation)) = self.ready.pop_front() else {
                break;
            };
            let deliveries = deliveries + 1;
            self.pending.insert(
                id,
                PendingEntry {
                    consumer: consumer.clone(),
                    since: now,
                    deliveries,
                    invocation: invocation.clone(),
                },
            );
            out.push(Delivery {
                id,
                deliveries,
                invocation,
            });
        }
        out
    }
}

impl InvocationQueue for MemoryStore {
    async fn push(&self, class: ExecClass, invocations: Vec<Invocation>) -> StoreResult<()> {
        if invocations.is_empty() {
            return Ok(());
        }
        // Which invocations start from sources only (see `Ready`).
        let plan = self.job(&invocations[0].job).ok().map(|e| e.plan.clone());
        let from_sources = |inv: &Invocation| {
            inv.warm.is_empty()
                && inv.release.is_empty()
                && match &plan {
                    Some(p) if p.job == inv.job => {
                        let dag = &p.dag;
                        inv.starts
                            .iter()
                            .all(|s| s.task.get() < dag.len() && dag.deps(s.task).is_empty())
                    }
                    _ => true,
                }
        };
        let q = self.queue(class);
        {
            let mut s = lock(&q.state);
            for inv in invocations {
                s.next += 1;
                let id = DeliveryId { ms: 0, seq: s.next };
                if from_sources(&inv) {
                    s.ready.sources.push_back((id, 0, inv));
                } else {
                    s.ready.started.push_back((id, 0, inv));
                }
            }
        }
        q.changed.notify_waiters();
        Ok(())
    }

    async fn pull(
        &self,
        class: ExecClass,
        consumer: &ExecutorId,
        max: usize,
        wait: Duration,
    ) -> StoreResult<Vec<Delivery>> {
        let q = self.queue(class);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = q.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut s = lock(&q.state);
                if !s.consumers.contains(consumer) {
                    s.consumers.insert(consumer.clone());
                }
                if !s.ready.is_empty() {
                    return Ok(s.deliver(consumer, max.max(1)));
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn ack(&self, class: ExecClass, ids: &[DeliveryId]) -> StoreResult<()> {
        let mut s = lock(&self.queue(class).state);
        for id in ids {
            s.pending.remove(id);
        }
        Ok(())
    }

    async fn touch(
        &self,
        class: ExecClass,
        consumer: &ExecutorId,
        ids: &[DeliveryId],
    ) -> StoreResult<()> {
        let mut s = lock(&self.queue(class).state);
        let now = Instant::now();
        for id in ids {
            if let Some(p) = s.pending.get_mut(id)
                && &p.consumer == consumer
            {
                p.since = now;
            }
        }
        Ok(())
    }

    async fn job_queued(&self, job: &JobId) -> StoreResult<bool> {
        Ok(self.inner.queues.iter().any(|q| {
            let s = lock(&q.state);
            s.ready.iter().any(|(_, _, inv)| &inv.job == job)
                || s.pending.values().any(|p| &p.invocation.job == job)
        }))
    }

    async fn reclaim(
        &self,
        class: ExecClass,
        consumer: &ExecutorId,
        min_idle: Duration,
        max: usize,
    ) -> StoreResult<Vec<Delivery>> {
        let mut s = lock(&self.queue(class).state);
        let now = Instant::now();
        let mut stale: Vec<DeliveryId> = s
            .pending
            .iter()
            .filter(|(_, p)| now.duration_since(p.since) >= min_idle)
            .map(|(id, _)| *id)
            .collect();
        stale.sort();
        stale.truncate(max);
        let mut out = Vec::with_capacity(stale.len());
        for id in stale {
            if let Some(p) = s.pending.get_mut(&id) {
                p.consumer = consumer.clone();
                p.since = now;
                p.deliveries += 1;
                out.push(Delivery {
                    id,
                    deliveries: p.deliveries,
                    invocation: p.invocation.clone(),
                });
            }
        }
        Ok(out)
    }
}

impl EventLog for MemoryStore {
    async fn append_events(&self, job: &JobId, events: Vec<Event>) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let entry = self.job(job)?;
        lock(&entry.events).extend(events);
        entry.events_changed.notify_waiters();
        Ok(())
    }

    async fn read_events(
        &self,
        job: &JobId,
        from: u64,
        max: usize,
        wait: Duration,
    ) -> StoreResult<EventBatch> {
        let entry = self.job(job)?;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = entry.events_changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let events = lock(&entry.events);
                let start = (from as usize).min(events.len());
                if start < events.len() || lock(&entry.state).is_finished() {
                    let end = events.len().min(start + max.max(1));
                    return Ok(EventBatch {
                        events: events[start..end].to_vec(),
                        next: end as u64,
                    });
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(EventBatch {
                    events: Vec::new(),
                    next: from,
                });
            }
            // The job may have been deleted while we waited.
            if self.job(job).is_err() {
                return Err(StoreError::UnknownJob(job.clone()));
            }
        }
    }
}

impl ProfileStore for MemoryStore {
    async fn record_profile(&self, dag_name: &str, delta: DagProfile) -> StoreResult<()> {
        let mut all = lock(&self.inner.profiles);
        all.entry(dag_name.to_owned()).or_default().merge(&delta);
        Ok(())
    }

    async fn get_profile(&self, dag_name: &str) -> StoreResult<DagProfile> {
        Ok(lock(&self.inner.profiles)
            .get(dag_name)
            .cloned()
            .unwrap_or_default())
    }
}

impl MembershipStore for MemoryStore {
    async fn heartbeat(&self, info: &ExecutorInfo, ttl: Duration) -> StoreResult<()> {
        lock(&self.inner.members).insert(info.id.clone(), (info.clone(), Instant::now() + ttl));
        Ok(())
    }

    async fn deregister(&self, id: &ExecutorId) -> StoreResult<()> {
        lock(&self.inner.members).remove(id);
        Ok(())
    }

    async fn executors(&self) -> StoreResult<Vec<ExecutorInfo>> {
        let now = Instant::now();
        let mut members = lock(&self.inner.members);
        members.retain(|_, (_, until)| *until > now);
        let mut out: Vec<ExecutorInfo> = members.values().map(|(i, _)| i.clone()).collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
