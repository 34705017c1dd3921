//! A subscription's events resolved outside its async-graphql operation.
//!
//! async-graphql keeps each subscription's whole operation alive for as long as it runs: the
//! request's preparation (room for it stays in the operation's stream), the document, the
//! variables, and a box per root field. Dropping it took an idle subscribed socket from about
//! 18 KB of the server's memory to about 11 (BENCHMARKS.md, thirty-fifth round). So once a
//! subscription's resolver has begun its stream, it hands the stream out through the
//! operation's [`HandOff`] ([`hand_off`]), wrapped to resolve each item as async-graphql's
//! derive does (async-graphql-derive 7.2.1, `subscription.rs`: a context on the field's
//! selection set, `OutputType::resolve`, the schema's extensions around both). Its
//! resolver then returns an empty stream, async-graphql's operation ends and is dropped,
//! and [`execute_stream`] goes on with the stream handed out.
//!
//! What resolving an event needs of the operation is kept in a query environment of its own:
//! the field's selection set, the fragments and variables it uses, and the request's data.
//! This uses async-graphql's hidden but public API (`QueryEnv`, `create_context`): hence
//! the version pinned in Cargo.toml, and the unit tests below, which hold the results to
//! async-graphql's own for aliases, fragments, directives and variables.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::extensions::ResolveInfo;
use async_graphql::parser::types::{
    Directive, Field, FragmentDefinition, OperationDefinition, Selection, SelectionSet,
};
use async_graphql::{
    Context, Data, Name, ObjectType, OutputType, Positioned, QueryEnv, QueryEnvInner,
    QueryPathNode, QueryPathSegment, Request, Response, Schema, SchemaEnv, SubscriptionType, Value,
    Variables,
};
use async_graphql_value::Value as InputValue;
use futures_util::stream::{self, BoxStream};
use futures_util::{Stream, StreamExt as _};

/// Where a subscription's resolver leaves its stream for [`execute_stream`]: one per
/// operation, in the request's data.
#[derive(Clone, Default)]
pub struct HandOff(Arc<Mutex<Option<BoxStream<'static, Response>>>>);

impl HandOff {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<BoxStream<'static, Response>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Empties its [`HandOff`] when dropped, taken or not. A handed stream holds the request's
/// data, which holds the hand-off: left there, it would keep itself (and its feed) alive.
struct Handed(HandOff);

impl Drop for Handed {
    fn drop(&mut self) {
        let left = self.0.lock().take();
        drop(left);
    }
}

/// `request`'s responses as `schema.execute_stream_with_session_data` gives them, with the
/// operation dropped once its resolver handed its stream out.
pub fn execute_stream<Q, M, S>(
    schema: &Schema<Q, M, S>,
    request: Request,
    session_data: Arc<Data>,
) -> BoxStream<'static, Response>
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    let handed = Handed(HandOff::default());
    let request = request.data(handed.0.clone());
    let operation = schema.execute_stream_with_session_data(request, session_data);
    let handed = stream::once(async move { handed.0.lock().take() })
        .filter_map(std::future::ready)
        .flatten();
    // `chain` drops the operation's stream once it ends, before it polls the handed one.
    operation.chain(handed).boxed()
}

/// For a subscription's resolver, once its stream has begun: hands `items`, resolved against
/// the field as the derive would, out to [`execute_stream`], and returns the empty stream
/// that ends the operation. Without a [`HandOff`] (the schema run by other means), `items`
/// go back as they are.
pub fn hand_off<T, S>(
    ctx: &Context<'_>,
    items: S,
) -> futures_util::future::Either<stream::Empty<S::Item>, S>
where
    T: OutputType + Sync + 'static,
    S: Stream<Item = async_graphql::Result<T>> + Send + 'static,
{
    let Some(handoff) = ctx.data_opt::<HandOff>() else {
        return futures_util::future::Either::Right(items);
    };
    if handoff.lock().is_some() {
        // Only one root field hands its stream out (src/http/socket.rs admits no other).
        return futures_util::future::Either::Right(items);
    }
    let event = Arc::new(EventField::of(ctx));
    let items = Box::pin(items);
    let responses = stream::unfold((items, event), |(mut items, event)| async move {
        let item = items.next().await?;
        // Boxed while it runs: inlined, room for it would stay in every idle subscription.
        let response = Box::pin(event.resolve(item)).await;
        Some((response, (items, event)))
    });
    let responses = ctx.query_env.extensions.subscribe(responses.boxed());
    *handoff.lock() = Some(responses);
    futures_util::future::Either::Left(stream::empty())
}

/// What resolving one item of a subscription's field needs.
struct EventField {
    schema_env: SchemaEnv,
    query_env: QueryEnv,
    /// As async-graphql prepared it for this request: its selections skipped under the
    /// request's variables are gone, so it is not shared with another request's.
    field: Positioned<Field>,
    /// The field's alias or name: the response's key.
    key: Name,
}

impl EventField {
    fn of(ctx: &Context<'_>) -> EventField {
        let field = ctx.item.clone();
        EventField {
            schema_env: ctx.schema_env.clone(),
            query_env: slim(ctx.query_env, &field.node.selection_set.node),
            key: field.node.response_key().node.clone(),
            field,
        }
    }

    /// As async-graphql-derive 7.2.1 resolves a subscription's item (subscription.rs), the
    /// schema's extensions around it, the parent type named as the schema's root
    /// (`Subscription`, where the derive names the merged part's own type).
    async fn resolve<T: OutputType + Sync>(&self, item: async_graphql::Result<T>) -> Response {
        let env = &self.query_env;
        let execute = |execute_data: Option<Data>| async move {
            let path = QueryPathNode {
                parent: None,
                segment: QueryPathSegment::Name(&self.key),
            };
            let selection_set = &self.field.node.selection_set;
            let ctx = env.create_context(
                &self.schema_env,
                Some(path),
                selection_set,
                execute_data.as_ref(),
            );
            let return_type = <async_graphql::Result<T> as OutputType>::qualified_type_name();
            let info = ResolveInfo {
                path_node: &path,
                parent_type: "Subscription",
                return_type: &return_type,
                name: self.field.node.name.node.as_str(),
                alias: self
                    .field
                    .node
                    .alias
                    .as_ref()
                    .map(|alias| alias.node.as_str()),
                is_for_introspection: false,
                field: &self.field.node,
            };
            let resolving = async {
                OutputType::resolve(&item, &ctx, &self.field)
                    .await
                    .map(Some)
            };
            futures_util::pin_mut!(resolving);
            let resolved = env.extensions.resolve(info, &mut resolving).await;
            self.response(resolved)
        };
        env.extensions
            .execute(env.operation_name.as_deref(), execute)
            .await
    }

    /// The response to one item: its value under the field's key, and the errors its
    /// fields added.
    fn response(&self, resolved: async_graphql::ServerResult<Option<Value>>) -> Response {
        let mut response = match resolved {
            Ok(value) => {
                let mut data = async_graphql::indexmap::IndexMap::new();
                data.insert(self.key.clone(), value.unwrap_or_default());
                Response::new(Value::Object(data))
            }
            Err(err) => Response::from_errors(vec![err]),
        };
        let mut errors = self
            .query_env
            .errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        response.errors.extend(std::mem::take(&mut *errors));
        response
    }
}

/// The query environment an event's resolution needs: `selection_set`'s fragments and
/// variables (with their definitions), and the request's data and extensions. Not the rest
/// of the document, nor the root field's own variables: its arguments were read when the
/// stream began.
fn slim(env: &QueryEnv, selection_set: &SelectionSet) -> QueryEnv {
    let mut used = Used::default();
    used.selection_set(selection_set, &env.fragments);
    let fragments: HashMap<_, _> = used
        .fragments
        .iter()
        .filter_map(|name| Some(((*name).clone(), env.fragments.get(*name)?.clone())))
        .collect();
    let mut variables = Variables::default();
    for name in &used.variables {
        if let Some(value) = env.variables.get(*name) {
            variables.insert((*name).clone(), value.clone());
        }
    }
    let operation = &env.operation;
    let definitions = operation.node.variable_definitions.iter();
    let operation = Positioned::new(
        OperationDefinition {
            ty: operation.node.ty,
            variable_definitions: definitions
                .filter(|definition| used.variables.contains(&definition.node.name.node))
                .cloned()
                .collect(),
            directives: Vec::new(),
            selection_set: Positioned::new(SelectionSet::default(), operation.pos),
        },
        operation.pos,
    );
    QueryEnv::new(QueryEnvInner {
        extensions: env.extensions.clone(),
        variables,
        operation_name: env.operation_name.clone(),
        operation,
        fragments,
        uploads: Vec::new(),
        session_data: Arc::clone(&env.session_data),
        query_data: Arc::clone(&env.query_data),
        http_headers: Mutex::default(),
        introspection_mode: env.introspection_mode,
        errors: Mutex::default(),
    })
}

/// The fragments and variables a selection set uses, through the fragments it spreads.
#[derive(Default)]
struct Used<'a> {
    fragments: BTreeSet<&'a Name>,
    variables: BTreeSet<&'a Name>,
}

impl<'a> Used<'a> {
    fn selection_set(
        &mut self,
        selection_set: &'a SelectionSet,
        fragments: &'a HashMap<Name, Positioned<FragmentDefinition>>,
    ) {
        for selection in &selection_set.items {
            match &selection.node {
                Selection::Field(field) => {
                    for (_, value) in &field.node.arguments {
                        self.value(&value.node);
                    }
                    self.directives(&field.node.directives);
                    self.selection_set(&field.node.selection_set.node, fragments);
                }
                Selection::FragmentSpread(spread) => {
                    self.directives(&spread.node.directives);
                    let name = &spread.node.fragment_name.node;
                    if !self.fragments.insert(name) {
                        continue;
                    }
                    if let Some(fragment) = fragments.get(name) {
                        self.directives(&fragment.node.directives);
                        self.selection_set(&fragment.node.selection_set.node, fragments);
                    }
                }
                Selection::InlineFragment(inline) => {
                    self.directives(&inline.node.directives);
                    self.selection_set(&inline.node.selection_set.node, fragments);
                }
            }
        }
    }

    fn directives(&mut self, directives: &'a [Positioned<Directive>]) {
        for directive in directives {
            for (_, value) in &directive.node.arguments {
                self.value(&value.node);
            }
        }
    }

    fn value(&mut self, value: &'a InputValue) {
        match value {
            InputValue::Variable(name) => {
                self.variables.insert(name);
            }
            InputValue::List(items) => items.iter().for_each(|item| self.value(item)),
            InputValue::Object(fields) => fields.values().for_each(|field| self.value(field)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::{EmptyMutation, Object, Subscription};

    use super::*;

    struct Query;

    #[Object]
    impl Query {
        async fn up(&self) -> bool {
            true
        }
    }

    struct Item(i32);

    #[Object]
    impl Item {
        async fn n(&self) -> i32 {
            self.0
        }

        async fn times(&self, by: i32) -> i32 {
            self.0 * by
        }

        async fn next(&self) -> Item {
            Item(self.0 + 1)
        }

        async fn tags(&self, prefixes: Vec<String>) -> Vec<String> {
            prefixes.iter().map(|p| format!("{p}{}", self.0)).collect()
        }

        async fn fails(&self) -> async_graphql::Result<i32> {
            Err("a field's own error".into())
        }
    }

    struct Sub;

    /// How many of a test's subscriptions began with a hand-off to take their stream.
    #[derive(Clone, Default)]
    struct Handing(Arc<std::sync::atomic::AtomicUsize>);

    #[Subscription]
    impl Sub {
        async fn items(
            &self,
            ctx: &Context<'_>,
            from: i32,
        ) -> impl Stream<Item = async_graphql::Result<Item>> + use<> {
            if let (Some(handing), Some(_)) = (ctx.data_opt::<Handing>(), ctx.data_opt::<HandOff>())
            {
                handing.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            let items = [Ok(Item(from)), Ok(Item(from + 1)), Err("the end".into())];
            hand_off(ctx, stream::iter(items))
        }
    }

    const DOCUMENT: &str = r#"
        query Other { up }
        subscription Watch($from: Int!, $by: Int!, $deep: Boolean!, $skip: Boolean = false,
                           $prefixes: [String!]!, $factor: Int = 7) {
          renamed: items(from: $from) {
            n
            twice: times(by: $by)
            ...Next
            ... on Item @include(if: $deep) { next { next { n } } }
            tags(prefixes: $prefixes) @skip(if: $skip)
            fails
            __typename
          }
        }
        fragment Next on Item { next { times(by: $by) ...Deeper } }
        fragment Deeper on Item { n deeper: times(by: $factor) }
    "#;

    fn schema() -> Schema<Query, EmptyMutation, Sub> {
        Schema::new(Query, EmptyMutation, Sub)
    }

    fn request(variables: serde_json::Value) -> Request {
        Request::new(DOCUMENT)
            .operation_name("Watch")
            .variables(Variables::from_json(variables))
    }

    async fn json(responses: BoxStream<'static, Response>) -> serde_json::Value {
        let responses: Vec<Response> = responses.collect().await;
        serde_json::to_value(responses).expect("serialised")
    }

    fn cases() -> [serde_json::Value; 3] {
        [
            serde_json::json!({"from": 3, "by": 2, "deep": true, "prefixes": ["a", "b"]}),
            serde_json::json!({"from": -1, "by": 5, "deep": false, "skip": true, "prefixes": []}),
            // A document async-graphql refuses: it answers before any resolver runs.
            serde_json::json!({"from": "three", "by": 2, "deep": true, "prefixes": []}),
        ]
    }

    #[tokio::test]
    async fn handed_out_events_resolve_as_async_graphql_resolves_them() {
        let schema = schema();
        let handing = Handing::default();
        for (case, variables) in cases().into_iter().enumerate() {
            // No hand-off in the request: async-graphql resolves the items itself.
            let theirs = json(schema.execute_stream(request(variables.clone()))).await;
            let request = request(variables).data(handing.clone());
            let ours = json(execute_stream(&schema, request, Arc::default())).await;
            assert_eq!(ours, theirs);
            let expected = match case {
                // Two events, each with its field's error, then the stream's own error.
                0 | 1 => ["renamed", "renamed", ""],
                _ => [""; 3],
            };
            for (at, key) in expected
                .iter()
                .enumerate()
                .take(if case == 2 { 1 } else { 3 })
            {
                let data = &theirs[at]["data"];
                match *key {
                    "" => assert!(data.is_null(), "{theirs}"),
                    key => assert!(data[key]["n"].is_number(), "{theirs}"),
                }
                assert!(theirs[at]["errors"][0]["message"].is_string(), "{theirs}");
            }
        }
        assert_eq!(
            deeper_by_default(&schema).await,
            4 * 7,
            "`$factor`'s default"
        );
        // Cases 0 and 1 ran their resolver (case 2 was refused before), each handing off.
        assert_eq!(handing.0.load(std::sync::atomic::Ordering::Relaxed), 2);
    }

    /// `Deeper`'s `times(by: $factor)` in case 0's first event, `$factor` left out.
    async fn deeper_by_default(schema: &Schema<Query, EmptyMutation, Sub>) -> i64 {
        let ours = json(execute_stream(
            schema,
            request(cases()[0].clone()),
            Arc::default(),
        ))
        .await;
        ours[0]["data"]["renamed"]["next"]["deeper"]
            .as_i64()
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn the_operation_ends_once_its_stream_is_handed_out() {
        let schema = schema();
        let handoff = HandOff::default();
        let request = request(cases()[0].clone()).data(handoff.clone());
        let operation: Vec<Response> = schema.execute_stream(request).collect().await;
        assert!(operation.is_empty(), "{operation:?}");
        let handed = handoff.lock().take().expect("handed out");
        let events = json(handed).await;
        assert_eq!(events.as_array().map(Vec::len), Some(3), "{events}");
        assert_eq!(events[0]["data"]["renamed"]["next"]["n"], 4, "{events}");
        assert_eq!(events[2]["errors"][0]["path"][0], "renamed", "{events}");
    }

    #[test]
    fn a_stream_never_taken_does_not_keep_itself() {
        let handoff = HandOff::default();
        // As a handed stream holds the request's data, and so its hand-off.
        let held = handoff.clone();
        let responses = stream::once(async move {
            drop(held);
            Response::new(Value::Null)
        });
        *handoff.lock() = Some(responses.boxed());
        assert_eq!(Arc::strong_count(&handoff.0), 2);
        drop(Handed(handoff.clone()));
        assert_eq!(Arc::strong_count(&handoff.0), 1);
    }

    #[test]
    fn an_event_keeps_only_what_its_selection_uses() {
        let document = async_graphql::parser::parse_query(DOCUMENT).expect("parses");
        let async_graphql::parser::types::DocumentOperations::Multiple(operations) =
            &document.operations
        else {
            panic!("two operations");
        };
        let watch = &operations[&Name::new("Watch")];
        let Selection::Field(root) = &watch.node.selection_set.node.items[0].node else {
            panic!("a field");
        };
        let mut used = Used::default();
        used.selection_set(&root.node.selection_set.node, &document.fragments);
        fn names(set: &BTreeSet<&Name>) -> Vec<String> {
            set.iter().map(|name| name.to_string()).collect()
        }
        // Not `from`: the root field's own, read once when the stream began. (async-graphql
        // takes `@skip` and `@include` out before a resolver runs, with what they skip: the
        // variables they read are not kept then.)
        assert_eq!(
            names(&used.variables),
            ["by", "deep", "factor", "prefixes", "skip"]
        );
        assert_eq!(names(&used.fragments), ["Deeper", "Next"]);
    }
}
