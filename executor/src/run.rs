//! Running one task's function: warm state, inline or off-thread, retries, timeouts, and
//! panics turned into task errors. Nothing a function does can take the slot down.

pub use crate::device::ColdStart;
use crate::device::{Device, DeviceCache};
use crate::functions::{FnError, Function, InitCtx, Registry, WarmState};
use rukong_core::Value;
use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A slot's warm state: per registry function, cold until its `init` has run.
///
/// On a CPU slot ([`WarmCache::default`]) every state lives here, per slot. On a device
/// slot ([`WarmCache::on_device`]) `init` gets the device, and a state it marks as
/// device-bound (resident bytes, a compiled module: see
/// [`InitLog`](crate::device::InitLog)) lives in the device's shared
/// [`DeviceCache`] instead, looked up on every call, so that LRU eviction under the
/// device's memory budget really frees it; the rest stay per slot as on a CPU slot.
#[derive(Default)]
pub struct WarmCache {
    states: Vec<Warm>,
    device: Option<OnDevice>,
}

#[derive(Default)]
enum Warm {
    #[default]
    Cold,
    /// Per-slot state.
    Local(Option<WarmState>),
    /// In the device cache, under this function name.
    Device(String),
}

struct OnDevice {
    device: Arc<dyn Device>,
    cache: Arc<DeviceCache>,
}

impl WarmCache {
    /// A CPU slot's cache (the same as `default()`).
    pub fn new() -> Self {
        Self::default()
    }

    /// A cache for a slot on `device`, sharing `cache` with the device's other slots.
    pub fn on_device(device: Arc<dyn Device>, cache: Arc<DeviceCache>) -> Self {
        WarmCache {
            states: Vec::new(),
            device: Some(OnDevice { device, cache }),
        }
    }

    /// The slot's device, if it has one.
    pub fn device(&self) -> Option<&Arc<dyn Device>> {
        self.device.as_ref().map(|d| &d.device)
    }

    /// The device's shared cache, if the slot has a device.
    pub fn device_cache(&self) -> Option<&Arc<DeviceCache>> {
        self.device.as_ref().map(|d| &d.cache)
    }

    /// The function's warm state, running `init` first if this slot (or, for a
    /// device-bound state, the device) does not hold it.
    pub fn get_or_init(
        &mut self,
        registry: &Registry,
        f: usize,
        slot: usize,
    ) -> Result<(Option<WarmState>, ColdStart), FnError> {
        if self.states.len() <= f {
            self.states
                .resize_with(registry.len().max(f + 1), Warm::default);
        }
        if let Warm::Local(state) = &self.states[f] {
            return Ok((state.clone(), ColdStart::default()));
        }
        let name = registry.name(f);
        let func = registry.get(f);
        let Some(dev) = &self.device else {
            let t0 = Instant::now();
            let ctx = InitCtx::new(name, slot);
            let state = catch_unwind(AssertUnwindSafe(|| func.init(&ctx)))
                .map_err(|p| FnError::new(format!("init panicked: {}", panic_message(&*p))))??;
            self.states[f] = Warm::Local(state.clone());
            return Ok((
                state,
                ColdStart {
                    happened: true,
                    init: t0.elapsed(),
                    stages: ctx.log.record().stages,
                    joined: false,
                },
            ));
        };
        // Whether this call ran init, and whether the state it built is device-bound.
        let mut ran: Option<bool> = None;
        let (state, cold) = dev.cache.get_or_init(name, |log| {
            let ctx = InitCtx {
                name: name.to_owned(),
                slot,
                device: Some(dev.device.clone()),
                log: log.clone(),
            };
            let r = func.init(&ctx);
            ran = Some(log.record().device_bound);
            r
        })?;
        self.states[f] = match ran {
            Some(false) => Warm::Local(state.clone()),
            _ => Warm::Device(name.to_owned()),
        };
        Ok((state, cold))
    }

    /// Whether `f` is warm for this slot (for a device-bound state: still in the device
    /// cache).
    pub fn is_warm(&self, f: usize) -> bool {
        match self.states.get(f) {
            Some(Warm::Local(_)) => true,
            Some(Warm::Device(name)) => {
                self.device.as_ref().is_some_and(|d| d.cache.contains(name))
            }
            _ => false,
        }
    }
}

/// The text of a panic payload.
pub fn panic_message(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

thread_local! {
    static DEADLINE: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// When the task attempt that runs on this thread must end: a heavy call of a task with a
/// `timeout_ms`. The caller stops waiting then, but cannot stop the thread; a function
/// that can end its own work early (`process` kills its program) reads it here.
pub fn call_deadline() -> Option<Instant> {
    DEADLINE.with(std::cell::Cell::get)
}

/// Sets [`call_deadline`] for one call, and clears it afterwards, even after a panic.
struct DeadlineGuard;

impl DeadlineGuard {
    fn set(deadline: Option<Instant>) -> DeadlineGuard {
        DEADLINE.with(|d| d.set(deadline));
        DeadlineGuard
    }
}

impl Drop for DeadlineGuard {
    fn drop(&mut self) {
        DEADLINE.with(|d| d.set(None));
    }
}

/// Calls `func` once. Light calls run inline; heavy ones on the blocking pool, bounded by
/// `timeout` when one is set.
pub async fn call_once(
    func: &Arc<dyn Function>,
    state: Option<&WarmState>,
    inputs: Vec<Value>,
    timeout: Option<Duration>,
) -> Result<Value, FnError> {
    if !func.is_heavy(&inputs) {
        return catch_unwind(AssertUnwindSafe(|| func.call(state, inputs)))
            .unwrap_or_else(|p| Err(FnError::new(format!("panicked: {}", panic_message(&*p)))));
    }
    let f = func.clone();
    let state = state.cloned();
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let handle = tokio::task::spawn_blocking(move || {
        let _deadline = DeadlineGuard::set(deadline);
        f.call(state.as_ref(), inputs)
    });
    let joined = match timeout {
        Some(limit) => match tokio::time::timeout(limit, handle).await {
            Ok(j) => j,
            Err(_) => {
                return Err(FnError::new(format!(
                    "timed out after {} ms",
                    limit.as_millis()
                )));
            }
        },
        None => handle.await,
    };
    match joined {
        Ok(r) => r,
        Err(e) if e.is_panic() => Err(FnError::new(format!(
            "panicked: {}",
            panic_message(&*e.into_panic())
        ))),
        Err(e) => Err(FnError::new(format!("was cancelled: {e}"))),
    }
}
