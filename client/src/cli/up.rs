//! `rukong up`: a whole cluster on loopback in the foreground. It starts (or uses) Redis,
//! then the proxy, the engine and N executor processes (this same binary, or the executor
//! binary given with `--executor-bin`), waits until every executor has registered, and
//! stops them all on Ctrl-C or SIGTERM.

use super::serve::{BoxError, shutdown_signal};
use super::settings::Settings;
use crate::remote::EngineClient;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What `rukong up` was asked for.
#[derive(Clone, Debug)]
pub struct UpArgs {
    /// Use this Redis; `None` starts a private `redis-server`.
    pub redis: Option<String>,
    pub executors: usize,
    /// Slots per executor; 0 means one per core.
    pub slots: usize,
    /// The engine's HTTP address.
    pub listen: String,
    /// Every executor runs this binary (built with `rukong_client::executor_main`, so it
    /// takes `rukong executor`'s flags) instead of `rukong executor`.
    pub executor_bin: Option<PathBuf>,
}

/// Checks an `--executor-bin` path: an executable file. Returns it absolute.
pub fn check_executor_bin(path: &std::path::Path) -> Result<PathBuf, BoxError> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| {
        format!(
            "--executor-bin {shown}: {e} (build it first, e.g. `cargo build -p custom-executor`)"
        )
    })?;
    if !meta.is_file() {
        return Err(format!("--executor-bin {shown}: not a file").into());
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(format!("--executor-bin {shown}: not executable").into());
    }
    Ok(std::path::absolute(path)?)
}

/// A child process that is stopped (SIGTERM, then SIGKILL after a grace period) on drop.
pub struct Supervised {
    pub name: String,
    child: Child,
}

impl Supervised {
    pub fn spawn(name: impl Into<String>, cmd: &mut Command) -> Result<Supervised, BoxError> {
        let name = name.into();
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        Ok(Supervised { name, child })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Exited already? (Returns its status.)
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn stop(&mut self, grace: Duration) {
        if self.exited().is_some() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let t0 = Instant::now();
        while t0.elapsed() < grace {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

/// A free loopback port (bound, read, released).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts a private `redis-server` on a free loopback port with no persistence.
pub fn start_redis(dir: &std::path::Path) -> Result<(Supervised, String), BoxError> {
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        return Err("redis-server is not installed. Install it (Debian: `apt-get install -y --no-install-recommends redis-server`) or pass --redis URL".into());
    }
    let port = free_port()?;
    let mut redis = Supervised::spawn(
        "redis-server",
        Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )?;
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if redis.exited().is_some() || t0.elapsed() > Duration::from_secs(10) {
            return Err(format!("redis-server did not start on port {port}").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((redis, format!("redis://127.0.0.1:{port}")))
}

/// Runs the cluster until a shutdown signal. `settings` supplies the token and the other
/// settings the children inherit (through `RUKONG_*` variables).
pub async fn up(args: UpArgs, mut settings: Settings) -> Result<(), BoxError> {
    // The executors resolve the allow-list too; failing here names the problem once.
    rukong_executor::functions::builtins::process::AllowList::resolve(
        &settings.executor.allow_process,
    )?;
    let exe: PathBuf = std::env::current_exe()?;
    let executor_bin = match &args.executor_bin {
        Some(p) => Some(check_executor_bin(p)?),
        None => None,
    };
    let dir = std::env::temp_dir().join(format!("rukong-up-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut children: Vec<Supervised> = Vec::new();
    let redis_url = match &args.redis {
        Some(u) => u.clone(),
        None => {
            let (r, url) = start_redis(&dir)?;
            eprintln!("rukong up: started a private redis-server at {url}");
            children.push(r);
            url
        }
    };
    settings.redis.url = redis_url.clone();
    let proxy_port = free_port()?;
    let proxy_addr = format!("127.0.0.1:{proxy_port}");
    settings.proxy.listen = proxy_addr.clone();
    // The proxy's shared objects die with this cluster, unless they live where asked.
    let own_shared_dir = (settings.proxy.objects == "shared"
        && settings.proxy.shared_dir.is_none())
    .then(|| rukong_kvstore_proxy::default_shared_dir(proxy_port));
    if let Some(d) = &own_shared_dir {
        settings.proxy.shared_dir = Some(d.to_string_lossy().into_owned());
    }
    settings.proxy.advertise = None;
    settings.engine.listen = args.listen.clone();
    let envs = child_env(&settings);
    let spawn_program = |program: &PathBuf, name: String, sub: &[&str]| {
        let mut cmd = Command::new(program);
        cmd.args(sub)
            .env_remove("RUKONG_CONFIG")
            .envs(envs.iter().cloned())
            .stdin(Stdio::null());
        Supervised::spawn(name, &mut cmd)
    };
    let spawn = |name: String, sub: &[&str]| spawn_program(&exe, name, sub);
    children.push(spawn("kvproxy".into(), &["kvproxy"])?);
    children.push(spawn("engine".into(), &["engine"])?);
    let slots = args.slots.to_string();
    for i in 0..args.executors {
        let id = format!("up-{}-{i}", std::process::id());
        let flags = ["--slots", slots.as_str(), "--id", id.as_str()];
        children.push(match &executor_bin {
            // An executor binary takes `rukong executor`'s flags, without the subcommand.
            Some(bin) => spawn_program(bin, format!("executor {i} ({})", bin.display()), &flags)?,
            None => spawn(
                format!("executor {i}"),
                &[&["executor"], &flags[..]].concat(),
            )?,
        });
    }
    let url = format!("http://{}", args.listen);
    let client = EngineClient::new(&url, settings.token.clone(), Duration::from_secs(2));
    // With a GPU asked for, each executor process registers a second executor for it
    // (`auto` may find none, so it counts only the first).
    let per_process = match settings.gpu.device.as_str() {
        "simulated" | "cuda" => 2,
        _ => 1,
    };
    let registered = (args.executors * per_process) as u64;
    let t0 = Instant::now();
    loop {
        if let Ok(h) = client.healthz()
            && h["executors"].as_u64().unwrap_or(0) >= registered
        {
            break;
        }
        if let Some(c) = children
            .iter_mut()
            .find_map(|c| c.exited().map(|s| (c.name.clone(), s)))
        {
            return Err(format!("{} exited during start-up ({})", c.0, c.1).into());
        }
        if t0.elapsed() > Duration::from_secs(60) {
            return Err("the cluster did not become healthy within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let running = match &executor_bin {
        Some(bin) => format!(" running {}", bin.display()),
        None => String::new(),
    };
    eprintln!(
        "rukong up: engine {url}, proxy {proxy_addr}, {} executors{running}, redis {redis_url}\n  submit with: rukong run FILE --engine {url}{}\n  Ctrl-C stops everything",
        args.executors,
        if settings.token.is_some() {
            " (token from RUKONG_TOKEN)"
        } else {
            ""
        }
    );
    println!("{url}");
    tokio::select! {
        _ = shutdown_signal() => {}
        _ = watch_children(&mut children) => {}
    }
    eprintln!("rukong up: stopping");
    // Executors first (they finish their invocations), then engine, proxy, Redis.
    tokio::task::spawn_blocking(move || {
        for c in children.iter_mut().rev() {
            c.stop(Duration::from_secs(10));
        }
    })
    .await?;
    std::fs::remove_dir_all(&dir).ok();
    if let Some(d) = own_shared_dir {
        std::fs::remove_dir_all(d).ok();
    }
    eprintln!("rukong up: stopped");
    Ok(())
}

/// Resolves when any child exits on its own (the cluster is then broken).
async fn watch_children(children: &mut [Supervised]) {
    loop {
        for c in children.iter_mut() {
            if let Some(s) = c.exited() {
                eprintln!("rukong up: {} exited ({s}); stopping the cluster", c.name);
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The settings as `RUKONG_*` variables for child processes.
pub fn child_env(s: &Settings) -> Vec<(String, String)> {
    let mut v = vec![
        ("RUKONG_REDIS__URL".into(), s.redis.url.clone()),
        (
            "RUKONG_REDIS__CONNECT_TIMEOUT_MS".into(),
            s.redis.connect_timeout_ms.to_string(),
        ),
        (
            "RUKONG_REDIS__RESPONSE_TIMEOUT_MS".into(),
            s.redis.response_timeout_ms.to_string(),
        ),
        ("RUKONG_REDIS__RETRIES".into(), s.redis.retries.to_string()),
        (
            "RUKONG_REDIS__KEY_TTL_S".into(),
            s.redis.key_ttl_s.to_string(),
        ),
        ("RUKONG_ENGINE__LISTEN".into(), s.engine.listen.clone()),
        (
            "RUKONG_ENGINE__MAX_BODY".into(),
            s.engine.max_body.to_string(),
        ),
        (
            "RUKONG_ENGINE__RETENTION_S".into(),
            s.engine.retention_s.to_string(),
        ),
        (
            "RUKONG_ENGINE__INLINE_LIMIT".into(),
            s.engine.inline_limit.to_string(),
        ),
        (
            "RUKONG_ENGINE__PROXY_FANOUT".into(),
            s.engine.proxy_fanout.to_string(),
        ),
        ("RUKONG_PROXY__LISTEN".into(), s.proxy.listen.clone()),
        ("RUKONG_PROXY__OBJECTS".into(), s.proxy.objects.clone()),
        (
            "RUKONG_PROXY__SHARE_HOST".into(),
            s.proxy.share_host.to_string(),
        ),
        (
            "RUKONG_PROXY__MAX_OBJECT".into(),
            s.proxy.max_object.to_string(),
        ),
        (
            "RUKONG_EXECUTOR__VISIBILITY_TIMEOUT_MS".into(),
            s.executor.visibility_timeout_ms.to_string(),
        ),
        (
            "RUKONG_EXECUTOR__HEARTBEAT_MS".into(),
            s.executor.heartbeat_ms.to_string(),
        ),
        (
            "RUKONG_EXECUTOR__MAX_DELIVERIES".into(),
            s.executor.max_deliveries.to_string(),
        ),
        ("RUKONG_INSECURE".into(), s.insecure.to_string()),
        ("RUKONG_GPU__DEVICE".into(), s.gpu.device.clone()),
        ("RUKONG_ENGINE__WARMUP".into(), s.engine.warmup.to_string()),
        ("RUKONG_GPU__LANES".into(), s.gpu.lanes.to_string()),
    ];
    if let Some(t) = &s.token {
        v.push(("RUKONG_TOKEN".into(), t.clone()));
    }
    if let Some(d) = &s.proxy.shared_dir {
        v.push(("RUKONG_PROXY__SHARED_DIR".into(), d.clone()));
    }
    if !s.executor.allow_process.is_empty() {
        v.push((
            "RUKONG_EXECUTOR__ALLOW_PROCESS".into(),
            s.executor.allow_process.join(","),
        ));
    }
    v
}
