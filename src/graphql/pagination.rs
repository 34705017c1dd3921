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

use crate::db::page::Page;
use async_graphql::parser::types::Field;
use async_graphql::registry::Registry;
use async_graphql::{
    ContextSelectionSet, OutputType, Positioned, ServerResult, SimpleObject, TypeName, Value,
};

/// A page of `T`s: `{T}Connection` in the schema, with `{T}Edge`s. The names come from the
/// node's, so a new list is declared by its feature alone.
pub type PageOf<T> = Connection<T>;

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
#[graphql(serial, name_type)]
pub struct Edge<T: OutputType> {
    /// Pass as `after` to continue after this item.
    pub cursor: String,
    /// The item.
    pub node: T,
}

impl<T: OutputType> TypeName for Edge<T> {
    fn type_name() -> Cow<'static, str> {
        format!("{}Edge", T::type_name()).into()
    }
}

/// A page of a list.
#[derive(SimpleObject)]
#[graphql(serial, name_type)]
pub struct Connection<T: OutputType> {
    /// The items of this page, in order.
    pub edges: Items<Edge<T>>,
    /// Whether and how to fetch the next page.
    pub page_info: PageInfo,
    /// The number of items in the whole list.
    pub total_count: i32,
}

impl<T: OutputType> TypeName for Connection<T> {
    fn type_name() -> Cow<'static, str> {
        format!("{}Connection", T::type_name()).into()
    }
}

impl<T: OutputType> Connection<T> {
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
    use chrono::DateTime;
    use uuid::Uuid;

    use super::*;
    use crate::db::page::Cursor;

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
