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

use crate::walk::{WalkError, Walker, class_of};
use rukong_core::dag::Child;
use rukong_core::messages::{Event, Invocation, KnownInput, Payload, Start};
use rukong_core::proxy::{FanOutRequest, Proxy};
use rukong_core::store::{ArrivalReq, Store};
use rukong_core::{ExecClass, TaskIdx, Value};
use std::collections::HashMap;

/// A task ready to run, with the inputs this slot already holds.
pub(crate) struct Item {
    pub task: TaskIdx,
    pub known: Vec<(TaskIdx, Value)>,
}

/// A finished task whose continuation waits on this step's arrival records.
struct Held {
    task: TaskIdx,
    out: Value,
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
            for KnownInput { from, payload } in s.inputs {
                known.push((from, self.resolve(s.task, from, payload).await?));
            }
            frontier.push(Item {
                task: s.task,
                known,
            });
        }
        while !frontier.is_empty() {
            let inputs = self.gather(&mut frontier).await?;
            let mut done = Vec::with_capacity(frontier.len());
            for (item, inp) in frontier.drain(..).zip(inputs) {
                let out = self.run_task(item.task, inp).await?;
                self.stats.tasks += 1;
                if self
                    .stats
                    .tasks
                    .is_multiple_of(crate::walk::STATE_CHECK_EVERY)
                {
                    self.check_running().await?;
                }
                done.push((item.task, out));
            }
            frontier = self.advance(done).await?;
        }
        Ok(())
    }

    /// Every item's inputs (dependency outputs in order, then args), reading what no item
    /// holds in one batch.
    async fn gather(&mut self, frontier: &mut [Item]) -> Result<Vec<Vec<Value>>, WalkError> {
        let plan = self.plan.clone();
        let dag = &plan.dag;
        let mut missing: Vec<TaskIdx> = Vec::new();
        for item in frontier.iter() {
            for d in dag.deps(item.task) {
                if !item.known.iter().any(|(k, _)| k == d) {
                    missing.push(*d);
                }
            }
        }
        let mut fetched: HashMap<TaskIdx, Value> = HashMap::new();
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
                payloads.push((d, d, p));
            }
            let values = self.resolve_all(payloads).await?;
            fetched.extend(missing.iter().copied().zip(values));
        }
        let mut all = Vec::with_capacity(frontier.len());
        for item in frontier.iter_mut() {
            let deps = dag.deps(item.task);
            let args = dag.args(item.task);
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
                        None => fetched.get(d).cloned().unwrap_or_default(),
                    };
                    inputs.push(v);
                }
            }
            item.known.clear();
            inputs.extend(args.iter().cloned());
            all.push(inputs);
        }
        Ok(all)
    }

    /// Applies one step's results (see the module doc); returns the next frontier.
    async fn advance(&mut self, done: Vec<(TaskIdx, Value)>) -> Result<Vec<Item>, WalkError> {
        let plan = self.plan.clone();
        let dag = &plan.dag;
        let mut next = Vec::new();
        let mut writes: Vec<(TaskIdx, Payload)> = Vec::new();
        let mut arrivals: Vec<ArrivalReq> = Vec::new();
        let mut held: Vec<Held> = Vec::new();
        let mut proxied: Vec<FanOutRequest> = Vec::new();
        let arrival = |c: &Child| ArrivalReq {
            child: c.task,
            pos: c.pos,
            needed: dag.needed(c.task),
        };
        for (t, out) in done {
            let kids = dag.children(t);
            let mut cached = None;
            if kids.is_empty() || dag.is_output(t) {
                let payload = if dag.is_output(t) {
                    Some(self.payload(t, &out, &mut cached).await?)
                } else {
                    None
                };
                self.events.push(Event::TaskResult {
                    task: t,
                    sink: kids.is_empty(),
                    payload,
                });
            }
            match kids {
                [] => {}
                [c] if dag.needed(c.task) == 1 => next.push(Item {
                    task: c.task,
                    known: vec![(t, out)],
                }),
                [c] => {
                    let payload = self.payload(t, &out, &mut cached).await?;
                    writes.push((t, payload.clone()));
                    held.push(Held {
                        task: t,
                        out,
                        payload,
                        first: arrivals.len(),
                        preferred: None,
                        fan_out: false,
                    });
                    arrivals.push(arrival(c));
                }
                _ => {
                    let payload = self.payload(t, &out, &mut cached).await?;
                    if kids.iter().any(|c| dag.needed(c.task) > 1) {
                        writes.push((t, payload.clone()));
                    }
                    let preferred = plan.schedule.become_pos(t);
                    if plan.schedule.use_proxy(dag, t) {
                        // Become the preferred child when it needs nothing else; the proxy
                        // takes the rest (after this step's writes are durable).
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
                            next.push(Item {
                                task: kids[p].task,
                                known: vec![(t, out)],
                            });
                        }
                    } else {
                        let first = arrivals.len();
                        arrivals
                            .extend(kids.iter().filter(|c| dag.needed(c.task) > 1).map(arrival));
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
            self.svc.store.record_arrivals(&plan.job, &arrivals).await?
        };
        for req in proxied {
            self.svc.proxy.fan_out(req).await?;
            self.stats.proxy_fanouts += 1;
        }
        let mut sends: [Vec<Invocation>; 2] = [Vec::new(), Vec::new()];
        for h in held {
            let kids = dag.children(h.task);
            if !h.fan_out {
                if results.get(h.first).is_some_and(|a| a.completes()) {
                    next.push(Item {
                        task: kids[0].task,
                        known: vec![(h.task, h.out)],
                    });
                }
                continue;
            }
            let mut completes = results[h.first..].iter().map(|a| a.completes());
            let ready: Vec<usize> = kids
                .iter()
                .enumerate()
                .filter(|(_, c)| dag.needed(c.task) == 1 || completes.next() == Some(true))
                .map(|(i, _)| i)
                .collect();
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
                next.push(Item {
                    task: kids[p].task,
                    known: vec![(h.task, h.out)],
                });
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
            if class_of(&plan, item.task) != ExecClass::Gpu {
                keep.push(item);
                continue;
            }
            let mut inputs = Vec::with_capacity(item.known.len());
            for (from, value) in item.known {
                let payload = self.payload(from, &value, &mut None).await?;
                inputs.push(KnownInput { from, payload });
            }
            sends[ExecClass::Gpu as usize].push(Invocation {
                job: plan.job.clone(),
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
