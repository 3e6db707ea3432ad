//! A Lambda Runtime API (the four endpoints a function's runtime client calls) serving one
//! function binary started as Lambda starts it: `AWS_LAMBDA_RUNTIME_API` points at this server,
//! the binary long-polls `invocation/next`, answers `invocation/<id>/response` or `/error`, and
//! reports a failed start on `init/error`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

type Outcome = Result<Value, String>;

struct Shared {
    queue: tokio::sync::Mutex<mpsc::Receiver<(Value, oneshot::Sender<Outcome>)>>,
    pending: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    init_error: Mutex<Option<String>>,
}

/// One function binary under its own Runtime API.
pub struct Function {
    /// First, so it is killed before the Runtime API goes away.
    child: tokio::process::Child,
    pub binary: String,
    queue: mpsc::Sender<(Value, oneshot::Sender<Outcome>)>,
    shared: Arc<Shared>,
}

/// Where the workspace's binaries are built (`target/debug`), next to this test's executable.
fn binaries_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps")
        .to_path_buf()
}

/// The newest modification time among the sources the function binaries are built from.
fn newest_source() -> std::time::SystemTime {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let mut newest = std::time::SystemTime::UNIX_EPOCH;
    let mut todo = vec![
        root.join("shared"),
        root.join("functions"),
        root.join("Cargo.lock"),
    ];
    while let Some(path) = todo.pop() {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            todo.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if path
            .extension()
            .is_some_and(|e| e == "rs" || e == "toml" || e == "lock")
        {
            newest = newest.max(meta.modified().unwrap());
        }
    }
    newest
}

/// The built binary, refusing a missing or stale one: tests never build (a build inside a test
/// waits on cargo's lock under `cargo test`); `scripts/test` runs
/// `cargo build --workspace --bins` first.
fn binary_path(binary: &str) -> PathBuf {
    let path = binaries_dir().join(binary);
    let built = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "{} is not built: run `cargo build --workspace --bins`",
                path.display()
            )
        });
    assert!(
        built >= newest_source(),
        "{} is older than its sources: run `cargo build --workspace --bins`",
        path.display()
    );
    path
}

impl Function {
    /// Starts `binary` with `env` (and this process's AWS settings) under a new Runtime API.
    pub async fn start(binary: &str, env: &[(&str, String)]) -> Self {
        let path = binary_path(binary);
        let (queue, receiver) = mpsc::channel(16);
        let shared = Arc::new(Shared {
            queue: tokio::sync::Mutex::new(receiver),
            pending: Mutex::default(),
            init_error: Mutex::default(),
        });
        let api = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(respond),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(failed))
            .route("/2018-06-01/runtime/init/error", post(init_failed))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, api).await });
        let child = tokio::process::Command::new(path)
            .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", format!("eshtarek-{binary}"))
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/eshtarek-{binary}"),
            )
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
            .env("RUST_LOG", "warn")
            // moto serves one request at a time; the deployed 8 s would turn a queue into 503s.
            .env("ESHTAREK_REQUEST_TIMEOUT_SECS", "120")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {binary}: {e}"));
        Self {
            child,
            binary: binary.to_owned(),
            queue,
            shared,
        }
    }

    /// One invocation with `event`: the function's answer, or its reported error.
    pub async fn invoke(&mut self, event: Value) -> Outcome {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((event, reply))
            .await
            .expect("the runtime API");
        let deadline = tokio::time::sleep(Duration::from_secs(60));
        tokio::select! {
            outcome = answer => outcome.expect("an answer"),
            status = self.child.wait() => Err(format!(
                "{} exited ({:?}) during the invocation; init error: {:?}",
                self.binary,
                status,
                self.shared.init_error.lock().unwrap()
            )),
            _ = deadline => Err(format!("{} did not answer in 60 s", self.binary)),
        }
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    let Some((event, reply)) = shared.queue.lock().await.recv().await else {
        // No more invocations: the poll waits, as on Lambda, until the process is stopped.
        return std::future::pending().await;
    };
    let id = uuid::Uuid::new_v4().to_string();
    shared.pending.lock().unwrap().insert(id.clone(), reply);
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 10_000;
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        headers.insert(name, HeaderValue::from_str(&value).unwrap());
    };
    set("lambda-runtime-aws-request-id", id);
    set("lambda-runtime-deadline-ms", deadline.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:eshtarek".into(),
    );
    set(
        "lambda-runtime-trace-id",
        "Root=1-5759e988-bd862e3fe1be46a994272793".into(),
    );
    set("content-type", "application/json".into());
    (headers, event.to_string()).into_response()
}

fn settle(shared: &Shared, id: &str, outcome: Outcome) -> StatusCode {
    match shared.pending.lock().unwrap().remove(id) {
        Some(reply) => {
            let _ = reply.send(outcome);
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

async fn respond(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    settle(&shared, &id, Ok(value))
}

async fn failed(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    settle(
        &shared,
        &id,
        Err(String::from_utf8_lossy(&body).into_owned()),
    )
}

async fn init_failed(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    *shared.init_error.lock().unwrap() = Some(String::from_utf8_lossy(&body).into_owned());
    StatusCode::ACCEPTED
}
