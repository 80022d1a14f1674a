//! The engine's retry policy, one for every source (shard records, direct puts, camera
//! video): after a failed attempt, wait and try again (an outage for as long as it lasts; an
//! error with backoff within the destination's retry duration) or give up (a permanent error,
//! or the retry duration spent: the caller then routes what it held to the error output).
//! Logs one warning per change of state and a summary while a problem lasts.
//!
//! Invariant: nothing is retried forever unless the destination is unreachable or has no
//! retry duration; a permanent error is never retried.

use std::time::{Duration, Instant};

use super::backoff;
use super::destinations::DeliveryError;
use super::status::DeliveryState;

/// While a problem lasts, a summary line this often (one warning per state change).
const SUMMARY_EVERY: Duration = Duration::from_secs(300);

/// What comes after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Wait, then try again; the state shows meanwhile.
    Retry {
        state: DeliveryState,
        wait: Duration,
    },
    /// Stop trying: the error output takes what was not confirmed.
    GiveUp,
}

/// The attempts at sending one unit (a batch, a video object) until it is confirmed.
#[derive(Debug)]
pub struct Attempts {
    started: Instant,
    errors_since: Option<Instant>,
    error_attempts: u32,
    attempts: u32,
    last_summary: Instant,
    problem: Option<DeliveryState>,
}

impl Default for Attempts {
    fn default() -> Self {
        Attempts::new()
    }
}

impl Attempts {
    pub fn new() -> Attempts {
        Attempts {
            started: Instant::now(),
            errors_since: None,
            error_attempts: 0,
            attempts: 0,
            last_summary: Instant::now(),
            problem: None,
        }
    }

    /// Counts an attempt about to be made.
    pub fn begin(&mut self) {
        self.attempts += 1;
    }

    /// Attempts made so far.
    pub fn count(&self) -> u32 {
        self.attempts
    }

    /// What to do after `error`, given the destination's retry duration.
    pub fn after(&mut self, error: &DeliveryError, retry_duration: Option<Duration>) -> Next {
        match error {
            DeliveryError::Unreachable(_) => Next::Retry {
                state: DeliveryState::BackingOff,
                wait: backoff::while_unreachable(),
            },
            DeliveryError::Retryable(_) | DeliveryError::Partial { .. } => {
                self.error_attempts += 1;
                let since = *self.errors_since.get_or_insert_with(Instant::now);
                if retry_duration.is_some_and(|limit| since.elapsed() >= limit) {
                    Next::GiveUp
                } else {
                    Next::Retry {
                        state: DeliveryState::Failing,
                        wait: backoff::after_error(self.error_attempts),
                    }
                }
            }
            DeliveryError::Permanent(_) => Next::GiveUp,
        }
    }

    /// Logs a failure that will be retried: a warning when the state changed, else a summary
    /// every few minutes. `kept` says where the data waits ("records stay in the shard log").
    pub fn log_retry(
        &mut self,
        name: &str,
        target: &str,
        error: &DeliveryError,
        state: DeliveryState,
        kept: &str,
    ) {
        if self.problem != Some(state) {
            tracing::warn!(
                delivery_stream = %name,
                destination = %target,
                %error,
                "delivery failed ({}); retrying, {kept}",
                state.as_str()
            );
            self.problem = Some(state);
            self.last_summary = Instant::now();
        } else if self.last_summary.elapsed() >= SUMMARY_EVERY {
            tracing::warn!(
                delivery_stream = %name,
                attempts = self.attempts,
                since = ?self.started.elapsed(),
                %error,
                "still {}",
                state.as_str()
            );
            self.last_summary = Instant::now();
        }
    }

    /// Logs that the destination confirmed again after failures.
    pub fn log_recovered(&self, name: &str) {
        if let Some(state) = self.problem {
            tracing::info!(
                delivery_stream = %name,
                after = ?self.started.elapsed(),
                attempts = self.attempts,
                "the destination confirmed again (was {}); delivering",
                state.as_str()
            );
        }
    }
}

/// The error code of records given up on after `error`.
pub fn give_up_code(error: &DeliveryError) -> &'static str {
    match error {
        DeliveryError::Permanent(_) => "Delivery.PermanentFailure",
        _ => "Delivery.RetriesExhausted",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permanent_gives_up_at_once_and_outages_never_do() {
        let mut attempts = Attempts::new();
        let permanent = DeliveryError::Permanent("403 AccessDenied".into());
        assert_eq!(attempts.after(&permanent, None), Next::GiveUp);
        let down = DeliveryError::Unreachable("refused".into());
        let limit = Some(Duration::ZERO);
        assert!(matches!(
            attempts.after(&down, limit),
            Next::Retry {
                state: DeliveryState::BackingOff,
                ..
            }
        ));
        let busy = DeliveryError::Retryable("503".into());
        assert!(matches!(attempts.after(&busy, None), Next::Retry { .. }));
        assert_eq!(attempts.after(&busy, limit), Next::GiveUp);
        assert_eq!(give_up_code(&permanent), "Delivery.PermanentFailure");
        assert_eq!(give_up_code(&busy), "Delivery.RetriesExhausted");
    }
}
