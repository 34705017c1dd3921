//! Conversations: one agent talking with one contact on one channel, and the messages they
//! exchanged. The agent runtime writes them with a service token; every role reads them;
//! Owners and Admins delete them.
//!
//! Rules:
//! - Every write is idempotent by the runtime's own ids: starting a conversation whose
//!   `externalId` the workspace has seen answers that conversation, and a message whose
//!   `externalId` the conversation has seen is not written or counted again. The same id
//!   for something different (another agent or channel, another text) is a `CONFLICT`.
//! - An append is all or nothing: up to [`MAX_BATCH`] messages, written and counted toward
//!   the workspace's usage (outbound messages as messages, an outbound SMS's segments as SMS)
//!   by one statement, `append_messages` (migration 000061). A batch that would pass a limit
//!   is refused with `USAGE_LIMIT_REACHED` and writes nothing, as does a read-only workspace
//!   (`TRIAL_EXPIRED`). The billing rules that decide those stay here (`crate::billing`),
//!   read by the statement before; an append whose count crosses an alert threshold, or is
//!   the day's first counted write, is made in a transaction that records those with it.
//! - Appends to one conversation run one after another (its row is locked), so its counts
//!   and first-reply time see every message exactly once.
//! - The contact is found by the address the runtime saw, normalised (E.164 for phone
//!   numbers, by the `phonenumber` crate; lower case for email addresses), and made when the
//!   workspace has none, in the same transaction. Two starts with one new address make one
//!   contact: the lookup holds a transaction lock on the address.
//! - A closed conversation takes no more messages; closing it again changes nothing.
//! - The runtime's writes are not audited (the conversation records which service token
//!   wrote it); deleting a conversation is. A start, a close and an append that added
//!   messages are events of the workspace's stream (`workspaceEvents`), written by a trigger
//!   when their transaction commits (migration 000074).

pub mod analytics;
pub mod graphql;
pub mod model;

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use serde_json::json;
use uuid::Uuid;

use crate::audit::{self, Action, Event, Target, Trail};
use crate::auth::service_tokens::Service;
use crate::billing::Live;
use crate::db::{Db, DbError};
use crate::error::ApiError;
use crate::usage::{alerts, Metric, UsageError};
use analytics::Tally;
use diesel_async::AsyncConnection;
use model::{Appended, ConversationRow, MessageRow, NewConversation, Pruned};

/// Messages in one append, at most.
pub const MAX_BATCH: usize = 100;
/// A message's text, at most (characters).
pub const MAX_TEXT_CHARS: usize = 10_000;
/// An SMS's segments, at most.
pub const MAX_SEGMENTS: i16 = 100;
/// The runtime's ids, at most (characters).
pub const MAX_ID_CHARS: usize = 200;

macro_rules! db_names {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $db:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name { $($variant),* }

        impl $name {
            pub fn as_db(self) -> &'static str {
                match self { $($name::$variant => $db),* }
            }

            pub fn from_db(text: &str) -> Option<Self> {
                match text { $($db => Some($name::$variant),)* _ => None }
            }
        }
    };
}

db_names!(
    /// Where a conversation happens.
    Channel { WebChat = "web_chat", Sms = "sms", PhoneCall = "phone_call", Email = "email" }
);
db_names!(
    /// Whether a conversation still takes messages.
    Status { Open = "open", Closed = "closed" }
);
db_names!(
    /// Who a message came from: the contact (inbound) or the agent (outbound).
    Direction { Inbound = "inbound", Outbound = "outbound" }
);

#[derive(Debug, thiserror::Error)]
pub enum ConversationError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found.")]
    NotFound(&'static str),
    #[error("This conversation is closed: it takes no more messages.")]
    Closed,
    #[error("This {0} externalId was used for something else.")]
    IdReused(&'static str),
    #[error(transparent)]
    Usage(#[from] UsageError),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
    #[error(transparent)]
    Pool(#[from] DbError),
}

impl From<ConversationError> for ApiError {
    fn from(err: ConversationError) -> Self {
        match err {
            ConversationError::Invalid(message) => ApiError::bad_input(message),
            ConversationError::NotFound(what) => ApiError::not_found(what),
            ConversationError::Closed | ConversationError::IdReused(_) => {
                ApiError::conflict(err.to_string())
            }
            ConversationError::Usage(err) => err.into(),
            ConversationError::Db(err) => err.into(),
            ConversationError::Pool(err) => err.into(),
        }
    }
}

fn invalid(message: impl Into<String>) -> ConversationError {
    ConversationError::Invalid(message.into())
}

/// An address as the runtime saw it, normalised: how a contact is found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    /// E.164.
    Phone(String),
    /// Lower case.
    Email(String),
}

impl Address {
    /// The phone number if given (it wins), else the email address.
    pub fn parse(phone: Option<&str>, email: Option<&str>) -> Result<Address, ConversationError> {
        fn given(value: Option<&str>) -> Option<&str> {
            value.map(str::trim).filter(|v| !v.is_empty())
        }
        if let Some(phone) = given(phone) {
            let number = Some(phone)
                .filter(|text| phonenumber::is_viable(text))
                .and_then(|text| phonenumber::parse(None, text).ok())
                .ok_or_else(|| {
                    invalid("`contact.phone` must be a phone number with its country code, such as +14155550123.")
                })?;
            let e164 = number.format().mode(phonenumber::Mode::E164).to_string();
            return Ok(Address::Phone(e164));
        }
        let email =
            given(email).ok_or_else(|| invalid("`contact` needs a `phone` or an `email`."))?;
        let email = crate::text::EmailAddress::parse(email)
            .map_err(|_| invalid("`contact.email` is not an email address."))?;
        Ok(Address::Email(email.as_str().to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        match self {
            Address::Phone(text) | Address::Email(text) => text,
        }
    }
}

/// What the runtime sends to start (or continue) a conversation.
pub struct Start<'a> {
    pub external_id: &'a str,
    pub agent_id: Uuid,
    pub channel: Channel,
    pub address: Address,
    /// The contact's name, for a contact made now (else the address).
    pub name: Option<&'a str>,
    pub started_at: DateTime<Utc>,
}

/// Starts the conversation, or answers the one started with the same `external_id`.
pub async fn start(
    conn: &mut AsyncPgConnection,
    service: &Service,
    workspace_id: Uuid,
    start: Start<'_>,
    now: DateTime<Utc>,
) -> Result<ConversationRow, ConversationError> {
    check_external_id(start.external_id, "externalId")?;
    writable(conn, workspace_id, now).await?;
    if let Some(row) = model::find_external(conn, workspace_id, start.external_id).await? {
        return same_start(row, &start);
    }
    if !model::is_agent(conn, workspace_id, start.agent_id).await? {
        return Err(invalid("`agentId` must name an agent in this workspace."));
    }
    let contact_id = model::contact_for(conn, workspace_id, &start.address, start.name).await?;
    let new = NewConversation {
        workspace_id,
        external_id: start.external_id,
        agent_id: start.agent_id,
        contact_id,
        channel: start.channel,
        started_at: start.started_at,
        service_token_id: service.token_id,
    };
    match model::insert(conn, &new).await? {
        Some(row) => {
            crate::live::wakes::note_at_commit(workspace_id);
            let tally = Tally {
                at: row.started_at,
                started: 1,
                calls: i32::from(start.channel == Channel::PhoneCall),
                ..Tally::default()
            };
            analytics::roll_up(conn, workspace_id, row.agent_id, &row.channel, &[tally]).await?;
            Ok(row)
        }
        // Another start with this id won the race (its transaction has committed).
        None => model::find_external(conn, workspace_id, start.external_id)
            .await?
            .ok_or(ConversationError::NotFound("Conversation"))
            .and_then(|row| same_start(row, &start)),
    }
}

fn same_start(
    row: ConversationRow,
    start: &Start<'_>,
) -> Result<ConversationRow, ConversationError> {
    let same = row.agent_id == Some(start.agent_id) && row.channel == start.channel.as_db();
    same.then_some(row)
        .ok_or(ConversationError::IdReused("conversation"))
}

/// One message as the runtime sends it.
#[derive(Clone, Debug)]
pub struct NewMessage {
    pub external_id: String,
    pub direction: Direction,
    pub text: String,
    pub sent_at: DateTime<Utc>,
    pub segments: Option<i16>,
}

/// Appends `messages` to the conversation, all or none, counting the new ones toward the
/// workspace's usage; answers the conversation and the batch's messages in its order
/// (those written before included, so a retry gets the same answer).
///
/// Two statements, each its own transaction: the workspace with its limits, then the append
/// within them ([`model::append`]). An append that crosses an alert threshold or is the
/// day's first counted write is made again in one transaction that also records those.
pub async fn append(
    db: &Db,
    trail: &Trail,
    workspace_id: Uuid,
    conversation_id: Uuid,
    messages: &[NewMessage],
    now: DateTime<Utc>,
) -> Result<(ConversationRow, Vec<MessageRow>), ConversationError> {
    check_batch(messages)?;
    let mut conn = db.conn_outside_tenancy().await?;
    let live = writable(&mut conn, workspace_id, now).await?;
    let fast = model::Fast {
        message_levels: alerts::levels(live.limits.messages),
        sms_levels: alerts::levels(live.limits.sms),
        accessed_since: crate::usage::access_day(now),
        accessed_action: Action::ServiceAccessed.as_db(),
    };
    let fast_terms = terms(&live, now, Some(fast));
    let appended = model::append(
        &mut conn,
        workspace_id,
        conversation_id,
        messages,
        &fast_terms,
    );
    if let Some(done) = appended.await? {
        crate::live::wakes::note_at_commit(workspace_id);
        return Ok((done.conversation, done.batch));
    }
    // A connection inside the workspace for the transaction's other writes (the alert, the
    // event); the first goes back to the pool first, so an append never holds two.
    drop(conn);
    let mut conn = db.conn_in(workspace_id).await?;
    conn.transaction(async |conn| {
        let live = writable(conn, workspace_id, now).await?;
        let terms = terms(&live, now, None);
        let appended = model::append(conn, workspace_id, conversation_id, messages, &terms);
        let Some(Appended {
            conversation,
            batch,
            messages,
            sms,
        }) = appended.await?
        else {
            // Only the fast path (`Fast` terms) is refused for what a transaction records.
            let asked = "append_messages refused an append inside a transaction";
            return Err(diesel::result::Error::QueryBuilderError(asked.into()).into());
        };
        let moves: Vec<(Metric, i32, i64)> = [(Metric::Messages, messages), (Metric::Sms, sms)]
            .into_iter()
            .filter_map(|(metric, (quantity, total))| Some((metric, quantity, total?)))
            .filter(|(_, quantity, _)| *quantity > 0)
            .collect();
        let at = (workspace_id, terms.period_start);
        crate::usage::counted(conn, trail, &live.limits, at, &moves, now).await?;
        crate::live::wakes::note_at_commit(workspace_id);
        Ok((conversation, batch))
    })
    .await
}

/// What an append counts within, for `live` at `now`.
fn terms(live: &Live, now: DateTime<Utc>, fast: Option<model::Fast>) -> model::Terms {
    model::Terms {
        period_start: live.usage_period(now).0,
        caps: [live.limits.messages, live.limits.sms],
        fast,
    }
}

/// Closes the conversation (at `ended_at`, `now` if not given; `duration_seconds` for
/// calls); closing a closed one answers it as it is.
pub async fn close(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    conversation_id: Uuid,
    ended_at: Option<DateTime<Utc>>,
    duration_seconds: Option<i32>,
    now: DateTime<Utc>,
) -> Result<ConversationRow, ConversationError> {
    if duration_seconds.is_some_and(|d| !(0..=7 * 86_400).contains(&d)) {
        return Err(invalid("`durationSeconds` must be 0 to 604800 (a week)."));
    }
    writable(conn, workspace_id, now).await?;
    let conversation = model::lock(conn, workspace_id, conversation_id)
        .await?
        .ok_or(ConversationError::NotFound("Conversation"))?;
    if conversation.status == Status::Closed.as_db() {
        return Ok(conversation);
    }
    let ended_at = ended_at.unwrap_or(now).max(conversation.started_at);
    let closed = model::close(conn, &conversation, ended_at, duration_seconds).await?;
    crate::live::wakes::note_at_commit(workspace_id);
    let tally = Tally {
        at: ended_at,
        closed: 1,
        call_seconds: duration_seconds.map_or(0, i64::from),
        ..Tally::default()
    };
    analytics::roll_up(
        conn,
        workspace_id,
        closed.agent_id,
        &closed.channel,
        &[tally],
    )
    .await?;
    Ok(closed)
}

/// Deletes the conversation with its messages, and records who did.
pub async fn delete(
    conn: &mut AsyncPgConnection,
    trail: &Trail,
    workspace_id: Uuid,
    conversation_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), ConversationError> {
    let gone = model::delete(conn, workspace_id, conversation_id)
        .await?
        .ok_or(ConversationError::NotFound("Conversation"))?;
    let event = Event {
        action: Action::ConversationDeleted,
        target: Target {
            kind: "conversation",
            id: conversation_id.to_string(),
        },
        changes: json!({ "channel": gone.channel, "messages": gone.message_count }),
    };
    audit::record(conn, workspace_id, trail, event, now).await?;
    Ok(())
}

/// Rows deleted per statement by [`prune`], and statements per round at most (what is
/// left waits for the next round), for conversations and contact days.
const PRUNE_BATCHES: Batches = Batches {
    rows: 500,
    statements: 50,
};
/// The same for the stream's conversation events: one per append, tiny, and pruned by the
/// `at` index, so a round (every `TRIAL_SCAN_SECS`, 10 minutes by default) deletes up to a
/// million, more than 1,600 appends a second write.
const EVENT_BATCHES: Batches = Batches {
    rows: 10_000,
    statements: 100,
};

struct Batches {
    rows: i32,
    statements: usize,
}

/// Deletes, in every workspace that keeps conversations a limited time, those whose last
/// activity is older than that (with their messages; rollups and usage stay), and the
/// contact days older than that (who talked when goes with the conversations); and in
/// every workspace, the stream's conversation events older than two days (a cursor
/// resumes for one): oldest first, in bounded batches. Returns how many conversations it
/// deleted.
pub async fn prune(conn: &mut AsyncPgConnection, now: DateTime<Utc>) -> diesel::QueryResult<usize> {
    // Apart: a failure of one kind leaves the others' rounds as they are.
    let events = in_batches(conn, now, Pruned::Events, &EVENT_BATCHES).await;
    let deleted = in_batches(conn, now, Pruned::Conversations, &PRUNE_BATCHES).await;
    let days = in_batches(conn, now, Pruned::ContactDays, &PRUNE_BATCHES).await;
    let (events, days) = (events?, days?);
    tracing::debug!(events, days, "pruned the conversations' retention");
    deleted
}

/// Deletes batches of `what` until one deletes fewer than a batch, at most `batches`'
/// statements; how many it deleted.
async fn in_batches(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    what: Pruned,
    batches: &Batches,
) -> diesel::QueryResult<usize> {
    let mut deleted = 0;
    for _ in 0..batches.statements {
        let n = model::prune(conn, what, now, batches.rows).await?;
        deleted += usize::try_from(n).unwrap_or(0);
        if n < batches.rows {
            break;
        }
    }
    Ok(deleted)
}

/// The live workspace with its plan's limits, if it takes writes now.
async fn writable(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Live, ConversationError> {
    let live = crate::billing::live_with_limits(conn, workspace_id, now)
        .await?
        .ok_or(ConversationError::NotFound("Workspace"))?;
    if crate::billing::status::standing(&live.workspace, now).read_only {
        return Err(UsageError::ReadOnly.into());
    }
    Ok(live)
}

fn check_external_id(id: &str, field: &str) -> Result<(), ConversationError> {
    let fits = (1..=MAX_ID_CHARS).contains(&id.chars().count());
    if !fits || id.chars().any(char::is_control) || id.trim() != id {
        return Err(invalid(format!(
            "`{field}` must be 1 to {MAX_ID_CHARS} characters, with no control characters or surrounding spaces."
        )));
    }
    Ok(())
}

fn check_batch(messages: &[NewMessage]) -> Result<(), ConversationError> {
    if !(1..=MAX_BATCH).contains(&messages.len()) {
        return Err(invalid(format!(
            "`messages` must hold 1 to {MAX_BATCH} messages."
        )));
    }
    let mut ids = std::collections::HashSet::new();
    for message in messages {
        check_external_id(&message.external_id, "messages.externalId")?;
        if !ids.insert(message.external_id.as_str()) {
            return Err(invalid(
                "Each message in `messages` needs its own `externalId`.",
            ));
        }
        if message
            .segments
            .is_some_and(|n| !(1..=MAX_SEGMENTS).contains(&n))
        {
            return Err(invalid(format!("`segments` must be 1 to {MAX_SEGMENTS}.")));
        }
        let chars = message.text.chars().count();
        if !(1..=MAX_TEXT_CHARS).contains(&chars) || message.text.contains('\0') {
            return Err(invalid(format!(
                "`messages.text` must be 1 to {MAX_TEXT_CHARS} characters, with no NUL."
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_are_found_by_their_e164_form() {
        let a = Address::parse(Some("+1 (415) 555-0123"), None).expect("parses");
        let b = Address::parse(Some("+14155550123"), Some("x@example.com")).expect("parses");
        assert_eq!(a, Address::Phone("+14155550123".into()));
        assert_eq!(a, b);
        assert!(Address::parse(Some("555-0123"), None).is_err());
        assert!(Address::parse(Some("call me"), None).is_err());
    }

    #[test]
    fn email_addresses_are_found_in_lower_case() {
        let a = Address::parse(None, Some(" Ada@Example.COM ")).expect("parses");
        assert_eq!(a, Address::Email("ada@example.com".into()));
        assert!(Address::parse(None, Some("nope")).is_err());
        assert!(Address::parse(None, None).is_err());
    }

    fn message(id: &str, text: &str) -> NewMessage {
        NewMessage {
            external_id: id.into(),
            direction: Direction::Inbound,
            text: text.into(),
            sent_at: Utc::now(),
            segments: None,
        }
    }

    #[test]
    fn batches_are_bounded_and_their_ids_distinct() {
        assert!(check_batch(&[]).is_err());
        let many: Vec<NewMessage> = (0..=MAX_BATCH)
            .map(|n| message(&n.to_string(), "hi"))
            .collect();
        assert!(check_batch(&many).is_err());
        assert!(check_batch(&many[..MAX_BATCH]).is_ok());
        assert!(check_batch(&[message("a", "hi"), message("a", "again")]).is_err());
        assert!(check_batch(&[message("a", "")]).is_err());
        assert!(check_batch(&[message("a", "nul\0")]).is_err());
        assert!(check_batch(&[message(" a", "hi")]).is_err());
    }

    #[test]
    fn segments_are_bounded() {
        let mut sms = message("a", "hi");
        for (segments, ok) in [
            (Some(1), true),
            (Some(MAX_SEGMENTS), true),
            (None, true),
            (Some(0), false),
            (Some(MAX_SEGMENTS + 1), false),
        ] {
            sms.segments = segments;
            assert_eq!(check_batch(&[sms.clone()]).is_ok(), ok, "{segments:?}");
        }
    }
}
