//! What delivery reports at each scrape: per delivery stream, what was delivered, retried,
//! failed, dropped and lost, its backlog and its state.

use crate::observe::{Labels, MetricsWriter, Report};

use super::DeliveryService;

impl Report for DeliveryService {
    fn report(&self, out: &mut MetricsWriter) {
        let deliveries = self;
        let list = deliveries.status();
        type Row = (Labels, u64);
        let mut counters: [(&'static str, &'static str, Vec<Row>); 7] = [
        ("kinedge_delivery_delivered_records", "Records confirmed by the destination.", Vec::new()),
        ("kinedge_delivery_delivered_bytes", "Record bytes confirmed by the destination.", Vec::new()),
        ("kinedge_delivery_batches", "Batches confirmed by the destination.", Vec::new()),
        ("kinedge_delivery_retries", "Attempts that failed and were retried.", Vec::new()),
        ("kinedge_delivery_failed_records", "Records the destination refused for good (sent to the error prefix or dead-letter directory).", Vec::new()),
        ("kinedge_delivery_dropped_records", "Records dropped by a processor.", Vec::new()),
        ("kinedge_delivery_records_lost", "Records trimmed by retention or a quota before they were delivered.", Vec::new()),
    ];
        let mut backlog_records = Vec::new();
        let mut backlog_bytes = Vec::new();
        let mut backlog_age = Vec::new();
        let mut state = Vec::new();
        for d in &list {
            let labels = vec![("delivery_stream", d.name.clone())];
            let values = [
                d.delivered_records,
                d.delivered_bytes,
                d.batches,
                d.retries,
                d.failed_records,
                d.dropped_records,
                d.records_lost,
            ];
            for (family, value) in counters.iter_mut().zip(values) {
                family.2.push((labels.clone(), value));
            }
            backlog_records.push((labels.clone(), d.backlog_records as f64));
            backlog_bytes.push((labels.clone(), d.backlog_bytes as f64));
            backlog_age.push((
                labels.clone(),
                d.oldest_undelivered_age_ms.unwrap_or(0) as f64 / 1000.0,
            ));
            let mut labels = labels;
            labels.push(("state", d.state.as_str().to_string()));
            state.push((labels, 1.0));
        }
        for (name, help, rows) in counters {
            out.counter(name, help, rows);
        }
        out.gauge(
            "kinedge_delivery_backlog_records",
            "Records stored but not yet delivered.",
            backlog_records,
        );
        out.gauge(
            "kinedge_delivery_backlog_bytes",
            "Record bytes stored but not yet delivered.",
            backlog_bytes,
        );
        out.gauge(
            "kinedge_delivery_backlog_age_seconds",
            "Age of the oldest record not yet delivered (0 without a backlog).",
            backlog_age,
        );
        out.gauge(
            "kinedge_delivery_state",
            "The delivery stream's state (value 1 for the current one).",
            state,
        );
    }
}
