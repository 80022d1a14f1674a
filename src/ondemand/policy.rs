//! The on-demand scaling decision: pure arithmetic on an observed write rate, so that it is
//! tested without a gateway.
//!
//! - Capacity of `n` shards: `n` x (bytes/s, records/s) per shard; utilization is the larger
//!   of the two ratios of rate to capacity.
//! - Up: when utilization exceeds [`SCALE_UP_AT`] (half), to the shards that bring it back to
//!   half, at most double (UpdateShardCount's bound, so Kinesis' "doubles toward the peak"),
//!   at most `max_shards` and at most what the gateway can still open.
//! - Down: when the rate stayed below a quarter of capacity (so half the shards would still be
//!   at most half used) for `scale_down_after_ms`, to half (rounded up), never below
//!   `min_shards` nor below what the rate needs.

/// Utilization above which a stream is scaled up.
pub const SCALE_UP_AT: f64 = 0.5;

/// A write rate averaged over the window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rate {
    pub bytes_per_s: f64,
    pub records_per_s: f64,
}

/// The bounds and capacities the decision uses (from `[on_demand]`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub shard_bytes_per_s: f64,
    pub shard_records_per_s: f64,
    pub min_shards: u32,
    pub max_shards: u32,
    pub scale_down_after_ms: u64,
}

/// What the scaler remembers about one stream between looks.
#[derive(Debug, Clone, Copy, Default)]
pub struct Trend {
    /// Since when (ms) the rate has been low enough to scale down.
    pub low_since_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Keep,
    Up(u32),
    Down(u32),
}

/// Capacity used at `rate` by `shards` shards (1.0 = full).
pub fn utilization(rate: Rate, shards: u32, limits: &Limits) -> f64 {
    let n = f64::from(shards.max(1));
    (rate.bytes_per_s / (n * limits.shard_bytes_per_s))
        .max(rate.records_per_s / (n * limits.shard_records_per_s))
}

/// Shards that keep `rate` at [`SCALE_UP_AT`] of capacity or below.
fn shards_needed(rate: Rate, limits: &Limits) -> u32 {
    let needed = utilization(rate, 1, limits) / SCALE_UP_AT;
    needed.ceil().clamp(1.0, f64::from(u32::MAX)) as u32
}

/// Decides for a stream with `current` open shards; `room` is how many more shards the gateway
/// can open.
pub fn decide(
    trend: &mut Trend,
    current: u32,
    rate: Rate,
    room: u32,
    now_ms: u64,
    limits: &Limits,
) -> Decision {
    let used = utilization(rate, current, limits);
    let needed = shards_needed(rate, limits);
    if used > SCALE_UP_AT {
        trend.low_since_ms = None;
        let target = needed
            .min(current.saturating_mul(2))
            .min(limits.max_shards)
            .min(current.saturating_add(room));
        return if target > current {
            Decision::Up(target)
        } else {
            Decision::Keep
        };
    }
    if current <= limits.min_shards || used >= SCALE_UP_AT / 2.0 {
        trend.low_since_ms = None;
        return Decision::Keep;
    }
    let since = *trend.low_since_ms.get_or_insert(now_ms);
    if now_ms.saturating_sub(since) < limits.scale_down_after_ms {
        return Decision::Keep;
    }
    trend.low_since_ms = None;
    let target = current.div_ceil(2).max(limits.min_shards).max(needed);
    if target < current {
        Decision::Down(target)
    } else {
        Decision::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        shard_bytes_per_s: 1_048_576.0,
        shard_records_per_s: 1000.0,
        min_shards: 4,
        max_shards: 64,
        scale_down_after_ms: 3_600_000,
    };

    fn records(per_s: f64) -> Rate {
        Rate {
            bytes_per_s: 0.0,
            records_per_s: per_s,
        }
    }

    #[test]
    fn scales_up_past_half_and_at_most_doubles() {
        let mut t = Trend::default();
        assert_eq!(
            decide(&mut t, 4, records(1900.0), 1000, 0, &LIMITS),
            Decision::Keep
        );
        // 2100 rec/s on 4 shards is 52 %: 5 shards bring it to 42 %.
        assert_eq!(
            decide(&mut t, 4, records(2100.0), 1000, 0, &LIMITS),
            Decision::Up(5)
        );
        // 10,000 rec/s needs 20 shards: from 4, at most 8 at once.
        assert_eq!(
            decide(&mut t, 4, records(10_000.0), 1000, 0, &LIMITS),
            Decision::Up(8)
        );
        assert_eq!(
            decide(&mut t, 8, records(10_000.0), 1000, 0, &LIMITS),
            Decision::Up(16)
        );
        assert_eq!(
            decide(&mut t, 16, records(10_000.0), 1000, 0, &LIMITS),
            Decision::Up(20)
        );
        // bytes count as well as records
        let bytes = Rate {
            bytes_per_s: 3.0 * 1_048_576.0,
            records_per_s: 10.0,
        };
        assert_eq!(decide(&mut t, 4, bytes, 1000, 0, &LIMITS), Decision::Up(6));
    }

    #[test]
    fn bounded_by_max_shards_and_the_gateway() {
        let mut t = Trend::default();
        assert_eq!(
            decide(&mut t, 48, records(1e9), 1000, 0, &LIMITS),
            Decision::Up(64)
        );
        assert_eq!(
            decide(&mut t, 64, records(1e9), 1000, 0, &LIMITS),
            Decision::Keep
        );
        assert_eq!(
            decide(&mut t, 4, records(1e9), 2, 0, &LIMITS),
            Decision::Up(6)
        );
        assert_eq!(
            decide(&mut t, 4, records(1e9), 0, 0, &LIMITS),
            Decision::Keep
        );
    }

    #[test]
    fn scales_down_slowly_and_not_below_min() {
        let mut t = Trend::default();
        let hour = LIMITS.scale_down_after_ms;
        assert_eq!(
            decide(&mut t, 16, records(100.0), 0, 1_000, &LIMITS),
            Decision::Keep
        );
        assert_eq!(
            decide(&mut t, 16, records(100.0), 0, hour, &LIMITS),
            Decision::Keep
        );
        assert_eq!(
            decide(&mut t, 16, records(100.0), 0, hour + 1_000, &LIMITS),
            Decision::Down(8)
        );
        // a busy moment restarts the wait
        assert_eq!(
            decide(&mut t, 8, records(100.0), 0, hour + 2_000, &LIMITS),
            Decision::Keep
        );
        assert_eq!(
            decide(&mut t, 8, records(3000.0), 0, hour + 3_000, &LIMITS),
            Decision::Keep
        );
        assert_eq!(
            decide(&mut t, 8, records(100.0), 0, 2 * hour + 2_500, &LIMITS),
            Decision::Keep
        );
        // never below min_shards
        let mut t = Trend::default();
        assert_eq!(
            decide(&mut t, 4, records(0.0), 0, 0, &LIMITS),
            Decision::Keep
        );
        assert_eq!(
            decide(&mut t, 4, records(0.0), 0, 10 * hour, &LIMITS),
            Decision::Keep
        );
        let mut t = Trend::default();
        decide(&mut t, 5, records(0.0), 0, 0, &LIMITS);
        assert_eq!(
            decide(&mut t, 5, records(0.0), 0, 2 * hour, &LIMITS),
            Decision::Down(4)
        );
    }
}
