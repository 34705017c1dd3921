//! Parsed GraphQL documents by query text. Frontends send the same few operations over and
//! over; parsing was an eighth of the server's time on a trivial query (BENCHMARKS.md).
//! Validation still runs on every request: only the parse is reused.
//!
//! A schema extension could do this, but any extension sends every field through
//! async-graphql's slow resolve path, so the cache sits in front of the schema.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_graphql::parser::types::ExecutableDocument;
use async_graphql::Request;

/// Longer queries are parsed every time: the cache's memory stays bounded.
const MAX_CACHED_QUERY_BYTES: usize = 8 * 1024;
/// Distinct queries kept; past this the cache starts over (clients send a fixed set).
const MAX_CACHED_QUERIES: usize = 512;

#[derive(Clone, Default)]
pub struct DocumentCache {
    documents: Arc<Mutex<HashMap<String, ExecutableDocument>>>,
}

impl DocumentCache {
    /// Gives `request` its parsed document, from the cache or parsed now. A query that does
    /// not parse is left for the schema to report.
    pub fn prepare(&self, request: &mut Request) {
        if request.query.len() > MAX_CACHED_QUERY_BYTES {
            return;
        }
        let cached = self.lock().get(&request.query).cloned();
        match cached {
            Some(document) => request.set_parsed_query(document),
            None => {
                let Ok(document) = request.parsed_query().cloned() else {
                    return;
                };
                let mut documents = self.lock();
                if documents.len() >= MAX_CACHED_QUERIES {
                    documents.clear();
                }
                documents.insert(request.query.clone(), document);
            }
        }
    }

    /// The parsed document of `query`, from the cache or parsed now; `None` if it does not
    /// parse.
    pub fn parsed(&self, query: &str) -> Option<ExecutableDocument> {
        if let Some(document) = self.lock().get(query) {
            return Some(document.clone());
        }
        async_graphql::parser::parse_query(query).ok()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ExecutableDocument>> {
        // A panic while holding the lock leaves a valid map: keep using it.
        self.documents
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_is_parsed_once_and_bad_ones_are_left_alone() {
        let cache = DocumentCache::default();
        let mut first = Request::new("{ me { id } }");
        cache.prepare(&mut first);
        assert_eq!(cache.lock().len(), 1);
        let mut again = Request::new("{ me { id } }");
        cache.prepare(&mut again);
        assert_eq!(cache.lock().len(), 1);
        assert!(again.parsed_query().is_ok());
        let mut broken = Request::new("{ me { id }");
        cache.prepare(&mut broken);
        assert_eq!(cache.lock().len(), 1);
        let mut long = Request::new(format!("{{ me {{ id }} }} #{}", "x".repeat(9000)));
        cache.prepare(&mut long);
        assert_eq!(cache.lock().len(), 1);
    }

    #[test]
    fn the_cache_starts_over_when_full() {
        let cache = DocumentCache::default();
        for i in 0..=MAX_CACHED_QUERIES {
            cache.prepare(&mut Request::new(format!("{{ a{i}: me {{ id }} }}")));
        }
        assert_eq!(cache.lock().len(), 1);
    }
}
