//! Throttling: how often one subject (a client address, an account) may do one thing.
//!
//! Counters live in PostgreSQL (`throttles`), so every replica sees the same count and a
//! restart forgets nothing. Two kinds:
//!
//! - a [`Window`]: at most `limit` attempts per `window` (fixed windows, one upsert per
//!   attempt);
//! - a [`Backoff`]: after `free` consecutive failures, each further failure blocks the
//!   subject for twice as long as the previous one, up to `max`; a success clears it. Checked
//!   *before* the expensive work (a password hash), so a blocked subject costs one read.
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

/// Blocks a subject once it has `free` consecutive failures: 1 s, then doubling with each
/// further failure, at most `max`.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub name: &'static str,
    pub free: i32,
    pub max: Duration,
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
    /// Refused while `subject` is blocked by its recent failures.
    pub async fn check(
        &self,
        conn: &mut AsyncPgConnection,
        subject: &str,
        now: DateTime<Utc>,
    ) -> diesel::QueryResult<Result<(), Limited>> {
        let blocked: Option<Blocked> = static_sql(
            "SELECT blocked_until FROM throttles WHERE key = $1",
            (bind::<Text, _>(key(self.name, subject)),),
        )
        .get_result(conn)
        .await
        .optional()?;
        Ok(match blocked.and_then(|b| b.blocked_until) {
            Some(until) if until > now => Err(Limited(wait_until(until, now))),
            _ => Ok(()),
        })
    }

    /// Records one more consecutive failure; from the `free`-th on, blocks the subject for
    /// 1 s, doubling with each further failure, at most `max`.
    pub async fn failed(
        &self,
        conn: &mut AsyncPgConnection,
        subject: &str,
        now: DateTime<Utc>,
    ) -> diesel::QueryResult<()> {
        static_sql(
            "INSERT INTO throttles AS t (key, window_start, hits) VALUES ($1, $2, 1) \
             ON CONFLICT (key) DO UPDATE SET hits = t.hits + 1, \
               blocked_until = CASE WHEN t.hits + 1 >= $3 \
                 THEN $2 + make_interval(secs => least($4, power(2, least(t.hits + 1 - $3, 30)))) \
               END",
            (
                bind::<Text, _>(key(self.name, subject)),
                bind::<Timestamptz, _>(now),
                bind::<Integer, _>(self.free),
                bind::<Integer, _>(i32::try_from(self.max.as_secs()).unwrap_or(i32::MAX)),
            ),
        )
        .execute(conn)
        .await
        .map(drop)
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
