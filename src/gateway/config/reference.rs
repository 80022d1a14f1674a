//! The configuration reference in `docs/configuration.md`, generated: below the marker line,
//! one table per section with every key and its doc comment, read from the raw serde structs
//! the components own (the keys from serde itself, the descriptions from the structs' source),
//! and one table per destination type. Above the marker the file is written by hand.
//!
//! `config_reference` fails when the checked-in file differs; regenerate with
//! `KINEDGE_UPDATE_DOCS=1 cargo test --lib config_reference`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::config::introspect::{shape_of, Shape};
use crate::delivery::config::{RawBuffer, RawStreamSource};
use crate::delivery::destinations::TYPES;
use crate::delivery::processors::config as processors;

/// Everything below this line is generated.
const MARKER: &str = "<!-- Generated from the components' config structs: do not edit below this line; \
                      regenerate with `KINEDGE_UPDATE_DOCS=1 cargo test --lib config_reference`. -->";

/// Doc comments of the fields of every `pub struct` in a file: struct -> field -> doc.
type Docs = HashMap<String, HashMap<String, String>>;

fn struct_docs(text: &str) -> Docs {
    let mut docs = Docs::new();
    let mut current: Option<String> = None;
    let mut pending = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(name) = line
            .strip_prefix("pub struct ")
            .and_then(|rest| rest.strip_suffix(" {"))
        {
            current = Some(name.to_owned());
            pending.clear();
        } else if line == "}" {
            current = None;
        } else if let Some(struct_name) = &current {
            if let Some(doc) = trimmed.strip_prefix("///") {
                pending.push(doc.trim().to_owned());
            } else if let Some(field) = trimmed
                .strip_prefix("pub ")
                .and_then(|rest| rest.split_once(':'))
                .map(|(name, _)| name.trim_start_matches("r#"))
            {
                let doc = pending.join(" ");
                docs.entry(struct_name.clone())
                    .or_default()
                    .insert(field.to_owned(), doc);
                pending.clear();
            } else if !trimmed.starts_with("#[") {
                pending.clear();
            }
        }
    }
    docs
}

/// The docs of every struct under `src/`, by struct name; names defined more than once
/// (each destination's `Raw`) are read per file instead.
fn all_docs(dir: &Path, docs: &mut Docs) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("src/ is readable")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            all_docs(&path, docs);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("a source file is readable");
            for (name, fields) in struct_docs(&text) {
                docs.entry(name).or_default().extend(fields);
            }
        }
    }
}

fn escape(text: &str) -> String {
    text.replace('|', "\\|")
}

/// One table (and the tables nested in it, after it).
fn section(out: &mut String, title: &str, path: &str, shape: &Shape, docs: &Docs) {
    let (Shape::Table(name, fields) | Shape::ArrayOfTables(name, fields)) = shape else {
        return;
    };
    let empty = HashMap::new();
    let field_docs = docs.get(*name).unwrap_or(&empty);
    out.push_str(&format!(
        "\n### {title}\n\n| key | description |\n| --- | --- |\n"
    ));
    let mut nested = Vec::new();
    for (key, field) in fields {
        if matches!(field, Shape::Unlisted) {
            continue;
        }
        let doc = field_docs.get(*key).map(String::as_str).unwrap_or("");
        out.push_str(&format!("| `{key}` | {} |\n", escape(doc)));
        match field {
            Shape::Table(..) => {
                nested.push((format!("`[{path}.{key}]`"), format!("{path}.{key}"), field))
            }
            Shape::ArrayOfTables(..) => nested.push((
                format!("`[[{path}.{key}]]`"),
                format!("{path}.{key}"),
                field,
            )),
            _ => {}
        }
    }
    for (title, path, shape) in nested {
        section(out, &title, &path, shape, docs);
    }
}

/// The generated part of the reference.
fn generate() -> String {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut docs = Docs::new();
    all_docs(&src, &mut docs);
    let mut out = String::from("\n## Reference\n\nEvery key of every section, from the doc comments of the structs that define them.\n");
    let Shape::Table(_, sections) = shape_of::<super::RawConfig>() else {
        panic!("the document is a table");
    };
    for (key, shape) in &sections {
        let title = match shape {
            Shape::ArrayOfTables(..) => format!("`[[{key}]]`"),
            _ => format!("`[{key}]`"),
        };
        section(&mut out, &title, key, shape, &docs);
    }
    let tables = [
        (
            "`delivery_streams[].source` (reading a stream)",
            shape_of::<RawStreamSource>(),
        ),
        ("`delivery_streams[].buffer`", shape_of::<RawBuffer>()),
        (
            "Processor type `\"filter\"`",
            shape_of::<processors::RawFilter>(),
        ),
        (
            "Processor type `\"partition_keys\"`",
            shape_of::<processors::RawPartitionKeys>(),
        ),
        (
            "Processor type `\"append_delimiter\"`",
            shape_of::<processors::RawAppendDelimiter>(),
        ),
        (
            "Processor type `\"metadata\"`",
            shape_of::<processors::RawMetadata>(),
        ),
        (
            "Processor type `\"http_transform\"`",
            shape_of::<processors::RawHttpTransform>(),
        ),
    ];
    for (title, shape) in &tables {
        section(&mut out, title, "", shape, &docs);
    }
    for kind in TYPES {
        let path = src.join(format!("delivery/destinations/{kind}/config.rs"));
        let text = std::fs::read_to_string(&path).expect("each destination has a config.rs");
        let mut own = struct_docs(&text);
        let raw = own.remove("Raw").unwrap_or_default();
        let fields = crate::delivery::destinations::field_names(kind);
        let shape = Shape::Table(
            "Raw",
            fields.into_iter().map(|f| (f, Shape::Value)).collect(),
        );
        let docs = Docs::from([("Raw".to_owned(), raw)]);
        let title = format!("Destination type `\"{kind}\"` (`delivery_streams[].destination`)");
        section(&mut out, &title, "destination", &shape, &docs);
    }
    out
}

#[test]
fn config_reference() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md");
    let current = std::fs::read_to_string(&path).expect("docs/configuration.md is readable");
    let header = current
        .split_once(MARKER)
        .map_or(current.as_str(), |(header, _)| header)
        .trim_end();
    let expected = format!("{header}\n\n{MARKER}\n{}", generate());
    if std::env::var_os("KINEDGE_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &expected).expect("docs/configuration.md is writable");
        return;
    }
    assert!(
        current == expected,
        "docs/configuration.md is not the generated reference: regenerate it with \
         `KINEDGE_UPDATE_DOCS=1 cargo test --lib config_reference` and commit it"
    );
}
