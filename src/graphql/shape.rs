//! The shape of a document, measured in one pass before it is validated or run (each
//! fragment measured once, however often it is spread):
//!
//! - the depth of the operation's own selections, at most [`MAX_DEPTH`];
//! - inside introspection (`__schema`, `__type`), how many list fields nest, at most
//!   [`MAX_INTROSPECTION_LISTS`]. The standard introspection query of graphql-js (what
//!   GraphiQL, graphql-codegen and graphql-inspector send) is deep but narrow: `types >
//!   fields > args`, then a chain of `ofType`, each a single object. A fourth nested list
//!   (`fields { type { fields { type { fields`) multiplies the schema by itself, so depth
//!   alone cannot tell the standard query from an abusive one; list nesting can.
//! - how many fields the operation selects once its fragments are expanded, how many of them
//!   are aliased and how many sit at the root. Validation walks the expanded document, so a
//!   1 KB document whose fragments each spread the previous one twice took exponential time
//!   there (2^24 fields: 13 s of a worker thread); counted here with each fragment measured
//!   once, it is refused in microseconds. Aliases are how one request asks for the same
//!   expensive field hundreds of times.
//! - password checks: `signIn`, `signUp`, `resetPassword`, `changePassword`,
//!   `deleteAccount` run at most once per operation,
//!   so aliases buy no more guesses than separate requests.
//! - which operation runs and whether every required variable has a value, so a GET can be
//!   refused for a mutation and a missing variable is a request error, not a field error.

use std::collections::HashMap;

use async_graphql::parser::types::{
    ExecutableDocument, Field, OperationDefinition, OperationType, Selection, SelectionSet,
};
use async_graphql::Variables;

use crate::error::{ApiError, ErrorCode};

/// Deepest selection accepted outside introspection; the contract's deepest useful query is
/// well below.
pub const MAX_DEPTH: usize = 12;
/// Nested list fields inside introspection: `__schema { types { fields { args } } }`.
pub const MAX_INTROSPECTION_LISTS: usize = 3;
/// Fields selected, counting each fragment as often as it is spread.
pub const MAX_FIELDS: usize = 1_000;
/// Aliased fields, counted the same way.
pub const MAX_ALIASES: usize = 50;
/// Fields at the operation's root.
pub const MAX_ROOT_FIELDS: usize = 20;
/// Directives, counted like fields.
pub const MAX_DIRECTIVES: usize = 50;
/// Lexical tokens in a document (graphql-js's `maxTokens` guards its parser the same way;
/// the standard introspection query has about 300).
pub const MAX_TOKENS: usize = 10_000;
/// The longest text value accepted anywhere (fields have smaller limits of their own).
pub const MAX_TEXT_CHARS: usize = 10_000;
/// Root fields that check a password; one per operation.
const PASSWORD_FIELDS: [&str; 5] = [
    "signIn",
    "signUp",
    "resetPassword",
    "changePassword",
    "deleteAccount",
];
/// The library's own depth limit stays as a backstop above both (the standard
/// introspection query is 15 deep with its `ofType` chain).
pub const BACKSTOP_DEPTH: usize = 24;

/// Introspection fields that return lists.
const INTROSPECTION_LISTS: [&str; 8] = [
    "types",
    "fields",
    "args",
    "inputFields",
    "interfaces",
    "possibleTypes",
    "enumValues",
    "directives",
];

/// What the transport needs to know about a document before running it.
pub struct Shape {
    pub operation: OperationType,
    /// The operation's own name, as the document gives it (metrics label by it).
    pub name: Option<async_graphql::Name>,
}

/// Measures `doc` for `operation_name` (`introspection: false` refuses `__schema` and
/// `__type`, `INTROSPECTION=false`). Unknown operations and fragments are left for
/// validation to report; only the budgets and variables answer here.
pub fn check(
    doc: &ExecutableDocument,
    operation_name: Option<&str>,
    variables: &Variables,
    introspection: bool,
) -> Result<Option<Shape>, ApiError> {
    let Some((name, operation)) = operation(doc, operation_name) else {
        return Ok(None);
    };
    let mut measure = Measure {
        doc,
        costs: HashMap::new(),
        lists: HashMap::new(),
        introspection_lists: 0,
        introspects: false,
    };
    let cost = measure.cost(&operation.selection_set.node);
    if cost.fields > MAX_FIELDS {
        return Err(too_complex(format!(
            "The query selects {} fields once its fragments are expanded; at most {MAX_FIELDS} are allowed.",
            cost.fields
        )));
    }
    if cost.aliases > MAX_ALIASES {
        return Err(too_complex(format!(
            "The query has {} aliased fields; at most {MAX_ALIASES} are allowed.",
            cost.aliases
        )));
    }
    if cost.directives > MAX_DIRECTIVES {
        return Err(too_complex(format!(
            "The query has {} directives; at most {MAX_DIRECTIVES} are allowed.",
            cost.directives
        )));
    }
    if cost.depth > MAX_DEPTH {
        return Err(too_complex(format!(
            "The query is {} levels deep; at most {MAX_DEPTH} are allowed.",
            cost.depth
        )));
    }
    let root: Vec<&str> = fields_of(doc, &[&operation.selection_set.node])
        .into_iter()
        .map(|field| field.name.node.as_str())
        .collect();
    if root.len() > MAX_ROOT_FIELDS {
        return Err(too_complex(format!(
            "The operation has {} root fields; at most {MAX_ROOT_FIELDS} are allowed.",
            root.len()
        )));
    }
    let password_checks = root
        .iter()
        .filter(|name| PASSWORD_FIELDS.contains(name))
        .count();
    if password_checks > 1 {
        return Err(too_complex(
            "An operation may check a password once: send one signIn, signUp or resetPassword per request."
                .to_owned(),
        ));
    }
    if measure.introspects && !introspection {
        return Err(ApiError::new(
            ErrorCode::GraphqlValidationFailed,
            "Introspection is switched off on this server.",
        ));
    }
    if measure.introspection_lists > MAX_INTROSPECTION_LISTS {
        return Err(too_complex(format!(
            "The introspection query nests {} lists; at most {MAX_INTROSPECTION_LISTS} are allowed.",
            measure.introspection_lists
        )));
    }
    if let Some(problem) = variables.values().find_map(text_problem).or_else(|| {
        doc.fragments
            .values()
            .flat_map(|fragment| fields_in(&fragment.node.selection_set.node))
            .chain(
                doc.operations
                    .iter()
                    .flat_map(|(_, op)| fields_in(&op.node.selection_set.node)),
            )
            .flat_map(|field| field.arguments.iter().map(|(_, value)| &value.node))
            .find_map(|value| value.clone().into_const().as_ref().and_then(text_problem))
    }) {
        return Err(ApiError::bad_input(problem));
    }
    for definition in &operation.variable_definitions {
        let definition = &definition.node;
        let provided = variables
            .get(&definition.name.node)
            .is_some_and(|value| *value != async_graphql::Value::Null);
        if !definition.var_type.node.nullable && definition.default_value.is_none() && !provided {
            return Err(ApiError::bad_input(format!(
                "Variable `${}` of type `{}` needs a value.",
                definition.name.node, definition.var_type.node
            )));
        }
    }
    Ok(Some(Shape {
        operation: operation.ty,
        name: name.cloned(),
    }))
}

/// Why a text value somewhere in `value` is refused, if one is.
fn text_problem(value: &async_graphql::Value) -> Option<String> {
    use async_graphql::Value;
    match value {
        Value::String(text) if text.contains('\0') => {
            Some("Text values must not contain NUL characters.".to_owned())
        }
        Value::String(text) if text.chars().count() > MAX_TEXT_CHARS => Some(format!(
            "Text values are at most {MAX_TEXT_CHARS} characters long."
        )),
        Value::List(items) => items.iter().find_map(text_problem),
        Value::Object(fields) => fields.values().find_map(text_problem),
        _ => None,
    }
}

/// Every field in `set` and below, fragments' own fields not included (they are walked as
/// fragments). Linear in the document.
fn fields_in(set: &SelectionSet) -> Vec<&Field> {
    let mut found = Vec::new();
    let mut stack = vec![set];
    while let Some(set) = stack.pop() {
        for selection in &set.items {
            match &selection.node {
                Selection::Field(field) => {
                    found.push(&field.node);
                    stack.push(&field.node.selection_set.node);
                }
                Selection::InlineFragment(inline) => stack.push(&inline.node.selection_set.node),
                Selection::FragmentSpread(_) => {}
            }
        }
    }
    found
}

/// How many lexical tokens `text` holds, counted up to `MAX_TOKENS + 1`: punctuators, names,
/// numbers and strings; whitespace, commas and comments are not tokens. A rough lexer (it
/// does not validate), enough to bound what the parser will be given.
pub fn count_tokens(text: &str) -> usize {
    let bytes = text.as_bytes();
    let (mut i, mut tokens) = (0, 0);
    while i < bytes.len() && tokens <= MAX_TOKENS {
        match bytes[i] {
            b' ' | b'\t' | b'\n' | b'\r' | b',' | 0xEF | 0xBB | 0xBF => i += 1,
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    i += if bytes[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i += 3;
                tokens += 1;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                tokens += 1;
            }
            b'.' if bytes[i..].starts_with(b"...") => {
                i += 3;
                tokens += 1;
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b'-' => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric()
                        || matches!(bytes[i], b'_' | b'.' | b'-' | b'+'))
                {
                    i += 1;
                }
                tokens += 1;
            }
            _ => {
                i += 1;
                tokens += 1;
            }
        }
    }
    tokens
}

fn too_complex(message: String) -> ApiError {
    ApiError::new(ErrorCode::QueryTooComplex, message)
}

/// The operation a request runs, with its name: the named one, or the only one.
pub fn operation<'d>(
    doc: &'d ExecutableDocument,
    name: Option<&str>,
) -> Option<(Option<&'d async_graphql::Name>, &'d OperationDefinition)> {
    let mut operations = doc.operations.iter();
    match name {
        Some(name) => operations
            .find(|(op_name, _)| op_name.is_some_and(|n| n.as_str() == name))
            .map(|(op_name, op)| (op_name, &op.node)),
        None => {
            let (only_name, only) = operations.next()?;
            operations
                .next()
                .is_none()
                .then_some((only_name, &only.node))
        }
    }
}

/// What a selection set costs: its depth (outside introspection), and the fields and
/// aliases it selects with fragments expanded (saturating: an abusive document's counts
/// overflow any integer).
#[derive(Clone, Copy, Debug, Default)]
struct Cost {
    depth: usize,
    fields: usize,
    aliases: usize,
    directives: usize,
}

impl Cost {
    /// Two selections side by side.
    fn beside(self, other: Cost) -> Cost {
        Cost {
            depth: self.depth.max(other.depth),
            fields: self.fields.saturating_add(other.fields),
            aliases: self.aliases.saturating_add(other.aliases),
            directives: self.directives.saturating_add(other.directives),
        }
    }
}

struct Measure<'d> {
    doc: &'d ExecutableDocument,
    /// Each fragment's cost (`None`: being measured, a cycle, which validation reports).
    costs: HashMap<&'d str, Option<Cost>>,
    /// Nested introspection lists in each fragment.
    lists: HashMap<&'d str, Option<usize>>,
    /// The most nested lists seen under any `__schema` or `__type`.
    introspection_lists: usize,
    /// Whether the document asks `__schema` or `__type` at all.
    introspects: bool,
}

impl<'d> Measure<'d> {
    fn cost(&mut self, set: &'d SelectionSet) -> Cost {
        let mut total = Cost::default();
        for selection in &set.items {
            let cost = match &selection.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    let mut below = self.cost(&field.selection_set.node);
                    if matches!(field.name.node.as_str(), "__schema" | "__type") {
                        let lists = self.lists(&field.selection_set.node);
                        self.introspection_lists = self.introspection_lists.max(lists);
                        self.introspects = true;
                        // Introspection is bounded by its list nesting, not by depth.
                        below.depth = 0;
                    }
                    Cost {
                        depth: 1 + below.depth,
                        fields: below.fields.saturating_add(1),
                        aliases: below
                            .aliases
                            .saturating_add(usize::from(field.alias.is_some())),
                        directives: below.directives.saturating_add(field.directives.len()),
                    }
                }
                Selection::InlineFragment(inline) => {
                    let mut cost = self.cost(&inline.node.selection_set.node);
                    cost.directives = cost.directives.saturating_add(inline.node.directives.len());
                    cost
                }
                Selection::FragmentSpread(spread) => {
                    let mut cost = self.fragment(
                        spread.node.fragment_name.node.as_str(),
                        |m| &mut m.costs,
                        Self::cost,
                    );
                    cost.directives = cost.directives.saturating_add(spread.node.directives.len());
                    cost
                }
            };
            total = total.beside(cost);
        }
        total
    }

    /// `measure` of the fragment `name`, computed once and remembered in `memo`. A fragment
    /// being measured counts nothing when met again (a cycle, which validation reports),
    /// and an unknown one nothing (validation reports that too).
    fn fragment<T: Copy + Default>(
        &mut self,
        name: &'d str,
        memo: fn(&mut Self) -> &mut HashMap<&'d str, Option<T>>,
        measure: fn(&mut Self, &'d SelectionSet) -> T,
    ) -> T {
        if let Some(known) = memo(self).get(name) {
            return known.unwrap_or_default();
        }
        let Some(fragment) = self.doc.fragments.get(name) else {
            return T::default();
        };
        memo(self).insert(name, None);
        let value = measure(self, &fragment.node.selection_set.node);
        memo(self).insert(name, Some(value));
        value
    }

    /// How many introspection list fields nest in `set` (every field under `__schema` or
    /// `__type` is an introspection field).
    fn lists(&mut self, set: &'d SelectionSet) -> usize {
        let mut most = 0;
        for selection in &set.items {
            let lists = match &selection.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    let own = usize::from(INTROSPECTION_LISTS.contains(&field.name.node.as_str()));
                    own + self.lists(&field.selection_set.node)
                }
                Selection::InlineFragment(inline) => self.lists(&inline.node.selection_set.node),
                Selection::FragmentSpread(spread) => self.fragment(
                    spread.node.fragment_name.node.as_str(),
                    |m| &mut m.lists,
                    Self::lists,
                ),
            };
            most = most.max(lists);
        }
        most
    }
}

/// The fields `sets` select, in document order, through inline fragments and fragment
/// spreads (each named fragment once: a cycle, which validation reports, ends there). The
/// one walk behind the root-field count here and `null` placement in `nulls`.
pub fn fields_of<'d>(doc: &'d ExecutableDocument, sets: &[&'d SelectionSet]) -> Vec<&'d Field> {
    fn walk<'d>(
        doc: &'d ExecutableDocument,
        set: &'d SelectionSet,
        seen: &mut Vec<&'d str>,
        fields: &mut Vec<&'d Field>,
    ) {
        for selection in &set.items {
            match &selection.node {
                Selection::Field(field) => fields.push(&field.node),
                Selection::InlineFragment(inline) => {
                    walk(doc, &inline.node.selection_set.node, seen, fields);
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    if seen.contains(&name) {
                        continue;
                    }
                    seen.push(name);
                    if let Some(fragment) = doc.fragments.get(name) {
                        walk(doc, &fragment.node.selection_set.node, seen, fields);
                    }
                }
            }
        }
    }
    let (mut seen, mut fields) = (Vec::new(), Vec::new());
    for set in sets {
        walk(doc, set, &mut seen, &mut fields);
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;

    fn measure(query: &str) -> Result<OperationType, String> {
        let doc = parse_query(query).expect("parses");
        check(&doc, None, &Variables::default(), true)
            .map(|shape| shape.expect("one operation").operation)
            .map_err(|err| format!("{:?}: {}", err.code(), err.message()))
    }

    /// graphql-js 16's `getIntrospectionQuery({ descriptions, directiveIsRepeatable,
    /// schemaDescription, inputValueDeprecation, specifiedByUrl })`, as GraphiQL sends it.
    pub const STANDARD_INTROSPECTION: &str = include_str!("introspection_query.graphql");

    #[test]
    fn the_standard_introspection_query_fits() {
        assert_eq!(measure(STANDARD_INTROSPECTION), Ok(OperationType::Query));
    }

    #[test]
    fn a_fourth_nested_introspection_list_is_refused() {
        let abusive =
            "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }";
        let err = measure(abusive).expect_err("refused");
        assert!(err.starts_with("QueryTooComplex"), "{err}");
        let through_fragments = "{ __type(name: \"Query\") { ...F } }
            fragment F on __Type { fields { type { ...G } } }
            fragment G on __Type { fields { type { fields { type { fields { name } } } } } }";
        let err = measure(through_fragments).expect_err("refused");
        assert!(err.contains("nests 4 lists"), "{err}");
    }

    #[test]
    fn depth_counts_through_fragments_once_each() {
        let mut chain = String::from("{ me { ...F0 } }");
        for i in 0..12 {
            chain.push_str(&format!(
                " fragment F{i} on User {{ activeWorkspace {{ owner: viewerRole ...F{} }} }}",
                i + 1
            ));
        }
        chain.push_str(" fragment F12 on User { id }");
        let err = measure(&chain).expect_err("too deep");
        // `me`, twelve `activeWorkspace`, then `id`.
        assert!(err.contains("14 levels"), "{err}");
        // A fragment spread thousands of times is measured once: 2^40 spreads are counted,
        // not walked, and refused.
        let mut wide = String::from("query { me { ...A0 } }");
        for i in 0..40 {
            wide.push_str(&format!(
                " fragment A{i} on User {{ ...A{} ...A{} }}",
                i + 1,
                i + 1
            ));
        }
        wide.push_str(" fragment A40 on User { id }");
        assert!(measure(&wide)
            .expect_err("too many")
            .contains("fields once"));
    }

    #[test]
    fn fragments_that_double_are_counted_without_being_expanded() {
        // Each fragment spreads the previous twice: 2^40 fields, counted in 41 steps.
        let mut doc = String::from("query { ...F40 }");
        for i in (1..=40).rev() {
            doc.push_str(&format!(
                " fragment F{i} on Query {{ ...F{} ...F{} }}",
                i - 1,
                i - 1
            ));
        }
        doc.push_str(" fragment F0 on Query { __typename }");
        let err = measure(&doc).expect_err("refused");
        assert!(
            err.contains("fields once its fragments are expanded"),
            "{err}"
        );
    }

    #[test]
    fn aliases_root_fields_and_password_checks_are_counted() {
        let aliases: String = (0..51).map(|i| format!(" a{i}: __typename")).collect();
        let err = measure(&format!("{{ me {{ {aliases} }} }}")).expect_err("refused");
        assert!(err.contains("51 aliased"), "{err}");
        let roots = " __typename".repeat(21);
        let err = measure(&format!("query {{ {roots} }}")).expect_err("refused");
        assert!(err.contains("21 root fields"), "{err}");
        let twice = "mutation { a: signIn(email: \"a@x.io\", password: \"p\") { token }
            ...More } fragment More on Mutation { b: signIn(email: \"a@x.io\", password: \"q\") { token } }";
        let err = measure(twice).expect_err("refused");
        assert!(err.contains("check a password once"), "{err}");
        let once = "mutation { signIn(email: \"a@x.io\", password: \"p\") { token } }";
        assert_eq!(measure(once), Ok(OperationType::Mutation));
    }

    #[test]
    fn tokens_are_counted_like_graphql_js_counts_them() {
        assert_eq!(count_tokens("{ me { id } }"), 6);
        assert_eq!(count_tokens("query Q($a: Int = 1) { f(a: $a) }"), 19);
        assert_eq!(count_tokens("# a comment, with commas\n{ a, b }"), 4);
        assert_eq!(count_tokens("{ f(s: \"a \\\" } b\") }"), 8);
        assert_eq!(
            count_tokens("{ f(s: \"\"\" block \\\"\"\" still \"\"\") ...F }"),
            10
        );
        assert_eq!(count_tokens("{ f(x: -1.5e3) }"), 8);
        let huge = "{ a ".repeat(6_000);
        assert_eq!(
            count_tokens(&huge),
            MAX_TOKENS + 1,
            "counting stops past the budget"
        );
    }

    #[test]
    fn text_values_are_bounded_in_variables_and_in_the_document() {
        let doc = parse_query("mutation { a(s: \"x\\u0000y\") }").expect("parses");
        let refused = check(&doc, None, &Variables::default(), true)
            .err()
            .expect("refused");
        assert_eq!(refused.code(), ErrorCode::BadUserInput);
        let doc = parse_query("mutation($s: String) { a(s: $s) }").expect("parses");
        let long = Variables::from_json(serde_json::json!({ "s": "x".repeat(MAX_TEXT_CHARS + 1) }));
        assert!(check(&doc, None, &long, true).is_err());
        let nested = Variables::from_json(serde_json::json!({ "s": { "deep": ["ok", "a\0"] } }));
        assert!(check(&doc, None, &nested, true).is_err());
        let fine = Variables::from_json(serde_json::json!({ "s": "line\nbreak\ttab" }));
        assert!(check(&doc, None, &fine, true).is_ok());
    }

    #[test]
    fn directives_are_counted_through_fragments() {
        let many: String = (0..26).map(|_| " @include(if: true)").collect();
        let doc = parse_query(format!(
            "{{ ...F ...F }} fragment F on Query {{ me{many} {{ id }} }}"
        ))
        .expect("parses");
        let refused = check(&doc, None, &Variables::default(), true)
            .err()
            .expect("refused");
        assert_eq!(refused.code(), ErrorCode::QueryTooComplex);
    }

    #[test]
    fn a_fragment_cycle_is_left_for_validation() {
        let cycle = "{ me { ...A } } fragment A on User { ...B } fragment B on User { ...A }";
        assert_eq!(measure(cycle), Ok(OperationType::Query));
    }

    #[test]
    fn required_variables_need_values() {
        let doc =
            parse_query("query Q($id: ID!, $n: Int, $d: Int! = 3) { __typename }").expect("parses");
        let err = check(&doc, Some("Q"), &Variables::default(), true)
            .err()
            .expect("missing $id");
        assert_eq!(err.code(), ErrorCode::BadUserInput);
        assert!(err.message().contains("$id"));
        let vars = Variables::from_json(serde_json::json!({ "id": "x" }));
        assert!(check(&doc, Some("Q"), &vars, true).is_ok());
        let null = Variables::from_json(serde_json::json!({ "id": null }));
        assert!(check(&doc, Some("Q"), &null, true).is_err());
    }

    #[test]
    fn the_operation_is_the_named_or_the_only_one() {
        let doc = parse_query("query A { __typename } mutation B { __typename }").expect("parses");
        let op = |name| operation(&doc, name).map(|(_, op)| op.ty);
        assert_eq!(op(Some("B")), Some(OperationType::Mutation));
        assert_eq!(op(Some("A")), Some(OperationType::Query));
        assert_eq!(op(None), None);
        assert_eq!(op(Some("C")), None);
    }
}
