//! Keyset pages over a `(timestamp, id)` order: the request ([`Page`]: `first`, at most
//! [`MAX_PAGE_SIZE`], and an opaque `after` [`Cursor`]) and the total a page's rows carry
//! ([`split_total`]). The database side of every list; its GraphQL shape is
//! `graphql::pagination`.

use std::future::Future;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

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
        // Within PostgreSQL's years as well as chrono's: a forged cursor is bad input, not a
        // database error.
        let at = micros
            .parse()
            .ok()
            .and_then(DateTime::from_timestamp_micros)
            .filter(|at: &DateTime<Utc>| (1..=9999).contains(&chrono::Datelike::year(at)))
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
        let far = format!("{}:{}", i64::MIN / 2, Uuid::nil());
        for raw in [
            "",
            "!!",
            "bm9wZQ",
            &URL_SAFE_NO_PAD.encode("12:not-a-uuid"),
            &URL_SAFE_NO_PAD.encode(far),
        ] {
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
}
