//! Resource policy enforcement: explicit Deny statements of a stream's resource policy refuse
//! requests signed with the configured API keys they name.
//!
//! The model is AWS's evaluation within one account, where every configured API key
//! (`[[api.credentials]]`) is an identity with the gateway's full access (an administrator):
//! a request is refused with AccessDeniedException when a statement of the stream's policy
//! with `"Effect": "Deny"` matches its principal (the signing access key id), its action
//! (`kinesis:<Operation>`) and its resource (the stream's ARN, or the consumer ARN a request
//! names); Allow statements grant nothing a key does not already have. Without credentials
//! there is no principal and nothing is enforced.
//!
//! Matching: `Principal` is `"*"` or `{"AWS": ...}` with `"*"`, the key id, the account id,
//! `arn:aws:iam::ACCOUNT:root` (every key) or `arn:aws:iam::ACCOUNT:user/KEY_ID`; `Action`
//! and `Resource` are strings or lists with `*` and `?` wildcards (actions case-insensitive);
//! no `Resource` matches every resource. Elements kinedge cannot evaluate (`Condition`,
//! `NotAction`, `NotPrincipal`, `NotResource`) are refused when the policy is stored, so that
//! no statement is silently ignored; so is a policy that would deny the key storing it
//! PutResourcePolicy or DeleteResourcePolicy (it could not be undone).
//!
//! Cost: nothing unless some stream has a policy; then a request that names a stream has its
//! stream read from the body a second time (names only) and the policy parsed.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

use super::tagging::resource_of;
use crate::api::error::{ApiError, ErrorKind};
use crate::api::protocol::Wire;
use crate::api::KinesisState;
use crate::storage::now_ms;
use crate::streams::ShardIterator;

/// Policy elements kinedge does not evaluate: a policy with them is refused.
const UNSUPPORTED_ELEMENTS: [&str; 4] = ["Condition", "NotAction", "NotPrincipal", "NotResource"];

/// One Deny statement, as far as kinedge evaluates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deny {
    /// `None`: any principal.
    principals: Option<Vec<String>>,
    actions: Vec<String>,
    /// `None`: any resource.
    resources: Option<Vec<String>>,
}

fn strings(value: &Value, what: &str, i: usize) -> Result<Vec<String>, String> {
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(list) => list
            .iter()
            .map(|v| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    format!("Statement {i}: {what} must be a string or a list of strings.")
                })
            })
            .collect(),
        _ => Err(format!(
            "Statement {i}: {what} must be a string or a list of strings."
        )),
    }
}

/// The Deny statements of a policy that `check_policy` accepted; refuses what kinedge
/// cannot evaluate.
pub fn deny_statements(policy: &str) -> Result<Vec<Deny>, String> {
    let value: Value =
        serde_json::from_str(policy).map_err(|e| format!("The policy is not valid JSON: {e}."))?;
    let statements = match value.get("Statement") {
        Some(Value::Array(list)) => list.clone(),
        Some(one @ Value::Object(_)) => vec![one.clone()],
        _ => return Err("The policy must have a Statement.".into()),
    };
    let mut denies = Vec::new();
    for (n, statement) in statements.iter().enumerate() {
        let i = n + 1;
        if let Some(element) = UNSUPPORTED_ELEMENTS
            .iter()
            .find(|e| statement.get(**e).is_some())
        {
            return Err(format!(
                "Statement {i} uses {element}, which kinedge does not evaluate (it enforces Effect, Principal, Action and Resource; see docs/kinesis-api.md)."
            ));
        }
        let principals = match statement.get("Principal") {
            None => return Err(format!("Statement {i} must have a Principal.")),
            Some(Value::String(s)) if s == "*" => None,
            Some(Value::Object(map)) => {
                let mut keys = Vec::new();
                for (kind, value) in map {
                    let listed = strings(value, "Principal", i)?;
                    if kind == "AWS" && listed.iter().any(|p| p == "*") {
                        keys.clear();
                        keys.push("*".to_string());
                        break;
                    }
                    if kind == "AWS" {
                        keys.extend(listed);
                    }
                }
                if keys.first().is_some_and(|k| k == "*") {
                    None
                } else {
                    Some(keys)
                }
            }
            Some(_) => {
                return Err(format!(
                    "Statement {i}: Principal must be \"*\" or an object such as {{\"AWS\": ...}}."
                ))
            }
        };
        let actions = strings(statement.get("Action").unwrap_or(&Value::Null), "Action", i)?;
        let resources = match statement.get("Resource") {
            None => None,
            Some(value) => Some(strings(value, "Resource", i)?),
        };
        if statement.get("Effect").and_then(Value::as_str) == Some("Deny") {
            denies.push(Deny {
                principals,
                actions,
                resources,
            });
        }
    }
    Ok(denies)
}

/// `*` (any run) and `?` (any one character) wildcards.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn principal_matches(pattern: &str, account: &str, key: &str) -> bool {
    pattern == "*"
        || pattern == key
        || pattern == account
        || pattern == format!("arn:aws:iam::{account}:root")
        || pattern == format!("arn:aws:iam::{account}:user/{key}")
}

/// Whether a Deny statement refuses `key` doing `action` on `resource`.
pub fn denied(denies: &[Deny], account: &str, key: &str, action: &str, resource: &str) -> bool {
    let action = action.to_ascii_lowercase();
    denies.iter().any(|d| {
        d.principals
            .as_ref()
            .is_none_or(|ps| ps.iter().any(|p| principal_matches(p, account, key)))
            && d.actions
                .iter()
                .any(|a| glob(&a.to_ascii_lowercase(), &action))
            && d.resources
                .as_ref()
                .is_none_or(|rs| rs.iter().any(|r| glob(r, resource)))
    })
}

/// The AWS message of a refusal by a resource policy.
fn access_denied(state: &KinesisState, key: &str, action: &str, resource: &str) -> ApiError {
    ApiError::new(
        ErrorKind::Auth("AccessDeniedException"),
        format!(
            "User: arn:aws:iam::{}:user/{key} is not authorized to perform: {action} on resource: {resource} with an explicit deny in a resource-based policy",
            state.account_id
        ),
    )
}

/// Checks a policy about to be stored: kinedge can evaluate it, and it does not deny `key`
/// (the key storing it) changing or deleting it.
pub fn check_storable(
    state: &KinesisState,
    policy: &str,
    key: Option<&str>,
    resource: &str,
) -> Result<(), ApiError> {
    let denies = deny_statements(policy).map_err(ApiError::invalid)?;
    if let Some(key) = key {
        for action in ["kinesis:PutResourcePolicy", "kinesis:DeleteResourcePolicy"] {
            if denied(&denies, &state.account_id, key, action, resource) {
                return Err(ApiError::invalid(format!(
                    "The policy would deny {key} (the key storing it) {action} on {resource}: it could not be changed or deleted any more."
                )));
            }
        }
    }
    Ok(())
}

/// Refuses a PutResourcePolicy whose policy would deny its own key changing it.
async fn lockout_check(
    state: &KinesisState,
    key: &str,
    wire: Wire,
    body: &Bytes,
) -> Result<(), ApiError> {
    #[derive(Debug, Default, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    struct Put {
        #[serde(rename = "ResourceARN")]
        resource_arn: Option<String>,
        policy: Option<String>,
    }
    let Ok(Put {
        resource_arn: Some(arn),
        policy: Some(policy),
    }) = wire.decode::<Put>(body)
    else {
        return Ok(());
    };
    if crate::streams::settings::check_policy(&policy).is_err() {
        return Ok(()); // the operation says what is wrong with it
    }
    check_storable(state, &policy, Some(key), &arn)
}

/// The members that name what a request is about.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Names {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    #[serde(rename = "ResourceARN")]
    resource_arn: Option<String>,
    #[serde(rename = "ConsumerARN")]
    consumer_arn: Option<String>,
    shard_iterator: Option<String>,
}

/// The stream a request is about and the resource ARN it acts on; `None` when it names none
/// (or names it wrongly: the operation answers that itself).
fn target(state: &KinesisState, names: Names) -> Option<(String, String)> {
    if let Some(arn) = names.resource_arn.or(names.consumer_arn) {
        let resource = resource_of(&arn).ok()?;
        return Some((resource.stream().to_string(), arn));
    }
    let name = match (names.stream_name, names.stream_arn, names.shard_iterator) {
        (Some(name), _, _) => name,
        (None, Some(arn), _) => super::parse_stream_arn(&arn).ok()?,
        (None, None, Some(iterator)) => {
            let it =
                ShardIterator::decode(&iterator, state.store.iterator_key(), now_ms(), u64::MAX)
                    .ok()?;
            state
                .store
                .catalog()
                .stream_by_uid(it.stream_uid)?
                .name
                .clone()
        }
        (None, None, None) => return None,
    };
    let arn = state.stream_arn(&name);
    Some((name, arn))
}

/// Refuses a request that a Deny of its stream's resource policy names (see the module).
pub async fn enforce(
    state: &KinesisState,
    principal: Option<&str>,
    wire: Wire,
    operation: &str,
    body: &Bytes,
) -> Result<(), ApiError> {
    let Some(key) = principal else {
        return Ok(());
    };
    if operation == "PutResourcePolicy" {
        lockout_check(state, key, wire, body).await?;
    }
    let any_policy = state
        .store
        .catalog()
        .streams
        .values()
        .any(|s| s.settings.resource_policy.is_some());
    if !any_policy {
        return Ok(());
    }
    let Ok(names) = wire.decode_owned::<Names>(body.clone()).await else {
        return Ok(());
    };
    let Some((stream, resource)) = target(state, names) else {
        return Ok(());
    };
    let catalog = state.store.catalog();
    let Some(policy) = catalog
        .stream(&stream)
        .and_then(|m| m.settings.resource_policy.as_deref())
    else {
        return Ok(());
    };
    let denies = match deny_statements(policy) {
        Ok(denies) => denies,
        Err(e) => {
            tracing::error!(%stream, error = %e, "a stored resource policy cannot be evaluated; refusing the request");
            return Err(access_denied(
                state,
                key,
                &format!("kinesis:{operation}"),
                &resource,
            ));
        }
    };
    let action = format!("kinesis:{operation}");
    if denied(&denies, &state.account_id, key, &action, &resource) {
        tracing::info!(%stream, key, action, "request refused by the stream's resource policy");
        return Err(access_denied(state, key, &action, &resource));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = "000000000000";
    const STREAM: &str = "arn:aws:kinesis:us-east-1:000000000000:stream/s";

    #[test]
    fn wildcards() {
        assert!(glob("kinesis:*", "kinesis:putrecord"));
        assert!(glob("kinesis:put*", "kinesis:putrecords"));
        assert!(glob("kinesis:get?ecords", "kinesis:getrecords"));
        assert!(!glob("kinesis:put*", "kinesis:getrecords"));
        assert!(glob("*", ""));
        assert!(glob("arn:aws:kinesis:*:*:stream/s*", STREAM));
        assert!(!glob("arn:aws:kinesis:*:*:stream/t", STREAM));
    }

    #[test]
    fn deny_matches_principal_action_and_resource() {
        let policy = r#"{"Statement":[
            {"Effect":"Allow","Principal":"*","Action":"kinesis:*","Resource":"*"},
            {"Effect":"Deny","Principal":{"AWS":["WRITER","arn:aws:iam::000000000000:user/OTHER"]},
             "Action":["kinesis:PutRecord","kinesis:PutRecords"],"Resource":"arn:aws:kinesis:*:*:stream/s"}]}"#;
        let denies = deny_statements(policy).unwrap();
        assert_eq!(denies.len(), 1);
        assert!(denied(
            &denies,
            ACCOUNT,
            "WRITER",
            "kinesis:PutRecords",
            STREAM
        ));
        assert!(denied(
            &denies,
            ACCOUNT,
            "OTHER",
            "kinesis:PutRecord",
            STREAM
        ));
        assert!(!denied(
            &denies,
            ACCOUNT,
            "READER",
            "kinesis:PutRecord",
            STREAM
        ));
        assert!(!denied(
            &denies,
            ACCOUNT,
            "WRITER",
            "kinesis:GetRecords",
            STREAM
        ));
        assert!(!denied(
            &denies,
            ACCOUNT,
            "WRITER",
            "kinesis:PutRecord",
            "arn:aws:kinesis:us-east-1:000000000000:stream/t"
        ));
        let all = deny_statements(r#"{"Statement":{"Effect":"Deny","Principal":{"AWS":"arn:aws:iam::000000000000:root"},"Action":"kinesis:Get*"}}"#).unwrap();
        assert!(denied(&all, ACCOUNT, "ANY", "kinesis:GetRecords", STREAM));
        assert!(!denied(&all, ACCOUNT, "ANY", "kinesis:PutRecord", STREAM));
    }

    #[test]
    fn what_cannot_be_evaluated_is_refused() {
        for element in UNSUPPORTED_ELEMENTS {
            let policy = format!(
                r#"{{"Statement":[{{"Effect":"Deny","Principal":"*","Action":"kinesis:*","{element}":{{}}}}]}}"#
            );
            assert!(deny_statements(&policy).unwrap_err().contains(element));
        }
        assert!(
            deny_statements(r#"{"Statement":[{"Effect":"Deny","Action":"kinesis:*"}]}"#).is_err()
        );
        assert!(
            deny_statements(r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":7}]}"#)
                .is_err()
        );
    }
}
