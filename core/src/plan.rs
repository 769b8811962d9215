//! What the engine stores once per job and executors fetch and cache: the validated DAG, its
//! static schedule, and the data-passing settings.

use crate::dag::Dag;
use crate::ids::JobId;
use crate::schedule::Schedule;
use serde::{Deserialize, Serialize};

/// Data-passing and batching settings fixed at submission (`docs/architecture.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobConfig {
    /// P: outputs up to this many bytes travel inline; larger ones go to the object store.
    pub inline_limit: usize,
    /// F: fan-outs of at least this out-degree are handed to the proxy.
    pub proxy_fanout: u32,
    /// Most start tasks in one invocation.
    pub max_starts_per_invocation: usize,
    /// The number of executor slots the work is spread over (for batching).
    pub slots_hint: usize,
    /// Record a span per task (for timelines); off by default, and free when off.
    #[serde(default)]
    pub trace: bool,
    /// Report guard outcomes as soon as they are known (`Event::Branches`), for the
    /// engine's warm-up re-planning; set when the job has a warm-up mode.
    #[serde(default)]
    pub report_branches: bool,
    /// Keep every large intermediate output until the job ends. Off by default: an output
    /// stored as an object is freed once all its readers are done with it (job outputs
    /// always stay).
    #[serde(default)]
    pub keep_intermediates: bool,
}

impl Default for JobConfig {
    fn default() -> Self {
        JobConfig {
            inline_limit: 64 * 1024,
            proxy_fanout: crate::schedule::DEFAULT_PROXY_FANOUT,
            max_starts_per_invocation: MAX_STARTS_PER_INVOCATION,
            slots_hint: 2,
            trace: false,
            report_branches: false,
            keep_intermediates: false,
        }
    }
}

/// The default most start tasks in one invocation. 1,024 rather than 256 made the cluster
/// benchmarks about 30% faster per task (tree N=65,536: 17–25 → 11–13 µs; fan-out
/// W=100,000: 16–21 → 13–14 µs; 2 executors × 1 slot), with a quarter of the queue and
/// per-invocation costs.
pub const MAX_STARTS_PER_INVOCATION: usize = 1024;

/// At most this many bytes of inputs the sender had in hand per invocation: every start
/// of a fan-out carries its parent's output, so a large inline output means fewer starts.
pub const MAX_INPUT_BYTES_PER_INVOCATION: usize = 4 << 20;

impl JobConfig {
    /// How many start tasks to put in each invocation when `n` are ready at once: enough
    /// invocations for every slot to get several (load balance), few enough that queue costs
    /// are amortized.
    pub fn chunk_size(&self, n: usize) -> usize {
        self.split(n, 4)
    }

    /// How many sources to put in each invocation when `n` are to start: four times finer
    /// than [`JobConfig::chunk_size`]. A source starts new work, and an invocation's starts
    /// all run before its slot takes more from the queue, so coarse source invocations make
    /// many outputs before anything consumes them (a GEMM's tiles, several layers at once,
    /// whose products then wait for sums). Finer ones let work that continues a started
    /// walk, which a queue delivers first, run between them.
    pub fn source_chunk_size(&self, n: usize) -> usize {
        self.split(n, 16)
    }

    /// Starts per invocation for `n` starts in about `per_slot` invocations per slot, at
    /// most [`JobConfig::max_starts_per_invocation`].
    fn split(&self, n: usize, per_slot: usize) -> usize {
        let per = n.div_ceil(self.slots_hint.max(1) * per_slot);
        per.clamp(1, self.max_starts_per_invocation.max(1))
    }

    /// As [`JobConfig::chunk_size`], for starts that each carry `input_bytes` of inputs:
    /// at most [`MAX_INPUT_BYTES_PER_INVOCATION`] of them per invocation.
    pub fn chunk_size_carrying(&self, n: usize, input_bytes: usize) -> usize {
        let by_bytes = (MAX_INPUT_BYTES_PER_INVOCATION / input_bytes.max(1)).max(1);
        self.chunk_size(n).min(by_bytes)
    }
}

/// A job's plan. It is stored without its schedule, which depends only on the DAG and
/// [`JobConfig::proxy_fanout`] and is computed again on load (milliseconds for a million
/// tasks), so a plan's `schedule` must be `schedule(&dag, config.proxy_fanout)`.
#[derive(Clone, Debug)]
pub struct JobPlan {
    pub job: JobId,
    pub dag: Dag,
    pub schedule: Schedule,
    pub config: JobConfig,
}

#[derive(Serialize)]
struct StoredPlanRef<'a> {
    job: &'a JobId,
    dag: &'a Dag,
    config: &'a JobConfig,
}

#[derive(Deserialize)]
struct StoredPlan {
    job: JobId,
    dag: Dag,
    config: JobConfig,
}

impl Serialize for JobPlan {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        StoredPlanRef {
            job: &self.job,
            dag: &self.dag,
            config: &self.config,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for JobPlan {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let p = StoredPlan::deserialize(d)?;
        let schedule = crate::schedule::schedule(&p.dag, p.config.proxy_fanout);
        Ok(JobPlan {
            job: p.job,
            dag: p.dag,
            schedule,
            config: p.config,
        })
    }
}

impl JobPlan {
    pub fn to_msgpack(&self) -> Vec<u8> {
        rmp_serde::to_vec(self).unwrap_or_default()
    }

    pub fn from_msgpack(bytes: &[u8]) -> Result<JobPlan, rmp_serde::decode::Error> {
        crate::msgpack::from_slice(bytes)
    }
}
