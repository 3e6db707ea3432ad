//! The binary as a person runs it: `eshtarek serve` on a free port answers its health routes
//! and gives problem documents for bad paths.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

struct Server {
    child: Child,
    base: String,
    data_dir: std::path::PathBuf,
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
    let data_dir = dir.keep();
    let base = first_line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {first_line:?}"))
        .to_owned();
    Server {
        child,
        base,
        data_dir,
    }
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

#[tokio::test]
async fn create_platform_admin_works_beside_a_running_server() {
    let server = start();
    let email = "root@example.com";
    let password = "a long admin password";
    let mut admin = Command::new(env!("CARGO_BIN_EXE_eshtarek"))
        .args([
            "admin",
            "create-platform-admin",
            "--email",
            email,
            "--data-dir",
        ])
        .arg(&server.data_dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    writeln!(admin.stdin.take().unwrap(), "{password}").unwrap();
    let output = admin.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains(email));

    let client = reqwest::Client::new();
    let login: serde_json::Value = client
        .post(format!("{}/v1/auth/login", server.base))
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(login["tokens"]["role"], "platform_admin", "{login}");
    let token = login["tokens"]["access_token"].as_str().unwrap();
    let tenants = client
        .get(format!("{}/v1/tenants", server.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(tenants.status(), 200);

    // Registration never makes a platform admin.
    let user: serde_json::Value = client
        .post(format!("{}/v1/auth/register", server.base))
        .json(&serde_json::json!({"email": "u@example.com", "password": password, "name": "U"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(user["user"]["platform_admin"], false);
    let forbidden = client
        .get(format!("{}/v1/tenants", server.base))
        .bearer_auth(user["tokens"]["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), 403);

    // A bad password on stdin is refused with the policy's words.
    let mut weak = Command::new(env!("CARGO_BIN_EXE_eshtarek"))
        .args([
            "admin",
            "create-platform-admin",
            "--email",
            "weak@example.com",
            "--data-dir",
        ])
        .arg(&server.data_dir)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(weak.stdin.take().unwrap(), "short").unwrap();
    let output = weak.wait_with_output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("at least 10 characters"));
}
