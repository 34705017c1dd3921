//! Analytics: how a workspace's agents are doing, in its own days.
//!
//! Rules:
//! - Counts come from the hourly rollups (`conversation_hours`) that the transactions
//!   writing conversations and messages keep ([`Tally`]), never from a scan of messages. An
//!   hour counts when it starts in the range; days, weeks and months are the workspace's
//!   (its `timeZone`, daylight saving included), so a day has 23 or 25 hours where the
//!   clocks change.
//! - Unique contacts (exact) and response times come from the conversations started in the
//!   range: the median and 90th percentile of the time from the contact's first message to
//!   the agent's first reply after it, and the median time from start to close.
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
        "c.workspace_id = $1 AND c.started_at >= $2 AND c.started_at < $3 \
         AND ($6::uuid IS NULL OR c.agent_id = $6) AND ($7::text IS NULL OR c.channel = $7)"
    };
}

/// A conversation's first-response time in seconds. `date_part` is a float: `extract` is a
/// numeric, and cost 8 ms more over 50,000 conversations (bench/run's busy workspace).
macro_rules! response {
    () => {
        "date_part('epoch', c.first_reply_at - c.first_inbound_at)"
    };
}

/// The report's statement, reading `$hours` (a rollup table, as `h`) where `$filter` holds.
/// Binds: `$1` the workspace, `$2`..`$3` the range, `$4` the time zone, `$5` the interval's
/// `date_trunc` field, `$6` the agent, `$7` the channel.
macro_rules! report_sql {
    ($hours:literal, $filter:literal) => {
        concat!(
            // The buckets' starts, ascending: `width_bucket` finds a time's bucket by binary
            // search, a fifth of what converting each conversation's start costs. A start
            // is the first instant whose local time is the local midnight `g`: where the
            // clocks go back over midnight, PostgreSQL reads `g` as its second occurrence,
            // so the half hour or hour before is tried too.
            "WITH buckets AS ( \
                 SELECT array_agg(s.start ORDER BY g) AS starts \
                 FROM generate_series(date_trunc($5, $2 AT TIME ZONE $4), \
                                      ($3 AT TIME ZONE $4) - interval '1 microsecond', \
                                      ('1 ' || $5)::interval) g, \
                      LATERAL (SELECT min(t) AS start \
                               FROM unnest(ARRAY[g AT TIME ZONE $4, \
                                                 (g AT TIME ZONE $4) - interval '30 minutes', \
                                                 (g AT TIME ZONE $4) - interval '1 hour']) t \
                               WHERE t AT TIME ZONE $4 >= g) s), \
             hours AS ( \
                 SELECT width_bucket(h.hour, b.starts) AS n, \
                        sum(h.started) AS started, sum(h.closed) AS closed, \
                        sum(h.messages_in) AS messages_in, sum(h.messages_out) AS messages_out, \
                        sum(h.sms_segments) AS sms_segments, sum(h.calls) AS calls, \
                        sum(h.call_seconds) AS call_seconds \
                 FROM ", $hours, " h, buckets b \
                 WHERE h.workspace_id = $1 AND h.hour >= $2 AND h.hour < $3 ", $filter, " \
                 GROUP BY 1), \
             ",
            // Each (bucket, contact) pair once, by hashing: a bucket's unique contacts count
            // its pairs, and the range's count the distinct contacts among them (3,640 pairs
            // for bench/run's 50,000 conversations; a sorted distinct over the conversations
            // cost 4 ms more).
            "pairs AS MATERIALIZED ( \
                 SELECT width_bucket(c.started_at, b.starts) AS n, c.contact_id \
                 FROM conversations c, buckets b \
                 WHERE ", started!(), " AND c.contact_id IS NOT NULL \
                 GROUP BY 1, 2), \
             contacts AS (SELECT n, count(*) AS unique_contacts FROM pairs GROUP BY 1), \
             whole AS ( \
                 SELECT (SELECT count(DISTINCT contact_id) FROM pairs)::bigint AS all_contacts, \
                        percentile_cont(0.5) WITHIN GROUP (ORDER BY ", response!(), ") \
                            AS first_response_median, \
                        percentile_cont(0.9) WITHIN GROUP (ORDER BY ", response!(), ") \
                            AS first_response_p90, \
                        percentile_cont(0.5) WITHIN GROUP (ORDER BY \
                            date_part('epoch', c.closed_at - c.started_at)) AS time_to_close_median \
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

/// Without a filter: the workspace's own hours (`$6` and `$7` are null).
const REPORT: &str = report_sql!("workspace_conversation_hours", "");
/// With an agent or a channel: the hours per agent and channel.
const REPORT_FILTERED: &str = report_sql!(
    "conversation_hours",
    "AND ($6::uuid IS NULL OR h.agent_id = $6) AND ($7::text IS NULL OR h.channel = $7)"
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

/// The rollup upsert of [`roll_up`]: `$1` the workspace, `$2` the agent (the nil id once it
/// is gone), `$3` the channel, `$4` to `$11` the tallies' columns ([`tally_binds`]). Rows are
/// taken in hour order, so concurrent writers lock them in the same order; the triggers on
/// `conversation_hours` add the same to the workspace's own hours (migration 000034).
macro_rules! roll_up_sql {
    () => {
        "INSERT INTO conversation_hours AS h (workspace_id, hour, agent_id, channel, started, \
             closed, messages_in, messages_out, sms_segments, calls, call_seconds) \
         SELECT $1, date_trunc('hour', t.at, 'UTC'), $2, $3, sum(t.started), sum(t.closed), \
                sum(t.messages_in), sum(t.messages_out), sum(t.sms_segments), sum(t.calls), \
                sum(t.call_seconds) \
         FROM unnest($4::timestamptz[], $5::int4[], $6::int4[], $7::int4[], $8::int4[], \
                     $9::int4[], $10::int4[], $11::int8[]) \
              AS t (at, started, closed, messages_in, messages_out, sms_segments, calls, call_seconds) \
         GROUP BY 2 ORDER BY 2 \
         ON CONFLICT (workspace_id, hour, agent_id, channel) DO UPDATE SET \
             started = h.started + EXCLUDED.started, closed = h.closed + EXCLUDED.closed, \
             messages_in = h.messages_in + EXCLUDED.messages_in, \
             messages_out = h.messages_out + EXCLUDED.messages_out, \
             sms_segments = h.sms_segments + EXCLUDED.sms_segments, \
             calls = h.calls + EXCLUDED.calls, call_seconds = h.call_seconds + EXCLUDED.call_seconds"
    };
}
pub(crate) use roll_up_sql;

pub(crate) type TallyBinds<'a> = (
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

/// The binds of [`roll_up_sql!`].
pub(crate) fn tally_binds<'a>(
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
/// statement ([`roll_up_sql!`]).
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
    static_sql(roll_up_sql!(), binds).execute(conn).await?;
    Ok(())
}
