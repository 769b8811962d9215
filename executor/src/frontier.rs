//! The frontier walk: an invocation's schedule walked level by level, so that store
//! traffic is batched per level, not per task (`docs/architecture.md`: about one pipelined batch
//! per step of an invocation).
//!
//! A frontier is every task of the invocation that is ready to run now. One step:
//! 1. **inputs**: the dependencies no task has in hand are read in one batch;
//! 2. **run**: every task runs (inline, or off-thread when heavy);
//! 3. **advance**, in this order, so that writes precede counts (`docs/architecture.md`):
//!    - one batched write of the outputs that fan-in children will read;
//!    - one batch of arrival records;
//!    - the large fan-outs handed to the proxy;
//!    - one batched push of the invocations for ready children that are sent away.
//!
//! The next frontier holds the children this slot continues into: chains (the value never
//! leaves memory), fan-ins whose last parent arrived here, and each fan-out's become child.
//!
//! **Conditional branches** (`docs/conditional-branches.md`). A task is *skipped* when its guard
//! fails, when (`join: all`, the default) any dependency was skipped, or when (`join: any`) every
//! dependency was skipped. A skipped task runs nothing and has no output, but it walks on
//! like a completed one so that nothing waits for it forever:
//! - its chain and single-dependency children are skipped in-process (they run nothing);
//! - it writes the marker [`Payload::Skipped`] where fan-in children read outputs, and
//!   records its arrivals flagged as skipped; the arrival that completes a fan-in sees how
//!   many parents were skipped and decides at once whether the child is skipped
//!   ([`rukong_core::store::Arrival::skips`]); a child that runs reads the markers, and
//!   under `join: any` receives `null` for each skipped dependency;
//! - a large fan-out goes to the proxy as usual, with the marker as its payload: the proxy
//!   records the arrivals as skipped and the children it enqueues carry the marker, so the
//!   slots that pick them up skip them and walk on;
//! - a skipped sink or requested output appends [`Event::TaskSkipped`].
//!
//! A guard is evaluated when its task is about to run, on the guard dependency's output
//! ([`rukong_core::dag::values_equal`]); a skipped guard dependency skips the task. Every
//! such evaluation is recorded in [`crate::walk::Walker::branches`].
//! All of this is behind [`rukong_core::Dag::has_guards`]: a DAG without guards never
//! skips, and its walk takes none of these paths.

use crate::walk::{BackendError, WalkError, Walker};
use rukong_core::dag::Join;
use rukong_core::messages::{Event, KnownInput, Payload, Start};
use rukong_core::proxy::{FanOutRequest, Proxy};
use rukong_core::step::{self, Finished, Next};
use rukong_core::store::{LevelWrite, Release, Store};
use rukong_core::{ExecClass, JobConfig, TaskIdx, Value};
use std::collections::HashMap;

mod siblings;

/// A task ready to run, with the inputs this slot already holds.
pub(crate) struct Item {
    pub task: TaskIdx,
    pub known: Vec<(TaskIdx, Value)>,
    /// Dependencies known to have been skipped (only ever filled when the DAG has guards).
    pub skipped: Vec<TaskIdx>,
    /// Already known to be skipped: it reads nothing and runs nothing.
    pub skip: bool,
    /// Dependencies whose stored output this task releases when the walk ends well
    /// ([`rukong_core::store::ObjectStore::release_outputs`], see [`Walker::releasable`]).
    pub releases: Vec<TaskIdx>,
}

impl Item {
    /// A task with one input in hand (a chain, a become child, a completed fan-in).
    fn with(task: TaskIdx, from: TaskIdx, out: Value) -> Item {
        Item {
            task,
            known: vec![(from, out)],
            skipped: Vec::new(),
            skip: false,
            releases: Vec::new(),
        }
    }

    /// A task whose dependency `from` is in hand: its output, or `None` when it was skipped.
    fn from_parent(task: TaskIdx, from: TaskIdx, out: &Option<Value>) -> Item {
        match out {
            Some(v) => Item::with(task, from, v.clone()),
            None => Item {
                task,
                known: Vec::new(),
                skipped: vec![from],
                skip: false,
                releases: Vec::new(),
            },
        }
    }

    /// A task already known to be skipped.
    fn skipped(task: TaskIdx) -> Item {
        Item {
            task,
            known: Vec::new(),
            skipped: Vec::new(),
            skip: true,
            releases: Vec::new(),
        }
    }
}

impl<S: Store, P: Proxy> Walker<'_, S, P> {
    /// Walks every start of an invocation to the end.
    pub(crate) async fn walk_all(&mut self, starts: Vec<Start>) -> Result<(), WalkError> {
        let plan = self.plan.clone();
        let dag = &plan.dag;
        let mut frontier = Vec::with_capacity(starts.len());
        for s in starts {
            if s.task.get() >= dag.len() {
                return Err(BackendError::UnknownTask {
                    task: s.task,
                    len: dag.len(),
                }
                .into());
            }
            let mut known = Vec::with_capacity(s.inputs.len().max(1));
            let mut skipped = Vec::new();
            let mut releases = Vec::new();
            let mut released = false;
            for KnownInput { from, payload } in s.inputs {
                if payload.is_skipped() {
                    skipped.push(from);
                    continue;
                }
                let object = self.is_output_object(from, &payload);
                match self.resolve(s.task, from, payload).await? {
                    Some(v) => {
                        if self.releasable(from, object, &v) {
                            releases.push(from);
                        }
                        known.push((from, v));
                    }
                    None => released = true,
                }
            }
            if released {
                // Every reader of an input is done with it: this start ran already, in a
                // walk that ended well. This is a duplicate; it walks no further.
                self.stats.duplicates += 1;
                continue;
            }
            frontier.push(Item {
                task: s.task,
                known,
                skipped,
                skip: false,
                releases,
            });
        }
        while !frontier.is_empty() {
            let inputs = self.gather(&mut frontier).await?;
            let mut done = Vec::with_capacity(frontier.len());
            for (item, inp) in frontier.drain(..).zip(inputs) {
                let inp = match inp {
                    Gathered::Run(inp) => Some(inp),
                    Gathered::Skip => None,
                    Gathered::Duplicate => {
                        self.stats.duplicates += 1;
                        continue;
                    }
                };
                self.note_reads(&item);
                let Some(inp) = inp else {
                    self.stats.skipped += 1;
                    if self
                        .stats
                        .skipped
                        .is_multiple_of(crate::walk::STATE_CHECK_EVERY)
                    {
                        self.check_running().await?;
                    }
                    done.push((item.task, None));
                    continue;
                };
                let out = self.run_task(item.task, inp).await?;
                self.stats.tasks += 1;
                if self
                    .stats
                    .tasks
                    .is_multiple_of(crate::walk::STATE_CHECK_EVERY)
                {
                    self.check_running().await?;
                }
                done.push((item.task, Some(out)));
            }
            frontier = self.advance(done).await?;
        }
        Ok(())
    }

    /// The releases a handled item owes, released when the walk ends well.
    fn note_reads(&mut self, item: &Item) {
        let dag = &self.plan.dag;
        for &d in &item.releases {
            self.releases.push(Release {
                producer: d,
                reader: item.task,
                readers: dag.children(d).len() as u32,
            });
        }
    }

    /// Whether `payload` is `from`'s output stored as an object.
    fn is_output_object(&self, from: TaskIdx, payload: &Payload) -> bool {
        matches!(payload, Payload::Object(k) if k.is_output_of(&self.plan.job, from))
    }

    /// Whether the readers of `from`'s output `value` release it when done: when it is a
    /// stored object (`object`), or a large value that some reader may have read from the
    /// store (its output cell; a value whose only child is a chain is never stored). Job
    /// outputs stay for the engine.
    fn releasable(&self, from: TaskIdx, object: bool, value: &Value) -> bool {
        let dag = &self.plan.dag;
        if self.plan.config.keep_intermediates || dag.is_output(from) {
            return false;
        }
        if object {
            return true;
        }
        // An inline value is at most the inline limit (larger ones travel as objects).
        if self.plan.config.inline_limit < RELEASE_MIN_BYTES {
            return false;
        }
        let only_chain = matches!(dag.children(from), [c] if dag.needed(c.task) == 1);
        !only_chain && value.approx_size() >= RELEASE_MIN_BYTES
    }

    /// Every item's inputs (dependency outputs in order, then args), reading what no item
    /// holds in one batch (`docs/conditional-branches.md` for skips).
    async fn gather(&mut self, frontier: &mut [Item]) -> Result<Vec<Gathered>, WalkError> {
        let plan = self.plan.clone();
        let dag = &plan.dag;
        let guarded = dag.has_guards();
        let branches_before = self.branches.len();
        let mut missing: Vec<TaskIdx> = Vec::new();
        for item in frontier.iter() {
            if item.skip {
                continue;
            }
            for d in dag.deps(item.task) {
                if !item.known.iter().any(|(k, _)| k == d) && !item.skipped.contains(d) {
                    missing.push(*d);
                }
            }
        }
        let mut fetched: HashMap<TaskIdx, Value> = HashMap::new();
        // Dependencies read back as skip markers (sorted).
        let mut fetched_skips: Vec<TaskIdx> = Vec::new();
        // Dependencies read from the store that their readers release, and those already
        // released (both sorted, as `missing` is).
        let mut fetched_releasable: Vec<TaskIdx> = Vec::new();
        let mut fetched_released: Vec<TaskIdx> = Vec::new();
        if !missing.is_empty() {
            missing.sort_unstable();
            missing.dedup();
            let got = self.svc.store.get_outputs(&plan.job, &missing).await?;
            let mut payloads = Vec::with_capacity(missing.len());
            for (&d, p) in missing.iter().zip(got) {
                let Some(p) = p else {
                    let reader = frontier
                        .iter()
                        .find(|i| dag.deps(i.task).contains(&d))
                        .map_or(d, |i| i.task);
                    return Err(BackendError::MissingOutput {
                        reader: dag.id(reader).clone(),
                        dep: dag.id(d).clone(),
                    }
                    .into());
                };
                if p.is_skipped() {
                    fetched_skips.push(d);
                    continue;
                }
                payloads.push((d, d, p));
            }
            let read: Vec<(TaskIdx, bool)> = payloads
                .iter()
                .map(|(d, _, p)| (*d, self.is_output_object(*d, p)))
                .collect();
            let values = self.resolve_all(payloads).await?;
            for ((d, object), v) in read.into_iter().zip(values) {
                match v {
                    Some(v) => {
                        if self.releasable(d, object, &v) {
                            fetched_releasable.push(d);
                        }
                        fetched.insert(d, v);
                    }
                    None => fetched_released.push(d),
                }
            }
        }
        let mut all = Vec::with_capacity(frontier.len());
        for item in frontier.iter_mut() {
            if item.skip {
                all.push(Gathered::Skip);
                continue;
            }
            let deps = dag.deps(item.task);
            let args = dag.args(item.task);
            let in_hand = |d: &TaskIdx| item.known.iter().any(|(k, _)| k == d);
            if !fetched_released.is_empty()
                && deps
                    .iter()
                    .any(|d| !in_hand(d) && fetched_released.binary_search(d).is_ok())
            {
                // Every reader of that input is done with it, this one included: a
                // duplicate of a walk that ended well.
                all.push(Gathered::Duplicate);
                continue;
            }
            if !fetched_releasable.is_empty() {
                for d in deps {
                    if fetched_releasable.binary_search(d).is_ok()
                        && !in_hand(d)
                        && !item.releases.contains(d)
                    {
                        item.releases.push(*d);
                    }
                }
            }
            if guarded {
                if !fetched_skips.is_empty() {
                    item.skipped.extend(
                        deps.iter()
                            .filter(|d| fetched_skips.binary_search(d).is_ok()),
                    );
                }
                item.skipped.sort_unstable();
                item.skipped.dedup();
                if !item.skipped.is_empty() && self.skipped_by_deps(item.task, &item.skipped) {
                    item.known.clear();
                    all.push(Gathered::Skip);
                    continue;
                }
            }
            let mut inputs = Vec::with_capacity(deps.len() + args.len());
            if let ([d], [(k, _)]) = (deps, item.known.as_slice())
                && d == k
                && let Some((_, v)) = item.known.pop()
            {
                // The chain case: move the one input in hand.
                inputs.push(v);
            } else {
                for d in deps {
                    let v = match item.known.iter().find(|(k, _)| k == d) {
                        Some((_, v)) => v.clone(),
                        // A skipped dependency (join: any) gives null.
                        None => fetched.get(d).cloned().unwrap_or_default(),
                    };
                    inputs.push(v);
                }
            }
            item.known.clear();
            if guarded && !self.guard_passes(item.task, &item.skipped, &inputs) {
                all.push(Gathered::Skip);
                continue;
            }
            inputs.extend(args.iter().cloned());
            all.push(Gathered::Run(inputs));
        }
        if plan.config.report_branches && self.branches.len() > branches_before {
            // The engine re-plans its warm-up hints on these; they cannot wait for the end
            // of the walk.
            let outcomes = self.branches[branches_before..].to_vec();
            if let Err(e) = self
                .svc
                .store
                .append_events(&plan.job, vec![Event::Branches { outcomes }])
                .await
            {
                tracing::debug!(job = %plan.job, error = %e, "could not report branch outcomes");
            }
        }
        Ok(all)
    }

    /// Whether `t` is skipped because of its skipped dependencies `skipped` (sorted, not
    /// empty): under `join: all` any one skips it, under `join: any` only all of them.
    fn skipped_by_deps(&self, t: TaskIdx, skipped: &[TaskIdx]) -> bool {
        let dag = &self.plan.dag;
        match dag.join(t) {
            Join::All => true,
            Join::Any => dag.deps(t).iter().all(|d| skipped.binary_search(d).is_ok()),
        }
    }

    /// Whether `t`'s guard (if any) lets it run, given its dependency inputs in order. A
    /// guard whose dependency was skipped fails without being evaluated; an evaluated guard
    /// is recorded as a branch outcome.
    fn guard_passes(&mut self, t: TaskIdx, skipped: &[TaskIdx], inputs: &[Value]) -> bool {
        let dag = &self.plan.dag;
        let Some(g) = dag.guard(t) else {
            return true;
        };
        let deps = dag.deps(t);
        let Some(pos) = deps.iter().position(|&d| *dag.id(d) == g.dep) else {
            // Validation rules this out; never run an unevaluable guard.
            return false;
        };
        if skipped.binary_search(&deps[pos]).is_ok() {
            return false;
        }
        let taken = inputs.get(pos).is_some_and(|v| g.matches(v));
        self.branches.push((t, taken));
        taken
    }

    /// Applies one step's results (see the module doc); returns the next frontier. A result
    /// of `None` is a skipped task. The decision is [`rukong_core::step`]'s; this does its
    /// I/O, in the order it gives: reports, writes, arrivals, hand-offs, pushes.
    async fn advance(
        &mut self,
        done: Vec<(TaskIdx, Option<Value>)>,
    ) -> Result<Vec<Item>, WalkError> {
        let plan = self.plan.clone();
        let dag = &plan.dag;
        let finished: Vec<Finished> = done
            .iter()
            .map(|(task, out)| Finished {
                task: *task,
                skipped: out.is_none(),
            })
            .collect();
        let mut step = step::plan_step(dag, &plan.schedule, &finished);
        // Each finished task's output and (once made) payload, by its place in `done`.
        let mut outs: Vec<(TaskIdx, Option<Value>, Option<Payload>)> = done
            .into_iter()
            .map(|(t, out)| {
                let p = out.is_none().then_some(Payload::Skipped);
                (t, out, p)
            })
            .collect();
        // Where each finished task stands in `done` (tasks are distinct within a step).
        let mut index: Vec<(TaskIdx, usize)> = finished
            .iter()
            .enumerate()
            .map(|(i, f)| (f.task, i))
            .collect();
        index.sort_unstable();
        let at = |t: TaskIdx| {
            index
                .binary_search_by_key(&t, |&(task, _)| task)
                .map_or(0, |k| index[k].1)
        };
        for r in &step.reports {
            let i = at(r.task);
            let event = if r.skipped {
                Event::TaskSkipped {
                    task: r.task,
                    sink: r.sink,
                }
            } else {
                let payload = if dag.is_output(r.task) {
                    Some(self.payload_of(&mut outs[i]).await?)
                } else {
                    None
                };
                Event::TaskResult {
                    task: r.task,
                    sink: r.sink,
                    payload,
                }
            };
            self.events.push(event);
        }
        // The level's writes and arrival records: one call (one round trip in Redis). An
        // output only its own completing arrivals read may stay here (see `LevelWrite`).
        let mut writes = Vec::with_capacity(step.writes.len());
        for (&t, readers) in step.writes.iter().zip(std::mem::take(&mut step.readers)) {
            writes.push(LevelWrite {
                task: t,
                payload: self.payload_of(&mut outs[at(t)]).await?,
                readers,
            });
        }
        let answers = if writes.is_empty() && step.arrivals.is_empty() {
            Vec::new()
        } else {
            self.svc
                .store
                .put_outputs_and_arrive(&plan.job, writes, &step.arrivals)
                .await?
        };
        if let Some(marker) = &self.svc.config.crash_after_fan_in
            && answers.iter().any(|a| a.completes())
        {
            crash_once(marker);
        }
        for h in &step.handoffs {
            let payload = self.payload_of(&mut outs[at(h.parent)]).await?;
            let req = FanOutRequest {
                job: plan.job.clone(),
                parent: h.parent,
                payload,
                children: h.children.clone(),
            };
            self.svc.proxy.fan_out(req).await?;
            self.stats.proxy_fanouts += 1;
        }
        // Kept for the siblings in hand below; deciding reads only the answers.
        let arrivals = std::mem::take(&mut step.arrivals);
        let runs_gpu = self.svc.config.class == ExecClass::Gpu;
        let decided = step.decide(dag, &answers, runs_gpu);
        // Payloads of the parents whose children travel.
        for s in decided.sends.iter().chain(&decided.moved) {
            if let Some(from) = s.from {
                self.payload_of(&mut outs[at(from)]).await?;
            }
        }
        let payload = |from: TaskIdx| outs[at(from)].2.clone().unwrap_or(Payload::Skipped);
        let [mut cpu, mut gpu] = step::pack(&plan.job, &plan.config, &decided.sends, payload);
        // Moved continuations go one per invocation, so that GPU slots can bundle them.
        if !decided.moved.is_empty() {
            let alone = JobConfig {
                max_starts_per_invocation: 1,
                ..plan.config
            };
            let [c, g] = step::pack(&plan.job, &alone, &decided.moved, payload);
            cpu.extend(c);
            gpu.extend(g);
        }
        for (class, mut invs) in [(ExecClass::Cpu, cpu), (ExecClass::Gpu, gpu)] {
            if class == self.svc.config.class && !invs.is_empty() {
                // Locality: children of this executor's class run on its idle slots.
                let n = invs.len();
                invs = self.svc.pool.keep(&mut self.kept, invs);
                self.stats.kept_local += (n - invs.len()) as u32;
            }
            if !invs.is_empty() {
                self.stats.invocations_sent += invs.len() as u32;
                self.svc.store.push(class, invs).await?;
            }
        }
        // Fan-in siblings that finished here: their outputs are the ones just stored, so
        // their child takes them from memory (cloned before the values move on).
        let offered = if self.svc.store.level_writes_are_atomic() {
            siblings::in_hand(dag, &decided.next, &finished, &arrivals, &answers, |k| {
                outs[k].1.is_some()
            })
        } else {
            Vec::new()
        };
        let in_hand: Vec<(usize, TaskIdx, Value, bool)> = offered
            .into_iter()
            .filter_map(|(i, k)| {
                let (d, v, p) = &outs[k];
                let v = v.clone()?;
                let object = p.as_ref().is_some_and(|p| self.is_output_object(*d, p));
                let release = self.releasable(*d, object, &v);
                Some((i, *d, v, release))
            })
            .collect();
        // Every payload is made: the values move on into the next frontier (a parent is
        // `from` of at most one continuation).
        let mut next = Vec::with_capacity(decided.next.len());
        for n in decided.next {
            next.push(match n {
                Next::Skip { task } => Item::skipped(task),
                Next::Run { task, from } => {
                    let i = at(from);
                    match (finished[i].skipped, outs[i].1.take()) {
                        (true, _) => Item::from_parent(task, from, &None),
                        (false, Some(v)) => {
                            let object = outs[i]
                                .2
                                .as_ref()
                                .is_some_and(|p| self.is_output_object(from, p));
                            // Others may read it from the store: this reader releases too.
                            let release = self.releasable(from, object, &v);
                            let mut item = Item::with(task, from, v);
                            if release {
                                item.releases.push(from);
                            }
                            item
                        }
                        (false, None) => {
                            return Err(BackendError::ContinuedTwice {
                                task: dag.id(from).clone(),
                            }
                            .into());
                        }
                    }
                }
            });
        }
        for (i, d, v, release) in in_hand {
            let item = &mut next[i];
            item.known.push((d, v));
            if release {
                item.releases.push(d);
            }
        }
        Ok(next)
    }

    /// The payload of a finished task (made once: inline, or put as an object).
    async fn payload_of(
        &mut self,
        entry: &mut (TaskIdx, Option<Value>, Option<Payload>),
    ) -> Result<Payload, WalkError> {
        let (t, out, cached) = entry;
        match out {
            Some(v) => self.payload(*t, v, cached).await,
            None => Ok(Payload::Skipped),
        }
    }
}

/// Values from this size on are released by their readers even when they travel inline
/// (embedded mode passes every output inline, and keeps fan-in inputs in its output cells).
pub const RELEASE_MIN_BYTES: usize = 64 * 1024;

/// What a frontier item does after its inputs were gathered.
enum Gathered {
    /// It runs on these inputs (dependency outputs in order, then args).
    Run(Vec<Value>),
    /// It is skipped.
    Skip,
    /// An input of it was released by all its readers: this item ran already, in a walk
    /// that ended well, and this walk of it is a duplicate that goes no further.
    Duplicate,
}

/// Aborts the process if this is the first executor to create `marker` (fault injection:
/// a kill between a fan-in's arrival and the push of what follows it).
fn crash_once(marker: &std::path::Path) {
    let first = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(marker)
        .is_ok();
    if first {
        tracing::error!(marker = %marker.display(), "crashing after a fan-in's arrival (fault injection)");
        std::process::abort();
    }
}
