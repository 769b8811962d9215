//! Wire messages between engine, executors and proxy, and the per-job events. Named fields
//! only; ids are newtypes. These are serialized to MessagePack in cluster mode and passed by
//! value in embedded mode.

use crate::ids::{JobId, TaskId, TaskIdx};
use crate::value::Value;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The version of the wire protocol; peers check it at the handshake and never retry a
/// mismatch.
pub const PROTOCOL_VERSION: u32 = 3;

/// Key of a large object in the object store (through the KV-store proxy). Job-scoped keys
/// look like `rk:{<job>}:obj:<task>`; the braces are a Redis Cluster hash tag.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ObjectKey(String);

impl ObjectKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }
    /// The key under which task `task`'s large output is stored.
    pub fn for_output(job: &JobId, task: TaskIdx) -> Self {
        Self(format!("{}obj:{}", job_prefix(job), task.0))
    }
    /// Whether this is [`ObjectKey::for_output`]`(job, task)`, without building that key.
    pub fn is_output_of(&self, job: &JobId, task: TaskIdx) -> bool {
        self.0
            .strip_prefix("rk:{")
            .and_then(|k| k.strip_prefix(job.as_str()))
            .and_then(|k| k.strip_prefix("}:obj:"))
            .is_some_and(|n| {
                // Exactly the decimal form `for_output` writes: digits, no leading zero.
                n.bytes().all(|b| b.is_ascii_digit())
                    && (n.len() == 1 || !n.starts_with('0'))
                    && n.parse::<u32>() == Ok(task.0)
            })
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The job a key belongs to and the rest of the key (`rk:{<job>}:<rest>`), or `None`
    /// for a key of no job.
    pub fn owner(&self) -> Option<(&str, &str)> {
        key_owner(&self.0)
    }
    /// Whether the key belongs to `job` (and is freed with it).
    pub fn belongs_to(&self, job: &JobId) -> bool {
        self.0.starts_with(&job_prefix(job))
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The job a store key belongs to and the rest of the key (`rk:{<job>}:<rest>`).
pub fn key_owner(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix("rk:{")?;
    let end = rest.find("}:")?;
    (end > 0).then(|| (&rest[..end], &rest[end + 2..]))
}

/// The prefix of every key that belongs to a job: `rk:{<job>}:`.
pub fn job_prefix(job: &JobId) -> String {
    format!("rk:{{{job}}}:")
}

/// A task output as it travels: inline, or the key of a large object; or the marker of a
/// skipped task (`docs/conditional-branches.md`), which has no output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Payload {
    Inline(Value),
    Object(ObjectKey),
    /// The task was skipped (its guard failed, or its dependencies were skipped). Written
    /// as its "output" for fan-in children to read, and carried to children it hands on,
    /// so that every reader can tell a skipped dependency from a completed one.
    Skipped,
}

impl Payload {
    pub fn is_skipped(&self) -> bool {
        matches!(self, Payload::Skipped)
    }

    /// About how many bytes it takes as it travels.
    pub fn approx_size(&self) -> usize {
        match self {
            Payload::Inline(v) => v.approx_size(),
            Payload::Object(k) => k.as_str().len(),
            Payload::Skipped => 1,
        }
    }
}

/// An input that an invocation brings along, so the receiver need not fetch it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KnownInput {
    pub from: TaskIdx,
    pub payload: Payload,
}

/// Where to start walking: the task, with the inputs the sender already had.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Start {
    pub task: TaskIdx,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<KnownInput>,
}

/// A request to walk the job's schedule from one or more start tasks (a batch of sources or
/// siblings amortizes queue round trips).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Invocation {
    pub job: JobId,
    pub starts: Vec<Start>,
    /// A warm-up hint instead of work: the functions whose warm state the slot should
    /// build now (their `init`), before a task needs them. Empty for normal invocations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warm: Vec<String>,
    /// With `warm`: drop that warm state again if no task used it within this many ms
    /// (0: keep it, like any warm state).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub warm_ttl_ms: u64,
    /// A release of earlier hints (a re-plan left their tasks off the predicted path): drop
    /// these functions' warm state unless a task has used it since it was warmed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub release: Vec<String>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl Invocation {
    /// Work: walk from `starts`.
    pub fn new(job: JobId, starts: Vec<Start>) -> Self {
        Invocation {
            job,
            starts,
            warm: Vec::new(),
            warm_ttl_ms: 0,
            release: Vec::new(),
        }
    }

    /// Whether this is a warm-up hint or release rather than work.
    pub fn is_hint(&self) -> bool {
        !self.warm.is_empty() || !self.release.is_empty()
    }
}

/// What one invocation did, appended as a progress event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalkStats {
    /// Tasks completed.
    pub tasks: u64,
    /// Function `init`s run on the critical path.
    pub cold_starts: u32,
    pub init_us: u64,
    /// Large outputs put in the object store.
    pub objects_put: u32,
    pub object_bytes: u64,
    /// Invocations sent to other slots.
    pub invocations_sent: u32,
    /// Fan-outs handed to the proxy.
    pub proxy_fanouts: u32,
    /// Calls on a device slot that found their function's warm state resident.
    #[serde(default)]
    pub warm_hits: u32,
    /// GPU tasks that ran as part of a bundle (one `call_batch` for several invocations).
    #[serde(default)]
    pub bundled: u32,
    /// Tasks skipped (`docs/conditional-branches.md`): a guard failed, or their dependencies were
    /// skipped. They are not counted in `tasks`.
    #[serde(default)]
    pub skipped: u64,
    /// Warm-up hints the engine sent for this job.
    #[serde(default)]
    pub hints_issued: u32,
    /// Hints that found their function cold and ran its `init` ahead of its task.
    #[serde(default)]
    pub hints_warmed: u32,
    /// Hints that found their function already warm (a no-op).
    #[serde(default)]
    pub hints_noop: u32,
    /// Hinted warm states that a task used before their TTL.
    #[serde(default)]
    pub hints_used: u32,
    /// Hinted warm states dropped unused at their TTL, or released by a re-plan.
    #[serde(default)]
    pub hints_wasted: u32,
    /// Planned hints a re-plan cancelled before they were sent.
    #[serde(default)]
    pub hints_cancelled: u32,
    /// Re-plans: branch outcomes that contradicted the predicted path.
    #[serde(default)]
    pub replans: u32,
    /// `init` time that warm-up hints ran ahead of tasks, µs (tasks' own cold starts are
    /// `init_us`: the cold-start delay, C_d).
    #[serde(default)]
    pub hint_init_us: u64,
    /// C_r: warm time that hinted states were held before their first use, or until they
    /// were dropped unused, µs (device executors).
    #[serde(default)]
    pub warm_idle_us: u64,
    /// Times the engine found the job stalled (nothing moving, nothing queued) and replayed
    /// it from its sources.
    #[serde(default)]
    pub redrives: u32,
    /// Tasks a walk did not run again because another walk had already run them and every
    /// reader released their input (a redelivered or resent invocation).
    #[serde(default)]
    pub duplicates: u32,
    /// Children kept on an idle slot of the same executor instead of being sent through the
    /// queue.
    #[serde(default)]
    pub kept_local: u32,
}

impl WalkStats {
    pub fn merge(&mut self, o: &WalkStats) {
        self.tasks += o.tasks;
        self.cold_starts += o.cold_starts;
        self.init_us += o.init_us;
        self.objects_put += o.objects_put;
        self.duplicates += o.duplicates;
        self.kept_local += o.kept_local;
        self.object_bytes += o.object_bytes;
        self.invocations_sent += o.invocations_sent;
        self.proxy_fanouts += o.proxy_fanouts;
        self.warm_hits += o.warm_hits;
        self.bundled += o.bundled;
        self.hints_issued += o.hints_issued;
        self.hints_warmed += o.hints_warmed;
        self.hints_noop += o.hints_noop;
        self.hints_used += o.hints_used;
        self.hints_wasted += o.hints_wasted;
        self.hints_cancelled += o.hints_cancelled;
        self.replans += o.replans;
        self.hint_init_us += o.hint_init_us;
        self.warm_idle_us += o.warm_idle_us;
        self.skipped += o.skipped;
        self.redrives += o.redrives;
    }
}

/// What a [`Span`] records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SpanKind {
    /// The task's function ran.
    #[default]
    Run,
    /// The task's output was read back from the object store (through the proxy) by a
    /// consumer on this slot.
    Get,
    /// The task's output was put in the object store (through the proxy).
    Put,
}

/// One task's run, or one transfer of its output, on one slot, for timelines (recorded only
/// when the job asks for a trace).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub task: TaskIdx,
    /// Start, in microseconds since the Unix epoch (wall clock, so that spans from several
    /// processes on one host line up).
    pub start_us: u64,
    pub dur_us: u64,
    /// The function's `init` ran first (a cold start); `init_us` is part of `dur_us`.
    pub init_us: u64,
    #[serde(default)]
    pub kind: SpanKind,
    /// Bytes moved (transfers only).
    #[serde(default)]
    pub bytes: u64,
}

/// A per-job event (`docs/architecture.md`). The stream is durable and read by cursor; the engine
/// and clients never rely on a notification alone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// A task finished that is a sink or a requested output. `payload` is present for
    /// requested outputs only. Duplicates (after a retried invocation) carry equal values.
    TaskResult {
        task: TaskIdx,
        sink: bool,
        payload: Option<Payload>,
    },
    /// A task was skipped (`docs/conditional-branches.md`) that is a sink or a requested output: it
    /// counts as finished, and a requested output is reported as skipped. Duplicates are harmless.
    TaskSkipped { task: TaskIdx, sink: bool },
    /// A task failed for good (after its retries).
    TaskFailed {
        task: TaskIdx,
        id: TaskId,
        attempts: u32,
        error: String,
    },
    /// One invocation's work, for progress and stats.
    Progress(WalkStats),
    /// Guards evaluated (`docs/conditional-branches.md`): `(guarded task, whether it passed)`, so
    /// that the engine can re-plan warm-ups when a branch goes against the prediction.
    Branches { outcomes: Vec<(TaskIdx, bool)> },
    /// The spans one slot ran (traced jobs only).
    Trace { slot: String, spans: Vec<Span> },
}

/// Where a job stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobState {
    Running,
    Succeeded,
    Failed { task: TaskId, error: String },
    Cancelled,
}

impl JobState {
    pub fn is_finished(&self) -> bool {
        !matches!(self, JobState::Running)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_output_key_is_recognised_exactly() {
        let job = JobId::new("j1");
        let key = ObjectKey::for_output(&job, TaskIdx(42));
        assert!(key.is_output_of(&job, TaskIdx(42)));
        assert!(!key.is_output_of(&job, TaskIdx(4)));
        assert!(!key.is_output_of(&JobId::new("j2"), TaskIdx(42)));
        for other in [
            "rk:{j1}:obj:042",
            "rk:{j1}:obj:+42",
            "rk:{j1}:obj:42x",
            "rk:{j1}:attempt:42",
        ] {
            assert!(
                !ObjectKey::new(other).is_output_of(&job, TaskIdx(42)),
                "{other}"
            );
        }
    }
}
