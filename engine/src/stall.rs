//! No job waits for ever: stall detection for the jobs an engine follows.
//!
//! A job is **stalled** when no event has arrived for [`StallConfig::after`] and none of
//! its invocations is in a queue, waiting or delivered (a slow task keeps its invocation
//! pending, so it is never taken for a stall). Nothing will move it again: some effect was
//! lost (a bug, or a store that lost a write).
//!
//! A stalled job is first **re-driven**: its sources are enqueued again. Every effect of a
//! walk is idempotent (write-once outputs, fan-in records whose completer is told again,
//! results deduplicated by task), so a replay recomputes what is missing and gives the same
//! results as the first run; it costs a re-run of the work already done. After
//! [`StallConfig::max_redrives`] replays the job fails, and the error names what it waits
//! on: the fan-ins with some of their parents recorded, and the sinks not finished.

use crate::engine::Engine;
use crate::tracker::JobTracker;
use rukong_core::JobId;
use rukong_core::error::StoreError;
use rukong_core::messages::{Event, JobState, WalkStats};
use rukong_core::proxy::Proxy;
use rukong_core::store::Store;
use std::time::{Duration, Instant};

/// When a job counts as stalled, and what the engine does then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StallConfig {
    /// No events and nothing queued for this long (a multiple of the executors' visibility
    /// timeout, so that a dead executor's invocations are reclaimed first).
    pub after: Duration,
    /// Replays from the sources before the job fails (0: fail at once).
    pub max_redrives: u32,
}

impl Default for StallConfig {
    fn default() -> Self {
        StallConfig {
            after: Duration::from_secs(60),
            max_redrives: 2,
        }
    }
}

/// What [`StallWatch::check`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Moving, or waiting on queued work.
    Moving,
    /// Stalled, and its sources were enqueued again.
    Redriven,
    /// Stalled past every replay: the job fails with this state.
    Stuck(JobState),
}

/// One job's stall detector; the follower calls [`StallWatch::progressed`] on every new
/// event and [`StallWatch::check`] when a read brought none.
#[derive(Debug)]
pub struct StallWatch {
    config: StallConfig,
    quiet_since: Instant,
    redrives: u32,
}

/// Tasks named in a stall error, at most.
const NAMED: usize = 10;

impl StallWatch {
    pub fn new(config: StallConfig) -> Self {
        StallWatch {
            config,
            quiet_since: Instant::now(),
            redrives: 0,
        }
    }

    pub fn progressed(&mut self) {
        self.quiet_since = Instant::now();
    }

    /// Whether the job has been quiet long enough to be looked at.
    pub fn due(&self) -> bool {
        self.quiet_since.elapsed() >= self.config.after
    }

    /// Looks at a quiet job (see the module doc); `tracker` is its engine's view. Store
    /// errors are the caller's to retry.
    pub async fn check<S: Store, P: Proxy>(
        &mut self,
        engine: &Engine<S, P>,
        job: &JobId,
        tracker: &JobTracker,
    ) -> Result<Verdict, StoreError> {
        if !self.due() {
            return Ok(Verdict::Moving);
        }
        let store = engine.store();
        if store.job_queued(job).await? {
            // Queued or running: look again one period later.
            self.progressed();
            return Ok(Verdict::Moving);
        }
        if self.redrives < self.config.max_redrives {
            self.redrives += 1;
            tracing::warn!(%job, redrive = self.redrives, quiet_s = self.config.after.as_secs_f64(),
                "job stalled with nothing queued: re-driving it from its sources");
            let mark = WalkStats {
                redrives: 1,
                ..WalkStats::default()
            };
            store
                .append_events(job, vec![Event::Progress(mark)])
                .await?;
            engine.enqueue_sources(tracker.plan()).await?;
            self.progressed();
            return Ok(Verdict::Redriven);
        }
        let waiting = store.fan_in_counts(job).await?;
        Ok(Verdict::Stuck(self.stuck_state(tracker, &waiting)))
    }

    fn stuck_state(
        &self,
        tracker: &JobTracker,
        waiting: &[(rukong_core::TaskIdx, u32)],
    ) -> JobState {
        let dag = &tracker.plan().dag;
        let partial: Vec<String> = waiting
            .iter()
            .filter(|(t, n)| *n < dag.needed(*t))
            .map(|(t, n)| format!("{} ({n} of {} dependencies)", dag.id(*t), dag.needed(*t)))
            .collect();
        let sinks: Vec<String> = tracker
            .unfinished_sinks()
            .map(|t| dag.id(t).to_string())
            .collect();
        let list = |v: &[String]| {
            let mut s = v.iter().take(NAMED).cloned().collect::<Vec<_>>().join(", ");
            if v.len() > NAMED {
                s.push_str(&format!(" and {} more", v.len() - NAMED));
            }
            s
        };
        let mut error = format!(
            "stalled: no progress for {:.1} s with nothing queued or running",
            self.config.after.as_secs_f64()
        );
        if self.redrives > 0 {
            let s = if self.redrives == 1 { "" } else { "s" };
            error.push_str(&format!(
                ", and {} replay{s} from its sources did not finish it",
                self.redrives
            ));
        }
        if !partial.is_empty() {
            error.push_str(&format!("; waiting fan-ins: {}", list(&partial)));
        }
        if !sinks.is_empty() {
            error.push_str(&format!("; unfinished sinks: {}", list(&sinks)));
        }
        let task = waiting
            .iter()
            .find(|(t, n)| *n < dag.needed(*t))
            .map(|(t, _)| *t)
            .or_else(|| tracker.unfinished_sinks().next())
            .map_or_else(|| "-".into(), |t| dag.id(t).clone());
        JobState::Failed { task, error }
    }
}
