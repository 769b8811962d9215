//! The device layer without a GPU: the simulated model (config, timing, stages),
//! discovery, and the serde forms of the registration types.

use super::*;
use std::time::Instant;

#[test]
fn exec_model_formula_and_table() {
    let m = ExecModel {
        fixed_us: 10.0,
        per_item_us: 5.0,
        alpha: 0.5,
        table: Vec::new(),
    };
    assert_eq!(m.time(4, 1.0), Duration::from_micros(20));
    assert_eq!(m.time(1, 16.0), Duration::from_micros(30));
    assert_eq!(m.time(0, 1.0), Duration::from_micros(10));
    let t = ExecModel {
        table: vec![(4.0, 100.0), (1.0, 40.0), (2.0, 60.0)],
        ..m
    };
    assert_eq!(t.time(1, 1.0), Duration::from_micros(40));
    assert_eq!(t.time(3, 1.0), Duration::from_micros(80));
    // Extrapolated from the last two rows.
    assert_eq!(t.time(6, 1.0), Duration::from_micros(140));
}

#[test]
fn simulated_config_serde_defaults_and_validation() {
    let c: SimulatedConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(c, SimulatedConfig::default());
    let c: SimulatedConfig =
        serde_json::from_str(r#"{"context_ms": 5, "exec": {"alpha": 1.0, "table": [[1, 2.5]]}}"#)
            .unwrap();
    assert_eq!(c.context_ms, 5.0);
    assert_eq!(c.exec.table, vec![(1.0, 2.5)]);
    assert_eq!(c.exec.fixed_us, ExecModel::default().fixed_us);
    let e = serde_json::from_str::<SimulatedConfig>(r#"{"contxt_ms": 5}"#).unwrap_err();
    assert!(e.to_string().contains("unknown field"), "{e}");
    assert!(c.validate().is_ok());
    let bad = SimulatedConfig {
        compile_ms: -1.0,
        ..SimulatedConfig::default()
    };
    assert!(bad.validate().unwrap_err().contains("compile_ms"));
    let bad = SimulatedConfig {
        memory_bytes: 0,
        ..SimulatedConfig::default()
    };
    assert!(bad.validate().unwrap_err().contains("memory_bytes"));
}

#[test]
fn simulated_exec_takes_the_modelled_time_and_returns_the_result() {
    let sim = Simulated::new(SimulatedConfig {
        exec: ExecModel {
            fixed_us: 5_000.0,
            per_item_us: 1_000.0,
            alpha: 1.0,
            table: Vec::new(),
        },
        ..SimulatedConfig::instant()
    });
    let t0 = Instant::now();
    let r = sim.exec(3, 1.0, || 42);
    let took = t0.elapsed();
    assert_eq!(r, 42);
    assert!(took >= Duration::from_millis(8), "{took:?}");
    assert!(took < Duration::from_millis(200), "{took:?}");
    let c = sim.counters();
    assert_eq!((c.launches, c.items, c.modelled_exec_us), (1, 3, 8_000));
    assert!(c.wall_exec_us >= 8_000);
}

#[test]
fn simulated_context_is_paid_once_until_reset() {
    let sim = Simulated::new(SimulatedConfig {
        context_ms: 10.0,
        cublas_handle_ms: 5.0,
        ..SimulatedConfig::instant()
    });
    let log = InitLog::new();
    sim.warm_cublas(&log);
    let rec = log.record();
    let names: Vec<&str> = rec.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["context", "cublas_handle"]);
    assert!(rec.stages[0].duration >= Duration::from_millis(10));
    assert!(rec.stages[1].duration >= Duration::from_millis(5));
    let again = InitLog::new();
    sim.warm_cublas(&again);
    assert!(again.record().stages.is_empty());
    assert!(sim.has_context());
    sim.reset();
    assert!(!sim.has_context());
    let third = InitLog::new();
    sim.warm_context(&third);
    assert_eq!(third.record().stages.len(), 1);
}

#[test]
fn upload_time_scales_with_bytes() {
    let c = SimulatedConfig {
        upload_fixed_ms: 1.0,
        upload_gb_per_s: 1.0,
        ..SimulatedConfig::default()
    };
    assert_eq!(c.upload_time(0), Duration::from_millis(1));
    assert_eq!(c.upload_time(1_000_000), Duration::from_millis(2));
    let sim = Simulated::new(SimulatedConfig::instant());
    let log = InitLog::new();
    sim.upload(1234, &log);
    let r = log.record();
    assert_eq!((r.resident_bytes, r.device_bound), (1234, true));
    assert_eq!(r.stages[0].name, "weight_upload");
}

#[test]
fn discover_offers_the_simulated_device_when_configured() {
    assert!(discover(&DiscoverOptions::default()).is_empty());
    let d = discover(&DiscoverOptions {
        cuda: false,
        simulate: Some(SimulatedConfig::default()),
    });
    assert_eq!(d.len(), 1);
    let info = d[0].info();
    assert_eq!(info.kind, DeviceKind::Simulated);
    assert_eq!(info.memory_bytes, 16 << 30);
    assert_eq!(d[0].memory_budget(), 16 << 30);
    assert_eq!(d[0].label(), "simulated:sim-gpu");
    assert!(matches!(d[0].backend(), Backend::Simulated(_)));
    // Asking for CUDA on a machine without a GPU (or without the feature) finds nothing
    // and does not panic.
    let only_cuda = discover(&DiscoverOptions {
        cuda: true,
        simulate: None,
    });
    assert!(only_cuda.iter().all(|d| d.info().kind == DeviceKind::Cuda));
}

#[test]
fn device_info_serde_form() {
    let info = DeviceInfo {
        kind: DeviceKind::Simulated,
        name: "sim".into(),
        memory_bytes: 7,
        mig: false,
    };
    let j = serde_json::to_value(&info).unwrap();
    assert_eq!(
        j,
        serde_json::json!({"kind": "simulated", "name": "sim", "memory_bytes": 7, "mig": false})
    );
    let back: DeviceInfo = serde_json::from_value(j).unwrap();
    assert_eq!(back, info);
    assert_eq!(Cpu::new().info().kind.as_str(), "cpu");
    assert_eq!(Cpu::with_budget(5).memory_budget(), 5);
}

#[test]
fn init_log_collects_stages_and_bytes() {
    let log = InitLog::new();
    let shared = log.clone();
    assert_eq!(log.time("a", || 3), 3);
    shared.stage("b", Duration::from_millis(2));
    assert!(!log.record().device_bound);
    shared.resident(10);
    log.resident(5);
    let r = log.record();
    assert_eq!(r.stages.len(), 2);
    assert_eq!((r.resident_bytes, r.device_bound), (15, true));
}
