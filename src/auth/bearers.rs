//! Live tokens as a lookup found them, kept for at most a second (`TOKEN_CACHE_MS`). A
//! frontend sends several requests a second with one token, and looking the token up was
//! one of a page's three statements (BENCHMARKS.md, thirtieth round).
//!
//! A revoked token stops working at once on the server that revoked it, and within a
//! second on every other:
//! - a mutation's work runs in [`Bearers::revoking`]. The model's revoke functions note
//!   whose tokens they revoked (src/auth/revocations.rs). When the work is over, and with
//!   it every transaction it opened, this server forgets those people's tokens;
//! - every server hears each revoked or deleted token after its commit, on the live-updates
//!   listener (NOTIFY `tokens_revoked`, src/live/mod.rs), and forgets it. After the listener
//!   was away, it forgets everything;
//! - an entry serves for at most `TOKEN_CACHE_MS` after its lookup began. That bounds what
//!   a lost notification costs;
//! - a lookup that began before a forget does not keep what it read (the epoch): it may
//!   have read the row before the revocation committed.
//!
//! Only reads use the cache. Writes, sockets and export downloads read their token afresh
//! ([`Lookup::Fresh`]): on another server, a token revoked a moment ago must not mint a
//! token, invite anyone, or open a socket that outlives the second.
//!
//! Only live tokens are kept: a flood of made-up tokens costs the database as before, and
//! no memory here. Expiry and idleness are judged again on every use.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::model::BearerRow;
use super::revocations::Revoked;

/// The longest an entry serves.
const MAX_AGE: Duration = Duration::from_millis(crate::config::MAX_TOKEN_CACHE_MS);
/// Tokens kept at most. Past it, a lookup's row is not kept until old ones are dropped.
const MAX_ENTRIES: usize = 16_384;

/// This server's recently looked-up live tokens, by hash.
#[derive(Clone)]
pub struct Bearers(Arc<Inner>);

struct Inner {
    max_age: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Counts forgets: a lookup keeps its row only if none came since it began.
    epoch: u64,
    rows: HashMap<Vec<u8>, Entry>,
    /// When entries past their age were last dropped, once the map was full.
    pruned_at: Option<Instant>,
}

struct Entry {
    row: BearerRow,
    /// When the lookup that read it began.
    read_at: Instant,
}

/// Whether a request may use a row looked up lately, or reads its token afresh: writes and
/// sockets do, since a revocation on another server reaches this one only with its
/// notification (a write could mint a token that outlives the revoked one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    Recent,
    Fresh,
}

/// A lookup that found nothing usable here: when it began, and the forgets before it.
#[must_use]
#[derive(Clone, Copy, Debug)]
pub struct Miss {
    epoch: u64,
    at: Instant,
}

impl Bearers {
    /// Keeps rows for `max_age` (at most [`MAX_AGE`]); zero keeps none.
    pub fn new(max_age: Duration) -> Self {
        Self(Arc::new(Inner {
            max_age: max_age.min(MAX_AGE),
            state: Mutex::default(),
        }))
    }

    /// The row of the token with this hash, if a lookup began less than the age ago and
    /// `lookup` allows it.
    pub fn find(&self, lookup: Lookup, hash: &[u8]) -> Result<BearerRow, Miss> {
        let state = self.lock();
        let now = Instant::now();
        match state.rows.get(hash).filter(|_| lookup == Lookup::Recent) {
            Some(entry) if now.duration_since(entry.read_at) < self.0.max_age => {
                crate::metrics::token_looked_up("cache");
                Ok(entry.row.clone())
            }
            _ => Err(Miss {
                epoch: state.epoch,
                at: now,
            }),
        }
    }

    /// Keeps the live row that the lookup after `miss` read, unless a forget came since.
    pub fn keep(&self, hash: &[u8], row: &BearerRow, miss: Miss) {
        if self.0.max_age.is_zero() {
            return;
        }
        let mut state = self.lock();
        if state.epoch != miss.epoch {
            return;
        }
        if state.rows.len() >= MAX_ENTRIES && !state.rows.contains_key(hash) {
            self.prune(&mut state);
            if state.rows.len() >= MAX_ENTRIES {
                return;
            }
        }
        let entry = Entry {
            row: row.clone(),
            read_at: miss.at,
        };
        state.rows.insert(hash.to_vec(), entry);
    }

    /// Drops entries past their age, at most once per age: a full map of fresh entries is
    /// not scanned on every lookup.
    fn prune(&self, state: &mut State) {
        let now = Instant::now();
        if state
            .pruned_at
            .is_some_and(|at| now.duration_since(at) < self.0.max_age)
        {
            return;
        }
        state.pruned_at = Some(now);
        let max_age = self.0.max_age;
        state
            .rows
            .retain(|_, entry| now.duration_since(entry.read_at) < max_age);
    }

    /// Records that the token was used at `at` (its `last_used_at` was written), so that
    /// its next uses here do not write it again.
    pub fn touched(&self, hash: &[u8], at: DateTime<Utc>) {
        if let Some(entry) = self.lock().rows.get_mut(hash) {
            entry.row.last_used_at = Some(at);
        }
    }

    /// Forgets the token `token_id`, revoked or deleted by some server (a notification).
    pub fn forget_token(&self, token_id: Uuid) {
        self.forget("notified", |row| row.id == token_id);
    }

    /// Forgets every token of `user_id`, some of which a mutation here revoked.
    fn forget_user(&self, user_id: Uuid) {
        self.forget("revoked_here", |row| row.user_id == user_id);
    }

    /// Forgets every token: revocations may have been missed.
    pub fn forget_all(&self) {
        self.forget("listener_back", |_| true);
    }

    fn forget(&self, reason: &'static str, which: impl Fn(&BearerRow) -> bool) {
        crate::metrics::tokens_forgotten(reason);
        let mut state = self.lock();
        state.epoch = state.epoch.wrapping_add(1);
        state.rows.retain(|_, entry| !which(&entry.row));
    }

    /// Runs `work` (a mutation); once it is over or dropped, forgets the tokens of everyone
    /// whose tokens it revoked ([`super::revocations::note`]). A mutation dropped inside its
    /// `COMMIT` forgets before the commit lands: a lookup meanwhile may keep the old row
    /// until the notification, or the age, removes it (its client got no answer either).
    pub async fn revoking<F: Future>(&self, work: F) -> F::Output {
        let forgetting = ForgetOnDrop {
            bearers: self,
            revoked: Revoked::default(),
        };
        forgetting.revoked.scope(work).await
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves a valid map: keep using it.
        self.0.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Forgets when dropped, so a mutation dropped midway forgets too.
struct ForgetOnDrop<'a> {
    bearers: &'a Bearers,
    revoked: Revoked,
}

impl Drop for ForgetOnDrop<'_> {
    fn drop(&mut self) {
        for user_id in self.revoked.take() {
            self.bearers.forget_user(user_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::revocations;

    fn row(user_id: Uuid) -> BearerRow {
        BearerRow {
            id: Uuid::new_v4(),
            user_id,
            kind: "session".into(),
            created_at: Utc::now(),
            last_used_at: None,
            expires_at: None,
            read_only: false,
            workspace_ids: None,
        }
    }

    #[test]
    fn a_kept_row_serves_until_its_age_or_a_forget() {
        let bearers = Bearers::new(Duration::from_secs(1));
        let (ada, bob) = (row(Uuid::new_v4()), row(Uuid::new_v4()));
        let miss = bearers.find(Lookup::Recent, b"ada").expect_err("empty");
        bearers.keep(b"ada", &ada, miss);
        let miss = bearers.find(Lookup::Recent, b"bob").expect_err("empty");
        bearers.keep(b"bob", &bob, miss);
        assert_eq!(
            bearers.find(Lookup::Recent, b"ada").expect("kept").id,
            ada.id
        );
        bearers.forget_token(ada.id);
        assert!(bearers.find(Lookup::Recent, b"ada").is_err());
        assert!(bearers.find(Lookup::Recent, b"bob").is_ok());
        bearers.forget_user(bob.user_id);
        assert!(bearers.find(Lookup::Recent, b"bob").is_err());
    }

    #[test]
    fn a_lookup_that_began_before_a_forget_keeps_nothing() {
        let bearers = Bearers::new(Duration::from_secs(1));
        let ada = row(Uuid::new_v4());
        let miss = bearers.find(Lookup::Recent, b"ada").expect_err("empty");
        // The revocation commits and is forgotten while the lookup's read is on its way.
        bearers.forget_user(ada.user_id);
        bearers.keep(b"ada", &ada, miss);
        assert!(bearers.find(Lookup::Recent, b"ada").is_err());
    }

    #[test]
    fn a_fresh_lookup_reads_again_and_keeps_what_it_read() {
        let bearers = Bearers::new(Duration::from_secs(1));
        let ada = row(Uuid::new_v4());
        let miss = bearers.find(Lookup::Recent, b"ada").expect_err("empty");
        bearers.keep(b"ada", &ada, miss);
        let miss = bearers.find(Lookup::Fresh, b"ada").expect_err("read again");
        bearers.keep(b"ada", &ada, miss);
        assert!(bearers.find(Lookup::Recent, b"ada").is_ok());
    }

    #[test]
    fn an_entry_ages_from_when_its_lookup_began() {
        let bearers = Bearers::new(Duration::from_millis(50));
        let ada = row(Uuid::new_v4());
        let miss = bearers.find(Lookup::Recent, b"ada").expect_err("empty");
        std::thread::sleep(Duration::from_millis(60));
        bearers.keep(b"ada", &ada, miss);
        assert!(bearers.find(Lookup::Recent, b"ada").is_err());
    }

    #[test]
    fn zero_keeps_nothing_and_the_age_is_at_most_a_second() {
        let off = Bearers::new(Duration::ZERO);
        let ada = row(Uuid::new_v4());
        let miss = off.find(Lookup::Recent, b"ada").expect_err("empty");
        off.keep(b"ada", &ada, miss);
        assert!(off.find(Lookup::Recent, b"ada").is_err());
        assert_eq!(Bearers::new(Duration::from_secs(60)).0.max_age, MAX_AGE);
    }

    #[test]
    fn a_full_map_keeps_no_more() {
        let bearers = Bearers::new(Duration::from_secs(1));
        for i in 0..MAX_ENTRIES + 10 {
            let miss = bearers
                .find(Lookup::Recent, &i.to_be_bytes())
                .expect_err("new");
            bearers.keep(&i.to_be_bytes(), &row(Uuid::new_v4()), miss);
        }
        assert_eq!(bearers.lock().rows.len(), MAX_ENTRIES);
    }

    #[tokio::test]
    async fn a_mutation_forgets_whom_it_revoked_when_it_is_over() {
        let bearers = Bearers::new(Duration::from_secs(1));
        let (ada, bob) = (row(Uuid::new_v4()), row(Uuid::new_v4()));
        for (hash, row) in [(b"ada", &ada), (b"bob", &bob)] {
            let miss = bearers.find(Lookup::Recent, hash).expect_err("empty");
            bearers.keep(hash, row, miss);
        }
        bearers
            .revoking(async {
                revocations::note(ada.user_id);
                // Still served until the work, and its commit, is over.
                assert!(bearers.find(Lookup::Recent, b"ada").is_ok());
            })
            .await;
        assert!(bearers.find(Lookup::Recent, b"ada").is_err());
        assert!(bearers.find(Lookup::Recent, b"bob").is_ok());
    }
}
