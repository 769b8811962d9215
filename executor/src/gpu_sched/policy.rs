//! The GPU scheduling policies: the config switch ([`GpuPolicy`]) and the pure decision
//! interface ([`Scheduler`]) that a GPU slot asks, each time it is free, which queued
//! invocation to run next. Plain data in, an index out: no clock, no device, no actor.
//!
//! Times are [`Micros`] on any monotonic clock the caller picks (the simulator uses virtual
//! time from 0; a real slot can use microseconds since the executor started).

use std::fmt;
use std::str::FromStr;

/// Microseconds on the caller's monotonic clock.
pub type Micros = u64;

/// A GPU function (a "model"), interned by the caller to a small number: the policies
/// compare functions on every decision, so they never see names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GpuFn(pub u32);

impl fmt::Display for GpuFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fn#{}", self.0)
    }
}

/// Which policy orders a GPU slot's queue: the one config switch. Written in configs and on
/// command lines by its lowercase name ([`GpuPolicy::as_str`], [`FromStr`]); `balance` is
/// accepted for [`GpuPolicy::Fifo`] (serde: lowercase names, same alias; `FromStr` also
/// ignores case).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum GpuPolicy {
    /// Oldest first, on whichever slot is free (KaaS "balance"). The baseline.
    #[default]
    #[serde(alias = "balance")]
    Fifo,
    /// Function-affine slots: each slot is owned by one function and serves only its work,
    /// except for the hand-over and rebalancing rules (module docs). Fewest cold starts.
    Exclusive,
    /// Shortest expected remaining time first: expected exec time plus the cold start when
    /// the function is not warm on the asking slot.
    Srtf,
    /// Multi-level feedback queue over functions by GPU time consumed in the current
    /// window; everyone is boosted back to the top at each window's end.
    Mlfq,
}

impl GpuPolicy {
    /// Every policy, in table order.
    pub const ALL: [GpuPolicy; 4] = [
        GpuPolicy::Fifo,
        GpuPolicy::Exclusive,
        GpuPolicy::Srtf,
        GpuPolicy::Mlfq,
    ];

    /// The config name.
    pub fn as_str(self) -> &'static str {
        match self {
            GpuPolicy::Fifo => "fifo",
            GpuPolicy::Exclusive => "exclusive",
            GpuPolicy::Srtf => "srtf",
            GpuPolicy::Mlfq => "mlfq",
        }
    }
}

impl fmt::Display for GpuPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A policy name that is not one of ours.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown GPU scheduling policy `{given}`: expected one of fifo (alias: balance), exclusive, srtf, mlfq"
)]
pub struct UnknownPolicy {
    pub given: String,
}

impl FromStr for GpuPolicy {
    type Err = UnknownPolicy;

    /// Case-insensitive; surrounding blanks are ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fifo" | "balance" => Ok(GpuPolicy::Fifo),
            "exclusive" => Ok(GpuPolicy::Exclusive),
            "srtf" => Ok(GpuPolicy::Srtf),
            "mlfq" | "mlfqs" => Ok(GpuPolicy::Mlfq),
            _ => Err(UnknownPolicy {
                given: s.to_owned(),
            }),
        }
    }
}

/// One queued GPU invocation, as a policy sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending {
    pub func: GpuFn,
    /// When it was queued.
    pub arrival: Micros,
    /// Expected warm execution time (profile).
    pub exec: Micros,
    /// Expected time to make the function warm on a slot where it is not (profile: the
    /// remaining warm-up ladder).
    pub cold_start: Micros,
}

/// The free slot that asks for work.
#[derive(Clone, Copy, Debug)]
pub struct SlotView<'a> {
    /// Its index among the executor's GPU slots (stable; [`Exclusive`] keys owners by it).
    pub slot: usize,
    /// Functions resident in its warm cache (any order).
    pub warm: &'a [GpuFn],
    /// When it finished its last invocation (0 if it never ran one).
    pub free_since: Micros,
}

impl SlotView<'_> {
    pub fn is_warm(&self, func: GpuFn) -> bool {
        self.warm.contains(&func)
    }
}

/// A policy's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pick {
    /// Run `queue[i]` on the asking slot now.
    Run(usize),
    /// Leave the slot idle. Ask again when the queue or the slots change, and also at
    /// `retry_at` when given (a time-based rule, such as Exclusive's hand-over, may then
    /// decide otherwise).
    Idle { retry_at: Option<Micros> },
}

/// A GPU scheduling policy. One instance serves all the GPU slots of an executor (the
/// Exclusive owner table spans slots), so a real executor keeps it behind its GPU frontend
/// (or a mutex) and calls:
/// - [`Scheduler::pick`] whenever a slot is free and its queue is non-empty (after an
///   arrival, after a completion, and at a returned `retry_at`);
/// - [`Scheduler::on_finish`] when an invocation ends, with the GPU time it held the slot
///   (warm-up included).
pub trait Scheduler: Send + fmt::Debug {
    fn policy(&self) -> GpuPolicy;
    /// Which queued invocation the free `slot` should run at `now`. `queue` is in any order
    /// (ties are broken by arrival, then by index). Never returns an out-of-range index.
    fn pick(&mut self, now: Micros, queue: &[Pending], slot: &SlotView<'_>) -> Pick;
    /// An invocation of `func` that held `slot` for `gpu_time` ended at `now`.
    fn on_finish(&mut self, _now: Micros, _slot: usize, _func: GpuFn, _gpu_time: Micros) {}
}

/// The policies' knobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchedConfig {
    /// Exclusive: how long a slot whose owner has nothing queued stays reserved for it
    /// while other functions wait, before it is handed over.
    pub handover: Micros,
    /// MLFQ: number of levels (at least 1).
    pub mlfq_levels: u32,
    /// MLFQ: GPU time a function may use at the top level within a window; each level
    /// below allows twice as much as the one above (thresholds q, 3q, 7q, …).
    pub mlfq_quantum: Micros,
    /// MLFQ: window length; at each window's end every function's consumption is reset
    /// (the starvation-avoiding boost).
    pub mlfq_boost_every: Micros,
}

impl Default for SchedConfig {
    fn default() -> Self {
        SchedConfig {
            handover: 1_000_000,
            mlfq_levels: 3,
            mlfq_quantum: 250_000,
            mlfq_boost_every: 5_000_000,
        }
    }
}

/// A fresh scheduler for `policy`.
pub fn scheduler(policy: GpuPolicy, config: &SchedConfig) -> Box<dyn Scheduler> {
    match policy {
        GpuPolicy::Fifo => Box::new(Fifo),
        GpuPolicy::Exclusive => Box::new(Exclusive::new(config.handover)),
        GpuPolicy::Srtf => Box::new(Srtf),
        GpuPolicy::Mlfq => Box::new(Mlfq::new(
            config.mlfq_levels,
            config.mlfq_quantum,
            config.mlfq_boost_every,
        )),
    }
}

/// The index of the queue entry with the smallest `key`, ties broken by arrival then index.
fn argmin_by<K: Ord>(queue: &[Pending], mut key: impl FnMut(&Pending) -> K) -> Option<usize> {
    queue
        .iter()
        .enumerate()
        .min_by_key(|(i, p)| (key(p), p.arrival, *i))
        .map(|(i, _)| i)
}

fn run_or_idle(i: Option<usize>) -> Pick {
    i.map_or(Pick::Idle { retry_at: None }, Pick::Run)
}

/// Oldest first on any free slot.
#[derive(Debug, Default)]
pub struct Fifo;

impl Scheduler for Fifo {
    fn policy(&self) -> GpuPolicy {
        GpuPolicy::Fifo
    }

    fn pick(&mut self, _now: Micros, queue: &[Pending], _slot: &SlotView<'_>) -> Pick {
        run_or_idle(argmin_by(queue, |_| ()))
    }
}

/// Shortest expected remaining time first, priced on the asking slot.
#[derive(Debug, Default)]
pub struct Srtf;

impl Srtf {
    /// What `p` would cost on `slot`: exec, plus the cold start unless warm there.
    pub fn cost(p: &Pending, slot: &SlotView<'_>) -> Micros {
        let cold = if slot.is_warm(p.func) {
            0
        } else {
            p.cold_start
        };
        p.exec.saturating_add(cold)
    }
}

impl Scheduler for Srtf {
    fn policy(&self) -> GpuPolicy {
        GpuPolicy::Srtf
    }

    fn pick(&mut self, _now: Micros, queue: &[Pending], slot: &SlotView<'_>) -> Pick {
        run_or_idle(argmin_by(queue, |p| Srtf::cost(p, slot)))
    }
}

/// Function-affine slots (see the module docs for the rules).
#[derive(Debug)]
pub struct Exclusive {
    handover: Micros,
    /// Owner per slot index; `None` = unowned.
    owners: Vec<Option<GpuFn>>,
}

/// Per-function summary of the queue.
struct Demand {
    func: GpuFn,
    /// Index of its oldest queued invocation.
    oldest: usize,
    oldest_arrival: Micros,
    /// Sum of expected exec times queued.
    work: u128,
}

impl Exclusive {
    pub fn new(handover: Micros) -> Self {
        Exclusive {
            handover,
            owners: Vec::new(),
        }
    }

    /// Who owns `slot` now (for logs and tests).
    pub fn owner(&self, slot: usize) -> Option<GpuFn> {
        self.owners.get(slot).copied().flatten()
    }

    fn owned(&self, func: GpuFn) -> usize {
        self.owners.iter().filter(|o| **o == Some(func)).count()
    }

    fn demands(queue: &[Pending]) -> Vec<Demand> {
        let mut out: Vec<Demand> = Vec::new();
        for (i, p) in queue.iter().enumerate() {
            match out.iter_mut().find(|d| d.func == p.func) {
                Some(d) => {
                    d.work += u128::from(p.exec.max(1));
                    if (p.arrival, i) < (d.oldest_arrival, d.oldest) {
                        d.oldest = i;
                        d.oldest_arrival = p.arrival;
                    }
                }
                None => out.push(Demand {
                    func: p.func,
                    oldest: i,
                    oldest_arrival: p.arrival,
                    work: u128::from(p.exec.max(1)),
                }),
            }
        }
        out
    }

    /// The function a slot should be given: functions that own no slot first; then the
    /// largest queued work per owned slot (demand share); then warm on this slot; then the
    /// oldest queued invocation.
    fn claimant<'d>(
        &self,
        demands: &'d [Demand],
        slot: &SlotView<'_>,
        eligible: impl Fn(&Demand) -> bool,
    ) -> Option<&'d Demand> {
        let mut best: Option<(&Demand, usize)> = None;
        for d in demands.iter().filter(|d| eligible(d)) {
            let owned = self.owned(d.func);
            let better = match best {
                None => true,
                Some((b, b_owned)) => {
                    let (d_none, b_none) = (owned == 0, b_owned == 0);
                    // work/(owned+1) compared without division.
                    let d_share = d.work * (b_owned as u128 + 1);
                    let b_share = b.work * (owned as u128 + 1);
                    let (d_warm, b_warm) = (slot.is_warm(d.func), slot.is_warm(b.func));
                    (d_none, d_share, d_warm, std::cmp::Reverse(d.oldest_arrival))
                        > (b_none, b_share, b_warm, std::cmp::Reverse(b.oldest_arrival))
                }
            };
            if better {
                best = Some((d, owned));
            }
        }
        best.map(|(d, _)| d)
    }
}

impl Scheduler for Exclusive {
    fn policy(&self) -> GpuPolicy {
        GpuPolicy::Exclusive
    }

    fn pick(&mut self, now: Micros, queue: &[Pending], slot: &SlotView<'_>) -> Pick {
        if self.owners.len() <= slot.slot {
            self.owners.resize(slot.slot + 1, None);
        }
        let demands = Self::demands(queue);
        if demands.is_empty() {
            return Pick::Idle { retry_at: None };
        }
        let me = slot.slot;
        let Some(owner) = self.owners[me] else {
            // Unowned: claimed by demand.
            let d = self.claimant(&demands, slot, |_| true);
            self.owners[me] = d.map(|d| d.func);
            return run_or_idle(d.map(|d| d.oldest));
        };
        // Rebalance: a queued function holding at least two slots fewer than the owner
        // takes this slot over (KaaS Exclusive: the client with fewer workers takes one
        // from the client with the most).
        let owner_slots = self.owned(owner);
        let starving = self.claimant(&demands, slot, |d| {
            d.func != owner && self.owned(d.func) + 1 < owner_slots
        });
        if let Some(d) = starving {
            self.owners[me] = Some(d.func);
            return Pick::Run(d.oldest);
        }
        if let Some(d) = demands.iter().find(|d| d.func == owner) {
            return Pick::Run(d.oldest);
        }
        // The owner has nothing queued but others wait: hold the slot for the owner until
        // `handover` after the slot went free, then give it to the best claimant.
        let release_at = slot.free_since.saturating_add(self.handover);
        if now < release_at {
            return Pick::Idle {
                retry_at: Some(release_at),
            };
        }
        self.owners[me] = None;
        let d = self.claimant(&demands, slot, |_| true);
        self.owners[me] = d.map(|d| d.func);
        run_or_idle(d.map(|d| d.oldest))
    }
}

/// Multi-level feedback queue over functions by consumed GPU time.
#[derive(Debug)]
pub struct Mlfq {
    levels: u32,
    quantum: Micros,
    boost_every: Micros,
    window_start: Micros,
    /// GPU time consumed per function in the current window.
    consumed: Vec<(GpuFn, Micros)>,
}

impl Mlfq {
    pub fn new(levels: u32, quantum: Micros, boost_every: Micros) -> Self {
        Mlfq {
            levels: levels.max(1),
            quantum: quantum.max(1),
            boost_every,
            window_start: 0,
            consumed: Vec::new(),
        }
    }

    /// GPU time `func` used in the current window.
    pub fn consumed(&self, func: GpuFn) -> Micros {
        self.consumed
            .iter()
            .find(|(f, _)| *f == func)
            .map_or(0, |(_, c)| *c)
    }

    /// The level of `func` (0 = top): level k once it has consumed (2^k − 1)·quantum.
    pub fn level(&self, func: GpuFn) -> u32 {
        let c = self.consumed(func);
        let mut level = 0;
        let mut threshold = self.quantum;
        while level + 1 < self.levels && c >= threshold {
            level += 1;
            threshold = threshold.saturating_mul(2).saturating_add(self.quantum);
        }
        level
    }

    /// Reset everyone to the top at window boundaries.
    fn boost(&mut self, now: Micros) {
        if self.boost_every == 0 {
            return;
        }
        if now >= self.window_start.saturating_add(self.boost_every) {
            let windows = (now - self.window_start) / self.boost_every;
            self.window_start += windows * self.boost_every;
            self.consumed.clear();
        }
    }
}

impl Scheduler for Mlfq {
    fn policy(&self) -> GpuPolicy {
        GpuPolicy::Mlfq
    }

    fn pick(&mut self, now: Micros, queue: &[Pending], _slot: &SlotView<'_>) -> Pick {
        self.boost(now);
        run_or_idle(argmin_by(queue, |p| self.level(p.func)))
    }

    fn on_finish(&mut self, now: Micros, _slot: usize, func: GpuFn, gpu_time: Micros) {
        self.boost(now);
        match self.consumed.iter_mut().find(|(f, _)| *f == func) {
            Some((_, c)) => *c = c.saturating_add(gpu_time),
            None => self.consumed.push((func, gpu_time)),
        }
    }
}
