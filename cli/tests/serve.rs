//! The binary as a person runs it: `eshtarek serve` on a free port answers its health routes
//! and gives problem documents for bad paths.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_eshtarek"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn eshtarek");
    let mut first_line = String::new();
    // The reader is dropped after the first line on purpose: the server must keep serving
    // when nobody reads its stdout any more (it once died of a broken pipe here).
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first_line)
        .unwrap();
    std::mem::forget(dir);
    let base = first_line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {first_line:?}"))
        .to_owned();
    Server { child, base }
}

#[tokio::test]
async fn serve_answers_health_and_problem_documents() {
    let server = start();
    let client = reqwest::Client::new();

    let health = client
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["store"], "sqlite");

    for function in ["auth"] {
        let url = format!("{}/v1/{function}/health", server.base);
        let response = client.get(url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["function"], function);
    }

    let missing = client
        .get(format!("{}/v1/nope", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
    let problem: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(problem["status"], 404);
    assert_eq!(problem["type"], "/problems/not-found");
    assert!(problem["detail"].as_str().unwrap().contains("/v1/nope"));

    let wrong_method = client
        .delete(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert_eq!(
        wrong_method.headers()["content-type"],
        "application/problem+json"
    );
}
