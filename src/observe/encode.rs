//! The families of one scrape in the Prometheus text format, with `prometheus-client`.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::Family;

/// The text of `families`, in order.
pub(super) fn text(families: Vec<Family>) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Families(families)));
    let mut out = String::with_capacity(16 * 1024);
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?;
    Ok(out)
}

#[derive(Debug)]
struct Families(Vec<Family>);

impl Collector for Families {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for family in &self.0 {
            match family {
                Family::Counter(name, help, rows) => {
                    if rows.is_empty() {
                        continue;
                    }
                    let counter = ConstCounter::new(0u64);
                    let mut metric =
                        encoder.encode_descriptor(name, help, None, counter.metric_type())?;
                    for (labels, value) in rows {
                        ConstCounter::new(*value).encode(metric.encode_family(labels)?)?;
                    }
                }
                Family::Gauge(name, help, rows) => {
                    if rows.is_empty() {
                        continue;
                    }
                    let gauge = ConstGauge::new(0f64);
                    let mut metric =
                        encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
                    for (labels, value) in rows {
                        ConstGauge::new(*value).encode(metric.encode_family(labels)?)?;
                    }
                }
                Family::SecondsCounter(name, help, value) => {
                    let counter = ConstCounter::new(*value);
                    counter.encode(encoder.encode_descriptor(
                        name,
                        help,
                        None,
                        counter.metric_type(),
                    )?)?;
                }
                Family::Histogram(name, help, histogram) => {
                    let metric =
                        encoder.encode_descriptor(name, help, None, histogram.metric_type())?;
                    histogram.encode(metric)?;
                }
            }
        }
        Ok(())
    }
}
