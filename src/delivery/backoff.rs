//! Retry timing. Answered errors back off the way Firehose does for HTTP endpoints: 1 s,
//! doubling, ±15% jitter, at most 2 minutes apart. An unreachable destination is tried again
//! every second (a refused connection costs nothing), so delivery resumes within about a
//! second of the link coming back, however long the outage was.

use std::time::Duration;

use rand::Rng;

const FIRST: Duration = Duration::from_secs(1);
const MAX: Duration = Duration::from_secs(120);
const JITTER: f64 = 0.15;
/// Retry period while the destination is unreachable.
pub const UNREACHABLE_RETRY: Duration = Duration::from_secs(1);

/// The delay before retry number `attempt` (1 = the first retry) after an answered error.
pub fn after_error(attempt: u32) -> Duration {
    let doubled = FIRST.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    jitter(doubled.min(MAX))
}

/// The delay before the next try while the destination is unreachable.
pub fn while_unreachable() -> Duration {
    jitter(UNREACHABLE_RETRY)
}

fn jitter(d: Duration) -> Duration {
    let factor = rand::thread_rng().gen_range(1.0 - JITTER..=1.0 + JITTER);
    d.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_with_jitter_and_caps_at_two_minutes() {
        for (attempt, base) in [
            (1u32, 1.0f64),
            (2, 2.0),
            (3, 4.0),
            (7, 64.0),
            (8, 120.0),
            (30, 120.0),
        ] {
            for _ in 0..50 {
                let d = after_error(attempt).as_secs_f64();
                assert!(
                    d >= base * 0.85 - 1e-9 && d <= base * 1.15 + 1e-9,
                    "{attempt}: {d}"
                );
            }
        }
    }
}
