//! The key ids that exist, so a flood of well-formed random ids costs no database query.
//!
//! A Bloom filter (`fastbloom::AtomicBloomFilter`, randomly seeded per process, so nobody can
//! aim at its false positives offline) of every key id in `api_keys`, loaded when the change feed
//! connects and kept current by the same notifications that invalidate the cache (key
//! creations notify too). An id the filter has never seen is unknown without a query. Two
//! things may make the filter miss a real key, and neither is a query an attacker can multiply:
//!
//! * **The feed is down**: inserts may have been missed, so the filter is dropped and every id
//!   goes to the database (with the negative cache) until the feed is back and the filter has
//!   been reloaded.
//! * **A key minted a moment ago on another node**, whose notification is still in flight. Key
//!   ids are UUIDv7, so such an id carries a recent timestamp: ids within [`RECENT`] of now that
//!   the filter does not know are looked up anyway, through one global budget
//!   ([`RECENT_LOOKUPS_PER_SEC`]), so forged "recent" ids cost at most that many queries.
//!
//! Deleted keys stay in the filter until the next reload: a false "maybe" costs one query, never
//! a wrong answer.

use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use fastbloom::AtomicBloomFilter;
use futures::TryStreamExt;
use keyward_core::KeyId;
use keyward_core::limit::{Algorithm, Rule, SharedState};
use sqlx::PgPool;

/// False-positive rate the filter is sized for.
const FALSE_POSITIVE: f64 = 0.001;
/// The filter is sized for at least this many ids, and twice the ids loaded.
const MIN_CAPACITY: u64 = 100_000;
/// How far from now an id's UUIDv7 timestamp may be for the id to count as just minted.
pub const RECENT: chrono::TimeDelta = chrono::TimeDelta::seconds(60);
/// Lookups per second of "recent" ids the filter does not know, across all callers.
pub const RECENT_LOOKUPS_PER_SEC: u64 = 50;

/// What the filter says of an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    /// Not a key: answer without the database.
    Absent,
    /// Maybe a key: look it up.
    Maybe,
    /// Not in the filter but minted within [`RECENT`]: look it up if the budget allows.
    Recent,
    /// The filter is not loaded (feed down, or loading): look it up.
    Unknown,
}

struct Filter {
    bloom: AtomicBloomFilter,
    capacity: u64,
    inserted: AtomicU64,
}

pub struct KnownIds {
    enabled: bool,
    filter: RwLock<Option<Filter>>,
    recent_budget: (Vec<Rule>, SharedState),
    started: std::time::Instant,
}

impl KnownIds {
    pub fn new(enabled: bool) -> KnownIds {
        let rules = vec![Rule::rate(
            "recent-lookups",
            Algorithm::Gcra,
            RECENT_LOOKUPS_PER_SEC,
            1,
            Some(RECENT_LOOKUPS_PER_SEC * 2),
        )];
        let state = SharedState::new(rules.len());
        KnownIds {
            enabled,
            filter: RwLock::new(None),
            recent_budget: (rules, state),
            started: std::time::Instant::now(),
        }
    }

    pub fn check(&self, id: KeyId, now: DateTime<Utc>) -> Membership {
        let guard = self.filter.read().unwrap_or_else(|p| p.into_inner());
        let Some(filter) = guard.as_ref() else {
            return Membership::Unknown;
        };
        if filter.bloom.contains(&id) {
            return Membership::Maybe;
        }
        match minted_at(id) {
            Some(at) if (now - at).abs() <= RECENT => Membership::Recent,
            _ => Membership::Absent,
        }
    }

    /// Takes one unit of the global budget for looking up recent ids the filter does not know.
    pub fn admit_recent(&self) -> bool {
        let (rules, state) = &self.recent_budget;
        let now = self.started.elapsed().as_millis() as u64;
        state.check(rules, now, 1, 1.0).allowed
    }

    /// An id that exists (a change notification, or a load that found it).
    pub fn insert(&self, id: KeyId) {
        let guard = self.filter.read().unwrap_or_else(|p| p.into_inner());
        if let Some(filter) = guard.as_ref() {
            filter.bloom.insert(&id);
            filter.inserted.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The feed is down: inserts may be missed from now on, so the filter is not trusted.
    pub fn clear(&self) {
        *self.filter.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Whether more ids went in than the filter was sized for (its false-positive rate is
    /// rising): the listener reloads it.
    pub fn needs_reload(&self) -> bool {
        let guard = self.filter.read().unwrap_or_else(|p| p.into_inner());
        guard
            .as_ref()
            .is_some_and(|f| f.inserted.load(Ordering::Relaxed) > f.capacity)
    }

    /// Ids the loaded filter holds (0 when not loaded), for `/metrics`.
    pub fn loaded_ids(&self) -> u64 {
        let guard = self.filter.read().unwrap_or_else(|p| p.into_inner());
        guard
            .as_ref()
            .map_or(0, |f| f.inserted.load(Ordering::Relaxed))
    }

    /// Loads every key id. Call after LISTEN has started, so a key committed after this
    /// snapshot arrives as a notification.
    pub async fn reload(&self, pool: &PgPool) -> Result<u64, sqlx::Error> {
        if !self.enabled {
            return Ok(0);
        }
        let count = sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM api_keys"#)
            .fetch_one(pool)
            .await?;
        let capacity = (count.max(0) as u64 * 2).max(MIN_CAPACITY);
        let bloom =
            AtomicBloomFilter::with_false_pos(FALSE_POSITIVE).expected_items(capacity as usize);
        let mut ids = sqlx::query_scalar!("SELECT id FROM api_keys").fetch(pool);
        let mut loaded = 0u64;
        while let Some(id) = ids.try_next().await? {
            bloom.insert(&KeyId::from_uuid(id));
            loaded += 1;
        }
        *self.filter.write().unwrap_or_else(|p| p.into_inner()) = Some(Filter {
            bloom,
            capacity,
            inserted: AtomicU64::new(loaded),
        });
        Ok(loaded)
    }
}

/// The creation time a UUIDv7 key id carries.
fn minted_at(id: KeyId) -> Option<DateTime<Utc>> {
    let (secs, nanos) = id.as_uuid().get_timestamp()?.to_unix();
    DateTime::from_timestamp(secs as i64, nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(ids: &[KeyId]) -> KnownIds {
        let known = KnownIds::new(true);
        let bloom = AtomicBloomFilter::with_false_pos(FALSE_POSITIVE).expected_items(1000);
        for id in ids {
            bloom.insert(id);
        }
        *known.filter.write().unwrap() = Some(Filter {
            bloom,
            capacity: 1000,
            inserted: AtomicU64::new(ids.len() as u64),
        });
        known
    }

    fn old_id() -> KeyId {
        KeyId::from_uuid(uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            1_600_000_000,
            0,
        )))
    }

    #[test]
    fn unloaded_filter_sends_everything_to_the_database() {
        let known = KnownIds::new(true);
        assert_eq!(known.check(KeyId::new(), Utc::now()), Membership::Unknown);
    }

    #[test]
    fn known_ids_are_maybe_and_old_strangers_absent() {
        let ids: Vec<KeyId> = (0..100).map(|_| old_id()).collect();
        let known = loaded(&ids);
        for id in &ids {
            assert_eq!(known.check(*id, Utc::now()), Membership::Maybe);
        }
        let strangers = (0..10_000)
            .filter(|_| known.check(old_id(), Utc::now()) != Membership::Absent)
            .count();
        assert!(strangers < 100, "{strangers} of 10,000 strangers passed");
        // An inserted id passes from then on.
        let late = old_id();
        known.insert(late);
        assert_eq!(known.check(late, Utc::now()), Membership::Maybe);
    }

    #[test]
    fn a_just_minted_id_is_recent_and_the_budget_is_bounded() {
        let known = loaded(&[]);
        assert_eq!(known.check(KeyId::new(), Utc::now()), Membership::Recent);
        let admitted = (0..1000).filter(|_| known.admit_recent()).count() as u64;
        assert!(
            admitted <= RECENT_LOOKUPS_PER_SEC * 2 + 5,
            "{admitted} admitted at once"
        );
        assert!(admitted >= RECENT_LOOKUPS_PER_SEC);
    }

    #[test]
    fn clearing_untrusts_the_filter() {
        let id = old_id();
        let known = loaded(&[id]);
        known.clear();
        assert_eq!(known.check(id, Utc::now()), Membership::Unknown);
        assert_eq!(known.loaded_ids(), 0);
    }
}
