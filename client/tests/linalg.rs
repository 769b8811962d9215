//! The linear-algebra built-ins end to end: blocked GEMM and TSQR against single-node
//! references, blocks tiling the global matrix, and error cases. Plus an ignored benchmark
//! (`cargo test --release -p rukong-client --test linalg -- --ignored --nocapture`).

use rukong_client::linalg_workloads::{
    self as lw, GEMM_REL_TOL, TSQR_REL_TOL, check_gemm, check_tsqr,
};
use rukong_client::{JobBuilder, Local, LocalConfig};
use rukong_core::Value;
use rukong_core::messages::JobState;
use rukong_executor::functions::linalg::{self, Matrix, Threads};
use std::time::{Duration, Instant};

fn local() -> Local {
    Local::start(LocalConfig::default()).unwrap()
}

fn failed(state: &JobState) -> (&str, &str) {
    match state {
        JobState::Failed { task, error } => (task.as_str(), error.as_str()),
        s => panic!("expected a failure, got {s:?}"),
    }
}

fn succeeded(state: &JobState) {
    assert!(
        matches!(state, JobState::Succeeded),
        "expected success, got {state:?}"
    );
}

#[test]
fn gemm_256_in_64_blocks_matches_the_single_node_product() {
    let local = local();
    let reference = lw::gemm_reference(256, Threads::One);

    // Every C block as an output: compared entry by entry.
    let spec = lw::gemm_all_blocks(256, 64);
    assert_eq!(spec.tasks.len(), lw::gemm_task_count(256, 64));
    assert_eq!(spec.tasks.len(), 128);
    let r = local.run(spec).unwrap();
    succeeded(&r.state);
    let check = check_gemm(256, 64, &r.outputs, &reference).unwrap();
    assert_eq!(check.blocks_checked, 16);
    assert!(check.rel_err < GEMM_REL_TOL, "{check:?}");

    // The default outputs: block norms and one sample block.
    let r = local.run(lw::gemm(256, 64)).unwrap();
    succeeded(&r.state);
    let check = check_gemm(256, 64, &r.outputs, &reference).unwrap();
    assert_eq!((check.blocks_checked, check.norms_checked), (1, 16));

    // A wrong answer is caught.
    let mut bad = r.outputs.clone();
    if let Some((_, Value::Float(f))) = bad.iter_mut().find(|(id, _)| id.as_str() == "f1_2") {
        *f *= 1.0 + 1e-9;
    }
    assert!(check_gemm(256, 64, &bad, &reference).is_err());
}

/// Runs `spec` on `local` and returns the bytes of its outputs the store still holds once
/// it finished (waiting a little for the last walks' releases), before freeing the job.
fn held_after(local: &Local, spec: rukong_core::DagSpec) -> usize {
    local.block_on(async {
        let engine = local.engine();
        let job = engine.submit(spec).await.unwrap();
        let r = engine
            .wait(&job, Instant::now(), Some(Duration::from_secs(60)), |_| {})
            .await
            .unwrap();
        succeeded(&r.state);
        // Releases follow each walk's last effects: give the last ones a moment.
        let mut held = local.store().held_bytes(&job).unwrap();
        let until = Instant::now() + Duration::from_secs(5);
        while held > 0 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
            held = local.store().held_bytes(&job).unwrap();
        }
        engine.release(&job).await.unwrap();
        held
    })
}

#[test]
fn gemm_intermediates_are_freed_once_read_unless_kept() {
    // 128-blocks: 128 KiB tiles and products, all intermediates (the outputs are the norms
    // and the chained sample block).
    let local = local();
    assert_eq!(held_after(&local, lw::gemm(512, 128)), 0);
    assert_eq!(held_after(&local, lw::gemm_streaming(512, 128)), 0);

    let mut config = LocalConfig::default();
    config.engine.job.keep_intermediates = true;
    let keeping = Local::start(config).unwrap();
    let held = held_after(&keeping, lw::gemm(512, 128));
    // Every product (64) is kept in a fan-in cell, at least.
    assert!(held >= 64 * 128 * 128 * 8, "kept only {held} bytes");
}

#[test]
fn streaming_gemm_gives_the_same_outputs_bit_for_bit() {
    let local = local();
    let reference = lw::gemm_reference(256, Threads::One);
    let plain = local.run(lw::gemm(256, 64)).unwrap();
    let streaming = local.run(lw::gemm_streaming(256, 64)).unwrap();
    succeeded(&streaming.state);
    let check = check_gemm(256, 64, &streaming.outputs, &reference).unwrap();
    assert_eq!((check.blocks_checked, check.norms_checked), (1, 16));
    let mut a = plain.outputs.clone();
    let mut b = streaming.outputs.clone();
    a.sort_by(|x, y| x.0.cmp(&y.0));
    b.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(a, b);
}

#[test]
fn gemm_with_uneven_tiles() {
    // 100 = 3·30 + 10: edge tiles are 10 wide.
    let local = local();
    let r = local.run(lw::gemm_all_blocks(100, 30)).unwrap();
    succeeded(&r.state);
    let check = check_gemm(100, 30, &r.outputs, &lw::gemm_reference(100, Threads::One)).unwrap();
    assert_eq!(check.blocks_checked, 16);
}

#[test]
fn tsqr_4000x20_in_500_row_blocks_matches_the_single_node_svd() {
    let spec = lw::tsqr(4000, 20, 500);
    assert_eq!(spec.tasks.len(), lw::tsqr_task_count(4000, 500));
    assert_eq!(spec.tasks.len(), 31);
    let r = local().run(spec).unwrap();
    succeeded(&r.state);
    let reference = lw::tsqr_reference(4000, 20, Threads::One).unwrap();
    assert_eq!(reference.len(), 20);
    let err = check_tsqr(&r.outputs, &reference).unwrap();
    assert!(err < TSQR_REL_TOL, "{err:e}");
    // Descending.
    let Some(Value::Array(sv)) = r.output("sv") else {
        panic!("sv is an array")
    };
    let sv: Vec<f64> = sv
        .iter()
        .map(|v| match v {
            Value::Float(f) => *f,
            _ => f64::NAN,
        })
        .collect();
    assert!(sv.windows(2).all(|w| w[0] >= w[1]), "{sv:?}");
}

#[test]
fn tsqr_with_an_odd_number_of_uneven_blocks() {
    // 7 blocks, the last one 100 rows: the tree carries odd ones up.
    let r = local().run(lw::tsqr(700 - 50, 12, 100)).unwrap();
    succeeded(&r.state);
    let reference = lw::tsqr_reference(650, 12, Threads::One).unwrap();
    check_tsqr(&r.outputs, &reference).unwrap();
}

#[test]
fn block_tiles_equal_the_full_matrix() {
    let (rows, cols, seed) = (150usize, 90usize, 77i64);
    let mut b = JobBuilder::new("tiles");
    b.task("full", "matrix")
        .arg(rows as i64)
        .arg(cols as i64)
        .arg(seed);
    let tile = 64usize;
    let mut ids = Vec::new();
    for r0 in (0..rows).step_by(tile) {
        for c0 in (0..cols).step_by(tile) {
            let id = format!("t{r0}_{c0}");
            b.task(id.as_str(), "block")
                .arg(tile.min(rows - r0) as i64)
                .arg(tile.min(cols - c0) as i64)
                .arg(seed)
                .arg(r0 as i64)
                .arg(c0 as i64);
            b.output(id.as_str());
            ids.push((id, r0, c0));
        }
    }
    b.output("full");
    // The first block row, re-assembled by vstack of the column-0 tiles, checked in-DAG.
    b.task("col0", "vstack").deps(["t0_0", "t64_0", "t128_0"]);
    b.task("col0_ref", "block")
        .arg(rows as i64)
        .arg(64)
        .arg(seed)
        .arg(0)
        .arg(0);
    b.task("diff", "max_abs_diff").deps(["col0", "col0_ref"]);
    b.output("diff");
    let r = local().run(b.build()).unwrap();
    succeeded(&r.state);
    let full = Matrix::from_value(r.output("full").unwrap()).unwrap();
    assert_eq!(full, linalg::generate(rows, cols, seed as u64, 0, 0));
    for (id, r0, c0) in ids {
        let t = Matrix::from_value(r.output(&id).unwrap()).unwrap();
        assert_eq!(t, full.sub(r0, c0, tile, tile), "{id}");
    }
    assert_eq!(r.output("diff"), Some(&Value::Float(0.0)));
}

#[test]
fn errors_are_clear() {
    let local = local();
    let run_failing = |b: JobBuilder| -> (String, String) {
        let r = local.run(b.build()).unwrap();
        let (t, e) = failed(&r.state);
        (t.to_owned(), e.to_owned())
    };

    // Shape mismatch names both shapes.
    let mut b = JobBuilder::new("mismatch");
    b.task("a", "matrix").arg(3).arg(4).arg(1);
    b.task("b", "matrix").arg(5).arg(6).arg(2);
    b.task("c", "matmul").deps(["a", "b"]);
    assert_eq!(
        run_failing(b),
        (
            "c".into(),
            "matmul: shape mismatch: a is 3x4, b is 5x6 (a has 4 columns, b has 5 rows)".into()
        )
    );

    let mut b = JobBuilder::new("madd-mismatch");
    b.task("a", "matrix").arg(2).arg(2).arg(1);
    b.task("b", "matrix").arg(2).arg(3).arg(1);
    b.task("c", "madd").deps(["a", "b"]);
    assert_eq!(
        run_failing(b).1,
        "madd: shape mismatch: input 1 is 2x2, input 2 is 2x3"
    );

    // Non-numeric input.
    let mut b = JobBuilder::new("non-numeric");
    b.task("a", "matrix").arg(2).arg(2).arg(1);
    b.task("c", "matmul").dep("a").arg("not a matrix");
    assert_eq!(
        run_failing(b).1,
        "matmul: input 2 is a string, expected a matrix (a map {rows, cols, f64le} or an array of rows of numbers)"
    );
    let mut b = JobBuilder::new("non-numeric-entry");
    b.task("n", "frobenius")
        .arg(Value::Array(vec![Value::Array(vec![
            Value::Float(1.0),
            Value::Str("two".into()),
        ])]));
    assert_eq!(
        run_failing(b).1,
        "frobenius: input 1 is not a matrix: entry (1, 2) is a string, expected a number"
    );
    let mut b = JobBuilder::new("bad-seed");
    b.task("a", "block").arg(2).arg(2).arg("seed").arg(0).arg(0);
    assert_eq!(
        run_failing(b).1,
        "block: seed (input 3) is a string, expected an int"
    );

    // Wrong arity.
    let mut b = JobBuilder::new("arity");
    b.task("a", "matrix").arg(2).arg(2);
    assert_eq!(run_failing(b).1, "matrix: expects 3 inputs, got 2");
    let mut b = JobBuilder::new("arity2");
    b.task("a", "matrix").arg(2).arg(2).arg(1);
    b.task("q", "qr_r").deps(["a", "a"]);
    assert_eq!(run_failing(b).1, "qr_r: expects 1 input, got 2");
    let mut b = JobBuilder::new("arity3");
    b.task("v", "vstack");
    assert_eq!(run_failing(b).1, "vstack: expects at least 1 input, got 0");

    // The deployment still works afterwards.
    let mut b = JobBuilder::new("ok");
    b.task("a", "matrix").arg(2).arg(2).arg(1);
    b.task("n", "frobenius").dep("a");
    let r = local.run(b.build()).unwrap();
    succeeded(&r.state);
}

// ----------------------------------------------------------------------------------------
// Benchmark
// ----------------------------------------------------------------------------------------

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Best wall time of `reps` runs of the job, checked each time.
fn time_job(
    local: &Local,
    reps: usize,
    spec: impl Fn() -> rukong_core::dag::DagSpec,
    check: impl Fn(&[(rukong_core::TaskId, Value)]) -> String,
) -> (f64, String) {
    let mut best = f64::MAX;
    let mut note = String::new();
    for _ in 0..reps {
        let s = spec();
        let cpu0 = cpu_seconds();
        let t = Instant::now();
        let r = local.run(s).unwrap();
        let wall = secs(t.elapsed());
        let cpu = cpu_seconds() - cpu0;
        succeeded(&r.state);
        note = format!(
            "{}; process CPU {cpu:.2} s in {wall:.2} s wall",
            check(&r.outputs)
        );
        best = best.min(wall);
    }
    (best, note)
}

/// This process's user + system CPU time (Linux), or 0 where unknown.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the ")" that ends the command name: utime and stime are the 12th and
    // 13th, in clock ticks (100 a second on Linux).
    let Some(rest) = stat.rsplit(')').next() else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn best_of<T>(reps: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::MAX;
    let mut out = None;
    for _ in 0..reps {
        let t = Instant::now();
        let v = f();
        best = best.min(secs(t.elapsed()));
        out = Some(v);
    }
    (best, out.expect("reps >= 1"))
}

/// Cases: `RUKONG_LINALG_BENCH`, comma-separated `gemm:N:BLOCK` ([`lw::gemm`]) and
/// `tsqr:ROWS:COLS:BLOCK_ROWS` ([`lw::tsqr`]) (default below);
/// `RUKONG_LINALG_REPS` runs of each (default 2, the best kept).
#[test]
#[ignore = "benchmark; run with --release -- --ignored"]
fn bench_linalg_vs_single_node() {
    let cases = std::env::var("RUKONG_LINALG_BENCH").unwrap_or_else(|_| {
        "gemm:1024:256,gemm:4096:128,gemm:4096:512,gemm:4096:1024,tsqr:200000:100:10000".into()
    });
    let reps: usize = std::env::var("RUKONG_LINALG_REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2)
        .max(1);
    let local = local();
    println!(
        "slots {}, cores {}",
        local.slots(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    // The value form's cost: encode + decode of a 128x128 block (128 KiB).
    let m = linalg::generate(128, 128, 1, 0, 0);
    let (codec_s, _) = best_of(3, || {
        for _ in 0..200 {
            let v = std::hint::black_box(m.to_value());
            std::hint::black_box(Matrix::from_value(&v).unwrap());
        }
    });
    println!(
        "value form: to_value + from_value of a 128x128 block {:.1} us ({:.1} GB/s each way)",
        codec_s / 200.0 * 1e6,
        2.0 * 131_072.0 * 200.0 / codec_s / 1e9
    );
    // Warm the deployment up.
    local.run(lw::gemm(128, 64)).unwrap();
    for case in cases.split(',') {
        let p: Vec<usize> = case
            .split(':')
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        match (case.split(':').next(), p.as_slice()) {
            (Some("gemm"), &[n, block]) => {
                let t = Instant::now();
                let (a, b) = lw::gemm_inputs(n);
                let gen_s = secs(t.elapsed());
                let (all_s, reference) =
                    best_of(reps, || linalg::matmul(&a, &b, Threads::All).unwrap());
                let (one_s, _) = best_of(1, || linalg::matmul(&a, &b, Threads::One).unwrap());
                drop((a, b));
                let (e2e, note) = time_job(
                    &local,
                    reps,
                    || lw::gemm(n, block),
                    |outs| {
                        let c = check_gemm(n, block, outs, &reference).unwrap();
                        format!(
                            "sample rel err {:.1e}, norm rel err {:.1e}",
                            c.rel_err, c.norm_rel_err
                        )
                    },
                );
                let flops = 2.0 * (n as f64).powi(3);
                println!(
                    "gemm n={n} block={block}: {} tasks; rukong {e2e:.3} s ({:.1} GFLOP/s); single-node matmul {all_s:.3} s all cores ({:.1} GFLOP/s), {one_s:.3} s one core (+{gen_s:.3} s generating A, B); ratio {:.2}x vs all cores, {:.2}x vs one core; {note}",
                    lw::gemm_task_count(n, block),
                    flops / e2e / 1e9,
                    flops / all_s / 1e9,
                    e2e / all_s,
                    e2e / one_s,
                );
            }
            (Some("tsqr"), &[rows, cols, block_rows]) => {
                let t = Instant::now();
                let a = linalg::generate(rows, cols, lw::TSQR_SEED, 0, 0);
                let gen_s = secs(t.elapsed());
                let (all_s, reference) =
                    best_of(reps, || linalg::singular_values(&a, Threads::All).unwrap());
                let (one_s, _) = best_of(1, || linalg::singular_values(&a, Threads::One).unwrap());
                let (qr_s, _) = best_of(1, || linalg::qr_r(&a, Threads::All).unwrap());
                drop(a);
                let (e2e, note) = time_job(
                    &local,
                    reps,
                    || lw::tsqr(rows, cols, block_rows),
                    |outs| format!("sv rel err {:.1e}", check_tsqr(outs, &reference).unwrap()),
                );
                println!(
                    "tsqr {rows}x{cols} in {block_rows}-row blocks: {} tasks; rukong {e2e:.3} s; single-node SVD {all_s:.3} s all cores, {one_s:.3} s one core (QR alone {qr_s:.3} s; +{gen_s:.3} s generating); ratio {:.2}x vs all cores, {:.2}x vs one core; {note}",
                    lw::tsqr_task_count(rows, block_rows),
                    e2e / all_s,
                    e2e / one_s,
                );
            }
            _ => panic!("bad case {case:?}"),
        }
    }
}

/// By hand: how much the store holds over a streaming GEMM's run (its peak, sampled), to
/// tell stored outputs from other memory in the process's peak RSS.
/// `cargo test --release -p rukong-client --test linalg -- --ignored --nocapture held_over_time`
#[test]
#[ignore = "by hand: a release-build measurement that prints what the store holds, no assertion"]
fn held_over_time() {
    let n: usize = std::env::var("RUKONG_GEMM_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2048);
    let local = local();
    local.block_on(async {
        let engine = local.engine();
        let job = engine.submit(lw::gemm_streaming(n, 128)).await.unwrap();
        let store = local.store().clone();
        let j = job.clone();
        let sampler = tokio::spawn(async move {
            let mut peak = 0;
            while let Ok(h) = store.held_bytes(&j) {
                peak = peak.max(h);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            peak
        });
        let r = engine
            .wait(&job, Instant::now(), Some(Duration::from_secs(600)), |_| {})
            .await
            .unwrap();
        succeeded(&r.state);
        engine.release(&job).await.unwrap();
        let peak = sampler.await.unwrap();
        eprintln!(
            "gemm-streaming n={n}: the store held at most {:.1} MiB; inputs + output are {:.1} MiB",
            peak as f64 / (1 << 20) as f64,
            (3 * n * n * 8) as f64 / (1 << 20) as f64
        );
    });
}
