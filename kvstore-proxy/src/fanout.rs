//! Planning a large fan-out, as pure functions: which children need an arrival record, and
//! how ready children are packed into invocations.
//!
//! A skipped parent (DESIGN §8) fans out the same way: its payload is the skip marker
//! [`Payload::Skipped`], its arrivals are recorded as skipped, and every child it enqueues
//! carries the marker, so the slot that picks the child up skips it (or, for a `join: any`
//! fan-in child with a completed parent, runs it with `null` for this one).

use rukong_core::dag::{Child, Dag};
use rukong_core::messages::{Invocation, KnownInput, Payload, Start};
use rukong_core::store::{Arrival, ArrivalReq, FlaggedArrival};
use rukong_core::{JobConfig, JobId, TaskIdx};

/// The arrival records to make: one per fan-in child (children with one dependency are
/// ready without one), flagged `skipped` when the parent was skipped.
pub fn arrivals_needed(dag: &Dag, children: &[Child], skipped: bool) -> Vec<FlaggedArrival> {
    children
        .iter()
        .filter(|c| dag.needed(c.task) > 1)
        .map(|c| FlaggedArrival {
            req: ArrivalReq {
                child: c.task,
                pos: c.pos,
                needed: dag.needed(c.task),
            },
            skipped,
        })
        .collect()
}

/// The children that are ready, in order, given the arrivals recorded for the fan-in ones
/// (in the order [`arrivals_needed`] returned them).
pub fn ready_children(dag: &Dag, children: &[Child], arrivals: &[Arrival]) -> Vec<TaskIdx> {
    let mut completes = arrivals.iter().map(Arrival::completes);
    children
        .iter()
        .filter(|c| dag.needed(c.task) == 1 || completes.next() == Some(true))
        .map(|c| c.task)
        .collect()
}

/// Packs ready children into invocations of [`JobConfig::chunk_size`] starts each; every
/// start carries the parent's output.
pub fn pack(
    job: &JobId,
    config: &JobConfig,
    parent: TaskIdx,
    payload: &Payload,
    ready: &[TaskIdx],
) -> Vec<Invocation> {
    if ready.is_empty() {
        return Vec::new();
    }
    ready
        .chunks(config.chunk_size(ready.len()))
        .map(|group| Invocation {
            job: job.clone(),
            warm: Vec::new(),
            warm_ttl_ms: 0,
            release: Vec::new(),
            starts: group
                .iter()
                .map(|&task| Start {
                    task,
                    inputs: vec![KnownInput {
                        from: parent,
                        payload: payload.clone(),
                    }],
                })
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rukong_core::dag::{DagSpec, Limits, validate};
    use rukong_core::{Value, schedule};

    fn wide(n: usize) -> Dag {
        let mut y = String::from("tasks: [{id: s, fn: const}, {id: o, fn: const}");
        for i in 0..n {
            y.push_str(&format!(", {{id: c{i}, fn: identity, deps: [s]}}"));
        }
        y.push_str(", {id: j, fn: add, deps: [s, o]}]");
        validate(
            DagSpec::from_yaml_str(&y).unwrap(),
            &Limits::default(),
            &|_| true,
        )
        .unwrap()
    }

    #[test]
    fn only_fan_in_children_need_arrivals() {
        let d = wide(20);
        let s = d.lookup("s").unwrap();
        let reqs = arrivals_needed(&d, d.children(s), false);
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].req.child, d.lookup("j").unwrap());
        assert_eq!(reqs[0].req.needed, 2);
        assert!(!reqs[0].skipped);
        assert!(arrivals_needed(&d, d.children(s), true)[0].skipped);
        let not_yet = Arrival {
            arrived: 1,
            needed: 2,
            first_time: true,
            skipped: 0,
        };
        assert_eq!(ready_children(&d, d.children(s), &[not_yet]).len(), 20);
        let done = Arrival {
            arrived: 2,
            needed: 2,
            first_time: true,
            skipped: 0,
        };
        assert_eq!(ready_children(&d, d.children(s), &[done]).len(), 21);
        assert!(schedule::schedule(&d, 10).use_proxy(&d, s));
    }

    #[test]
    fn packing_covers_every_child_once_in_balanced_chunks() {
        let d = wide(1000);
        let s = d.lookup("s").unwrap();
        let ready: Vec<TaskIdx> = d.children(s).iter().map(|c| c.task).collect();
        let config = JobConfig {
            slots_hint: 4,
            ..JobConfig::default()
        };
        let invs = pack(
            &JobId::new("j"),
            &config,
            s,
            &Payload::Inline(Value::Int(1)),
            &ready,
        );
        let starts: Vec<TaskIdx> = invs
            .iter()
            .flat_map(|i| i.starts.iter().map(|s| s.task))
            .collect();
        assert_eq!(starts, ready);
        assert!(
            invs.len() >= 16,
            "enough invocations to spread over 4 slots: {}",
            invs.len()
        );
        assert!(
            invs.iter()
                .all(|i| i.starts.len() <= config.max_starts_per_invocation)
        );
        assert!(invs[0].starts.iter().all(|st| st.inputs[0].from == s));
    }
}
