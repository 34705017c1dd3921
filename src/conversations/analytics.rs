//! Analytics: how a workspace's agents are doing, in its own days.
//!
//! Rules:
//! - Counts come from the hourly rollups (`conversation_hours`) that the transactions
//!   writing conversations and messages keep ([`Tally`]), never from a scan of messages. An
//!   hour counts when it starts in the range; days, weeks and months are the workspace's
//!   (its `timeZone`, daylight saving included), so a day has 23 or 25 hours where the
//!   clocks change.
//! - Unique contacts (exact) and response times count the conversations whose start hour is
//!   in the range, as the counts do. Without a filter, unique contacts come from
//!   `contact_days` (migration 000066: per UTC day and contact, the hours a conversation
//!   started in), split among the workspace's days whatever its time zone; with one, from the
//!   conversations. Response times are the median and 90th percentile of the time from the
//!   contact's first message to the agent's first reply after it, and the median time from
//!   start to close, which each conversation keeps in seconds (migration 000062) and the
//!   index the report reads holds (000064).
//! - A range is at most [`MAX_RANGE_DAYS`] long, so a report's cost is bounded.

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel::sql_types::{
    Array, BigInt, Double, Int4, Nullable, Text, Timestamptz, Uuid as SqlUuid,
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{Channel, ConversationError};
use crate::db::{bind, static_sql, Bind};

/// A report covers at most this many days.
pub const MAX_RANGE_DAYS: i64 = 400;

/// How a report's series is cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interval {
    Day,
    Week,
    Month,
}

impl Interval {
    /// PostgreSQL's `date_trunc` field.
    fn field(self) -> &'static str {
        match self {
            Interval::Day => "day",
            Interval::Week => "week",
            Interval::Month => "month",
        }
    }
}

/// What a report covers.
#[derive(Clone, Debug)]
pub struct Range {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub interval: Interval,
    pub agent_id: Option<Uuid>,
    pub channel: Option<Channel>,
}

impl Range {
    pub fn check(&self) -> Result<(), ConversationError> {
        if self.until <= self.since || self.until - self.since > Duration::days(MAX_RANGE_DAYS) {
            return Err(ConversationError::Invalid(format!(
                "`until` must be after `since`, and at most {MAX_RANGE_DAYS} days after it."
            )));
        }
        Ok(())
    }
}

/// Counts over one stretch of time.
#[derive(QueryableByName, Clone, Debug, Default, PartialEq)]
pub struct Counts {
    #[diesel(sql_type = BigInt)]
    pub started: i64,
    #[diesel(sql_type = BigInt)]
    pub closed: i64,
    #[diesel(sql_type = BigInt)]
    pub messages_in: i64,
    #[diesel(sql_type = BigInt)]
    pub messages_out: i64,
    #[diesel(sql_type = BigInt)]
    pub sms_segments: i64,
    #[diesel(sql_type = BigInt)]
    pub calls: i64,
    #[diesel(sql_type = BigInt)]
    pub call_seconds: i64,
    #[diesel(sql_type = BigInt)]
    pub unique_contacts: i64,
}

/// One point of the series: the bucket starting at `start` (the workspace's midnight).
#[derive(QueryableByName, Clone, Debug)]
pub struct Point {
    #[diesel(sql_type = Timestamptz)]
    pub start: DateTime<Utc>,
    #[diesel(embed)]
    pub counts: Counts,
}

/// The whole range's counts and times.
#[derive(Clone, Debug, Default)]
pub struct Totals {
    pub counts: Counts,
    pub first_response_median: Option<f64>,
    pub first_response_p90: Option<f64>,
    pub time_to_close_median: Option<f64>,
}

/// A report: its series and its totals, in `time_zone`.
pub struct Report {
    pub time_zone: String,
    pub series: Vec<Point>,
    pub totals: Totals,
}

/// One row of [`REPORT`]: a point of the series, with the range's figures that do not add
/// up from the points (the same on every row).
#[derive(QueryableByName)]
struct Row {
    #[diesel(embed)]
    point: Point,
    #[diesel(sql_type = BigInt)]
    all_contacts: i64,
    #[diesel(sql_type = Nullable<Double>)]
    first_response_median: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    first_response_p90: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    time_to_close_median: Option<f64>,
}

/// The report for `range` in the workspace's `time_zone`: one statement, which reads each
/// rollup hour once and each conversation started in the range twice (once for its contact,
/// once for its times). Without a filter the hours are the workspace's own (one row an
/// hour); with one, its agents' and channels'.
pub async fn report(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    time_zone: &str,
    range: &Range,
) -> Result<Report, ConversationError> {
    range.check()?;
    let filtered = range.agent_id.is_some() || range.channel.is_some();
    let sql = if filtered { REPORT_FILTERED } else { REPORT };
    let rows = static_sql(sql, binds(workspace_id, time_zone, range))
        .planned_each_run()
        .load::<Row>(conn)
        .await?;
    let mut totals = rows
        .as_slice()
        .first()
        .map_or_else(Totals::default, |row| Totals {
            counts: Counts {
                unique_contacts: row.all_contacts,
                ..Counts::default()
            },
            first_response_median: row.first_response_median,
            first_response_p90: row.first_response_p90,
            time_to_close_median: row.time_to_close_median,
        });
    for row in &rows {
        totals.counts.add(&row.point.counts);
    }
    Ok(Report {
        time_zone: time_zone.to_owned(),
        series: rows.into_iter().map(|row| row.point).collect(),
        totals,
    })
}

impl Counts {
    /// Adds a point's counts, all but unique contacts (which do not add up).
    fn add(&mut self, other: &Counts) {
        self.started += other.started;
        self.closed += other.closed;
        self.messages_in += other.messages_in;
        self.messages_out += other.messages_out;
        self.sms_segments += other.sms_segments;
        self.calls += other.calls;
        self.call_seconds += other.call_seconds;
    }
}

/// The conversations started in the range, with the filter (`c`).
macro_rules! started {
    () => {
        "c.workspace_id = $1 \
         AND c.started_at >= date_trunc('hour', $2::timestamptz - interval '1 microsecond', 'UTC') + interval '1 hour' \
         AND c.started_at < date_trunc('hour', $3::timestamptz - interval '1 microsecond', 'UTC') + interval '1 hour' \
         AND ($6::uuid IS NULL OR c.agent_id = $6) AND ($7::text IS NULL OR c.channel = $7)"
    };
}

/// The report's statement, reading `$hours` (a rollup table, as `h`) where `$filter` holds,
/// and its (bucket, contact) pairs from `$pairs`. Binds: `$1` the workspace, `$2`..`$3` the range, `$4` the time zone, `$5` the interval's
/// `date_trunc` field, `$6` the agent, `$7` the channel.
macro_rules! report_sql {
    ($hours:literal, $filter:literal, $($pairs:tt)+) => {
        concat!(
            // The buckets' starts, ascending (`report_buckets`, migration 000068):
            // `width_bucket` finds a time's bucket by binary search, a fifth of what
            // converting each conversation's start costs.
            "WITH buckets AS (SELECT report_buckets($2, $3, $4, $5) AS starts), \
             hours AS ( \
                 SELECT width_bucket(h.hour, (SELECT starts FROM buckets)) AS n, \
                        sum(h.started) AS started, sum(h.closed) AS closed, \
                        sum(h.messages_in) AS messages_in, sum(h.messages_out) AS messages_out, \
                        sum(h.sms_segments) AS sms_segments, sum(h.calls) AS calls, \
                        sum(h.call_seconds) AS call_seconds \
                 FROM ", $hours, " h \
                 WHERE h.workspace_id = $1 AND h.hour >= $2 AND h.hour < $3 ", $filter, " \
                 GROUP BY 1), \
             ",
            // A bucket's unique contacts count its pairs, and the range's count the distinct
            // contacts among them.
            "pairs AS MATERIALIZED (",
            $($pairs)+,
            "), \
             contacts AS (SELECT n, count(*) AS unique_contacts FROM pairs GROUP BY 1), \
             whole AS ( \
                 SELECT (SELECT count(DISTINCT contact_id) FROM pairs)::bigint AS all_contacts, \
                        percentile_cont(0.5) WITHIN GROUP (ORDER BY c.first_response_seconds) \
                            AS first_response_median, \
                        percentile_cont(0.9) WITHIN GROUP (ORDER BY c.first_response_seconds) \
                            AS first_response_p90, \
                        percentile_cont(0.5) WITHIN GROUP (ORDER BY c.close_seconds) \
                            AS time_to_close_median \
                 FROM conversations c WHERE ", started!(), ") \
             SELECT b.starts[p.n] AS start, \
                    COALESCE(h.started, 0)::bigint AS started, COALESCE(h.closed, 0)::bigint AS closed, \
                    COALESCE(h.messages_in, 0)::bigint AS messages_in, \
                    COALESCE(h.messages_out, 0)::bigint AS messages_out, \
                    COALESCE(h.sms_segments, 0)::bigint AS sms_segments, \
                    COALESCE(h.calls, 0)::bigint AS calls, \
                    COALESCE(h.call_seconds, 0)::bigint AS call_seconds, \
                    COALESCE(k.unique_contacts, 0)::bigint AS unique_contacts, whole.* \
             FROM buckets b \
             CROSS JOIN generate_subscripts(b.starts, 1) AS p (n) \
             LEFT JOIN hours h ON h.n = p.n \
             LEFT JOIN contacts k ON k.n = p.n \
             CROSS JOIN whole \
             ORDER BY p.n"
        )
    };
}

/// Each (bucket, contact) pair once, from the conversations started in the range, each in
/// the bucket its hour starts in (hashed: a sorted distinct cost 4 ms more over bench/run's
/// 50,000 conversations). The starts' array is read once (an init plan), not joined to each
/// row.
macro_rules! pairs_of_conversations {
    () => {
        concat!(
            "SELECT width_bucket(date_trunc('hour', c.started_at, 'UTC'), \
                                 (SELECT starts FROM buckets)) AS n, \
                    c.contact_id \
             FROM conversations c \
             WHERE ",
            started!(),
            " AND c.contact_id IS NOT NULL \
             GROUP BY 1, 2"
        )
    };
}

/// Each (bucket, contact) pair once, from `contact_days` (migration 000066): a bucket has a
/// contact when the contact's hours of one of its days meet the day's mask for the bucket
/// (`report_day_masks`, migration 000068: the day's hours that start in the range and in
/// the bucket). The masks are worked out once per day, so a contact's day costs one hash
/// probe.
macro_rules! pairs_of_days {
    () => {
        "SELECT m.n, d.contact_id \
         FROM contact_days d \
         JOIN report_day_masks((SELECT starts FROM buckets), $2, $3) m ON m.day = d.day \
         WHERE d.workspace_id = $1 \
           AND d.day BETWEEN ($2::timestamptz AT TIME ZONE 'UTC')::date \
                         AND (($3::timestamptz - interval '1 microsecond') AT TIME ZONE 'UTC')::date \
           AND d.hours & m.mask <> 0 \
         GROUP BY 1, 2"
    };
}

/// Without a filter: the workspace's own hours and contact days (`$6` and `$7` are null).
const REPORT: &str = report_sql!("workspace_conversation_hours", "", pairs_of_days!());
/// With an agent or a channel: the hours per agent and channel, and the conversations.
const REPORT_FILTERED: &str = report_sql!(
    "conversation_hours",
    "AND ($6::uuid IS NULL OR h.agent_id = $6) AND ($7::text IS NULL OR h.channel = $7)",
    pairs_of_conversations!()
);

type Binds<'a> = (
    Bind<SqlUuid, Uuid>,
    Bind<Timestamptz, DateTime<Utc>>,
    Bind<Timestamptz, DateTime<Utc>>,
    Bind<Text, &'a str>,
    Bind<Text, &'static str>,
    Bind<Nullable<SqlUuid>, Option<Uuid>>,
    Bind<Nullable<Text>, Option<&'static str>>,
);

fn binds<'a>(workspace_id: Uuid, time_zone: &'a str, range: &Range) -> Binds<'a> {
    (
        bind::<SqlUuid, _>(workspace_id),
        bind::<Timestamptz, _>(range.since),
        bind::<Timestamptz, _>(range.until),
        bind::<Text, _>(time_zone),
        bind::<Text, _>(range.interval.field()),
        bind::<Nullable<SqlUuid>, _>(range.agent_id),
        bind::<Nullable<Text>, _>(range.channel.map(Channel::as_db)),
    )
}

/// What one write adds to the rollups, at `at` (its hour is its row).
#[derive(Clone, Copy, Debug, Default)]
pub struct Tally {
    pub at: DateTime<Utc>,
    pub started: i32,
    pub closed: i32,
    pub messages_in: i32,
    pub messages_out: i32,
    pub sms_segments: i32,
    pub calls: i32,
    pub call_seconds: i64,
}

type TallyBinds<'a> = (
    Bind<SqlUuid, Uuid>,
    Bind<SqlUuid, Uuid>,
    Bind<Text, &'a str>,
    Bind<Array<Timestamptz>, Vec<DateTime<Utc>>>,
    Bind<Array<Int4>, Vec<i32>>,
    Bind<Array<Int4>, Vec<i32>>,
    Bind<Array<Int4>, Vec<i32>>,
    Bind<Array<Int4>, Vec<i32>>,
    Bind<Array<Int4>, Vec<i32>>,
    Bind<Array<Int4>, Vec<i32>>,
    Bind<Array<BigInt>, Vec<i64>>,
);

/// The binds of `roll_up_conversation_hours`.
fn tally_binds<'a>(
    workspace_id: Uuid,
    agent_id: Option<Uuid>,
    channel: &'a str,
    tallies: &[Tally],
) -> TallyBinds<'a> {
    let column = |f: fn(&Tally) -> i32| tallies.iter().map(f).collect::<Vec<i32>>();
    (
        bind::<SqlUuid, _>(workspace_id),
        bind::<SqlUuid, _>(agent_id.unwrap_or(Uuid::nil())),
        bind::<Text, _>(channel),
        bind::<Array<Timestamptz>, _>(tallies.iter().map(|t| t.at).collect()),
        bind::<Array<Int4>, _>(column(|t| t.started)),
        bind::<Array<Int4>, _>(column(|t| t.closed)),
        bind::<Array<Int4>, _>(column(|t| t.messages_in)),
        bind::<Array<Int4>, _>(column(|t| t.messages_out)),
        bind::<Array<Int4>, _>(column(|t| t.sms_segments)),
        bind::<Array<Int4>, _>(column(|t| t.calls)),
        bind::<Array<BigInt>, _>(tallies.iter().map(|t| t.call_seconds).collect()),
    )
}

/// Adds `tallies` to the hourly rollups of the conversation's agent and channel: one
/// statement (`roll_up_conversation_hours`, migration 000061, which appends use too).
pub async fn roll_up(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    agent_id: Option<Uuid>,
    channel: &str,
    tallies: &[Tally],
) -> QueryResult<()> {
    if tallies.is_empty() {
        return Ok(());
    }
    let binds = tally_binds(workspace_id, agent_id, channel, tallies);
    static_sql(
        "SELECT roll_up_conversation_hours($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        binds,
    )
    .execute(conn)
    .await?;
    Ok(())
}
