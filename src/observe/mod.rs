//! How the parts report what they count: the bottom of the dependency graph (imports no other
//! part), so that no part has to reach into another to be observed.
//!
//! - A part that keeps numbers implements [`Report`]: at each scrape it writes its metric
//!   families into a [`MetricsWriter`]; the gateway hands the list of reporters to `/metrics`,
//!   which renders them in the order given (the Prometheus text format 0.0.4, with
//!   `prometheus-client`).
//! - A thing that happens and is both logged and counted is one [`InternalEvent`] type (as
//!   Vector's `internal_events`): its `emit()` writes the log line and bumps the counter
//!   together, so the two never disagree.
//!
//! Invariant: labels name configured things (streams, shards, delivery streams, cameras) and
//! fixed reasons, never a device id, client id or topic, so the number of series does not grow
//! with the number of sensors.

mod counters;
mod encode;

use prometheus_client::metrics::histogram::Histogram;

pub use counters::{Counter, CounterByLabel};
pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The labels of one sample.
pub type Labels = Vec<(&'static str, String)>;

/// One metric family: its name (without `_total` for counters), help and samples.
#[derive(Debug)]
pub(crate) enum Family {
    Counter(&'static str, &'static str, Vec<(Labels, u64)>),
    /// A counter of seconds.
    SecondsCounter(&'static str, &'static str, f64),
    Gauge(&'static str, &'static str, Vec<(Labels, f64)>),
    Histogram(&'static str, &'static str, Histogram),
}

/// What the reporters of one scrape wrote, in order. Families without samples are left out
/// of the text.
#[derive(Debug, Default)]
pub struct MetricsWriter {
    families: Vec<Family>,
}

impl MetricsWriter {
    /// A counter family (`name` without `_total`).
    pub fn counter(&mut self, name: &'static str, help: &'static str, rows: Vec<(Labels, u64)>) {
        self.families.push(Family::Counter(name, help, rows));
    }

    /// A counter of seconds without labels (`name` without `_total`).
    pub fn seconds_counter(&mut self, name: &'static str, help: &'static str, value: f64) {
        self.families
            .push(Family::SecondsCounter(name, help, value));
    }

    pub fn gauge(&mut self, name: &'static str, help: &'static str, rows: Vec<(Labels, f64)>) {
        self.families.push(Family::Gauge(name, help, rows));
    }

    pub fn histogram(&mut self, name: &'static str, help: &'static str, histogram: Histogram) {
        self.families.push(Family::Histogram(name, help, histogram));
    }

    /// The text of everything written (Prometheus text format).
    pub fn encode(self) -> Result<String, std::fmt::Error> {
        encode::text(self.families)
    }
}

/// The one sample of a counter without labels.
pub fn one(value: u64) -> Vec<(Labels, u64)> {
    vec![(Vec::new(), value)]
}

/// The one sample of a gauge without labels.
pub fn gauge1(value: f64) -> Vec<(Labels, f64)> {
    vec![(Vec::new(), value)]
}

/// A part that reports metrics at each scrape. Reporting may block (read a file's size, a
/// database): `/metrics` calls reporters from a blocking thread.
pub trait Report: Send + Sync {
    fn report(&self, out: &mut MetricsWriter);
}

/// Something that happened, logged and counted together (Vector's `InternalEvent`).
pub trait InternalEvent {
    /// Writes the log line and bumps the counter.
    fn emit(self);
}

/// Emits `event`: `emit(ApiRequestFailed { .. })` reads as what happened.
pub fn emit(event: impl InternalEvent) {
    event.emit();
}

#[cfg(test)]
mod tests;
