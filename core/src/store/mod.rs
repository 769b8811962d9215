//! Store contracts (`docs/architecture.md`). Two implementations of each: [`memory::MemoryStore`]
//! (embedded mode) and Redis (cluster mode). [`conformance`] is the one suite that both must
//! pass.
//!
//! Methods are `async` with statically dispatched futures (no boxing), and batch-shaped, so
//! that a Redis implementation spends one pipelined round trip per call, and the in-memory
//! one costs an array access.

pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;

#[cfg(any(test, feature = "test-util"))]
pub mod conformance;

use crate::error::StoreError;
use crate::ids::{ExecClass, ExecutorId, JobId, TaskIdx};
use crate::messages::{Event, Invocation, JobState, ObjectKey, Payload};
use crate::plan::JobPlan;
use crate::profile::DagProfile;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub type StoreResult<T> = Result<T, StoreError>;

/// One parent arriving at a fan-in child. `pos` is the parent's position among the child's
/// distinct dependencies ([`crate::dag::Child::pos`]); `needed` is how many there are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArrivalReq {
    pub child: TaskIdx,
    pub pos: u32,
    pub needed: u32,
}

/// An arrival that says whether its parent ran or was skipped (`docs/conditional-branches.md`): a
/// skipped parent arrives too, so that its fan-in children are never left waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlaggedArrival {
    pub req: ArrivalReq,
    /// The parent was skipped: it has no output (only a [`Payload::Skipped`] marker).
    pub skipped: bool,
}

/// The fan-in record after an arrival.
///
/// The record is idempotent in its count **and in its answer**: the parent whose first
/// arrival completed the set (the *completer*) is told [`Arrival::completes`] again on every
/// re-arrival (a lost reply and a retry, a redelivery after a crash, a client resend), so
/// that a re-run of the completer continues into the child instead of stranding it. Two
/// copies of the completer may then both continue; write-once outputs and the engine's
/// result dedup make that safe.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arrival {
    /// Distinct parents recorded so far.
    pub arrived: u32,
    pub needed: u32,
    /// False when this parent had already been recorded (a retry or a duplicate).
    pub first_time: bool,
    /// Distinct parents recorded as skipped so far. Exact for every arrival of the
    /// completer (every other parent's record happened before it); a lower bound otherwise.
    #[serde(default)]
    pub skipped: u32,
    /// This parent is the completer: its first arrival completed the set. True on its first
    /// arrival and on every re-arrival after it, false for every other parent.
    #[serde(default)]
    pub completer: bool,
}

impl Arrival {
    /// Whether this parent goes on into the child: it is the one whose arrival completed the
    /// set. Exactly one parent per child sees this, on each of its arrivals.
    pub fn completes(&self) -> bool {
        self.completer
    }

    /// For the completer's arrival: whether the child is skipped because of its
    /// dependencies, under its [`crate::dag::Join`] mode (`all`: any parent skipped; `any`:
    /// every parent skipped). Its guard, if any, is checked when it runs.
    pub fn skips(&self, join: crate::dag::Join) -> bool {
        match join {
            crate::dag::Join::All => self.skipped > 0,
            crate::dag::Join::Any => self.skipped >= self.needed,
        }
    }
}

/// Jobs: the stored plan and the job's state.
pub trait JobStore: Send + Sync + 'static {
    /// Stores the plan and creates the job's fan-in records. Storing the same job twice is
    /// an error-free no-op.
    fn put_job(&self, plan: Arc<JobPlan>) -> impl Future<Output = StoreResult<()>> + Send;
    fn get_job(&self, job: &JobId) -> impl Future<Output = StoreResult<Arc<JobPlan>>> + Send;
    fn set_job_state(
        &self,
        job: &JobId,
        state: JobState,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    fn job_state(&self, job: &JobId) -> impl Future<Output = StoreResult<JobState>> + Send;
    /// Frees every key of the job (plan, fan-in records, outputs, objects, events). Later
    /// calls about the job answer [`StoreError::UnknownJob`].
    fn delete_job(&self, job: &JobId) -> impl Future<Output = StoreResult<()>> + Send;
    /// Every job in the store (running or finished but not yet deleted), so that a
    /// restarted engine finds the jobs it was following.
    fn list_jobs(&self) -> impl Future<Output = StoreResult<Vec<JobId>>> + Send;
    /// The store's run epoch: a random id made by the first call, and the same ever after,
    /// unless the store lost its data (a Redis restarted without persistence), when the
    /// next call makes a new one. A job whose keys vanished under a changed epoch was lost,
    /// not cancelled.
    fn run_epoch(&self) -> impl Future<Output = StoreResult<String>> + Send;
}

/// Idempotent fan-in records.
pub trait FanInStore: Send + Sync + 'static {
    /// Records each arrival atomically and idempotently: a parent recorded twice counts once,
    /// and the completer is told so on each of its arrivals ([`Arrival::completes`]). Every
    /// parent arrives as completed (not skipped).
    fn record_arrivals(
        &self,
        job: &JobId,
        reqs: &[ArrivalReq],
    ) -> impl Future<Output = StoreResult<Vec<Arrival>>> + Send;

    /// As [`FanInStore::record_arrivals`], where each arrival says whether its parent was
    /// skipped (`docs/conditional-branches.md`). The record also counts the distinct skipped
    /// parents, in the same atomic step and just as idempotently (a parent's skip counts once, with
    /// its first arrival), so the arrival that completes the set can decide whether the child runs.
    fn record_flagged_arrivals(
        &self,
        job: &JobId,
        reqs: &[FlaggedArrival],
    ) -> impl Future<Output = StoreResult<Vec<Arrival>>> + Send;

    /// Writes `outputs` (write-once, as [`OutputStore::put_outputs`]) and records `reqs`
    /// (as [`FanInStore::record_flagged_arrivals`]) as one step: a child made ready by an
    /// arrival always finds the outputs it reads, and in Redis a frontier level's writes
    /// and counts cost one round trip. An output whose readers (see [`LevelWrite`]) are all
    /// completed by this call's own arrivals may be left unstored. Retrying the whole call
    /// after a lost reply writes nothing new and gives the same answers.
    fn put_outputs_and_arrive(
        &self,
        job: &JobId,
        outputs: Vec<LevelWrite>,
        reqs: &[FlaggedArrival],
    ) -> impl Future<Output = StoreResult<Vec<Arrival>>> + Send;

    /// Whether [`FanInStore::put_outputs_and_arrive`] writes its outputs and records its
    /// arrivals in one atomic step, with every fan-in reader of an output that lists its
    /// readers. Then a parent's first-time arrival means no earlier call stored its output:
    /// the value stored is the one this call wrote, and the walk may hand it to a sibling
    /// in memory rather than read it back. Redis (one script) says yes; the in-memory store
    /// writes and counts under separate locks, so two concurrent duplicates could each see
    /// half, and it says no (its reads are local anyway).
    fn level_writes_are_atomic(&self) -> bool {
        false
    }

    /// The fan-in children of `job` that have at least one parent recorded, as `(child,
    /// arrived)`, sorted by child. For naming what a stuck job waits on; never on the hot
    /// path.
    fn fan_in_counts(
        &self,
        job: &JobId,
    ) -> impl Future<Output = StoreResult<Vec<(TaskIdx, u32)>>> + Send;
}

/// Task outputs that fan-in children read (written before the arrival is recorded).
pub trait OutputStore: Send + Sync + 'static {
    fn put_outputs(
        &self,
        job: &JobId,
        items: Vec<(TaskIdx, Payload)>,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    fn get_outputs(
        &self,
        job: &JobId,
        tasks: &[TaskIdx],
    ) -> impl Future<Output = StoreResult<Vec<Option<Payload>>>> + Send;
}

/// Large objects by key. A reader sees a whole object or none.
pub trait ObjectStore: Send + Sync + 'static {
    fn put_object(
        &self,
        key: &ObjectKey,
        data: Bytes,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    fn get_object(
        &self,
        key: &ObjectKey,
    ) -> impl Future<Output = StoreResult<Option<Bytes>>> + Send;
    fn delete_object(&self, key: &ObjectKey) -> impl Future<Output = StoreResult<()>> + Send;
    /// Records that each [`Release::reader`] is done with the large output of
    /// [`Release::producer`] (stored under [`ObjectKey::for_output`]). Idempotent per
    /// reader. When all of a producer's distinct readers have released it, its object is
    /// freed and a **tombstone** left in its place: [`ObjectStore::get_object`] then answers
    /// `Some` of empty bytes (no encoded value is empty), and a later
    /// [`ObjectStore::put_object`] of the same output may leave the tombstone as it is. A
    /// reader that finds the tombstone knows that every reader finished with the output, so
    /// its own read is a duplicate (a redelivered or resent walk). Returns the producers
    /// whose last reader this call recorded, so that a copy kept outside the store (the
    /// proxy's memory or shared directory) can be discarded too; each producer is returned
    /// by one call only.
    fn release_outputs(
        &self,
        job: &JobId,
        releases: &[Release],
    ) -> impl Future<Output = StoreResult<Vec<TaskIdx>>> + Send;
}

/// A reader done with a producer's large output ([`ObjectStore::release_outputs`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Release {
    pub producer: TaskIdx,
    pub reader: TaskIdx,
    /// How many distinct readers the producer's output has (its children in the DAG).
    pub readers: u32,
}

/// Whether a fetched object is the tombstone of a released output.
pub fn is_tombstone(object: &[u8]) -> bool {
    object.is_empty()
}

/// The id of one queue entry: a Redis stream id `ms-seq`, or a counter in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DeliveryId {
    pub ms: u64,
    pub seq: u64,
}

impl fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// An invocation handed to one consumer, pending until acked.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    pub id: DeliveryId,
    /// How many times this entry has been delivered (1 on first delivery).
    pub deliveries: u32,
    pub invocation: Invocation,
}

/// The invocation queue: at-least-once delivery with ack, per executor class.
pub trait InvocationQueue: Send + Sync + 'static {
    fn push(
        &self,
        class: ExecClass,
        invocations: Vec<Invocation>,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Takes up to `max` entries for `consumer`, waiting up to `wait` for the first. An
    /// implementation may hand out fewer than `max` to share a backlog among consumers.
    fn pull(
        &self,
        class: ExecClass,
        consumer: &ExecutorId,
        max: usize,
        wait: Duration,
    ) -> impl Future<Output = StoreResult<Vec<Delivery>>> + Send;
    /// Acknowledges entries: they are done and never delivered again. Unknown ids are
    /// ignored.
    fn ack(
        &self,
        class: ExecClass,
        ids: &[DeliveryId],
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Refreshes `consumer`'s claim on entries it is still working on.
    fn touch(
        &self,
        class: ExecClass,
        consumer: &ExecutorId,
        ids: &[DeliveryId],
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Whether any invocation of `job` is in the queue of any class: waiting, or delivered
    /// and not yet acked. For the engine's stall detection; a scan, never on the hot path.
    fn job_queued(&self, job: &JobId) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Claims for `consumer` up to `max` entries pending longer than `min_idle` (their
    /// holder is presumed dead).
    fn reclaim(
        &self,
        class: ExecClass,
        consumer: &ExecutorId,
        min_idle: Duration,
        max: usize,
    ) -> impl Future<Output = StoreResult<Vec<Delivery>>> + Send;
}

/// A batch of events read from a job's stream, and the cursor to read on from.
#[derive(Clone, Debug, PartialEq)]
pub struct EventBatch {
    pub events: Vec<Event>,
    pub next: u64,
}

/// Durable per-job event streams.
pub trait EventLog: Send + Sync + 'static {
    fn append_events(
        &self,
        job: &JobId,
        events: Vec<Event>,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Events from cursor `from` on (0 is the start), at most `max`, waiting up to `wait`
    /// when there are none yet.
    fn read_events(
        &self,
        job: &JobId,
        from: u64,
        max: usize,
        wait: Duration,
    ) -> impl Future<Output = StoreResult<EventBatch>> + Send;
}

/// Profiles kept across jobs, keyed by DAG name.
pub trait ProfileStore: Send + Sync + 'static {
    /// Merges `delta` into the stored profile of `dag_name`.
    fn record_profile(
        &self,
        dag_name: &str,
        delta: DagProfile,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    fn get_profile(&self, dag_name: &str) -> impl Future<Output = StoreResult<DagProfile>> + Send;
}

/// What an executor registers about itself (`docs/architecture.md`): enough for the engine to admit
/// jobs (functions, GPUs) and size batches (slots).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutorInfo {
    pub id: ExecutorId,
    pub class: ExecClass,
    pub slots: u32,
    pub functions: Vec<String>,
    /// Device descriptions, e.g. `"cpu"` or `"cuda:0 NVIDIA H100 80GB"`.
    pub devices: Vec<String>,
    /// Where it runs (host name and pid), for operators.
    pub host: String,
    pub version: String,
    /// Per device (GPU executors): warm-cache and bundling counters, refreshed with every
    /// heartbeat.
    #[serde(default)]
    pub device_stats: Vec<DeviceStats>,
}

/// One device's counters since its executor started, as last reported.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceStats {
    /// The device's label (`cuda:0 …`, `simulated:sim-gpu`).
    pub device: String,
    /// Calls that found their function's warm state resident.
    pub hits: u64,
    /// Calls that ran `init` (cold starts).
    pub misses: u64,
    pub evictions: u64,
    /// Time spent in `init`, µs.
    pub cold_start_us: u64,
    pub used_bytes: u64,
    pub budget_bytes: u64,
    /// `call_batch` launches, and the calls they served.
    pub launches: u64,
    pub bundled_calls: u64,
}

/// An output written with a level's arrivals ([`FanInStore::put_outputs_and_arrive`]).
#[derive(Clone, Debug, PartialEq)]
pub struct LevelWrite {
    pub task: TaskIdx,
    pub payload: Payload,
    /// Positions, in the same call's arrivals, of every fan-in child that reads this output
    /// (one arrival each). When each of them completes its child, nobody else will read
    /// the output: this parent is the completer of every reader and continues with the
    /// output in hand (a re-run of it is told "completes" again, and holds it again), so a
    /// store may leave it unstored. Empty: some reader arrives elsewhere (through the
    /// proxy), and the output is always stored.
    pub readers: Vec<u32>,
}

impl LevelWrite {
    /// An output that is always stored.
    pub fn always(task: TaskIdx, payload: Payload) -> Self {
        LevelWrite {
            task,
            payload,
            readers: Vec::new(),
        }
    }
}

/// Executor membership with heartbeats.
pub trait MembershipStore: Send + Sync + 'static {
    /// Registers or refreshes `info`; it lapses unless refreshed within `ttl`.
    fn heartbeat(
        &self,
        info: &ExecutorInfo,
        ttl: Duration,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Removes an executor at once (clean shutdown).
    fn deregister(&self, id: &ExecutorId) -> impl Future<Output = StoreResult<()>> + Send;
    /// Executors whose last heartbeat has not lapsed, sorted by id.
    fn executors(&self) -> impl Future<Output = StoreResult<Vec<ExecutorInfo>>> + Send;
}

/// Everything an engine, executor or proxy needs from the store.
pub trait Store:
    JobStore
    + FanInStore
    + OutputStore
    + ObjectStore
    + InvocationQueue
    + EventLog
    + ProfileStore
    + MembershipStore
{
}

impl<T> Store for T where
    T: JobStore
        + FanInStore
        + OutputStore
        + ObjectStore
        + InvocationQueue
        + EventLog
        + ProfileStore
        + MembershipStore
{
}
