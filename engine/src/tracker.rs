//! Folding a job's events into its state, as a pure function of the events: the engine's
//! whole view of a running job. Duplicated events (after a redelivered invocation) are
//! harmless: results are deduplicated by task.

use rukong_core::messages::{Event, JobState, Payload, Span, SpanKind, WalkStats};
use rukong_core::{JobPlan, TaskIdx};
use std::sync::Arc;

#[derive(Debug)]
pub struct JobTracker {
    plan: Arc<JobPlan>,
    sink_seen: Vec<bool>,
    sinks_done: usize,
    outputs: Vec<Option<Payload>>,
    stats: WalkStats,
    failure: Option<JobState>,
    /// (slot, span) of traced jobs.
    spans: Vec<(String, Span)>,
    /// Tasks with at least one span.
    spanned: Vec<bool>,
    spanned_count: usize,
}

impl JobTracker {
    pub fn new(plan: Arc<JobPlan>) -> Self {
        let n = plan.dag.len();
        let outs = plan.dag.outputs().len();
        JobTracker {
            sink_seen: vec![false; n],
            sinks_done: 0,
            outputs: vec![None; outs],
            stats: WalkStats::default(),
            failure: None,
            spans: Vec::new(),
            spanned: Vec::new(),
            spanned_count: 0,
            plan,
        }
    }

    pub fn apply(&mut self, event: Event) {
        match event {
            Event::TaskResult {
                task,
                sink,
                payload,
            } => self.result(task, sink, payload),
            // A skipped sink or output finishes like a result; an output is reported skipped.
            Event::TaskSkipped { task, sink } => self.result(task, sink, Some(Payload::Skipped)),
            Event::TaskFailed { id, error, .. } => {
                if self.failure.is_none() {
                    self.failure = Some(JobState::Failed { task: id, error });
                }
            }
            Event::Progress(s) => self.stats.merge(&s),
            // For warm-up re-planning (the engine's hint sender follows them itself).
            Event::Branches { .. } => {}
            Event::Trace { slot, spans } => {
                if self.spanned.is_empty() {
                    self.spanned = vec![false; self.plan.dag.len()];
                }
                for s in spans.iter().filter(|s| s.kind == SpanKind::Run) {
                    if let Some(seen) = self.spanned.get_mut(s.task.get())
                        && !*seen
                    {
                        *seen = true;
                        self.spanned_count += 1;
                    }
                }
                self.spans
                    .extend(spans.into_iter().map(|s| (slot.clone(), s)));
            }
        }
    }

    fn result(&mut self, task: TaskIdx, sink: bool, payload: Option<Payload>) {
        let dag = &self.plan.dag;
        let Some(seen) = self.sink_seen.get_mut(task.get()) else {
            return;
        };
        if sink && dag.is_sink(task) && !*seen {
            *seen = true;
            self.sinks_done += 1;
        }
        if let Some(p) = payload
            && let Some(i) = dag.outputs().iter().position(|&o| o == task)
        {
            self.outputs[i].get_or_insert(p);
        }
    }

    /// A copy of what decides completion (sinks seen, outputs in hand), without the stats
    /// and spans.
    pub fn snapshot(&self) -> JobTracker {
        JobTracker {
            plan: self.plan.clone(),
            sink_seen: self.sink_seen.clone(),
            sinks_done: self.sinks_done,
            outputs: self.outputs.clone(),
            stats: WalkStats::default(),
            failure: self.failure.clone(),
            spans: Vec::new(),
            spanned: Vec::new(),
            spanned_count: 0,
        }
    }

    /// The sinks that have not reported yet, in task order.
    pub fn unfinished_sinks(&self) -> impl Iterator<Item = TaskIdx> + '_ {
        let dag = &self.plan.dag;
        dag.tasks()
            .filter(move |&t| dag.is_sink(t) && !self.sink_seen[t.get()])
    }

    /// Every sink finished and every requested output arrived.
    pub fn is_complete(&self) -> bool {
        self.sinks_done == self.plan.dag.sink_count() && self.outputs.iter().all(Option::is_some)
    }

    /// The state the events imply.
    pub fn state(&self) -> JobState {
        if let Some(f) = &self.failure {
            f.clone()
        } else if self.is_complete() {
            JobState::Succeeded
        } else {
            JobState::Running
        }
    }

    /// Whether every task of the DAG has a span or was skipped (a traced job's trace can
    /// trail its end: another invocation may flush its spans just after the sink's result).
    pub fn trace_complete(&self) -> bool {
        self.spanned_count as u64 + self.stats.skipped >= self.plan.dag.len() as u64
    }

    /// The spans of a traced job, with the slot that ran each.
    pub fn spans(&self) -> &[(String, Span)] {
        &self.spans
    }

    pub fn stats(&self) -> &WalkStats {
        &self.stats
    }

    /// Tasks run so far (duplicates after redelivery can overcount; clamped to the total).
    /// Skipped tasks are not counted: see [`JobTracker::tasks_settled`].
    pub fn tasks_done(&self) -> u64 {
        self.stats.tasks.min(self.plan.dag.len() as u64)
    }

    /// Whether every task's progress (and, for a traced job, its span) has been seen. A
    /// succeeded job's last progress events can trail its sink's result: an invocation
    /// that only recorded an arrival flushes its counts after the completer may have
    /// finished the job.
    pub fn settled(&self) -> bool {
        self.tasks_settled() >= self.plan.dag.len() as u64
            && (!self.plan.config.trace || self.trace_complete())
    }

    /// Tasks run or skipped so far, for progress (clamped to the total).
    pub fn tasks_settled(&self) -> u64 {
        (self.stats.tasks + self.stats.skipped).min(self.plan.dag.len() as u64)
    }

    pub fn plan(&self) -> &Arc<JobPlan> {
        &self.plan
    }

    /// The requested outputs, in the DAG's output order (`None` where not yet seen;
    /// [`Payload::Skipped`] for a skipped one).
    pub fn outputs(&self) -> impl Iterator<Item = (TaskIdx, Option<&Payload>)> {
        self.plan
            .dag
            .outputs()
            .iter()
            .copied()
            .zip(self.outputs.iter().map(Option::as_ref))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rukong_core::dag::{DagSpec, Limits, validate};
    use rukong_core::{JobConfig, JobId, Value, schedule};

    fn plan() -> Arc<JobPlan> {
        let dag = validate(
            DagSpec::from_yaml_str("tasks: [{id: a, fn: const}, {id: b, fn: identity, deps: [a]}, {id: c, fn: identity, deps: [a]}]\noutputs: [b]").unwrap(),
            &Limits::default(),
            &|_| true,
        )
        .unwrap();
        let schedule = schedule::schedule(&dag, 10);
        Arc::new(JobPlan {
            job: JobId::new("t"),
            dag,
            schedule,
            config: JobConfig::default(),
        })
    }

    #[test]
    fn completes_when_every_sink_and_output_is_in_despite_duplicates() {
        let p = plan();
        let (b, c) = (p.dag.lookup("b").unwrap(), p.dag.lookup("c").unwrap());
        let mut t = JobTracker::new(p);
        let out = Event::TaskResult {
            task: b,
            sink: true,
            payload: Some(Payload::Inline(Value::Int(7))),
        };
        t.apply(out.clone());
        t.apply(out);
        assert_eq!(t.state(), JobState::Running, "c (a sink) has not finished");
        t.apply(Event::TaskResult {
            task: c,
            sink: true,
            payload: None,
        });
        assert_eq!(t.state(), JobState::Succeeded);
        let outs: Vec<_> = t.outputs().collect();
        assert_eq!(outs, vec![(b, Some(&Payload::Inline(Value::Int(7))))]);
    }

    #[test]
    fn skipped_sinks_and_outputs_complete_the_job() {
        let p = plan();
        let (b, c) = (p.dag.lookup("b").unwrap(), p.dag.lookup("c").unwrap());
        let mut t = JobTracker::new(p);
        t.apply(Event::TaskSkipped {
            task: b,
            sink: true,
        });
        assert_eq!(t.state(), JobState::Running, "c (a sink) has not finished");
        t.apply(Event::TaskSkipped {
            task: c,
            sink: true,
        });
        t.apply(Event::TaskSkipped {
            task: c,
            sink: true,
        });
        assert_eq!(t.state(), JobState::Succeeded);
        let outs: Vec<_> = t.outputs().collect();
        assert_eq!(outs, vec![(b, Some(&Payload::Skipped))]);
    }

    #[test]
    fn the_first_failure_wins() {
        let mut t = JobTracker::new(plan());
        for msg in ["first", "second"] {
            t.apply(Event::TaskFailed {
                task: TaskIdx(1),
                id: "b".into(),
                attempts: 1,
                error: msg.into(),
            });
        }
        assert_eq!(
            t.state(),
            JobState::Failed {
                task: "b".into(),
                error: "first".into()
            }
        );
    }
}
