//! The launch gate of one device: bundles ready to launch wait here, and the executor's
//! GPU scheduling policy ([`GpuPolicy`]) decides which goes next whenever the device is
//! free. One launch runs at a time (a GPU runs one batched kernel stream here), so the
//! policy is the order of the device's work: `fifo` takes the oldest, `srtf` the shortest
//! expected (exec time, plus a cold start if the function is not the one resident),
//! `exclusive` keeps the device on its owner function and hands it over only after the
//! owner has been idle for the hand-over time, and `mlfq` favours functions that used the
//! least GPU time lately.
//!
//! Expected times come from the bundler's launch profile (the mean latency per call of
//! the function so far), and the cold start from the last `init` seen on the device.

use crate::gpu_sched::{
    GpuFn, GpuPolicy, Micros, Pending, Pick, SchedConfig, Scheduler, SlotView, scheduler,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

struct Waiting {
    pending: Pending,
    go: oneshot::Sender<()>,
}

struct Inner {
    sched: Box<dyn Scheduler>,
    running: bool,
    waiting: Vec<Waiting>,
    ids: HashMap<String, GpuFn>,
    /// The function whose state the device last ran (what `srtf` and `exclusive` see as
    /// warm).
    resident: Vec<GpuFn>,
    free_since: Micros,
    retry_armed: bool,
}

/// The gate of one device; shared (`Arc`) by the device's bundler.
pub struct LaunchGate {
    policy: GpuPolicy,
    epoch: Instant,
    inner: Mutex<Inner>,
}

/// Held while a launch runs; passing it to [`LaunchGate::release`] frees the device.
#[must_use]
pub struct Permit {
    func: GpuFn,
    started: Instant,
}

impl LaunchGate {
    pub fn new(policy: GpuPolicy) -> Arc<Self> {
        Arc::new(LaunchGate {
            policy,
            epoch: Instant::now(),
            inner: Mutex::new(Inner {
                sched: scheduler(policy, &SchedConfig::default()),
                running: false,
                waiting: Vec::new(),
                ids: HashMap::new(),
                resident: Vec::new(),
                free_since: 0,
                retry_armed: false,
            }),
        })
    }

    pub fn policy(&self) -> GpuPolicy {
        self.policy
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now(&self) -> Micros {
        self.epoch.elapsed().as_micros() as Micros
    }

    /// Waits until the policy gives `name`'s launch the device. `exec` and `cold_start`
    /// are the expected times of this launch.
    pub async fn acquire(
        self: &Arc<Self>,
        name: &str,
        exec: Duration,
        cold_start: Duration,
    ) -> Permit {
        let (tx, rx) = oneshot::channel();
        let func = {
            let mut inner = self.lock();
            let next = GpuFn(inner.ids.len() as u32);
            let func = *inner.ids.entry(name.to_owned()).or_insert(next);
            inner.waiting.push(Waiting {
                pending: Pending {
                    func,
                    arrival: self.now(),
                    exec: exec.as_micros() as Micros,
                    cold_start: cold_start.as_micros() as Micros,
                },
                go: tx,
            });
            self.dispatch(&mut inner);
            func
        };
        // The sender is only dropped after `go` was sent, or with the gate itself.
        let _ = rx.await;
        Permit {
            func,
            started: Instant::now(),
        }
    }

    /// The launch ended: the device is free for the next one.
    pub fn release(self: &Arc<Self>, permit: Permit) {
        let mut inner = self.lock();
        let now = self.now();
        let used = permit.started.elapsed().as_micros() as Micros;
        inner.sched.on_finish(now, 0, permit.func, used);
        inner.running = false;
        inner.resident = vec![permit.func];
        inner.free_since = now;
        self.dispatch(&mut inner);
    }

    /// Gives the free device to the launch the policy picks, if any.
    fn dispatch(self: &Arc<Self>, inner: &mut Inner) {
        if inner.running || inner.waiting.is_empty() {
            return;
        }
        let queue: Vec<Pending> = inner.waiting.iter().map(|w| w.pending).collect();
        let view = SlotView {
            slot: 0,
            warm: &inner.resident,
            free_since: inner.free_since,
        };
        let now = self.now();
        match inner.sched.pick(now, &queue, &view) {
            Pick::Run(i) if i < inner.waiting.len() => {
                let w = inner.waiting.swap_remove(i);
                inner.running = true;
                let _ = w.go.send(());
            }
            Pick::Run(_) => {
                // A policy bug: never strand work; run the oldest.
                let w = inner.waiting.remove(0);
                inner.running = true;
                let _ = w.go.send(());
            }
            Pick::Idle { retry_at } => {
                // A time-based rule (exclusive's hand-over) holds the device: ask again
                // then. Without a time, a later arrival or release asks again.
                if let Some(at) = retry_at
                    && !inner.retry_armed
                {
                    inner.retry_armed = true;
                    let gate = self.clone();
                    let wait = Duration::from_micros(at.saturating_sub(now).max(100));
                    tokio::spawn(async move {
                        tokio::time::sleep(wait).await;
                        let mut inner = gate.lock();
                        inner.retry_armed = false;
                        gate.dispatch(&mut inner);
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// Holds the device with `first`, queues `queued` in order, then records the order in
    /// which the policy lets them run.
    fn order(policy: GpuPolicy, first: &str, queued: &[(&str, u64)]) -> Vec<String> {
        rt().block_on(async {
            let gate = LaunchGate::new(policy);
            let p = gate
                .acquire(first, Duration::from_millis(1), Duration::ZERO)
                .await;
            let ran = Arc::new(Mutex::new(Vec::new()));
            let mut tasks = Vec::new();
            for &(name, exec_ms) in queued {
                let gate = gate.clone();
                let ran = ran.clone();
                let name = name.to_owned();
                tasks.push(tokio::spawn(async move {
                    let p = gate
                        .acquire(
                            &name,
                            Duration::from_millis(exec_ms),
                            Duration::from_millis(200),
                        )
                        .await;
                    ran.lock().unwrap().push(name);
                    gate.release(p);
                }));
                tokio::task::yield_now().await;
            }
            gate.release(p);
            for t in tasks {
                t.await.unwrap();
            }
            ran.lock().unwrap().clone()
        })
    }

    #[test]
    fn fifo_runs_in_arrival_order() {
        let got = order(GpuPolicy::Fifo, "a", &[("b", 50), ("c", 1), ("a", 5)]);
        assert_eq!(got, ["b", "c", "a"]);
    }

    #[test]
    fn srtf_runs_the_shortest_expected_first_counting_cold_starts() {
        // After `a`, only `a` is resident: b and c pay 200 ms of cold start.
        let got = order(GpuPolicy::Srtf, "a", &[("b", 50), ("c", 1), ("a", 5)]);
        assert_eq!(got, ["a", "c", "b"]);
    }

    #[test]
    fn every_policy_serves_every_launch() {
        for p in GpuPolicy::ALL {
            let mut got = order(p, "a", &[("b", 3), ("a", 2), ("c", 1), ("b", 1)]);
            got.sort();
            assert_eq!(got, ["a", "b", "b", "c"], "{p:?}");
        }
    }
}
