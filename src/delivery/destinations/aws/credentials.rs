//! AWS credentials for the upstream destinations: the config's `access_key_id` + secret, else
//! the environment, else the shared credentials file. Secrets never reach a log or an error
//! message: errors name only where credentials were looked for.

use std::path::PathBuf;

use aws_credential_types::Credentials;

use crate::delivery::config::{AwsCredentialsConfig, Secret};

/// Resolves credentials: the config's `access_key_id` + secret, else the environment, else
/// the shared credentials file. `env` looks up an environment variable.
pub(crate) fn resolve_credentials(
    config: &AwsCredentialsConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Credentials, String> {
    if let Some(key_id) = &config.access_key_id {
        let secret = match &config.secret {
            None => return Err("access_key_id is set but no secret_env or secret_file".into()),
            Some(Secret::Env(var)) => env(var)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| format!("the secret's environment variable {var} is not set"))?,
            Some(Secret::File(path)) => std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the secret file {}: {e}", path.display()))?
                .trim_end_matches(['\n', '\r'])
                .to_string(),
        };
        if secret.is_empty() {
            return Err("the configured secret is empty".into());
        }
        return Ok(Credentials::new(key_id, secret, None, None, "config"));
    }
    if config.secret.is_some() {
        return Err("a secret is set but no access_key_id".into());
    }
    let non_empty = |name: &str| env(name).filter(|v| !v.is_empty());
    if let (Some(id), Some(secret)) = (
        non_empty("AWS_ACCESS_KEY_ID"),
        non_empty("AWS_SECRET_ACCESS_KEY"),
    ) {
        return Ok(Credentials::new(
            id,
            secret,
            non_empty("AWS_SESSION_TOKEN"),
            None,
            "environment",
        ));
    }
    let profile = non_empty("AWS_PROFILE").unwrap_or_else(|| "default".into());
    let file = non_empty("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| non_empty("HOME").map(|h| PathBuf::from(h).join(".aws/credentials")));
    let looked = "no access_key_id in the destination config, AWS_ACCESS_KEY_ID and \
                  AWS_SECRET_ACCESS_KEY not set";
    let Some(file) = file else {
        return Err(format!(
            "no AWS credentials: {looked}, and no shared credentials file (neither \
             AWS_SHARED_CREDENTIALS_FILE nor HOME set)"
        ));
    };
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) => {
            return Err(format!(
                "no AWS credentials: {looked}, and the shared credentials file {} cannot be \
                 read: {e}",
                file.display()
            ))
        }
    };
    let values = ini_section(&text, &profile);
    let get = |k: &str| {
        values
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    match (get("aws_access_key_id"), get("aws_secret_access_key")) {
        (Some(id), Some(secret)) => Ok(Credentials::new(
            id,
            secret,
            get("aws_session_token"),
            None,
            "shared credentials file",
        )),
        _ => Err(format!(
            "no AWS credentials: {looked}, and no aws_access_key_id/aws_secret_access_key in \
             profile [{profile}] of {}",
            file.display()
        )),
    }
}

/// The `key = value` lines of one `[section]` of an INI file.
fn ini_section(text: &str, section: &str) -> Vec<(String, String)> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
        } else if inside {
            if let Some((k, v)) = line.split_once('=') {
                out.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
    }
    out
}
