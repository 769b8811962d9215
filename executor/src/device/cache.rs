//! The per-device warm cache: warm states (compiled modules, resident weights) per function
//! name on one device, shared by every slot on that device.
//!
//! - **Size and budget.** Each entry has the byte size its `init` reported
//!   ([`InitLog::resident`]). The budget defaults to the device's
//!   [`memory_budget`](super::Device::memory_budget) (NVML free memory on a GPU, the
//!   configured memory on the simulated device) and can be overridden. Inserting past the
//!   budget evicts least-recently-used entries first; an entry larger than the whole budget
//!   is returned to its caller but not kept (`uncached`).
//! - **One init at a time per function.** When several slots miss the same function at
//!   once, one runs `init` and the others wait for it (bounded by [`INIT_WAIT_LIMIT`]),
//!   then share the result: they report a cold start with `joined = true`, since they
//!   waited on the critical path too, but the counters see one miss.
//! - **Only device-bound states are kept.** A function whose `init` neither reported
//!   resident bytes nor called [`InitLog::bind_to_device`] has per-slot state; the cache
//!   hands it back without keeping it.
//! - **Counters**: hits, misses, joins, evictions, cold-start time in total and per stage;
//!   [`DeviceCache::snapshot`] copies them for metrics and events.
//!
//! Eviction drops the cache's reference. The device memory is freed when the last call
//! holding the state finishes (states are `Arc`s).

use super::{Device, InitLog, Stage};
use crate::functions::{FnError, WarmState};
use crate::run::panic_message;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The longest a slot waits for another slot's `init` of the same function.
pub const INIT_WAIT_LIMIT: Duration = Duration::from_secs(600);

/// What a cold start cost, when one happened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ColdStart {
    /// Whether this call waited for an `init` (its own, or one already in progress).
    pub happened: bool,
    /// How long it waited.
    pub init: Duration,
    /// The stages `init` reported, in order (empty when it reported none, or when
    /// `joined`).
    pub stages: Vec<Stage>,
    /// The call found another slot's `init` of the same function in progress and waited
    /// for it instead of running its own.
    pub joined: bool,
}

/// The counters of one device's cache, at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheSnapshot {
    /// The device's label (`"cuda:…"`, `"simulated:sim-gpu"`).
    pub device: String,
    pub budget_bytes: u64,
    pub used_bytes: u64,
    pub entries: u64,
    /// Calls that found the state warm.
    pub hits: u64,
    /// Calls that ran `init`.
    pub misses: u64,
    /// Calls that waited for another slot's `init`.
    pub joins: u64,
    /// `init` calls that failed (error or panic).
    pub init_failures: u64,
    pub evictions: u64,
    pub evicted_bytes: u64,
    /// States larger than the whole budget, returned but not kept.
    pub uncached: u64,
    /// Time spent in `init`, over all misses, µs.
    pub cold_start_us: u64,
    /// The same, per reported stage (`context`, `compile`, `module_load`, …), µs.
    pub stage_us: BTreeMap<String, u64>,
}

struct Entry {
    state: Option<WarmState>,
    bytes: u64,
    last_used: u64,
    /// Loaded by a warm-up hint (when), and no task has used it yet.
    hinted: Option<Instant>,
}

struct Inner {
    budget: u64,
    used: u64,
    clock: u64,
    entries: HashMap<String, Entry>,
    loading: HashSet<String>,
    counters: CacheSnapshot,
}

/// One device's warm cache. Thread-safe: share it (`Arc`) between the device's slots.
pub struct DeviceCache {
    inner: Mutex<Inner>,
    loaded: Condvar,
}

impl std::fmt::Debug for DeviceCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.snapshot();
        f.debug_struct("DeviceCache")
            .field("device", &s.device)
            .field("used_bytes", &s.used_bytes)
            .field("budget_bytes", &s.budget_bytes)
            .field("entries", &s.entries)
            .finish()
    }
}

impl DeviceCache {
    /// A cache for `device` with its default budget, or `budget` when given.
    pub fn for_device(device: &dyn Device, budget: Option<u64>) -> Self {
        Self::new(
            device.label(),
            budget.unwrap_or_else(|| device.memory_budget()),
        )
    }

    /// A cache labelled `device` holding at most `budget` bytes.
    pub fn new(device: impl Into<String>, budget: u64) -> Self {
        DeviceCache {
            inner: Mutex::new(Inner {
                budget,
                used: 0,
                clock: 0,
                entries: HashMap::new(),
                loading: HashSet::new(),
                counters: CacheSnapshot {
                    device: device.into(),
                    ..CacheSnapshot::default()
                },
            }),
            loaded: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The warm state of `key`, running `init` first when it is not cached. `init` gets
    /// the log to report its stages and resident bytes to.
    pub fn get_or_init<F>(
        &self,
        key: &str,
        init: F,
    ) -> Result<(Option<WarmState>, ColdStart), FnError>
    where
        F: FnOnce(&InitLog) -> Result<Option<WarmState>, FnError>,
    {
        let t0 = Instant::now();
        let mut joined = false;
        let mut g = self.lock();
        loop {
            if let Some(state) = g.touch(key) {
                if joined {
                    g.counters.joins += 1;
                } else {
                    g.counters.hits += 1;
                }
                let cold = ColdStart {
                    happened: joined,
                    init: if joined { t0.elapsed() } else { Duration::ZERO },
                    stages: Vec::new(),
                    joined,
                };
                return Ok((state, cold));
            }
            if !g.loading.contains(key) {
                break;
            }
            // Another slot is running this init: wait for it, then look again.
            joined = true;
            let left = INIT_WAIT_LIMIT.saturating_sub(t0.elapsed());
            if left.is_zero() {
                return Err(FnError::new(format!(
                    "init of {key} on {}: gave up after waiting {} s for another slot's init",
                    g.counters.device,
                    INIT_WAIT_LIMIT.as_secs()
                )));
            }
            g = self
                .loaded
                .wait_timeout(g, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        g.loading.insert(key.to_owned());
        drop(g);

        let log = InitLog::new();
        let t_init = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| init(&log))).unwrap_or_else(|p| {
            Err(FnError::new(format!(
                "init panicked: {}",
                panic_message(&*p)
            )))
        });
        let took = t_init.elapsed();
        let record = log.record();

        let mut g = self.lock();
        g.loading.remove(key);
        self.loaded.notify_all();
        let state = match result {
            Ok(state) => state,
            Err(e) => {
                g.counters.init_failures += 1;
                return Err(e);
            }
        };
        g.counters.misses += 1;
        g.counters.cold_start_us += took.as_micros() as u64;
        for s in &record.stages {
            *g.counters.stage_us.entry(s.name.clone()).or_default() +=
                s.duration.as_micros() as u64;
        }
        if record.device_bound {
            g.insert(key, state.clone(), record.resident_bytes);
        }
        Ok((
            state,
            ColdStart {
                happened: true,
                init: t0.elapsed(),
                stages: record.stages,
                joined,
            },
        ))
    }

    /// Whether `key` is cached.
    pub fn contains(&self, key: &str) -> bool {
        self.lock().entries.contains_key(key)
    }

    /// Marks `key` as loaded by a warm-up hint, now (see [`DeviceCache::take_hinted`]).
    pub fn mark_hinted(&self, key: &str) {
        if let Some(e) = self.lock().entries.get_mut(key) {
            e.hinted = Some(Instant::now());
        }
    }

    /// If `key` was loaded by a hint and this is its first use since: how long it was held
    /// warm, unused (once; `None` afterwards, and for states no hint loaded).
    pub fn take_hinted(&self, key: &str) -> Option<Duration> {
        self.lock()
            .entries
            .get_mut(key)
            .and_then(|e| e.hinted.take())
            .map(|t| t.elapsed())
    }

    /// For a hinted warm state that expired or was released: drops `key` if a hint loaded
    /// it and no task has used it since, and returns how long it was held warm for nothing.
    /// `None`: kept (used, or not loaded by a hint) or not cached.
    pub fn drop_unused_hint(&self, key: &str) -> Option<Duration> {
        let mut g = self.lock();
        let held = g.entries.get(key)?.hinted?.elapsed();
        let e = g.entries.remove(key)?;
        g.used -= e.bytes;
        g.counters.evictions += 1;
        g.counters.evicted_bytes += e.bytes;
        Some(held)
    }

    /// Drops `key`; returns the bytes it held (`None` if it was not cached).
    pub fn evict(&self, key: &str) -> Option<u64> {
        let mut g = self.lock();
        let e = g.entries.remove(key)?;
        g.used -= e.bytes;
        g.counters.evictions += 1;
        g.counters.evicted_bytes += e.bytes;
        Some(e.bytes)
    }

    /// Changes the budget, evicting least-recently-used entries until the rest fit.
    pub fn set_budget(&self, bytes: u64) {
        let mut g = self.lock();
        g.budget = bytes;
        while g.used > g.budget && g.evict_lru(None) {}
    }

    /// The cached keys, least recently used first.
    pub fn keys_lru(&self) -> Vec<String> {
        let g = self.lock();
        let mut keys: Vec<(u64, String)> = g
            .entries
            .iter()
            .map(|(k, e)| (e.last_used, k.clone()))
            .collect();
        keys.sort();
        keys.into_iter().map(|(_, k)| k).collect()
    }

    /// A copy of the counters.
    pub fn snapshot(&self) -> CacheSnapshot {
        let g = self.lock();
        let mut s = g.counters.clone();
        s.budget_bytes = g.budget;
        s.used_bytes = g.used;
        s.entries = g.entries.len() as u64;
        s
    }
}

impl Inner {
    /// The state of `key` if cached, marked as just used.
    fn touch(&mut self, key: &str) -> Option<Option<WarmState>> {
        self.clock += 1;
        let now = self.clock;
        let e = self.entries.get_mut(key)?;
        e.last_used = now;
        Some(e.state.clone())
    }

    /// Evicts the least recently used entry other than `keep`; false when there is none.
    fn evict_lru(&mut self, keep: Option<&str>) -> bool {
        let victim = self
            .entries
            .iter()
            .filter(|(k, _)| Some(k.as_str()) != keep)
            .min_by_key(|(_, e)| e.last_used)
            .map(|(k, _)| k.clone());
        let Some(k) = victim else {
            return false;
        };
        if let Some(e) = self.entries.remove(&k) {
            self.used -= e.bytes;
            self.counters.evictions += 1;
            self.counters.evicted_bytes += e.bytes;
            tracing::debug!(device = %self.counters.device, function = %k, bytes = e.bytes, "evicted warm state");
        }
        true
    }

    fn insert(&mut self, key: &str, state: Option<WarmState>, bytes: u64) {
        if bytes > self.budget {
            self.counters.uncached += 1;
            tracing::warn!(device = %self.counters.device, function = %key, bytes, budget = self.budget, "warm state larger than the device's cache budget: not kept");
            return;
        }
        if let Some(old) = self.entries.remove(key) {
            self.used -= old.bytes;
        }
        while self.used.saturating_add(bytes) > self.budget && self.evict_lru(Some(key)) {}
        self.clock += 1;
        self.used += bytes;
        self.entries.insert(
            key.to_owned(),
            Entry {
                state,
                bytes,
                last_used: self.clock,
                hinted: None,
            },
        );
    }
}

#[cfg(test)]
mod tests;
