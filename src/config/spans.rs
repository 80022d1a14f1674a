//! From a dotted key path (`streams[1].name`, `api."odd.key"`) to its line in the file.

use toml_edit::Document;

/// 1-based line of byte `offset` in `text`.
pub(crate) fn line_at(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The line of `path` in `doc`: where its key is written, or for an array element its
/// `[[header]]`. When the path only partly exists (a missing key), the line of the deepest
/// part that does. `None` for an empty path or one whose first part is missing.
pub(crate) fn line_of(doc: &Document<&str>, text: &str, path: &str) -> Option<usize> {
    let mut item = doc.as_item();
    let mut span = None;
    for segment in segments(path) {
        let (next, next_span) = match segment {
            Segment::Key(key) => {
                let Some((key, next)) = item.as_table_like().and_then(|t| t.get_key_value(&key))
                else {
                    break;
                };
                (next, key.span().or_else(|| next.span()))
            }
            Segment::Index(index) => {
                let Some(next) = item.get(index) else { break };
                (next, next.span())
            }
        };
        item = next;
        span = next_span.or(span);
    }
    span.map(|span| line_at(text, span.start))
}

enum Segment {
    Key(String),
    Index(usize),
}

/// Splits `a.b[2]."c.d"` into `a`, `b`, `2`, `c.d`.
fn segments(path: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            out.push(Segment::Key(quoted[..end].to_owned()));
            rest = quoted.get(end + 1..).unwrap_or("");
        } else if let Some(indexed) = rest.strip_prefix('[') {
            let end = indexed.find(']').unwrap_or(indexed.len());
            match indexed[..end].parse() {
                Ok(index) => out.push(Segment::Index(index)),
                Err(_) => break,
            }
            rest = indexed.get(end + 1..).unwrap_or("");
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            out.push(Segment::Key(rest[..end].to_owned()));
            rest = &rest[end..];
        }
        rest = rest.strip_prefix('.').unwrap_or(rest);
    }
    out
}
