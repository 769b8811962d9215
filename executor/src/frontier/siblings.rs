//! Fan-in siblings in hand. When a step completes a fan-in child, its other parents often
//! finished in the same step (the two halves of a tree reduction's pair, a small fan-out's
//! children of one invocation): their outputs are still in this walk's memory, so the
//! child need not read them back from the store.
//!
//! Taking a value from memory instead of the store is only allowed when both are the same
//! value. In a store whose level writes are atomic
//! ([`rukong_core::store::FanInStore::level_writes_are_atomic`]: Redis), an output that
//! fan-in children read is written write-once, in the same atomic call as its arrivals
//! (all of them: a parent whose fan-out goes to the proxy has its arrivals recorded there,
//! and never appears here). So when the parent's arrival at this child was *first-time*,
//! no earlier call wrote its output, and the value this call wrote is the one in hand. A
//! re-arrival (a retry, a duplicate) reads the store as before: its value may differ from
//! the first attempt's, and the first one stands.
//!
//! Jobs with guards are left out (a skipped parent has no value, only a marker), and so are
//! children with more than [`MAX_DEPS`] dependencies: the walk matches inputs in hand
//! against dependencies by scanning, and a wide fan-in's siblings are mostly elsewhere.

use rukong_core::step::{Finished, Next};
use rukong_core::store::{Arrival, FlaggedArrival};
use rukong_core::{Dag, TaskIdx};

/// The widest fan-in whose siblings are taken from memory.
pub(crate) const MAX_DEPS: u32 = 64;

/// For the continuations `next` of a step whose tasks `finished` (in `done` order) made
/// `arrivals` (answered by `answers`), the siblings in hand: `(i, k)` says that
/// continuation `i`'s fan-in child may take the output of `finished[k]` from memory.
/// `has_value(k)` says whether that output is still held. Costs nothing more than a scan
/// of `next` when the step completes no small fan-in.
pub(crate) fn in_hand(
    dag: &Dag,
    next: &[Next],
    finished: &[Finished],
    arrivals: &[FlaggedArrival],
    answers: &[Arrival],
    has_value: impl Fn(usize) -> bool,
) -> Vec<(usize, usize)> {
    if dag.has_guards() {
        return Vec::new();
    }
    // The fan-in children this step continues into: (child, continuation, completer).
    let mut completing: Vec<(TaskIdx, usize, TaskIdx)> = next
        .iter()
        .enumerate()
        .filter_map(|(i, n)| match *n {
            Next::Run { task, from } if (2..=MAX_DEPS).contains(&dag.needed(task)) => {
                Some((task, i, from))
            }
            _ => None,
        })
        .collect();
    if completing.is_empty() {
        return Vec::new();
    }
    completing.sort_unstable();
    // The (child, position) of the first-time arrivals at those children, sorted.
    let mut fresh: Vec<(TaskIdx, u32)> = arrivals
        .iter()
        .zip(answers)
        .filter(|(f, a)| {
            a.first_time
                && !f.skipped
                && completing
                    .binary_search_by_key(&f.req.child, |&(t, _, _)| t)
                    .is_ok()
        })
        .map(|(f, _)| (f.req.child, f.req.pos))
        .collect();
    fresh.sort_unstable();
    let mut out = Vec::new();
    for (k, f) in finished.iter().enumerate() {
        if f.skipped || !has_value(k) {
            continue;
        }
        for c in dag.children(f.task) {
            let Ok(at) = completing.binary_search_by_key(&c.task, |&(t, _, _)| t) else {
                continue;
            };
            let (_, i, from) = completing[at];
            if from != f.task && fresh.binary_search(&(c.task, c.pos)).is_ok() {
                out.push((i, k));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rukong_core::dag::{DagSpec, Limits, validate};
    use rukong_core::store::ArrivalReq;

    /// a, b -> ab; c, d -> cd; ab, cd -> root.
    fn tree() -> Dag {
        let spec = DagSpec::from_yaml_str(
            "tasks:
  - {id: a, fn: const, args: [1]}
  - {id: b, fn: const, args: [2]}
  - {id: c, fn: const, args: [3]}
  - {id: d, fn: const, args: [4]}
  - {id: ab, fn: add, deps: [a, b]}
  - {id: cd, fn: add, deps: [c, d]}
  - {id: root, fn: add, deps: [ab, cd]}
",
        )
        .unwrap();
        validate(spec, &Limits::default(), &|_| true).unwrap()
    }

    fn idx(dag: &Dag, id: &str) -> TaskIdx {
        dag.tasks().find(|&t| dag.id(t).as_str() == id).unwrap()
    }

    fn arrival(dag: &Dag, parent: &str, child: &str) -> FlaggedArrival {
        let (p, c) = (idx(dag, parent), idx(dag, child));
        let pos = dag.children(p).iter().find(|x| x.task == c).unwrap().pos;
        FlaggedArrival {
            req: ArrivalReq {
                child: c,
                pos,
                needed: dag.needed(c),
            },
            skipped: false,
        }
    }

    fn answer(first_time: bool, completer: bool) -> Arrival {
        Arrival {
            arrived: 2,
            needed: 2,
            first_time,
            skipped: 0,
            completer,
        }
    }

    fn done(dag: &Dag, ids: &[&str]) -> Vec<Finished> {
        ids.iter()
            .map(|id| Finished {
                task: idx(dag, id),
                skipped: false,
            })
            .collect()
    }

    #[test]
    fn first_time_siblings_of_a_step_are_in_hand() {
        let dag = tree();
        let finished = done(&dag, &["a", "b", "c", "d"]);
        let arrivals = ["a", "b", "c", "d"].map(|p| {
            let child = if p < "c" { "ab" } else { "cd" };
            arrival(&dag, p, child)
        });
        // b completes ab, c completes cd; all first-time.
        let answers = [
            answer(true, false),
            answer(true, true),
            answer(true, true),
            answer(true, false),
        ];
        let next = [
            Next::Run {
                task: idx(&dag, "ab"),
                from: idx(&dag, "b"),
            },
            Next::Run {
                task: idx(&dag, "cd"),
                from: idx(&dag, "c"),
            },
        ];
        let got = in_hand(&dag, &next, &finished, &arrivals, &answers, |_| true);
        // ab takes a (finished[0]); cd takes d (finished[3]).
        assert_eq!(got, vec![(0, 0), (1, 3)]);
        // A value no longer held is not offered.
        assert_eq!(
            in_hand(&dag, &next, &finished, &arrivals, &answers, |k| k != 0),
            vec![(1, 3)]
        );
    }

    #[test]
    fn re_arrivals_read_the_store() {
        let dag = tree();
        let finished = done(&dag, &["a", "b"]);
        let arrivals = [arrival(&dag, "a", "ab"), arrival(&dag, "b", "ab")];
        // A retry: a's bit was set by the first attempt, whose output stands in the store.
        let answers = [answer(false, false), answer(true, true)];
        let next = [Next::Run {
            task: idx(&dag, "ab"),
            from: idx(&dag, "b"),
        }];
        assert!(in_hand(&dag, &next, &finished, &arrivals, &answers, |_| true).is_empty());
    }

    #[test]
    fn a_sibling_that_finished_elsewhere_is_not_in_hand() {
        let dag = tree();
        // Only b finished here; a finished in another walk (its arrival is not in this call).
        let finished = done(&dag, &["b"]);
        let arrivals = [arrival(&dag, "b", "ab")];
        let answers = [answer(true, true)];
        let next = [Next::Run {
            task: idx(&dag, "ab"),
            from: idx(&dag, "b"),
        }];
        assert!(in_hand(&dag, &next, &finished, &arrivals, &answers, |_| true).is_empty());
    }
}
