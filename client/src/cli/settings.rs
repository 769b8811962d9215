//! Configuration for the cluster commands (`rukong engine`, `kvproxy`, `executor`, `up`,
//! and `run --engine`), through the `config` crate: a TOML file, then `RUKONG_*`
//! environment variables, then flags, each overriding the one before, into typed structs
//! that are validated before use.
//!
//! Environment variables name a setting's path with `__` between levels, e.g.
//! `RUKONG_REDIS__URL`, `RUKONG_ENGINE__LISTEN`; top-level ones are `RUKONG_TOKEN` and
//! `RUKONG_INSECURE`.

use serde::Deserialize;
use std::path::Path;
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SettingsError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration: {0}")]
    Invalid(String),
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Shared secret that clients, executors and the proxy present.
    pub token: Option<String>,
    /// Run without a token. Off unless asked for explicitly.
    pub insecure: bool,
    pub redis: RedisSettings,
    pub engine: EngineSettings,
    pub proxy: ProxySettings,
    pub executor: ExecutorSettings,
    /// The executors' GPU (off by default).
    pub gpu: super::gpu::GpuSettings,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://[:password@]host:port[/db]`; the password is used for Redis AUTH. TLS
    /// (`rediss://`) is not built in.
    pub url: String,
    pub connect_timeout_ms: u64,
    pub response_timeout_ms: u64,
    pub retries: u32,
    /// TTL on every job key, a backstop for jobs nobody deletes.
    pub key_ttl_s: u64,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EngineSettings {
    /// Address the HTTP API binds to.
    pub listen: String,
    /// URL clients use to reach it (defaults to `http://` + listen).
    pub advertise: Option<String>,
    /// Largest request body, in bytes.
    pub max_body: usize,
    /// Seconds a finished job's outputs stay available.
    pub retention_s: u64,
    /// P, bytes.
    pub inline_limit: usize,
    /// F.
    pub proxy_fanout: u32,
    pub max_tasks: usize,
    /// Speculative warm-up of the functions on the most likely path: reactive (none),
    /// speculative or jit (`oracle` runs only in the simulator, and is refused).
    pub warmup: rukong_engine::warmup::WarmupMode,
    /// A job with no events and nothing queued for this many ms is stalled (0: four
    /// executor visibility timeouts, so that a dead executor's work is reclaimed first).
    pub stall_after_ms: u64,
    /// Replays of a stalled job from its sources before it fails.
    pub stall_redrives: u32,
}

impl Settings {
    /// The engine's stall detection, from `engine.stall_*` and the visibility timeout.
    pub fn stall(&self) -> rukong_engine::StallConfig {
        let after = match self.engine.stall_after_ms {
            0 => self.executor.visibility_timeout_ms.saturating_mul(4),
            ms => ms,
        };
        rukong_engine::StallConfig {
            after: std::time::Duration::from_millis(after),
            max_redrives: self.engine.stall_redrives,
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ProxySettings {
    /// Address the proxy binds to.
    pub listen: String,
    /// Address executors and the engine use to reach it (defaults to listen).
    pub advertise: Option<String>,
    /// Where objects live: `shared` (files in `shared_dir`, which executors on the proxy's
    /// host read and write directly), `store` (chunked into Redis) or `memory` (the
    /// proxy's own).
    pub objects: String,
    /// The directory of `objects = "shared"`; unset: `/dev/shm/rukong-proxy-<port>`.
    pub shared_dir: Option<String>,
    /// Whether an executor or engine on the proxy's host reads and writes objects in its
    /// shared directory (false: always through the proxy, as from another host).
    pub share_host: bool,
    pub max_object: usize,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ExecutorSettings {
    /// Slots; 0 means one per core.
    pub slots: usize,
    /// Threads the slots share; 0 means one per core, at most one per slot.
    pub threads: usize,
    /// An invocation whose executor is silent this long is taken over.
    pub visibility_timeout_ms: u64,
    pub heartbeat_ms: u64,
    /// Deliveries of one invocation before its job fails (poison tasks).
    pub max_deliveries: u32,
    /// Executor id; empty means `<host>-<pid>`.
    pub id: String,
    /// Programs that `process` tasks may run: names looked up in PATH, or absolute paths
    /// (a list in the file; comma-separated in `RUKONG_EXECUTOR__ALLOW_PROCESS`). Empty:
    /// `process` is off.
    #[serde(deserialize_with = "programs")]
    pub allow_process: Vec<String>,
}

/// A list of programs, from a list or from one comma-separated string.
fn programs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Programs {
        List(Vec<String>),
        Joined(String),
    }
    Ok(match Programs::deserialize(d)? {
        Programs::List(v) => v,
        Programs::Joined(s) => s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings {
            url: "redis://127.0.0.1:6379".into(),
            connect_timeout_ms: 2_000,
            response_timeout_ms: 5_000,
            retries: 3,
            key_ttl_s: 86_400,
        }
    }
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            listen: "127.0.0.1:8080".into(),
            advertise: None,
            max_body: 64 << 20,
            retention_s: 600,
            inline_limit: 64 * 1024,
            proxy_fanout: 10,
            max_tasks: 10_000_000,
            warmup: Default::default(),
            stall_after_ms: 0,
            stall_redrives: 2,
        }
    }
}

impl Default for ProxySettings {
    fn default() -> Self {
        ProxySettings {
            listen: "127.0.0.1:7070".into(),
            advertise: None,
            objects: "shared".into(),
            shared_dir: None,
            share_host: true,
            max_object: 64 << 20,
        }
    }
}

impl Default for ExecutorSettings {
    fn default() -> Self {
        ExecutorSettings {
            slots: 0,
            threads: 0,
            visibility_timeout_ms: 30_000,
            heartbeat_ms: 2_000,
            max_deliveries: 5,
            id: String::new(),
            allow_process: Vec::new(),
        }
    }
}

/// Flag values that override the file and the environment: `(path, value)` pairs such as
/// `("redis.url", "redis://…")`.
pub type Overrides = Vec<(&'static str, String)>;

impl Settings {
    /// File (if given; `RUKONG_CONFIG` names one too), then the environment, then `flags`.
    pub fn load(file: Option<&Path>, flags: &Overrides) -> Result<Settings, SettingsError> {
        Self::load_from(file, flags, std::env::vars())
    }

    /// As [`Settings::load`], with the environment given (for tests).
    pub fn load_from(
        file: Option<&Path>,
        flags: &Overrides,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, SettingsError> {
        let env: std::collections::HashMap<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("RUKONG_") && k != "RUKONG_CONFIG")
            .collect();
        let file_from_env = std::env::var_os("RUKONG_CONFIG").map(std::path::PathBuf::from);
        let mut b = config::Config::builder();
        if let Some(f) = file.map(Path::to_path_buf).or(file_from_env) {
            b = b.add_source(
                config::File::from(f)
                    .format(config::FileFormat::Toml)
                    .required(true),
            );
        }
        b = b.add_source(
            config::Environment::with_prefix("RUKONG")
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .source(Some(env)),
        );
        for (k, v) in flags {
            b = b.set_override(*k, v.as_str())?;
        }
        let s: Settings = b.build()?.try_deserialize()?;
        s.validate()?;
        Ok(s)
    }

    pub fn validate(&self) -> Result<(), SettingsError> {
        let bad = |m: String| Err(SettingsError::Invalid(m));
        if self.token.as_deref() == Some("") {
            return bad("token must not be empty".into());
        }
        if self.token.is_none() && !self.insecure {
            return bad("no token: set RUKONG_TOKEN or --token, or run with --insecure (anyone who can reach the ports can then run code)".into());
        }
        if self.redis.url.starts_with("rediss://") {
            return bad("redis.url: TLS (rediss://) is not supported by this build; reach Redis over a private network or a TLS tunnel and use redis://".into());
        }
        if !self.redis.url.starts_with("redis://") && !self.redis.url.starts_with("redis+unix://") {
            return bad(format!(
                "redis.url must start with redis://, got {:?}",
                self.redis.url
            ));
        }
        for (what, addr) in [
            ("engine.listen", &self.engine.listen),
            ("proxy.listen", &self.proxy.listen),
            ("proxy.advertise", &self.proxy_addr()),
        ] {
            if !addr.contains(':') {
                return bad(format!("{what} must be host:port, got {addr:?}"));
            }
        }
        self.gpu.validate().map_err(SettingsError::Invalid)?;
        if !matches!(self.proxy.objects.as_str(), "shared" | "store" | "memory") {
            return bad(format!(
                "proxy.objects must be \"shared\", \"store\" or \"memory\", got {:?}",
                self.proxy.objects
            ));
        }
        if self.proxy.shared_dir.as_deref() == Some("") {
            return bad(
                "proxy.shared_dir must not be empty (leave it unset for the default)".into(),
            );
        }
        if let Err(e) = self.engine.warmup.for_engine() {
            return bad(format!("engine.warmup: {e}"));
        }
        if self.engine.proxy_fanout < 2 {
            return bad("engine.proxy_fanout must be at least 2".into());
        }
        if self.executor.visibility_timeout_ms
            < 3 * self
                .executor
                .heartbeat_ms
                .min(self.executor.visibility_timeout_ms)
        {
            return bad("executor.visibility_timeout_ms must be at least 3 heartbeats".into());
        }
        if self.redis.response_timeout_ms == 0 || self.redis.connect_timeout_ms == 0 {
            return bad("redis timeouts must be positive".into());
        }
        Ok(())
    }

    pub fn engine_url(&self) -> String {
        self.engine
            .advertise
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.engine.listen))
    }

    pub fn proxy_addr(&self) -> String {
        self.proxy
            .advertise
            .clone()
            .unwrap_or_else(|| self.proxy.listen.clone())
    }

    pub fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn file_then_environment_then_flags() {
        let dir = std::env::temp_dir().join(format!("rukong-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("rukong.toml");
        std::fs::write(&f, "token = \"from-file\"\n[redis]\nurl = \"redis://file:1\"\nretries = 7\n[engine]\nlisten = \"0.0.0.0:9000\"\n").unwrap();
        let s = Settings::load_from(Some(&f), &vec![], env(&[])).unwrap();
        assert_eq!(
            (s.redis.url.as_str(), s.redis.retries),
            ("redis://file:1", 7)
        );
        let s = Settings::load_from(
            Some(&f),
            &vec![],
            env(&[
                ("RUKONG_REDIS__URL", "redis://env:2"),
                ("RUKONG_TOKEN", "from-env"),
            ]),
        )
        .unwrap();
        assert_eq!(s.redis.url, "redis://env:2");
        assert_eq!(s.token.as_deref(), Some("from-env"));
        assert_eq!(
            s.redis.retries, 7,
            "untouched settings keep the file's value"
        );
        let flags = vec![("redis.url", "redis://flag:3".to_string())];
        let s = Settings::load_from(
            Some(&f),
            &flags,
            env(&[("RUKONG_REDIS__URL", "redis://env:2")]),
        )
        .unwrap();
        assert_eq!(s.redis.url, "redis://flag:3");
        assert_eq!(s.engine.listen, "0.0.0.0:9000");
        assert_eq!(s.engine_url(), "http://0.0.0.0:9000");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_token_is_required_unless_insecure() {
        let e = Settings::load_from(None, &vec![], env(&[])).unwrap_err();
        assert!(e.to_string().contains("RUKONG_TOKEN"), "{e}");
        let s = Settings::load_from(None, &vec![("insecure", "true".into())], env(&[])).unwrap();
        assert!(s.insecure && s.token.is_none());
    }

    #[test]
    fn bad_values_are_named() {
        let flags = vec![
            ("token", "t".to_string()),
            ("proxy.objects", "disk".to_string()),
        ];
        let e = Settings::load_from(None, &flags, env(&[])).unwrap_err();
        assert!(e.to_string().contains("proxy.objects"), "{e}");
        let e = Settings::load_from(
            None,
            &vec![("token", "t".into())],
            env(&[("RUKONG_REDIS__URL", "http://x")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("redis.url"), "{e}");
    }

    #[test]
    fn the_oracle_warm_up_mode_is_refused_outside_the_simulator() {
        let token = vec![("token", "t".to_string())];
        let e = Settings::load_from(None, &token, env(&[("RUKONG_ENGINE__WARMUP", "oracle")]))
            .unwrap_err();
        assert!(
            e.to_string().contains("engine.warmup") && e.to_string().contains("simulator"),
            "{e}"
        );
        let s =
            Settings::load_from(None, &token, env(&[("RUKONG_ENGINE__WARMUP", "jit")])).unwrap();
        assert_eq!(s.engine.warmup, rukong_engine::warmup::WarmupMode::Jit);
    }

    #[test]
    fn executor_threads_default_to_the_cores_and_never_exceed_the_slots() {
        let token = vec![("token", "t".to_string())];
        let threads = |vars: &[(&str, &str)]| {
            let s = Settings::load_from(None, &token, env(vars)).unwrap();
            let c = crate::cli::serve::serve_config(&s).unwrap().executor;
            (c.slots, c.threads)
        };
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        assert_eq!(
            threads(&[("RUKONG_EXECUTOR__SLOTS", "4")]),
            (4, cores.min(4))
        );
        assert_eq!(
            threads(&[
                ("RUKONG_EXECUTOR__SLOTS", "4"),
                ("RUKONG_EXECUTOR__THREADS", "1")
            ]),
            (4, 1)
        );
        assert_eq!(
            threads(&[
                ("RUKONG_EXECUTOR__SLOTS", "2"),
                ("RUKONG_EXECUTOR__THREADS", "8")
            ]),
            (2, 2)
        );
    }

    #[test]
    fn allowed_programs_come_from_a_list_a_joined_string_or_a_flag() {
        let token = vec![("token", "t".to_string())];
        let s = Settings::load_from(None, &token, env(&[])).unwrap();
        assert!(s.executor.allow_process.is_empty(), "off by default");
        let s = Settings::load_from(
            None,
            &token,
            env(&[("RUKONG_EXECUTOR__ALLOW_PROCESS", "sort, wc,,/usr/bin/tr")]),
        )
        .unwrap();
        assert_eq!(s.executor.allow_process, ["sort", "wc", "/usr/bin/tr"]);
        let dir = std::env::temp_dir().join(format!("rukong-allow-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("rukong.toml");
        std::fs::write(
            &f,
            "token = \"t\"\n[executor]\nallow_process = [\"cat\", \"sort\"]\n",
        )
        .unwrap();
        let s = Settings::load_from(Some(&f), &vec![], env(&[])).unwrap();
        assert_eq!(s.executor.allow_process, ["cat", "sort"]);
        let flags = vec![("executor.allow_process", "tr".to_string())];
        let s = Settings::load_from(Some(&f), &flags, env(&[])).unwrap();
        assert_eq!(
            s.executor.allow_process,
            ["tr"],
            "a flag replaces the file's list"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
