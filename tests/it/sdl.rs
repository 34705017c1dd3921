//! The published SDL as the schema-walking tests read it (`fuzz.rs`, `token_scope.rs`): its
//! enums, input objects, types answered with a selection set, and root fields.

use std::collections::HashMap;

use async_graphql::parser::parse_schema;
use async_graphql::parser::types::{BaseType, Type, TypeKind, TypeSystemDefinition};

pub struct Sdl {
    pub enums: HashMap<String, Vec<String>>,
    /// Each input object's fields, in order, with their types.
    pub inputs: HashMap<String, Vec<(String, Type)>>,
    /// Objects, interfaces and unions: answered with a selection set.
    pub objects: Vec<String>,
    /// Every field of `Query` and `Mutation`.
    pub roots: Vec<RootField>,
}

/// A root field: the operation it belongs to (`query` or `mutation`), its name, its
/// arguments and the name of the type it returns.
#[derive(Clone)]
pub struct RootField {
    pub operation: &'static str,
    pub name: String,
    pub args: Vec<(String, Type)>,
    pub returns: String,
}

impl Sdl {
    pub fn published() -> Self {
        let doc = parse_schema(linkai::graphql::sdl()).expect("SDL parses");
        let mut sdl = Sdl {
            enums: HashMap::new(),
            inputs: HashMap::new(),
            objects: Vec::new(),
            roots: Vec::new(),
        };
        for definition in doc.definitions {
            let TypeSystemDefinition::Type(ty) = definition else {
                continue;
            };
            let ty = ty.node;
            let name = ty.name.node.to_string();
            match ty.kind {
                TypeKind::Enum(e) => {
                    let values = e.values.iter().map(|v| v.node.value.node.to_string());
                    sdl.enums.insert(name, values.collect());
                }
                TypeKind::InputObject(input) => {
                    let fields = input
                        .fields
                        .iter()
                        .map(|f| (f.node.name.node.to_string(), f.node.ty.node.clone()));
                    sdl.inputs.insert(name, fields.collect());
                }
                TypeKind::Object(object) => {
                    let operation = match name.as_str() {
                        "Query" => Some("query"),
                        "Mutation" => Some("mutation"),
                        _ => None,
                    };
                    for field in object.fields.into_iter().filter(|_| operation.is_some()) {
                        let field = field.node;
                        let args = field
                            .arguments
                            .iter()
                            .map(|a| (a.node.name.node.to_string(), a.node.ty.node.clone()));
                        sdl.roots.push(RootField {
                            operation: operation.unwrap_or_default(),
                            name: field.name.node.to_string(),
                            args: args.collect(),
                            returns: base_name(&field.ty.node).to_owned(),
                        });
                    }
                    sdl.objects.push(name);
                }
                TypeKind::Interface(_) | TypeKind::Union(_) => sdl.objects.push(name),
                TypeKind::Scalar => {}
            }
        }
        sdl
    }

    pub fn mutations(&self) -> impl Iterator<Item = &RootField> {
        self.roots.iter().filter(|f| f.operation == "mutation")
    }

    /// What to select on `field`'s answer: `__typename` where it has fields.
    pub fn selection(&self, field: &RootField) -> &'static str {
        if self.objects.contains(&field.returns) {
            " { __typename }"
        } else {
            ""
        }
    }
}

fn base_name(ty: &Type) -> &str {
    match &ty.base {
        BaseType::Named(name) => name.as_str(),
        BaseType::List(inner) => base_name(inner),
    }
}
