//! Starting and stopping a proxy server in-process, over a `MemoryStore`, for the tests.
#![allow(dead_code)] // each test file uses a different part

use rukong_core::dag::{DagSpec, Limits, validate};
use rukong_core::proxy::remote::{RemoteConfig, RemoteProxy};
use rukong_core::store::memory::MemoryStore;
use rukong_core::{JobConfig, JobId, JobPlan, schedule};
use rukong_kvstore_proxy::{ServerConfig, serve};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A stored plan for `job` from a DAG file's text, with the default job settings.
pub fn plan(job: &str, yaml: &str) -> Arc<JobPlan> {
    let dag = validate(
        DagSpec::from_yaml_str(yaml).expect("the test DAG parses"),
        &Limits::default(),
        &|_| true,
    )
    .expect("the test DAG is valid");
    let config = JobConfig::default();
    Arc::new(JobPlan {
        job: JobId::new(job),
        schedule: schedule::schedule(&dag, config.proxy_fanout),
        dag,
        config,
    })
}

/// The most any one step of a test may take.
pub const STEP: Duration = Duration::from_secs(30);

/// Objects up to 40 MiB: room for the 20 and 32 MiB ones, and a limit below the wire's.
pub const TEST_MAX_OBJECT: usize = 40 << 20;

pub fn server_config() -> ServerConfig {
    ServerConfig {
        max_object: TEST_MAX_OBJECT,
        shutdown_grace: Duration::from_secs(5),
        ..ServerConfig::default()
    }
}

pub fn remote_config() -> RemoteConfig {
    RemoteConfig {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(10),
        ..RemoteConfig::default()
    }
}

/// Awaits `fut`, failing the test if it takes longer than [`STEP`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(STEP, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: no result within {STEP:?}"),
    }
}

/// A server running in a task, stopped by [`TestServer::stop`].
pub struct TestServer {
    pub addr: SocketAddr,
    pub store: Arc<MemoryStore>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<io::Result<()>>,
}

impl TestServer {
    /// Starts a server on a free port of 127.0.0.1.
    pub async fn start(store: Arc<MemoryStore>, config: ServerConfig) -> TestServer {
        Self::start_on("127.0.0.1:0".parse().unwrap(), store, config).await
    }

    /// Starts a server on `addr` (to restart one on the same port).
    pub async fn start_on(
        addr: SocketAddr,
        store: Arc<MemoryStore>,
        config: ServerConfig,
    ) -> TestServer {
        let listener = TcpListener::bind(addr)
            .await
            .expect("bind the proxy's port");
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, store.clone(), config, async {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            store,
            stop,
            task,
        }
    }

    /// A client of this server.
    /// A connection past the handshake (no token), to send raw frames.
    pub async fn raw_client(&self) -> tokio::net::TcpStream {
        use rukong_core::proxy::wire::{self, ClientHello, MAX_HELLO, ServerHello};
        let mut conn = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        wire::write_frame(&mut conn, &ClientHello::new(None))
            .await
            .unwrap();
        let hello: ServerHello = wire::read_frame(&mut conn, MAX_HELLO)
            .await
            .unwrap()
            .unwrap();
        assert!(hello.accepted);
        conn
    }

    pub async fn client(&self, token: Option<&str>) -> RemoteProxy {
        within(
            "connect",
            RemoteProxy::connect(
                self.addr.to_string(),
                token.map(String::from),
                remote_config(),
            ),
        )
        .await
        .expect("connect to the proxy")
    }

    /// Shuts the server down and waits for `serve` to return.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        within("shutdown", self.task)
            .await
            .expect("the server task does not panic")
            .expect("serve returns Ok");
    }
}
