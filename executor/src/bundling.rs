//! Bundling on a device (`docs/warmup.md`, WiseFuse): the slots that share one device hand their
//! calls of one function to a [`Bundler`], which runs them as one `call_batch`.
//!
//! A device has several slots (lanes), each walking its own invocation, all on the device's
//! threads. When a walk reaches a GPU task, it gives the inputs to the bundler and waits:
//! - the first call of a function opens a bundle and waits at most the linger time;
//! - a call that fills the bundle (size `b`) runs it at once;
//! - otherwise the opener runs whatever has joined when the linger time is up.
//!
//! Each caller gets its own result back and its walk goes on exactly as if it had run
//! alone: the outputs, their order and every continuation are unchanged.
//!
//! `b` is per function: a fixed size, or `auto`, which first takes whatever joins within
//! the linger time (up to `max_size`), records the latency of every launch by its size,
//! and once every profiled size (1, 2, 4, …) has been seen picks the best one with
//! [`bundle::choose`] (the U-shaped curve: per-item time falls with the batch, then rises
//! once the device is saturated).
//!
//! With a [`LaunchGate`], bundles ready at the same time take turns on the device in the
//! order of the executor's GPU scheduling policy.

use crate::device::bundle::{self, BundleConfig, BundleSize};
use crate::functions::{FnError, Function, WarmState};
use crate::gate::LaunchGate;
use rukong_core::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Launches of each size an `auto` bundle size needs before it trusts the profile.
const AUTO_SAMPLES: usize = 3;
/// Launches remembered per function (the most recent ones).
const PROFILE_KEEP: usize = 512;

type Reply = oneshot::Sender<Result<Value, FnError>>;

/// Per-function bundle settings, with a default for functions not named.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BundleSettings {
    pub default: BundleConfig,
    pub per_function: HashMap<String, BundleConfig>,
}

impl BundleSettings {
    pub fn for_function(&self, name: &str) -> &BundleConfig {
        self.per_function.get(name).unwrap_or(&self.default)
    }

    pub fn validate(&self) -> Result<(), String> {
        self.default.validate()?;
        for (name, c) in &self.per_function {
            c.validate().map_err(|e| format!("{name}: {e}"))?;
        }
        Ok(())
    }
}

/// Counters, for stats and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BundleCounters {
    /// `call_batch` launches.
    pub launches: u64,
    /// Calls served by them.
    pub calls: u64,
    /// The largest bundle so far.
    pub largest: u64,
}

struct Open {
    id: u64,
    func: Arc<dyn Function>,
    state: Option<WarmState>,
    items: Vec<(Vec<Value>, Reply)>,
}

#[derive(Default)]
struct Inner {
    open: HashMap<String, Open>,
    /// Per function: (bundle size, launch latency) of recent launches.
    profile: HashMap<String, Vec<(usize, Duration)>>,
    counters: BundleCounters,
}

/// The bundler of one device; shared by the device's slots.
pub struct Bundler {
    settings: BundleSettings,
    inner: Mutex<Inner>,
    next_id: AtomicU64,
    /// The device's launch gate: the GPU scheduling policy orders launches through it.
    gate: Option<Arc<LaunchGate>>,
}

impl Bundler {
    /// A bundler whose launches run as soon as they are ready (no launch gate).
    pub fn new(settings: BundleSettings) -> Self {
        Bundler {
            settings,
            inner: Mutex::new(Inner::default()),
            next_id: AtomicU64::new(1),
            gate: None,
        }
    }

    /// A bundler whose launches take turns on the device, in the order `gate`'s policy
    /// decides.
    pub fn with_gate(settings: BundleSettings, gate: Arc<LaunchGate>) -> Self {
        Bundler {
            gate: Some(gate),
            ..Self::new(settings)
        }
    }

    /// The expected latency of a launch of `n` calls of `name`: the mean per-call latency
    /// of its launches so far, times `n` (zero before the first).
    fn expected(&self, name: &str, n: usize) -> Duration {
        let inner = self.lock();
        let Some(p) = inner.profile.get(name).filter(|p| !p.is_empty()) else {
            return Duration::ZERO;
        };
        let calls: usize = p.iter().map(|(b, _)| *b).sum();
        let total: Duration = p.iter().map(|(_, d)| *d).sum();
        total / calls.max(1) as u32 * n as u32
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn counters(&self) -> BundleCounters {
        self.lock().counters
    }

    /// The recorded (size, latency) launches of `name`.
    pub fn profile(&self, name: &str) -> Vec<(usize, Duration)> {
        self.lock().profile.get(name).cloned().unwrap_or_default()
    }

    /// The bundle size `name` runs at now.
    pub fn size_for(&self, name: &str) -> usize {
        let inner = self.lock();
        self.size_locked(&inner, name)
    }

    fn size_locked(&self, inner: &Inner, name: &str) -> usize {
        let cfg = self.settings.for_function(name);
        match cfg.size {
            BundleSize::Fixed(b) => b.clamp(1, cfg.max_size.max(1)),
            BundleSize::Auto => {
                let profile = inner.profile.get(name).map_or(&[][..], Vec::as_slice);
                let explored = bundle::profile_sizes(cfg.max_size)
                    .iter()
                    .all(|&s| profile.iter().filter(|(b, _)| *b == s).count() >= AUTO_SAMPLES);
                if explored {
                    cfg.resolve(profile)
                } else {
                    cfg.max_size.max(1)
                }
            }
        }
    }

    /// Runs one call of `name` as part of a bundle; returns this call's own result.
    pub async fn call(
        &self,
        name: &str,
        func: &Arc<dyn Function>,
        state: Option<WarmState>,
        inputs: Vec<Value>,
    ) -> Result<Value, FnError> {
        let (tx, mut rx) = oneshot::channel();
        let linger = self.settings.for_function(name).linger;
        let (joined, full) = {
            let mut inner = self.lock();
            let size = self.size_locked(&inner, name);
            let open = inner.open.entry(name.to_owned()).or_insert_with(|| Open {
                id: self.next_id.fetch_add(1, Ordering::Relaxed),
                func: func.clone(),
                state: state.clone(),
                items: Vec::new(),
            });
            open.items.push((inputs, tx));
            let joined = open.id;
            let full = if open.items.len() >= size {
                inner.open.remove(name)
            } else {
                None
            };
            (joined, full)
        };
        if let Some(b) = full {
            self.launch(name, b).await;
            return rx.await.unwrap_or_else(|_| Err(dropped()));
        }
        // Wait for the bundle to fill (the caller that fills it launches it) or for the
        // linger time; then launch what joined, if nobody has yet. Any member may do it,
        // so a bundle never waits on one walk in particular.
        if let Ok(r) = tokio::time::timeout(linger, &mut rx).await {
            return r.unwrap_or_else(|_| Err(dropped()));
        }
        let mine = {
            let mut inner = self.lock();
            match inner.open.get(name) {
                Some(o) if o.id == joined => inner.open.remove(name),
                _ => None,
            }
        };
        if let Some(b) = mine {
            self.launch(name, b).await;
        }
        // Launched by this call or by another member: the reply is on its way.
        rx.await.unwrap_or_else(|_| Err(dropped()))
    }

    /// One `call_batch` for the whole bundle, off the slot's thread; each caller gets its
    /// own result.
    async fn launch(&self, name: &str, b: Open) {
        let (inputs, replies): (Vec<Vec<Value>>, Vec<Reply>) = b.items.into_iter().unzip();
        let n = inputs.len();
        let func = b.func;
        let state = b.state;
        let permit = match &self.gate {
            Some(g) => Some(
                g.acquire(name, self.expected(name, n), Duration::ZERO)
                    .await,
            ),
            None => None,
        };
        let t0 = Instant::now();
        let results = tokio::task::spawn_blocking(move || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                func.call_batch(state.as_ref(), inputs)
            }))
        })
        .await;
        let took = t0.elapsed();
        if let (Some(g), Some(p)) = (&self.gate, permit) {
            g.release(p);
        }
        let results: Vec<Result<Value, FnError>> = match results {
            Ok(Ok(r)) if r.len() == n => r,
            Ok(Ok(r)) => vec![
                Err(FnError::new(format!(
                    "{name}: call_batch returned {} results for a bundle of {n}",
                    r.len()
                )));
                n
            ],
            Ok(Err(p)) => {
                let msg = crate::run::panic_message(&*p);
                vec![Err(FnError::new(format!("{name} panicked: {msg}"))); n]
            }
            Err(e) => vec![Err(FnError::new(format!("{name}: bundle lost: {e}"))); n],
        };
        {
            let mut inner = self.lock();
            let c = &mut inner.counters;
            c.launches += 1;
            c.calls += n as u64;
            c.largest = c.largest.max(n as u64);
            let p = inner.profile.entry(name.to_owned()).or_default();
            if p.len() >= PROFILE_KEEP {
                p.remove(0);
            }
            p.push((n, took));
        }
        for (reply, r) in replies.into_iter().zip(results) {
            let _ = reply.send(r);
        }
    }
}

fn dropped() -> FnError {
    FnError::new("the bundle this call joined was dropped")
}

#[cfg(test)]
mod tests;
