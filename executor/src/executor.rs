//! Starting and stopping an executor: an actix system on its own thread, with the slots
//! spread over arbiters (one thread each).

use crate::bundling::Bundler;
use crate::config::ExecutorConfig;
use crate::device::DeviceCache;
use crate::functions::Registry;
use crate::pool::Pool;
use crate::run::WarmCache;
use crate::services::Services;
use crate::slot::{Slot, dispatch};
use crate::walk::SlotState;
use actix::prelude::*;
use rukong_core::ExecClass;
use rukong_core::proxy::Proxy;
use rukong_core::store::Store;
use rukong_core::store::{DeviceStats, ExecutorInfo};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::Notify;

/// A running executor. Dropping it stops the slots (after their current invocation) and
/// joins its threads.
pub struct ExecutorHandle {
    stop: Arc<AtomicBool>,
    stopping: Arc<Notify>,
    deregistered: Option<std::sync::mpsc::Receiver<()>>,
    system: Option<System>,
    thread: Option<JoinHandle<()>>,
    config: ExecutorConfig,
    /// How many slots wait for work now.
    waiting: Arc<dyn Fn() -> usize + Send + Sync>,
}

/// Starts `config.slots` slot actors pulling from `store`'s queue.
pub fn start<S: Store, P: Proxy>(
    config: ExecutorConfig,
    store: Arc<S>,
    proxy: Arc<P>,
    registry: Arc<Registry>,
) -> std::io::Result<ExecutorHandle> {
    let lanes = device_lanes(&config)?;
    let mut config = config;
    if !lanes.is_empty() {
        config.slots = lanes.len();
        config.threads = config.threads.clamp(1, config.slots);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = Arc::new(Notify::new());
    let devices = if config.class == ExecClass::Gpu {
        config
            .gpu
            .devices
            .iter()
            .map(|d| {
                let i = d.info();
                format!(
                    "{} {} MiB mig={}",
                    d.label(),
                    i.memory_bytes >> 20,
                    if i.mig { "on" } else { "off" }
                )
            })
            .collect()
    } else {
        vec!["cpu".into()]
    };
    let info = ExecutorInfo {
        id: config.id.clone(),
        class: config.class,
        slots: config.slots as u32,
        functions: registry.names().map(str::to_owned).collect(),
        devices,
        host: config.host.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
        device_stats: Vec::new(),
    };
    let mut per_device: Vec<(String, Arc<DeviceCache>, Arc<Bundler>)> = Vec::new();
    for (warm, bundler) in &lanes {
        if let Some(cache) = warm.device_cache()
            && !per_device.iter().any(|(_, c, _)| Arc::ptr_eq(c, cache))
        {
            let label = warm.device().map(|d| d.label()).unwrap_or_default();
            per_device.push((label, cache.clone(), bundler.clone()));
        }
    }
    let svc = Arc::new(Services {
        store,
        proxy,
        registry,
        config: config.clone(),
        pool: Pool::default(),
    });
    let probe = svc.clone();
    let waiting = Arc::new(move || probe.pool.waiting());
    let (tx, rx) = std::sync::mpsc::channel();
    let (dereg_tx, dereg_rx) = std::sync::mpsc::channel();
    let stop2 = stop.clone();
    let stopping2 = stopping.clone();
    let thread = std::thread::Builder::new()
        .name(format!("{}-system", config.id))
        .spawn(move || {
            let sys = System::new();
            sys.block_on(async move {
                let threads = svc.config.threads.clamp(1, svc.config.slots.max(1));
                let arbiters: Vec<Arbiter> = (0..threads).map(|_| Arbiter::new()).collect();
                let mut lanes = lanes.into_iter();
                for i in 0..svc.config.slots {
                    let svc = svc.clone();
                    let stop = stop2.clone();
                    let arb = arbiters[i % threads].handle();
                    let state = match lanes.next() {
                        Some((warm, bundler)) => SlotState::on_device(i, warm, bundler),
                        None => SlotState::new(i),
                    };
                    Slot::start_in_arbiter(&arb, move |_| Slot::new(svc, state, stop));
                }
                actix::spawn(dispatch(svc.clone(), stop2.clone()));
                actix::spawn(heartbeat(
                    svc.clone(),
                    info,
                    per_device,
                    stopping2,
                    dereg_tx,
                ));
                let _ = tx.send(System::current());
            });
            let _ = sys.run();
        })?;
    let system = rx
        .recv()
        .map_err(|_| std::io::Error::other("the executor's actor system did not start"))?;
    Ok(ExecutorHandle {
        stop,
        stopping,
        deregistered: Some(dereg_rx),
        system: Some(system),
        thread: Some(thread),
        config,
        waiting,
    })
}

/// A `gpu` executor's slots: `lanes` per device, sharing the device's warm cache and
/// bundler. Empty for a `cpu` executor; an error for a `gpu` one without a device.
#[allow(clippy::type_complexity)]
fn device_lanes(config: &ExecutorConfig) -> std::io::Result<Vec<(WarmCache, Arc<Bundler>)>> {
    if config.class != ExecClass::Gpu {
        return Ok(Vec::new());
    }
    let gpu = &config.gpu;
    if gpu.devices.is_empty() {
        return Err(std::io::Error::other(
            "a gpu executor needs a device: none was found (build with --features cuda on a \
             machine with an NVIDIA GPU, or configure a simulated device)",
        ));
    }
    gpu.bundle.validate().map_err(std::io::Error::other)?;
    let mut out = Vec::new();
    for device in &gpu.devices {
        let cache = Arc::new(DeviceCache::for_device(&**device, gpu.cache_budget));
        let gate = crate::gate::LaunchGate::new(gpu.policy);
        let bundler = Arc::new(Bundler::with_gate(gpu.bundle.clone(), gate));
        for _ in 0..gpu.lanes.max(1) {
            out.push((
                WarmCache::on_device(device.clone(), cache.clone()),
                bundler.clone(),
            ));
        }
    }
    Ok(out)
}

impl ExecutorHandle {
    pub fn config(&self) -> &ExecutorConfig {
        &self.config
    }

    /// Waits until every slot waits for work (the slots start on their own threads after
    /// [`start`] returns), or `timeout` passes; whether they all did. A deployment that
    /// takes its first job before then runs it all the same, with fewer idle slots to keep
    /// a fan-out's children on.
    pub fn wait_ready(&self, timeout: Duration) -> bool {
        let until = std::time::Instant::now() + timeout;
        loop {
            if (self.waiting)() >= self.config.slots {
                return true;
            }
            if std::time::Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Stops the slots (each finishes its current invocation first) and joins the threads.
    pub fn stop(self) {
        stop_all(vec![self]);
    }

    /// Asks the slots and the heartbeat to stop; returns at once.
    fn begin_stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.stopping.notify_one();
    }

    fn await_deregistered(&mut self) {
        if let Some(rx) = self.deregistered.take() {
            // Bounded: a store that went away must not hold up the shutdown.
            let _ = rx.recv_timeout(DEREGISTER_WITHIN + Duration::from_secs(1));
        }
    }

    fn stop_system(&mut self) {
        if let Some(sys) = self.system.take() {
            sys.stop();
        }
    }

    fn join(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    fn shutdown(&mut self) {
        stop_in_phases(&mut [self]);
    }
}

/// Stops several executors that share one store, in phases: every one is asked to stop and
/// deregisters before any runtime shuts down. The store's client may hand a reconnect that
/// one runtime started (its timers live there) to a task of another; stopping that runtime
/// first would leave the other polling a dead timer, which panics.
pub fn stop_all(mut handles: Vec<ExecutorHandle>) {
    let mut all: Vec<&mut ExecutorHandle> = handles.iter_mut().collect();
    stop_in_phases(&mut all);
}

/// The phases of [`stop_all`] (idempotent: a stopped handle has nothing left to stop).
fn stop_in_phases(handles: &mut [&mut ExecutorHandle]) {
    for h in handles.iter() {
        h.begin_stop();
    }
    for h in handles.iter_mut() {
        h.await_deregistered();
    }
    // Give slots one pull period to notice the flag, then stop the systems.
    std::thread::sleep(Duration::from_millis(1));
    for h in handles.iter_mut() {
        h.stop_system();
    }
    for h in handles.iter_mut() {
        h.join();
    }
}

impl Drop for ExecutorHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// How long a stopping executor tries to remove its registration.
const DEREGISTER_WITHIN: Duration = Duration::from_secs(2);

/// Keeps the executor's registration fresh until shutdown, then removes it.
async fn heartbeat<S: Store, P: Proxy>(
    svc: Arc<Services<S, P>>,
    mut info: ExecutorInfo,
    devices: Vec<(String, Arc<DeviceCache>, Arc<Bundler>)>,
    stopping: Arc<Notify>,
    done: std::sync::mpsc::Sender<()>,
) {
    let every = svc.config.heartbeat_every;
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopping.notified() => break,
        }
        info.device_stats = devices
            .iter()
            .map(|(label, cache, bundler)| {
                let c = cache.snapshot();
                let b = bundler.counters();
                DeviceStats {
                    device: label.clone(),
                    hits: c.hits,
                    misses: c.misses,
                    evictions: c.evictions,
                    cold_start_us: c.cold_start_us,
                    used_bytes: c.used_bytes,
                    budget_bytes: c.budget_bytes,
                    launches: b.launches,
                    bundled_calls: b.calls,
                }
            })
            .collect();
        // A heartbeat to a store that went away can take its whole timeout: a stop must
        // not wait for it.
        tokio::select! {
            r = svc.store.heartbeat(&info, every * 3) => {
                if let Err(e) = r {
                    tracing::warn!(error = %e, "heartbeat failed");
                }
            }
            _ = stopping.notified() => break,
        }
    }
    // Bounded below the shutdown's wait for it, so that no timer of this task is still
    // pending when the runtime shuts down (a store that went away would otherwise leave
    // one behind, and tokio panics polling it).
    match tokio::time::timeout(DEREGISTER_WITHIN, svc.store.deregister(&info.id)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "could not deregister"),
        Err(_) => tracing::warn!("could not deregister in time; the registration will lapse"),
    }
    let _ = done.send(());
}
