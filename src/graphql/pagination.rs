//! Relay-style connections, one generic shape for every list: `first` (at most
//! [`MAX_PAGE_SIZE`]) and an opaque `after` cursor over a `(timestamp, id)` keyset.
//!
//! A page is one statement: its rows carry the list's total from a scalar subquery of the
//! same statement, which PostgreSQL runs once. Only an empty page, having no row to carry
//! it, counts in a second statement ([`split_total`]).
//!
//! A page's types hold their data, so nothing in them waits: they resolve field by field and
//! item by item (`serial`, [`Items`]). async-graphql's concurrent resolution (a
//! `FuturesUnordered` per object, a `FuturesOrdered` per list past 30 items) only added
//! work there.

use std::borrow::Cow;
use std::future::Future;

use async_graphql::parser::types::Field;
use async_graphql::registry::Registry;
use async_graphql::{
    ContextSelectionSet, OutputType, Positioned, ServerResult, SimpleObject, Value,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::audit::graphql::AuditEvent;
use crate::auth::graphql::{AccessToken, SecurityEvent};
use crate::billing::graphql::Invoice;
use crate::error::{ApiError, ApiResult};
use crate::invitations::graphql::Invitation;
use crate::members::graphql::Member;
use crate::resources::kinds::{
    Agent, Calendar, Contact, Form, Integration, KnowledgeBase, PhoneNumber,
};

/// A page of `T`s.
pub type PageOf<T> = Connection<Edge<T>>;

// Every list's concrete GraphQL names are declared here, on the two generic types.
type MemberEdge = Edge<Member>;
type InvitationEdge = Edge<Invitation>;
type AgentEdge = Edge<Agent>;
type ContactEdge = Edge<Contact>;
type KnowledgeBaseEdge = Edge<KnowledgeBase>;
type FormEdge = Edge<Form>;
type PhoneNumberEdge = Edge<PhoneNumber>;
type CalendarEdge = Edge<Calendar>;
type IntegrationEdge = Edge<Integration>;
type InvoiceEdge = Edge<Invoice>;
type AccessTokenEdge = Edge<AccessToken>;
type AuditEventEdge = Edge<AuditEvent>;
type SecurityEventEdge = Edge<SecurityEvent>;

pub const DEFAULT_PAGE_SIZE: i32 = 20;
pub const MAX_PAGE_SIZE: i32 = 100;

/// A position in a list ordered by `(at, id)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub at: DateTime<Utc>,
    pub id: Uuid,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}:{}", self.at.timestamp_micros(), self.id))
    }

    pub fn decode(raw: &str) -> ApiResult<Cursor> {
        let invalid = || ApiError::bad_input("`after` is not a cursor from this list.");
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let (micros, id) = text.split_once(':').ok_or_else(invalid)?;
        let at = micros
            .parse()
            .ok()
            .and_then(DateTime::from_timestamp_micros)
            .ok_or_else(invalid)?;
        let id = Uuid::parse_str(id).map_err(|_| invalid())?;
        Ok(Cursor { at, id })
    }
}

/// A validated page request.
#[derive(Clone, Copy, Debug)]
pub struct Page {
    pub first: i64,
    pub after: Option<Cursor>,
    /// The page continues after an item whose cursor is not a [`Cursor`] (a list keyed by
    /// another id, such as invoices: see [`Page::parse_size`]).
    pub resumed: bool,
}

impl Page {
    pub fn parse(first: Option<i32>, after: Option<&str>) -> ApiResult<Page> {
        let mut page = Page::parse_size(first, false)?;
        page.after = after.map(Cursor::decode).transpose()?;
        Ok(page)
    }

    /// The page size alone, for lists whose cursors the feature decodes itself; `resumed`
    /// says whether the request gave one.
    pub fn parse_size(first: Option<i32>, resumed: bool) -> ApiResult<Page> {
        let first = first.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(0..=MAX_PAGE_SIZE).contains(&first) {
            return Err(ApiError::bad_input(format!(
                "`first` must be between 0 and {MAX_PAGE_SIZE}."
            )));
        }
        Ok(Page {
            first: i64::from(first),
            after: None,
            resumed,
        })
    }

    /// Rows to fetch: one more than asked, to learn whether there is a next page.
    pub fn limit(&self) -> i64 {
        self.first + 1
    }
}

/// Splits the list's total off a page's rows, each of which carries it; an empty page
/// carries none, so `count` runs then, and only then.
pub async fn split_total<T, E>(
    rows: Vec<(T, Option<i64>)>,
    count: impl Future<Output = Result<i64, E>>,
) -> Result<(Vec<T>, i64), E> {
    let carried = rows.first().map(|(_, total)| total.unwrap_or(0));
    let rows = rows.into_iter().map(|(row, _)| row).collect();
    match carried {
        Some(total) => Ok((rows, total)),
        None => Ok((rows, count.await?)),
    }
}

/// Where a page sits in its list (Relay's `PageInfo`).
#[derive(SimpleObject, Debug)]
#[graphql(serial)]
pub struct PageInfo {
    /// Whether more items follow this page.
    pub has_next_page: bool,
    /// Whether items come before this page: it was asked for with `after`. Lists page
    /// forward only, so this is what the request says, not a count.
    pub has_previous_page: bool,
    /// The cursor of the page's first item (null for an empty page).
    pub start_cursor: Option<String>,
    /// Pass as `after` to get the next page (null for an empty page).
    pub end_cursor: Option<String>,
}

/// One item of a list with its cursor.
#[derive(SimpleObject)]
#[graphql(serial)]
#[graphql(concrete(name = "MemberEdge", params(Member)))]
#[graphql(concrete(name = "InvitationEdge", params(Invitation)))]
#[graphql(concrete(name = "AgentEdge", params(Agent)))]
#[graphql(concrete(name = "ContactEdge", params(Contact)))]
#[graphql(concrete(name = "KnowledgeBaseEdge", params(KnowledgeBase)))]
#[graphql(concrete(name = "FormEdge", params(Form)))]
#[graphql(concrete(name = "PhoneNumberEdge", params(PhoneNumber)))]
#[graphql(concrete(name = "CalendarEdge", params(Calendar)))]
#[graphql(concrete(name = "IntegrationEdge", params(Integration)))]
#[graphql(concrete(name = "InvoiceEdge", params(Invoice)))]
#[graphql(concrete(name = "AccessTokenEdge", params(AccessToken)))]
#[graphql(concrete(name = "AuditEventEdge", params(AuditEvent)))]
#[graphql(concrete(name = "SecurityEventEdge", params(SecurityEvent)))]
pub struct Edge<T: OutputType> {
    /// Pass as `after` to continue after this item.
    pub cursor: String,
    /// The item.
    pub node: T,
}

/// A page of a list.
#[derive(SimpleObject)]
#[graphql(serial)]
#[graphql(concrete(name = "MemberConnection", params(MemberEdge)))]
#[graphql(concrete(name = "InvitationConnection", params(InvitationEdge)))]
#[graphql(concrete(name = "AgentConnection", params(AgentEdge)))]
#[graphql(concrete(name = "ContactConnection", params(ContactEdge)))]
#[graphql(concrete(name = "KnowledgeBaseConnection", params(KnowledgeBaseEdge)))]
#[graphql(concrete(name = "FormConnection", params(FormEdge)))]
#[graphql(concrete(name = "PhoneNumberConnection", params(PhoneNumberEdge)))]
#[graphql(concrete(name = "CalendarConnection", params(CalendarEdge)))]
#[graphql(concrete(name = "IntegrationConnection", params(IntegrationEdge)))]
#[graphql(concrete(name = "InvoiceConnection", params(InvoiceEdge)))]
#[graphql(concrete(name = "AccessTokenConnection", params(AccessTokenEdge)))]
#[graphql(concrete(name = "AuditEventConnection", params(AuditEventEdge)))]
#[graphql(concrete(name = "SecurityEventConnection", params(SecurityEventEdge)))]
pub struct Connection<E: OutputType> {
    /// The items of this page, in order.
    pub edges: Items<E>,
    /// Whether and how to fetch the next page.
    pub page_info: PageInfo,
    /// The number of items in the whole list.
    pub total_count: i32,
}

impl<T: OutputType> Connection<Edge<T>>
where
    Edge<T>: OutputType,
{
    /// Builds a page from up to `page.limit()` rows fetched in keyset order; `cursor` gives
    /// an item's opaque cursor (usually [`Cursor::encode`]).
    pub fn from_rows(
        rows: Vec<T>,
        page: &Page,
        total_count: i64,
        cursor: impl Fn(&T) -> String,
    ) -> Self {
        let (edges, page_info) = paginate(rows, page, cursor);
        Connection {
            edges: Items(edges),
            page_info,
            total_count: i32::try_from(total_count).unwrap_or(i32::MAX),
        }
    }
}

/// A page's items, resolved one after another. They are loaded already, so resolving them
/// concurrently gains nothing, and async-graphql's concurrent list (a `FuturesOrdered` past
/// 30 items) was measurable work on a page of 50 (BENCHMARKS.md, fourth round). The
/// GraphQL type is the list's own: `[T]!`. Items skip schema extensions' per-item hook; the
/// schema has no extensions (see `graphql::builder`).
pub struct Items<T>(pub Vec<T>);

impl<T: OutputType> OutputType for Items<T> {
    fn type_name() -> Cow<'static, str> {
        <Vec<T> as OutputType>::type_name()
    }

    fn qualified_type_name() -> String {
        <Vec<T> as OutputType>::qualified_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        <Vec<T> as OutputType>::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        let mut values = Vec::with_capacity(self.0.len());
        for (index, item) in self.0.iter().enumerate() {
            let ctx = ctx.with_index(index);
            let value = item.resolve(&ctx, field).await;
            values.push(value.map_err(|err| ctx.set_error_path(err))?);
        }
        Ok(Value::List(values))
    }
}

/// Cuts the extra row off and derives the page info from it.
fn paginate<T: OutputType>(
    mut rows: Vec<T>,
    page: &Page,
    cursor: impl Fn(&T) -> String,
) -> (Vec<Edge<T>>, PageInfo) {
    let has_next_page = rows.len() as i64 > page.first;
    rows.truncate(page.first as usize);
    let edges: Vec<Edge<T>> = rows
        .into_iter()
        .map(|node| Edge {
            cursor: cursor(&node),
            node,
        })
        .collect();
    let page_info = PageInfo {
        has_next_page,
        has_previous_page: page.after.is_some() || page.resumed,
        start_cursor: edges.first().map(|edge| edge.cursor.clone()),
        end_cursor: edges.last().map(|edge| edge.cursor.clone()),
    };
    (edges, page_info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let cursor = Cursor {
            at: DateTime::from_timestamp_micros(1_790_000_000_123_456).expect("valid"),
            id: Uuid::new_v4(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()).expect("decodes"), cursor);
    }

    #[test]
    fn garbage_cursors_are_bad_input() {
        for raw in ["", "!!", "bm9wZQ", &URL_SAFE_NO_PAD.encode("12:not-a-uuid")] {
            let err = Cursor::decode(raw).expect_err("invalid");
            assert_eq!(err.code(), crate::error::ErrorCode::BadUserInput);
        }
    }

    #[test]
    fn page_size_is_bounded() {
        assert_eq!(Page::parse(None, None).expect("ok").first, 20);
        assert_eq!(Page::parse(Some(100), None).expect("ok").limit(), 101);
        assert!(Page::parse(Some(101), None).is_err());
        assert!(Page::parse(Some(-1), None).is_err());
    }

    #[tokio::test]
    async fn a_page_with_rows_takes_its_total_from_them_and_never_counts() {
        let rows = vec![("a", Some(7)), ("b", Some(7))];
        let count = async { Err::<i64, &str>("counted although the rows carry the total") };
        let (rows, total) = split_total(rows, count).await.expect("carried");
        assert_eq!((rows, total), (vec!["a", "b"], 7));
    }

    #[tokio::test]
    async fn an_empty_page_counts_the_list() {
        let rows: Vec<(&str, Option<i64>)> = Vec::new();
        let (rows, total) = split_total(rows, async { Ok::<_, ()>(12) })
            .await
            .expect("counted");
        assert_eq!((rows.len(), total), (0, 12));
    }

    #[test]
    fn extra_row_means_next_page() {
        let page = Page::parse(Some(2), None).expect("ok");
        let at = DateTime::from_timestamp_micros(0).expect("valid");
        let ids = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
        let cursor = |id: &Uuid| Cursor { at, id: *id }.encode();
        let (edges, info) = paginate(ids.to_vec(), &page, cursor);
        assert!(info.has_next_page);
        assert!(!info.has_previous_page);
        assert_eq!(edges.len(), 2);
        assert_eq!(info.start_cursor.as_deref(), Some(edges[0].cursor.as_str()));
        assert_eq!(info.end_cursor.as_deref(), Some(edges[1].cursor.as_str()));
        let next = Page::parse(Some(2), info.end_cursor.as_deref()).expect("ok");
        let (edges, info) = paginate(ids[2..].to_vec(), &next, cursor);
        assert!(!info.has_next_page);
        assert!(info.has_previous_page);
        assert_eq!(edges.len(), 1);
    }
}
