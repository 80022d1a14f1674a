//! The checks every table of a delivery stream shares: [`Fields`] (a table whose keys are
//! taken out one by one as they are checked, so that what is left is unknown), required and
//! optional keys, `type`, unknown keys in the words of the config toolkit, secrets (file or
//! environment variable, never the secret itself), AWS credentials, regions, endpoints, URLs
//! and prefix templates. Destinations, processors and the delivery stream use them.

use std::collections::BTreeSet;
use std::path::PathBuf;

use toml::Value;

use super::{AwsCredentialsConfig, Secret};
use crate::config::check::{
    parse_access_key_id, parse_env_name, parse_region, plaintext_secret, wrong_type, Check,
};
use crate::config::raw::join;
use crate::config::{Reference, SecretSource};
use crate::delivery::destinations::naming::check_prefix;

/// Where the secret of an AWS access key id is given.
pub(crate) const AWS_SECRET_KEYS: Option<(&str, &str)> = Some(("secret_file", "secret_env"));

/// Keys that would hold a secret in the file itself: refused with a reason, never echoed.
pub(crate) const PLAINTEXT_SECRET_KEYS: &[&str] =
    &["secret", "secret_access_key", "password", "access_key"];

/// The keys of one table, taken out one by one as they are checked.
pub(crate) struct Fields {
    pub(crate) path: String,
    pub(crate) map: toml::Table,
}

impl Fields {
    pub(crate) fn key(&self, name: &str) -> String {
        join(&self.path, name)
    }

    pub(crate) fn take(&mut self, name: &str) -> Option<Value> {
        self.map.remove(name)
    }
}

impl Check {
    /// `region`, required for AWS destinations.
    pub(crate) fn region(&mut self, f: &mut Fields, what: &str) -> Option<String> {
        self.required(
            f,
            "region",
            "a region name",
            &format!(
                "{what} needs the region of the upstream, e.g. \"eu-west-1\" (S3- and \
                 Kinesis-compatible services take any, e.g. \"us-east-1\")"
            ),
            parse_region,
        )
    }

    /// `endpoint`: `Some(None)` when not given, `None` when wrong.
    pub(crate) fn endpoint(&mut self, f: &mut Fields) -> Option<Option<String>> {
        let before = self.problems.len();
        let endpoint = self.optional(f, "endpoint", "a URL", |s| {
            parse_url(s, &["http", "https"], "http://127.0.0.1:9000")
        });
        (self.problems.len() == before).then_some(endpoint)
    }

    /// `prefix` and `error_prefix`: each `Some(None)` when not given, `None` when wrong.
    pub(crate) fn prefixes(
        &mut self,
        f: &mut Fields,
        partition_keys: &BTreeSet<String>,
    ) -> (Option<Option<String>>, Option<Option<String>>) {
        let mut prefix = |check: &mut Self, name: &str, error_prefix: bool| {
            let before = check.problems.len();
            let value = check.optional(f, name, "a prefix template", |s| {
                check_template(s, error_prefix, partition_keys)
            });
            (check.problems.len() == before).then_some(value)
        };
        let normal = prefix(self, "prefix", false);
        let error = prefix(self, "error_prefix", true);
        (normal, error)
    }

    /// `access_key_id` with one of `secret_file` / `secret_env`, or none of them (then the AWS
    /// environment and shared credentials file are used). `None` when wrong.
    pub(crate) fn aws_credentials(
        &mut self,
        f: &mut Fields,
        refused_plaintext: bool,
    ) -> Option<AwsCredentialsConfig> {
        let before = self.problems.len();
        let id_key = f.key("access_key_id");
        let id = f.take("access_key_id");
        let has_id = id.is_some();
        let access_key_id = self.string(&id_key, id, "a string", parse_access_key_id);
        let secret = self.secret(f, "secret_file", "secret_env");
        match &secret {
            Ok(None) if has_id && !refused_plaintext => self.problem(
                &id_key,
                "access_key_id needs its secret: give exactly one of secret_file or secret_env",
            ),
            Ok(Some((_, key))) if !has_id => self.problem(
                key,
                "a secret without an access_key_id: give access_key_id too, or neither (then \
                 the AWS environment variables and shared credentials file are used)",
            ),
            _ => {}
        }
        if self.problems.len() != before {
            return None;
        }
        if !has_id && matches!(secret, Ok(None)) {
            self.reference(&f.path, Reference::AwsEnvironment);
        }
        Some(AwsCredentialsConfig {
            access_key_id,
            secret: secret.ok()?.map(|(secret, _)| secret),
        })
    }

    /// One of `file_key` (a path) or `env_key` (a variable name), or neither; with the key
    /// path of the one given. `Err` when wrong (already reported).
    pub(crate) fn secret(
        &mut self,
        f: &mut Fields,
        file_key: &str,
        env_key: &str,
    ) -> Result<Option<(Secret, String)>, ()> {
        let file_path = f.key(file_key);
        let env_path = f.key(env_key);
        match (f.take(file_key), f.take(env_key)) {
            (Some(_), Some(_)) => {
                self.problem(
                    &env_path,
                    format!("both {file_key} and {env_key} are set: give exactly one"),
                );
                Err(())
            }
            (Some(file), None) => {
                let path = self.string(&file_path, Some(file), "a file path", parse_path);
                let path = path.ok_or(())?;
                self.reference(
                    &file_path,
                    Reference::Secret(SecretSource::File(path.clone())),
                );
                Ok(Some((Secret::File(path), file_path)))
            }
            (None, Some(env)) => {
                let var = self.string(&env_path, Some(env), "a variable name", parse_env_name);
                let var = var.ok_or(())?;
                self.reference(&env_path, Reference::Secret(SecretSource::Env(var.clone())));
                Ok(Some((Secret::Env(var), env_path)))
            }
            (None, None) => Ok(None),
        }
    }

    /// An absolute directory path for `check-config` to look at; relative ones are under the
    /// data directory, which is only known at run time.
    pub(crate) fn absolute_directory(&mut self, key: &str, path: Option<&PathBuf>) {
        if let Some(path) = path.filter(|p| p.is_absolute()) {
            self.reference(
                key,
                Reference::Directory {
                    path: path.clone(),
                    must_exist: false,
                },
            );
        }
    }

    /// A table value; `expected` describes one in the message when `value` is something else.
    pub(crate) fn table(&mut self, key: &str, value: Value, expected: &str) -> Option<Fields> {
        match value {
            Value::Table(map) => Some(Fields {
                path: key.to_owned(),
                map,
            }),
            other => {
                self.problem(key, wrong_type(expected, &other));
                None
            }
        }
    }

    /// The `type` of a processor or destination: one of `types`.
    pub(crate) fn kind(
        &mut self,
        f: &mut Fields,
        what: &str,
        types: &[&'static str],
    ) -> Option<&'static str> {
        let key = f.key("type");
        let Some(value) = f.take("type") else {
            self.problem(
                &key,
                format!("missing: every {what} needs a type: {}", one_of(types)),
            );
            return None;
        };
        self.string(&key, Some(value), "a string", |s| {
            types
                .iter()
                .find(|t| **t == s)
                .copied()
                .ok_or_else(|| format!("`{s}` is not a {what} type: {}", one_of(types)))
        })
    }

    /// Reports and drops the keys of `f` not in `supported`. `what` names the table's type
    /// when its keys depend on it. With `secrets` (the file and environment keys of this
    /// table), plaintext secret keys are refused with where the secret goes instead. Returns
    /// whether a plaintext secret was refused.
    pub(crate) fn unknown_keys(
        &mut self,
        f: &mut Fields,
        what: &str,
        supported: &[&str],
        secrets: Option<(&str, &str)>,
    ) -> bool {
        let unknown: Vec<String> = f
            .map
            .keys()
            .filter(|key| !supported.contains(&key.as_str()))
            .cloned()
            .collect();
        let mut refused = false;
        for name in unknown {
            f.map.remove(&name);
            let message = match secrets {
                Some((file_key, env_key)) if PLAINTEXT_SECRET_KEYS.contains(&name.as_str()) => {
                    refused = true;
                    plaintext_secret(file_key, env_key)
                }
                _ => {
                    let for_what = if what.is_empty() {
                        String::new()
                    } else {
                        format!(" for {what}")
                    };
                    format!(
                        "unknown key `{name}`{for_what} (this version supports {})",
                        supported.join(", ")
                    )
                }
            };
            self.problem(&f.key(&name), message);
        }
        refused
    }

    /// A required string key of `f`; `missing` says what it is for.
    pub(crate) fn required<T>(
        &mut self,
        f: &mut Fields,
        name: &str,
        expected: &str,
        missing: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let key = f.key(name);
        let value = f.take(name);
        if value.is_none() {
            self.problem(&key, format!("missing: {missing}"));
        }
        self.string(&key, value, expected, parse)
    }

    /// An optional string key of `f`.
    pub(crate) fn optional<T>(
        &mut self,
        f: &mut Fields,
        name: &str,
        expected: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let key = f.key(name);
        self.string(&key, f.take(name), expected, parse)
    }
}

/// `"a", "b" or "c"` for messages.
pub(crate) fn one_of(options: &[&str]) -> String {
    let quoted: Vec<String> = options.iter().map(|o| format!("\"{o}\"")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("use {} or {last}", rest.join(", ")),
        Some((last, _)) => format!("use {last}"),
        None => String::new(),
    }
}

pub(crate) fn parse_path(s: &str) -> Result<PathBuf, String> {
    if s.is_empty() {
        Err("must not be empty".to_owned())
    } else {
        Ok(PathBuf::from(s))
    }
}

/// A URL with one of `schemes` and a host. URLs with a password are refused without being
/// repeated (secrets do not belong in the config file).
pub(crate) fn parse_url(s: &str, schemes: &[&str], example: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(s)
        .map_err(|err| format!("`{s}` is not a URL ({err}): write e.g. \"{example}\""))?;
    if url.password().is_some() {
        return Err(
            "a URL with a password is not allowed: plaintext secrets do not belong in config"
                .to_owned(),
        );
    }
    if !schemes.contains(&url.scheme()) {
        let schemes: Vec<String> = schemes.iter().map(|s| format!("{s}://")).collect();
        return Err(format!(
            "`{s}` is not allowed: use a {} URL, e.g. \"{example}\"",
            schemes.join(" or ")
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{s}` has no host: write e.g. \"{example}\""));
    }
    Ok(s.to_owned())
}

/// A prefix template: the delivery part's rules, and every `!{partitionKeyFromQuery:KEY}`
/// must be defined by a `partition_keys` processor of the same delivery stream.
fn check_template(
    s: &str,
    error_prefix: bool,
    partition_keys: &BTreeSet<String>,
) -> Result<String, String> {
    check_prefix(s, error_prefix)?;
    for name in partition_key_references(s) {
        if !partition_keys.contains(name) {
            let defined = if partition_keys.is_empty() {
                "this delivery stream has no partition_keys processor".to_owned()
            } else {
                let names: Vec<&str> = partition_keys.iter().map(String::as_str).collect();
                format!("this delivery stream defines {}", names.join(", "))
            };
            return Err(format!(
                "`!{{partitionKeyFromQuery:{name}}}` needs a partition_keys processor that \
                 defines `{name}` ({defined})"
            ));
        }
    }
    Ok(s.to_owned())
}

/// The KEYs of `!{partitionKeyFromQuery:KEY}` in a template.
fn partition_key_references(template: &str) -> Vec<&str> {
    const OPEN: &str = "!{partitionKeyFromQuery:";
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find(OPEN) {
        let after = &rest[start + OPEN.len()..];
        let Some(end) = after.find('}') else { break };
        names.push(after[..end].trim());
        rest = &after[end + 1..];
    }
    names
}
