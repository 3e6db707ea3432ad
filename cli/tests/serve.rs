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
    start_in(tempfile::tempdir().unwrap().keep(), &[]).0
}

/// Starts the server on `data_dir`; returns it with every line it printed before serving
/// (the address line and, on a first start, the seeded credentials).
fn start_in(data_dir: std::path::PathBuf, extra: &[&str]) -> (Server, Vec<String>) {
    start_with(data_dir, extra, &[])
}

/// The same with more environment for the server.
fn start_with(
    data_dir: std::path::PathBuf,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (Server, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_eshtarek"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data_dir)
        .args(extra)
        .env("RUST_LOG", "warn")
        // These tests sign up more accounts from one loopback address than a person would.
        .env("ESHTAREK_REGISTER_LIMIT_PER_IP", "1000")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn eshtarek");
    // The reader is dropped after the banner on purpose: the server must keep serving when
    // nobody reads its stdout any more (it once died of a broken pipe here).
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        // The banner ends with the health line.
        let done = line.starts_with("Health:");
        lines.push(line);
        if done {
            break;
        }
    }
    let first_line = lines[0].clone();
    let base = first_line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {first_line:?}"))
        .to_owned();
    (
        Server {
            child,
            base,
            data_dir,
        },
        lines,
    )
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

    for function in ["auth", "plans", "subscriptions", "billing", "usage"] {
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

async fn login(base: &str, email: &str, password: &str) -> serde_json::Value {
    reqwest::Client::new()
        .post(format!("{base}/v1/auth/login"))
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn first_start_seeds_demo_data_once_and_no_seed_starts_empty() {
    let dir = tempfile::tempdir().unwrap().keep();
    let (server, lines) = start_in(dir.clone(), &[]);
    let printed = lines.join("");
    assert!(printed.contains("Seeded demo data"), "{printed}");
    let credential = |role: &str| {
        let line = lines
            .iter()
            .find(|l| l.trim_start().starts_with(role))
            .unwrap_or_else(|| panic!("no {role} in {printed}"));
        let words: Vec<&str> = line.split_whitespace().collect();
        (words[1].to_owned(), words[2].to_owned())
    };
    let (admin_email, admin_password) = credential("platform_admin");
    let admin = login(&server.base, &admin_email, &admin_password).await;
    assert_eq!(admin["tokens"]["role"], "platform_admin", "{admin}");
    let client = reqwest::Client::new();
    let plans: serde_json::Value = client
        .get(format!("{}/v1/plans", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = plans["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Business",
            "Free",
            "Pay as you go",
            "Plus",
            "Pro",
            "Teams",
            "Trial"
        ]
    );
    let tenants: serde_json::Value = client
        .get(format!("{}/v1/tenants", server.base))
        .bearer_auth(admin["tokens"]["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tenants["data"].as_array().unwrap().len(), 2);
    let (owner_email, owner_password) = credential("tenant_admin");
    assert_eq!(
        login(&server.base, &owner_email, &owner_password).await["tokens"]["role"],
        "tenant_admin"
    );
    drop(server);

    // A second start on the same store does not seed again.
    let (again, lines) = start_in(dir, &["--no-seed"]);
    assert!(!lines.join("").contains("Seeded"));
    // It says where the demo passwords are, since the banner no longer prints them.
    assert!(lines.join("").contains("demo-credentials.txt"), "{lines:?}");
    let plans: serde_json::Value = client
        .get(format!("{}/v1/plans", again.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(plans["data"].as_array().unwrap().len(), 7);
    drop(again);

    // --no-seed on a new store starts empty.
    let (empty, lines) = start_in(tempfile::tempdir().unwrap().keep(), &["--no-seed"]);
    assert!(!lines.join("").contains("Seeded"));
    assert!(!lines.join("").contains("demo-credentials.txt"));
    let plans: serde_json::Value = client
        .get(format!("{}/v1/plans", empty.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(plans["data"], serde_json::json!([]));
}

fn create_admin(data_dir: &std::path::Path, email: &str, password: &str) {
    use std::io::Write;
    let mut admin = Command::new(env!("CARGO_BIN_EXE_eshtarek"))
        .args([
            "admin",
            "create-platform-admin",
            "--email",
            email,
            "--data-dir",
        ])
        .arg(data_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    writeln!(admin.stdin.take().unwrap(), "{password}").unwrap();
    assert!(admin.wait().unwrap().success());
}

async fn call(
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new().request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

/// The demo path: with `--test-clock`, moving time ends a trial into a paid period; the same
/// job runs from `eshtarek jobs run`.
#[tokio::test]
async fn the_test_clock_moves_a_trial_into_a_paid_period() {
    use reqwest::Method;
    use serde_json::json;
    let dir = tempfile::tempdir().unwrap().keep();
    create_admin(&dir, "root@example.com", "a long admin password");
    let (server, _) = start_in(
        dir.clone(),
        &["--no-seed", "--test-clock", "--jobs-every", "0"],
    );
    let base = server.base.clone();
    let admin = login(&base, "root@example.com", "a long admin password").await["tokens"]
        ["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, plan) = call(Method::POST, format!("{base}/v1/plans"), Some(&admin),
        Some(json!({"name": "Pro", "price": "29.00", "currency": "USD", "billing_cycle": "monthly", "trial_days": 14}))).await;
    assert_eq!(status, 201, "{plan}");
    let owner = login_after_register(&base).await;
    call(
        Method::POST,
        format!("{base}/v1/payment-methods"),
        Some(&owner),
        Some(json!({"token": "pm_card_visa"})),
    )
    .await;
    let (status, sub) = call(
        Method::POST,
        format!("{base}/v1/subscriptions"),
        Some(&owner),
        Some(json!({"plan_id": plan["id"]})),
    )
    .await;
    assert_eq!(
        (status, sub["subscription"]["status"].as_str()),
        (201, Some("trialing"))
    );

    // Tenants cannot move time; bad durations are refused.
    let (status, _) = call(
        Method::POST,
        format!("{base}/v1/admin/clock/advance"),
        Some(&owner),
        Some(json!({"duration": "1d"})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = call(
        Method::POST,
        format!("{base}/v1/admin/clock/advance"),
        Some(&admin),
        Some(json!({"duration": "soon"})),
    )
    .await;
    assert_eq!(status, 422);
    let (status, moved) = call(
        Method::POST,
        format!("{base}/v1/admin/clock/advance"),
        Some(&admin),
        Some(json!({"duration": "15d"})),
    )
    .await;
    assert_eq!(status, 200, "{moved}");
    let renewals = moved["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job"] == "renew-billing")
        .unwrap();
    assert_eq!(renewals["outcomes"]["renewed"], 1, "{moved}");
    let owner = login(&base, "owner@example.com", "a long owner password").await["tokens"]
        ["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Anyone signed in (a tenant admin here) reads the clock (the dashboard's banner): the moved time, marked test.
    let (status, clock) = call(Method::GET, format!("{base}/v1/clock"), Some(&owner), None).await;
    assert_eq!(status, 200, "{clock}");
    assert_eq!(clock["test_clock"], true);
    let read = chrono::DateTime::parse_from_rfc3339(clock["now"].as_str().unwrap()).unwrap();
    let moved_to = chrono::DateTime::parse_from_rfc3339(moved["now"].as_str().unwrap()).unwrap();
    assert!(
        read >= moved_to && read - moved_to < chrono::Duration::minutes(1),
        "{clock} {moved}"
    );
    let (status, _) = call(Method::GET, format!("{base}/v1/clock"), None, None).await;
    assert_eq!(status, 401);
    let (_, current) = call(
        Method::GET,
        format!("{base}/v1/subscriptions/current"),
        Some(&owner),
        None,
    )
    .await;
    assert_eq!(current["status"], "active");
    let (_, invoices) = call(
        Method::GET,
        format!("{base}/v1/invoices"),
        Some(&owner),
        None,
    )
    .await;
    assert_eq!(invoices["data"][0]["total"], "29.00");
    assert_eq!(invoices["data"][0]["status"], "paid");
    drop(server);

    // The same job from the CLI, as of a later time: the next period renews.
    let output = Command::new(env!("CARGO_BIN_EXE_eshtarek"))
        .args([
            "jobs",
            "run",
            "renew-billing",
            "--now",
            "2099-01-01T00:00:00Z",
            "--data-dir",
        ])
        .arg(&dir)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["job"], "renew-billing");
    assert_eq!(report["outcomes"]["renewed"], 1, "{report}");

    // Without --now, a job runs at the stored test time (the server's), and says so.
    let output = jobs_run("limit-warnings", &dir);
    assert!(output.status.success(), "{output:?}");
    let said = String::from_utf8_lossy(&output.stderr).into_owned();
    let at = said.trim().rsplit(" at ").next().unwrap().to_owned();
    let moved_to = moved["now"].as_str().unwrap().to_owned();
    assert!(
        at >= moved_to,
        "ran at {at}, the test clock was at {moved_to}"
    );
    // A later server on the wall clock owns the store's time: the demo's offset is dropped,
    // so a job no longer runs at the old test time.
    drop(start_in(dir.clone(), &["--no-seed"]).0);
    let output = jobs_run("limit-warnings", &dir);
    assert!(output.status.success(), "{output:?}");
    let said = String::from_utf8_lossy(&output.stderr).into_owned();
    let at = said.trim().rsplit(" at ").next().unwrap().to_owned();
    assert!(
        at < moved_to,
        "ran at {at}, after the test clock was dropped"
    );
    // A store that is not there is named, not created empty.
    let missing = tempfile::tempdir().unwrap().keep().join("nothing-here");
    let output = jobs_run("renew-billing", &missing);
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("no embedded store at") && said.contains("--data-dir"),
        "{said}"
    );
    assert!(!missing.exists(), "nothing was created");

    // Without --test-clock time cannot be moved, even by a platform admin.
    let plain_dir = tempfile::tempdir().unwrap().keep();
    create_admin(&plain_dir, "root@example.com", "a long admin password");
    let (plain, _) = start_in(plain_dir, &["--no-seed"]);
    let admin = login(&plain.base, "root@example.com", "a long admin password").await["tokens"]
        ["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, problem) = call(
        Method::POST,
        format!("{}/v1/admin/clock/advance", plain.base),
        Some(&admin),
        Some(json!({"duration": "1d"})),
    )
    .await;
    assert_eq!(status, 404, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("--test-clock"));
    let (status, clock) = call(
        Method::GET,
        format!("{}/v1/clock", plain.base),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(
        (status, &clock["test_clock"]),
        (200, &json!(false)),
        "{clock}"
    );
}

async fn login_after_register(base: &str) -> String {
    let (status, body) = call(
        reqwest::Method::POST,
        format!("{base}/v1/auth/register"),
        None,
        Some(serde_json::json!({"email": "owner@example.com", "password": "a long owner password", "name": "Owner", "tenant_name": "Acme"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["tokens"]["access_token"].as_str().unwrap().to_owned()
}

/// SIGTERM (what Lambda, systemd and Ctrl-C send) stops taking connections but finishes the
/// requests in flight: each gets its full answer, and the process then exits cleanly.
#[tokio::test]
async fn sigterm_finishes_in_flight_requests_then_exits() {
    let dir = tempfile::tempdir().unwrap().keep();
    let (mut server, _) = start_in(dir, &["--no-seed", "--jobs-every", "0"]);
    let base = server.base.clone();
    // Signups hash with argon2: slow enough that several are still running at the signal.
    // One client, built before the clock starts: building one loads the TLS roots, and a
    // request not yet sent at the signal would be an idle connection, closed by design.
    let client = reqwest::Client::new();
    let in_flight: Vec<_> = (0..24)
        .map(|n| {
            let base = base.clone();
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .post(format!("{base}/v1/auth/register"))
                    .json(&serde_json::json!({"email": format!("u{n}@term.example"), "password": "a long user password", "name": "U"}))
                    .send()
                    .await
                    .map(|r| (r.status().as_u16(), std::time::Instant::now()))
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let signalled = std::time::Instant::now();
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let mut after_signal = 0;
    for request in in_flight {
        let (status, done) = request.await.unwrap().expect("an answer, not a reset");
        assert_eq!(status, 201);
        after_signal += usize::from(done > signalled);
    }
    // Otherwise this test would prove nothing about requests in flight.
    assert!(after_signal > 0, "every signup finished before the signal");
    let status = tokio::task::spawn_blocking(move || {
        let status = server.child.wait().unwrap();
        (status, server)
    })
    .await
    .unwrap()
    .0;
    assert!(status.success(), "exit status {status}");
    assert!(
        reqwest::get(format!("{base}/healthz")).await.is_err(),
        "no new connections after shutdown"
    );
}

/// A connection that trickles its request head, or sits idle after a request, is closed
/// after the header-read timeout (here 1 s), not kept for ever.
#[tokio::test]
async fn slow_and_idle_connections_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (server, _) = start_with(
        tempfile::tempdir().unwrap().keep(),
        &["--no-seed", "--jobs-every", "0"],
        &[("ESHTAREK_HEADER_TIMEOUT_SECS", "1")],
    );
    let address = server.base.trim_start_matches("http://").to_owned();
    let closed_within = |mut stream: tokio::net::TcpStream| async move {
        let started = std::time::Instant::now();
        let mut sink = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            stream.read_to_end(&mut sink),
        )
        .await;
        assert!(read.is_ok(), "still open after 5 s");
        started.elapsed()
    };
    // Slow headers: half a request head, then nothing.
    let mut slow = tokio::net::TcpStream::connect(&address).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let slow_closed = closed_within(slow).await;
    // Idle keep-alive: one full request answered, then silence.
    let mut idle = tokio::net::TcpStream::connect(&address).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let idle_closed = closed_within(idle).await;
    assert!(
        slow_closed < std::time::Duration::from_secs(3),
        "{slow_closed:?}"
    );
    assert!(
        idle_closed < std::time::Duration::from_secs(3),
        "{idle_closed:?}"
    );
    // A prompt client is served as before.
    let health = reqwest::get(format!("{}/healthz", server.base))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[test]
fn an_address_in_use_is_named_with_the_flag_that_changes_it() {
    let server = start();
    let address = server.base.trim_start_matches("http://").to_owned();
    let output = Command::new(env!("CARGO_BIN_EXE_eshtarek"))
        .args(["serve", "--no-seed", "--listen", &address, "--data-dir"])
        .arg(tempfile::tempdir().unwrap().keep())
        .env("RUST_LOG", "warn")
        .output()
        .expect("run eshtarek");
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains(&format!("cannot listen on {address}")),
        "{said}"
    );
    assert!(said.contains("--listen"), "{said}");
}

/// `eshtarek jobs run <job> --data-dir <dir>`, at the store's own time.
fn jobs_run(job: &str, dir: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_eshtarek"))
        .args(["jobs", "run", job, "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

/// The text between `open` and the next `close` after it.
fn between<'a>(text: &'a str, open: &str, close: &str) -> &'a str {
    let start = text.find(open).unwrap_or_else(|| panic!("no {open:?}")) + open.len();
    let len = text[start..].find(close).expect("closed");
    &text[start..start + len]
}

/// The README's walkthrough, verbatim, against a fresh seeded server: it prints exactly what
/// the README says it prints.
#[test]
fn the_readme_walkthrough_runs_as_written() {
    run_readme_section("## Try it", &[]);
}

/// The README's test-clock demo (a declined renewal through dunning to its end), verbatim,
/// against a fresh server on the test clock.
#[test]
fn the_readme_clock_demo_runs_as_written() {
    run_readme_section("## Watch time pass", &["--test-clock"]);
}

/// Runs the first `sh` block after `heading` in the README against a fresh seeded server
/// started with `flags` (its data directory in `DATA`), and compares what it prints with the
/// first `text` block after it.
fn run_readme_section(heading: &str, flags: &[&str]) {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let section = &readme[readme.find(heading).expect("the README section")..];
    let script = between(section, "```sh\n", "```");
    let expected = between(section, "```text\n", "```");
    let data = tempfile::tempdir().unwrap().keep();
    let (server, _) = start_in(data.clone(), flags);
    let output = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .env("BASE", &server.base)
        .env("DATA", &data)
        .output()
        .expect("bash");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{heading} failed: {}\n{printed}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(printed, expected);
}
