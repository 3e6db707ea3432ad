//! The embedded adapter: SQLite (bundled), durable on disk in WAL mode.
//!
//! One writer thread owns the only write connection and applies writes with group commit: it
//! drains every pending request into one SQLite transaction, evaluates each request's
//! conditions before it changes anything (so a refused request leaves no trace), commits once,
//! and only then answers the callers. Conditions are evaluated on the writer, so
//! check-and-write is atomic, and an acknowledged write is committed to the WAL (it survives a
//! kill of the process; with `synchronous=NORMAL` an OS crash may lose the last commits, which
//! `ESHTAREK_SQLITE_SYNC=full` trades for throughput). Reads run on a small pool of read
//! connections and see committed data.
//! Idempotency claims go to an append-only log of their own ([`claims`]).

mod claims;
mod rows;
mod wal;
mod writer;

pub use claims::ClaimSettings;

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;

use async_trait::async_trait;
use rusqlite::Connection;
use tokio::sync::oneshot;

use rows::{backend, load, run_query, sql_err};
use wal::{spawn_checkpointer, Wal};
use writer::{writer_loop, PURGE_EVERY};

use super::{
    validate_key, validate_query, validate_returning, validate_transaction, validate_write, Item,
    Key, Page, Query, Store, StoreError, WriteOp,
};

/// Most requests one group commit takes.
pub(super) const MAX_GROUP: usize = 512;
/// Read connections kept open for reuse.
const READ_POOL: usize = 8;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS items (
    pk TEXT NOT NULL,
    sk TEXT NOT NULL,
    gsi1pk TEXT,
    gsi1sk TEXT,
    expires_at INTEGER,
    attrs TEXT NOT NULL,
    PRIMARY KEY (pk, sk)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS items_gsi1 ON items (gsi1pk, gsi1sk, pk, sk)
    WHERE gsi1pk IS NOT NULL AND gsi1sk IS NOT NULL;
CREATE INDEX IF NOT EXISTS items_expiry ON items (expires_at) WHERE expires_at IS NOT NULL;
";

pub(super) enum Job {
    Write(WriteOp),
    /// The operations, and which one's post-image to answer with.
    Transaction(Vec<WriteOp>, Option<usize>),
    PurgeExpired(i64),
    /// The unexpired claim at a key (the claim indexes live on the writer).
    GetClaim(Key, i64),
}

pub(super) struct Request {
    job: Job,
    reply: oneshot::Sender<Result<Option<Item>, StoreError>>,
}

pub struct SqliteStore {
    path: PathBuf,
    writer: mpsc::Sender<Request>,
    readers: Mutex<Vec<Connection>>,
    /// Dropped with the store, which stops the checkpoint thread.
    _checkpointer: mpsc::Sender<()>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_purging_every(path, PURGE_EVERY)
    }

    /// [`SqliteStore::open`], deleting expired items every `purge_every` (tests shorten it).
    pub fn open_purging_every(
        path: impl AsRef<Path>,
        purge_every: std::time::Duration,
    ) -> Result<Self, StoreError> {
        Self::open_with(
            path,
            Tuning {
                purge_every,
                ..Tuning::default()
            },
        )
    }

    /// [`SqliteStore::open`] with other [`Tuning`] (tests make its cycles short).
    pub fn open_with(path: impl AsRef<Path>, tuning: Tuning) -> Result<Self, StoreError> {
        let Tuning {
            purge_every,
            claims,
            wal_restart_frames,
        } = tuning;
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| backend(format!("{}: {e}", dir.display())))?;
        }
        let conn = open_connection(&path)?;
        conn.execute_batch(SCHEMA).map_err(sql_err)?;
        // The writer never checkpoints: a checkpoint copies the WAL into the database and
        // syncs it, and on the writer that stalled every request of the group that crossed
        // the threshold. A thread of its own checkpoints instead (passive: it never blocks
        // the writer or readers).
        conn.execute_batch("PRAGMA wal_autocheckpoint=0;")
            .map_err(sql_err)?;
        let claims = claims::ClaimLog::load(&conn, claims)?;
        let wal = Arc::new(Wal {
            restart_frames: wal_restart_frames,
            ..Wal::default()
        });
        let checkpointer = spawn_checkpointer(&path, wal.clone())?;
        let (tx, rx) = mpsc::channel::<Request>();
        thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(conn, claims, rx, purge_every, &wal))
            .map_err(|e| backend(e.to_string()))?;
        Ok(Self {
            path,
            writer: tx,
            readers: Mutex::new(Vec::new()),
            _checkpointer: checkpointer,
        })
    }

    /// Deletes items whose TTL is before `now_epoch`; returns how many went.
    pub async fn purge_expired(&self, now_epoch: i64) -> Result<u64, StoreError> {
        let item = self.submit(Job::PurgeExpired(now_epoch)).await?;
        Ok(item.and_then(|i| i.decimal("count")).map_or(0, |d| {
            use rust_decimal::prelude::ToPrimitive;
            d.to_u64().unwrap_or(0)
        }))
    }

    async fn submit(&self, job: Job) -> Result<Option<Item>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(Request { job, reply })
            .map_err(|_| backend("sqlite writer stopped"))?;
        answer
            .await
            .map_err(|_| backend("sqlite writer dropped the request"))?
    }

    /// Runs a read on a pooled connection, inline on the calling task: a point read or a
    /// bounded page takes microseconds, far less than handing it to a blocking thread and back
    /// (which dominated the usage hot path in profiles).
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Connection) -> Result<T, StoreError>,
    {
        let pooled = self.readers.lock().ok().and_then(|mut p| p.pop());
        let conn = match pooled {
            Some(c) => c,
            None => open_connection(&self.path)?,
        };
        let result = f(&conn);
        // A connection left inside a transaction would pin its snapshot (stale reads, a WAL
        // that cannot be checkpointed): it is dropped, never pooled.
        if conn.is_autocommit() {
            if let Ok(mut p) = self.readers.lock() {
                if p.len() < READ_POOL {
                    p.push(conn);
                }
            }
        }
        result
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        let key = key.clone();
        self.read(move |conn| load(conn, &key)).await
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        super::validate_get_many(keys)?;
        self.read(|conn| {
            // One read transaction: one snapshot, and the WAL's read lock taken once rather
            // than per item (those lock calls are most of a point read's cost). BEGIN and
            // COMMIT as cached statements: rusqlite's transaction parses them every time.
            let run = |sql: &str| {
                conn.prepare_cached(sql)
                    .and_then(|mut statement| statement.execute([]))
                    .map_err(|e| StoreError::Backend(e.to_string()))
            };
            run("BEGIN DEFERRED")?;
            let items = keys
                .iter()
                .map(|key| load(conn, key))
                .collect::<Result<Vec<_>, _>>();
            let done = items.and_then(|items| run("COMMIT").map(|_| items));
            if done.is_err() {
                // Best effort; a connection still in a transaction is not pooled (`read`).
                let _ = run("ROLLBACK");
            }
            done
        })
        .await
    }

    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        validate_query(query)?;
        let query = query.clone();
        self.read(move |conn| run_query(conn, &query)).await
    }

    async fn write(&self, op: WriteOp) -> Result<Option<Item>, StoreError> {
        validate_write(&op, false)?;
        self.submit(Job::Write(op)).await
    }

    async fn transact(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        validate_transaction(&ops)?;
        self.submit(Job::Transaction(ops, None)).await.map(|_| ())
    }

    async fn transact_returning(
        &self,
        ops: Vec<WriteOp>,
        index: usize,
    ) -> Result<Option<Item>, StoreError> {
        validate_transaction(&ops)?;
        validate_returning(&ops, index)?;
        self.submit(Job::Transaction(ops, Some(index))).await
    }

    async fn get_claim(&self, key: &Key, now: i64) -> Result<Option<Item>, StoreError> {
        validate_key(key)?;
        self.submit(Job::GetClaim(key.clone(), now)).await
    }
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(sql_err)?;
    let sync = match std::env::var("ESHTAREK_SQLITE_SYNC").as_deref() {
        Ok("full") => "FULL",
        _ => "NORMAL",
    };
    conn.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous={sync}; PRAGMA busy_timeout=10000;
         PRAGMA mmap_size=268435456; PRAGMA journal_size_limit=67108864;"
    ))
    .map_err(sql_err)?;
    Ok(conn)
}

/// The adapter's cycles and sizes.
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    /// How often expired items are deleted.
    pub purge_every: std::time::Duration,
    /// How the claim log is cut into segments.
    pub claims: ClaimSettings,
    /// WAL frames (pages) past which the WAL is started over.
    pub wal_restart_frames: i64,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            purge_every: PURGE_EVERY,
            claims: ClaimSettings::default(),
            // About 32 MB.
            wal_restart_frames: 8_192,
        }
    }
}
