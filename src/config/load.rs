//! Reading a configuration document: TOML syntax with lines, every unknown key, table shape,
//! then the caller's checks of every value. Generic over the document's raw serde struct `R`
//! and its checked form `C`, so that this part knows no component's keys.
//!
//! Invariant: every issue carries the dotted key and, when the key is in the file, its line;
//! issues and warnings come out sorted by line.

use serde::de::DeserializeOwned;

use super::check::Check;
use super::{raw, spans, ConfigIssue, ConfigSource, Reference};

/// Everything reading a file found, for `check-config`: the configuration even when some
/// values were wrong (each replaced by its default), and the warnings and references that
/// parsing alone does not report.
pub struct Parsed<C> {
    /// `None` when the file is not TOML or its tables have the wrong shape.
    pub config: Option<C>,
    /// Sorted by line.
    pub issues: Vec<ConfigIssue>,
    pub warnings: Vec<ConfigIssue>,
    pub references: Vec<(ConfigIssue, Reference)>,
}

/// Parses `text` as the document `R` (unknown keys are reported against `R`'s own fields) and
/// checks it with `validate`, which reports every mistake into the `Check`.
pub fn read_file<R: DeserializeOwned, C>(
    text: &str,
    source: &ConfigSource,
    validate: impl FnOnce(R, &mut Check) -> C,
) -> Parsed<C> {
    let file = source.to_string();
    let mut parsed = Parsed {
        config: None,
        issues: Vec::new(),
        warnings: Vec::new(),
        references: Vec::new(),
    };
    let doc = match toml_edit::Document::parse(text) {
        Ok(doc) => doc,
        Err(err) => {
            let line = err.span().map(|span| spans::line_at(text, span.start));
            parsed.issues.push(ConfigIssue {
                file,
                line,
                key: String::new(),
                message: format!("invalid TOML: {}", err.message()),
            });
            return parsed;
        }
    };
    let issue = |(key, message): (String, String)| ConfigIssue {
        line: spans::line_of(&doc, text, &key),
        file: file.clone(),
        key,
        message,
    };

    let (pruned, unknown) = raw::prune_unknown_keys::<R>(&doc);
    parsed.issues.extend(unknown.into_iter().map(issue));
    match raw::deserialize::<R>(&pruned) {
        Ok(raw) => {
            let mut check = Check::default();
            let config = validate(raw, &mut check);
            parsed.issues.extend(check.problems.into_iter().map(issue));
            parsed.warnings = check.warnings.into_iter().map(issue).collect();
            parsed.references = check
                .references
                .into_iter()
                .map(|(key, reference)| (issue((key, String::new())), reference))
                .collect();
            parsed.config = Some(config);
        }
        Err(problem) => parsed.issues.push(issue(problem)),
    }
    parsed.issues.sort_by_key(|i| i.line.unwrap_or(usize::MAX));
    parsed
        .warnings
        .sort_by_key(|i| i.line.unwrap_or(usize::MAX));
    parsed
}
