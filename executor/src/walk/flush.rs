//! The end of a walk: its results and progress appended as events, its profile merged.

use super::{WalkError, Walker};
use rukong_core::error::StoreError;
use rukong_core::messages::Event;
use rukong_core::profile::DagProfile;
use rukong_core::proxy::Proxy;
use rukong_core::store::Store;

impl<S: Store, P: Proxy> Walker<'_, S, P> {
    /// Appends this invocation's results and progress, and merges its profile. Fails when
    /// the events could not be appended (the profile is advice: its errors are ignored).
    pub(super) async fn flush(&mut self) -> Result<(), WalkError> {
        let job = self.plan.job.clone();
        let mut events = std::mem::take(&mut self.events);
        if !self.spans.is_empty() {
            events.push(Event::Trace {
                slot: format!("{}-s{}", self.svc.config.id, self.slot.index),
                spans: std::mem::take(&mut self.spans),
            });
        }
        if self.stats.tasks > 0 || self.stats.skipped > 0 {
            events.push(Event::Progress(std::mem::take(&mut self.stats)));
        }
        let branches = std::mem::take(&mut self.branches);
        if !events.is_empty()
            && let Err(e) = self.svc.store.append_events(&job, events).await
        {
            if matches!(e, StoreError::UnknownJob(_)) {
                return Ok(());
            }
            tracing::warn!(%job, error = %e, "could not append events");
            return Err(e.into());
        }
        // Branch outcomes (`docs/conditional-branches.md`) travel with the function timings, in one
        // call.
        let mut profile: DagProfile = self
            .plan
            .dag
            .funcs()
            .iter()
            .zip(std::mem::take(&mut self.profile))
            .filter(|(_, p)| p.exec_us.count > 0 || p.cold_start_us.count > 0)
            .map(|(n, p)| (n.clone(), p))
            .collect();
        if !branches.is_empty() {
            profile.record_branches(&self.plan.dag, branches);
        }
        if !profile.is_empty() {
            let _ = self
                .svc
                .store
                .record_profile(self.plan.dag.name(), profile)
                .await;
        }
        Ok(())
    }
}
