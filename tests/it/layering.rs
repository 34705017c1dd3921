//! The layering rule of docs/architecture.md (issue 17, item 2), checked on the
//! source: GraphQL is the edge. Only the edge (`graphql.rs` files, `src/graphql/`, the
//! resource kinds' declarations in `src/resources/kinds/`, the HTTP transport in
//! `src/http.rs` and `src/http/`, and the wiring in `src/lib.rs` and `src/main.rs`) names
//! async-graphql or `crate::graphql`; below the edge no file imports another that imports
//! it back, directly or around a longer loop; and the features' job handlers (`jobs.rs`),
//! the background edge, are imported by the worker's wiring alone.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                out.push(path);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = Vec::new();
    walk(&root.join("src"), &mut paths);
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("source");
            let name = path
                .strip_prefix(root)
                .expect("inside the crate")
                .to_string_lossy()
                .replace('\\', "/");
            (name, text)
        })
        .collect()
}

fn is_edge(file: &str) -> bool {
    file.ends_with("/graphql.rs")
        || file.starts_with("src/graphql/")
        // A kind's file is its whole declaration, API shape included (`kinds/mod.rs`).
        || file.starts_with("src/resources/kinds/")
        || file == "src/http.rs"
        || file.starts_with("src/http/")
        || file == "src/lib.rs"
        || file == "src/main.rs"
}

/// The code of a file without its comments and its unit tests (which may use anything).
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Lines of `text` that name GraphQL types: async-graphql, or the `graphql` modules of
/// this crate (declaring a feature's `pub mod graphql;` is not using it).
fn graphql_uses(text: &str) -> Vec<String> {
    code(text)
        .lines()
        .filter(|line| {
            let line = line.trim();
            !line.starts_with("pub mod graphql;")
                && !line.starts_with("mod graphql;")
                && (line.contains("async_graphql") || line.contains("graphql::"))
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn only_the_edge_names_graphql_types() {
    let mut wrong = Vec::new();
    let mut below = 0;
    for (file, text) in sources() {
        if is_edge(&file) {
            continue;
        }
        below += 1;
        let uses = graphql_uses(&text);
        if !uses.is_empty() {
            wrong.push(format!("{file} names GraphQL types: {uses:?}"));
        }
    }
    // The resources' rules are below the edge now, with every other feature's.
    assert!(
        sources()
            .iter()
            .any(|(file, _)| file == "src/resources/mod.rs" && !is_edge(file)),
        "resources/mod.rs is checked"
    );
    assert!(below > 40, "only {below} files below the edge");
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// The module path of a source file: `src/billing/plans.rs` → `billing::plans`.
fn module_of(file: &str) -> Vec<String> {
    let path = file
        .trim_start_matches("src/")
        .trim_end_matches(".rs")
        .trim_end_matches("/mod");
    match path {
        "lib" | "main" => Vec::new(),
        _ => path.split('/').map(str::to_owned).collect(),
    }
}

/// The files each file imports, from its `crate::` and `super::` paths (and the items of
/// their `{...}` lists): a path names the longest module prefix that is a file.
fn imports(files: &[(String, String)]) -> BTreeMap<String, BTreeSet<String>> {
    let by_module: BTreeMap<Vec<String>, String> = files
        .iter()
        .map(|(file, _)| (module_of(file), file.clone()))
        .collect();
    let resolve = |parts: &[String]| -> Option<String> {
        (1..=parts.len())
            .rev()
            .find_map(|n| by_module.get(&parts[..n]).cloned())
    };
    let mut graph = BTreeMap::new();
    for (file, text) in files {
        let me = module_of(file);
        // `super` is the parent module, whether the file is `a/b.rs` or `a/b/mod.rs`.
        let parent: Vec<String> = me[..me.len().saturating_sub(1)].to_vec();
        let code = code(text);
        let mut deps = BTreeSet::new();
        for (root, base) in [("crate::", Vec::new()), ("super::", parent)] {
            for (at, _) in code.match_indices(root) {
                // Skip `self::super::`-like tails of longer words (`xcrate::`).
                if code[..at]
                    .chars()
                    .last()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_')
                {
                    continue;
                }
                let rest = &code[at + root.len()..];
                let path: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                let mut parts: Vec<String> = base.clone();
                parts.extend(
                    path.split("::")
                        .filter(|p| !p.is_empty())
                        .take_while(|p| p.chars().next().is_some_and(char::is_lowercase))
                        .map(str::to_owned),
                );
                if let Some(target) = resolve(&parts) {
                    deps.insert(target);
                }
                // `use crate::a::{b, c::D}`: each item may be a module.
                if let Some(list) = rest[path.len()..].strip_prefix('{') {
                    let list = list.split('}').next().unwrap_or_default();
                    for item in list.split(',') {
                        let head = item.trim().split("::").next().unwrap_or_default();
                        if head.chars().next().is_some_and(char::is_lowercase) && head != "self" {
                            let mut item_parts = parts.clone();
                            item_parts.push(head.to_owned());
                            if let Some(target) = resolve(&item_parts) {
                                deps.insert(target);
                            }
                        }
                    }
                }
            }
        }
        deps.remove(file);
        graph.insert(file.clone(), deps);
    }
    graph
}

/// The loops of `graph` (strongly connected groups of two or more files), by Tarjan.
fn loops(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<Vec<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            for w in &self.graph[v] {
                if !self.index.contains_key(w.as_str()) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w.as_str()]);
                    self.low.insert(v, low);
                } else if self.stack.contains(&w.as_str()) {
                    let low = self.low[v].min(self.index[w.as_str()]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut group = Vec::new();
                while let Some(w) = self.stack.pop() {
                    group.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if group.len() > 1 {
                    group.sort();
                    self.found.push(group);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.found
}

#[test]
fn below_the_edge_no_imports_go_round_in_a_loop() {
    let files = sources();
    let graph: BTreeMap<String, BTreeSet<String>> = imports(&files)
        .into_iter()
        .filter(|(file, _)| !is_edge(file))
        .map(|(file, deps)| {
            let deps = deps.into_iter().filter(|d| !is_edge(d)).collect();
            (file, deps)
        })
        .collect();
    // The reader finds what it should: a known import is seen.
    assert!(
        graph["src/billing/sync.rs"].contains("src/billing/plans.rs"),
        "{:?}",
        graph["src/billing/sync.rs"]
    );
    assert!(graph["src/members/mod.rs"].contains("src/workspaces/mod.rs"));
    assert_eq!(loops(&graph), Vec::<Vec<String>>::new());
}

/// A feature's `jobs.rs` runs its jobs as a resolver runs its fields: it calls the feature,
/// and nothing but the worker's wiring calls it (a payload lives with the code that queues
/// it, so queueing a job never imports the handler).
#[test]
fn only_the_worker_imports_job_handlers() {
    let files = sources();
    let graph = imports(&files);
    let handlers: Vec<&String> = graph
        .keys()
        .filter(|file| file.ends_with("/jobs.rs") && file.matches('/').count() == 2)
        .collect();
    assert!(handlers.len() >= 3, "{handlers:?}");
    let mut wrong = Vec::new();
    for (file, deps) in &graph {
        if file == "src/worker.rs" {
            continue;
        }
        for dep in deps {
            if handlers.contains(&dep) && dep != file {
                wrong.push(format!("{file} imports {dep}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert!(graph["src/worker.rs"].contains("src/auth/jobs.rs"));
}

#[test]
fn the_loop_finder_finds_a_loop() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(f, deps)| (f.to_owned(), deps.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(loops(&graph), [vec!["a", "b", "c"]]);
}

/// Issue 17, item 1: no external HTTP call inside a database transaction (a row lock held
/// across Stripe's latency stalls every request that needs the row). Checked on the
/// source: the body of every `transaction(...)` closure calls neither the Stripe client
/// nor an HTTP client.
#[test]
fn no_transaction_waits_on_an_http_call() {
    let mut wrong = Vec::new();
    let mut scanned = 0;
    for (file, text) in sources() {
        let code = code(&text);
        for (at, _) in code.match_indices("transaction(") {
            scanned += 1;
            let Some(open) = code[at..].find('{').map(|i| at + i) else {
                continue;
            };
            let mut depth = 0usize;
            let mut end = open;
            for (i, c) in code[open..].char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = open + i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let body = &code[open..end];
            for call in ["stripe.", "reqwest::", ".send().await"] {
                if body.contains(call) {
                    let line = code[..at].lines().count() + 1;
                    wrong.push(format!("{file}:{line}: `{call}` inside a transaction"));
                }
            }
        }
    }
    // The scan sees the transactions there are (members, invitations, billing, ...).
    assert!(scanned > 20, "only {scanned} transactions found");
    assert!(wrong.is_empty(), "{wrong:#?}");
}
