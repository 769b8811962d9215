//! The walk's one decision, as pure functions (`docs/architecture.md` and
//! `docs/conditional-branches.md`): what a slot does after a step of tasks finished, and what the
//! proxy does with a fan-out handed to it. Executors and the proxy both call these; all I/O happens
//! around them.
//!
//! A step has two phases, split by the one store call whose answer matters:
//! 1. [`plan_step`] takes the tasks that just finished (ran, or were skipped) and says what
//!    to **report** (sinks and requested outputs), which outputs to **write** (the ones a
//!    fan-in child will read), which **arrivals** to record, and which large fan-outs to
//!    **hand** to the proxy, in that order: writes before counts, so that a child that
//!    becomes ready always finds its inputs.
//! 2. [`Step::decide`] takes the store's answers to those arrivals and says what the slot
//!    **continues into** ([`Next`]) and what it **sends** away as invocations ([`Send`]).
//!
//! The rules:
//! - **chain** (one child, whose only dependency is this task): continue into it;
//! - **fan-in** (one child with several dependencies): continue into it only when this
//!   parent is the child's completer ([`crate::store::Arrival::completes`], true again on
//!   every re-arrival, so a re-run after a lost reply or a crash decides the same way);
//! - **fan-out**: become the schedule's preferred child when it is ready, else the first
//!   ready one; send the other ready children; at out-degree ≥ F hand every child but a
//!   ready become child to the proxy, which applies [`fan_out`] to them;
//! - **skips**: a skipped parent's chain and single-dependency children are skipped in the
//!   slot ([`Next::Skip`]); a completed fan-in child is skipped when
//!   [`crate::store::Arrival::skips`] says so under its join mode;
//! - **classes**: a slot that does not run GPU tasks moves the GPU tasks it would continue
//!   into to the `gpu` queue ([`Decided::moved`]); a known-skipped task stays (it runs
//!   nothing).
//!
//! [`pack`] turns sends into invocations, batched per parent and class.

use crate::dag::{Child, Dag};
use crate::ids::{ExecClass, JobId, TaskIdx};
use crate::messages::{Invocation, KnownInput, Payload, Start};
use crate::plan::JobConfig;
use crate::schedule::Schedule;
use crate::store::{Arrival, ArrivalReq, FlaggedArrival};

/// A task that just finished: it ran, or it was skipped (it has no output).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finished {
    pub task: TaskIdx,
    pub skipped: bool,
}

/// A task the slot continues into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Run `task`, with the output of its dependency `from` in hand (or, when `from` was
    /// skipped, the knowledge that it was); other dependencies are read from the store.
    Run { task: TaskIdx, from: TaskIdx },
    /// `task` is skipped: it reads nothing and runs nothing, and walks on as skipped.
    Skip { task: TaskIdx },
}

/// A task sent away as an invocation that carries `from`'s payload (none for a source).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Send {
    pub task: TaskIdx,
    pub from: Option<TaskIdx>,
    pub class: ExecClass,
}

/// A sink or requested output that finished: its result (or skip) is reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Report {
    pub task: TaskIdx,
    pub sink: bool,
    pub skipped: bool,
}

/// A fan-out handed to the proxy: these children of `parent`, with its payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handoff {
    pub parent: TaskIdx,
    pub children: Vec<Child>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WaitKind {
    /// The parent's one child is a fan-in.
    FanIn,
    /// A fan-out decided in the slot, with the schedule's preferred child.
    FanOut { preferred: Option<usize> },
}

/// A finished task whose continuation waits on the answers to `arrivals[first..]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Wait {
    parent: TaskIdx,
    skipped: bool,
    first: usize,
    kind: WaitKind,
}

/// Phase one of a step: what to do before the arrival answers are known (in the order of
/// the fields).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Step {
    pub reports: Vec<Report>,
    /// Outputs to write first: some child of each is a fan-in that reads it.
    pub writes: Vec<TaskIdx>,
    /// For each of `writes`, the positions in `arrivals` of all its fan-in readers, or
    /// empty when some of them arrive through the proxy ([`crate::store::LevelWrite`]: an
    /// output whose readers this parent all completes need not be stored).
    pub readers: Vec<Vec<u32>>,
    /// Then these arrival records, in one batch; their answers go to [`Step::decide`].
    pub arrivals: Vec<FlaggedArrival>,
    /// Then these fan-outs go to the proxy (after the writes are durable).
    pub handoffs: Vec<Handoff>,
    /// Continuations that need no answer (chains, the become child of a handed fan-out).
    next: Vec<Next>,
    waits: Vec<Wait>,
}

/// Phase two of a step: where the walk goes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decided {
    /// What this slot continues into (the next frontier).
    pub next: Vec<Next>,
    /// Ready fan-out children sent away, grouped by parent in finishing order.
    pub sends: Vec<Send>,
    /// Continuations of another class than the slot's, moved to that class's queue (one
    /// invocation each, so that GPU slots can bundle them).
    pub moved: Vec<Send>,
}

fn arrival(dag: &Dag, c: &Child, skipped: bool) -> FlaggedArrival {
    FlaggedArrival {
        req: ArrivalReq {
            child: c.task,
            pos: c.pos,
            needed: dag.needed(c.task),
        },
        skipped,
    }
}

fn continue_into(task: TaskIdx, from: TaskIdx, parent_skipped: bool) -> Next {
    if parent_skipped {
        // Its only dependency was skipped: skipped too, whatever its join.
        Next::Skip { task }
    } else {
        Next::Run { task, from }
    }
}

/// Phase one (see the module doc) for the tasks of one step, in the order they finished.
pub fn plan_step(dag: &Dag, schedule: &Schedule, done: &[Finished]) -> Step {
    let mut step = Step::default();
    for &Finished { task: t, skipped } in done {
        let kids = dag.children(t);
        if kids.is_empty() || dag.is_output(t) {
            step.reports.push(Report {
                task: t,
                sink: kids.is_empty(),
                skipped,
            });
        }
        match kids {
            [] => {}
            [c] if dag.needed(c.task) == 1 => step.next.push(continue_into(c.task, t, skipped)),
            [c] => {
                step.writes.push(t);
                step.readers.push(vec![step.arrivals.len() as u32]);
                step.waits.push(Wait {
                    parent: t,
                    skipped,
                    first: step.arrivals.len(),
                    kind: WaitKind::FanIn,
                });
                step.arrivals.push(arrival(dag, c, skipped));
            }
            _ => {
                // Fan-in children read this output from the store.
                let readers = kids.iter().filter(|c| dag.needed(c.task) > 1).count() as u32;
                let preferred = schedule.become_pos(t);
                let by_proxy = schedule.use_proxy(dag, t);
                if readers > 0 {
                    step.writes.push(t);
                    let first = step.arrivals.len() as u32;
                    let n = readers;
                    // Handed to the proxy, the readers' arrivals are recorded there.
                    step.readers.push(if by_proxy {
                        Vec::new()
                    } else {
                        (first..first + n).collect()
                    });
                }
                if by_proxy {
                    // Become the preferred child when it needs nothing else; the proxy
                    // takes the rest.
                    let become_pos = preferred.filter(|&p| dag.needed(kids[p].task) == 1);
                    step.handoffs.push(Handoff {
                        parent: t,
                        children: kids
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| Some(*i) != become_pos)
                            .map(|(_, c)| *c)
                            .collect(),
                    });
                    if let Some(p) = become_pos {
                        step.next.push(continue_into(kids[p].task, t, skipped));
                    }
                } else {
                    step.waits.push(Wait {
                        parent: t,
                        skipped,
                        first: step.arrivals.len(),
                        kind: WaitKind::FanOut { preferred },
                    });
                    step.arrivals.extend(fan_out_arrivals(dag, kids, skipped));
                }
            }
        }
    }
    step
}

impl Step {
    /// Whether the step needs nothing from the store: no write, arrival or hand-off.
    pub fn is_local(&self) -> bool {
        self.writes.is_empty() && self.arrivals.is_empty() && self.handoffs.is_empty()
    }

    /// Phase two: `answers` are the store's answers to [`Step::arrivals`], in order.
    /// `runs_gpu` says whether this slot may run GPU tasks; if not, the GPU tasks it would
    /// continue into are [`Decided::moved`].
    pub fn decide(self, dag: &Dag, answers: &[Arrival], runs_gpu: bool) -> Decided {
        let mut next = self.next;
        let mut sends = Vec::new();
        for w in &self.waits {
            let kids = dag.children(w.parent);
            let answers = answers.get(w.first..).unwrap_or_default();
            match w.kind {
                WaitKind::FanIn => {
                    if let Some(a) = answers.first().filter(|a| a.completes()) {
                        let c = kids[0].task;
                        next.push(if a.skips(dag.join(c)) {
                            Next::Skip { task: c }
                        } else {
                            Next::Run {
                                task: c,
                                from: w.parent,
                            }
                        });
                    }
                }
                WaitKind::FanOut { preferred } => {
                    let mut run = Vec::with_capacity(kids.len());
                    for (i, skip) in ready_children(dag, kids, w.skipped, answers) {
                        if skip {
                            // Skipped children are walked here: they run nothing.
                            next.push(Next::Skip { task: kids[i].task });
                        } else {
                            run.push(i);
                        }
                    }
                    let become_pos = preferred
                        .filter(|p| run.contains(p))
                        .or_else(|| run.first().copied());
                    sends.extend(
                        run.iter()
                            .filter(|&&i| Some(i) != become_pos)
                            .map(|&i| Send {
                                task: kids[i].task,
                                from: Some(w.parent),
                                class: dag.class(kids[i].task),
                            }),
                    );
                    if let Some(p) = become_pos {
                        next.push(Next::Run {
                            task: kids[p].task,
                            from: w.parent,
                        });
                    }
                }
            }
        }
        let mut moved = Vec::new();
        if !runs_gpu {
            next.retain(|n| match *n {
                Next::Run { task, from } if dag.class(task) == ExecClass::Gpu => {
                    moved.push(Send {
                        task,
                        from: Some(from),
                        class: ExecClass::Gpu,
                    });
                    false
                }
                _ => true,
            });
        }
        Decided { next, sends, moved }
    }
}

/// The arrival records a fan-out of `children` makes: one per fan-in child (a child with one
/// dependency is ready without one), flagged `skipped` when the parent was skipped.
pub fn fan_out_arrivals(dag: &Dag, children: &[Child], skipped: bool) -> Vec<FlaggedArrival> {
    children
        .iter()
        .filter(|c| dag.needed(c.task) > 1)
        .map(|c| arrival(dag, c, skipped))
        .collect()
}

/// The ready children of a fan-out, as (position in `children`, skipped), given the answers
/// to its [`fan_out_arrivals`] in order: a single-dependency child is ready (skipped when
/// the parent was), a fan-in child when this parent is its completer (skipped when the
/// record says so under its join).
pub fn ready_children(
    dag: &Dag,
    children: &[Child],
    parent_skipped: bool,
    answers: &[Arrival],
) -> Vec<(usize, bool)> {
    let mut answers = answers.iter();
    let mut ready = Vec::with_capacity(children.len());
    for (i, c) in children.iter().enumerate() {
        if dag.needed(c.task) == 1 {
            ready.push((i, parent_skipped));
        } else if let Some(a) = answers.next().filter(|a| a.completes()) {
            ready.push((i, a.skips(dag.join(c.task))));
        }
    }
    ready
}

/// What the proxy does with a handed fan-out, given the answers to its
/// [`fan_out_arrivals`]: send every ready child, skipped ones too (each carries the parent's
/// payload, the skip marker for a skipped parent, and the slot that takes it skips it).
pub fn fan_out(
    dag: &Dag,
    parent: TaskIdx,
    children: &[Child],
    parent_skipped: bool,
    answers: &[Arrival],
) -> Vec<Send> {
    ready_children(dag, children, parent_skipped, answers)
        .into_iter()
        .map(|(i, _)| Send {
            task: children[i].task,
            from: Some(parent),
            class: dag.class(children[i].task),
        })
        .collect()
}

/// Packs sends into invocations, per class (`[cpu, gpu]`): each run of sends with the same
/// parent goes in chunks of [`JobConfig::chunk_size_carrying`] starts, every start carrying
/// `payload(parent)`. Sends without a parent (sources) start with no inputs, in chunks of
/// [`JobConfig::source_chunk_size`].
pub fn pack(
    job: &JobId,
    config: &JobConfig,
    sends: &[Send],
    mut payload: impl FnMut(TaskIdx) -> Payload,
) -> [Vec<Invocation>; 2] {
    let mut out: [Vec<Invocation>; 2] = [Vec::new(), Vec::new()];
    for class in [ExecClass::Cpu, ExecClass::Gpu] {
        let of_class: Vec<&Send> = sends.iter().filter(|s| s.class == class).collect();
        for run in of_class.chunk_by(|a, b| a.from == b.from) {
            let (inputs, size) = match run[0].from {
                Some(from) => {
                    let payload = payload(from);
                    let size = config.chunk_size_carrying(run.len(), payload.approx_size());
                    (vec![KnownInput { from, payload }], size)
                }
                None => (Vec::new(), config.source_chunk_size(run.len())),
            };
            out[class as usize].extend(run.chunks(size).map(|group| {
                Invocation::new(
                    job.clone(),
                    group
                        .iter()
                        .map(|s| Start {
                            task: s.task,
                            inputs: inputs.clone(),
                        })
                        .collect(),
                )
            }));
        }
    }
    out
}

#[cfg(test)]
mod tests;
