//! The `Conversation` and `Message` types, the workspace's conversation list, and the
//! runtime's mutations: parse, call `conversations`, map.

use std::marker::PhantomData;

use async_graphql::{Context, Enum, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use uuid::Uuid;

use super::analytics::{self, Interval, Range, Report};
use super::model::{self, ConversationRow, Filter, MessageRow};
use super::{Address, Channel, Direction, NewMessage, Start, Status};
use crate::db::page::{Cursor, Page};
use crate::error::{ApiError, ApiResult};
use crate::graphql::context::{parse_id, request};
use crate::graphql::guard::{least, require_role, RoleGuard, ServiceGuard};
use crate::graphql::pagination::PageOf;
use crate::graphql::scalars::Timestamp;
use crate::resources::kinds::{Agent, AgentKind, Contact, ContactKind};
use crate::resources::model::ResourceRow;
use crate::resources::Kind as _;
use crate::roles::Action;
use crate::workspaces::model::WorkspaceRow;

/// Where a conversation happens.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(
    name = "ConversationChannel",
    remote = "Channel",
    rename_items = "SCREAMING_SNAKE_CASE"
)]
pub enum GqlChannel {
    /// The chat widget on a website.
    WebChat,
    /// Text messages.
    Sms,
    /// A phone call (its messages are the transcript).
    PhoneCall,
    /// Email.
    Email,
}

/// Whether a conversation still takes messages.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(
    name = "ConversationStatus",
    remote = "Status",
    rename_items = "SCREAMING_SNAKE_CASE"
)]
pub enum GqlStatus {
    /// Going on.
    Open,
    /// Ended: it takes no more messages.
    Closed,
}

/// Who a message came from.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(
    name = "MessageDirection",
    remote = "Direction",
    rename_items = "SCREAMING_SNAKE_CASE"
)]
pub enum GqlDirection {
    /// From the contact.
    Inbound,
    /// From the agent.
    Outbound,
}

/// One agent talking with one contact on one channel.
pub struct Conversation {
    row: ConversationRow,
    agent: Option<Agent>,
    contact: Option<Contact>,
    /// For a search: the best-matching message's words in context.
    snippet: Option<String>,
    /// Its place in the list it was read in.
    cursor: Cursor,
}

/// One agent talking with one contact on one channel.
#[Object(serial)]
impl Conversation {
    /// Stable identifier.
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }

    /// The runtime's own id for it.
    async fn external_id(&self) -> &str {
        &self.row.external_id
    }

    /// The agent (null if it was deleted).
    async fn agent(&self) -> Option<&Agent> {
        self.agent.as_ref()
    }

    /// The contact (null if it was deleted).
    async fn contact(&self) -> Option<&Contact> {
        self.contact.as_ref()
    }

    /// Where it happens.
    async fn channel(&self) -> GqlChannel {
        Channel::from_db(&self.row.channel)
            .unwrap_or(Channel::WebChat)
            .into()
    }

    /// Whether it still takes messages.
    async fn status(&self) -> GqlStatus {
        Status::from_db(&self.row.status)
            .unwrap_or(Status::Open)
            .into()
    }

    /// When it started.
    async fn started_at(&self) -> Timestamp {
        self.row.started_at.into()
    }

    /// Its latest message or its end, whichever is later: lists are ordered by it.
    async fn last_activity_at(&self) -> Timestamp {
        self.row.last_activity_at.into()
    }

    /// When it ended (null while open).
    async fn closed_at(&self) -> Option<Timestamp> {
        self.row.closed_at.map(Into::into)
    }

    /// A call's length, as the runtime reported it.
    async fn duration_seconds(&self) -> Option<i32> {
        self.row.duration_seconds
    }

    /// How many messages it has.
    async fn message_count(&self) -> i32 {
        self.row.message_count
    }

    /// For a search: the words that matched, in context, from its best-matching message.
    async fn snippet(&self) -> Option<&str> {
        self.snippet.as_deref()
    }

    /// Its messages, oldest first.
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity")]
    async fn messages(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Cursor after which the page starts.")] after: Option<String>,
    ) -> ApiResult<PageOf<Message>> {
        let page = Page::parse(first, after.as_deref())?;
        let mut conn = request(ctx).db.conn_in(self.row.workspace_id).await?;
        let rows =
            model::messages_page(&mut conn, self.row.workspace_id, self.row.id, &page).await?;
        let total = i64::from(self.row.message_count);
        Ok(PageOf::from_rows(
            rows.into_iter().map(Message).collect(),
            &page,
            total,
            |message| message.cursor().encode(),
        ))
    }
}

/// One message in a conversation.
pub struct Message(MessageRow);

impl Message {
    fn cursor(&self) -> Cursor {
        Cursor {
            at: self.0.sent_at,
            id: self.0.id,
        }
    }
}

/// One message in a conversation.
#[Object(serial)]
impl Message {
    /// Stable identifier.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// The runtime's own id for it.
    async fn external_id(&self) -> &str {
        &self.0.external_id
    }

    /// Who it came from.
    async fn direction(&self) -> GqlDirection {
        Direction::from_db(&self.0.direction)
            .unwrap_or(Direction::Inbound)
            .into()
    }

    /// What was said.
    async fn text(&self) -> &str {
        &self.0.body
    }

    /// When it was sent.
    async fn sent_at(&self) -> Timestamp {
        self.0.sent_at.into()
    }

    /// An SMS's segments (null on other channels).
    async fn segments(&self) -> Option<i32> {
        self.0.segments.map(i32::from)
    }
}

/// What a list of conversations is narrowed to; every field given must hold.
#[derive(InputObject, Default)]
pub struct ConversationFilter {
    /// Only this agent's.
    agent_id: Option<ID>,
    /// Only those with this contact.
    contact_id: Option<ID>,
    /// Only on this channel.
    channel: Option<GqlChannel>,
    /// Only open, or only closed, ones.
    status: Option<GqlStatus>,
    /// Last activity at or after this.
    since: Option<Timestamp>,
    /// Last activity before this.
    until: Option<Timestamp>,
    /// Words the messages contain (web-search syntax: `"exact phrase"`, `or`, `-word`):
    /// best match first, with a snippet.
    search: Option<String>,
}

const MAX_SEARCH_CHARS: usize = 200;

/// What `analytics` costs against the document's complexity budget: it reads a range of
/// rollups and conversations, so a document holds a handful at most.
const ANALYTICS_COST: usize = 500;
/// What a search adds: it ranks the workspace's matching messages.
const SEARCH_COST: usize = 500;

/// A page of conversations: its items' cost, and a search's on top.
fn conversations_cost(
    first: Option<i32>,
    filter: Option<&ConversationFilter>,
    child_complexity: usize,
) -> usize {
    let items = usize::try_from(first.unwrap_or(20).max(0)).unwrap_or(0) * child_complexity;
    let searched = filter.is_some_and(|f| f.search.is_some());
    items + if searched { SEARCH_COST } else { 0 }
}

impl ConversationFilter {
    fn parse(self) -> ApiResult<Filter> {
        let id = |id: Option<ID>| id.as_ref().map(parse_id).transpose();
        let search = self
            .search
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        if search
            .as_ref()
            .is_some_and(|s| s.chars().count() > MAX_SEARCH_CHARS || s.contains('\0'))
        {
            return Err(ApiError::bad_input(format!(
                "`search` must be at most {MAX_SEARCH_CHARS} characters, with no NUL."
            )));
        }
        Ok(Filter {
            agent_id: id(self.agent_id)?,
            contact_id: id(self.contact_id)?,
            channel: self.channel.map(Into::into),
            status: self.status.map(Into::into),
            since: self.since.map(|t| t.0),
            until: self.until.map(|t| t.0),
            search,
        })
    }
}

/// The workspace's conversations, newest activity first (best match first for a search):
/// one statement, and one more for the page's agents and contacts.
pub async fn conversations_page(
    ctx: &Context<'_>,
    workspace_id: Uuid,
    first: Option<i32>,
    after: Option<&str>,
    filter: Option<ConversationFilter>,
) -> ApiResult<PageOf<Conversation>> {
    let filter = filter.unwrap_or_default().parse()?;
    let page = Page::parse(first, after)?;
    page_of(ctx, workspace_id, &filter, page).await
}

async fn page_of(
    ctx: &Context<'_>,
    workspace_id: Uuid,
    filter: &Filter,
    page: Page,
) -> ApiResult<PageOf<Conversation>> {
    let mut conn = request(ctx).db.conn_in(workspace_id).await?;
    let rows = model::page(&mut conn, workspace_id, filter, &page).await?;
    // A page's rows carry the total; an empty page past the end reads it from the start.
    let total = match (rows.first(), page.after) {
        (Some(row), _) => row.total,
        (None, None) => 0,
        (None, Some(_)) => {
            let first = Page::parse_size(Some(1), false)?;
            let head = model::page(&mut conn, workspace_id, filter, &first).await?;
            head.first().map_or(0, |row| row.total)
        }
    };
    let searched = filter.search.is_some();
    let listed = rows
        .into_iter()
        .map(|row| {
            // A search is ordered by rank: its cursor's position is the rank (millionths).
            let at = match searched {
                true => DateTime::from_timestamp_micros(row.rank).unwrap_or_default(),
                false => row.conversation.last_activity_at,
            };
            let cursor = Cursor {
                at,
                id: row.conversation.id,
            };
            (row.conversation, row.snippet, cursor)
        })
        .collect();
    let conversations = with_parties(&mut conn, listed).await?;
    Ok(PageOf::from_rows(conversations, &page, total, |c| {
        c.cursor.encode()
    }))
}

/// The conversations with their agents and contacts, read in one statement.
async fn with_parties(
    conn: &mut AsyncPgConnection,
    listed: Vec<(ConversationRow, Option<String>, Cursor)>,
) -> ApiResult<Vec<Conversation>> {
    let ids: Vec<Uuid> = listed
        .iter()
        .flat_map(|(row, _, _)| [row.agent_id, row.contact_id])
        .flatten()
        .collect();
    let workspace_id = listed.first().map(|(row, _, _)| row.workspace_id);
    let parties = match workspace_id {
        Some(workspace_id) => crate::resources::model::with_ids(conn, workspace_id, &ids).await?,
        None => Vec::new(),
    };
    let find = |id: Option<Uuid>| -> Option<ResourceRow> {
        parties.iter().find(|r| Some(r.id) == id).cloned()
    };
    Ok(listed
        .into_iter()
        .map(|(row, snippet, cursor)| Conversation {
            agent: find(row.agent_id).map(|r| AgentKind::node(r, None)),
            contact: find(row.contact_id).map(|r| ContactKind::node(r, None)),
            row,
            snippet,
            cursor,
        })
        .collect())
}

/// Whether `selection` (a conversation's fields) asks for its agent or contact. The
/// runtime's writes mostly do not, and then they are not read (one statement fewer), as
/// `resources::graphql::creator_asked` does for creators.
fn parties_asked(selection: &async_graphql::Lookahead<'_>) -> bool {
    selection.field("agent").exists() || selection.field("contact").exists()
}

/// One conversation of the workspace as every answer shows it; its agent and contact are
/// read when `parties` (else they are never resolved).
async fn one(
    conn: &mut AsyncPgConnection,
    row: ConversationRow,
    parties: bool,
) -> ApiResult<Conversation> {
    if !parties {
        return Ok(one_alone(row));
    }
    let cursor = Cursor {
        at: row.last_activity_at,
        id: row.id,
    };
    let mut found = with_parties(conn, vec![(row, None, cursor)]).await?;
    found
        .pop()
        .ok_or_else(|| ApiError::not_found("Conversation"))
}

/// One conversation as every answer shows it, without its agent and contact.
fn one_alone(row: ConversationRow) -> Conversation {
    Conversation {
        agent: None,
        contact: None,
        cursor: Cursor {
            at: row.last_activity_at,
            id: row.id,
        },
        row,
        snippet: None,
    }
}

/// The conversation `id` of the workspace, if there is one.
pub async fn conversation(
    ctx: &Context<'_>,
    workspace_id: Uuid,
    id: &ID,
) -> ApiResult<Option<Conversation>> {
    match parse_id(id) {
        Ok(id) => conversation_by_id(ctx, workspace_id, id).await,
        Err(_) => Ok(None),
    }
}

/// The conversation `id` of the workspace, if there is one, with what the selection asks
/// of its agent and contact.
pub async fn conversation_by_id(
    ctx: &Context<'_>,
    workspace_id: Uuid,
    id: Uuid,
) -> ApiResult<Option<Conversation>> {
    let mut conn = request(ctx).db.conn_in(workspace_id).await?;
    match model::find(&mut conn, workspace_id, id).await? {
        Some(row) => Ok(Some(
            one(&mut conn, row, parties_asked(&ctx.look_ahead())).await?,
        )),
        None => Ok(None),
    }
}

/// The contact a conversation is with, as the runtime saw them.
#[derive(InputObject)]
pub struct ConversationContactInput {
    /// Their phone number, with its country code (normalised to E.164). Wins over `email`.
    phone: Option<String>,
    /// Their email address.
    email: Option<String>,
    /// Their name, for a contact made now (else the address names them).
    name: Option<String>,
}

/// A conversation the runtime starts.
#[derive(InputObject)]
pub struct StartConversationInput {
    /// The runtime's own id: starting again with it answers the same conversation.
    external_id: String,
    /// The agent talking.
    agent_id: ID,
    /// Where it happens.
    channel: GqlChannel,
    /// Who the agent talks with: found by address, or made.
    contact: ConversationContactInput,
    /// When it started (now if not given).
    started_at: Option<Timestamp>,
}

/// One message the runtime appends.
#[derive(InputObject)]
pub struct MessageInput {
    /// The runtime's own id: appending it again writes and counts nothing.
    external_id: String,
    /// Who it came from.
    direction: GqlDirection,
    /// What was said, 1 to 10,000 characters.
    text: String,
    /// When it was sent.
    sent_at: Timestamp,
    /// An SMS's segments (1 if not given); only on SMS conversations.
    segments: Option<i32>,
}

/// What an append wrote: the conversation after it, and the batch's messages in order.
#[derive(SimpleObject)]
pub struct AppendMessagesPayload {
    /// The conversation after the append.
    conversation: Conversation,
    /// The batch's messages, in its order: those written now and those written before.
    messages: Vec<Message>,
}

#[derive(Default)]
pub struct ConversationMutation;

/// Conversation mutations: the runtime's (a service token) and the deletion.
#[Object]
impl ConversationMutation {
    /// Starts a conversation, or answers the one started with the same `externalId`. Needs
    /// a service token.
    #[graphql(guard = "ServiceGuard")]
    async fn start_conversation(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
        input: StartConversationInput,
    ) -> ApiResult<Conversation> {
        let request = request(ctx);
        let service = request
            .service
            .clone()
            .ok_or_else(ApiError::unauthenticated)?;
        let workspace_id = parse_id(&workspace_id)?;
        let agent_id = parse_id(&input.agent_id)?;
        let contact = &input.contact;
        let address = Address::parse(contact.phone.as_deref(), contact.email.as_deref())?;
        let now = Utc::now();
        let start = Start {
            external_id: &input.external_id,
            agent_id,
            channel: input.channel.into(),
            address,
            name: contact.name.as_deref(),
            started_at: input.started_at.map_or(now, |t| t.0),
        };
        let parties = parties_asked(&ctx.look_ahead());
        let mut conn = request.db.conn_in(workspace_id).await?;
        conn.transaction(async |conn| {
            let row = super::start(conn, &service, workspace_id, start, now).await?;
            one(conn, row, parties).await
        })
        .await
    }

    /// Appends up to 100 messages, all or none; those whose `externalId` the conversation
    /// has are not written or counted again. Needs a service token.
    #[graphql(guard = "ServiceGuard")]
    async fn append_messages(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
        conversation_id: ID,
        messages: Vec<MessageInput>,
    ) -> ApiResult<AppendMessagesPayload> {
        let request = request(ctx);
        let trail = request.trail()?;
        let workspace_id = parse_id(&workspace_id)?;
        let conversation_id =
            parse_id(&conversation_id).map_err(|_| ApiError::not_found("Conversation"))?;
        let messages = messages
            .into_iter()
            .map(|m| NewMessage {
                external_id: m.external_id,
                direction: m.direction.into(),
                text: m.text,
                sent_at: m.sent_at.0,
                segments: m.segments.map(|n| i16::try_from(n).unwrap_or(i16::MAX)),
            })
            .collect::<Vec<_>>();
        let now = Utc::now();
        let parties = parties_asked(&ctx.look_ahead().field("conversation"));
        let (row, batch) = super::append(
            &request.db,
            &trail,
            workspace_id,
            conversation_id,
            &messages,
            now,
        )
        .await?;
        // The agent and contact only when asked: the append itself needs no context.
        let conversation = if parties {
            let mut conn = request.db.conn_in(workspace_id).await?;
            one(&mut conn, row, parties).await?
        } else {
            one_alone(row)
        };
        Ok(AppendMessagesPayload {
            conversation,
            messages: batch.into_iter().map(Message).collect(),
        })
    }

    /// Ends a conversation; ending it again changes nothing. Needs a service token.
    #[graphql(guard = "ServiceGuard")]
    async fn close_conversation(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
        conversation_id: ID,
        ended_at: Option<Timestamp>,
        duration_seconds: Option<i32>,
    ) -> ApiResult<Conversation> {
        let request = request(ctx);
        let workspace_id = parse_id(&workspace_id)?;
        let conversation_id =
            parse_id(&conversation_id).map_err(|_| ApiError::not_found("Conversation"))?;
        let ended_at = ended_at.map(|t| t.0);
        let now = Utc::now();
        let parties = parties_asked(&ctx.look_ahead());
        let mut conn = request.db.conn_in(workspace_id).await?;
        conn.transaction(async |conn| {
            let row = super::close(
                conn,
                workspace_id,
                conversation_id,
                ended_at,
                duration_seconds,
                now,
            )
            .await?;
            one(conn, row, parties).await
        })
        .await
    }

    /// Deletes a conversation with its messages (its usage stays counted).
    ///
    /// Needs the ADMIN role or higher.
    #[graphql(
        guard = "RoleGuard::new(Action::DeleteItem { own: false }, &workspace_id)",
        directive = require_role::apply(least(Action::DeleteItem { own: false }))
    )]
    async fn delete_conversation(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
        id: ID,
    ) -> ApiResult<bool> {
        let request = request(ctx);
        let trail = request.trail()?;
        let workspace_id = parse_id(&workspace_id)?;
        let id = parse_id(&id).map_err(|_| ApiError::not_found("Conversation"))?;
        let mut conn = request.db.conn_in(workspace_id).await?;
        conn.transaction(async |conn| {
            super::delete(conn, &trail, workspace_id, id, Utc::now()).await?;
            Ok(true)
        })
        .await
    }
}

/// The conversation fields of `Workspace`, with the row the request read.
pub struct ConversationLists {
    workspace: WorkspaceRow,
}

impl From<&WorkspaceRow> for ConversationLists {
    fn from(workspace: &WorkspaceRow) -> Self {
        Self {
            workspace: workspace.clone(),
        }
    }
}

/// The workspace's conversations.
#[Object]
impl ConversationLists {
    /// The workspace's conversations, newest activity first; with `filter.search`, best
    /// match first, each with the snippet that matched. Every role reads them.
    #[graphql(complexity = "conversations_cost(first, filter.as_ref(), child_complexity)")]
    async fn conversations(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Cursor after which the page starts.")] after: Option<String>,
        #[graphql(desc = "Which conversations; left out: all.")] filter: Option<ConversationFilter>,
    ) -> ApiResult<PageOf<Conversation>> {
        conversations_page(ctx, self.workspace.id, first, after.as_deref(), filter).await
    }

    /// How the workspace's agents are doing from `since` to `until` (at most 400 days), in
    /// the workspace's days (`timeZone`): a series cut by `interval` and the totals, with
    /// the usage of the current billing period beside them. Every role reads it.
    #[graphql(complexity = "ANALYTICS_COST + child_complexity")]
    async fn analytics(
        &self,
        ctx: &Context<'_>,
        since: Timestamp,
        until: Timestamp,
        #[graphql(
            default_with = "GqlInterval::Day",
            desc = "How the series is cut (default DAY)."
        )]
        interval: GqlInterval,
        #[graphql(desc = "Only this agent's.")] agent_id: Option<ID>,
        #[graphql(desc = "Only this channel.")] channel: Option<GqlChannel>,
    ) -> ApiResult<Analytics> {
        let range = Range {
            since: since.0,
            until: until.0,
            interval: interval.into(),
            agent_id: agent_id.as_ref().map(parse_id).transpose()?,
            channel: channel.map(Into::into),
        };
        let workspace = &self.workspace;
        let mut conn = request(ctx).db.conn_in(workspace.id).await?;
        let report =
            analytics::report(&mut conn, workspace.id, &workspace.time_zone, &range).await?;
        Ok(Analytics {
            report,
            workspace: workspace.clone(),
        })
    }

    /// One of the workspace's conversations (null if it has none with this id).
    async fn conversation(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Conversation>> {
        conversation(ctx, self.workspace.id, &id).await
    }
}

/// The conversations of one agent or one contact: their `conversations` field.
///
/// One type per owner (`Of`), not one shared: async-graphql builds a merged object from
/// its parts' registered types, and a part shared by `Agent` and `Contact` was still an
/// empty placeholder when `Contact` was built inside `Agent`'s construction (its
/// conversations, then `Conversation.contact`), so `Contact` lost the field.
pub struct ConversationsOf<Of> {
    workspace_id: Uuid,
    filter: Filter,
    of: PhantomData<Of>,
}

/// An agent's, for [`ConversationsOf`].
pub struct OfAgent;
/// A contact's, for [`ConversationsOf`].
pub struct OfContact;

impl<Of> ConversationsOf<Of> {
    fn with(workspace_id: Uuid, filter: Filter) -> Self {
        Self {
            workspace_id,
            filter,
            of: PhantomData,
        }
    }
}

impl ConversationsOf<OfAgent> {
    pub fn agent(workspace_id: Uuid, agent_id: Uuid) -> Self {
        let filter = Filter {
            agent_id: Some(agent_id),
            ..Filter::default()
        };
        Self::with(workspace_id, filter)
    }
}

impl ConversationsOf<OfContact> {
    pub fn contact(workspace_id: Uuid, contact_id: Uuid) -> Self {
        let filter = Filter {
            contact_id: Some(contact_id),
            ..Filter::default()
        };
        Self::with(workspace_id, filter)
    }
}

/// Its conversations.
#[Object(
    concrete(name = "AgentConversations", params(OfAgent)),
    concrete(name = "ContactConversations", params(OfContact))
)]
impl<Of: Send + Sync> ConversationsOf<Of> {
    /// Its conversations, newest activity first.
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity")]
    async fn conversations(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Cursor after which the page starts.")] after: Option<String>,
    ) -> ApiResult<PageOf<Conversation>> {
        let page = Page::parse(first, after.as_deref())?;
        // Boxed: inline, this page's 3 KB would size the future of every field of every
        // agent and contact (one future type per object), each copied whole into its box
        // (BENCHMARKS.md, fortieth round).
        Box::pin(page_of(ctx, self.workspace_id, &self.filter, page)).await
    }
}

/// How an analytics series is cut: the workspace's days, weeks (from Monday) or months.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(
    name = "AnalyticsInterval",
    remote = "Interval",
    rename_items = "SCREAMING_SNAKE_CASE"
)]
pub enum GqlInterval {
    /// Days.
    Day,
    /// Weeks, from Monday.
    Week,
    /// Calendar months.
    Month,
}

/// How the workspace's agents are doing over a range.
pub struct Analytics {
    report: Report,
    /// For `usage`, read only when asked.
    workspace: WorkspaceRow,
}

/// How the workspace's agents are doing over a range.
#[Object]
impl Analytics {
    /// The time zone whose days the series is cut in.
    async fn time_zone(&self) -> &str {
        &self.report.time_zone
    }

    /// One point per day, week or month of the range, empty ones included, oldest first.
    async fn series(&self) -> Vec<AnalyticsPoint> {
        self.report
            .series
            .iter()
            .map(|point| AnalyticsPoint {
                start: point.start,
                counts: point.counts.clone(),
            })
            .collect()
    }

    /// The whole range.
    async fn totals(&self) -> AnalyticsCounts {
        AnalyticsCounts::from(&self.report.totals.counts)
    }

    /// Median seconds from a contact's first message to the agent's first reply, over the
    /// conversations started in the range that have one (null if none).
    async fn first_response_median_seconds(&self) -> Option<f64> {
        self.report.totals.first_response_median
    }

    /// The 90th percentile of the same.
    async fn first_response_p90_seconds(&self) -> Option<f64> {
        self.report.totals.first_response_p90
    }

    /// Median seconds from start to close, over the conversations started in the range and
    /// closed (null if none).
    async fn time_to_close_median_seconds(&self) -> Option<f64> {
        self.report.totals.time_to_close_median
    }

    /// The current billing period's usage against the plan's limits.
    async fn usage(&self, ctx: &Context<'_>) -> ApiResult<crate::usage::graphql::Usage> {
        let mut conn = request(ctx).db.conn_in(self.workspace.id).await?;
        crate::usage::graphql::usage_of(&mut conn, &self.workspace).await
    }
}

/// One day, week or month of a series.
pub struct AnalyticsPoint {
    start: DateTime<Utc>,
    counts: analytics::Counts,
}

/// One day, week or month of a series.
#[Object]
impl AnalyticsPoint {
    /// Where it starts: the workspace's midnight.
    async fn start(&self) -> Timestamp {
        self.start.into()
    }

    /// What happened in it.
    async fn counts(&self) -> AnalyticsCounts {
        AnalyticsCounts::from(&self.counts)
    }
}

/// What happened over a stretch of time.
#[derive(SimpleObject)]
pub struct AnalyticsCounts {
    /// Conversations started.
    conversations_started: i32,
    /// Conversations closed.
    conversations_closed: i32,
    /// Messages from contacts.
    messages_in: i32,
    /// Messages from agents.
    messages_out: i32,
    /// SMS segments, both ways.
    sms_segments: i32,
    /// Phone calls started.
    calls: i32,
    /// Minutes of the calls closed, as the runtime reported them.
    call_minutes: f64,
    /// Distinct contacts of the conversations started (exact).
    unique_contacts: i32,
}

impl From<&analytics::Counts> for AnalyticsCounts {
    fn from(counts: &analytics::Counts) -> Self {
        let int = |n: i64| i32::try_from(n).unwrap_or(i32::MAX);
        Self {
            conversations_started: int(counts.started),
            conversations_closed: int(counts.closed),
            messages_in: int(counts.messages_in),
            messages_out: int(counts.messages_out),
            sms_segments: int(counts.sms_segments),
            calls: int(counts.calls),
            call_minutes: counts.call_seconds as f64 / 60.0,
            unique_contacts: int(counts.unique_contacts),
        }
    }
}
