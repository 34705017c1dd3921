//! Hostile input through every mutation's arguments: over 10,000 generated and mutated
//! values, built from the published SDL (so a mutation added later is fuzzed too), sent as
//! variables and as literals. Every answer must be a coded GraphQL answer: no INTERNAL, no
//! dropped connection (a panic), and the server still answers afterwards.

use std::collections::HashMap;

use async_graphql::parser::types::{BaseType, Type};
use futures::StreamExt as _;
use serde_json::{json, Map, Value};

use crate::harness::{assert_spec_shape, TestApp};
use crate::sdl::{RootField, Sdl};

/// Cases per mutation; 51 mutations make over 10,000 requests, each carrying a generated
/// value for every argument.
const CASES_PER_MUTATION: usize = 200;

/// A small deterministic generator (xorshift64*): a failure names its seed and case.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// Text a person or an attacker might type.
fn corpus() -> Vec<String> {
    let mut texts: Vec<String> = [
        "",
        " ",
        "a",
        "Ada Lovelace",
        "ada@example.com",
        " ADA@Example.COM ",
        "not-an-email",
        "a@b",
        "correct horse battery",
        "short",
        "with\0nul",
        "\0",
        "tab\there",
        "line\nbreak",
        "bell\u{7}",
        "escape\u{1b}[31m",
        "\u{202e}reversed",
        "\u{feff}bom",
        "zero\u{200b}width",
        "emoji 👩‍💻🏳️‍🌈",
        "'; DROP TABLE users; --",
        "\" OR 1=1 --",
        "../../etc/passwd",
        "pm_../../customers/cus_1",
        "pm_card_visa",
        "%00%0d%0a",
        "{\"$ne\": null}",
        "<script>alert(1)</script>",
        "+15551234567",
        "+1",
        "2026-11-29T12:00:00Z",
        "2026-13-45T99:99:99Z",
        "lks_forged",
        "lki_",
        "00000000-0000-0000-0000-000000000000",
        "ffffffff-ffff-ffff-ffff-ffffffffffff",
        "NaN",
        "-1",
        "1e309",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    texts.push("x".repeat(101));
    texts.push("é".repeat(2_001));
    texts.push("y".repeat(10_001));
    texts.push(format!("{}@example.com", "l".repeat(300)));
    texts
}

fn mutated(rng: &mut Rng, base: &str) -> String {
    let mut chars: Vec<char> = base.chars().collect();
    for _ in 0..=rng.below(4) {
        let odd = [
            '\0',
            '\u{1}',
            '\u{7f}',
            '\u{85}',
            '\u{2028}',
            'ß',
            '"',
            '\\',
            '\u{10ffff}',
        ];
        let c = odd[rng.below(odd.len())];
        match rng.below(3) {
            0 if !chars.is_empty() => {
                let i = rng.below(chars.len());
                chars[i] = c;
            }
            1 => {
                let i = rng.below(chars.len() + 1);
                chars.insert(i, c);
            }
            _ => chars.truncate(rng.below(chars.len() + 1)),
        }
    }
    chars.into_iter().collect()
}

/// Ids the caller may really use, so values also reach the rules behind the parsing.
struct Known {
    ids: Vec<String>,
}

fn value(rng: &mut Rng, sdl: &Sdl, known: &Known, texts: &[String], ty: &Type, depth: u8) -> Value {
    // Sometimes the wrong shape altogether: null for a required value, a list for a scalar.
    match rng.below(40) {
        0 => return Value::Null,
        1 => return json!([]),
        2 => return json!({ "unexpected": true }),
        _ => {}
    }
    match &ty.base {
        BaseType::List(inner) => {
            let n = rng.below(4);
            Value::Array(
                (0..n)
                    .map(|_| value(rng, sdl, known, texts, inner, depth + 1))
                    .collect(),
            )
        }
        BaseType::Named(name) => match name.as_str() {
            "String" => {
                let base = &texts[rng.below(texts.len())];
                Value::String(if rng.chance(40) {
                    mutated(rng, base)
                } else {
                    base.clone()
                })
            }
            "ID" => match rng.below(4) {
                0 | 1 => Value::String(known.ids[rng.below(known.ids.len())].clone()),
                2 => Value::String(uuid::Uuid::new_v4().to_string()),
                _ => {
                    let base = rng.below(texts.len());
                    Value::String(mutated(rng, &texts[base]))
                }
            },
            "Int" => {
                let edges = [
                    0i64,
                    1,
                    -1,
                    5,
                    100,
                    101,
                    i32::MAX as i64,
                    i32::MIN as i64,
                    1 << 31,
                    -(1 << 40),
                ];
                json!(edges[rng.below(edges.len())])
            }
            "Float" => json!([0.5, -1e300, 1e300][rng.below(3)]),
            "Boolean" => json!(rng.chance(50)),
            "DateTime" => {
                let now = chrono::Utc::now();
                let options = [
                    (now + chrono::Duration::days(1)).to_rfc3339(),
                    (now - chrono::Duration::days(1)).to_rfc3339(),
                    "9999-12-31T23:59:59Z".to_owned(),
                    "yesterday".to_owned(),
                ];
                Value::String(options[rng.below(options.len())].clone())
            }
            other => {
                if let Some(values) = sdl.enums.get(other) {
                    if rng.chance(85) {
                        Value::String(values[rng.below(values.len())].clone())
                    } else {
                        Value::String("NOT_A_VALUE".to_owned())
                    }
                } else if let Some(fields) = sdl.inputs.get(other) {
                    let mut object = Map::new();
                    if depth < 4 {
                        for (name, field_ty) in fields {
                            if rng.chance(85) {
                                object.insert(
                                    name.clone(),
                                    value(rng, sdl, known, texts, field_ty, depth + 1),
                                );
                            }
                        }
                    }
                    Value::Object(object)
                } else {
                    Value::String(texts[rng.below(texts.len())].clone())
                }
            }
        },
    }
}

/// The document calling `field` with every argument as a variable, and its variables.
fn operation(
    rng: &mut Rng,
    sdl: &Sdl,
    known: &Known,
    texts: &[String],
    mutation: &RootField,
) -> (String, Value) {
    let RootField {
        name: field, args, ..
    } = mutation;
    let mut declared = Vec::new();
    let mut passed = Vec::new();
    let mut variables = Map::new();
    for (i, (name, ty)) in args.iter().enumerate() {
        declared.push(format!("$v{i}: {ty}"));
        passed.push(format!("{name}: $v{i}"));
        variables.insert(format!("v{i}"), value(rng, sdl, known, texts, ty, 0));
    }
    let selection = sdl.selection(mutation);
    let declared = if declared.is_empty() {
        String::new()
    } else {
        format!("({})", declared.join(", "))
    };
    let passed = if passed.is_empty() {
        String::new()
    } else {
        format!("({})", passed.join(", "))
    };
    (
        format!("mutation{declared} {{ {field}{passed}{selection} }}"),
        Value::Object(variables),
    )
}

/// Mutations that end the fuzzing session's own access or workspace run last.
const LAST: [&str; 7] = [
    "revokeAccessToken",
    "revokeSession",
    "revokeOtherSessions",
    "transferOwnership",
    "leaveWorkspace",
    "deleteWorkspace",
    "signOut",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_hostile_values_through_every_mutation_answer_coded_errors() {
    let app = TestApp::builder().with_stripe().start().await;
    let ada = app.sign_up("Ada").await;
    let agent = app
        .gql(
            ada.token(),
            "mutation($ws: ID!) { createAgent(workspaceId: $ws, input: { name: \"A\" }) { id } }",
            json!({ "ws": ada.own_workspace }),
        )
        .await;
    let mut ids = vec![ada.own_workspace.clone(), ada.id.clone()];
    if let Some(id) = agent.body["data"]["createAgent"]["id"].as_str() {
        ids.push(id.to_owned());
    }
    let known = Known { ids };
    let sdl = Sdl::published();
    let texts = corpus();
    let mut mutations: Vec<RootField> = sdl.mutations().cloned().collect();
    mutations.sort_by_key(|m| LAST.iter().position(|last| *last == m.name));
    assert!(mutations.len() * CASES_PER_MUTATION >= 10_000);

    let seed = 0x5eed_1234_u64;
    let mut rng = Rng(seed);
    let mut sent = 0usize;
    let mut values = 0usize;
    let mut outcomes: HashMap<String, usize> = HashMap::new();
    for mutation in &mutations {
        let cases: Vec<(String, Value)> = (0..CASES_PER_MUTATION)
            .map(|_| operation(&mut rng, &sdl, &known, &texts, mutation))
            .collect();
        values += cases.len() * mutation.args.len().max(1);
        let answers: Vec<_> = futures::stream::iter(cases.iter().enumerate())
            .map(|(case, (query, variables))| {
                let request = app
                    .client()
                    .post(format!("{}/graphql", app.base_url))
                    .header("x-forwarded-for", format!("2001:db8:f:{case:x}::1"))
                    .bearer_auth(ada.token().expect("token"))
                    .json(&json!({ "query": query, "variables": variables }))
                    .send();
                async move { (case, request.await) }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        for (case, answer) in answers {
            let (query, variables) = &cases[case];
            let context = || {
                format!(
                    "seed {seed:#x}, {} case {case}: {query}\n{variables}",
                    mutation.name
                )
            };
            let response = answer.unwrap_or_else(|err| panic!("no answer ({err}): {}", context()));
            let status = response.status().as_u16();
            assert!(
                [200, 400].contains(&status),
                "status {status}: {}",
                context()
            );
            let body: Value = response
                .json()
                .await
                .unwrap_or_else(|_| panic!("not JSON: {}", context()));
            assert_spec_shape(&body);
            let code = body["errors"][0]["extensions"]["code"]
                .as_str()
                .unwrap_or("OK")
                .to_owned();
            *outcomes.entry(code).or_default() += 1;
            for error in body["errors"].as_array().into_iter().flatten() {
                assert_ne!(
                    error["extensions"]["code"],
                    "INTERNAL",
                    "{error}: {}",
                    context()
                );
            }
            sent += 1;
        }
    }
    assert!(sent >= 10_000, "{sent} requests");
    assert!(values >= 10_000, "{values} values");
    // The values reach the rules, not only the parser: some pass, and each kind of refusal
    // shows up.
    for expected in ["OK", "BAD_USER_INPUT", "NOT_FOUND", "CONFLICT"] {
        assert!(
            outcomes.contains_key(expected),
            "no {expected}: {outcomes:?}"
        );
    }
    let alive = app.gql(None, "{ plans { id } }", json!({})).await;
    assert!(alive.data("plans").is_array());
}
