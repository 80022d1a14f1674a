//! The gateway's recent warnings for the console's overview: a `tracing` layer (installed
//! with the log output by `cli::init_logging`) keeps the last [`KEPT`] WARN and ERROR events
//! that pass the log filter, with their time, level, target, message and fields.
//!
//! Invariants: at most [`KEPT`] entries, oldest dropped first; a message or field longer than
//! [`MAX_TEXT`] bytes is cut (at a character boundary), so the ring's size is bounded; the
//! lock is held only to push or copy.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;

/// Warnings kept.
pub const KEPT: usize = 50;
/// Longest text kept of one warning.
pub const MAX_TEXT: usize = 1024;

/// One kept warning.
#[derive(Clone, serde::Serialize)]
pub struct Warning {
    pub time_ms: i64,
    pub level: &'static str,
    pub target: String,
    /// The message, then its fields as `name=value`.
    pub text: String,
}

fn ring() -> &'static Mutex<VecDeque<Warning>> {
    static RING: OnceLock<Mutex<VecDeque<Warning>>> = OnceLock::new();
    RING.get_or_init(|| Mutex::new(VecDeque::with_capacity(KEPT)))
}

/// The kept warnings, newest last.
pub fn recent() -> Vec<Warning> {
    ring()
        .lock()
        .map(|r| r.iter().cloned().collect())
        .unwrap_or_default()
}

/// The layer that keeps warnings.
pub struct WarningsLayer;

impl<S: Subscriber> tracing_subscriber::Layer<S> for WarningsLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        if level > Level::WARN {
            return;
        }
        let mut text = Text::default();
        event.record(&mut text);
        let warning = Warning {
            time_ms: chrono::Utc::now().timestamp_millis(),
            level: if level == Level::ERROR {
                "error"
            } else {
                "warn"
            },
            target: event.metadata().target().to_string(),
            text: text.finish(),
        };
        if let Ok(mut ring) = ring().lock() {
            if ring.len() == KEPT {
                ring.pop_front();
            }
            ring.push_back(warning);
        }
    }
}

/// An event's message and fields, as text.
#[derive(Default)]
struct Text {
    message: String,
    fields: String,
}

impl Text {
    fn finish(self) -> String {
        let mut text = self.message;
        if !self.fields.is_empty() {
            text.push_str(&self.fields);
        }
        cut(text)
    }
}

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }
}

fn cut(mut text: String) -> String {
    if text.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn warnings_and_errors_are_kept_bounded_and_cut() {
        let subscriber = tracing_subscriber::registry().with(WarningsLayer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("not kept");
            for i in 0..KEPT + 5 {
                tracing::warn!(camera = "cam1", n = i, "camera lost");
            }
            tracing::error!("{}", "é".repeat(MAX_TEXT));
        });
        let kept = recent();
        assert_eq!(kept.len(), KEPT);
        assert!(kept.iter().all(|w| !w.text.contains("not kept")));
        let last = kept.last().unwrap();
        assert_eq!(last.level, "error");
        assert!(last.text.len() <= MAX_TEXT + '…'.len_utf8());
        let warn = &kept[kept.len() - 2];
        assert_eq!(warn.level, "warn");
        assert_eq!(warn.text, format!("camera lost camera=cam1 n={}", KEPT + 4));
        assert!(warn.target.ends_with("warnings::tests"));
    }
}
