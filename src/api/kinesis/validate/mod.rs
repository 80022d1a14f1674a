//! Model validation of Kinesis inputs, as AWS's front answers it.
//!
//! Every member of an input is checked against its shape in the Kinesis service model
//! (`kinesis/2013-12-02/service-2.json`: lengths, patterns, ranges, enums, required members),
//! member after member in the model's order, and all failures of one request are answered
//! together in one `ValidationException`:
//! `2 validation errors detected: Value null at 'streamName' failed to satisfy constraint:
//! Member must not be null; Value 'a b' at 'shardId' ...`. Member paths use AWS's form
//! (lower-case first letter, `records.1.member.partitionKey`, `shardFilter.type`); values are
//! shown as AWS shows them (blobs as `java.nio.HeapByteBuffer[...]`, maps as `{k=v}`,
//! integers as the 32-bit value AWS parsed). At most [`MAX_LISTED`] failures are listed.
//!
//! What is checked lives in one place: the shapes and the member list of every operation
//! are in [`model`]; this module only walks them. Semantic checks (a shard that does not
//! exist, a retention period out of range, ...) answer InvalidArgument or ResourceNotFound in
//! the operations, after this layer passed. Type errors (a string where a number belongs) are
//! SerializationExceptions worded by [`serialization`].
//!
//! A new operation's input gets a `Validate` impl in `model.rs`: one line per member.

mod model;
mod operations;
pub mod serialization;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt::Write;

pub use model::*;

use crate::api::error::{ApiError, ErrorKind};

/// AWS lists at most this many failures in one message (and counts only those).
pub const MAX_LISTED: usize = 10;

/// An input whose members have shapes in the service model.
pub trait Validate {
    /// Checks each member, in the model's member order.
    fn members(&self, v: &mut Violations);
}

/// Checks `input` against its model: Ok, or one ValidationException listing every failure.
pub fn check<T: Validate>(input: &T) -> Result<(), ApiError> {
    let mut v = Violations::default();
    input.members(&mut v);
    v.finish()
}

/// Whether a member must be present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Required,
    Optional,
}

/// A regular expression of the model, matched by hand (the model has a handful).
#[derive(Debug)]
pub struct Pattern {
    /// The pattern as the model writes it (and AWS's message quotes it).
    pub text: &'static str,
    /// Whether a whole value matches.
    pub matches: fn(&str) -> bool,
}

/// A string shape: lengths in UTF-16 units (Java's `String.length()`), a pattern, an enum.
#[derive(Debug, Clone, Copy)]
pub struct StrShape {
    pub min: Option<usize>,
    pub max: Option<usize>,
    pub pattern: Option<&'static Pattern>,
    pub values: Option<&'static [&'static str]>,
}

impl StrShape {
    pub const ANY: StrShape = StrShape {
        min: None,
        max: None,
        pattern: None,
        values: None,
    };
}

/// An integer shape (a Java `int` in AWS).
#[derive(Debug, Clone, Copy)]
pub struct IntShape {
    pub min: Option<i64>,
    pub max: Option<i64>,
}

/// A blob shape (lengths in bytes).
#[derive(Debug, Clone, Copy)]
pub struct BlobShape {
    pub max: Option<usize>,
}

/// The length limits of a list or a map.
#[derive(Debug, Clone, Copy)]
pub struct SizeShape {
    pub min: Option<usize>,
    pub max: Option<usize>,
}

/// Collects the failures of one input, in the order the members are checked.
#[derive(Debug, Default)]
pub struct Violations {
    /// Where the structure being checked is (`records`, item 3: `records.3.member.`); written
    /// out only when a failure is recorded, so that checking a valid list costs no formatting.
    path: Vec<Step>,
    found: Vec<String>,
}

#[derive(Debug)]
enum Step {
    /// A structure member (model name).
    Member(&'static str),
    /// The n-th (from 1) element of the list named by the step before.
    Item(usize),
}

fn lower_first(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The length AWS measures a string by: UTF-16 code units.
pub fn java_length(text: &str) -> usize {
    text.encode_utf16().count()
}

/// The value AWS holds for an integer member: JSON numbers are read into a Java `int`,
/// saturating at its bounds.
pub fn java_int(value: i64) -> i64 {
    value.clamp(i64::from(i32::MIN), i64::from(i32::MAX))
}

fn length_constraints(min: Option<usize>, max: Option<usize>, len: usize) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(min) = min.filter(|m| len < *m) {
        out.push(format!(
            "Member must have length greater than or equal to {min}"
        ));
    }
    if let Some(max) = max.filter(|m| len > *m) {
        out.push(format!(
            "Member must have length less than or equal to {max}"
        ));
    }
    out
}

impl StrShape {
    /// The constraints `value` fails, in AWS's order: pattern, lengths, enum.
    fn failures(&self, value: &str) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(p) = self.pattern.filter(|p| !(p.matches)(value)) {
            out.push(format!(
                "Member must satisfy regular expression pattern: {}",
                p.text
            ));
        }
        // UTF-16 units are at most the UTF-8 bytes and at least a third of them: most values
        // pass on their byte length without being counted.
        let bytes = value.len();
        if self.max.is_some_and(|m| bytes > m) || self.min.is_some_and(|m| bytes < m * 3) {
            out.extend(length_constraints(self.min, self.max, java_length(value)));
        }
        if let Some(values) = self.values.filter(|vs| !vs.contains(&value)) {
            out.push(format!(
                "Member must satisfy enum value set: [{}]",
                values.join(", ")
            ));
        }
        out
    }

    /// The shape's constraints as AWS lists them for the members of a list or map
    /// (`[Member must have length less than or equal to 128, Member must have length
    /// greater than or equal to 1]`).
    fn described(&self) -> String {
        let mut parts = Vec::new();
        if let Some(max) = self.max {
            parts.push(format!(
                "Member must have length less than or equal to {max}"
            ));
        }
        if let Some(min) = self.min {
            parts.push(format!(
                "Member must have length greater than or equal to {min}"
            ));
        }
        if let Some(p) = self.pattern {
            parts.push(format!(
                "Member must satisfy regular expression pattern: {}",
                p.text
            ));
        }
        if let Some(values) = self.values {
            parts.push(format!(
                "Member must satisfy enum value set: [{}]",
                values.join(", ")
            ));
        }
        format!("[{}]", parts.join(", "))
    }
}

impl Violations {
    /// Records that the member at `member` with `value` (None: null) fails `constraint`.
    fn push(&mut self, member: &str, value: Option<&str>, constraint: &str) {
        if self.found.len() >= MAX_LISTED {
            return;
        }
        let mut line = String::with_capacity(96);
        match value {
            Some(v) => {
                let _ = write!(line, "Value '{v}'");
            }
            None => line.push_str("Value null"),
        }
        line.push_str(" at '");
        for step in &self.path {
            match step {
                Step::Member(name) => line.push_str(&lower_first(name)),
                Step::Item(n) => {
                    let _ = write!(line, "{n}.member");
                }
            }
            line.push('.');
        }
        let _ = write!(
            line,
            "{}' failed to satisfy constraint: {constraint}",
            lower_first(member)
        );
        self.found.push(line);
    }

    /// A missing member: a failure if it is required. Returns whether it is present.
    fn present<T>(&mut self, member: &str, value: Option<T>, presence: Presence) -> Option<T> {
        if value.is_none() && presence == Presence::Required {
            self.push(member, None, "Member must not be null");
        }
        value
    }

    pub fn string(
        &mut self,
        member: &str,
        value: Option<&str>,
        shape: &StrShape,
        presence: Presence,
    ) {
        let Some(value) = self.present(member, value, presence) else {
            return;
        };
        for failure in shape.failures(value) {
            self.push(member, Some(value), &failure);
        }
    }

    pub fn int(&mut self, member: &str, value: Option<i64>, shape: &IntShape, presence: Presence) {
        let Some(value) = self.present(member, value, presence) else {
            return;
        };
        let value = java_int(value);
        let shown = value.to_string();
        if let Some(min) = shape.min.filter(|m| value < *m) {
            self.push(
                member,
                Some(&shown),
                &format!("Member must have value greater than or equal to {min}"),
            );
        }
        if let Some(max) = shape.max.filter(|m| value > *m) {
            self.push(
                member,
                Some(&shown),
                &format!("Member must have value less than or equal to {max}"),
            );
        }
    }

    /// A blob of `len` bytes, shown as AWS shows a byte buffer.
    pub fn blob(
        &mut self,
        member: &str,
        len: Option<usize>,
        shape: &BlobShape,
        presence: Presence,
    ) {
        let Some(len) = self.present(member, len, presence) else {
            return;
        };
        if let Some(max) = shape.max.filter(|m| len > *m) {
            let shown = format!("java.nio.HeapByteBuffer[pos=0 lim={len} cap={len}]");
            self.push(
                member,
                Some(&shown),
                &format!("Member must have length less than or equal to {max}"),
            );
        }
    }

    /// A member with no constraint but presence (booleans, timestamps).
    pub fn other<T>(&mut self, member: &str, value: Option<T>, presence: Presence) {
        self.present(member, value, presence);
    }

    pub fn string_list(
        &mut self,
        member: &str,
        value: Option<&[String]>,
        shape: &SizeShape,
        item: &StrShape,
        presence: Presence,
    ) {
        let Some(items) = self.present(member, value, presence) else {
            return;
        };
        let shown = format!("[{}]", items.join(", "));
        for failure in length_constraints(shape.min, shape.max, items.len()) {
            self.push(member, Some(&shown), &failure);
        }
        if items.iter().any(|i| !item.failures(i).is_empty()) {
            let constraint = format!("Member must satisfy constraint: {}", item.described());
            self.push(member, Some(&shown), &constraint);
        }
    }

    pub fn string_map(
        &mut self,
        member: &str,
        value: Option<&BTreeMap<String, String>>,
        shape: &SizeShape,
        key: &StrShape,
        item: &StrShape,
        presence: Presence,
    ) {
        let Some(map) = self.present(member, value, presence) else {
            return;
        };
        let shown = format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for failure in length_constraints(shape.min, shape.max, map.len()) {
            self.push(member, Some(&shown), &failure);
        }
        if map.keys().any(|k| !key.failures(k).is_empty()) {
            let constraint = format!("Map keys must satisfy constraint: {}", key.described());
            self.push(member, Some(&shown), &constraint);
        }
        if map.values().any(|v| !item.failures(v).is_empty()) {
            let constraint = format!("Map value must satisfy constraint: {}", item.described());
            self.push(member, Some(&shown), &constraint);
        }
    }

    /// A nested structure: its members are checked under `member.`.
    pub fn structure<T: Validate>(
        &mut self,
        member: &'static str,
        value: Option<&T>,
        presence: Presence,
    ) {
        let Some(inner) = self.present(member, value, presence) else {
            return;
        };
        self.path.push(Step::Member(member));
        inner.members(self);
        self.path.pop();
    }

    /// A list of structures, each checked under `member.N.member.`. AWS shows a list of
    /// structures by the Java names of its elements (`shown_item`).
    pub fn list<T: Validate>(
        &mut self,
        member: &'static str,
        value: Option<&[T]>,
        shape: &SizeShape,
        shown_item: &str,
        presence: Presence,
    ) {
        let Some(items) = self.present(member, value, presence) else {
            return;
        };
        let failures = length_constraints(shape.min, shape.max, items.len());
        if !failures.is_empty() {
            let shown = format!("[{}]", vec![shown_item; items.len()].join(", "));
            for failure in failures {
                self.push(member, Some(&shown), &failure);
            }
        }
        self.path.push(Step::Member(member));
        for (i, item) in items.iter().enumerate() {
            if self.found.len() >= MAX_LISTED {
                break;
            }
            self.path.push(Step::Item(i + 1));
            item.members(self);
            self.path.pop();
        }
        self.path.pop();
    }

    pub fn finish(self) -> Result<(), ApiError> {
        match self.found.len() {
            0 => Ok(()),
            n => Err(ApiError::new(
                ErrorKind::Validation,
                format!(
                    "{n} validation error{} detected: {}",
                    if n == 1 { "" } else { "s" },
                    self.found.join("; ")
                ),
            )),
        }
    }
}

impl Validate for serde::de::IgnoredAny {
    fn members(&self, _v: &mut Violations) {}
}
