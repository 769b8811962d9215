//! Cluster mode of `rukong-e2e`: the workloads on a loopback cluster.
//!
//! The harness starts its own `redis-server` (free port, no persistence) so that it can read
//! `INFO commandstats`, then `rukong up --redis URL --executors N --slots S --listen ADDR`
//! (proxy, engine and N executor processes) with a fresh `RUKONG_TOKEN`, and reads the engine
//! URL from the first line `rukong up` prints. Both are stopped on every exit path (drop
//! guards: SIGTERM to `rukong up`, which stops its children, then Redis).
//!
//! Per workload the DAG is generated and serialized once, in the compact submission form;
//! each run submits those bytes (`POST /jobs`), polls `GET /jobs/{id}` every `--poll-ms` until the job ends, fetches
//! `GET /jobs/{id}/outputs` and checks them. `wall` runs from just before the submission to
//! the status poll that saw the job's end (so it includes the HTTP submission, the engine's
//! parsing, validation and scheduling, and up to one poll interval); `engine` is the
//! `elapsed_ms` the engine reports for the job. Redis `INFO commandstats` is read after the
//! warmup runs and after the timed runs: the difference, divided by tasks × repeats, is
//! "redis cmds/task" (commands that Lua scripts run count too, as Redis counts them).

use crate::redis_stats::{self, CmdStat, CommandStats};
use crate::{
    Args, CLUSTER_TARGET_CHAIN_MS, CLUSTER_TARGET_US_PER_TASK, Summary, check_output_json,
    thousands,
};
use anyhow::{Context, Result, bail};
use rukong_client::cli::up::free_port;
use rukong_client::remote::{EngineClient, RemoteStatus};
use rukong_client::workloads::Workload;
use rukong_core::{JobId, TaskId, Value};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long one run may take before the harness gives up.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);
/// How long `rukong up` may take to print the engine URL.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How many commands the per-workload breakdown lists.
const TOP_COMMANDS: usize = 5;

mod report;
pub use report::{Target, target_checks};
use report::{print_commands, print_table, to_json};

/// A child process, stopped on drop: SIGTERM (`kill -TERM PID`), then SIGKILL when it has
/// not exited after `grace`.
struct Proc {
    name: String,
    child: Child,
    grace: Duration,
}

impl Proc {
    fn spawn(name: &str, cmd: &mut Command, grace: Duration) -> Result<Proc> {
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name} ({:?})", cmd.get_program()))?;
        Ok(Proc {
            name: name.to_owned(),
            child,
            grace,
        })
    }

    /// Exited already? (Its status.)
    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn stop(&mut self) {
        if self.exited().is_some() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let t0 = Instant::now();
        while t0.elapsed() < self.grace {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "rukong-e2e: {} did not stop within {} s of SIGTERM; killing it",
            self.name,
            self.grace.as_secs()
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A private `redis-server`: stopped on drop.
struct Redis {
    _proc: Proc,
    /// `127.0.0.1:PORT`
    addr: String,
}

/// `rukong up`, stopped on drop with a long grace period (on SIGTERM it stops its
/// executors, engine and proxy first; killing it early would orphan them).
struct Up {
    proc: Proc,
    log: PathBuf,
}

impl Up {
    /// The last `lines` lines of `rukong up`'s stderr (its children's logs included).
    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// A scratch directory, removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

/// The running cluster. Fields drop in order: `rukong up` first, then Redis, then the
/// scratch directory.
pub struct Cluster {
    up: Up,
    redis: Redis,
    _dir: TempDir,
    pub engine_url: String,
    pub rukong: PathBuf,
    pub executors: usize,
    pub slots: usize,
    client: EngineClient,
}

/// The `rukong` binary: `--rukong PATH`, else `rukong` next to the running executable.
pub fn rukong_path(arg: Option<&str>) -> Result<PathBuf> {
    let path = match arg {
        Some(p) => PathBuf::from(p),
        None => std::env::current_exe()
            .context("locating the running executable")?
            .with_file_name("rukong"),
    };
    if !path.is_file() {
        bail!(
            "no rukong binary at {}: build it with cargo build --release -p rukong-client \
             (or pass --rukong PATH)",
            path.display()
        );
    }
    Ok(path)
}

fn start_redis(dir: &Path) -> Result<Redis> {
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        bail!(
            "redis-server is not installed; cluster mode needs it. Install it (Debian/Ubuntu: \
             `apt-get install -y --no-install-recommends redis-server`)"
        );
    }
    let port = free_port().context("finding a free port for redis-server")?;
    let mut proc = Proc::spawn(
        "redis-server",
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        Duration::from_secs(10),
    )?;
    let addr = format!("127.0.0.1:{port}");
    let t0 = Instant::now();
    while redis_stats::command(&addr, &["PING"]).is_err() {
        if let Some(s) = proc.exited() {
            bail!("redis-server exited during start-up ({s}) on port {port}");
        }
        if t0.elapsed() > Duration::from_secs(10) {
            bail!("redis-server did not answer on port {port} within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Redis { _proc: proc, addr })
}

impl Cluster {
    /// Starts Redis and `rukong up` and waits for the engine URL (printed once every executor
    /// has registered).
    pub fn start(rukong: PathBuf, executors: usize, slots: usize) -> Result<Cluster> {
        let dir = std::env::temp_dir().join(format!("rukong-e2e-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let dir = TempDir(dir);
        let redis = start_redis(&dir.0)?;
        let redis_url = format!("redis://{}", redis.addr);

        let token = format!(
            "e2e-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        let listen = format!("127.0.0.1:{}", free_port().context("a free engine port")?);
        let log = dir.0.join("rukong-up.log");
        let log_file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = Command::new(&rukong);
        cmd.arg("up")
            .args(["--redis", &redis_url])
            .args(["--executors", &executors.to_string()])
            .args(["--slots", &slots.to_string()])
            .args(["--listen", &listen])
            .env("RUKONG_TOKEN", &token)
            .env_remove("RUKONG_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file);
        let proc = Proc::spawn("rukong up", &mut cmd, Duration::from_secs(60))?;
        let mut up = Up { proc, log };

        // The first stdout line is the engine URL; read it on a thread so that a hung start-up
        // times out. The thread then drains stdout until `rukong up` exits.
        let stdout = up.proc_stdout()?;
        let (tx, rx) = std::sync::mpsc::channel::<std::io::Result<String>>();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            let first = r.read_line(&mut line).map(|_| line);
            let _ = tx.send(first);
            let _ = std::io::copy(&mut r, &mut std::io::sink());
        });
        let engine_url = match rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(line)) if !line.trim().is_empty() => line.trim().to_owned(),
            Ok(Ok(_)) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => bail!(
                "rukong up exited without printing the engine URL{}; its log:\n{}",
                up.proc
                    .exited()
                    .map_or(String::new(), |s| format!(" ({s})")),
                up.log_tail(30)
            ),
            Ok(Err(e)) => bail!("reading rukong up's stdout: {e}"),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => bail!(
                "rukong up printed no engine URL within {} s; its log:\n{}",
                START_TIMEOUT.as_secs(),
                up.log_tail(30)
            ),
        };
        if !engine_url.starts_with("http") {
            bail!("rukong up printed `{engine_url}`, not an engine URL");
        }
        let client = EngineClient::new(&engine_url, Some(token), Duration::from_secs(120));
        Ok(Cluster {
            up,
            redis,
            _dir: dir,
            engine_url,
            rukong,
            executors,
            slots,
            client,
        })
    }

    /// Stops everything now (the same as dropping it), waiting for `rukong up` to exit.
    pub fn stop(self) {
        drop(self);
    }

    pub fn redis_addr(&self) -> &str {
        &self.redis.addr
    }

    fn commandstats(&self) -> Result<CommandStats> {
        redis_stats::commandstats(&self.redis.addr).context("reading redis INFO commandstats")
    }

    /// Adds what went wrong in the cluster (an exited `rukong up`, its log's tail) to an error.
    fn explain(&mut self, e: anyhow::Error) -> anyhow::Error {
        let exited = self.up.proc.exited();
        let mut msg = format!("{e:#}");
        if let Some(s) = exited {
            msg.push_str(&format!("\n(rukong up exited: {s})"));
        }
        msg.push_str(&format!(
            "\nlast lines of rukong up's log:\n{}",
            self.up.log_tail(20)
        ));
        anyhow::anyhow!(msg)
    }
}

impl Up {
    fn proc_stdout(&mut self) -> Result<ChildStdout> {
        self.proc
            .child
            .stdout
            .take()
            .context("rukong up's stdout is not piped")
    }
}

/// One timed run, in ms.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Submission start to the poll that saw the job's end.
    pub wall: f64,
    /// The engine's `elapsed_ms` for the job.
    pub engine: f64,
    /// The `POST /jobs` round trip.
    pub submit: f64,
    /// Redis `used_memory` at its highest during the run (sampled every 20 ms), less what
    /// it was just before the submission, in bytes.
    pub redis_peak: f64,
    /// The harness's own Redis calls during the run (the memory sampler's).
    pub harness_calls: u64,
}

/// The timings and Redis command counts of one workload.
pub struct Measured {
    pub workload: Workload,
    pub tasks: usize,
    pub samples: Vec<Sample>,
    /// The commandstats delta over the timed runs (the harness's own INFO call excluded).
    pub redis: CommandStats,
    /// Client round trips Redis served over the timed runs (`total_reads_processed`), the
    /// harness's own calls excluded.
    pub round_trips: u64,
}

impl Measured {
    fn summary(&self, f: impl Fn(&Sample) -> f64) -> Summary {
        let v: Vec<f64> = self.samples.iter().map(f).collect();
        Summary::of(&v).expect("at least one timed run")
    }
    pub fn wall(&self) -> Summary {
        self.summary(|s| s.wall)
    }
    pub fn engine(&self) -> Summary {
        self.summary(|s| s.engine)
    }
    pub fn submit(&self) -> Summary {
        self.summary(|s| s.submit)
    }
    pub fn tasks_per_sec(&self) -> f64 {
        self.tasks as f64 / (self.wall().median / 1e3)
    }
    pub fn us_per_task(&self) -> f64 {
        self.wall().median * 1e3 / self.tasks as f64
    }
    /// The median run's peak Redis memory per task, in bytes.
    pub fn redis_bytes_per_task(&self) -> f64 {
        self.summary(|s| s.redis_peak).median / self.tasks as f64
    }
    /// Client round trips to Redis per task over the timed runs.
    pub fn round_trips_per_task(&self) -> f64 {
        self.round_trips as f64 / (self.tasks * self.samples.len()) as f64
    }
    /// Redis commands per task over the timed runs.
    pub fn redis_per_task(&self) -> f64 {
        redis_stats::total_calls(&self.redis) as f64 / (self.tasks * self.samples.len()) as f64
    }
}

/// Polls the job's status every `pause` until it ends (or `RUN_TIMEOUT` passes).
/// (`EngineClient::wait` backs off to 100 ms between polls, too coarse for timing.)
fn poll_until_done(client: &EngineClient, job: &JobId, pause: Duration) -> Result<RemoteStatus> {
    let t0 = Instant::now();
    loop {
        let s = client
            .status(job)
            .with_context(|| format!("status of job {job}"))?;
        if s.is_finished() {
            return Ok(s);
        }
        if t0.elapsed() > RUN_TIMEOUT {
            bail!(
                "job {job} did not finish within {} s ({} of {} tasks done)",
                RUN_TIMEOUT.as_secs(),
                s.done(),
                s.total()
            );
        }
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
}

/// One checked run.
fn run_once(
    client: &EngineClient,
    redis: &str,
    body: &[u8],
    ctype: &str,
    expected: &[(TaskId, Value)],
    tasks: usize,
    pause: Duration,
) -> Result<Sample> {
    let base = redis_stats::used_memory(redis)?;
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (go, addr) = (sampling.clone(), redis.to_owned());
        std::thread::spawn(move || {
            let (mut peak, mut calls) = (base, 0);
            while go.load(std::sync::atomic::Ordering::Relaxed) {
                calls += 1;
                if let Ok(m) = redis_stats::used_memory(&addr) {
                    peak = peak.max(m);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (peak, calls)
        })
    };
    let t0 = Instant::now();
    let job = client
        .submit_bytes(body, ctype)
        .context("submitting the job")?;
    let submit = t0.elapsed();
    let status = poll_until_done(client, &job, pause);
    let wall = t0.elapsed();
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let (peak, harness_calls) = sampler.join().unwrap_or((base, 0));
    let status = status?;
    if status.state() != "succeeded" {
        bail!(
            "job {job} ended {}, not succeeded: {}",
            status.state(),
            status.json
        );
    }
    if status.total() != tasks as u64 || status.done() != tasks as u64 {
        bail!(
            "job {job} reports {} of {} tasks done, expected {tasks}",
            status.done(),
            status.total()
        );
    }
    let engine = status.json["elapsed_ms"]
        .as_f64()
        .with_context(|| format!("job {job}: no elapsed_ms in {}", status.json))?;
    let outputs = client
        .outputs(&job)
        .with_context(|| format!("outputs of job {job}"))?;
    check_output_json(&outputs, expected).with_context(|| format!("job {job}: wrong outputs"))?;
    Ok(Sample {
        wall: crate::ms(wall),
        engine,
        submit: crate::ms(submit),
        redis_peak: peak.saturating_sub(base) as f64,
        harness_calls: harness_calls + 1,
    })
}

/// Runs one workload `warmup + repeats` times on the cluster, checking every run, and counts
/// the Redis commands of the timed runs.
pub fn measure(cluster: &mut Cluster, w: Workload, args: &Args) -> Result<Measured> {
    let r = measure_inner(cluster, w, args);
    r.map_err(|e| cluster.explain(e))
}

fn measure_inner(cluster: &Cluster, w: Workload, args: &Args) -> Result<Measured> {
    let name = w.name();
    let spec = w.generate();
    let expected = w.expected();
    let tasks = w.task_count();
    if spec.tasks.len() != tasks {
        bail!(
            "{name}: generator made {} tasks, expected {tasks}",
            spec.tasks.len()
        );
    }
    let (body, ctype) = rukong_client::remote::submission_body(&spec);
    drop(spec);
    eprintln!(
        "running {name} ({} tasks, {} bytes as {ctype}): {} warmup + {} timed",
        thousands(tasks as u64),
        thousands(body.len() as u64),
        args.warmup,
        args.repeats
    );
    let pause = Duration::from_millis(args.poll_ms);
    let mut samples = Vec::with_capacity(args.repeats);
    let mut before = None;
    for i in 0..args.warmup + args.repeats {
        let warm = i < args.warmup;
        if i == args.warmup {
            before = Some((
                cluster.commandstats()?,
                redis_stats::reads_processed(&cluster.redis.addr)?,
            ));
        }
        let run = if warm {
            format!("warmup run {}", i + 1)
        } else {
            format!("run {}", i - args.warmup + 1)
        };
        let s = run_once(
            &cluster.client,
            &cluster.redis.addr,
            &body,
            ctype,
            &expected,
            tasks,
            pause,
        )
        .with_context(|| format!("{name}, {run}"))?;
        if !warm {
            samples.push(s);
        }
    }
    let after = cluster.commandstats()?;
    let reads_after = redis_stats::reads_processed(&cluster.redis.addr)?;
    let (before, reads_before) = before.unwrap_or_default();
    let mut redis = redis_stats::delta(&before, &after);
    // The harness's reads: the two INFO commandstats and `before`'s INFO stats, and the
    // memory sampler's calls (its INFO memory calls, and the one before each run).
    let harness: u64 = 3 + samples
        .iter()
        .map(|s: &Sample| s.harness_calls)
        .sum::<u64>();
    let round_trips = reads_after
        .saturating_sub(reads_before)
        .saturating_sub(harness);
    // The harness's own INFO calls (the memory sampler's, `before`) are not the cluster's.
    redis.remove("info");
    Ok(Measured {
        workload: w,
        tasks,
        samples,
        redis,
        round_trips,
    })
}

/// `rukong-e2e --mode cluster`.
pub fn main(args: &Args) -> Result<()> {
    let rukong = rukong_path(args.rukong.as_deref())?;
    let slots = args.slots.unwrap_or(1);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    eprintln!(
        "starting redis-server and `{} up --executors {} --slots {slots}` …",
        rukong.display(),
        args.executors
    );
    let t0 = Instant::now();
    let mut cluster = Cluster::start(rukong, args.executors, slots)?;
    eprintln!(
        "cluster up in {:.1} s: engine {}, redis {}",
        t0.elapsed().as_secs_f64(),
        cluster.engine_url,
        cluster.redis_addr()
    );

    println!(
        "rukong-e2e: cluster mode (private redis-server + `rukong up`: proxy, engine, {} executor \
         processes on loopback; jobs over HTTP)",
        cluster.executors
    );
    println!(
        "machine: {} cores (available_parallelism), {}/{}; executors: {} x {} slot(s); \
         status poll every {} ms",
        cores,
        std::env::consts::OS,
        std::env::consts::ARCH,
        cluster.executors,
        cluster.slots,
        args.poll_ms
    );
    println!(
        "runs: {} warmup + {} timed per workload, one warm cluster for all",
        args.warmup, args.repeats
    );
    if cfg!(debug_assertions) {
        println!("WARNING: debug build; numbers are meaningless (use --release)");
    }
    println!();

    let mut results = Vec::with_capacity(args.workloads.len());
    for &w in &args.workloads {
        results.push(measure(&mut cluster, w, args)?);
    }
    let engine_url = cluster.engine_url.clone();
    let rukong = cluster.rukong.clone();
    eprintln!("stopping the cluster …");
    cluster.stop();

    print_table(&results);
    println!();
    print_commands(&results);
    println!();
    let targets = target_checks(&results);
    for t in &targets {
        println!("{}", t.line);
    }

    if let Some(path) = &args.plot {
        let points: Vec<crate::plot::Point> = results
            .iter()
            .map(|m| crate::plot::Point {
                family: crate::family(&m.workload),
                tasks: m.tasks,
                wall_ms: m.wall().median,
            })
            .collect();
        let title = format!(
            "rukong cluster, {} executors x {slots} slot(s), median of {} runs",
            args.executors, args.repeats
        );
        std::fs::write(path, crate::plot::scaling_svg(&points, &title))
            .with_context(|| format!("writing {path}"))?;
        println!("scaling curves: {path}");
    }
    if let Some(path) = &args.json {
        let doc = to_json(args, cores, slots, &rukong, &engine_url, &results, &targets);
        let text = serde_json::to_string_pretty(&doc)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {path}"))?;
        println!("wrote {path}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(w: Workload, wall_ms: f64) -> Measured {
        let mut redis = CommandStats::new();
        redis.insert(
            "evalsha".into(),
            CmdStat {
                calls: 3 * w.task_count() as u64,
                usec: 1,
            },
        );
        Measured {
            workload: w,
            tasks: w.task_count(),
            samples: vec![
                Sample {
                    wall: wall_ms,
                    engine: wall_ms - 1.0,
                    submit: 1.0,
                    redis_peak: 1000.0,
                    harness_calls: 10,
                };
                3
            ],
            redis,
            round_trips: 1000,
        }
    }

    #[test]
    fn targets_pass_miss_and_skip() {
        let tree = Workload::TreeReduction { leaves: 65_536 };
        let chain = Workload::Chain { length: 10_000 };
        // 131,071 tasks in 2 s: 15.3 µs/task. The chain at 250 ms misses.
        let results = vec![measured(tree, 2_000.0), measured(chain, 250.0)];
        assert!((results[0].redis_per_task() - 1.0).abs() < 1e-9);
        let t = target_checks(&results);
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].met, Some(true), "{}", t[0].line);
        assert!(t[0].line.ends_with("PASS"), "{}", t[0].line);
        assert_eq!(t[1].met, None, "fanout was not run: {}", t[1].line);
        assert_eq!(t[2].met, Some(false), "{}", t[2].line);
        assert!(t[2].line.ends_with("MISS"), "{}", t[2].line);
    }

    #[test]
    fn a_missing_rukong_binary_says_how_to_build_it() {
        let err = rukong_path(Some("/nonexistent/rukong")).unwrap_err();
        assert!(
            err.to_string()
                .contains("cargo build --release -p rukong-client"),
            "{err}"
        );
    }
}
