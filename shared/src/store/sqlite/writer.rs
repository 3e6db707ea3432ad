//! The one writer thread: group commit of every pending request in one SQLite transaction,
//! each request's conditions evaluated against an overlay of the group's earlier writes
//! before it changes anything, a cache of recently written items, and the TTL purge.

use std::sync::mpsc;

use rusqlite::Connection;

use crate::store::expr::apply_updates;
use crate::store::{CancelReason, Item, Key, StoreError, WriteOp};

use super::rows::{backend, delete, delete_expired_items, load, sql_err, store, store_attrs};
use super::wal::{catch_up_wal, Wal};
use super::{claims, Job, Request, MAX_GROUP};

/// How often the writer deletes items whose TTL has passed (DynamoDB's TTL does this on AWS;
/// like it, deletion may lag expiry, and readers check expiry themselves).
pub(super) const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

pub(super) fn writer_loop(
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

pub(super) fn epoch_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

pub(super) type WriteResult = Result<Option<Item>, StoreError>;

/// Items the writer has read or written, kept across groups: the writer is the only
/// connection of this process that writes, so what it last wrote is what is stored. Another
/// process writing the file (the `admin` command beside a running server) changes SQLite's
/// `data_version`, checked at the start of every group; then the cache starts over, as it does
/// after a rolled-back group, a purge, or past `MAX_CACHED` items.
#[derive(Default)]
pub(super) struct ItemCache {
    /// Each item as the writer knows it (`None`: known absent), and whether the current group
    /// changed it. Fx hashing: keys come from this process's own writes.
    items: rustc_hash::FxHashMap<Key, (Option<Item>, bool)>,
    data_version: Option<i64>,
}

/// Items the writer keeps between groups (the counters, rollups and subscriptions of active
/// tenants); past this it starts over (a miss costs one read).
pub(super) const MAX_CACHED: usize = 20_000;

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
pub(super) struct Overlay<'c> {
    conn: &'c Connection,
    claims: &'c mut claims::ClaimLog,
    items: &'c mut rustc_hash::FxHashMap<Key, (Option<Item>, bool)>,
    /// The keys this group changed, in order (flushed without walking the whole cache), each
    /// with the index columns of its stored row (`None`: no row).
    dirty: Vec<(Key, Option<RowShape>)>,
}

/// The columns of a stored row that SQLite indexes besides the key.
#[derive(PartialEq)]
pub(super) struct RowShape {
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
pub(super) fn run_group(
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

pub(super) fn run_group_in_transaction(
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
pub(super) fn run_job(overlay: &mut Overlay<'_>, job: &Job) -> WriteResult {
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
pub(super) fn effect_of(
    op: &WriteOp,
    current: Option<&Item>,
) -> Result<Option<Option<Item>>, StoreError> {
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
pub(super) fn holds(op: &WriteOp, current: Option<&Item>) -> bool {
    match op {
        WriteOp::Claim { .. } => current.is_none(),
        _ => op.condition().is_none_or(|c| c.evaluate(current)),
    }
}
