//! Field errors as the GraphQL spec has them ("Handling Field Errors"): the field that
//! failed is `null`, and when its type is non-null the `null` moves up to the nearest
//! nullable ancestor, up to `data` itself. Never a missing key.
//!
//! async-graphql 7 instead drops a failed field's key from its parent object, and answers
//! `null` for an object all of whose selected fields failed. This pass repairs a finished
//! response from its errors' paths, the document and the schema's output types; it runs
//! only on responses that have field errors, so a clean response costs nothing.

use std::collections::HashMap;

use async_graphql::parser::types::{
    BaseType, ExecutableDocument, OperationType, SelectionSet, Type, TypeKind, TypeSystemDefinition,
};
use async_graphql::{Name, PathSegment, Response, Value};

use super::shape::fields_of;

/// The output fields of every object type: `(type, field) -> type`, read from the SDL.
pub struct OutputTypes {
    fields: HashMap<String, HashMap<String, Type>>,
}

impl OutputTypes {
    pub fn from_sdl(sdl: &str) -> Self {
        let mut fields = HashMap::new();
        let doc = async_graphql::parser::parse_schema(sdl).unwrap_or_else(|err| {
            unreachable!("the schema's own SDL parses: {err}");
        });
        for definition in doc.definitions {
            let TypeSystemDefinition::Type(ty) = definition else {
                continue;
            };
            let ty = ty.node;
            let own = match ty.kind {
                TypeKind::Object(object) => object.fields,
                TypeKind::Interface(interface) => interface.fields,
                _ => continue,
            };
            let own = own
                .into_iter()
                .map(|field| (field.node.name.node.to_string(), field.node.ty.node))
                .collect();
            fields.insert(ty.name.node.to_string(), own);
        }
        Self { fields }
    }

    fn field(&self, object: &str, field: &str) -> Option<&Type> {
        self.fields.get(object)?.get(field)
    }
}

/// Puts `null` where fields failed, propagated per the spec. `doc` is the document the
/// response answers and `operation_name` the operation it ran.
pub fn complete(
    types: &OutputTypes,
    doc: &ExecutableDocument,
    operation_name: Option<&str>,
    response: &mut Response,
) {
    let Some((_, operation)) = super::shape::operation(doc, operation_name) else {
        return;
    };
    let root = match operation.ty {
        OperationType::Query => "Query",
        OperationType::Mutation => "Mutation",
        OperationType::Subscription => "Subscription",
    };
    let paths: Vec<Vec<PathSegment>> = response
        .errors
        .iter()
        .filter(|err| !err.path.is_empty())
        .map(|err| err.path.clone())
        .collect();
    if paths.is_empty() {
        return;
    }
    // The library answers `null` for an object none of whose fields resolved; at the root
    // that is every root field failing. Start from an empty object and null each below.
    if response.data == Value::Null {
        response.data = Value::Object(Default::default());
    }
    let mut nulled: Vec<Vec<PathSegment>> = Vec::new();
    for path in paths {
        if nulled.iter().any(|done| path.starts_with(done)) {
            continue;
        }
        let Some(positions) = resolve(types, doc, root, &operation.selection_set.node, &path)
        else {
            continue;
        };
        if let Some(at) = null_out(doc, &mut response.data, &path, &positions) {
            nulled.push(at);
        }
    }
}

/// What the response holds at one step of an error's path.
struct Position<'d> {
    /// The value here may be `null`.
    nullable: bool,
    /// For a field step: the selections of the object it sits in, for key order.
    siblings: Vec<&'d SelectionSet>,
}

/// The type at each step of `path`, following the document's selections from the root.
fn resolve<'d>(
    types: &OutputTypes,
    doc: &'d ExecutableDocument,
    root: &str,
    selection_set: &'d SelectionSet,
    path: &[PathSegment],
) -> Option<Vec<Position<'d>>> {
    let mut positions = Vec::with_capacity(path.len());
    let mut object = root.to_owned();
    let mut sets = vec![selection_set];
    // The type of the value being stepped into (a field's type, unwrapped by list indexes).
    let mut current: Option<Type> = None;
    for segment in path {
        match segment {
            PathSegment::Field(key) => {
                if let Some(ty) = &current {
                    object = named(ty)?.to_owned();
                }
                let (field_name, children) = collect(doc, &sets, key);
                let ty = types.field(&object, field_name?)?.clone();
                positions.push(Position {
                    nullable: ty.nullable,
                    siblings: std::mem::replace(&mut sets, children),
                });
                current = Some(ty);
            }
            PathSegment::Index(_) => {
                let BaseType::List(item) = current.take()?.base else {
                    return None;
                };
                positions.push(Position {
                    nullable: item.nullable,
                    siblings: Vec::new(),
                });
                current = Some(*item);
            }
        }
    }
    Some(positions)
}

fn named(ty: &Type) -> Option<&str> {
    match &ty.base {
        BaseType::Named(name) => Some(name.as_str()),
        BaseType::List(_) => None,
    }
}

/// The field answering to `key` in `sets` (through fragments) and the selections below it.
fn collect<'d>(
    doc: &'d ExecutableDocument,
    sets: &[&'d SelectionSet],
    key: &str,
) -> (Option<&'d str>, Vec<&'d SelectionSet>) {
    let answering: Vec<_> = fields_of(doc, sets)
        .into_iter()
        .filter(|field| field.response_key().node.as_str() == key)
        .collect();
    let name = answering.first().map(|field| field.name.node.as_str());
    (
        name,
        answering
            .into_iter()
            .map(|f| &f.selection_set.node)
            .collect(),
    )
}

/// The response keys `sets` select, in document order.
fn keys_in_order(doc: &ExecutableDocument, sets: &[&SelectionSet]) -> Vec<Name> {
    let mut keys: Vec<Name> = Vec::new();
    for field in fields_of(doc, sets) {
        let key = &field.response_key().node;
        if !keys.contains(key) {
            keys.push(key.clone());
        }
    }
    keys
}

/// Nulls the failed field at `path`, or its nearest nullable ancestor; returns the path
/// that became `null` (empty: `data` itself).
fn null_out(
    doc: &ExecutableDocument,
    data: &mut Value,
    path: &[PathSegment],
    positions: &[Position],
) -> Option<Vec<PathSegment>> {
    // Walk down as far as the response goes. An object the library answered `null` for on
    // the way (all its fields failed) is an object whose fields are nulled one by one.
    let mut failed = path.len() - 1;
    {
        let mut node = &mut *data;
        for (i, segment) in path.iter().enumerate() {
            if *node == Value::Null && i > 0 {
                *node = Value::Object(Default::default());
            }
            let next = match (node, segment) {
                (Value::Object(map), PathSegment::Field(key)) => map.get_mut(key.as_str()),
                (Value::List(items), PathSegment::Index(index)) => items.get_mut(*index),
                _ => None,
            };
            match next {
                Some(next) if i + 1 < path.len() => node = next,
                Some(_) => break,
                None => {
                    failed = i;
                    break;
                }
            }
        }
    }
    // From the failed step up: the first nullable one becomes null.
    let at = (0..=failed).rev().find(|&i| positions[i].nullable);
    let Some(at) = at else {
        *data = Value::Null;
        return Some(Vec::new());
    };
    let target = &path[..=at];
    let (parent_path, last) = target.split_at(at);
    let mut parent = &mut *data;
    for segment in parent_path {
        parent = match (parent, segment) {
            (Value::Object(map), PathSegment::Field(key)) => map.get_mut(key.as_str())?,
            (Value::List(items), PathSegment::Index(index)) => items.get_mut(*index)?,
            _ => return None,
        };
    }
    match (parent, &last[0]) {
        (Value::Object(map), PathSegment::Field(key)) => {
            let inserted = map.insert(Name::new(key), Value::Null).is_none();
            if inserted {
                // Keep the document's key order: a client may rely on it.
                let order = keys_in_order(doc, &positions[at].siblings);
                let mut reordered = async_graphql::indexmap::IndexMap::with_capacity(map.len());
                for key in order {
                    if let Some(value) = map.shift_remove(&key) {
                        reordered.insert(key, value);
                    }
                }
                reordered.extend(map.drain(..));
                *map = reordered;
            }
        }
        (Value::List(items), PathSegment::Index(index)) => *items.get_mut(*index)? = Value::Null,
        _ => return None,
    }
    Some(target.to_vec())
}
