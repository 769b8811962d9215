//! GPU built-ins on a simulated device through the slots' [`WarmCache`]: slots on one
//! device share warm states through the device cache (one cold start per device, not per
//! slot), LRU eviction under the device's memory budget forces a new cold start, CPU
//! functions keep their per-slot state, and heavy calls really take the modelled time.

use rukong_core::Value;
use rukong_executor::device::{Device, DeviceCache, ExecModel, Simulated, SimulatedConfig};
use rukong_executor::functions::Registry;
use rukong_executor::functions::gpu::{MLP_WIDTH, VecForm, vector_value};
use rukong_executor::run::{WarmCache, call_once};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn slots(
    sim: SimulatedConfig,
    budget: Option<u64>,
    n: usize,
) -> (Arc<DeviceCache>, Vec<WarmCache>) {
    let device: Arc<dyn Device> = Arc::new(Simulated::new(sim));
    let cache = Arc::new(DeviceCache::for_device(device.as_ref(), budget));
    let caches = (0..n)
        .map(|_| WarmCache::on_device(device.clone(), cache.clone()))
        .collect();
    (cache, caches)
}

#[test]
fn slots_on_one_device_share_warm_state() {
    let registry = Registry::with_builtins();
    let mlp = registry.index_of("gpu_mlp").unwrap();
    let cfg = SimulatedConfig {
        context_ms: 20.0,
        upload_fixed_ms: 5.0,
        ..SimulatedConfig::instant()
    };
    let (cache, mut slots) = slots(cfg, None, 2);
    let (s0, cold0) = slots[0].get_or_init(&registry, mlp, 0).unwrap();
    assert!(cold0.happened);
    let names: Vec<&str> = cold0.stages.iter().map(|s| s.name.as_str()).collect();
    assert!(
        names.contains(&"context") && names.contains(&"weight_upload"),
        "{names:?}"
    );
    assert!(cold0.init >= Duration::from_millis(25));
    // The other slot finds it warm: no cold start, the same state.
    let (s1, cold1) = slots[1].get_or_init(&registry, mlp, 1).unwrap();
    assert!(!cold1.happened);
    assert!(Arc::ptr_eq(s0.as_ref().unwrap(), s1.as_ref().unwrap()));
    assert!(slots[1].is_warm(mlp));
    let snap = cache.snapshot();
    assert_eq!((snap.misses, snap.hits, snap.entries), (1, 1, 1));
    assert_eq!(snap.used_bytes, 789_504);
    assert!(snap.stage_us["context"] >= 20_000);
}

#[test]
fn cpu_functions_on_a_device_slot_stay_per_slot() {
    let registry = Registry::with_builtins();
    let add = registry.index_of("add").unwrap();
    let (cache, mut slots) = slots(SimulatedConfig::instant(), None, 1);
    let (_, cold) = slots[0].get_or_init(&registry, add, 0).unwrap();
    assert!(cold.happened);
    let (_, cold) = slots[0].get_or_init(&registry, add, 0).unwrap();
    assert!(!cold.happened);
    assert!(slots[0].is_warm(add));
    assert_eq!(cache.snapshot().entries, 0);
}

#[test]
fn eviction_under_the_device_budget_costs_a_new_cold_start() {
    let registry = Registry::with_builtins();
    let mlp = registry.index_of("gpu_mlp").unwrap();
    let saxpy = registry.index_of("gpu_saxpy").unwrap();
    // Room for the MLP's weights or the saxpy module, not both.
    let (cache, mut slots) = slots(SimulatedConfig::instant(), Some(789_504 + 100), 1);
    let slot = &mut slots[0];
    assert!(slot.get_or_init(&registry, mlp, 0).unwrap().1.happened);
    assert!(slot.get_or_init(&registry, saxpy, 0).unwrap().1.happened);
    assert!(!slot.is_warm(mlp), "the MLP's weights were evicted");
    assert!(slot.is_warm(saxpy));
    assert!(slot.get_or_init(&registry, mlp, 0).unwrap().1.happened);
    let snap = cache.snapshot();
    assert_eq!((snap.misses, snap.evictions), (3, 2));
    assert!(snap.used_bytes <= snap.budget_bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heavy_calls_take_the_modelled_time_and_give_real_outputs() {
    let registry = Registry::with_builtins();
    let mlp = registry.index_of("gpu_mlp").unwrap();
    let cfg = SimulatedConfig {
        exec: ExecModel {
            fixed_us: 20_000.0,
            per_item_us: 0.0,
            alpha: 1.0,
            table: Vec::new(),
        },
        ..SimulatedConfig::instant()
    };
    let (_, mut slots) = slots(cfg, None, 1);
    let (state, _) = slots[0].get_or_init(&registry, mlp, 0).unwrap();
    let x = vector_value(&vec![0.5f32; MLP_WIDTH], VecForm::Array);
    let t0 = Instant::now();
    let on_sim = call_once(registry.get(mlp), state.as_ref(), vec![x.clone()], None)
        .await
        .unwrap();
    assert!(
        t0.elapsed() >= Duration::from_millis(20),
        "{:?}",
        t0.elapsed()
    );
    // The same output as the CPU reference without any device.
    let on_cpu = registry.get(mlp).call(None, vec![x]).unwrap();
    assert_eq!(on_sim, on_cpu);
    assert!(matches!(on_sim, Value::Array(ref v) if v.len() == MLP_WIDTH));
}
