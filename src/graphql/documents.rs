//! Parsed GraphQL documents by query text, and whether the schema has validated each.
//! Frontends send the same few operations over and over; parsing was an eighth of the
//! server's time on a trivial query, validating a sixteenth (BENCHMARKS.md).
//!
//! A document the schema has validated is validated again only when the answer could
//! differ. async-graphql's validation (7.2, `check_rules`) reads the request's variables in
//! one rule: it puts their values into the arguments and checks those
//! (`ArgumentsOfCorrectType`); every other rule reads the document alone. So when each
//! variable is a whole argument ([`Validated::UnlessValues`]) and each value passes
//! ([`values_pass`]), the server runs the schema built in async-graphql's fast mode
//! (`graphql::validated_schema`), which still measures complexity and depth.
//!
//! A schema extension could do this, but any extension sends every field through
//! async-graphql's slow resolve path, so the cache sits in front of the schema.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_graphql::parser::types::{
    BaseType, Directive, ExecutableDocument, Selection, SelectionSet,
};
use async_graphql::parser::Positioned;
use async_graphql::{Name, Request, Value, Variables};

/// Longer queries are parsed every time: the cache's memory stays bounded.
const MAX_CACHED_QUERY_BYTES: usize = 8 * 1024;
/// Distinct queries kept; past this the cache starts over (clients send a fixed set).
const MAX_CACHED_QUERIES: usize = 512;

#[derive(Clone, Default)]
pub struct DocumentCache {
    documents: Arc<Mutex<HashMap<String, Cached>>>,
}

struct Cached {
    document: ExecutableDocument,
    /// The schema ran it once without a request error: every rule that reads only the
    /// document passed.
    validated: bool,
    /// One operation, and every variable a whole argument ([`whole_variables`]).
    whole_variables: bool,
}

/// What validating a request's document again could find.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validated {
    /// Not yet validated (or not cached): the schema validates it, and a run without a
    /// request error records it.
    No,
    /// Validated, but a variable sits inside a list or an input object, or the document
    /// has several operations: validated again every time.
    Again,
    /// Validated, and only the variables' values could fail: see [`values_pass`].
    UnlessValues,
}

impl DocumentCache {
    /// Gives `request` its parsed document, from the cache or parsed now, and says what
    /// validating it again could find. A query that does not parse is left for the schema
    /// to report.
    pub fn prepare(&self, request: &mut Request) -> Validated {
        if request.query.len() > MAX_CACHED_QUERY_BYTES {
            return Validated::No;
        }
        let cached = (self.lock().get(&request.query)).map(|cached| {
            let validated = match (cached.validated, cached.whole_variables) {
                (false, _) => Validated::No,
                (true, false) => Validated::Again,
                (true, true) => Validated::UnlessValues,
            };
            (cached.document.clone(), validated)
        });
        match cached {
            Some((document, validated)) => {
                request.set_parsed_query(document);
                validated
            }
            None => {
                let Ok(document) = request.parsed_query().cloned() else {
                    return Validated::No;
                };
                let whole_variables = whole_variables(&document);
                let mut documents = self.lock();
                if documents.len() >= MAX_CACHED_QUERIES {
                    documents.clear();
                }
                let cached = Cached {
                    document,
                    validated: false,
                    whole_variables,
                };
                documents.insert(request.query.clone(), cached);
                Validated::No
            }
        }
    }

    /// Records that the schema ran `query` without a request error.
    pub fn validated(&self, query: &str) {
        if let Some(cached) = self.lock().get_mut(query) {
            cached.validated = true;
        }
    }

    /// The parsed document of `query`, from the cache or parsed now; `None` if it does not
    /// parse.
    pub fn parsed(&self, query: &str) -> Option<ExecutableDocument> {
        if let Some(cached) = self.lock().get(query) {
            return Some(cached.document.clone());
        }
        async_graphql::parser::parse_query(query).ok()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        // A panic while holding the lock leaves a valid map: keep using it.
        self.documents
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Whether `doc` has one operation and every variable in it is a whole argument of a field
/// or a directive (`id: $id`), never inside a list or an input object. Where a variable is
/// a whole argument, async-graphql checked its definition against the argument's type
/// (`VariableInAllowedPosition`: the same named type), and an argument has no literal parts
/// that a run without that variable's value left unchecked. Inside an object its visitor
/// does not always reach the variable (only where an object is expected, not where a list
/// is coerced from one).
fn whole_variables(doc: &ExecutableDocument) -> bool {
    let Some((_, operation)) = super::shape::operation(doc, None) else {
        return false;
    };
    let mut fragments = doc.fragments.values().map(|f| &f.node);
    (operation.variable_definitions.iter()).all(|d| d.node.directives.is_empty())
        && whole_in(&operation.directives)
        && whole_in_set(&operation.selection_set.node)
        && fragments.all(|f| whole_in(&f.directives) && whole_in_set(&f.selection_set.node))
}

fn whole_in_set(set: &SelectionSet) -> bool {
    let mut stack = vec![set];
    while let Some(set) = stack.pop() {
        for selection in &set.items {
            let directives = match &selection.node {
                Selection::Field(field) => {
                    if !field.node.arguments.iter().all(|(_, v)| whole(&v.node)) {
                        return false;
                    }
                    stack.push(&field.node.selection_set.node);
                    &field.node.directives
                }
                Selection::InlineFragment(inline) => {
                    stack.push(&inline.node.selection_set.node);
                    &inline.node.directives
                }
                Selection::FragmentSpread(spread) => &spread.node.directives,
            };
            if !whole_in(directives) {
                return false;
            }
        }
    }
    true
}

fn whole_in(directives: &[Positioned<Directive>]) -> bool {
    (directives.iter().flat_map(|d| &d.node.arguments)).all(|(_, value)| whole(&value.node))
}

/// An argument's value: a variable, or a literal without one.
fn whole(value: &async_graphql_value::Value) -> bool {
    use async_graphql_value::Value as Input;
    fn has_variable(value: &Input) -> bool {
        match value {
            Input::Variable(_) => true,
            Input::List(items) => items.iter().any(has_variable),
            Input::Object(fields) => fields.values().any(has_variable),
            _ => false,
        }
    }
    matches!(value, Input::Variable(_)) || !has_variable(value)
}

/// Whether each of `variables` passes wherever `doc` uses it, for a document of
/// [`Validated::UnlessValues`]: a value of a built-in scalar that its `is_valid` accepts,
/// or a null for a nullable variable without a default (which stands only where null is
/// accepted). Enums, input objects, lists and our own scalars are validated again.
pub fn values_pass(doc: &ExecutableDocument, variables: &Variables) -> bool {
    let Some((_, operation)) = super::shape::operation(doc, None) else {
        return false;
    };
    operation.variable_definitions.iter().all(|definition| {
        let definition = &definition.node;
        match (
            &definition.var_type.node.base,
            variables.get(&definition.name.node),
        ) {
            // An argument whose variable has no value is not checked at all.
            (_, None) => true,
            (_, Some(Value::Null)) => {
                definition.var_type.node.nullable && definition.default_value.is_none()
            }
            (BaseType::Named(scalar), Some(value)) => built_in_accepts(scalar, value),
            (BaseType::List(_), Some(_)) => false,
        }
    })
}

/// The `is_valid` of async-graphql 7.2's built-in scalars, which its registry holds before
/// any type of ours (`Registry::add_system_types`: `bool`, `i32`, `f32`, `String`, `ID`).
fn built_in_accepts(scalar: &Name, value: &Value) -> bool {
    match (scalar.as_str(), value) {
        ("String" | "ID", Value::String(_)) | ("Boolean", Value::Boolean(_)) => true,
        ("Float", Value::Number(_)) => true,
        ("Int" | "ID", Value::Number(n)) => n.is_i64(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_query_is_parsed_once_and_bad_ones_are_left_alone() {
        let cache = DocumentCache::default();
        let mut first = Request::new("{ me { id } }");
        assert_eq!(cache.prepare(&mut first), Validated::No);
        assert_eq!(cache.lock().len(), 1);
        let mut again = Request::new("{ me { id } }");
        assert_eq!(
            cache.prepare(&mut again),
            Validated::No,
            "not validated yet"
        );
        assert_eq!(cache.lock().len(), 1);
        assert!(again.parsed_query().is_ok());
        cache.validated("{ me { id } }");
        let mut known = Request::new("{ me { id } }");
        assert_eq!(cache.prepare(&mut known), Validated::UnlessValues);
        let mut broken = Request::new("{ me { id }");
        cache.prepare(&mut broken);
        assert_eq!(cache.lock().len(), 1);
        let long = format!("{{ me {{ id }} }} #{}", "x".repeat(9000));
        cache.prepare(&mut Request::new(long.clone()));
        assert_eq!(cache.lock().len(), 1);
        cache.validated(&long);
        assert_eq!(cache.prepare(&mut Request::new(long)), Validated::No);
    }

    #[test]
    fn the_cache_starts_over_when_full() {
        let cache = DocumentCache::default();
        for i in 0..=MAX_CACHED_QUERIES {
            cache.prepare(&mut Request::new(format!("{{ a{i}: me {{ id }} }}")));
        }
        assert_eq!(cache.lock().len(), 1);
    }

    fn doc(text: &str) -> ExecutableDocument {
        async_graphql::parser::parse_query(text).expect("the document parses")
    }

    #[test]
    fn only_variables_that_are_whole_arguments_skip_validation() {
        for text in [
            "{ me { id } }",
            "query($ws: ID!) { workspace(id: $ws) { id } }",
            "query($on: Boolean!) { me @include(if: $on) { id } }",
            "query($on: Boolean!) { ... @include(if: $on) { me { id } } }",
            "query($ws: ID!) { ...F } fragment F on Query { workspace(id: $ws) { id } }",
            "mutation { createContact(workspaceId: \"w\", input: { name: \"B\" }) { id } }",
        ] {
            assert!(whole_variables(&doc(text)), "{text}");
        }
        for text in [
            "mutation($e: String) { createContact(workspaceId: \"w\", input: { name: \"B\", email: $e }) { id } }",
            "query($id: ID!) { workspaces(ids: [$id]) { id } }",
            "query($id: ID!) { ...F } fragment F on Query { f(input: { a: [$id] }) }",
            "query A { me { id } } query B { me { email } }",
        ] {
            let cache = DocumentCache::default();
            let mut request = Request::new(text);
            cache.prepare(&mut request);
            cache.validated(text);
            assert_eq!(cache.prepare(&mut Request::new(text)), Validated::Again, "{text}");
        }
    }

    #[test]
    fn only_values_every_use_accepts_skip_validation() {
        // `values_pass` reads the definitions alone: the fields need not exist.
        let page = doc(
            "query($ws: ID!, $n: Int, $after: String, $on: Boolean!, $x: Float) \
                        { workspace(id: $ws) { members(first: $n, after: $after) \
                        @include(if: $on) { totalCount } } rate(x: $x) }",
        );
        let vars = Variables::from_json;
        let plain = json!({ "ws": "w1", "n": 50, "after": "c", "on": true, "x": 1.5 });
        assert!(values_pass(&page, &vars(plain)));
        assert!(values_pass(
            &page,
            &vars(json!({ "ws": 7, "n": -3, "x": 2 }))
        ));
        assert!(values_pass(&page, &vars(json!({}))), "no value, no check");
        let nulls = json!({ "n": null, "after": null, "x": null });
        assert!(values_pass(&page, &vars(nulls)));
        for refused in [
            json!({ "ws": true }),
            json!({ "ws": 1.5 }),
            json!({ "ws": null }),
            json!({ "on": null }),
            json!({ "n": 1.5 }),
            json!({ "n": "ten" }),
            json!({ "after": 3 }),
            json!({ "on": "yes" }),
            json!({ "x": "1.5" }),
        ] {
            assert!(!values_pass(&page, &vars(refused.clone())), "{refused}");
        }
        let defaulted = doc("query($n: Int = 5) { members(first: $n) { totalCount } }");
        assert!(!values_pass(&defaulted, &vars(json!({ "n": null }))));
        assert!(values_pass(&defaulted, &vars(json!({ "n": 3 }))));
        let typed = doc("query($role: Role, $ids: [ID!], $at: DateTime) \
                         { f(role: $role, ids: $ids, at: $at) }");
        for value in [
            json!({ "role": "ADMIN" }),
            json!({ "ids": ["a"] }),
            json!({ "at": "2026-12-08T00:00:00Z" }),
        ] {
            assert!(!values_pass(&typed, &vars(value.clone())), "{value}");
        }
        assert!(values_pass(&typed, &vars(json!({}))));
    }
}
