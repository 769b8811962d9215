//! A whole cluster of real processes on loopback for tests: a private `redis-server`, and
//! the `rukong` binary as proxy, engine and executors, each on a free port.
#![allow(dead_code)]

use rukong_client::cli::up::{Supervised, free_port};
use rukong_client::remote::EngineClient;
use rukong_core::testing::RedisServer;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "cluster-test-token";

#[derive(Clone, Debug)]
pub struct Options {
    pub executors: usize,
    pub slots: usize,
    pub visibility_timeout_ms: u64,
    pub max_deliveries: u32,
    pub max_body: usize,
    pub test_functions: bool,
    pub redis_response_timeout_ms: u64,
    /// `--gpu` for every executor (`off`, `simulated`, …).
    pub gpu: &'static str,
    /// Redis with an append-only file synced on every write, so a restart keeps everything.
    pub persistent_redis: bool,
    /// Extra arguments for every executor process.
    pub executor_args: Vec<String>,
    /// An executor binary (built with `rukong_client::executor_main`) that executors
    /// started from now on run instead of `rukong executor`.
    pub executor_bin: Option<std::path::PathBuf>,
    /// `proxy.objects`: `shared` (files in [`Cluster::shared_dir`]), `store` or `memory`.
    pub proxy_objects: &'static str,
    /// `proxy.share_host`: false makes executors and the engine reach objects through the
    /// proxy only, as from another host.
    pub share_host: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            executors: 3,
            slots: 2,
            visibility_timeout_ms: 1_500,
            max_deliveries: 5,
            max_body: 64 << 20,
            test_functions: false,
            redis_response_timeout_ms: 2_000,
            gpu: "off",
            persistent_redis: false,
            executor_args: Vec::new(),
            executor_bin: None,
            proxy_objects: "shared",
            share_host: true,
        }
    }
}

pub struct Cluster {
    pub redis: RedisServer,
    pub engine_url: String,
    /// The engine's listen address (`host:port`); a restarted engine listens here again.
    pub engine_addr: String,
    pub proxy_addr: String,
    pub opts: Options,
    pub proxy: Option<Supervised>,
    pub engine: Option<Supervised>,
    pub executors: Vec<Option<Supervised>>,
    /// The proxy's shared object directory (on tmpfs where there is one), removed with
    /// the cluster.
    pub shared_dir: tempfile::TempDir,
}

/// A private directory for the proxy's shared objects, on tmpfs where there is one.
pub fn shared_tempdir() -> tempfile::TempDir {
    let b = tempfile::Builder::new()
        .prefix("rukong-test-")
        .tempdir_in("/dev/shm");
    b.or_else(|_| tempfile::tempdir()).unwrap()
}

fn exe() -> &'static str {
    env!("CARGO_BIN_EXE_rukong")
}

impl Cluster {
    pub fn start(opts: Options) -> Cluster {
        let redis = if opts.persistent_redis {
            RedisServer::start_persistent()
        } else {
            RedisServer::start()
        };
        let proxy_addr = format!("127.0.0.1:{}", free_port().unwrap());
        let engine_addr = format!("127.0.0.1:{}", free_port().unwrap());
        let mut c = Cluster {
            redis,
            engine_url: format!("http://{engine_addr}"),
            engine_addr,
            proxy_addr,
            opts,
            proxy: None,
            engine: None,
            executors: Vec::new(),
            shared_dir: shared_tempdir(),
        };
        c.proxy = Some(c.spawn("kvproxy", &["kvproxy"]));
        c.engine = Some(c.spawn_engine());
        for i in 0..c.opts.executors {
            let e = c.spawn_executor(i);
            c.executors.push(Some(e));
        }
        c.wait_healthy(c.opts.executors);
        c
    }

    fn command(&self, sub: &[&str]) -> Command {
        self.command_of(Path::new(exe()), sub)
    }

    fn command_of(&self, program: &Path, sub: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        // The processes read RUKONG_* variables as settings: none of the test run's own
        // (RUKONG_FUZZ_CASES, say) may reach them, only the ones set here.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("RUKONG_") {
                cmd.env_remove(&k);
            }
        }
        cmd.args(sub)
            .env("RUKONG_REDIS__URL", self.redis.url())
            .env(
                "RUKONG_REDIS__RESPONSE_TIMEOUT_MS",
                self.opts.redis_response_timeout_ms.to_string(),
            )
            .env("RUKONG_REDIS__CONNECT_TIMEOUT_MS", "1000")
            .env("RUKONG_TOKEN", TOKEN)
            .env("RUKONG_PROXY__LISTEN", &self.proxy_addr)
            .env("RUKONG_PROXY__SHARED_DIR", self.shared_dir.path())
            .env("RUKONG_PROXY__OBJECTS", self.opts.proxy_objects)
            .env("RUKONG_PROXY__SHARE_HOST", self.opts.share_host.to_string())
            .env("RUKONG_ENGINE__MAX_BODY", self.opts.max_body.to_string())
            .env(
                "RUKONG_EXECUTOR__VISIBILITY_TIMEOUT_MS",
                self.opts.visibility_timeout_ms.to_string(),
            )
            .env("RUKONG_EXECUTOR__HEARTBEAT_MS", "300")
            .env(
                "RUKONG_EXECUTOR__MAX_DELIVERIES",
                self.opts.max_deliveries.to_string(),
            )
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        cmd
    }

    fn spawn(&self, name: &str, sub: &[&str]) -> Supervised {
        Supervised::spawn(name, &mut self.command(sub)).unwrap()
    }

    fn spawn_engine(&self) -> Supervised {
        self.spawn("engine", &["engine", "--listen", &self.engine_addr])
    }

    pub fn spawn_executor(&self, i: usize) -> Supervised {
        Supervised::spawn(format!("executor {i}"), &mut self.executor_command(i)).unwrap()
    }

    /// The command line of executor `i` (for a test that wants its output).
    pub fn executor_command(&self, i: usize) -> Command {
        let id = format!("test-exec-{i}-{}", free_port().unwrap());
        let slots = self.opts.slots.to_string();
        let mut args = vec!["executor", "--slots", &slots, "--id", &id];
        if self.opts.test_functions {
            args.push("--test-functions");
        }
        args.extend(["--gpu", self.opts.gpu]);
        args.extend(self.opts.executor_args.iter().map(String::as_str));
        match &self.opts.executor_bin {
            // An executor binary takes `rukong executor`'s flags, without the subcommand.
            Some(bin) => self.command_of(bin, &args[1..]),
            None => self.command(&args),
        }
    }

    pub fn client(&self) -> EngineClient {
        EngineClient::new(
            &self.engine_url,
            Some(TOKEN.into()),
            Duration::from_secs(30),
        )
    }

    /// Waits until `n` executors have registered.
    pub fn wait_healthy(&self, n: usize) {
        let c = self.client();
        let t0 = Instant::now();
        loop {
            if let Ok(h) = c.healthz()
                && h["executors"].as_u64().unwrap_or(0) >= n as u64
            {
                return;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "cluster not healthy within 60 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILLs executor `i` (no clean shutdown: its invocations stay pending).
    pub fn kill_executor(&mut self, i: usize) {
        sigkill(self.executors[i].take());
    }

    /// SIGKILLs the engine (no clean shutdown); its port is free once this returns.
    pub fn kill_engine(&mut self) {
        sigkill(self.engine.take());
    }

    /// Starts an engine on the same address as before and waits until it answers
    /// `/healthz` (it binds only after replaying the stored jobs).
    pub fn start_engine(&mut self) {
        assert!(self.engine.is_none(), "the engine is already running");
        let mut e = self.spawn_engine();
        let client =
            EngineClient::new(&self.engine_url, Some(TOKEN.into()), Duration::from_secs(2));
        let t0 = Instant::now();
        while client.healthz().is_err() {
            assert!(
                e.exited().is_none(),
                "the restarted engine exited: {:?}",
                e.exited()
            );
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "the restarted engine did not answer within 30 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.engine = Some(e);
    }

    /// SIGKILLs the engine and starts a new one on the same address.
    pub fn restart_engine(&mut self) {
        self.kill_engine();
        self.start_engine();
    }

    /// SIGKILLs the proxy (no clean shutdown: requests in flight are cut off).
    pub fn kill_proxy(&mut self) {
        sigkill(self.proxy.take());
    }

    /// Starts a proxy on the same address as before and waits until it accepts connections.
    pub fn start_proxy(&mut self) {
        assert!(self.proxy.is_none(), "the proxy is already running");
        let mut p = self.spawn("kvproxy", &["kvproxy"]);
        let t0 = Instant::now();
        while std::net::TcpStream::connect(&self.proxy_addr).is_err() {
            assert!(
                p.exited().is_none(),
                "the restarted proxy exited: {:?}",
                p.exited()
            );
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "the restarted proxy did not listen within 30 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.proxy = Some(p);
    }

    /// SIGKILLs the proxy and starts a new one on the same address.
    pub fn restart_proxy(&mut self) {
        self.kill_proxy();
        self.start_proxy();
    }

    /// `rukong run FILE --engine URL --json [extra]`.
    pub fn run(&self, file: &Path, extra: &[&str]) -> Output {
        let mut cmd = Command::new(exe());
        cmd.arg("run")
            .arg(file)
            .args(["--engine", &self.engine_url, "--json", "--no-progress"])
            .args(extra)
            .env("RUKONG_TOKEN", TOKEN);
        cmd.output().unwrap()
    }

    /// A started `rukong run` (for faults injected while it runs).
    pub fn spawn_run(&self, file: &Path, extra: &[&str]) -> std::process::Child {
        Command::new(exe())
            .arg("run")
            .arg(file)
            .args(["--engine", &self.engine_url, "--json", "--no-progress"])
            .args(extra)
            .env("RUKONG_TOKEN", TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

/// SIGKILLs `p` (if any) and waits, up to 5 s, until it has exited.
fn sigkill(p: Option<Supervised>) {
    if let Some(mut p) = p {
        let _ = Command::new("kill")
            .args(["-KILL", &p.pid().to_string()])
            .status();
        let t0 = Instant::now();
        while p.exited().is_none() && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Waits for a spawned `rukong run` (or any child with piped output) for at most `limit`;
/// past it, SIGKILLs the child and panics.
pub fn finish_within(child: std::process::Child, limit: Duration) -> Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("the child {pid} did not finish within {limit:?}");
        }
    }
}

/// Parses a `--json` run's stdout.
pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}); status {:?}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Writes `text` to a fresh temp file named `name` and returns its path.
pub fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "rukong-cluster-{}-{}",
        std::process::id(),
        free_port().unwrap()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// `leaves` `spin` leaves (each returning its index after `ms`) summed by a tree of `add`s.
pub fn spin_tree(leaves: usize, ms: i64) -> String {
    let mut b = rukong_client::JobBuilder::new("spin-tree");
    let mut level: Vec<String> = Vec::new();
    for i in 0..leaves {
        b.task(format!("c{i}"), "const").arg(i as i64);
        b.task(format!("s{i}"), "spin").dep(format!("c{i}")).arg(ms);
        level.push(format!("s{i}"));
    }
    let mut depth = 0;
    while level.len() > 1 {
        depth += 1;
        level = level
            .chunks(2)
            .enumerate()
            .map(|(j, p)| {
                let id = format!("a{depth}_{j}");
                b.task(id.as_str(), "add")
                    .deps(p.iter().map(String::as_str));
                id
            })
            .collect();
    }
    rukong_client::workloads::to_yaml(&b.build())
}
