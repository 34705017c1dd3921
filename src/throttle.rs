//! Throttling: how often one subject (a client address, an account) may do one thing.
//!
//! Counters live in PostgreSQL (`throttles`), so every replica sees the same count and a
//! restart forgets nothing. Two kinds:
//!
//! - a [`Window`]: at most `limit` attempts per `window` (fixed windows, one upsert per
//!   attempt);
//! - a [`Backoff`]: after `free` attempts in a row without a success, each further one
//!   blocks the subject for twice as long as the previous one, up to `max`; a success clears
//!   it. Each attempt is counted *before* the expensive work (a password hash), in one
//!   statement, so requests sent at once are counted as one after another would be, and a
//!   blocked subject costs no hash;
//! - a [`Pace`]: one attempt per `step`, each waiting its turn for at most `max_wait`: a
//!   rate that parallel requests cannot beat, and that never refuses for long.
//!
//! A refusal carries how long to wait, for `RATE_LIMITED`'s `retryAfter`.
//!
//! Client addresses are keyed by IPv4 address or IPv6 /64 (one host usually holds a whole
//! /64, so a per-address limit on single IPv6 addresses would be no limit at all); rules
//! about one account from one place key by the wider network ([`network_subject`]).

use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::sql_types::{Integer, Nullable, Text, Timestamptz};
use diesel::{OptionalExtension as _, QueryableByName};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::db::{bind, static_sql};

/// At most `limit` attempts per `window` for one subject.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    /// The rule's name, the first part of its keys.
    pub name: &'static str,
    pub limit: i32,
    pub window: Duration,
}

/// Blocks a subject once it has made `free` attempts in a row without a success: 1 s, then
/// doubling with each further attempt, at most `max`.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub name: &'static str,
    pub free: i32,
    pub max: Duration,
}

/// Counts a refusal by `rule` (`linkai_throttled_total`).
fn throttled(rule: &'static str) {
    metrics::counter!("linkai_throttled_total", "rule" => rule).increment(1);
}

/// Refused: try again after this long.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("too many attempts; try again in {0:?}")]
pub struct Limited(pub Duration);

/// The subject of a per-address rule: the address, or its /64 for IPv6.
pub fn address_subject(client: Option<IpAddr>) -> String {
    match client.map(crate::config::canonical) {
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        // Requests always carry their peer; one shared bucket if one ever does not.
        None => "unknown".to_owned(),
    }
}

/// The network a client address belongs to, as per-account rules count it: its /24 for
/// IPv4, its /64 for IPv6. Guesses from elsewhere never count against the owner's own
/// network, and one attacker cannot escape the rule by walking through a few neighbouring
/// addresses.
pub fn network_subject(client: Option<IpAddr>) -> String {
    match client.map(crate::config::canonical) {
        Some(IpAddr::V4(v4)) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        other => address_subject(other),
    }
}

fn key(name: &str, subject: &str) -> String {
    format!("{name}:{subject}")
}

fn wait_until(until: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (until - now).to_std().unwrap_or(Duration::ZERO)
}

#[derive(QueryableByName)]
struct Counted {
    #[diesel(sql_type = Integer)]
    hits: i32,
    #[diesel(sql_type = Timestamptz)]
    window_start: DateTime<Utc>,
}

impl Window {
    /// Counts one attempt by `subject`; refused when it is over the limit of the current
    /// window.
    pub async fn hit(
        &self,
        conn: &mut AsyncPgConnection,
        subject: &str,
        now: DateTime<Utc>,
    ) -> diesel::QueryResult<Result<(), Limited>> {
        let window = chrono::Duration::from_std(self.window).unwrap_or(chrono::Duration::MAX);
        let counted: Counted = static_sql(
            "INSERT INTO throttles AS t (key, window_start, hits) VALUES ($1, $2, 1) \
             ON CONFLICT (key) DO UPDATE SET \
               hits = CASE WHEN t.window_start <= $3 THEN 1 ELSE t.hits + 1 END, \
               window_start = CASE WHEN t.window_start <= $3 THEN $2 ELSE t.window_start END \
             RETURNING hits, window_start",
            (
                bind::<Text, _>(key(self.name, subject)),
                bind::<Timestamptz, _>(now),
                bind::<Timestamptz, _>(now - window),
            ),
        )
        .get_result(conn)
        .await?;
        Ok(if counted.hits > self.limit {
            throttled(self.name);
            Err(Limited(wait_until(counted.window_start + window, now)))
        } else {
            Ok(())
        })
    }
}

#[derive(QueryableByName)]
struct Hits {
    #[diesel(sql_type = Integer)]
    hits: i32,
}

impl Window {
    /// Whether `subject` is over the limit of its current window, counting nothing.
    pub async fn is_over(
        &self,
        conn: &mut AsyncPgConnection,
        subject: &str,
        now: DateTime<Utc>,
    ) -> diesel::QueryResult<bool> {
        let window = chrono::Duration::from_std(self.window).unwrap_or(chrono::Duration::MAX);
        let counted: Option<Hits> = static_sql(
            "SELECT hits FROM throttles WHERE key = $1 AND window_start > $2",
            (
                bind::<Text, _>(key(self.name, subject)),
                bind::<Timestamptz, _>(now - window),
            ),
        )
        .get_result(conn)
        .await
        .optional()?;
        Ok(counted.is_some_and(|c| c.hits > self.limit))
    }
}

#[derive(QueryableByName)]
struct Blocked {
    #[diesel(sql_type = Nullable<Timestamptz>)]
    blocked_until: Option<DateTime<Utc>>,
}

impl Backoff {
    /// Counts one attempt by `subject`, before its work; refused (and not counted) while
    /// the subject is blocked. The attempt that reaches `free` starts the block for the
    /// ones after it.
    pub async fn attempt(
        &self,
        conn: &mut AsyncPgConnection,
        subject: &str,
        now: DateTime<Utc>,
    ) -> diesel::QueryResult<Result<(), Limited>> {
        let key = key(self.name, subject);
        let counted: Option<Hits> = static_sql(
            "INSERT INTO throttles AS t (key, window_start, hits) VALUES ($1, $2, 1) \
             ON CONFLICT (key) DO UPDATE SET hits = t.hits + 1, window_start = $2, \
               blocked_until = CASE WHEN t.hits + 1 >= $3 \
                 THEN $2::timestamptz + make_interval(secs => least($4, power(2, least(t.hits + 1 - $3, 30)))) \
               END \
             WHERE t.blocked_until IS NULL OR t.blocked_until <= $2 \
             RETURNING hits",
            (
                bind::<Text, _>(key.clone()),
                bind::<Timestamptz, _>(now),
                bind::<Integer, _>(self.free),
                bind::<Integer, _>(i32::try_from(self.max.as_secs()).unwrap_or(i32::MAX)),
            ),
        )
        .get_result(conn)
        .await
        .optional()?;
        if counted.is_some() {
            return Ok(Ok(()));
        }
        throttled(self.name);
        blocked_until(conn, &key, now).await
    }

    /// A success: the subject starts afresh.
    pub async fn succeeded(
        &self,
        conn: &mut AsyncPgConnection,
        subject: &str,
    ) -> diesel::QueryResult<()> {
        static_sql(
            "DELETE FROM throttles WHERE key = $1",
            (bind::<Text, _>(key(self.name, subject)),),
        )
        .execute(conn)
        .await
        .map(drop)
    }
}

/// Refused until the block on `key` ends (read after a refused upsert).
async fn blocked_until(
    conn: &mut AsyncPgConnection,
    key: &str,
    now: DateTime<Utc>,
) -> diesel::QueryResult<Result<(), Limited>> {
    let blocked: Option<Blocked> = static_sql(
        "SELECT blocked_until FROM throttles WHERE key = $1",
        (bind::<Text, _>(key.to_owned()),),
    )
    .get_result(conn)
    .await
    .optional()?;
    let until = blocked.and_then(|b| b.blocked_until).unwrap_or(now);
    // At least a second: the block may end between the two statements.
    Ok(Err(Limited(
        wait_until(until, now).max(Duration::from_secs(1)),
    )))
}

/// One attempt per `step` for a subject, each waiting its turn for at most `max_wait`.
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    pub name: &'static str,
    pub step: Duration,
    pub max_wait: Duration,
}

#[derive(QueryableByName)]
struct Slot {
    #[diesel(sql_type = Timestamptz)]
    blocked_until: DateTime<Utc>,
}

impl Pace {
    /// Takes the subject's next turn: how long to wait for it; refused when the turns
    /// already taken reach further than `max_wait`. Turns are handed out in one statement
    /// per claim, so a burst of parallel claims gets one turn per `step` like a queue.
    pub async fn claim(
        &self,
        conn: &mut AsyncPgConnection,
        subject: &str,
        now: DateTime<Utc>,
    ) -> diesel::QueryResult<Result<Duration, Limited>> {
        let key = key(self.name, subject);
        let step = chrono::Duration::from_std(self.step).unwrap_or(chrono::Duration::MAX);
        let max_wait = chrono::Duration::from_std(self.max_wait).unwrap_or(chrono::Duration::MAX);
        // `blocked_until` is when the turn after the last one taken starts.
        let slot: Option<Slot> = static_sql(
            "INSERT INTO throttles AS t (key, window_start, hits, blocked_until) \
               VALUES ($1, $2, 1, $2 + $3) \
             ON CONFLICT (key) DO UPDATE SET hits = t.hits + 1, window_start = $2, \
               blocked_until = greatest(t.blocked_until, $2) + $3 \
             WHERE greatest(t.blocked_until, $2) <= $2 + $4 \
             RETURNING blocked_until",
            (
                bind::<Text, _>(key.clone()),
                bind::<Timestamptz, _>(now),
                bind::<diesel::sql_types::Interval, _>(step),
                bind::<diesel::sql_types::Interval, _>(max_wait),
            ),
        )
        .get_result(conn)
        .await
        .optional()?;
        Ok(match slot {
            Some(slot) => Ok(wait_until(slot.blocked_until - step, now)),
            // Full: a turn frees once the queue reaches no further than `max_wait`.
            None => {
                throttled(self.name);
                match blocked_until(conn, &key, now).await? {
                    Err(Limited(queued)) => Err(Limited(
                        queued
                            .saturating_sub(self.max_wait)
                            .max(Duration::from_secs(1)),
                    )),
                    Ok(()) => Err(Limited(Duration::from_secs(1))),
                }
            }
        })
    }
}

/// Deletes counters that no longer count: windows older than a day and blocks that ended.
/// Run by the workers.
pub async fn forget_old(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
) -> diesel::QueryResult<usize> {
    static_sql(
        "DELETE FROM throttles WHERE window_start < $1 \
           AND (blocked_until IS NULL OR blocked_until < $2)",
        (
            bind::<Timestamptz, _>(now - chrono::Duration::days(1)),
            bind::<Timestamptz, _>(now),
        ),
    )
    .execute(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let a = address_subject(Some("2001:db8:1:2:aaaa::1".parse().expect("ip")));
        let b = address_subject(Some("2001:db8:1:2:bbbb::9".parse().expect("ip")));
        assert_eq!(a, b);
        assert_eq!(a, "2001:db8:1:2::/64");
        assert_ne!(
            a,
            address_subject(Some("2001:db8:1:3::1".parse().expect("ip")))
        );
        assert_eq!(
            address_subject(Some("::ffff:203.0.113.7".parse().expect("ip"))),
            "203.0.113.7"
        );
    }

    #[test]
    fn networks_are_ipv4_24s_and_ipv6_64s() {
        let net = |ip: &str| network_subject(Some(ip.parse().expect("ip")));
        assert_eq!(net("203.0.113.7"), "203.0.113.0/24");
        assert_eq!(net("203.0.113.200"), net("::ffff:203.0.113.7"));
        assert_ne!(net("203.0.113.7"), net("203.0.114.7"));
        assert_eq!(net("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(network_subject(None), "unknown");
    }
}
