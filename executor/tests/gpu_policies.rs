//! The GPU scheduling policies in the deterministic simulator: the trace and every report
//! are a function of the seed, the accounting is sound, and the policies order as their
//! rules say they should on the two-model trace (A: 2 s cold start, 50 ms exec; B: 300 ms,
//! 5 ms; Poisson arrivals), checked over several seeds.

use rukong_executor::gpu_sched::GpuPolicy;
use rukong_executor::gpu_sched::sim::{
    Arrival, SimConfig, SimError, SimReport, TraceSpec, generate, jain, run_all, simulate,
    two_model_default,
};
use std::collections::HashMap;

const SEEDS: std::ops::RangeInclusive<u64> = 1..=5;

fn by_policy(reports: Vec<SimReport>) -> HashMap<GpuPolicy, SimReport> {
    reports.into_iter().map(|r| (r.policy, r)).collect()
}

fn default_run(seed: u64) -> HashMap<GpuPolicy, SimReport> {
    let (trace, sim) = two_model_default(seed);
    by_policy(run_all(&trace, &sim).expect("valid workload"))
}

/// The same workload with a cache that holds both models on every slot.
fn roomy(seed: u64) -> (TraceSpec, SimConfig) {
    let (trace, mut sim) = two_model_default(seed);
    sim.slot_mem = 16 << 30;
    (trace, sim)
}

#[test]
fn same_seed_same_trace_and_reports() {
    let (trace, sim) = two_model_default(7);
    assert_eq!(generate(&trace).unwrap(), generate(&trace).unwrap());
    assert_eq!(
        run_all(&trace, &sim).unwrap(),
        run_all(&trace, &sim).unwrap()
    );
    let other = TraceSpec {
        seed: 8,
        ..trace.clone()
    };
    assert_ne!(generate(&trace).unwrap(), generate(&other).unwrap());
}

#[test]
fn trace_is_sorted_poisson_mix() {
    let (trace, _) = two_model_default(3);
    let arrivals = generate(&trace).unwrap();
    assert_eq!(arrivals.len(), trace.arrivals);
    assert!(arrivals.windows(2).all(|w| w[0].at <= w[1].at));
    assert!(arrivals.iter().enumerate().all(|(i, a)| a.id == i));
    let a = arrivals.iter().filter(|a| a.func.0 == 0).count() as f64;
    let b = arrivals.len() as f64 - a;
    // Rates 4/s and 40/s: B is about ten times as frequent.
    assert!((8.0..12.5).contains(&(b / a)), "B/A = {}", b / a);
    // Mean inter-arrival of the merged process: 1/44 s.
    let span = arrivals.last().unwrap().at as f64 / 1e6;
    let rate = arrivals.len() as f64 / span;
    assert!((40.0..48.0).contains(&rate), "rate {rate}");
    // Exec jitter stays within ±20% of the mean.
    for x in &arrivals {
        let mean = trace.models[x.func.0 as usize].exec as f64;
        assert!((x.exec as f64 - mean).abs() <= 0.2 * mean + 1.0);
    }
}

fn check_accounting(r: &SimReport, arrivals: &[Arrival], trace: &TraceSpec, sim: &SimConfig) {
    let p = r.policy;
    assert_eq!(r.unserved, 0, "{p}");
    assert_eq!(r.log.len(), arrivals.len(), "{p}: every arrival served");
    let mut seen = vec![false; arrivals.len()];
    for s in &r.log {
        assert!(
            !std::mem::replace(&mut seen[s.id], true),
            "{p}: {} twice",
            s.id
        );
        let a = &arrivals[s.id];
        assert_eq!((s.func, s.arrival, s.exec), (a.func, a.at, a.exec), "{p}");
        assert!(s.start >= s.arrival, "{p}: negative wait");
        let cold = if s.cold {
            trace.models[s.func.0 as usize].cold_start
        } else {
            0
        };
        assert_eq!(s.finish, s.start + cold + s.exec, "{p}");
        assert!(s.slot < sim.slots);
    }
    // A slot runs one invocation at a time.
    for slot in 0..sim.slots {
        let mut mine: Vec<_> = r.log.iter().filter(|s| s.slot == slot).collect();
        mine.sort_by_key(|s| s.start);
        assert!(mine.windows(2).all(|w| w[0].finish <= w[1].start), "{p}");
    }
    let cold: usize = r.per_fn.iter().map(|s| s.cold_starts).sum();
    assert_eq!(cold, r.overall.cold_starts, "{p}");
    assert_eq!(r.log.iter().filter(|s| s.cold).count(), cold, "{p}");
    assert!((0.0..=1.0).contains(&r.overall.hit_rate), "{p}");
    let n = r.per_fn.len() as f64;
    assert!(
        r.jain_slowdown >= 1.0 / n - 1e-12 && r.jain_slowdown <= 1.0 + 1e-12,
        "{p}"
    );
    assert!(r.overall.p95_wait_ms >= 0.0 && r.overall.mean_wait_ms >= 0.0);
    assert!(r.per_fn.iter().all(|s| s.mean_slowdown >= 1.0), "{p}");
}

#[test]
fn accounting_holds_for_every_policy_and_cache_size() {
    for (trace, sim) in [two_model_default(11), roomy(11)] {
        let arrivals = generate(&trace).unwrap();
        for p in GpuPolicy::ALL {
            let r = simulate(p, &arrivals, &trace.models, &sim).unwrap();
            check_accounting(&r, &arrivals, &trace, &sim);
        }
    }
    // One slot, three slots: still sound.
    for slots in [1, 3] {
        let (mut trace, mut sim) = two_model_default(5);
        trace.arrivals = 600;
        sim.slots = slots;
        let arrivals = generate(&trace).unwrap();
        for p in GpuPolicy::ALL {
            let r = simulate(p, &arrivals, &trace.models, &sim).unwrap();
            check_accounting(&r, &arrivals, &trace, &sim);
        }
    }
}

/// Whether some invocation waited while a slot sat idle.
fn idles_while_work_waits(r: &SimReport, slots: usize) -> bool {
    let mut busy: Vec<Vec<(u64, u64)>> = vec![Vec::new(); slots];
    for s in &r.log {
        busy[s.slot].push((s.start, s.finish));
    }
    for b in &mut busy {
        b.sort_unstable();
    }
    // Is `slot` busy throughout [from, to)?
    let covered = |slot: usize, from: u64, to: u64| {
        let mut t = from;
        for &(s, f) in &busy[slot] {
            if s > t {
                break;
            }
            t = t.max(f);
            if t >= to {
                return true;
            }
        }
        t >= to
    };
    r.log
        .iter()
        .filter(|s| s.start > s.arrival)
        .any(|s| (0..slots).any(|k| !covered(k, s.arrival, s.start)))
}

#[test]
fn fifo_srtf_mlfq_are_work_conserving_exclusive_is_not() {
    let (mut trace, sim) = two_model_default(2);
    trace.arrivals = 1_500;
    let arrivals = generate(&trace).unwrap();
    for p in GpuPolicy::ALL {
        let r = simulate(p, &arrivals, &trace.models, &sim).unwrap();
        let idles = idles_while_work_waits(&r, sim.slots);
        assert_eq!(idles, p == GpuPolicy::Exclusive, "{p}");
    }
}

#[test]
fn one_model_per_slot_orderings() {
    for seed in SEEDS {
        let r = default_run(seed);
        let cold = |p| r[&p].overall.cold_starts;
        let wait = |p| r[&p].overall.mean_wait_ms;
        use GpuPolicy::*;
        // Pinning avoids reloads; pricing cold starts avoids most; MLFQ's per-level runs of
        // one function avoid some; FIFO interleaves models and reloads the most.
        assert!(
            cold(Exclusive) < cold(Srtf) && cold(Srtf) < cold(Mlfq) && cold(Mlfq) < cold(Fifo),
            "seed {seed}: cold starts {:?}",
            GpuPolicy::ALL.map(cold)
        );
        let hit = |p| r[&p].overall.hit_rate;
        assert!(
            GpuPolicy::ALL
                .iter()
                .all(|&p| p == Exclusive || hit(p) < hit(Exclusive))
        );
        // Reloads cost GPU time that queues pay for: wait follows cold starts.
        assert!(
            wait(Exclusive) < wait(Srtf) && wait(Srtf) < wait(Mlfq) && wait(Mlfq) < wait(Fifo),
            "seed {seed}: mean waits {:?}",
            GpuPolicy::ALL.map(wait)
        );
        // Both models are best served by Exclusive, the short one most of all.
        for f in 0..2 {
            let w = |p: GpuPolicy| r[&p].per_fn[f].mean_wait_ms;
            assert!(
                GpuPolicy::ALL
                    .iter()
                    .all(|&p| p == Exclusive || w(Exclusive) < w(p))
            );
        }
        // Fairness (Jain over mean slowdown) is best under Exclusive.
        let jain = |p| r[&p].jain_slowdown;
        assert!(
            GpuPolicy::ALL
                .iter()
                .all(|&p| p == Exclusive || jain(p) < jain(Exclusive))
        );
        // FIFO's reloads leave the slots behind the arrivals: the longest makespan.
        let span = |p| r[&p].makespan_s;
        assert!(
            GpuPolicy::ALL
                .iter()
                .all(|&p| p == Fifo || span(p) < span(Fifo))
        );
    }
}

/// Mean queue wait (µs) of `func`'s invocations that arrived at or after `from`.
fn steady_mean_wait(r: &SimReport, func: u32, from: u64) -> f64 {
    let waits: Vec<u64> = r
        .log
        .iter()
        .filter(|s| s.func.0 == func && s.arrival >= from)
        .map(|s| s.start - s.arrival)
        .collect();
    waits.iter().sum::<u64>() as f64 / waits.len().max(1) as f64
}

#[test]
fn roomy_cache_orderings() {
    for seed in SEEDS {
        let (trace, sim) = roomy(seed);
        let r = by_policy(run_all(&trace, &sim).unwrap());
        use GpuPolicy::*;
        // Every slot loads each model at most once.
        for p in GpuPolicy::ALL {
            assert!(r[&p].overall.cold_starts <= sim.slots * 2, "{p}");
        }
        // Pinning now only costs: the long model, confined to its own slot(s), waits the
        // longest under Exclusive.
        let wait_a = |p: GpuPolicy| r[&p].per_fn[0].mean_wait_ms;
        assert!(
            GpuPolicy::ALL
                .iter()
                .all(|&p| p == Exclusive || wait_a(p) < wait_a(Exclusive)),
            "seed {seed}: A waits {:?}",
            GpuPolicy::ALL.map(wait_a)
        );
        // Once both models are resident, SRTF puts the short model first: it waits less
        // than under FIFO. (Measured after the first 5 s: while the slots are still cold,
        // SRTF prices B's load and can hold B back behind warm A work.)
        let wait_b = |p: GpuPolicy| steady_mean_wait(&r[&p], 1, 5_000_000);
        assert!(
            wait_b(Srtf) < wait_b(Fifo),
            "seed {seed}: {} vs {}",
            wait_b(Srtf),
            wait_b(Fifo)
        );
    }
}

#[test]
fn mlfq_favours_the_light_function_over_fifo() {
    // A takes 24 × 50 ms = 1.2 s of GPU per second, B 0.2 s: A sinks to the lower levels
    // and B's invocations go first.
    for seed in SEEDS {
        let (mut trace, sim) = roomy(seed);
        trace.models[0].rate_per_s = 24.0;
        let r = by_policy(run_all(&trace, &sim).unwrap());
        let w = |p: GpuPolicy, f: usize| r[&p].per_fn[f].mean_wait_ms;
        assert!(
            w(GpuPolicy::Mlfq, 1) < w(GpuPolicy::Fifo, 1),
            "seed {seed}: B {} vs {}",
            w(GpuPolicy::Mlfq, 1),
            w(GpuPolicy::Fifo, 1)
        );
        assert!(w(GpuPolicy::Mlfq, 0) > w(GpuPolicy::Fifo, 0), "seed {seed}");
    }
}

#[test]
fn jain_index_bounds() {
    assert_eq!(jain(&[2.0, 2.0, 2.0]), 1.0);
    assert!((jain(&[1.0, 0.0]) - 0.5).abs() < 1e-12);
    assert!((jain(&[1.0, 3.0]) - 0.8).abs() < 1e-12);
    assert_eq!(jain(&[]), 1.0);
}

#[test]
fn bad_workloads_are_errors() {
    let (trace, sim) = two_model_default(1);
    let mut t = trace.clone();
    t.models[1].rate_per_s = 0.0;
    assert!(matches!(generate(&t), Err(SimError::BadRate { .. })));
    t.models[1].rate_per_s = f64::NAN;
    assert!(matches!(generate(&t), Err(SimError::BadRate { .. })));
    let t = TraceSpec {
        exec_jitter: 1.0,
        ..trace.clone()
    };
    assert_eq!(generate(&t), Err(SimError::BadJitter(1.0)));
    let t = TraceSpec {
        models: vec![],
        ..trace.clone()
    };
    assert_eq!(generate(&t), Err(SimError::NoModels));
    let arrivals = generate(&trace).unwrap();
    let s = SimConfig {
        slots: 0,
        ..sim.clone()
    };
    assert_eq!(
        simulate(GpuPolicy::Fifo, &arrivals, &trace.models, &s),
        Err(SimError::NoSlots)
    );
    let s = SimConfig {
        slot_mem: 8 << 30,
        ..sim
    };
    let err = simulate(GpuPolicy::Fifo, &arrivals, &trace.models, &s).unwrap_err();
    assert!(err.to_string().contains("model `A` needs"), "{err}");
}
