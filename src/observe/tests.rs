//! The writer encodes what reporters wrote, in order, and leaves out empty families.

use super::*;

struct Two;

impl Report for Two {
    fn report(&self, out: &mut MetricsWriter) {
        out.counter("b_events", "B events.", one(2));
        out.gauge("a_empty", "Nothing.", Vec::new());
        out.gauge("a_level", "A level.", gauge1(1.5));
    }
}

#[test]
fn families_are_encoded_in_the_order_reported() {
    let mut out = MetricsWriter::default();
    Two.report(&mut out);
    let text = out.encode().unwrap();
    let b = text.find("b_events_total 2").unwrap();
    let a = text.find("a_level 1.5").unwrap();
    assert!(b < a, "{text}");
    assert!(!text.contains("a_empty"), "{text}");
}

#[test]
fn counter_by_label_keeps_label_order() {
    let c = CounterByLabel::default();
    c.inc("z");
    c.inc("a");
    c.inc("z");
    assert_eq!(c.snapshot(), vec![("a", 1), ("z", 2)]);
}
