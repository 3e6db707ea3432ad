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

pub use claims::ClaimSettings;

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, ToSql};
use tokio::sync::oneshot;

use super::expr::apply_updates;
use super::{
    validate_key, validate_query, validate_returning, validate_transaction, validate_write,
    CancelReason, Index, Item, Key, Page, Position, Query, SortKeyCondition, Store, StoreError,
    WriteOp,
};

/// Most requests one group commit takes.
const MAX_GROUP: usize = 512;
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

enum Job {
    Write(WriteOp),
    /// The operations, and which one's post-image to answer with.
    Transaction(Vec<WriteOp>, Option<usize>),
    PurgeExpired(i64),
    /// The unexpired claim at a key (the claim indexes live on the writer).
    GetClaim(Key, i64),
}

struct Request {
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
        if let Ok(mut p) = self.readers.lock() {
            if p.len() < READ_POOL {
                p.push(conn);
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

/// How often the WAL is copied into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// What the checkpoint thread and the writer share: whether the writer should finish the last
/// pass off (the WAL is large), and a lock so only one of them checkpoints at a time.
#[derive(Default)]
struct Wal {
    catch_up: std::sync::atomic::AtomicBool,
    checkpointing: Mutex<()>,
    /// Past this many frames the WAL is started over.
    restart_frames: i64,
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

/// Starts the thread that checkpoints the WAL until the returned sender is dropped. Its
/// checkpoints are passive: they copy the WAL into the database without blocking anyone.
fn spawn_checkpointer(path: &Path, wal: Arc<Wal>) -> Result<mpsc::Sender<()>, StoreError> {
    let conn = open_connection(path)?;
    let (stop, stopped) = mpsc::channel::<()>();
    thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY)
            {
                let _turn = wal.checkpointing.lock();
                match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1)) {
                    Ok(frames) if frames > wal.restart_frames => wal
                        .catch_up
                        .store(true, std::sync::atomic::Ordering::Relaxed),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; retried"),
                }
            }
        })
        .map_err(|e| backend(e.to_string()))?;
    Ok(stop)
}

/// Under a steady stream of commits a passive checkpoint never catches up with the last frame,
/// and SQLite only starts the WAL over (at the next write) once one has. So once the WAL is
/// large, right after the checkpoint thread's pass, the writer checkpoints passively itself
/// between two groups: it is the only writer, so it copies everything left (what was committed
/// since that pass), and its next transaction starts the WAL over; if a reader is still on an
/// older snapshot, the next pass tries again. It never waits for readers (a restarting
/// checkpoint could, in SQLite's busy handler, which sleeps in steps of milliseconds). It still
/// costs the writer the checkpoint's syncs: 5 to 9 ms measured here (ext4), twice a second at
/// 50,000 events/s: the largest stall left on the usage hot path (docs/usage.md).
fn catch_up_wal(conn: &Connection, wal: &Wal) {
    use std::sync::atomic::Ordering::Relaxed;
    if !wal.catch_up.load(Relaxed) {
        return;
    }
    let Ok(_turn) = wal.checkpointing.try_lock() else {
        return;
    };
    wal.catch_up.store(false, Relaxed);
    let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
    if let Err(e) = done {
        tracing::warn!(error = %e, "WAL checkpoint failed; retried");
    }
}

/// How often the writer deletes items whose TTL has passed (DynamoDB's TTL does this on AWS;
/// like it, deletion may lag expiry, and readers check expiry themselves).
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

fn writer_loop(
    mut conn: Connection,
    mut claims: claims::ClaimLog,
    requests: mpsc::Receiver<Request>,
    purge_every: std::time::Duration,
    wal: &Wal,
) {
    let mut last_purge = std::time::Instant::now();
    let mut cache = ItemCache::default();
    loop {
        let now = epoch_now();
        // Sealing and deleting claims go on in small steps while there is work.
        let wait = if claims.has_work(now) {
            std::time::Duration::from_millis(5)
        } else {
            purge_every
        };
        match requests.recv_timeout(wait) {
            Ok(first) => {
                let mut group = vec![first];
                while group.len() < MAX_GROUP {
                    match requests.try_recv() {
                        Ok(request) => group.push(request),
                        Err(_) => break,
                    }
                }
                let results = run_group(&mut conn, &mut claims, &mut cache, &group);
                for (request, result) in group.into_iter().zip(results) {
                    // A caller that gave up has dropped its receiver; its write stands.
                    let _ = request.reply.send(result);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        catch_up_wal(&conn, wal);
        if let Err(error) = claims.maintain(&mut conn, epoch_now()) {
            tracing::warn!(%error, "sealing or deleting claims failed; retried later");
        }
        if last_purge.elapsed() >= purge_every {
            last_purge = std::time::Instant::now();
            cache.clear();
            if let Err(e) = delete_expired_items(&conn, epoch_now()) {
                tracing::warn!(error = %e, "purging expired items failed");
            }
        }
    }
}

fn epoch_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

type WriteResult = Result<Option<Item>, StoreError>;

/// Items the writer has read or written, kept across groups: the writer is the only
/// connection of this process that writes, so what it last wrote is what is stored. Another
/// process writing the file (the `admin` command beside a running server) changes SQLite's
/// `data_version`, checked at the start of every group; then the cache starts over, as it does
/// after a rolled-back group, a purge, or past `MAX_CACHED` items.
#[derive(Default)]
struct ItemCache {
    /// Each item as the writer knows it (`None`: known absent), and whether the current group
    /// changed it. Fx hashing: keys come from this process's own writes.
    items: rustc_hash::FxHashMap<Key, (Option<Item>, bool)>,
    data_version: Option<i64>,
}

/// Items the writer keeps between groups (the counters, rollups and subscriptions of active
/// tenants); past this it starts over (a miss costs one read).
const MAX_CACHED: usize = 20_000;

impl ItemCache {
    /// Drops everything if another connection committed since this one last looked.
    fn check_version(&mut self, conn: &Connection) -> Result<(), StoreError> {
        let version: i64 = conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .map_err(sql_err)?;
        if self.data_version != Some(version) {
            self.items.clear();
            self.data_version = Some(version);
        }
        Ok(())
    }

    fn clear(&mut self) {
        self.items.clear();
    }
}

/// The items a group works on: read from SQLite once, changed in memory by each request in
/// turn (requests of one group commit often touch the same items: a counter, its rollups, the
/// subscription they check), and each distinct changed item written once, at the end of the
/// group.
struct Overlay<'c> {
    conn: &'c Connection,
    claims: &'c mut claims::ClaimLog,
    items: &'c mut rustc_hash::FxHashMap<Key, (Option<Item>, bool)>,
    /// The keys this group changed, in order (flushed without walking the whole cache), each
    /// with the index columns of its stored row (`None`: no row).
    dirty: Vec<(Key, Option<RowShape>)>,
}

/// The columns of a stored row that SQLite indexes besides the key.
#[derive(PartialEq)]
struct RowShape {
    gsi1: Option<(String, String)>,
    ttl: Option<i64>,
}

impl RowShape {
    fn of(item: &Item) -> Self {
        Self {
            gsi1: item.gsi1().map(|(pk, sk)| (pk.to_owned(), sk.to_owned())),
            ttl: item.ttl(),
        }
    }

    fn matches(&self, item: &Item) -> bool {
        self.ttl == item.ttl()
            && self
                .gsi1
                .as_ref()
                .map(|(pk, sk)| (pk.as_str(), sk.as_str()))
                == item.gsi1()
    }
}

impl<'c> Overlay<'c> {
    fn new(
        conn: &'c Connection,
        claims: &'c mut claims::ClaimLog,
        cache: &'c mut ItemCache,
    ) -> Self {
        Self {
            conn,
            claims,
            items: &mut cache.items,
            dirty: Vec::new(),
        }
    }

    fn load(&mut self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.ensure(key)?;
        Ok(self.peek(key).cloned())
    }

    /// Reads the item into the group's view if it is not there yet.
    fn ensure(&mut self, key: &Key) -> Result<(), StoreError> {
        if !self.items.contains_key(key) {
            let loaded = load(self.conn, key)?;
            self.items.insert(key.clone(), (loaded, false));
        }
        Ok(())
    }

    /// The item as the group sees it (after [`Overlay::ensure`]), without copying it.
    fn peek(&self, key: &Key) -> Option<&Item> {
        self.items.get(key).and_then(|(item, _)| item.as_ref())
    }

    fn set(&mut self, key: Key, value: Option<Item>) {
        match self.items.get(&key) {
            Some((_, true)) => {}
            // First change in this group: what is stored is what the cache holds.
            stored => {
                let shape = stored.and_then(|(item, _)| item.as_ref()).map(RowShape::of);
                self.dirty.push((key.clone(), shape));
            }
        }
        self.items.insert(key, (value, true));
    }

    /// What an operation's condition is evaluated on: the item, or for a claim the live claim.
    fn current(&mut self, op: &WriteOp) -> Result<Option<Item>, StoreError> {
        match op {
            WriteOp::Claim { item, now, .. } => self.live_claim(&item.key, *now),
            _ => self.load(op.key()),
        }
    }

    /// The claim at `key` as a claim operation sees it: present only while unexpired.
    fn live_claim(&self, key: &Key, now: i64) -> Result<Option<Item>, StoreError> {
        Ok(self
            .claims
            .find(self.conn, key)?
            .filter(|found| found.expires >= now)
            .map(|found| found.item))
    }

    /// Writes every changed item to SQLite (inside the group's transaction).
    fn flush(&mut self) -> Result<(), StoreError> {
        self.claims.flush(self.conn)?;
        for (key, stored) in std::mem::take(&mut self.dirty) {
            if let Some((item, changed)) = self.items.get_mut(&key) {
                *changed = false;
                match (item, stored) {
                    // Same index columns (a counter or rollup adding up): rewrite the
                    // attributes only, leaving the index rows and their pages alone.
                    (Some(item), Some(shape)) if shape.matches(item) => {
                        store_attrs(self.conn, item)?
                    }
                    (Some(item), _) => store(self.conn, item)?,
                    (None, _) => delete(self.conn, &key)?,
                }
            }
        }
        Ok(())
    }
}

/// Runs a group of requests in one SQLite transaction. Each request's conditions are evaluated
/// and its new items computed before it changes anything (seeing what earlier requests of the
/// group wrote), so a refused request leaves no trace and needs no savepoint. A failure of
/// SQLite itself fails the whole group, and nothing of it is committed.
fn run_group(
    conn: &mut Connection,
    claims: &mut claims::ClaimLog,
    cache: &mut ItemCache,
    group: &[Request],
) -> Vec<WriteResult> {
    match run_group_in_transaction(conn, claims, cache, group) {
        Ok(results) => {
            claims.committed();
            if cache.items.len() > MAX_CACHED {
                cache.clear();
            }
            results
        }
        Err(error) => {
            claims.rolled_back();
            cache.clear();
            group.iter().map(|_| Err(error.clone())).collect()
        }
    }
}

fn run_group_in_transaction(
    conn: &mut Connection,
    claims: &mut claims::ClaimLog,
    cache: &mut ItemCache,
    group: &[Request],
) -> Result<Vec<WriteResult>, StoreError> {
    let failed = |error: StoreError| {
        tracing::error!(%error, "sqlite write failed; the group is rolled back");
        error
    };
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sql_err)?;
    // Holding the write lock now: nobody else can commit until this group is done.
    cache.check_version(&tx)?;
    let mut results = Vec::with_capacity(group.len());
    {
        let mut overlay = Overlay::new(&tx, claims, cache);
        for request in group {
            match run_job(&mut overlay, &request.job) {
                Err(StoreError::Backend(message)) => return Err(failed(backend(message))),
                other => results.push(other),
            }
        }
        overlay.flush().map_err(failed)?;
    }
    tx.commit().map_err(|e| failed(sql_err(e)))?;
    Ok(results)
}

/// Checks a request's conditions, computes its writes, and only then applies them (to the
/// overlay). Answers with the written item (a write) or the wanted post-image (a transaction).
fn run_job(overlay: &mut Overlay<'_>, job: &Job) -> WriteResult {
    match job {
        Job::Write(op) => {
            let current = overlay.current(op)?;
            if !holds(op, current.as_ref()) {
                return Err(StoreError::ConditionFailed {
                    current: current.map(Box::new),
                });
            }
            if let WriteOp::Claim { item, .. } = op {
                overlay.claims.append(item.clone())?;
                return Ok(Some(item.clone()));
            }
            let after = effect_of(op, current.as_ref())?;
            let answer = after.clone().flatten();
            if let Some(after) = after {
                overlay.set(op.key().clone(), after);
            }
            Ok(answer)
        }
        Job::Transaction(ops, wanted) => {
            // Conditions see the state before the transaction (keys are distinct). Items are
            // read into the group's view first and then only borrowed: no copy per operation.
            let mut claims = Vec::with_capacity(ops.len());
            for op in ops {
                claims.push(match op {
                    WriteOp::Claim { item, now, .. } => overlay.live_claim(&item.key, *now)?,
                    _ => {
                        overlay.ensure(op.key())?;
                        None
                    }
                });
            }
            let current = |i: usize, op: &WriteOp| match op {
                WriteOp::Claim { .. } => claims[i].as_ref(),
                _ => overlay.peek(op.key()),
            };
            let failed = ops
                .iter()
                .enumerate()
                .any(|(i, op)| !holds(op, current(i, op)));
            if failed {
                let reasons = ops
                    .iter()
                    .enumerate()
                    .map(|(i, op)| match current(i, op) {
                        c if holds(op, c) => CancelReason::None,
                        c => CancelReason::ConditionFailed {
                            current: c.cloned().map(Box::new),
                        },
                    })
                    .collect();
                return Err(StoreError::TransactionCancelled { reasons });
            }
            let afters = ops
                .iter()
                .enumerate()
                .map(|(i, op)| effect_of(op, current(i, op)))
                .collect::<Result<Vec<_>, _>>()?;
            for op in ops {
                if let WriteOp::Claim { item, stamp, .. } = op {
                    let mut item = item.clone();
                    if let Some(stamp) = stamp {
                        let value = afters
                            .get(stamp.from)
                            .and_then(|after| after.as_ref()?.as_ref()?.get(&stamp.attr).cloned());
                        if let Some(value) = value {
                            item.attrs.insert(stamp.attr.clone(), value);
                        }
                    }
                    overlay.claims.append(item)?;
                }
            }
            let mut answer = None;
            for (i, (op, after)) in ops.iter().zip(afters).enumerate() {
                if *wanted == Some(i) {
                    answer = after.as_ref().and_then(Option::as_ref).cloned();
                }
                if let Some(after) = after {
                    overlay.set(op.key().clone(), after);
                }
            }
            Ok(answer)
        }
        Job::GetClaim(key, now) => overlay.live_claim(key, *now),
        Job::PurgeExpired(now) => {
            // Straight to SQLite: write what the group holds first, then forget it.
            overlay.flush()?;
            overlay.items.clear();
            let count = delete_expired_items(overlay.conn, *now)?;
            Ok(Some(
                Item::new(Key::new("purge", "purge")).with("count", count as i64),
            ))
        }
    }
}

/// What an operation leaves behind: `Some(Some(item))` stored, `Some(None)` deleted, `None`
/// unchanged (a check).
fn effect_of(op: &WriteOp, current: Option<&Item>) -> Result<Option<Option<Item>>, StoreError> {
    Ok(match op {
        WriteOp::Put { item, .. } => Some(Some(item.clone())),
        WriteOp::Update { key, actions, .. } => Some(Some(
            apply_updates(key, current, actions).map_err(StoreError::Invalid)?,
        )),
        WriteOp::Delete { .. } => Some(None),
        // Claims are written to their log by the caller.
        WriteOp::Check { .. } | WriteOp::Claim { .. } => None,
    })
}

/// Whether an operation's condition holds on `current` (a claim's: no live claim).
fn holds(op: &WriteOp, current: Option<&Item>) -> bool {
    match op {
        WriteOp::Claim { .. } => current.is_none(),
        _ => op.condition().is_none_or(|c| c.evaluate(current)),
    }
}

/// Deletes items whose TTL is before `now` (the periodic purge and `purge_expired`).
fn delete_expired_items(conn: &Connection, now: i64) -> Result<usize, StoreError> {
    conn.execute(
        "DELETE FROM items WHERE expires_at IS NOT NULL AND expires_at < ?1",
        params![now],
    )
    .map_err(sql_err)
}

fn delete(conn: &Connection, key: &Key) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM items WHERE pk = ?1 AND sk = ?2")
        .and_then(|mut s| s.execute(params![key.pk, key.sk]))
        .map_err(sql_err)?;
    Ok(())
}

fn store(conn: &Connection, item: &Item) -> Result<(), StoreError> {
    let attrs = serde_json::to_string(&item.attrs).map_err(|e| backend(e.to_string()))?;
    let gsi1 = item.gsi1();
    conn.prepare_cached(
        "INSERT INTO items (pk, sk, gsi1pk, gsi1sk, expires_at, attrs) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (pk, sk) DO UPDATE SET gsi1pk = excluded.gsi1pk, gsi1sk = excluded.gsi1sk,
             expires_at = excluded.expires_at, attrs = excluded.attrs",
    )
    .and_then(|mut s| {
        s.execute(params![
            item.key.pk,
            item.key.sk,
            gsi1.map(|g| g.0),
            gsi1.map(|g| g.1),
            item.ttl(),
            attrs
        ])
    })
    .map_err(sql_err)?;
    Ok(())
}

/// Rewrites a stored row's attributes (its index columns unchanged).
fn store_attrs(conn: &Connection, item: &Item) -> Result<(), StoreError> {
    let attrs = serde_json::to_string(&item.attrs).map_err(|e| backend(e.to_string()))?;
    let updated = conn
        .prepare_cached("UPDATE items SET attrs = ?3 WHERE pk = ?1 AND sk = ?2")
        .and_then(|mut s| s.execute(params![item.key.pk, item.key.sk, attrs]))
        .map_err(sql_err)?;
    if updated == 1 {
        Ok(())
    } else {
        Err(backend(format!(
            "the writer's cache held a row that is not stored: {:?}",
            item.key
        )))
    }
}

fn load(conn: &Connection, key: &Key) -> Result<Option<Item>, StoreError> {
    let attrs: Option<String> = conn
        .prepare_cached("SELECT attrs FROM items WHERE pk = ?1 AND sk = ?2")
        .and_then(|mut s| {
            s.query_row(params![key.pk, key.sk], |row| row.get(0))
                .optional()
        })
        .map_err(sql_err)?;
    attrs.map(|a| decode(key.clone(), &a)).transpose()
}

fn decode(key: Key, attrs: &str) -> Result<Item, StoreError> {
    let attrs = serde_json::from_str(attrs).map_err(|e| backend(format!("corrupt item: {e}")))?;
    Ok(Item { key, attrs })
}

fn run_query(conn: &Connection, query: &Query) -> Result<Page, StoreError> {
    let (pcol, scol) = match query.index {
        Index::Table => ("pk", "sk"),
        Index::Gsi1 => ("gsi1pk", "gsi1sk"),
    };
    let mut sql = format!("SELECT pk, sk, attrs FROM items WHERE {pcol} = ?");
    let mut args: Vec<Box<dyn ToSql>> = vec![Box::new(query.pk.clone())];
    if query.index == Index::Gsi1 {
        sql.push_str(" AND gsi1sk IS NOT NULL");
    }
    if let Some(condition) = &query.sk {
        push_sort_condition(&mut sql, &mut args, scol, condition);
    }
    let (op, dir) = if query.descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    if let Some(cursor) = &query.cursor {
        let position = Position::decode(cursor, query.index, &query.pk)?;
        match (query.index, position.gsi1) {
            (Index::Table, _) => {
                sql.push_str(&format!(" AND sk {op} ?"));
                args.push(Box::new(position.sk));
            }
            (Index::Gsi1, Some((_, gsk))) => {
                sql.push_str(&format!(" AND (gsi1sk, pk, sk) {op} (?, ?, ?)"));
                args.push(Box::new(gsk));
                args.push(Box::new(position.pk));
                args.push(Box::new(position.sk));
            }
            (Index::Gsi1, None) => return Err(StoreError::InvalidCursor),
        }
    }
    match query.index {
        Index::Table => sql.push_str(&format!(" ORDER BY sk {dir}")),
        Index::Gsi1 => sql.push_str(&format!(" ORDER BY gsi1sk {dir}, pk {dir}, sk {dir}")),
    }
    sql.push_str(" LIMIT ?");
    args.push(Box::new(i64::from(query.limit) + 1));

    let mut statement = conn.prepare_cached(&sql).map_err(sql_err)?;
    let params: Vec<&dyn ToSql> = args.iter().map(|a| a.as_ref()).collect();
    let rows = statement
        .query_map(params.as_slice(), |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
            ))
        })
        .map_err(sql_err)?;
    let mut items = Vec::new();
    for row in rows {
        let (pk, sk, attrs) = row.map_err(sql_err)?;
        items.push(decode(Key { pk, sk }, &attrs)?);
    }
    let limit = query.limit as usize;
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|i| Position::of(i, query.index).encode())
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

fn push_sort_condition(
    sql: &mut String,
    args: &mut Vec<Box<dyn ToSql>>,
    col: &str,
    condition: &SortKeyCondition,
) {
    let mut bind = |sql: &mut String, clause: &str, value: &str| {
        sql.push_str(&format!(" AND {col} {clause} ?"));
        args.push(Box::new(value.to_owned()));
    };
    match condition {
        SortKeyCondition::Eq(v) => bind(sql, "=", v),
        SortKeyCondition::Lt(v) => bind(sql, "<", v),
        SortKeyCondition::Le(v) => bind(sql, "<=", v),
        SortKeyCondition::Gt(v) => bind(sql, ">", v),
        SortKeyCondition::Ge(v) => bind(sql, ">=", v),
        SortKeyCondition::Between(a, b) => {
            bind(sql, ">=", a);
            bind(sql, "<=", b);
        }
        SortKeyCondition::BeginsWith(prefix) => {
            // A range, so the index is used: [prefix, successor(prefix)).
            bind(sql, ">=", prefix);
            if let Some(upper) = prefix_successor(prefix) {
                bind(sql, "<", &upper);
            }
        }
    }
}

/// The smallest string greater than every string that starts with `prefix` (in code point
/// order, which is UTF-8 byte order); `None` when there is none.
fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (last as u32 + 1..=char::MAX as u32).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

fn sql_err(e: rusqlite::Error) -> StoreError {
    backend(e.to_string())
}

fn backend(message: impl Into<String>) -> StoreError {
    StoreError::Backend(message.into())
}

#[cfg(test)]
mod tests {
    use super::prefix_successor;

    #[test]
    fn prefix_successor_bounds_the_prefix_range() {
        assert_eq!(prefix_successor("ab").as_deref(), Some("ac"));
        assert_eq!(prefix_successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_successor("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(prefix_successor(""), None);
        assert_eq!(prefix_successor("\u{10FFFF}"), None);
    }
}
