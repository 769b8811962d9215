//! The per-device warm cache: hits after warm-up, LRU eviction under a budget, one init
//! per function across threads, failures, and cold-start accounting by stage.

use super::*;
use crate::device::{Simulated, SimulatedConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// An init that leaves `bytes` resident and returns `tag`.
fn resident(bytes: u64, tag: i64) -> impl FnOnce(&InitLog) -> Result<Option<WarmState>, FnError> {
    move |log| {
        log.resident(bytes);
        Ok(Some(Arc::new(tag) as WarmState))
    }
}

fn tag(state: &Option<WarmState>) -> i64 {
    *state.as_ref().unwrap().downcast_ref::<i64>().unwrap()
}

#[test]
fn hits_after_warm_up() {
    let c = DeviceCache::new("test", 1000);
    let (s, cold) = c.get_or_init("f", resident(10, 1)).unwrap();
    assert_eq!(tag(&s), 1);
    assert!(cold.happened && !cold.joined);
    for _ in 0..3 {
        let (s, cold) = c
            .get_or_init("f", |_| panic!("must not init again"))
            .unwrap();
        assert_eq!(tag(&s), 1);
        assert_eq!(cold, ColdStart::default());
    }
    let snap = c.snapshot();
    assert_eq!(
        (snap.hits, snap.misses, snap.entries, snap.used_bytes),
        (3, 1, 1, 10)
    );
    assert_eq!(snap.device, "test");
    assert!(c.contains("f"));
}

#[test]
fn lru_eviction_under_a_small_budget() {
    let c = DeviceCache::new("test", 100);
    c.get_or_init("a", resident(40, 1)).unwrap();
    c.get_or_init("b", resident(40, 2)).unwrap();
    // Touch a: b is now the least recently used.
    c.get_or_init("a", resident(40, 9)).unwrap();
    c.get_or_init("c", resident(40, 3)).unwrap();
    assert_eq!(c.keys_lru(), ["a", "c"]);
    let snap = c.snapshot();
    assert_eq!(
        (snap.evictions, snap.evicted_bytes, snap.used_bytes),
        (1, 40, 80)
    );
    // b comes back cold.
    let (s, cold) = c.get_or_init("b", resident(40, 4)).unwrap();
    assert_eq!(tag(&s), 4);
    assert!(cold.happened);
    assert_eq!(c.keys_lru(), ["c", "b"]);
    // A state bigger than the budget is returned but not kept, and evicts nothing.
    let (s, _) = c.get_or_init("huge", resident(101, 5)).unwrap();
    assert_eq!(tag(&s), 5);
    assert!(!c.contains("huge"));
    assert_eq!(c.snapshot().uncached, 1);
    assert_eq!(c.keys_lru(), ["c", "b"]);
    // Lowering the budget evicts down to it.
    c.set_budget(50);
    assert_eq!(c.keys_lru(), ["b"]);
    assert_eq!(c.evict("b"), Some(40));
    assert_eq!(c.evict("b"), None);
    assert_eq!(c.snapshot().used_bytes, 0);
}

#[test]
fn states_that_are_not_device_bound_are_not_kept() {
    let c = DeviceCache::new("test", 100);
    let (s, cold) = c
        .get_or_init("cpu_fn", |_| Ok(Some(Arc::new(7i64) as WarmState)))
        .unwrap();
    assert_eq!(tag(&s), 7);
    assert!(cold.happened);
    assert!(!c.contains("cpu_fn"));
    // Zero bytes but bound to the device: kept.
    c.get_or_init("kernel", |log| {
        log.bind_to_device();
        Ok(None)
    })
    .unwrap();
    assert!(c.contains("kernel"));
}

#[test]
fn failed_and_panicking_inits_are_reported_and_retried() {
    let c = DeviceCache::new("test", 100);
    let e = c
        .get_or_init("f", |_| Err(FnError::new("no weights")))
        .unwrap_err();
    assert_eq!(e.message, "no weights");
    let e = c.get_or_init("f", |_| panic!("boom")).unwrap_err();
    assert_eq!(e.message, "init panicked: boom");
    assert_eq!(c.snapshot().init_failures, 2);
    // Nothing is stuck in progress: the next call runs init.
    let (s, _) = c.get_or_init("f", resident(1, 3)).unwrap();
    assert_eq!(tag(&s), 3);
}

#[test]
fn concurrent_misses_run_one_init() {
    let c = Arc::new(DeviceCache::new("test", 100));
    let inits = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let c = c.clone();
            let inits = inits.clone();
            std::thread::spawn(move || {
                c.get_or_init("slow", |log| {
                    inits.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(50));
                    log.resident(8);
                    Ok(Some(Arc::new(1i64) as WarmState))
                })
                .unwrap()
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(inits.load(Ordering::SeqCst), 1);
    for (s, _) in &results {
        assert_eq!(tag(s), 1);
    }
    let snap = c.snapshot();
    assert_eq!(snap.misses, 1);
    assert_eq!(snap.hits + snap.joins, 3);
    // Whoever waited reports it as a cold start it joined.
    for (_, cold) in results.iter().filter(|(_, c)| c.joined) {
        assert!(cold.happened && cold.stages.is_empty());
    }
}

#[test]
fn simulated_stages_add_up_to_the_cold_start() {
    let sim = Arc::new(Simulated::new(SimulatedConfig {
        context_ms: 30.0,
        compile_ms: 20.0,
        module_load_ms: 10.0,
        ..SimulatedConfig::instant()
    }));
    let c = DeviceCache::for_device(sim.as_ref(), None);
    assert_eq!(c.snapshot().budget_bytes, sim.config().memory_bytes);
    let f = crate::functions::gpu::GpuSaxpy;
    let device: Arc<dyn crate::device::Device> = sim.clone();
    let (_, cold) = c
        .get_or_init("gpu_saxpy", |log| {
            let ctx = crate::functions::InitCtx {
                name: "gpu_saxpy".into(),
                slot: 0,
                device: Some(device.clone()),
                log: log.clone(),
            };
            crate::functions::Function::init(&f, &ctx)
        })
        .unwrap();
    let names: Vec<&str> = cold.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["context", "compile", "module_load"]);
    let sum: Duration = cold.stages.iter().map(|s| s.duration).sum();
    assert!(sum >= Duration::from_millis(60), "{sum:?}");
    assert!(cold.init >= sum, "{:?} < {sum:?}", cold.init);
    assert!(
        cold.init - sum < Duration::from_millis(20),
        "{:?} vs {sum:?}",
        cold.init
    );
    let snap = c.snapshot();
    assert_eq!(snap.stage_us.len(), 3);
    assert!(snap.stage_us["context"] >= 30_000);
    assert!(snap.stage_us["compile"] >= 20_000);
    assert!(snap.cold_start_us >= snap.stage_us.values().sum::<u64>());
    assert_eq!(
        snap.used_bytes,
        crate::functions::gpu::saxpy::KERNEL_SRC.len() as u64
    );
}

#[test]
fn a_hinted_state_is_dropped_unused_but_kept_once_a_task_used_it() {
    let cache = DeviceCache::new("test", 1 << 20);
    for key in ["a", "b", "c"] {
        cache.get_or_init(key, resident(10, 1)).unwrap();
    }
    cache.mark_hinted("a");
    cache.mark_hinted("b");
    // A task uses `b`: the hint counts as used once, and `b` is no longer droppable.
    assert!(cache.take_hinted("b").is_some());
    assert!(cache.take_hinted("b").is_none());
    assert!(cache.drop_unused_hint("b").is_none() && cache.contains("b"));
    // `a` was never used: dropped, with the time it was held.
    assert!(cache.drop_unused_hint("a").is_some());
    assert!(!cache.contains("a"));
    // `c` was not loaded by a hint: never dropped as one.
    assert!(cache.drop_unused_hint("c").is_none() && cache.contains("c"));
    assert_eq!(cache.snapshot().evictions, 1);
}
