//! Running one task's function: warm state, inline or off-thread, retries, timeouts, and
//! panics turned into task errors. Nothing a function does can take the slot down.

use crate::functions::{FnError, Function, InitCtx, Registry, WarmState};
use rukong_core::Value;
use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A slot's warm state: per registry function, `None` until its `init` has run.
#[derive(Default)]
pub struct WarmCache {
    states: Vec<Option<Option<WarmState>>>,
}

/// What a cold start cost, when one happened.
#[derive(Clone, Copy, Debug, Default)]
pub struct ColdStart {
    pub happened: bool,
    pub init: Duration,
}

impl WarmCache {
    /// The function's warm state, running `init` first if this slot never has.
    pub fn get_or_init(
        &mut self,
        registry: &Registry,
        f: usize,
        slot: usize,
    ) -> Result<(Option<WarmState>, ColdStart), FnError> {
        if self.states.len() <= f {
            self.states.resize_with(registry.len().max(f + 1), || None);
        }
        if let Some(state) = &self.states[f] {
            return Ok((state.clone(), ColdStart::default()));
        }
        let t0 = Instant::now();
        let ctx = InitCtx {
            name: registry.name(f).to_owned(),
            slot,
        };
        let func = registry.get(f);
        let state = catch_unwind(AssertUnwindSafe(|| func.init(&ctx)))
            .map_err(|p| FnError::new(format!("init panicked: {}", panic_message(&*p))))??;
        self.states[f] = Some(state.clone());
        Ok((
            state,
            ColdStart {
                happened: true,
                init: t0.elapsed(),
            },
        ))
    }

    /// Whether `f` is warm on this slot.
    pub fn is_warm(&self, f: usize) -> bool {
        self.states.get(f).is_some_and(Option::is_some)
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
    let handle = tokio::task::spawn_blocking(move || f.call(state.as_ref(), inputs));
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
