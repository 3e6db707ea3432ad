//! Outgoing mail: verification and invitation links. Until a real transport lands, messages go
//! to a local mailbox (one JSON file per message in the data directory, and a log line with the
//! link) in local mode only; a deployed function has no mailbox and logs that a message was not
//! sent, never its link. No API answer ever carries a link's token: owning the mailbox is what
//! the token proves.

use std::path::PathBuf;
use std::sync::Mutex;

use serde::Serialize;

/// One message, with its link and the token inside it kept apart so local tools can read them.
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    pub to: String,
    /// `verify_email` or `invitation`.
    pub kind: &'static str,
    pub subject: String,
    pub text: String,
    pub link: String,
    pub token: String,
}

pub trait Mailer: Send + Sync {
    fn send(&self, message: Message);
}

/// The deployed default: no transport yet, so nothing is sent, and the log says so without
/// the link (a log is no place for a credential).
pub struct Undelivered;

impl Mailer for Undelivered {
    fn send(&self, message: Message) {
        tracing::warn!(
            kind = message.kind,
            "no mail transport is configured; a message was not sent"
        );
    }
}

/// Local mode: each message is written to `<dir>/<time>-<kind>.json` and its link logged.
pub struct LocalMailbox {
    dir: PathBuf,
}

impl LocalMailbox {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }
}

impl Mailer for LocalMailbox {
    fn send(&self, message: Message) {
        tracing::info!(to = %message.to, kind = message.kind, link = %message.link, "local mailbox");
        let name = format!("{}-{}.json", uuid::Uuid::now_v7().simple(), message.kind);
        let written = std::fs::create_dir_all(&self.dir).and_then(|_| {
            std::fs::write(
                self.dir.join(name),
                serde_json::to_vec_pretty(&message).unwrap_or_default(),
            )
        });
        if let Err(e) = written {
            tracing::error!(error = %e, "could not write to the local mailbox");
        }
    }
}

/// Tests: messages kept in memory, newest last.
#[derive(Default)]
pub struct MemoryMailbox(Mutex<Vec<Message>>);

impl MemoryMailbox {
    pub fn messages(&self) -> Vec<Message> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// The token of the newest message of `kind` to `to`.
    pub fn last_token(&self, to: &str, kind: &str) -> Option<String> {
        self.messages()
            .into_iter()
            .rev()
            .find(|m| m.to == to && m.kind == kind)
            .map(|m| m.token)
    }
}

impl Mailer for MemoryMailbox {
    fn send(&self, message: Message) {
        if let Ok(mut messages) = self.0.lock() {
            messages.push(message);
        }
    }
}

/// The dashboard link for a token: `ESHTAREK_PUBLIC_URL` (default the local server's address)
/// followed by the dashboard route.
pub fn link(base: &str, route: &str, token: &str) -> String {
    format!("{}/#/{route}?token={token}", base.trim_end_matches('/'))
}
