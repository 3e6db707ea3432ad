//! In-process caches that keep reads off the usage write path.
//!
//! None of them is trusted on its own: every fact taken from a cache is re-checked inside the
//! write transaction that depends on it, so a stale entry costs a retry, never a wrong count.
//! - API keys: a revoked key fails the transaction's check on its lookup item.
//! - Plan versions: immutable once written.
//! - Limits: plan versions are immutable, and the subscription's `rev` (bumped by every
//!   change: plan, period, status, live pointer) is checked in the transaction.
//! - Sent warning markers: a marker, once written, is never removed, so "already sent" stays
//!   true.
//! - The upgrade hint on a 402 is advice, not a decision: cached for a couple of seconds and
//!   dropped when this process changes a plan.
//!
//! - Rate limit buckets: an instance's leased permits and remembered refusals
//!   (`rate_limits`), each bound by the stored times it was taken from.
//! - A tenant's rate for Eshtarek's own API: advice read from its plan, kept for
//!   [`API_RATE_TTL`], so a plan change's new rate reaches every instance within that time.
//!
//! This holds across processes too (each Lambda instance has its own caches).

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::api_keys::CachedKey;
use super::rate_limits::LocalHandle;
use crate::entitlements::Limits;
use crate::plans::rates::RateLimit;
use crate::plans::VersionTerms;

/// Entries kept per cache; past this a cache starts over (cheaper than eviction bookkeeping,
/// and a miss only costs a read).
const MAX_ENTRIES: usize = 50_000;
const HINT_TTL: Duration = Duration::from_secs(2);
/// How long a tenant's API rate (from its plan) is kept before it is read again.
pub const API_RATE_TTL: Duration = Duration::from_secs(5);

/// A tenant's own-API windows as last read, with when.
type ApiRate = (Instant, Option<Arc<Vec<RateLimit>>>);

struct Bounded<K, V>(Mutex<HashMap<K, V>>);

impl<K: Eq + Hash, V: Clone> Bounded<K, V> {
    fn new() -> Self {
        Self(Mutex::new(HashMap::new()))
    }

    fn get(&self, key: &K) -> Option<V> {
        self.0.lock().ok()?.get(key).cloned()
    }

    fn insert(&self, key: K, value: V) {
        if let Ok(mut map) = self.0.lock() {
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
            map.insert(key, value);
        }
    }

    fn remove(&self, key: &K) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(key);
        }
    }
}

/// An upgrade hint by (metric, amount needed), with when it was looked up.
type Hints = HashMap<(String, u64), (Instant, Option<serde_json::Value>)>;

pub struct HotCache {
    keys: Bounded<String, Arc<CachedKey>>,
    /// Plan versions never change once written: a cached one is always right.
    versions: Bounded<(String, u32), Arc<VersionTerms>>,
    limits: Bounded<String, Arc<Limits>>,
    sent: Mutex<HashSet<String>>,
    hint: Mutex<Hints>,
    rates: Bounded<(String, String), LocalHandle>,
    api_rates: Bounded<String, ApiRate>,
}

impl Default for HotCache {
    fn default() -> Self {
        Self {
            keys: Bounded::new(),
            versions: Bounded::new(),
            limits: Bounded::new(),
            sent: Mutex::new(HashSet::new()),
            hint: Mutex::new(HashMap::new()),
            rates: Bounded::new(),
            api_rates: Bounded::new(),
        }
    }
}

impl HotCache {
    pub(crate) fn key(&self, prefix: &str) -> Option<Arc<CachedKey>> {
        self.keys.get(&prefix.to_owned())
    }

    pub(crate) fn remember_key(&self, prefix: &str, key: Arc<CachedKey>) {
        self.keys.insert(prefix.to_owned(), key);
    }

    pub(crate) fn forget_key(&self, prefix: &str) {
        self.keys.remove(&prefix.to_owned());
    }

    pub(crate) fn version(&self, plan_id: &str, version: u32) -> Option<Arc<VersionTerms>> {
        self.versions.get(&(plan_id.to_owned(), version))
    }

    pub(crate) fn remember_version(&self, plan_id: &str, version: u32, terms: Arc<VersionTerms>) {
        self.versions.insert((plan_id.to_owned(), version), terms);
    }

    pub(crate) fn limits(&self, tenant: &str) -> Option<Arc<Limits>> {
        self.limits.get(&tenant.to_owned())
    }

    pub(crate) fn remember_limits(&self, tenant: &str, limits: Arc<Limits>) {
        self.limits.insert(tenant.to_owned(), limits);
    }

    pub(crate) fn forget_limits(&self, tenant: &str) {
        self.limits.remove(&tenant.to_owned());
        self.api_rates.remove(&tenant.to_owned());
    }

    pub(crate) fn was_sent(&self, marker: &str) -> bool {
        self.sent.lock().is_ok_and(|s| s.contains(marker))
    }

    pub(crate) fn mark_sent(&self, marker: String) {
        if let Ok(mut sent) = self.sent.lock() {
            if sent.len() >= MAX_ENTRIES {
                sent.clear();
            }
            sent.insert(marker);
        }
    }

    pub(crate) fn hint(&self, metric: &str, needed: u64) -> Option<Option<serde_json::Value>> {
        let hints = self.hint.lock().ok()?;
        let (at, hint) = hints.get(&(metric.to_owned(), needed))?;
        (at.elapsed() < HINT_TTL).then(|| hint.clone())
    }

    pub(crate) fn remember_hint(&self, metric: &str, needed: u64, hint: Option<serde_json::Value>) {
        if let Ok(mut hints) = self.hint.lock() {
            if hints.len() >= 1_000 {
                hints.clear();
            }
            hints.insert((metric.to_owned(), needed), (Instant::now(), hint));
        }
    }

    /// This instance's memory of `tenant`'s `bucket` (created empty on first use).
    pub(crate) fn rate_bucket(&self, tenant: &str, bucket: &str) -> LocalHandle {
        let key = (tenant.to_owned(), bucket.to_owned());
        if let Some(found) = self.rates.get(&key) {
            return found;
        }
        let Ok(mut map) = self.rates.0.lock() else {
            return LocalHandle::default();
        };
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.entry(key).or_default().clone()
    }

    /// `tenant`'s API rate windows if read within [`API_RATE_TTL`] (`Some(None)`: none).
    pub(crate) fn api_rate(&self, tenant: &str) -> Option<Option<Arc<Vec<RateLimit>>>> {
        let (at, rate) = self.api_rates.get(&tenant.to_owned())?;
        (at.elapsed() < API_RATE_TTL).then_some(rate)
    }

    pub(crate) fn remember_api_rate(&self, tenant: &str, rate: Option<Arc<Vec<RateLimit>>>) {
        self.api_rates
            .insert(tenant.to_owned(), (Instant::now(), rate));
    }

    /// `tenant`'s subscription changed here: its API rate is read from its plan again at once
    /// (other instances follow within [`API_RATE_TTL`]).
    pub fn forget_api_rate(&self, tenant: &str) {
        self.api_rates.remove(&tenant.to_owned());
    }

    /// A plan was created, edited, (de)activated or deleted here: hints may be out of date.
    pub fn plans_changed(&self) {
        if let Ok(mut hints) = self.hint.lock() {
            hints.clear();
        }
    }
}
