//! `[log]`: the log level and format (logging is set up by the command line, which reads
//! them from the document). This module owns their keys, their checks and [`LogConfig`].

use serde::Deserialize;
use toml::Value;

use crate::config::check::Check;

/// `[log]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// A tracing filter, e.g. `"info,kinedge::storage=debug"` (`RUST_LOG` overrides); default
    /// `info`.
    pub level: Option<Value>,
    /// `"auto"` (default), `"text"` or `"json"`.
    pub format: Option<Value>,
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogConfig {
    /// A tracing `EnvFilter` directive string, already validated; `RUST_LOG` overrides it.
    pub level: Option<String>,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable text on a terminal.
    #[default]
    Auto,
    Text,
    Json,
}

pub fn validate(check: &mut Check, raw: RawLog) -> LogConfig {
    let level = check.string("log.level", raw.level, "a string", check_log_level);
    let format = check.string("log.format", raw.format, "a string", |s| match s {
        "auto" => Ok(LogFormat::Auto),
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!(
            "`{s}` is not allowed: use \"auto\", \"text\" or \"json\""
        )),
    });
    LogConfig {
        level,
        format: format.unwrap_or_default(),
    }
}

/// A tracing `EnvFilter` directive string, returned without blanks around commas (which
/// `EnvFilter` refuses). Bare words must be levels: tracing would take `infoo` as "trace
/// everything in target `infoo`", which is almost always a typo.
fn check_log_level(s: &str) -> Result<String, String> {
    use tracing_subscriber::filter::{EnvFilter, LevelFilter};

    const ALLOWED: &str = "use a level (off, error, warn, info, debug, trace), optionally \
                           with per-target levels, e.g. \"info,kinedge::storage=debug\"";
    if s.trim().is_empty() {
        return Err(format!(
            "must not be empty: {ALLOWED}; or leave level out for the default"
        ));
    }
    let directives: Vec<&str> = s
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect();
    for directive in &directives {
        if !directive.contains(['=', '[']) && directive.parse::<LevelFilter>().is_err() {
            return Err(format!(
                "`{directive}` is not a level: {ALLOWED} (for a whole target write `{directive}=trace`)"
            ));
        }
    }
    let filter = directives.join(",");
    EnvFilter::builder()
        .parse(&filter)
        .map(|_| filter)
        .map_err(|err| format!("`{s}` is not a valid filter ({err}): {ALLOWED}"))
}
