//! Throwaway Redis servers for tests. Each runs `redis-server` on a free loopback port with
//! its own temporary directory (without persistence, unless asked for an append-only file),
//! and is killed (and its directory removed) on drop. Only servers started here are ever
//! stopped.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const MISSING: &str = "redis-server not found: install it with `apt-get install -y --no-install-recommends redis-server` (scripts/test.sh does this)";
/// How long a server may take to answer PING.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts with a fresh port when the chosen one turned out to be taken.
const PORT_ATTEMPTS: usize = 5;

/// A `redis-server` child process on `127.0.0.1:<port>`.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    /// Extra arguments (cluster mode).
    extra: Vec<String>,
    child: Option<Child>,
}

/// The path of `name` on `PATH`.
fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port");
    l.local_addr().expect("local address").port()
}

fn temp_dir() -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "rukong-redis-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}

/// Sends one inline command and reads one reply (simple string, error, integer or bulk).
fn command(port: u16, cmd: &str) -> Option<String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    s.set_write_timeout(Some(Duration::from_millis(500))).ok()?;
    s.write_all(format!("{cmd}\r\n").as_bytes()).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        let Some(eol) = text.find("\r\n") else {
            continue;
        };
        if let Some(len) = text.strip_prefix('$') {
            let len: usize = len[..eol - 1].parse().ok()?;
            if buf.len() >= eol + 2 + len + 2 {
                return Some(text[eol + 2..eol + 2 + len].to_owned());
            }
        } else {
            return Some(text[..eol].to_owned());
        }
    }
}

fn log_tail(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("redis.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

impl RedisServer {
    /// Starts a server on a free port, waiting until it answers PING. Panics when
    /// `redis-server` is not installed or does not come up.
    pub fn start() -> RedisServer {
        Self::start_with(|_| Vec::new())
    }

    /// As [`RedisServer::start`], with an append-only file synced on every write
    /// (`appendfsync always`): a [`restart`](Self::restart) keeps every acknowledged write.
    pub fn start_persistent() -> RedisServer {
        Self::start_with(|_| {
            ["--appendonly", "yes", "--appendfsync", "always"]
                .map(String::from)
                .to_vec()
        })
    }

    /// `extra` makes the extra arguments for a given temporary directory.
    fn start_with(extra: impl Fn(&Path) -> Vec<String>) -> RedisServer {
        let dir = temp_dir();
        let mut server = RedisServer {
            port: 0,
            extra: extra(&dir),
            dir,
            child: None,
        };
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            server.port = free_port();
            match server.spawn() {
                Ok(()) => return server,
                // Most likely the port was taken between choosing and binding: try another.
                Err(e) => last = e,
            }
        }
        panic!("redis-server did not start: {last}");
    }

    /// Spawns the server on `self.port` and waits for it.
    fn spawn(&mut self) -> Result<(), String> {
        let bin = find_on_path("redis-server").unwrap_or_else(|| panic!("{MISSING}"));
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("redis.log"))
            .map_err(|e| e.to_string())?;
        let err_log: File = log.try_clone().map_err(|e| e.to_string())?;
        let mut child = Command::new(bin)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .spawn()
            .map_err(|e| format!("cannot run redis-server: {e}"))?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "redis-server on port {} exited ({status}):\n{}",
                    self.port,
                    log_tail(&self.dir)
                ));
            }
            if command(self.port, "PING").as_deref() == Some("+PONG") {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "redis-server on port {} did not answer PING within {READY_TIMEOUT:?}:\n{}",
                    self.port,
                    log_tail(&self.dir)
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server now (SIGKILL, for fault tests) and reaps it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open but nothing answers, as with a
    /// hung server or a network partition. [`resume`](Self::resume) undoes it.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a [paused](Self::pause) server run again (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let child = self.child.as_ref().expect("the server is running");
        let status = Command::new("kill")
            .arg(sig)
            .arg(child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {sig} failed");
    }

    /// Stops the server if it runs (SIGKILL), and starts it again on the same port and
    /// directory: empty, or, for a [persistent](Self::start_persistent) one, with what its
    /// append-only file holds.
    pub fn restart(&mut self) {
        self.stop();
        let mut last = String::new();
        // The old socket may take a moment to be released.
        for _ in 0..20 {
            match self.spawn() {
                Ok(()) => return,
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("redis-server did not restart: {last}");
    }

    /// Runs one command through a raw connection and returns the reply's text (for tests
    /// that look at the server directly).
    pub fn command(&self, cmd: &str) -> Option<String> {
        command(self.port, cmd)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster of `redis-server --cluster-enabled yes` nodes (masters only).
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `n` (at least 3) nodes, joins them with `redis-cli --cluster create`, and
    /// waits until every node reports `cluster_state:ok`.
    pub fn start(n: usize) -> RedisCluster {
        assert!(n >= 3, "a Redis Cluster needs at least 3 masters");
        let nodes: Vec<RedisServer> = (0..n)
            .map(|_| {
                RedisServer::start_with(|dir| {
                    vec![
                        "--cluster-enabled".into(),
                        "yes".into(),
                        "--cluster-config-file".into(),
                        dir.join("nodes.conf").to_string_lossy().into_owned(),
                        "--cluster-port".into(),
                        free_port().to_string(),
                        "--cluster-node-timeout".into(),
                        "5000".into(),
                    ]
                })
            })
            .collect();
        let cli = find_on_path("redis-cli").unwrap_or_else(|| {
            panic!("redis-cli not found: install it with `apt-get install -y --no-install-recommends redis-server` (scripts/test.sh does this)")
        });
        let out = Command::new(cli)
            .arg("--cluster")
            .arg("create")
            .args(nodes.iter().map(|s| format!("127.0.0.1:{}", s.port())))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        for node in &nodes {
            loop {
                let info = node.command("CLUSTER INFO").unwrap_or_default();
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "cluster node {} not ready: {info}",
                    node.port()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        RedisCluster { nodes }
    }

    /// `redis+cluster://127.0.0.1:<p1>,127.0.0.1:<p2>,…`, as the Redis store takes it.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }
}
