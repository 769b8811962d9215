//! The frontier walk: an invocation's schedule walked level by level, so that store
//! traffic is batched per level, not per task (DESIGN §4.8: about one pipelined batch per
//! step of an invocation).
//!
//! A frontier is every task of the invocation that is ready to run now. One step:
//! 1. **inputs**: the dependencies no task has in hand are read in one batch;
//! 2. **run**: every task runs (inline, or off-thread when heavy);
//! 3. **advance**, in this order, so that writes precede counts (DESIGN §4.5):
//!    - one batched write of the outputs that fan-in children will read;
//!    - one batch of arrival records;
//!    - the large fan-outs handed to the proxy;
//!    - one batched push of the invocations for ready children that are sent away.
//!
//! The next frontier holds the children this slot continues into: chains (the value never
//! leaves memory), fan-ins whose last parent arrived here, and each fan-out's become child.
//!
//! **Conditional branches** (DESIGN §8). A task is *skipped* when its guard fails, when
//! (`join: all`, the default) any dependency was skipped, or when (`join: any`) every
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

use crate::walk::{WalkError, Walker, class_of};
use rukong_core::dag::{Child, Join};
use rukong_core::messages::{Event, Invocation, KnownInput, Payload, Start};
use rukong_core::proxy::{FanOutRequest, Proxy};
use rukong_core::store::{ArrivalReq, FlaggedArrival, Store};
use rukong_core::{ExecClass, TaskIdx, Value};
use std::collections::HashMap;

/// A task ready to run, with the inputs this slot already holds.
pub(crate) struct Item {
    pub task: TaskIdx,
    pub known: Vec<(TaskIdx, Value)>,
    /// Dependencies known to have been skipped (only ever filled when the DAG has guards).
    pub skipped: Vec<TaskIdx>,
    /// Already known to be skipped: it reads nothing and runs nothing.
    pub skip: bool,
}

impl Item {
    /// A task with one input in hand (a chain, a become child, a completed fan-in).
    fn with(task: TaskIdx, from: TaskIdx, out: Value) -> Item {
        Item {
            task,
            known: vec![(from, out)],
            skipped: Vec::new(),
            skip: false,
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
        }
    }
}

/// A finished task whose continuation waits on this step's arrival records.
struct Held {
    task: TaskIdx,
    /// `None` for a skipped task.
    out: Option<Value>,
    payload: Payload,
    /// This task's arrival records: `arrivals[first..first + n]`.
    first: usize,
    /// Position of the preferred (become) child; `None` for a single fan-in child.
    preferred: Option<usize>,
    fan_out: bool,
}

impl<S: Store, P: Proxy> Walker<'_, S, P> {
    /// Walks every start of an invocation to the end.
    pub(crate) async fn walk_all(&mut self, starts: Vec<Start>) -> Result<(), WalkError> {
        let plan = self.plan.clone();
        let dag = &plan.dag;
        let mut frontier = Vec::with_capacity(starts.len());
        for s in starts {
            if s.task.get() >= dag.len() {
                return Err(WalkError::Backend {
                    retryable: false,
                    error: format!(
                        "invocation names task {}, but the job has {}",
                        s.task,
                        dag.len()
                    ),
                });
            }
            let mut known = Vec::with_capacity(s.inputs.len().max(1));
            let mut skipped = Vec::new();
            for KnownInput { from, payload } in s.inputs {
                if payload.is_skipped() {
                    skipped.push(from);
                } else {
                    known.push((from, self.resolve(s.task, from, payload).await?));
                }
            }
            frontier.push(Item {
                task: s.task,
                known,
                skipped,
                skip: false,
            });
        }
        while !frontier.is_empty() {
            let inputs = self.gather(&mut frontier).await?;
            let mut done = Vec::with_capacity(frontier.len());
            for (item, inp) in frontier.drain(..).zip(inputs) {
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

    /// Every item's inputs (dependency outputs in order, then args), reading what no item
    /// holds in one batch; `None` for an item that is skipped (DESIGN §8).
    async fn gather(
        &mut self,
        frontier: &mut [Item],
    ) -> Result<Vec<Option<Vec<Value>>>, WalkError> {
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
                    return Err(WalkError::Backend {
                        retryable: true,
                        error: format!(
                            "task {}: the output of dependency {} is not in the store",
                            dag.id(reader),
                            dag.id(d)
                        ),
                    });
                };
                if p.is_skipped() {
                    fetched_skips.push(d);
                    continue;
                }
                payloads.push((d, d, p));
            }
            let read: Vec<TaskIdx> = payloads.iter().map(|(d, _, _)| *d).collect();
            let values = self.resolve_all(payloads).await?;
            fetched.extend(read.into_iter().zip(values));
        }
        let mut all = Vec::with_capacity(frontier.len());
        for item in frontier.iter_mut() {
            if item.skip {
                all.push(None);
                continue;
            }
            let deps = dag.deps(item.task);
            let args = dag.args(item.task);
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
                    all.push(None);
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
                all.push(None);
                continue;
            }
            inputs.extend(args.iter().cloned());
            all.push(Some(inputs));
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
    /// of `None` is a skipped task.
    async fn advance(
        &mut self,
        done: Vec<(TaskIdx, Option<Value>)>,
    ) -> Result<Vec<Item>, WalkError> {
        let plan = self.plan.clone();
        let dag = &plan.dag;
        let mut next = Vec::new();
        let mut writes: Vec<(TaskIdx, Payload)> = Vec::new();
        let mut arrivals: Vec<FlaggedArrival> = Vec::new();
        let mut held: Vec<Held> = Vec::new();
        let mut proxied: Vec<FanOutRequest> = Vec::new();
        let arrival = |c: &Child, skipped: bool| FlaggedArrival {
            req: ArrivalReq {
                child: c.task,
                pos: c.pos,
                needed: dag.needed(c.task),
            },
            skipped,
        };
        for (t, out) in done {
            let kids = dag.children(t);
            let skipped = out.is_none();
            let mut cached = if skipped {
                Some(Payload::Skipped)
            } else {
                None
            };
            if kids.is_empty() || dag.is_output(t) {
                match &out {
                    Some(v) => {
                        let payload = if dag.is_output(t) {
                            Some(self.payload(t, v, &mut cached).await?)
                        } else {
                            None
                        };
                        self.events.push(Event::TaskResult {
                            task: t,
                            sink: kids.is_empty(),
                            payload,
                        });
                    }
                    None => self.events.push(Event::TaskSkipped {
                        task: t,
                        sink: kids.is_empty(),
                    }),
                }
            }
            match kids {
                [] => {}
                [c] if dag.needed(c.task) == 1 => next.push(match out {
                    Some(v) => Item::with(c.task, t, v),
                    // Its only dependency was skipped: skipped too, whatever its join.
                    None => Item::skipped(c.task),
                }),
                [c] => {
                    let payload = self.output_payload(t, &out, &mut cached).await?;
                    writes.push((t, payload.clone()));
                    held.push(Held {
                        task: t,
                        out,
                        payload,
                        first: arrivals.len(),
                        preferred: None,
                        fan_out: false,
                    });
                    arrivals.push(arrival(c, skipped));
                }
                _ => {
                    let payload = self.output_payload(t, &out, &mut cached).await?;
                    if kids.iter().any(|c| dag.needed(c.task) > 1) {
                        writes.push((t, payload.clone()));
                    }
                    let preferred = plan.schedule.become_pos(t);
                    if plan.schedule.use_proxy(dag, t) {
                        // Become the preferred child when it needs nothing else; the proxy
                        // takes the rest (after this step's writes are durable). A skipped
                        // parent's payload is the skip marker: the proxy records skipped
                        // arrivals, and the children it enqueues are skipped where they land.
                        let become_pos = preferred.filter(|&p| dag.needed(kids[p].task) == 1);
                        let children: Vec<Child> = kids
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| Some(*i) != become_pos)
                            .map(|(_, c)| *c)
                            .collect();
                        proxied.push(FanOutRequest {
                            job: plan.job.clone(),
                            parent: t,
                            payload,
                            children,
                        });
                        if let Some(p) = become_pos {
                            next.push(match out {
                                Some(v) => Item::with(kids[p].task, t, v),
                                None => Item::skipped(kids[p].task),
                            });
                        }
                    } else {
                        let first = arrivals.len();
                        arrivals.extend(
                            kids.iter()
                                .filter(|c| dag.needed(c.task) > 1)
                                .map(|c| arrival(c, skipped)),
                        );
                        held.push(Held {
                            task: t,
                            out,
                            payload,
                            first,
                            preferred,
                            fan_out: true,
                        });
                    }
                }
            }
        }
        if !writes.is_empty() {
            self.svc.store.put_outputs(&plan.job, writes).await?;
        }
        let results = if arrivals.is_empty() {
            Vec::new()
        } else {
            self.svc
                .store
                .record_flagged_arrivals(&plan.job, &arrivals)
                .await?
        };
        for req in proxied {
            self.svc.proxy.fan_out(req).await?;
            self.stats.proxy_fanouts += 1;
        }
        let mut sends: [Vec<Invocation>; 2] = [Vec::new(), Vec::new()];
        for h in held {
            let kids = dag.children(h.task);
            if !h.fan_out {
                if let Some(a) = results.get(h.first).filter(|a| a.completes()) {
                    let c = kids[0].task;
                    next.push(if a.skips(dag.join(c)) {
                        Item::skipped(c)
                    } else {
                        Item::from_parent(c, h.task, &h.out)
                    });
                }
                continue;
            }
            let mut records = results[h.first..].iter();
            let mut ready: Vec<usize> = Vec::with_capacity(kids.len());
            for (i, c) in kids.iter().enumerate() {
                let skip = if dag.needed(c.task) == 1 {
                    h.out.is_none()
                } else {
                    match records.next() {
                        Some(a) if a.completes() => a.skips(dag.join(c.task)),
                        _ => continue,
                    }
                };
                if skip {
                    // Skipped children are walked here: they run nothing.
                    next.push(Item::skipped(c.task));
                } else {
                    ready.push(i);
                }
            }
            let become_pos = h
                .preferred
                .filter(|p| ready.contains(p))
                .or_else(|| ready.first().copied());
            let others: Vec<TaskIdx> = ready
                .iter()
                .filter(|&&i| Some(i) != become_pos)
                .map(|&i| kids[i].task)
                .collect();
            self.pack(h.task, &h.payload, &others, &mut sends);
            if let Some(p) = become_pos {
                next.push(Item::from_parent(kids[p].task, h.task, &h.out));
            }
        }
        if self.svc.config.class == ExecClass::Cpu {
            next = self.hand_off_gpu_tasks(next, &mut sends).await?;
        }
        for (class, invs) in [ExecClass::Cpu, ExecClass::Gpu].into_iter().zip(sends) {
            if !invs.is_empty() {
                self.stats.invocations_sent += invs.len() as u32;
                self.svc.store.push(class, invs).await?;
            }
        }
        Ok(next)
    }

    /// The payload of a finished task's output, or the skip marker for a skipped one.
    async fn output_payload(
        &mut self,
        t: TaskIdx,
        out: &Option<Value>,
        cached: &mut Option<Payload>,
    ) -> Result<Payload, WalkError> {
        match out {
            Some(v) => self.payload(t, v, cached).await,
            None => Ok(Payload::Skipped),
        }
    }

    /// A CPU slot never runs a task that asks for a GPU: the ones it would continue into
    /// (chains, fan-in children it completed, become children) go to the `gpu` queue
    /// instead, carrying the inputs in hand. Returns the items it keeps.
    async fn hand_off_gpu_tasks(
        &mut self,
        next: Vec<Item>,
        sends: &mut [Vec<Invocation>; 2],
    ) -> Result<Vec<Item>, WalkError> {
        let plan = self.plan.clone();
        if !next
            .iter()
            .any(|i| class_of(&plan, i.task) == ExecClass::Gpu)
        {
            return Ok(next);
        }
        let mut keep = Vec::with_capacity(next.len());
        for item in next {
            // A task known to be skipped runs nothing: it is skipped here, on any slot.
            if item.skip || class_of(&plan, item.task) != ExecClass::Gpu {
                keep.push(item);
                continue;
            }
            let mut inputs = Vec::with_capacity(item.known.len() + item.skipped.len());
            for (from, value) in item.known {
                let payload = self.payload(from, &value, &mut None).await?;
                inputs.push(KnownInput { from, payload });
            }
            inputs.extend(item.skipped.into_iter().map(|from| KnownInput {
                from,
                payload: Payload::Skipped,
            }));
            sends[ExecClass::Gpu as usize].push(Invocation {
                job: plan.job.clone(),
                warm: Vec::new(),
                warm_ttl_ms: 0,
                release: Vec::new(),
                starts: vec![Start {
                    task: item.task,
                    inputs,
                }],
            });
        }
        Ok(keep)
    }

    /// Packs ready children into invocations (by class) that carry the parent's output.
    fn pack(
        &self,
        from: TaskIdx,
        payload: &Payload,
        tasks: &[TaskIdx],
        out: &mut [Vec<Invocation>; 2],
    ) {
        if tasks.is_empty() {
            return;
        }
        let plan = &self.plan;
        let mut by_class: [Vec<TaskIdx>; 2] = [Vec::new(), Vec::new()];
        for &t in tasks {
            by_class[class_of(plan, t) as usize].push(t);
        }
        for (list, invs) in by_class.iter().zip(out.iter_mut()) {
            if list.is_empty() {
                continue;
            }
            invs.extend(
                list.chunks(plan.config.chunk_size(list.len()))
                    .map(|group| Invocation {
                        job: plan.job.clone(),
                        warm: Vec::new(),
                        warm_ttl_ms: 0,
                        release: Vec::new(),
                        starts: group
                            .iter()
                            .map(|&task| Start {
                                task,
                                inputs: vec![KnownInput {
                                    from,
                                    payload: payload.clone(),
                                }],
                            })
                            .collect(),
                    }),
            );
        }
    }
}
