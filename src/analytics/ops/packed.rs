//! Accumulators of plain numbers as 8-byte words: a COUNT in one, a SUM/AVG or a
//! MIN/MAX/FIRST/LAST of anything but a string in two. `Groups` keeps a window's groups this
//! way when every accumulator fits (see groups.rs).
//!
//! Invariant: `Slot::unpack` of what `Slot::pack` wrote is the accumulator packed.

use super::aggregate::Acc;
use crate::analytics::value::Value;

/// How a packed accumulator is kept: in one word or two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Slot {
    /// `Acc::Count`: the count.
    Count,
    /// `Acc::IntSum`: n, sum.
    IntSum,
    /// `Acc::DoubleSum`: n, the sum's bits.
    DoubleSum,
    /// `Acc::One` of anything but a string: the value's type, its bits.
    One,
}

impl Slot {
    /// The slot that keeps `acc`, if one does.
    pub(super) fn of(acc: &Acc) -> Option<Slot> {
        match acc {
            Acc::Count(_) => Some(Slot::Count),
            Acc::IntSum { .. } => Some(Slot::IntSum),
            Acc::DoubleSum { .. } => Some(Slot::DoubleSum),
            Acc::One(value) => value_bits(value).map(|_| Slot::One),
            _ => None,
        }
    }

    pub(super) fn words(self) -> usize {
        match self {
            Slot::Count => 1,
            Slot::IntSum | Slot::DoubleSum | Slot::One => 2,
        }
    }

    /// Writes `acc` into `out` (`words()` long); false when this slot cannot keep it.
    pub(super) fn pack(self, acc: &Acc, out: &mut [u64]) -> bool {
        match (self, acc) {
            (Slot::Count, Acc::Count(n)) => out[0] = *n as u64,
            (Slot::IntSum, Acc::IntSum { n, sum }) => {
                out[0] = *n as u64;
                out[1] = *sum as u64;
            }
            (Slot::DoubleSum, Acc::DoubleSum { n, sum }) => {
                out[0] = *n as u64;
                out[1] = sum.to_bits();
            }
            (Slot::One, Acc::One(value)) => match value_bits(value) {
                Some((tag, bits)) => {
                    out[0] = tag;
                    out[1] = bits;
                }
                None => return false,
            },
            _ => return false,
        }
        true
    }

    pub(super) fn unpack(self, words: &[u64]) -> Acc {
        match self {
            Slot::Count => Acc::Count(words[0] as i64),
            Slot::IntSum => Acc::IntSum {
                n: words[0] as i64,
                sum: words[1] as i64,
            },
            Slot::DoubleSum => Acc::DoubleSum {
                n: words[0] as i64,
                sum: f64::from_bits(words[1]),
            },
            Slot::One => Acc::One(bits_value(words[0], words[1])),
        }
    }
}

/// A value that is not a string as (type, bits).
fn value_bits(value: &Value) -> Option<(u64, u64)> {
    Some(match value {
        Value::Null => (0, 0),
        Value::Bool(b) => (1, *b as u64),
        Value::Int(i) => (2, *i as u64),
        Value::Double(d) => (3, d.to_bits()),
        Value::Ts(t) => (4, *t as u64),
        Value::Date(d) => (5, *d as u32 as u64),
        Value::Interval(i) => (6, *i as u64),
        Value::Str(_) => return None,
    })
}

fn bits_value(tag: u64, bits: u64) -> Value {
    match tag {
        1 => Value::Bool(bits != 0),
        2 => Value::Int(bits as i64),
        3 => Value::Double(f64::from_bits(bits)),
        4 => Value::Ts(bits as i64),
        5 => Value::Date(bits as u32 as i32),
        6 => Value::Interval(bits as i64),
        _ => Value::Null,
    }
}

/// Packs `accs` into `out` as `slots` say; false when one does not fit its slot.
pub(super) fn pack(slots: &[Slot], accs: &[Acc], out: &mut [u64]) -> bool {
    let mut at = 0;
    for (slot, acc) in slots.iter().zip(accs) {
        if !slot.pack(acc, &mut out[at..]) {
            return false;
        }
        at += slot.words();
    }
    true
}
