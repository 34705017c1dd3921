//! Rows and queries for conversations and messages. Every query runs on a connection inside
//! the workspace, so row-level security applies to each.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{
    Array, BigInt, Int4, Nullable, SmallInt, Text, Timestamptz, Uuid as SqlUuid,
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{Address, NewMessage};
use crate::db::page::Page;
use crate::db::{bind, static_sql};
use crate::schema::{conversations, messages};

/// [`ConversationRow`]'s columns of `c`, for hand-written SQL: named, not `c.*`, so a column
/// added while the service runs does not change a prepared statement's result.
macro_rules! conversation_columns {
    () => {
        "c.id, c.workspace_id, c.external_id, c.agent_id, c.contact_id, c.channel, c.status, \
         c.started_at, c.last_activity_at, c.closed_at, c.duration_seconds, c.message_count, \
         c.first_inbound_at, c.first_reply_at, c.service_token_id"
    };
}

#[derive(Queryable, Selectable, QueryableByName, Clone, Debug)]
#[diesel(table_name = conversations)]
pub struct ConversationRow {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub external_id: String,
    pub agent_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
    pub channel: String,
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub last_activity_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub duration_seconds: Option<i32>,
    pub message_count: i32,
    pub first_inbound_at: Option<DateTime<Utc>>,
    pub first_reply_at: Option<DateTime<Utc>>,
    pub service_token_id: Option<Uuid>,
}

#[derive(Queryable, Selectable, QueryableByName, Clone, Debug)]
#[diesel(table_name = messages)]
pub struct MessageRow {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub external_id: String,
    pub direction: String,
    pub body: String,
    pub sent_at: DateTime<Utc>,
    pub segments: Option<i16>,
}

pub struct NewConversation<'a> {
    pub workspace_id: Uuid,
    pub external_id: &'a str,
    pub agent_id: Uuid,
    pub contact_id: Uuid,
    pub channel: super::Channel,
    pub started_at: DateTime<Utc>,
    pub service_token_id: Uuid,
}

pub async fn find_external(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    external_id: &str,
) -> QueryResult<Option<ConversationRow>> {
    conversations::table
        .filter(conversations::workspace_id.eq(workspace_id))
        .filter(conversations::external_id.eq(external_id))
        .select(ConversationRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn find(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    id: Uuid,
) -> QueryResult<Option<ConversationRow>> {
    conversations::table
        .find((workspace_id, id))
        .select(ConversationRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// The conversation, locked until the transaction ends: appends to it run one at a time.
pub async fn lock(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    id: Uuid,
) -> QueryResult<Option<ConversationRow>> {
    conversations::table
        .find((workspace_id, id))
        .select(ConversationRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// Whether `id` is an agent of the workspace.
pub async fn is_agent(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    id: Uuid,
) -> QueryResult<bool> {
    use crate::resources::kinds::AgentKind;
    use crate::resources::model::{existing, Scope};
    use crate::resources::Kind;
    let scope = Scope {
        workspace_id,
        kind: AgentKind::KIND,
        app_filter: true,
    };
    Ok(!existing(conn, scope, &[id]).await?.is_empty())
}

/// The workspace's contact at `address` (the oldest, if people made several), made now
/// when there is none. The address's transaction lock makes two concurrent lookups of a
/// new address make one contact: the second reads after the first commits.
pub async fn contact_for(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    address: &Address,
    name: Option<&str>,
) -> QueryResult<Uuid> {
    #[derive(QueryableByName)]
    struct Found {
        #[diesel(sql_type = SqlUuid)]
        id: Uuid,
    }
    let (phone, email) = match address {
        Address::Phone(phone) => (Some(phone.as_str()), None),
        Address::Email(email) => (None, Some(email.as_str())),
    };
    static_sql(
        "SELECT pg_advisory_xact_lock(hashtextextended('contact:' || $1::text || ':' || $2, 0))",
        (
            bind::<SqlUuid, _>(workspace_id),
            bind::<Text, _>(address.as_str()),
        ),
    )
    .execute(conn)
    .await?;
    // A contact's name is 1 to 100 characters: a long address is cut to fit.
    let name: String = name
        .map(str::trim)
        .filter(|n| !n.is_empty() && !n.chars().any(char::is_control))
        .unwrap_or(address.as_str())
        .chars()
        .take(100)
        .collect();
    let found: Found = static_sql(
        "WITH found AS ( \
             SELECT id FROM resources \
             WHERE kind = 'contact' AND workspace_id = $1 \
               AND (data ->> 'phone' = $2 OR lower(data ->> 'email') = $3) \
             ORDER BY created_at, id LIMIT 1), \
         made AS ( \
             INSERT INTO resources (id, workspace_id, kind, name, data) \
             SELECT $4, $1, 'contact', $5, jsonb_strip_nulls(jsonb_build_object('phone', $2, 'email', $3)) \
             WHERE NOT EXISTS (SELECT 1 FROM found) RETURNING id) \
         SELECT id FROM found UNION ALL SELECT id FROM made",
        (
            bind::<SqlUuid, _>(workspace_id),
            bind::<Nullable<Text>, _>(phone),
            bind::<Nullable<Text>, _>(email),
            bind::<SqlUuid, _>(Uuid::now_v7()),
            bind::<Text, _>(&name),
        ),
    )
    .get_result(conn)
    .await?;
    Ok(found.id)
}

/// Inserts the conversation; `None` when the workspace has one with its external id.
pub async fn insert(
    conn: &mut AsyncPgConnection,
    new: &NewConversation<'_>,
) -> QueryResult<Option<ConversationRow>> {
    diesel::insert_into(conversations::table)
        .values((
            conversations::id.eq(Uuid::now_v7()),
            conversations::workspace_id.eq(new.workspace_id),
            conversations::external_id.eq(new.external_id),
            conversations::agent_id.eq(new.agent_id),
            conversations::contact_id.eq(new.contact_id),
            conversations::channel.eq(new.channel.as_db()),
            conversations::started_at.eq(new.started_at),
            conversations::last_activity_at.eq(new.started_at),
            conversations::service_token_id.eq(new.service_token_id),
        ))
        .on_conflict_do_nothing()
        .returning(ConversationRow::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// What [`append`] counts within: the period usage counts in, the caps on messages and
/// SMS, and (for an append outside a transaction) what it must leave to one.
pub struct Terms {
    pub period_start: DateTime<Utc>,
    pub caps: [i32; 2],
    /// Outside a transaction: the usage at which an alert goes out, of messages and of SMS,
    /// and the `service.accessed` event the workspace must have had since a time. An append
    /// that crosses an alert or finds no such event writes nothing and answers `None`.
    pub fast: Option<Fast>,
}

pub struct Fast {
    pub message_levels: Vec<i64>,
    pub sms_levels: Vec<i64>,
    pub accessed_since: DateTime<Utc>,
    pub accessed_action: &'static str,
}

/// What `append_messages` refused, by the constraint it names.
fn refused(
    err: diesel::result::Error,
    terms: &Terms,
) -> Result<Option<Appended>, super::ConversationError> {
    use super::ConversationError as E;
    use crate::usage::{Metric, UsageError};
    let diesel::result::Error::DatabaseError(_, ref info) = err else {
        return Err(E::Db(err));
    };
    let over = |metric: Metric, limit: i32| {
        E::Usage(UsageError::LimitReached {
            metric: metric.as_db(),
            limit,
        })
    };
    Err(match (info.constraint_name(), info.details()) {
        (Some("append_in_transaction"), _) => return Ok(None),
        (Some("append_conversation_exists"), _) => E::NotFound("Conversation"),
        (Some("append_conversation_open"), _) => E::Closed,
        (Some("append_segments_sms_only"), _) => {
            E::Invalid("`segments` is for SMS conversations only.".into())
        }
        (Some("append_same_message"), _) => E::IdReused("message"),
        (Some("append_within_limits"), Some("sms")) => over(Metric::Sms, terms.caps[1]),
        (Some("append_within_limits"), _) => over(Metric::Messages, terms.caps[0]),
        _ => E::Db(err),
    })
}

/// What an append did.
pub struct Appended {
    pub conversation: ConversationRow,
    /// The batch's messages as stored, in its order.
    pub batch: Vec<MessageRow>,
    /// Outbound messages counted, and the period's total after (none when none).
    pub messages: (i32, Option<i64>),
    /// Outbound SMS segments counted, and the period's total after.
    pub sms: (i32, Option<i64>),
}

/// One row of `append_messages`: a message of the batch beside the conversation.
#[derive(QueryableByName)]
struct AppendedRow {
    #[diesel(embed)]
    conversation: ConversationRow,
    #[diesel(sql_type = SqlUuid)]
    m_id: Uuid,
    #[diesel(sql_type = Text)]
    m_external_id: String,
    #[diesel(sql_type = Text)]
    m_direction: String,
    #[diesel(sql_type = Text)]
    m_body: String,
    #[diesel(sql_type = Timestamptz)]
    m_sent_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<SmallInt>)]
    m_segments: Option<i16>,
    #[diesel(sql_type = Int4)]
    messages_counted: i32,
    #[diesel(sql_type = Nullable<BigInt>)]
    messages_total: Option<i64>,
    #[diesel(sql_type = Int4)]
    sms_counted: i32,
    #[diesel(sql_type = Nullable<BigInt>)]
    sms_total: Option<i64>,
}

/// Appends the batch to the conversation in one statement (`append_messages`, migration
/// 000061), which enters the workspace itself: on a connection outside a transaction it is
/// the whole write, all or nothing. The messages the conversation has are not written or
/// counted again; an SMS message's segments default to 1. `None`: refused for what only a
/// transaction records ([`Terms::fast`]).
pub async fn append(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    conversation_id: Uuid,
    batch: &[NewMessage],
    terms: &Terms,
) -> Result<Option<Appended>, super::ConversationError> {
    let column = |f: fn(&NewMessage) -> &str| batch.iter().map(f).collect::<Vec<&str>>();
    let fast = terms.fast.as_ref();
    let rows: QueryResult<Vec<AppendedRow>> = static_sql(
        "SELECT * FROM append_messages($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        (
            bind::<SqlUuid, _>(workspace_id),
            bind::<SqlUuid, _>(conversation_id),
            bind::<Array<SqlUuid>, _>(batch.iter().map(|_| Uuid::now_v7()).collect::<Vec<_>>()),
            bind::<Array<Text>, _>(column(|m| m.external_id.as_str())),
            bind::<Array<Text>, _>(column(|m| m.direction.as_db())),
            bind::<Array<Text>, _>(column(|m| m.text.as_str())),
            bind::<Array<Timestamptz>, _>(batch.iter().map(|m| m.sent_at).collect::<Vec<_>>()),
            bind::<Array<Nullable<SmallInt>>, _>(batch.iter().map(|m| m.segments).collect::<Vec<_>>()),
            bind::<Timestamptz, _>(terms.period_start),
            bind::<Array<Int4>, _>(terms.caps.to_vec()),
            bind::<Array<BigInt>, _>(fast.map_or(&[][..], |f| &f.message_levels[..])),
            bind::<Array<BigInt>, _>(fast.map_or(&[][..], |f| &f.sms_levels[..])),
            bind::<Nullable<Timestamptz>, _>(fast.map(|f| f.accessed_since)),
            bind::<Text, _>(fast.map_or("", |f| f.accessed_action)),
        ),
    )
    .load(conn)
    .await;
    let rows = match rows {
        Ok(rows) => rows,
        Err(err) => return refused(err, terms),
    };
    let first = rows
        .as_slice()
        .first()
        .ok_or(super::ConversationError::NotFound("Conversation"))?;
    let (conversation, messages, sms) = (
        first.conversation.clone(),
        (first.messages_counted, first.messages_total),
        (first.sms_counted, first.sms_total),
    );
    let batch = rows
        .into_iter()
        .map(|row| MessageRow {
            id: row.m_id,
            conversation_id,
            external_id: row.m_external_id,
            direction: row.m_direction,
            body: row.m_body,
            sent_at: row.m_sent_at,
            segments: row.m_segments,
        })
        .collect();
    Ok(Some(Appended {
        conversation,
        batch,
        messages,
        sms,
    }))
}

pub async fn close(
    conn: &mut AsyncPgConnection,
    conversation: &ConversationRow,
    ended_at: DateTime<Utc>,
    duration_seconds: Option<i32>,
) -> QueryResult<ConversationRow> {
    let key = (conversation.workspace_id, conversation.id);
    diesel::update(conversations::table.find(key))
        .set((
            conversations::status.eq(super::Status::Closed.as_db()),
            conversations::closed_at.eq(ended_at),
            conversations::duration_seconds.eq(duration_seconds),
            conversations::last_activity_at.eq(diesel::dsl::sql::<Timestamptz>(
                "GREATEST(last_activity_at, ",
            )
            .bind::<Timestamptz, _>(ended_at)
            .sql(")")),
        ))
        .returning(ConversationRow::as_returning())
        .get_result(conn)
        .await
}

/// Deletes the conversation (its messages go with it); the row as it was.
pub async fn delete(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    id: Uuid,
) -> QueryResult<Option<ConversationRow>> {
    diesel::delete(conversations::table.find((workspace_id, id)))
        .returning(ConversationRow::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// What a list of conversations is narrowed to.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub agent_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
    pub channel: Option<super::Channel>,
    pub status: Option<super::Status>,
    /// Last activity at or after.
    pub since: Option<DateTime<Utc>>,
    /// Last activity before.
    pub until: Option<DateTime<Utc>>,
    /// Words the messages contain (PostgreSQL's web search syntax).
    pub search: Option<String>,
}

/// A conversation in a list, with the list's total, and for a search its rank and the
/// best-matching message's snippet.
#[derive(QueryableByName)]
pub struct Listed {
    #[diesel(embed)]
    pub conversation: ConversationRow,
    #[diesel(sql_type = BigInt)]
    pub total: i64,
    #[diesel(sql_type = BigInt)]
    pub rank: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub snippet: Option<String>,
}

/// The list's filters, as every statement below applies them to `c` (`$1` the workspace,
/// `$2` to `$7` the filter's fields).
macro_rules! filtered {
    () => {
        "c.workspace_id = $1 \
         AND ($2::uuid IS NULL OR c.agent_id = $2) \
         AND ($3::uuid IS NULL OR c.contact_id = $3) \
         AND ($4::text IS NULL OR c.channel = $4) \
         AND ($5::text IS NULL OR c.status = $5) \
         AND ($6::timestamptz IS NULL OR c.last_activity_at >= $6) \
         AND ($7::timestamptz IS NULL OR c.last_activity_at < $7)"
    };
}

type FilterBinds<'a> = (
    crate::db::Bind<SqlUuid, Uuid>,
    crate::db::Bind<Nullable<SqlUuid>, Option<Uuid>>,
    crate::db::Bind<Nullable<SqlUuid>, Option<Uuid>>,
    crate::db::Bind<Nullable<Text>, Option<&'static str>>,
    crate::db::Bind<Nullable<Text>, Option<&'static str>>,
    crate::db::Bind<Nullable<Timestamptz>, Option<DateTime<Utc>>>,
    crate::db::Bind<Nullable<Timestamptz>, Option<DateTime<Utc>>>,
    crate::db::Bind<Nullable<Text>, Option<&'a str>>,
    crate::db::Bind<Nullable<SqlUuid>, Option<Uuid>>,
    crate::db::Bind<Nullable<Timestamptz>, Option<DateTime<Utc>>>,
    crate::db::Bind<BigInt, i64>,
);

fn filter_binds<'a>(workspace_id: Uuid, filter: &'a Filter, page: &Page) -> FilterBinds<'a> {
    (
        bind::<SqlUuid, _>(workspace_id),
        bind::<Nullable<SqlUuid>, _>(filter.agent_id),
        bind::<Nullable<SqlUuid>, _>(filter.contact_id),
        bind::<Nullable<Text>, _>(filter.channel.map(super::Channel::as_db)),
        bind::<Nullable<Text>, _>(filter.status.map(super::Status::as_db)),
        bind::<Nullable<Timestamptz>, _>(filter.since),
        bind::<Nullable<Timestamptz>, _>(filter.until),
        bind::<Nullable<Text>, _>(filter.search.as_deref()),
        bind::<Nullable<SqlUuid>, _>(page.after.map(|cursor| cursor.id)),
        bind::<Nullable<Timestamptz>, _>(page.after.map(|cursor| cursor.at)),
        bind::<BigInt, _>(page.limit()),
    )
}

/// One page of the workspace's conversations, newest activity first, or for a search best
/// match first: one statement either way.
pub async fn page(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    filter: &Filter,
    page: &Page,
) -> Result<Vec<Listed>, super::ConversationError> {
    let binds = filter_binds(workspace_id, filter, page);
    // Planned for the filter given: a generic plan of `$n IS NULL OR ...` reads rows from
    // the table that an index holds (the busy workspace's count: 22 ms, not 7).
    let sql = if filter.search.is_some() {
        SEARCH
    } else {
        LIST
    };
    static_sql(sql, binds)
        .planned_each_run()
        .load(conn)
        .await
        .map_err(|err| match err {
            // `conversation_search_hits` refuses what no index can answer (migration 000036).
            diesel::result::Error::DatabaseError(_, ref info)
                if info.constraint_name() == Some("conversation_search_words") =>
            {
                super::ConversationError::Invalid(
                    "`search` needs a word to find: not only words left out (`-word`), or \
                     `or` with one."
                        .into(),
                )
            }
            err => err.into(),
        })
}

/// Newest activity first, by `conversations_page`; `$8` (the search) is null here. The
/// total is `conversation_totals`' when only the channel or status is filtered on
/// (migration 000034), else a count.
const LIST: &str = concat!(
    "WITH matching AS (SELECT 1 FROM conversations c WHERE ",
    filtered!(),
    " AND $8::text IS NULL) \
     SELECT ",
    conversation_columns!(),
    ", \
            CASE WHEN $2::uuid IS NULL AND $3::uuid IS NULL AND $6::timestamptz IS NULL \
                      AND $7::timestamptz IS NULL \
                 THEN (SELECT COALESCE(sum(t.conversations), 0)::bigint \
                       FROM conversation_totals t \
                       WHERE t.workspace_id = $1 AND ($4::text IS NULL OR t.channel = $4) \
                         AND ($5::text IS NULL OR t.status = $5)) \
                 ELSE (SELECT count(*) FROM matching) END AS total, 0::bigint AS rank, \
            NULL::text AS snippet \
     FROM conversations c WHERE ",
    filtered!(),
    " AND ($9::uuid IS NULL OR (c.last_activity_at, c.id) < ($10, $9)) \
     ORDER BY c.last_activity_at DESC, c.id DESC LIMIT $11"
);

/// Best match first: each matching conversation's best-ranked message (ranks in
/// millionths, ties by id, which is also the cursor: `$10` carries the rank as
/// microseconds), among the conversations the filters keep. The matches come from
/// `conversation_search_hits` (migrations 000033 and 000035), which reads through the GIN
/// index; conversations are read for the filters only when there are some (planned for the
/// binds, the test folds away), and for the page's rows.
const SEARCH: &str = concat!(
    "WITH q AS (SELECT websearch_to_tsquery('english', $8) AS q), \
     hits AS MATERIALIZED ( \
         SELECT h.conversation_id, h.rank, h.best \
         FROM conversation_search_hits($1, $8) h \
         WHERE ($2::uuid IS NULL AND $3::uuid IS NULL AND $4::text IS NULL AND $5::text IS NULL \
                AND $6::timestamptz IS NULL AND $7::timestamptz IS NULL) \
            OR EXISTS (SELECT 1 FROM conversations c WHERE c.id = h.conversation_id AND ",
    filtered!(),
    ")), \
     page AS ( \
         SELECT h.* FROM hits h \
         WHERE $9::uuid IS NULL \
            OR (h.rank, h.conversation_id) < (extract(epoch FROM $10::timestamptz) * 1000000, $9) \
         ORDER BY h.rank DESC, h.conversation_id DESC LIMIT $11) \
     SELECT ",
    conversation_columns!(),
    ", \
            (SELECT count(*) FROM hits) AS total, p.rank, \
            (SELECT ts_headline('english', m.body, q.q, 'MaxFragments=1, MaxWords=20, MinWords=5') \
             FROM messages m, q WHERE m.workspace_id = $1 AND m.id = p.best) AS snippet \
     FROM page p JOIN conversations c ON c.id = p.conversation_id AND c.workspace_id = $1 \
     ORDER BY p.rank DESC, c.id DESC"
);

/// One page of a conversation's messages, oldest first.
pub async fn messages_page(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    conversation_id: Uuid,
    page: &Page,
) -> QueryResult<Vec<MessageRow>> {
    let mut query = messages::table
        .filter(messages::workspace_id.eq(workspace_id))
        .filter(messages::conversation_id.eq(conversation_id))
        .select(MessageRow::as_select())
        .order((messages::sent_at, messages::id))
        .limit(page.limit())
        .into_boxed();
    if let Some(after) = page.after {
        query = query.filter(
            messages::sent_at.gt(after.at).or(messages::sent_at
                .eq(after.at)
                .and(messages::id.gt(after.id))),
        );
    }
    query.load(conn).await
}

/// What the retention round deletes: conversations past their workspace's retention, the
/// contact days older than what it keeps, and the stream's conversation events older than
/// two days (migration 000074).
#[derive(Clone, Copy, Debug)]
pub enum Pruned {
    Conversations,
    ContactDays,
    Events,
}

/// Deletes up to `batch` of `what` (as the owner: the round works across workspaces;
/// `prune_conversations`, `prune_contact_days` of migration 000066,
/// `prune_conversation_events` of 000074); how many.
pub async fn prune(
    conn: &mut AsyncPgConnection,
    what: Pruned,
    now: DateTime<Utc>,
    batch: i32,
) -> QueryResult<i32> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = Int4)]
        pruned: i32,
    }
    let sql = match what {
        Pruned::Conversations => "SELECT prune_conversations($1, $2) AS pruned",
        Pruned::ContactDays => "SELECT prune_contact_days($1, $2) AS pruned",
        Pruned::Events => "SELECT prune_conversation_events($1, $2) AS pruned",
    };
    let count: Count = static_sql(sql, (bind::<Timestamptz, _>(now), bind::<Int4, _>(batch)))
        .get_result(conn)
        .await?;
    Ok(count.pruned)
}
