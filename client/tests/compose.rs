//! The container deployment files: `Dockerfile`, `docker-compose.yml` and `.dockerignore`.
//!
//! There is no Docker engine in CI, so nothing here builds the image or starts a
//! container. Instead the compose file is checked structurally (services, healthchecks,
//! start order, scaling, settings) and, through `docker-compose config -q`, against
//! Compose's own schema; the Dockerfile is checked for its stages, build command and
//! entrypoint.

use serde_yaml::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};

/// The services that run the `rukong` binary.
const RUKONG_SERVICES: [&str; 3] = ["kvproxy", "engine", "executor"];

const INSTALL_HINT: &str = "docker-compose not found: install it with `apt-get install -y --no-install-recommends docker-compose` (scripts/test.sh does this)";

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn read(name: &str) -> String {
    let path = repo().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn compose() -> Value {
    serde_yaml::from_str(&read("docker-compose.yml")).expect("docker-compose.yml is YAML")
}

fn service<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["services"]
        .get(name)
        .unwrap_or_else(|| panic!("docker-compose.yml has no service {name:?}"))
}

/// A service's environment, in either of Compose's forms (mapping or `KEY=VALUE` list).
fn env(svc: &Value) -> BTreeMap<String, String> {
    let scalar = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => serde_yaml::to_string(other).unwrap().trim().to_owned(),
    };
    match &svc["environment"] {
        Value::Mapping(m) => m
            .iter()
            .map(|(k, v)| (k.as_str().expect("string key").to_owned(), scalar(v)))
            .collect(),
        Value::Sequence(s) => s
            .iter()
            .map(|e| {
                let e = e.as_str().expect("KEY=VALUE string");
                let (k, v) = e.split_once('=').unwrap_or((e, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        Value::Null => BTreeMap::new(),
        other => panic!("environment must be a mapping or a list, got {other:?}"),
    }
}

/// A service's command as words (list form, or a string split on whitespace).
fn command(svc: &Value) -> Vec<String> {
    match &svc["command"] {
        Value::Sequence(s) => s
            .iter()
            .map(|w| w.as_str().expect("command words are strings").to_owned())
            .collect(),
        Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
        other => panic!("command must be a list or a string, got {other:?}"),
    }
}

/// The value after `flag` in a command, if the flag is there.
fn flag<'a>(cmd: &'a [String], flag: &str) -> Option<&'a str> {
    cmd.iter()
        .position(|w| w == flag)
        .and_then(|i| cmd.get(i + 1))
        .map(String::as_str)
}

/// A healthcheck's test as words; `None` if the service has none (or disables it).
fn healthcheck(svc: &Value) -> Option<Vec<String>> {
    let hc = svc.get("healthcheck")?;
    if hc.get("disable").and_then(Value::as_bool) == Some(true) {
        return None;
    }
    let words: Vec<String> = match hc.get("test")? {
        Value::Sequence(s) => s.iter().map(|w| w.as_str().unwrap().to_owned()).collect(),
        Value::String(s) => vec!["CMD-SHELL".into(), s.clone()],
        _ => return None,
    };
    (words.len() > 1 && words[0] != "NONE").then_some(words)
}

#[test]
fn compose_has_the_four_services_and_no_top_level_name() {
    let v = compose();
    let services = v["services"].as_mapping().expect("a services mapping");
    for name in ["redis", "kvproxy", "engine", "executor"] {
        assert!(services.contains_key(name), "missing service {name:?}");
    }
    // docker-compose 1.29 rejects a top-level `name:`.
    assert!(v.get("name").is_none(), "top-level `name:` is not allowed");
    assert!(
        service(&v, "redis")["image"]
            .as_str()
            .is_some_and(|i| i.starts_with("redis:")),
        "redis runs a redis image"
    );
}

#[test]
fn rukong_services_share_one_build_and_image() {
    let v = compose();
    let first = service(&v, RUKONG_SERVICES[0]);
    let (build, image) = (&first["build"], &first["image"]);
    assert!(!build.is_null(), "{} has a build", RUKONG_SERVICES[0]);
    assert!(image.is_string(), "{} names an image", RUKONG_SERVICES[0]);
    for name in RUKONG_SERVICES {
        let svc = service(&v, name);
        assert_eq!(&svc["build"], build, "{name} builds what the others build");
        assert_eq!(&svc["image"], image, "{name} runs the same image");
        let cmd = command(svc);
        assert_eq!(
            cmd.first().map(String::as_str),
            Some(name),
            "{name}'s command is `rukong {name} ...` (the image's entrypoint is rukong): {cmd:?}"
        );
    }
}

#[test]
fn redis_kvproxy_and_engine_have_healthchecks_that_the_image_can_run() {
    let v = compose();
    let dockerfile = read("Dockerfile");
    for name in ["redis", "kvproxy", "engine"] {
        let test =
            healthcheck(service(&v, name)).unwrap_or_else(|| panic!("{name} has no healthcheck"));
        // Tools the healthchecks call must be in the image (bash is in debian-slim).
        if RUKONG_SERVICES.contains(&name) && test.iter().any(|w| w == "curl") {
            assert!(
                dockerfile
                    .lines()
                    .any(|l| l.contains("apt-get install") && l.contains("curl")),
                "{name}'s healthcheck uses curl, which the Dockerfile must install"
            );
        }
    }
    let engine = healthcheck(service(&v, "engine")).unwrap();
    assert!(
        engine
            .iter()
            .any(|w| w.contains("/healthz") && w.contains(":8080")),
        "the engine's healthcheck asks /healthz on its port: {engine:?}"
    );
    let proxy = healthcheck(service(&v, "kvproxy")).unwrap();
    assert!(
        proxy.iter().any(|w| w.contains("7070")),
        "the proxy's healthcheck connects to its port: {proxy:?}"
    );
}

#[test]
fn every_dependency_waits_until_healthy() {
    let v = compose();
    let services = v["services"].as_mapping().unwrap();
    let mut edges = 0;
    for (name, svc) in services {
        let name = name.as_str().unwrap();
        let deps = match &svc["depends_on"] {
            Value::Null => continue,
            Value::Mapping(m) => m,
            other => panic!(
                "{name}: depends_on must be a mapping with `condition: service_healthy`, got {other:?}"
            ),
        };
        for (dep, cond) in deps {
            let dep = dep.as_str().unwrap();
            assert_eq!(
                cond["condition"].as_str(),
                Some("service_healthy"),
                "{name} -> {dep} must use `condition: service_healthy`"
            );
            assert!(
                healthcheck(service(&v, dep)).is_some(),
                "{name} waits for {dep} to be healthy, but {dep} has no healthcheck"
            );
            edges += 1;
        }
    }
    for (svc, deps) in [
        ("kvproxy", &["redis"][..]),
        ("engine", &["redis", "kvproxy"]),
        ("executor", &["redis", "kvproxy", "engine"]),
    ] {
        for dep in deps {
            assert!(
                service(&v, svc)["depends_on"].get(*dep).is_some(),
                "{svc} depends on {dep}"
            );
        }
    }
    assert!(edges >= 6, "start order is declared");
}

#[test]
fn proxy_engine_and_executors_share_one_tmpfs_for_objects_at_the_proxys_shared_dir() {
    let v = compose();
    let dir = env(service(&v, "kvproxy"))
        .get("RUKONG_PROXY__SHARED_DIR")
        .cloned()
        .expect("the proxy names its shared directory");
    let volume = v["volumes"]["objects"].clone();
    assert_eq!(
        volume["driver_opts"]["type"].as_str(),
        Some("tmpfs"),
        "{volume:?}"
    );
    let opts = volume["driver_opts"]["o"].as_str().unwrap_or_default();
    // The image's user (Dockerfile: uid 10001) owns it, as the proxy's 0700 directory.
    assert!(opts.contains("uid=10001"), "{opts}");
    assert!(read("Dockerfile").contains("--uid 10001"));
    for name in RUKONG_SERVICES {
        let mounts: Vec<&str> = service(&v, name)["volumes"]
            .as_sequence()
            .map(|s| s.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        // The same path in every container: clients open the directory the proxy names.
        assert!(
            mounts.contains(&format!("objects:{dir}").as_str()),
            "{name} mounts {mounts:?}, not objects at {dir}"
        );
    }
}

#[test]
fn executor_can_be_scaled() {
    let v = compose();
    let ex = service(&v, "executor");
    assert!(
        ex.get("container_name").is_none(),
        "a container_name stops `--scale executor=N`"
    );
    // A fixed host port would clash between replicas; the executor needs none.
    if let Some(ports) = ex.get("ports") {
        for p in ports.as_sequence().expect("ports is a list") {
            let fixed = match p {
                Value::String(s) => s.contains(':'),
                Value::Number(_) => false,
                Value::Mapping(m) => m.contains_key("published"),
                _ => true,
            };
            assert!(!fixed, "executor publishes a fixed host port: {p:?}");
        }
    }
    let replicas = ex["deploy"]["replicas"].as_u64();
    assert!(
        replicas.is_some_and(|n| n >= 1),
        "executor sets deploy.replicas"
    );
}

#[test]
fn listen_advertise_and_proxy_addresses_agree() {
    let v = compose();
    let engine = command(service(&v, "engine"));
    assert_eq!(
        flag(&engine, "--listen"),
        Some("0.0.0.0:8080"),
        "the engine listens on all interfaces: {engine:?}"
    );
    let published = service(&v, "engine")["ports"]
        .as_sequence()
        .expect("the engine publishes its port")
        .iter()
        .any(|p| p.as_str().is_some_and(|s| s.ends_with(":8080")));
    assert!(published, "the engine's port 8080 is published");

    let proxy = command(service(&v, "kvproxy"));
    assert_eq!(flag(&proxy, "--listen"), Some("0.0.0.0:7070"), "{proxy:?}");
    let advertised = flag(&proxy, "--advertise").expect("the proxy advertises its address");
    assert!(
        advertised.starts_with("kvproxy:"),
        "the proxy advertises its service name: {advertised}"
    );
    for name in ["engine", "executor"] {
        let cmd = command(service(&v, name));
        assert_eq!(
            flag(&cmd, "--proxy"),
            Some(advertised),
            "{name} reaches the proxy where it says it is"
        );
    }
}

#[test]
fn rukong_services_get_redis_url_token_and_log_level() {
    let v = compose();
    for name in RUKONG_SERVICES {
        let env = env(service(&v, name));
        let url = env
            .get("RUKONG_REDIS__URL")
            .unwrap_or_else(|| panic!("{name} sets RUKONG_REDIS__URL"));
        assert!(
            (url.starts_with("redis://") || url.starts_with("rediss://"))
                && (url.contains("//redis:") || url.contains("@redis:")),
            "{name}: RUKONG_REDIS__URL points at the redis service: {url}"
        );
        let token = env
            .get("RUKONG_TOKEN")
            .unwrap_or_else(|| panic!("{name} sets RUKONG_TOKEN"));
        assert!(
            token.contains("${RUKONG_TOKEN"),
            "{name}: the token comes from the operator's environment, not the file: {token}"
        );
        assert!(env.contains_key("RUST_LOG"), "{name} sets RUST_LOG");
        // Settings reject unknown keys, and RUKONG_ENGINE (a client variable) would be
        // read as the `engine` section.
        assert!(
            !env.contains_key("RUKONG_ENGINE"),
            "{name}: RUKONG_ENGINE is for clients, not servers"
        );
        assert_ne!(
            env.get("RUKONG_INSECURE").map(String::as_str),
            Some("true"),
            "{name} runs with a token"
        );
    }
}

fn docker_compose(args: &[&str], token: Option<&str>) -> Output {
    let file = repo().join("docker-compose.yml");
    let mut c = Command::new("docker-compose");
    // A local .env must not change the result: point compose at an empty one instead.
    let empty = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("compose-empty.env");
    std::fs::write(&empty, "").expect("write an empty env file");
    c.arg("--env-file")
        .arg(&empty)
        .arg("-f")
        .arg(&file)
        .args(args);
    c.current_dir(repo());
    c.env_remove("COMPOSE_FILE").env_remove("RUKONG_TOKEN");
    if let Some(t) = token {
        c.env("RUKONG_TOKEN", t);
    }
    match c.output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{INSTALL_HINT}"),
        Err(e) => panic!("docker-compose: {e}"),
    }
}

#[test]
fn docker_compose_config_accepts_the_file() {
    let out = docker_compose(&["config", "-q"], Some("test"));
    assert!(
        out.status.success(),
        "docker-compose config -q failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = docker_compose(&["config", "--services"], Some("test"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut services: Vec<_> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    services.sort();
    assert_eq!(services, ["engine", "executor", "kvproxy", "redis"]);
}

#[test]
fn docker_compose_refuses_to_start_without_a_token() {
    let out = docker_compose(&["config", "-q"], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "an unset RUKONG_TOKEN must be an error"
    );
    assert!(
        stderr.contains("RUKONG_TOKEN"),
        "the error names the variable: {stderr}"
    );
}

/// The Dockerfile's instructions: comments dropped, continuation lines joined.
fn dockerfile() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in read("Dockerfile").lines() {
        let t = line.trim();
        // Blank and comment lines are dropped, inside a continuation too.
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if let Some(head) = t.strip_suffix('\\') {
            cur.push_str(head);
            cur.push(' ');
            continue;
        }
        cur.push_str(t);
        let (op, rest) = cur.split_once(char::is_whitespace).unwrap_or((&cur, ""));
        out.push((op.to_ascii_uppercase(), rest.trim().to_owned()));
        cur.clear();
    }
    out
}

#[test]
fn dockerfile_builds_one_binary_in_two_stages() {
    let ins = dockerfile();
    let froms: Vec<usize> = ins
        .iter()
        .enumerate()
        .filter(|(_, (op, _))| op == "FROM")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(froms.len(), 2, "two stages: build and runtime");
    let (build, runtime) = ins.split_at(froms[1]);
    assert!(
        build[froms[0]].1.starts_with("rust:"),
        "the build stage is a Rust image"
    );

    let cargo = build
        .iter()
        .find(|(op, rest)| op == "RUN" && rest.contains("cargo build"))
        .expect("the build stage runs cargo build");
    for want in ["--release", "-p rukong-client", "--bin rukong"] {
        assert!(
            cargo.1.contains(want),
            "cargo build has {want}: {}",
            cargo.1
        );
    }

    assert!(
        runtime.iter().any(|(op, rest)| op == "COPY"
            && rest.starts_with("--from=")
            && rest.contains("rukong")),
        "the runtime stage copies the binary from the build stage"
    );
    let entry = runtime
        .iter()
        .rev()
        .find(|(op, _)| op == "ENTRYPOINT")
        .expect("the runtime stage has an ENTRYPOINT");
    let words: Vec<String> = if entry.1.starts_with('[') {
        serde_json::from_str(&entry.1).expect("ENTRYPOINT is a JSON array")
    } else {
        entry.1.split_whitespace().map(str::to_owned).collect()
    };
    assert!(
        words
            .first()
            .is_some_and(|w| w == "rukong" || w.ends_with("/rukong")),
        "ENTRYPOINT runs rukong: {words:?}"
    );
    let user = runtime
        .iter()
        .rev()
        .find(|(op, _)| op == "USER")
        .expect("the runtime stage sets a USER");
    assert!(
        !matches!(user.1.as_str(), "root" | "0" | "0:0"),
        "runs as non-root"
    );
    let exposed: Vec<&str> = runtime
        .iter()
        .filter(|(op, _)| op == "EXPOSE")
        .flat_map(|(_, rest)| rest.split_whitespace())
        .collect();
    for port in ["8080", "7070"] {
        assert!(exposed.contains(&port), "EXPOSE {port}: {exposed:?}");
    }
}

#[test]
fn dockerignore_keeps_build_outputs_out_and_sources_in() {
    let ignore = read(".dockerignore");
    let patterns: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for want in ["target", ".git"] {
        assert!(
            patterns.iter().any(|p| p.trim_end_matches('/') == want),
            ".dockerignore excludes {want}/"
        );
    }
    // client/src/lib.rs includes README.md and docs/rust-api.md; every workspace member must
    // be in the context.
    for needed in [
        "README.md",
        "docs",
        "Cargo.toml",
        "Cargo.lock",
        "client",
        "core",
        "engine",
        "executor",
        "kvstore-proxy",
        "benches",
        "src",
    ] {
        assert!(
            !patterns
                .iter()
                .any(|p| p.trim_end_matches('/') == needed || *p == "*"),
            ".dockerignore must not exclude {needed}"
        );
    }
}
