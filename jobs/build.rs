//! Types every email from its template: for each folder of `src/email/templates/`, a struct
//! with one `String` field per `{{placeholder}}` its subject, text and HTML use, and its
//! [`Message`] impl embedding the three files. A handler builds the struct, so a value it
//! forgets is a compile error, and a placeholder no handler gives cannot exist.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

const PARTS: [&str; 3] = ["subject.txt", "body.txt", "body.html"];

fn main() {
    // Read when the script runs, not when it was compiled: a build script binary may be
    // reused for another checkout of the same crate.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest).join("src/email/templates");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut names: Vec<String> = std::fs::read_dir(&root)
        .expect("src/email/templates")
        .map(|entry| entry.expect("template folder").path())
        .filter(|path| path.is_dir())
        .map(|path| {
            path.file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    let mut out = String::new();
    let mut samples = Vec::new();
    for name in &names {
        let folder = root.join(name);
        let mut keys = BTreeSet::new();
        for part in PARTS {
            let path = folder.join(part);
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
            placeholders(&text, &path, &mut keys);
        }
        let ty = camel_case(name);
        samples.push(format!(
            "({name:?}, vec!{keys:?}, super::render(\"to@example.com\", &{ty} {{ {} }}))",
            keys.iter()
                .map(|key| format!("{key}: \"<{key}>\".into()"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        let paths = PARTS.map(|part| folder.join(part).display().to_string());
        writeln!(
            out,
            "/// The values of the `{name}` email: one per placeholder of `templates/{name}/`.\n\
             #[derive(Clone, Debug, Default)]\n\
             pub struct {ty} {{"
        )
        .expect("write");
        for key in &keys {
            writeln!(out, "    pub {key}: String,").expect("write");
        }
        writeln!(
            out,
            "}}\n\n\
             impl Message for {ty} {{\n\
             \x20   const TEMPLATE: Template = Template {{\n\
             \x20       name: {name:?},\n\
             \x20       subject: include_str!({:?}),\n\
             \x20       text: include_str!({:?}),\n\
             \x20       html: include_str!({:?}),\n\
             \x20   }};\n\n\
             \x20   fn values(&self) -> Vec<(&'static str, &str)> {{\n\
             \x20       vec![{}]\n\
             \x20   }}\n\
             }}\n",
            paths[0],
            paths[1],
            paths[2],
            keys.iter()
                .map(|key| format!("({key:?}, self.{key}.as_str())"))
                .collect::<Vec<_>>()
                .join(", "),
        )
        .expect("write");
    }
    writeln!(
        out,
        "/// Every template's name, for the tests.\npub const ALL: &[&str] = &{names:?};\n\n\
         /// Every email rendered with each value set to `<key>`, for the tests.\n\
         #[cfg(test)]\n\
         pub fn samples() -> Vec<(&'static str, Vec<&'static str>, super::Email)> {{\n\
         \x20   vec![{}]\n\
         }}",
        samples.join(", ")
    )
    .expect("write");
    let dest = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("messages.rs");
    std::fs::write(dest, out).expect("messages.rs written");
}

/// Collects `{{ key }}`; a key that is not a lowercase identifier fails the build.
fn placeholders(text: &str, path: &Path, keys: &mut BTreeSet<String>) {
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .unwrap_or_else(|| panic!("{}: `{{{{` without `}}}}`", path.display()));
        let key = after[..end].trim();
        let valid = key.starts_with(|c: char| c.is_ascii_lowercase())
            && key.chars().all(|c| c.is_ascii_lowercase() || c == '_');
        assert!(valid, "{}: bad placeholder `{key}`", path.display());
        keys.insert(key.to_owned());
        rest = &after[end + 2..];
    }
}

fn camel_case(name: &str) -> String {
    name.split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}
