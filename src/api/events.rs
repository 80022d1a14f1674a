//! The API's typed events and the counters they bump (`kinedge_api_requests_total`,
//! `kinedge_api_errors_total{type}`): each event writes its log line and counts itself in one
//! `emit()`, so the log and `/metrics` agree.

use crate::observe::{one, Counter, CounterByLabel, InternalEvent, MetricsWriter, Report};

use super::error::{ApiError, ErrorKind};

/// Requests and refusals of the Kinesis and Firehose API (`POST /`), by AWS error type (a
/// fixed set).
#[derive(Debug, Default)]
pub struct ApiCounters {
    requests: Counter,
    errors: CounterByLabel,
}

impl Report for ApiCounters {
    fn report(&self, out: &mut MetricsWriter) {
        out.counter(
            "kinedge_api_requests",
            "Kinesis and Firehose API requests (POST /).",
            one(self.requests.get()),
        );
        out.counter(
            "kinedge_api_errors",
            "API requests answered with an error, by AWS error type.",
            self.errors
                .snapshot()
                .into_iter()
                .map(|(kind, count)| (vec![("type", kind.to_string())], count))
                .collect(),
        );
    }
}

/// A Kinesis or Firehose API request arrived.
pub struct ApiRequestReceived<'a> {
    pub counters: &'a ApiCounters,
}

impl InternalEvent for ApiRequestReceived<'_> {
    fn emit(self) {
        self.counters.requests.inc();
    }
}

/// A Kinesis or Firehose API request was answered with an error: an internal failure is
/// logged as an error, a refusal (the client's mistake) at debug level.
pub struct ApiRequestFailed<'a> {
    pub counters: &'a ApiCounters,
    pub request_id: &'a str,
    pub error: &'a ApiError,
}

impl InternalEvent for ApiRequestFailed<'_> {
    fn emit(self) {
        let (id, error) = (self.request_id, self.error);
        self.counters.errors.inc(error.kind.aws_type());
        if error.kind == ErrorKind::InternalFailure {
            tracing::error!(request_id = %id, %error, "API request failed");
        } else {
            tracing::debug!(request_id = %id, %error, "API request refused");
        }
    }
}
