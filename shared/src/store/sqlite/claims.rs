//! Idempotency claims on the embedded store: an append-only log, not random B-tree inserts.
//!
//! A claim's key is a hash (the idempotency key's), so storing claims as ordinary items puts
//! each one at a random place in the table's B-tree: every claim dirties its own page, which
//! SQLite writes to the WAL and back, and that write was most of the cost of a usage event.
//! Here claims are appended to `claims` in id order (one page fills before the next is
//! touched), and found again through segments:
//! - the active segment (the newest claims) and one being sealed are indexed in memory:
//!   hash -> id;
//! - a full segment (`segment_claims`, or older than `segment_age`) is sealed: its (hash, id)
//!   pairs are written sorted to `claim_index` under the segment's number (an append again),
//!   in small chunks between group commits, and it keeps only a Bloom filter in memory;
//! - a sealed segment whose claims have all expired is deleted, in chunks.
//!
//! A lookup checks the in-memory indexes, then each sealed segment's filter, and reads
//! `claim_index` only where a filter says "maybe" (about 1% of new keys per segment, and real
//! replays). Rows are compared on the full key, so hash collisions cost a read, never a wrong
//! answer. Claims are written in the same SQLite transaction as the rest of their request, and
//! a restart rebuilds the memory from the tables: sealed segments' filters from `claim_index`,
//! the tail of `claims` into the active index; a seal cut short is redone.
//!
//! Memory: about 40 bytes per claim in the two unsealed segments, 1.5 bytes per sealed claim.
//! Lookups cost one filter probe per sealed segment, so a day of claims should span tens of
//! segments (`segment_claims` × segments ≈ claims per day); past that, DynamoDB is the store.
//!
//! One file of about 600 lines on purpose: the log, its segments, their filters, sealing,
//! expiry and the rebuild after a restart keep one invariant together (every live claim is
//! found in exactly one of the places above), which is easier to check read in one piece.

use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension};
// Fx, not SipHash: the keys are already well-mixed hashes of keys that passed sha256.
use rustc_hash::FxHashMap as HashMap;

use super::rows::{backend, decode, sql_err};
use crate::store::{Item, Key, StoreError};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS claims (
    id INTEGER PRIMARY KEY,
    h INTEGER NOT NULL,
    pk TEXT NOT NULL,
    sk TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    attrs TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS claim_index (
    seg INTEGER NOT NULL,
    h INTEGER NOT NULL,
    id INTEGER NOT NULL,
    PRIMARY KEY (seg, h, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS claim_segments (
    seg INTEGER PRIMARY KEY,
    hi INTEGER NOT NULL,
    max_expires INTEGER NOT NULL
);
";

/// Rows written or deleted per maintenance step: small enough that a step between two group
/// commits adds a few tenths of a millisecond to the requests waiting for the next one (1,000
/// took 1.5 to 2.5 ms under load).
const CHUNK: usize = 250;

/// How segments are cut.
#[derive(Debug, Clone, Copy)]
pub struct ClaimSettings {
    /// Claims per segment before it is sealed.
    pub segment_claims: usize,
    /// A segment with claims is sealed once this old, even if not full.
    pub segment_age: Duration,
}

impl Default for ClaimSettings {
    fn default() -> Self {
        Self {
            segment_claims: 1_000_000,
            segment_age: Duration::from_secs(3600),
        }
    }
}

/// Hash of a claim's key: stable across releases and restarts (it is stored), FNV-1a over
/// `pk`, a separator and `sk`, then a 64-bit finalizer to spread the bits.
pub(super) fn key_hash(key: &Key) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key
        .pk
        .as_bytes()
        .iter()
        .chain(&[0xff])
        .chain(key.sk.as_bytes())
    {
        h ^= u64::from(*byte);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h) as i64
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A blocked Bloom filter: all of a key's bits sit in one 512-bit block (one cache line), about
/// 12 bits per key, 8 bits set: about 1% false positives.
struct Bloom {
    blocks: Vec<[u64; 8]>,
}

impl Bloom {
    fn with_capacity(keys: usize) -> Self {
        let blocks = (keys * 12).div_ceil(512).max(1);
        Self {
            blocks: vec![[0; 8]; blocks],
        }
    }

    fn bits(&self, h: i64) -> (usize, [u16; 8]) {
        let h = h as u64;
        let block = ((u128::from(h) * self.blocks.len() as u128) >> 64) as usize;
        let second = mix(h ^ 0x9e37_79b9_7f4a_7c15);
        let mut bits = [0u16; 8];
        for (i, bit) in bits.iter_mut().enumerate() {
            // 9 bits each (0..512), from the second hash and then the first.
            let source = if i < 7 { second >> (i * 9) } else { h >> 9 };
            *bit = (source & 511) as u16;
        }
        (block, bits)
    }

    fn insert(&mut self, h: i64) {
        let (block, bits) = self.bits(h);
        for bit in bits {
            self.blocks[block][usize::from(bit / 64)] |= 1 << (bit % 64);
        }
    }

    fn may_contain(&self, h: i64) -> bool {
        let (block, bits) = self.bits(h);
        bits.iter()
            .all(|bit| self.blocks[block][usize::from(bit / 64)] & (1 << (bit % 64)) != 0)
    }
}

/// Claims not yet sealed, indexed in memory. Two claims with one hash (a collision, or a key
/// claimed again after expiry) keep the newer in `latest` and the older in `older`.
struct Unsealed {
    lo: i64,
    latest: HashMap<i64, i64>,
    older: HashMap<i64, Vec<i64>>,
    /// Every (hash, id), in id order: what sealing sorts, without walking the maps.
    pairs: Vec<(i64, i64)>,
    max_expires: i64,
    started: Instant,
}

impl Unsealed {
    fn starting_at(lo: i64) -> Self {
        Self {
            lo,
            latest: HashMap::default(),
            older: HashMap::default(),
            pairs: Vec::new(),
            max_expires: i64::MIN,
            started: Instant::now(),
        }
    }

    fn insert(&mut self, h: i64, id: i64, expires: i64) -> Option<i64> {
        let previous = self.latest.insert(h, id);
        if let Some(previous) = previous {
            self.older.entry(h).or_default().push(previous);
        }
        self.pairs.push((h, id));
        self.max_expires = self.max_expires.max(expires);
        previous
    }

    /// Newest first.
    fn candidates(&self, h: i64, out: &mut Vec<i64>) {
        if let Some(id) = self.latest.get(&h) {
            out.push(*id);
            if let Some(older) = self.older.get(&h) {
                out.extend(older.iter().rev());
            }
        }
    }
}

/// A segment's pairs sorted by hash, and its Bloom filter: built on a thread of their own (a
/// million pairs take tens of milliseconds, which the writer would make every waiting request
/// wait).
type Sorted = (Vec<(i64, i64)>, Bloom);

fn sort_pairs(mut pairs: Vec<(i64, i64)>) -> Sorted {
    pairs.sort_unstable();
    let mut bloom = Bloom::with_capacity(pairs.len());
    pairs.iter().for_each(|(h, _)| bloom.insert(*h));
    (pairs, bloom)
}

struct Sealing {
    segment: Unsealed,
    hi: i64,
    /// The sorting thread, until it is done; then what it built.
    sorting: Option<std::thread::JoinHandle<Sorted>>,
    sorted: Option<Sorted>,
    written: usize,
}

impl Sealing {
    fn start(mut segment: Unsealed, hi: i64) -> Self {
        let pairs = std::mem::take(&mut segment.pairs);
        let (sorting, sorted) = match std::thread::Builder::new()
            .name("sqlite-claim-seal".into())
            .spawn(move || sort_pairs(pairs))
        {
            Ok(sorting) => (Some(sorting), None),
            Err(e) => {
                // The pairs went with the closure: gather them again from the maps.
                tracing::warn!(error = %e, "no thread to sort a claim segment; sorting here");
                let mut pairs = Vec::with_capacity(segment.latest.len());
                pairs.extend(segment.latest.iter().map(|(h, id)| (*h, *id)));
                for (h, ids) in &segment.older {
                    pairs.extend(ids.iter().map(|id| (*h, *id)));
                }
                (None, Some(sort_pairs(pairs)))
            }
        };
        Self {
            segment,
            hi,
            sorting,
            sorted,
            written: 0,
        }
    }

    /// The sorted pairs and filter, once the sorting thread is done.
    fn sorted(&mut self) -> Result<Option<&Sorted>, StoreError> {
        if let Some(sorting) = self.sorting.take_if(|s| s.is_finished()) {
            let sorted = sorting
                .join()
                .map_err(|_| backend("sorting a claim segment panicked"))?;
            self.sorted = Some(sorted);
        }
        Ok(self.sorted.as_ref())
    }
}

struct Sealed {
    seg: i64,
    hi: i64,
    max_expires: i64,
    bloom: Bloom,
}

/// A sealed segment being deleted: its claims first, then its index rows, then its row.
struct Expiring {
    seg: i64,
    hi: i64,
    next_id: i64,
}

/// A claim written by the current group, not yet in SQLite.
struct Pending {
    id: i64,
    h: i64,
    item: Item,
    expires: i64,
}

pub(super) struct ClaimLog {
    settings: ClaimSettings,
    next_id: i64,
    active: Unsealed,
    sealing: Option<Sealing>,
    sealed: Vec<Sealed>,
    expiring: Option<Expiring>,
    /// This group's claims, and what each replaced in the active index (to undo a rollback).
    pending: Vec<Pending>,
    replaced: Vec<Option<i64>>,
    /// How many of `pending` are already written (a purge in the group flushes early).
    flushed: usize,
}

/// A claim found for a key: its item, and when it expires.
pub(super) struct Found {
    pub item: Item,
    pub expires: i64,
}

impl ClaimLog {
    /// Rebuilds the in-memory indexes from the tables.
    pub(super) fn load(conn: &Connection, settings: ClaimSettings) -> Result<Self, StoreError> {
        conn.execute_batch(SCHEMA).map_err(sql_err)?;
        // A seal cut short by a stop: its index rows go, and its claims are indexed again.
        conn.execute(
            "DELETE FROM claim_index WHERE seg NOT IN (SELECT seg FROM claim_segments)",
            [],
        )
        .map_err(sql_err)?;
        let mut sealed = Vec::new();
        {
            let mut segments = conn
                .prepare("SELECT seg, hi, max_expires FROM claim_segments ORDER BY seg")
                .map_err(sql_err)?;
            let rows = segments
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(sql_err)?;
            let mut hashes = conn
                .prepare("SELECT h FROM claim_index WHERE seg = ?1")
                .map_err(sql_err)?;
            for row in rows {
                let (seg, hi, max_expires): (i64, i64, i64) = row.map_err(sql_err)?;
                let hs = hashes
                    .query_map(params![seg], |r| r.get::<_, i64>(0))
                    .map_err(sql_err)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(sql_err)?;
                let mut bloom = Bloom::with_capacity(hs.len());
                hs.iter().for_each(|h| bloom.insert(*h));
                sealed.push(Sealed {
                    seg,
                    hi,
                    max_expires,
                    bloom,
                });
            }
        }
        let tail_lo = sealed.last().map_or(i64::MIN, |s| s.hi + 1);
        let max_id: Option<i64> = conn
            .query_row("SELECT MAX(id) FROM claims", [], |r| r.get(0))
            .map_err(sql_err)?;
        let next_id = max_id.unwrap_or(0).max(sealed.last().map_or(0, |s| s.hi)) + 1;
        let mut active = Unsealed::starting_at(next_id);
        {
            let mut tail = conn
                .prepare("SELECT id, h, expires_at FROM claims WHERE id >= ?1 ORDER BY id")
                .map_err(sql_err)?;
            let rows = tail
                .query_map(params![tail_lo], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(sql_err)?;
            for row in rows {
                let (id, h, expires): (i64, i64, i64) = row.map_err(sql_err)?;
                if active.pairs.is_empty() {
                    active.lo = id;
                }
                active.insert(h, id, expires);
            }
        }
        Ok(Self {
            settings,
            next_id,
            active,
            sealing: None,
            sealed,
            expiring: None,
            pending: Vec::new(),
            replaced: Vec::new(),
            flushed: 0,
        })
    }

    /// The newest claim at `key`, expired or not.
    pub(super) fn find(&self, conn: &Connection, key: &Key) -> Result<Option<Found>, StoreError> {
        let h = key_hash(key);
        let mut ids = Vec::new();
        self.active.candidates(h, &mut ids);
        if let Some(sealing) = &self.sealing {
            sealing.segment.candidates(h, &mut ids);
        }
        if let Some(found) = self.first_match(conn, key, &ids)? {
            return Ok(Some(found));
        }
        for segment in self.sealed.iter().rev() {
            if !segment.bloom.may_contain(h) {
                continue;
            }
            let ids = conn
                .prepare_cached(
                    "SELECT id FROM claim_index WHERE seg = ?1 AND h = ?2 ORDER BY id DESC",
                )
                .and_then(|mut s| {
                    s.query_map(params![segment.seg, h], |r| r.get::<_, i64>(0))?
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(sql_err)?;
            if let Some(found) = self.first_match(conn, key, &ids)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The first of `ids` (newest first) whose claim is at `key`.
    fn first_match(
        &self,
        conn: &Connection,
        key: &Key,
        ids: &[i64],
    ) -> Result<Option<Found>, StoreError> {
        let first_pending = self.pending.first().map_or(i64::MAX, |p| p.id);
        for id in ids {
            if *id >= first_pending {
                let pending = &self.pending[(*id - first_pending) as usize];
                if pending.item.key == *key {
                    return Ok(Some(Found {
                        item: pending.item.clone(),
                        expires: pending.expires,
                    }));
                }
                continue;
            }
            let row: Option<(String, String, i64, String)> = conn
                .prepare_cached("SELECT pk, sk, expires_at, attrs FROM claims WHERE id = ?1")
                .and_then(|mut s| {
                    s.query_row(params![id], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                    })
                    .optional()
                })
                .map_err(sql_err)?;
            // A missing row was an expired claim being deleted.
            if let Some((pk, sk, expires, attrs)) = row {
                if pk == key.pk && sk == key.sk {
                    return Ok(Some(Found {
                        item: decode(key.clone(), &attrs)?,
                        expires,
                    }));
                }
            }
        }
        Ok(None)
    }

    /// Adds a claim for this group (written by [`ClaimLog::flush`]).
    pub(super) fn append(&mut self, item: Item) -> Result<(), StoreError> {
        let expires = item
            .ttl()
            .ok_or_else(|| StoreError::Invalid("a claim needs a TTL".into()))?;
        let h = key_hash(&item.key);
        let id = self.next_id;
        self.next_id += 1;
        self.replaced.push(self.active.insert(h, id, expires));
        self.pending.push(Pending {
            id,
            h,
            item,
            expires,
        });
        Ok(())
    }

    /// Writes this group's claims (inside the group's transaction).
    pub(super) fn flush(&mut self, conn: &Connection) -> Result<(), StoreError> {
        let mut insert = conn
            .prepare_cached(
                "INSERT INTO claims (id, h, pk, sk, expires_at, attrs) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(sql_err)?;
        for p in &self.pending[self.flushed..] {
            let attrs = serde_json::to_string(&p.item.attrs).map_err(|e| backend(e.to_string()))?;
            insert
                .execute(params![
                    p.id,
                    p.h,
                    p.item.key.pk,
                    p.item.key.sk,
                    p.expires,
                    attrs
                ])
                .map_err(sql_err)?;
        }
        self.flushed = self.pending.len();
        Ok(())
    }

    /// The group committed: its claims are in the tables.
    pub(super) fn committed(&mut self) {
        self.flushed = 0;
        self.pending.clear();
        self.replaced.clear();
    }

    /// The group was rolled back: forget its claims.
    pub(super) fn rolled_back(&mut self) {
        self.flushed = 0;
        for (p, replaced) in self.pending.drain(..).zip(self.replaced.drain(..)).rev() {
            self.active.pairs.pop();
            match replaced {
                Some(previous) => {
                    self.active.latest.insert(p.h, previous);
                    if let Some(older) = self.active.older.get_mut(&p.h) {
                        older.pop();
                        if older.is_empty() {
                            self.active.older.remove(&p.h);
                        }
                    }
                }
                None => {
                    self.active.latest.remove(&p.h);
                }
            }
            self.next_id = p.id;
        }
    }

    /// Whether sealing or deleting has work left (the writer then comes back soon).
    pub(super) fn has_work(&self, now_epoch: i64) -> bool {
        self.sealing.is_some()
            || self.expiring.is_some()
            || self.wants_seal()
            || self.sealed.iter().any(|s| s.max_expires < now_epoch)
    }

    fn wants_seal(&self) -> bool {
        let count = self.active.pairs.len();
        count >= self.settings.segment_claims
            || (count > 0 && self.active.started.elapsed() >= self.settings.segment_age)
    }

    /// One small step of sealing or deleting, in its own transaction. Between group commits.
    pub(super) fn maintain(
        &mut self,
        conn: &mut Connection,
        now_epoch: i64,
    ) -> Result<(), StoreError> {
        if self.sealing.is_none() && self.wants_seal() {
            let segment = std::mem::replace(&mut self.active, Unsealed::starting_at(self.next_id));
            self.sealing = Some(Sealing::start(segment, self.next_id - 1));
        }
        if self.expiring.is_none() {
            if let Some(pos) = self.sealed.iter().position(|s| s.max_expires < now_epoch) {
                let gone = self.sealed.remove(pos);
                self.expiring = Some(Expiring {
                    seg: gone.seg,
                    hi: gone.hi,
                    next_id: gone.seg,
                });
            }
        }
        let seal_ready = match self.sealing.as_mut() {
            Some(sealing) => sealing.sorted()?.is_some(),
            None => false,
        };
        if !seal_ready && self.expiring.is_none() {
            return Ok(());
        }
        let tx = conn.transaction().map_err(sql_err)?;
        let sealed_now = match self.sealing.as_mut().filter(|_| seal_ready) {
            Some(sealing) => seal_step(&tx, sealing)?,
            None => false,
        };
        let expired_now = match self.expiring.as_mut() {
            Some(expiring) => expire_step(&tx, expiring)?,
            None => false,
        };
        tx.commit().map_err(sql_err)?;
        if sealed_now {
            let mut sealing = self.sealing.take().expect("sealing");
            let (_, bloom) = sealing.sorted.take().expect("sealed from sorted pairs");
            self.sealed.push(Sealed {
                seg: sealing.segment.lo,
                hi: sealing.hi,
                max_expires: sealing.segment.max_expires,
                bloom,
            });
        }
        if expired_now {
            self.expiring = None;
        }
        Ok(())
    }
}

/// Writes the next chunk of a segment's index; the last one also records the segment.
fn seal_step(conn: &Connection, sealing: &mut Sealing) -> Result<bool, StoreError> {
    let seg = sealing.segment.lo;
    let Some((pairs, _)) = &sealing.sorted else {
        return Ok(false);
    };
    let end = (sealing.written + CHUNK).min(pairs.len());
    let mut insert = conn
        .prepare_cached("INSERT OR IGNORE INTO claim_index (seg, h, id) VALUES (?1, ?2, ?3)")
        .map_err(sql_err)?;
    for (h, id) in &pairs[sealing.written..end] {
        insert.execute(params![seg, h, id]).map_err(sql_err)?;
    }
    sealing.written = end;
    if end < pairs.len() {
        return Ok(false);
    }
    conn.execute(
        "INSERT INTO claim_segments (seg, hi, max_expires) VALUES (?1, ?2, ?3)",
        params![seg, sealing.hi, sealing.segment.max_expires],
    )
    .map_err(sql_err)?;
    Ok(true)
}

/// Deletes the next chunk of an expired segment: claims by id, then index rows, then the
/// segment's row.
fn expire_step(conn: &Connection, expiring: &mut Expiring) -> Result<bool, StoreError> {
    if expiring.next_id <= expiring.hi {
        let end = (expiring.next_id + CHUNK as i64).min(expiring.hi + 1);
        conn.execute(
            "DELETE FROM claims WHERE id >= ?1 AND id < ?2",
            params![expiring.next_id, end],
        )
        .map_err(sql_err)?;
        expiring.next_id = end;
        return Ok(false);
    }
    let deleted = conn
        .execute(
            "DELETE FROM claim_index WHERE seg = ?1 AND h IN
                 (SELECT h FROM claim_index WHERE seg = ?1 ORDER BY h LIMIT ?2)",
            params![expiring.seg, CHUNK as i64],
        )
        .map_err(sql_err)?;
    if deleted > 0 {
        return Ok(false);
    }
    conn.execute(
        "DELETE FROM claim_segments WHERE seg = ?1",
        params![expiring.seg],
    )
    .map_err(sql_err)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bloom_has_no_false_negatives_and_few_false_positives() {
        let mut bloom = Bloom::with_capacity(10_000);
        for i in 0..10_000 {
            bloom.insert(key_hash(&Key::new("T", format!("in{i}"))));
        }
        assert!((0..10_000).all(|i| bloom.may_contain(key_hash(&Key::new("T", format!("in{i}"))))));
        let false_positives = (0..10_000)
            .filter(|i| bloom.may_contain(key_hash(&Key::new("T", format!("out{i}")))))
            .count();
        assert!(false_positives < 300, "{false_positives} of 10000");
    }

    #[test]
    fn key_hash_separates_pk_from_sk() {
        assert_ne!(
            key_hash(&Key::new("ab", "c")),
            key_hash(&Key::new("a", "bc"))
        );
    }
}
