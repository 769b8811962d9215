//! Each policy's `pick` on hand-made queues.

use super::*;

const A: GpuFn = GpuFn(0); // big: 2 s cold, 50 ms exec
const B: GpuFn = GpuFn(1); // small: 300 ms cold, 5 ms exec

fn job(func: GpuFn, arrival: Micros) -> Pending {
    let (exec, cold_start) = if func == A {
        (50_000, 2_000_000)
    } else {
        (5_000, 300_000)
    };
    Pending {
        func,
        arrival,
        exec,
        cold_start,
    }
}

fn view(slot: usize, warm: &[GpuFn], free_since: Micros) -> SlotView<'_> {
    SlotView {
        slot,
        warm,
        free_since,
    }
}

const IDLE: Pick = Pick::Idle { retry_at: None };

#[test]
fn policy_names_parse_and_print() {
    for p in GpuPolicy::ALL {
        assert_eq!(p.as_str().parse::<GpuPolicy>(), Ok(p));
        assert_eq!(p.to_string(), p.as_str());
    }
    assert_eq!(" Balance ".parse(), Ok(GpuPolicy::Fifo));
    assert_eq!("SRTF".parse(), Ok(GpuPolicy::Srtf));
    assert_eq!("mlfqs".parse(), Ok(GpuPolicy::Mlfq));
    let err = "lifo".parse::<GpuPolicy>().unwrap_err();
    let msg = err.to_string();
    for name in ["`lifo`", "fifo", "balance", "exclusive", "srtf", "mlfq"] {
        assert!(msg.contains(name), "{msg}");
    }
    assert_eq!(GpuPolicy::default(), GpuPolicy::Fifo);
}

#[test]
fn policy_serde_uses_lowercase_names() {
    assert_eq!(
        serde_json::to_string(&GpuPolicy::Exclusive).unwrap(),
        "\"exclusive\""
    );
    let p: GpuPolicy = serde_json::from_str("\"balance\"").unwrap();
    assert_eq!(p, GpuPolicy::Fifo);
    let p: Vec<GpuPolicy> = serde_json::from_str(r#"["fifo","exclusive","srtf","mlfq"]"#).unwrap();
    assert_eq!(p, GpuPolicy::ALL);
    assert!(serde_json::from_str::<GpuPolicy>("\"lifo\"").is_err());
}

#[test]
fn every_policy_idles_on_an_empty_queue() {
    for p in GpuPolicy::ALL {
        let mut s = scheduler(p, &SchedConfig::default());
        assert_eq!(s.policy(), p);
        assert_eq!(s.pick(0, &[], &view(0, &[], 0)), IDLE, "{p}");
    }
}

#[test]
fn fifo_takes_the_oldest_whatever_is_warm() {
    let mut s = scheduler(GpuPolicy::Fifo, &SchedConfig::default());
    let q = [job(B, 30), job(A, 10), job(B, 20), job(A, 10)];
    // Oldest arrival; the lower index breaks the tie.
    assert_eq!(s.pick(100, &q, &view(0, &[B], 0)), Pick::Run(1));
    assert_eq!(s.pick(100, &q[2..], &view(0, &[B], 0)), Pick::Run(1));
}

#[test]
fn srtf_prices_the_cold_start_on_the_asking_slot() {
    let mut s = scheduler(GpuPolicy::Srtf, &SchedConfig::default());
    let q = [job(A, 10), job(B, 20), job(B, 30)];
    // Warm A: 50 ms beats B's 300 + 5 ms.
    assert_eq!(s.pick(100, &q, &view(0, &[A], 0)), Pick::Run(0));
    // Warm B: 5 ms, the older of the two B.
    assert_eq!(s.pick(100, &q, &view(0, &[B], 0)), Pick::Run(1));
    // Cold slot: B's 305 ms beats A's 2050 ms.
    assert_eq!(s.pick(100, &q, &view(0, &[], 0)), Pick::Run(1));
    // Both warm: the shortest exec.
    assert_eq!(s.pick(100, &q, &view(0, &[A, B], 0)), Pick::Run(1));
    assert_eq!(Srtf::cost(&q[0], &view(0, &[], 0)), 2_050_000);
}

#[test]
fn exclusive_gives_each_function_its_own_slot() {
    let mut s = Exclusive::new(1_000_000);
    // A has more queued work, so it claims slot 0; B owns nothing, so it claims slot 1
    // although A's demand is larger.
    let q = [job(A, 10), job(B, 20), job(A, 30)];
    assert_eq!(s.pick(100, &q, &view(0, &[], 0)), Pick::Run(0));
    assert_eq!(s.owner(0), Some(A));
    let q = [job(B, 20), job(A, 30)];
    assert_eq!(s.pick(100, &q, &view(1, &[], 0)), Pick::Run(0));
    assert_eq!(s.owner(1), Some(B));
    // Each slot serves only its owner, oldest first.
    let q = [job(B, 40), job(A, 50), job(B, 35)];
    assert_eq!(s.pick(200, &q, &view(0, &[A], 150)), Pick::Run(1));
    assert_eq!(s.pick(200, &q, &view(1, &[B], 150)), Pick::Run(2));
    // An empty queue keeps the ownership.
    assert_eq!(s.pick(300, &[], &view(0, &[A], 150)), IDLE);
    assert_eq!(s.owner(0), Some(A));
}

#[test]
fn exclusive_hands_an_idle_slot_over_after_the_handover() {
    let mut s = Exclusive::new(1_000_000);
    assert_eq!(s.pick(0, &[job(A, 0)], &view(0, &[], 0)), Pick::Run(0));
    // Slot 0 (A's) went free at 100 ms; only B waits: reserved until 1.1 s.
    let q = [job(B, 200_000)];
    let retry = Pick::Idle {
        retry_at: Some(1_100_000),
    };
    assert_eq!(s.pick(200_000, &q, &view(0, &[A], 100_000)), retry);
    assert_eq!(s.pick(1_099_999, &q, &view(0, &[A], 100_000)), retry);
    assert_eq!(s.owner(0), Some(A));
    assert_eq!(s.pick(1_100_000, &q, &view(0, &[A], 100_000)), Pick::Run(0));
    assert_eq!(s.owner(0), Some(B));
}

#[test]
fn exclusive_rebalances_from_a_function_holding_two_slots_more() {
    let mut s = Exclusive::new(u64::MAX);
    // B claims both slots while only B is queued.
    let q = [job(B, 0), job(B, 1)];
    assert_eq!(s.pick(10, &q, &view(0, &[], 0)), Pick::Run(0));
    assert_eq!(s.pick(10, &q[1..], &view(1, &[], 0)), Pick::Run(0));
    assert_eq!((s.owner(0), s.owner(1)), (Some(B), Some(B)));
    // A arrives, owning nothing while B owns two: the next free B slot goes to A even
    // though B still has work queued.
    let q = [job(B, 20), job(A, 30)];
    assert_eq!(s.pick(40, &q, &view(1, &[B], 40)), Pick::Run(1));
    assert_eq!(s.owner(1), Some(A));
    // One each now: no further rebalancing, B's slot keeps serving B.
    assert_eq!(s.pick(50, &q, &view(0, &[B], 50)), Pick::Run(0));
    assert_eq!(s.owner(0), Some(B));
}

#[test]
fn mlfq_levels_follow_consumption_and_reset_at_boost() {
    let mut m = Mlfq::new(3, 100, 10_000);
    assert_eq!(m.level(A), 0);
    m.on_finish(10, 0, A, 99);
    assert_eq!(m.level(A), 0);
    m.on_finish(20, 0, A, 1); // 100 = q
    assert_eq!(m.level(A), 1);
    m.on_finish(30, 0, A, 199); // 299 < 3q
    assert_eq!(m.level(A), 1);
    m.on_finish(40, 0, A, 1); // 300 = 3q
    assert_eq!(m.level(A), 2);
    m.on_finish(50, 0, A, 1_000_000); // capped at the last level
    assert_eq!(m.level(A), 2);
    assert_eq!(m.consumed(B), 0);
    // A has sunk; the newcomer B goes first although A is older.
    let q = [job(A, 1), job(B, 2), job(B, 3)];
    assert_eq!(m.pick(60, &q, &view(0, &[A], 0)), Pick::Run(1));
    // At the window's end everyone is back on top: oldest first again.
    assert_eq!(m.pick(10_000, &q, &view(0, &[A], 0)), Pick::Run(0));
    assert_eq!(m.consumed(A), 0);
}

#[test]
fn picks_are_always_in_range() {
    let mut rng = sim::SplitMix64::new(42);
    for p in GpuPolicy::ALL {
        let mut s = scheduler(p, &SchedConfig::default());
        let mut now = 0;
        for round in 0..500u32 {
            now += rng.next_u64() % 100_000;
            let n = (rng.next_u64() % 6) as usize;
            let q: Vec<Pending> = (0..n)
                .map(|i| job(GpuFn((rng.next_u64() % 3) as u32), now - i as u64))
                .collect();
            let warm = [GpuFn(round % 3)];
            let slot = (rng.next_u64() % 3) as usize;
            match s.pick(now, &q, &view(slot, &warm, now.saturating_sub(50_000))) {
                Pick::Run(i) => assert!(i < q.len(), "{p}"),
                Pick::Idle { retry_at } => {
                    assert!(q.is_empty() || p == GpuPolicy::Exclusive, "{p} idles");
                    assert!(retry_at.is_none_or(|t| t > now), "{p}");
                }
            }
            s.on_finish(now, slot, GpuFn(round % 3), 10_000);
        }
    }
}
