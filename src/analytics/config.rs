//! `[[analytics]]`: applications defined in the config file. This module owns their keys (the
//! raw serde struct: its fields are the supported keys), their checks and the checked
//! [`ApplicationConfig`]. A `sql_file` is read here, at load, relative to the config file's
//! folder, so that a running gateway never depends on the file again; the SQL is checked with
//! [`AnalyticsService::check_sql`] (parsed and planned, not run).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Value;

use super::{AnalyticsService, ApplicationDef, ApplicationOrigin};
use crate::config::check::Check;
use crate::config::ConfigSource;

/// One `[[analytics]]` entry as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApplication {
    /// Application name, 1-128 of a-z A-Z 0-9 _ . -; required, unique.
    pub name: Option<Value>,
    /// The Flink SQL script (`CREATE TABLE` sources and sinks, then `INSERT INTO ... SELECT`); this or `sql_file`.
    pub sql: Option<Value>,
    /// A file holding the script instead of `sql`, relative to the config file's folder; read when the config is loaded.
    pub sql_file: Option<Value>,
    /// Most group keys (open windows x keys) the application keeps, at least 1; beyond it the oldest windows fire early. Default 100000.
    pub max_state_keys: Option<Value>,
    /// `false` keeps the application defined but stopped (start it with `kinedge analytics start`); default true.
    pub enabled: Option<Value>,
}

/// A checked `[[analytics]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationConfig {
    pub name: String,
    /// The script, read from `sql_file` when that was given.
    pub sql: String,
    pub max_state_keys: usize,
    /// `false`: defined but stopped.
    pub enabled: bool,
}

impl ApplicationConfig {
    pub const DEFAULT_MAX_STATE_KEYS: usize = 100_000;

    /// The application as the analytics service takes it (origin: the config file).
    pub fn def(&self) -> ApplicationDef {
        ApplicationDef {
            name: self.name.clone(),
            sql: self.sql.clone(),
            max_state_keys: self.max_state_keys,
            origin: ApplicationOrigin::Config,
            enabled: self.enabled,
        }
    }
}

/// Whether `name` is a valid application name: 1..=128 of `[a-zA-Z0-9_.-]`.
pub fn is_valid_name(name: &str) -> bool {
    (1..=super::service::MAX_NAME_CHARS).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn parse_name(s: &str) -> Result<String, String> {
    if is_valid_name(s) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "`{s}` is not a valid application name: use 1..=128 characters from a-z, A-Z, \
             0-9, `_`, `.`, `-`"
        ))
    }
}

/// Checks every `[[analytics]]` entry; `source` locates a relative `sql_file`.
pub fn validate(
    check: &mut Check,
    raw: Vec<RawApplication>,
    source: &ConfigSource,
) -> Vec<ApplicationConfig> {
    let mut applications = Vec::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    for (i, raw) in raw.into_iter().enumerate() {
        let key = format!("analytics[{i}]");
        let name_key = format!("{key}.name");
        if raw.name.is_none() {
            check.problem(&name_key, "missing: every application needs a name");
        }
        let name = check.string(&name_key, raw.name, "a string", parse_name);
        let name = name.filter(|name| match seen.get(name) {
            Some(first) => {
                let message = format!("duplicate application name `{name}` (also in {first})");
                check.problem(&name_key, message);
                false
            }
            None => {
                seen.insert(name.clone(), key.clone());
                true
            }
        });
        let sql = script(check, &key, raw.sql, raw.sql_file, source);
        let max_state_keys = check.integer(
            &format!("{key}.max_state_keys"),
            raw.max_state_keys,
            1..=usize::MAX,
            " keys",
        );
        let enabled = check.boolean(&format!("{key}.enabled"), raw.enabled);
        if let (Some(name), Some(sql)) = (name, sql) {
            applications.push(ApplicationConfig {
                name,
                sql,
                max_state_keys: max_state_keys.unwrap_or(ApplicationConfig::DEFAULT_MAX_STATE_KEYS),
                enabled: enabled.unwrap_or(true),
            });
        }
    }
    applications
}

/// The script of one entry: exactly one of `sql` and `sql_file`, read and checked.
fn script(
    check: &mut Check,
    key: &str,
    sql: Option<Value>,
    sql_file: Option<Value>,
    source: &ConfigSource,
) -> Option<String> {
    let sql_key = format!("{key}.sql");
    let file_key = format!("{key}.sql_file");
    let text = match (sql, sql_file) {
        (None, None) => {
            check.problem(
                &sql_key,
                "missing: an application needs its Flink SQL in `sql` or a file in `sql_file`",
            );
            return None;
        }
        (Some(_), Some(_)) => {
            check.problem(
                &file_key,
                "`sql` and `sql_file` are both set: keep one (the script in the file, or \
                 written in `sql`)",
            );
            return None;
        }
        (Some(sql), None) => check.string(&sql_key, Some(sql), "the SQL script", not_empty)?,
        (None, Some(file)) => {
            let path = check.string(&file_key, Some(file), "a file path", |s| {
                not_empty(s).map(PathBuf::from)
            })?;
            let path = relative_to_config(&path, source);
            match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(err) => {
                    check.problem(
                        &file_key,
                        format!(
                            "cannot read `{}`: {err} (a relative path is relative to the \
                             folder of the config file)",
                            path.display()
                        ),
                    );
                    return None;
                }
            }
        }
    };
    if text.trim().is_empty() {
        check.problem(&sql_key, "the SQL script is empty");
        return None;
    }
    match AnalyticsService::check_sql(&text) {
        Ok(()) => Some(text),
        Err(error) => {
            check.problem(&sql_key, error.to_string());
            None
        }
    }
}

fn not_empty(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        Err("must not be empty".to_owned())
    } else {
        Ok(s.to_owned())
    }
}

/// `path` relative to the config file's folder (the working directory for the built-in one).
fn relative_to_config(path: &Path, source: &ConfigSource) -> PathBuf {
    match source {
        ConfigSource::File(file) if path.is_relative() => file
            .parent()
            .map_or(path.to_owned(), |parent| parent.join(path)),
        _ => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Doc {
        analytics: Vec<RawApplication>,
    }

    /// A script the engine accepts; `VALID_SQL` in a test's TOML stands for it.
    const SQL: &str = "CREATE TABLE src (device STRING, temp DOUBLE) WITH ('connector' = 'kinesis', 'stream' = 'in', 'format' = 'json'); CREATE TABLE dst (device STRING, temp DOUBLE) WITH ('connector' = 'kinesis', 'stream' = 'out', 'format' = 'json'); INSERT INTO dst SELECT device, temp FROM src WHERE temp > 80";

    /// The checked entries of `text` and the problems found, as (key, message).
    fn check(text: &str, source: &ConfigSource) -> (Vec<ApplicationConfig>, Vec<(String, String)>) {
        let doc: Doc = toml::from_str(&text.replace("VALID_SQL", SQL)).expect("test TOML");
        let mut check = Check::default();
        let apps = validate(&mut check, doc.analytics, source);
        (apps, check.problems)
    }

    fn file() -> ConfigSource {
        ConfigSource::File(PathBuf::from("/nowhere/kinedge.toml"))
    }

    #[track_caller]
    fn one_problem(text: &str, key: &str, words: &str) {
        let (_, problems) = check(text, &file());
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert_eq!(problems[0].0, key, "{problems:#?}");
        assert!(
            problems[0].1.contains(words),
            "`{}` lacks `{words}`",
            problems[0].1
        );
    }

    #[test]
    fn defaults_and_every_key() {
        let (apps, problems) = check(
            r#"
            [[analytics]]
            name = "a"
            sql = "VALID_SQL"
            [[analytics]]
            name = "B.c_d-9"
            sql = "VALID_SQL"
            max_state_keys = 1
            enabled = false
            "#,
            &file(),
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            apps,
            vec![
                ApplicationConfig {
                    name: "a".into(),
                    sql: SQL.into(),
                    max_state_keys: 100_000,
                    enabled: true,
                },
                ApplicationConfig {
                    name: "B.c_d-9".into(),
                    sql: SQL.into(),
                    max_state_keys: 1,
                    enabled: false,
                },
            ]
        );
        let def = apps[0].def();
        assert_eq!(def.origin, ApplicationOrigin::Config);
        assert_eq!((def.name.as_str(), def.max_state_keys), ("a", 100_000));
    }

    #[test]
    fn sql_file_is_read_relative_to_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("analytics")).unwrap();
        std::fs::write(dir.path().join("analytics/a.sql"), SQL).unwrap();
        let source = ConfigSource::File(dir.path().join("kinedge.toml"));
        let (apps, problems) = check(
            "[[analytics]]\nname = \"a\"\nsql_file = \"analytics/a.sql\"\n",
            &source,
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(apps[0].sql, SQL);
        let (apps, problems) = check(
            "[[analytics]]\nname = \"a\"\nsql_file = \"analytics/missing.sql\"\n",
            &source,
        );
        assert!(apps.is_empty());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, "analytics[0].sql_file");
        assert!(problems[0].1.contains("missing.sql"), "{}", problems[0].1);
    }

    #[test]
    fn mistakes_are_named() {
        one_problem(
            "[[analytics]]\nname = \"a\"\n",
            "analytics[0].sql",
            "missing",
        );
        one_problem(
            "[[analytics]]\nname = \"a\"\nsql = \"VALID_SQL\"\nsql_file = \"a.sql\"\n",
            "analytics[0].sql_file",
            "both",
        );
        one_problem(
            "[[analytics]]\nname = \"a b\"\nsql = \"VALID_SQL\"\n",
            "analytics[0].name",
            "not a valid application name",
        );
        one_problem(
            &format!(
                "[[analytics]]\nname = \"{}\"\nsql = \"VALID_SQL\"\n",
                "x".repeat(129)
            ),
            "analytics[0].name",
            "1..=128",
        );
        one_problem(
            "[[analytics]]\nsql = \"VALID_SQL\"\n",
            "analytics[0].name",
            "missing",
        );
        one_problem(
            "[[analytics]]\nname = \"a\"\nsql = \"VALID_SQL\"\n[[analytics]]\nname = \"a\"\nsql = \"VALID_SQL\"\n",
            "analytics[1].name",
            "duplicate application name `a` (also in analytics[0])",
        );
        one_problem(
            "[[analytics]]\nname = \"a\"\nsql = \"VALID_SQL\"\nmax_state_keys = 0\n",
            "analytics[0].max_state_keys",
            "out of range",
        );
        one_problem(
            "[[analytics]]\nname = \"a\"\nsql = \"VALID_SQL\"\nenabled = \"no\"\n",
            "analytics[0].enabled",
            "true or false",
        );
        one_problem(
            "[[analytics]]\nname = \"a\"\nsql = \"  \"\n",
            "analytics[0].sql",
            "empty",
        );
        one_problem(
            "[[analytics]]\nname = \"a\"\nsql = 3\n",
            "analytics[0].sql",
            "in quotes",
        );
    }
}
