//! One task's function call: its warm state, its retries, its profile and span.

use super::hints::warm_function;
use super::{WalkError, Walker, unix_us};
use crate::run::call_once;
use rukong_core::messages::SpanKind;
use rukong_core::profile::FnProfile;
use rukong_core::proxy::Proxy;
use rukong_core::store::Store;
use rukong_core::{ExecClass, TaskIdx, Value};
use std::time::{Duration, Instant};

impl<S: Store, P: Proxy> Walker<'_, S, P> {
    /// Runs the task's function with its retries.
    pub(crate) async fn run_task(
        &mut self,
        t: TaskIdx,
        inputs: Vec<Value>,
    ) -> Result<Value, WalkError> {
        let plan = self.plan.clone();
        let dag = &plan.dag;
        let fi = dag.func_of(t);
        let f = self.ctx.fns[fi];
        let registry = &self.svc.registry;
        if self.profile.len() <= fi {
            self.profile
                .resize_with(dag.funcs().len(), FnProfile::default);
        }
        let warmed = warm_function(&self.svc.registry, self.slot, f).await;
        let (state, cold) = warmed.map_err(|e| WalkError::Task {
            task: t,
            attempts: 1,
            error: format!("init of {} failed: {e}", registry.name(f)),
        })?;
        let traced_start = self
            .plan
            .config
            .trace
            .then(|| unix_us().saturating_sub(cold.init.as_micros() as u64));
        if !cold.happened && self.slot.bundler.is_some() {
            self.stats.warm_hits += 1;
        }
        // A state a hint loaded counts as used by its first task, even one that waited for
        // the hint's `init` to finish.
        if let Some(cache) = self.slot.warm.device_cache()
            && let Some(idle) = cache.take_hinted(registry.name(f))
        {
            self.stats.hints_used += 1;
            self.stats.warm_idle_us += idle.as_micros() as u64;
        }
        if cold.happened {
            let us = cold.init.as_micros() as u64;
            // A slot that waited for another slot's `init` of the same function (a shared
            // device cache) paid the delay, but did not start the function cold itself.
            if !cold.joined {
                self.stats.cold_starts += 1;
                self.profile[fi].cold_start_us.record(us);
            }
            self.stats.init_us += us;
        }
        let (retries, timeout) = match dag.extras(t) {
            Some(e) => (e.retries, e.timeout_ms.map(Duration::from_millis)),
            None => (0, None),
        };
        let func = registry.get(f);
        if let Some(k) = &self.breadcrumb {
            let note = bytes::Bytes::copy_from_slice(&t.0.to_le_bytes());
            if let Err(e) = self.svc.store.put_object(k, note).await {
                tracing::warn!(error = %e, "could not leave a breadcrumb");
            }
        }
        let mut inputs = Some(inputs);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt > retries;
            let args = if last {
                inputs.take().unwrap_or_default()
            } else {
                inputs.clone().unwrap_or_default()
            };
            let t0 = Instant::now();
            let result = match &self.slot.bundler {
                // The first attempt of a GPU task on a device slot joins a bundle.
                Some(b) if attempt == 1 && plan.dag.class(t) == ExecClass::Gpu => {
                    self.stats.bundled += 1;
                    b.call(registry.name(f), func, state.clone(), args).await
                }
                _ => call_once(func, state.as_ref(), args, timeout).await,
            };
            match result {
                Ok(v) => {
                    let exec_us = t0.elapsed().as_micros() as u64;
                    self.profile[fi].exec_us.record(exec_us);
                    self.profile[fi].output_bytes.record(v.approx_size() as u64);
                    if let Some(start_us) = traced_start {
                        let init_us = cold.init.as_micros() as u64;
                        self.spans.push(rukong_core::messages::Span {
                            task: t,
                            start_us,
                            dur_us: init_us + exec_us,
                            init_us: if cold.happened { init_us } else { 0 },
                            kind: SpanKind::Run,
                            bytes: 0,
                        });
                    }
                    return Ok(v);
                }
                Err(e) if last => {
                    return Err(WalkError::Task {
                        task: t,
                        attempts: attempt,
                        error: e.message,
                    });
                }
                Err(e) => {
                    tracing::debug!(task = %dag.id(t), attempt, error = %e, "task attempt failed; retrying");
                }
            }
        }
    }
}
