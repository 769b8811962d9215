//! A deterministic discrete-event simulation of GPU slots under a [`GpuPolicy`]: virtual
//! time in microseconds, no threads, no clock. Same seed, same numbers.
//!
//! - **Trace** ([`generate`]): per model an independent Poisson process (exponential
//!   inter-arrival times at the model's rate), merged in time order and cut after
//!   `arrivals` invocations. Each invocation's actual exec time is the model's mean times a
//!   uniform factor in `1 ± exec_jitter`; cold starts take exactly the model's cold start.
//!   Randomness comes from a seeded splitmix64.
//! - **Slots**: `slots` GPU slots, each running one invocation at a time, each with a warm
//!   cache of models bounded by `slot_mem` bytes. Running a model that is not resident is a
//!   cold start: least-recently-used models are evicted until it fits, then it loads
//!   (`cold_start`) before it executes. A resident model is a cache hit.
//! - **Dispatch**: at every event (arrival, completion, or a policy's `retry_at`), the free
//!   slots are offered the queue in order of how long they have been free (longest first,
//!   then by index) until a full pass assigns nothing. Completions are handled before
//!   arrivals at the same instant.
//! - **Metrics** ([`SimReport`]): queue wait = dispatch − arrival (the cold start is not
//!   wait; it is in the response time); response = finish − arrival; slowdown = response /
//!   actual exec time. Fairness is Jain's index over the per-function **mean slowdown**:
//!   in an open system every stable policy serves each function at its arrival rate, so
//!   per-function throughput says little, while slowdown normalises away the models'
//!   different exec times and shows whom a policy makes wait.

use super::policy::{GpuFn, GpuPolicy, Micros, Pending, Pick, SchedConfig, SlotView, scheduler};

pub use rukong_core::rng::SplitMix64;

/// One GPU model (function) of the workload.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    pub name: String,
    /// Time to load it onto a slot where it is not resident.
    pub cold_start: Micros,
    /// Mean warm exec time (what the profile tells the policies).
    pub exec: Micros,
    /// Bytes it takes in a slot's warm cache.
    pub mem: u64,
    /// Poisson arrival rate, invocations per second.
    pub rate_per_s: f64,
}

/// The trace to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceSpec {
    pub seed: u64,
    /// Total invocations (all models).
    pub arrivals: usize,
    pub models: Vec<ModelSpec>,
    /// Actual exec = mean × uniform(1 − j, 1 + j); 0 for constant exec times.
    pub exec_jitter: f64,
}

/// The simulated executor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimConfig {
    pub slots: usize,
    /// Warm-cache budget per slot, bytes.
    pub slot_mem: u64,
    pub sched: SchedConfig,
}

/// Bad simulation input.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SimError {
    #[error("the workload has no models")]
    NoModels,
    #[error("model `{model}`: arrival rate must be a positive finite number, got {rate}")]
    BadRate { model: String, rate: f64 },
    #[error("exec jitter must be in [0, 1), got {0}")]
    BadJitter(f64),
    #[error("there must be at least one GPU slot")]
    NoSlots,
    #[error("model `{model}` needs {mem} bytes but a slot holds only {slot_mem}")]
    ModelTooBig {
        model: String,
        mem: u64,
        slot_mem: u64,
    },
}

/// One invocation of the trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrival {
    pub id: usize,
    pub func: GpuFn,
    pub at: Micros,
    /// Actual exec time (the policies only see the model's mean).
    pub exec: Micros,
}

/// The two-model workload of the issue: A is a big model (2 s cold start, 50 ms exec), B a
/// small one (300 ms, 5 ms); each slot's cache holds only one of them. A arrives at 4/s and
/// B at 40/s, so warm they need 0.2 + 0.2 of a slot out of 2.
pub fn two_model_default(seed: u64) -> (TraceSpec, SimConfig) {
    let gib = 1u64 << 30;
    let models = vec![
        ModelSpec {
            name: "A".into(),
            cold_start: 2_000_000,
            exec: 50_000,
            mem: 10 * gib,
            rate_per_s: 4.0,
        },
        ModelSpec {
            name: "B".into(),
            cold_start: 300_000,
            exec: 5_000,
            mem: 6 * gib,
            rate_per_s: 40.0,
        },
    ];
    let trace = TraceSpec {
        seed,
        arrivals: 4_000,
        models,
        exec_jitter: 0.2,
    };
    let sim = SimConfig {
        slots: 2,
        slot_mem: 12 * gib,
        sched: SchedConfig::default(),
    };
    (trace, sim)
}

/// The seeded trace: merged Poisson arrivals, sorted by time (ties by model index).
pub fn generate(spec: &TraceSpec) -> Result<Vec<Arrival>, SimError> {
    if spec.models.is_empty() {
        return Err(SimError::NoModels);
    }
    if !(0.0..1.0).contains(&spec.exec_jitter) {
        return Err(SimError::BadJitter(spec.exec_jitter));
    }
    for m in &spec.models {
        if !(m.rate_per_s.is_finite() && m.rate_per_s > 0.0) {
            return Err(SimError::BadRate {
                model: m.name.clone(),
                rate: m.rate_per_s,
            });
        }
    }
    let mut rng = SplitMix64::new(spec.seed);
    let mut next: Vec<Micros> = spec
        .models
        .iter()
        .map(|m| rng.exp_micros(m.rate_per_s))
        .collect();
    let mut out = Vec::with_capacity(spec.arrivals);
    while out.len() < spec.arrivals {
        let (k, &at) = next
            .iter()
            .enumerate()
            .min_by_key(|(k, t)| (**t, *k))
            .expect("models is non-empty");
        let m = &spec.models[k];
        let factor = 1.0 + spec.exec_jitter * (2.0 * rng.next_f64() - 1.0);
        let exec = ((m.exec as f64) * factor).round().max(1.0) as Micros;
        out.push(Arrival {
            id: out.len(),
            func: GpuFn(k as u32),
            at,
            exec,
        });
        next[k] = at.saturating_add(rng.exp_micros(m.rate_per_s));
    }
    Ok(out)
}

/// What happened to one invocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Served {
    pub id: usize,
    pub func: GpuFn,
    pub slot: usize,
    pub arrival: Micros,
    pub start: Micros,
    pub finish: Micros,
    pub exec: Micros,
    pub cold: bool,
}

/// Metrics for one function, or for all of them.
#[derive(Clone, Debug, PartialEq)]
pub struct Stats {
    pub name: String,
    pub served: usize,
    pub cold_starts: usize,
    /// Served invocations whose model was already resident, over all served.
    pub hit_rate: f64,
    pub mean_wait_ms: f64,
    pub p95_wait_ms: f64,
    pub mean_response_ms: f64,
    pub mean_slowdown: f64,
}

/// The result of one simulation.
#[derive(Clone, Debug, PartialEq)]
pub struct SimReport {
    pub policy: GpuPolicy,
    pub arrivals: usize,
    /// Invocations still queued when nothing could happen any more (0 for a sound policy).
    pub unserved: usize,
    pub overall: Stats,
    pub per_fn: Vec<Stats>,
    /// Last completion, seconds of virtual time.
    pub makespan_s: f64,
    /// Served invocations per second of makespan.
    pub throughput_per_s: f64,
    /// Jain's index over per-function mean slowdown, in [1/n, 1] (1 = equal slowdowns).
    pub jain_slowdown: f64,
    /// Seconds slots spent loading models.
    pub load_s: f64,
    /// Every served invocation, in dispatch order.
    pub log: Vec<Served>,
}

/// Jain's fairness index (Σx)² / (n·Σx²); 1 for an empty or all-zero input.
pub fn jain(xs: &[f64]) -> f64 {
    let sum: f64 = xs.iter().sum();
    let sq: f64 = xs.iter().map(|x| x * x).sum();
    if xs.is_empty() || sq == 0.0 {
        1.0
    } else {
        sum * sum / (xs.len() as f64 * sq)
    }
}

/// Nearest-rank percentile of unsorted values (0 when empty).
pub fn percentile(values: &[Micros], q: f64) -> Micros {
    if values.is_empty() {
        return 0;
    }
    let mut v = values.to_vec();
    v.sort_unstable();
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

struct Slot {
    busy: Option<(Micros, GpuFn, Micros)>, // (finish, func, gpu time)
    free_since: Micros,
    /// Resident models with their last-use tick (LRU).
    cache: Vec<(GpuFn, u64)>,
}

/// Runs `trace` (from [`generate`], models indexed by `GpuFn`) on `config.slots` slots
/// under `policy`.
pub fn simulate(
    policy: GpuPolicy,
    trace: &[Arrival],
    models: &[ModelSpec],
    config: &SimConfig,
) -> Result<SimReport, SimError> {
    if config.slots == 0 {
        return Err(SimError::NoSlots);
    }
    if models.is_empty() {
        return Err(SimError::NoModels);
    }
    if let Some(m) = models.iter().find(|m| m.mem > config.slot_mem) {
        return Err(SimError::ModelTooBig {
            model: m.name.clone(),
            mem: m.mem,
            slot_mem: config.slot_mem,
        });
    }
    let model = |f: GpuFn| &models[f.0 as usize % models.len()];
    let mut sched = scheduler(policy, &config.sched);
    let mut slots: Vec<Slot> = (0..config.slots)
        .map(|_| Slot {
            busy: None,
            free_since: 0,
            cache: Vec::new(),
        })
        .collect();
    let mut queue: Vec<Pending> = Vec::new();
    let mut queued: Vec<&Arrival> = Vec::new(); // parallel to `queue`
    let mut log: Vec<Served> = Vec::with_capacity(trace.len());
    let mut next = 0;
    let mut retry: Option<Micros> = None;
    let mut tick = 0u64;
    let mut now: Micros = 0;
    loop {
        let t_arrival = trace.get(next).map(|a| a.at);
        let t_finish = slots.iter().filter_map(|s| s.busy.map(|b| b.0)).min();
        let Some(t) = [t_arrival, t_finish, retry].into_iter().flatten().min() else {
            break;
        };
        now = now.max(t);
        for (i, s) in slots.iter_mut().enumerate() {
            if let Some((finish, func, gpu)) = s.busy
                && finish <= now
            {
                s.busy = None;
                s.free_since = finish;
                sched.on_finish(finish, i, func, gpu);
            }
        }
        while let Some(a) = trace.get(next).filter(|a| a.at <= now) {
            let m = model(a.func);
            queue.push(Pending {
                func: a.func,
                arrival: a.at,
                exec: m.exec,
                cold_start: m.cold_start,
            });
            queued.push(a);
            next += 1;
        }
        retry = None;
        loop {
            let mut free: Vec<usize> = (0..slots.len())
                .filter(|&i| slots[i].busy.is_none())
                .collect();
            free.sort_by_key(|&i| (slots[i].free_since, i));
            let mut assigned = false;
            for i in free {
                if queue.is_empty() {
                    break;
                }
                let warm: Vec<GpuFn> = slots[i].cache.iter().map(|c| c.0).collect();
                let view = SlotView {
                    slot: i,
                    warm: &warm,
                    free_since: slots[i].free_since,
                };
                match sched.pick(now, &queue, &view) {
                    Pick::Run(k) if k < queue.len() => {
                        queue.remove(k);
                        let a = queued.remove(k);
                        tick += 1;
                        let cold = load(&mut slots[i].cache, a.func, tick, models, config);
                        let loading = if cold { model(a.func).cold_start } else { 0 };
                        let gpu = loading + a.exec;
                        slots[i].busy = Some((now + gpu, a.func, gpu));
                        log.push(Served {
                            id: a.id,
                            func: a.func,
                            slot: i,
                            arrival: a.at,
                            start: now,
                            finish: now + gpu,
                            exec: a.exec,
                            cold,
                        });
                        assigned = true;
                    }
                    Pick::Run(_) => {} // out of range: treated as idle
                    Pick::Idle { retry_at } => {
                        if let Some(r) = retry_at.filter(|&r| r > now) {
                            retry = Some(retry.map_or(r, |x| x.min(r)));
                        }
                    }
                }
            }
            if !assigned {
                break;
            }
        }
    }
    Ok(report(policy, trace.len(), queue.len(), log, models))
}

/// Makes `func` resident in `cache`, evicting LRU models to fit; true if it was a miss.
fn load(
    cache: &mut Vec<(GpuFn, u64)>,
    func: GpuFn,
    tick: u64,
    models: &[ModelSpec],
    config: &SimConfig,
) -> bool {
    if let Some(entry) = cache.iter_mut().find(|c| c.0 == func) {
        entry.1 = tick;
        return false;
    }
    let mem = |f: GpuFn| models[f.0 as usize % models.len()].mem;
    let need = mem(func);
    while cache.iter().map(|c| mem(c.0)).sum::<u64>() + need > config.slot_mem {
        let Some(lru) = cache.iter().enumerate().min_by_key(|(_, c)| c.1) else {
            break;
        };
        let idx = lru.0;
        cache.remove(idx);
    }
    cache.push((func, tick));
    true
}

fn stats(name: &str, served: &[&Served]) -> Stats {
    let n = served.len();
    let mean = |f: &dyn Fn(&Served) -> f64| {
        if n == 0 {
            0.0
        } else {
            served.iter().map(|s| f(s)).sum::<f64>() / n as f64
        }
    };
    let waits: Vec<Micros> = served.iter().map(|s| s.start - s.arrival).collect();
    let cold = served.iter().filter(|s| s.cold).count();
    Stats {
        name: name.to_owned(),
        served: n,
        cold_starts: cold,
        hit_rate: if n == 0 {
            0.0
        } else {
            (n - cold) as f64 / n as f64
        },
        mean_wait_ms: mean(&|s| (s.start - s.arrival) as f64 / 1e3),
        p95_wait_ms: percentile(&waits, 0.95) as f64 / 1e3,
        mean_response_ms: mean(&|s| (s.finish - s.arrival) as f64 / 1e3),
        mean_slowdown: mean(&|s| (s.finish - s.arrival) as f64 / s.exec.max(1) as f64),
    }
}

fn report(
    policy: GpuPolicy,
    arrivals: usize,
    unserved: usize,
    log: Vec<Served>,
    models: &[ModelSpec],
) -> SimReport {
    let all: Vec<&Served> = log.iter().collect();
    let per_fn: Vec<Stats> = models
        .iter()
        .enumerate()
        .map(|(k, m)| {
            let mine: Vec<&Served> = log.iter().filter(|s| s.func.0 as usize == k).collect();
            stats(&m.name, &mine)
        })
        .collect();
    let makespan = log.iter().map(|s| s.finish).max().unwrap_or(0);
    let makespan_s = makespan as f64 / 1e6;
    let load_s = log
        .iter()
        .filter(|s| s.cold)
        .map(|s| (s.finish - s.start - s.exec) as f64 / 1e6)
        .sum();
    let active: Vec<f64> = per_fn
        .iter()
        .filter(|s| s.served > 0)
        .map(|s| s.mean_slowdown)
        .collect();
    SimReport {
        policy,
        arrivals,
        unserved,
        overall: stats("all", &all),
        makespan_s,
        throughput_per_s: if makespan_s > 0.0 {
            log.len() as f64 / makespan_s
        } else {
            0.0
        },
        jain_slowdown: jain(&active),
        per_fn,
        load_s,
        log,
    }
}

/// Generates the trace once and runs every policy on it.
pub fn run_all(trace: &TraceSpec, config: &SimConfig) -> Result<Vec<SimReport>, SimError> {
    let arrivals = generate(trace)?;
    GpuPolicy::ALL
        .iter()
        .map(|&p| simulate(p, &arrivals, &trace.models, config))
        .collect()
}
