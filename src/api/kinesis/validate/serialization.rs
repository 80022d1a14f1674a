//! SerializationExceptions as AWS words them: a member of the wrong JSON type is reported in
//! the words of AWS's (Java) front, e.g. `class java.lang.String can not be converted to an
//! Integer` or `Start of list found where not expected`, without the position serde adds.
//!
//! Input timestamps are numbers only ([`InputTimestamp`]): AWS refuses a string
//! (`class java.lang.String can not be converted to milliseconds since epoch`).

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::api::error::{ApiError, ErrorKind};

const STRING: &str = "class java.lang.String";
const BOOLEAN: &str = "class java.lang.Boolean";
const NUMBER: &str = "class com.amazon.coral.value.json.numbers.TruncatingBigNumber";
const LIST_HERE: &str = "Start of list found where not expected";
const MAP_HERE: &str = "Start of structure or map found where not expected.";
const TO_EPOCH: &str = "can not be converted to milliseconds since epoch";

/// A timestamp of an input: epoch seconds (JSON) or milliseconds (CBOR), never text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputTimestamp(pub u64);

impl<'de> Deserialize<'de> for InputTimestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Seconds;
        impl<'de> Visitor<'de> for Seconds {
            type Value = InputTimestamp;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an epoch timestamp")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<InputTimestamp, E> {
                let ms = v * 1000.0;
                if !ms.is_finite() || ms < 0.0 {
                    return Err(E::custom("timestamp must be a non-negative number"));
                }
                Ok(InputTimestamp(ms.round() as u64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<InputTimestamp, E> {
                self.visit_f64(v as f64)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<InputTimestamp, E> {
                self.visit_f64(v as f64)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<InputTimestamp, E> {
                Err(E::custom(format!("{STRING} {TO_EPOCH}")))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<InputTimestamp, E> {
                Err(E::custom(format!("{BOOLEAN} {TO_EPOCH}")))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<InputTimestamp, A::Error> {
                Err(de::Error::custom(LIST_HERE))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<InputTimestamp, A::Error> {
                Err(de::Error::custom(MAP_HERE))
            }
        }
        if deserializer.is_human_readable() {
            return deserializer.deserialize_any(Seconds);
        }
        // CBOR: milliseconds, possibly in tag 1; text is refused as in JSON.
        let mut value = ciborium::Value::deserialize(deserializer)?;
        while let ciborium::Value::Tag(_, inner) = value {
            value = *inner;
        }
        let ms = match value {
            ciborium::Value::Integer(i) => i128::from(i) as f64,
            ciborium::Value::Float(f) => f,
            ciborium::Value::Text(_) => {
                return Err(de::Error::custom(format!("{STRING} {TO_EPOCH}")))
            }
            ciborium::Value::Bool(_) => {
                return Err(de::Error::custom(format!("{BOOLEAN} {TO_EPOCH}")))
            }
            ciborium::Value::Array(_) => return Err(de::Error::custom(LIST_HERE)),
            ciborium::Value::Map(_) => return Err(de::Error::custom(MAP_HERE)),
            _ => {
                return Err(de::Error::custom(
                    "timestamp must be a number of epoch milliseconds",
                ))
            }
        };
        Seconds.visit_f64::<D::Error>(ms / 1000.0)
    }
}

/// What AWS's front calls the type serde expected (its `expecting` text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expected {
    String,
    Integer,
    Boolean,
    Blob,
    Timestamp,
    List,
    Map,
    Structure,
}

fn expected(text: &str) -> Option<Expected> {
    Some(match text {
        "a string" => Expected::String,
        "i64" | "i32" | "u32" | "u64" => Expected::Integer,
        "a boolean" => Expected::Boolean,
        "base64 text or a byte string" => Expected::Blob,
        "an epoch timestamp" => Expected::Timestamp,
        "a sequence" => Expected::List,
        "a map" => Expected::Map,
        t if t.starts_with("struct ") => Expected::Structure,
        _ => return None,
    })
}

/// AWS's words for a value of the wrong type: `unexpected` is serde's description of what
/// was found (`string "23"`, `integer `23``, `boolean `true``, `sequence`, `map`).
fn aws_type_error(unexpected: &str, expected: Expected) -> Option<String> {
    let kind = unexpected.split([' ', '`']).next().unwrap_or("");
    let found = match kind {
        "sequence" => return Some(LIST_HERE.into()),
        "map" => return Some(MAP_HERE.into()),
        "string" => STRING,
        "boolean" => BOOLEAN,
        "integer" | "floating" => NUMBER,
        _ => return None,
    };
    // AWS truncates a number with a fraction to an integer member; kinedge refuses it, in
    // serde's words rather than a made-up AWS message.
    if kind == "floating" && expected == Expected::Integer {
        return None;
    }
    let an = |class: &str| format!("{found} can not be converted to an {class}");
    Some(match expected {
        Expected::String => an("String"),
        Expected::Integer => an("Integer"),
        Expected::Boolean if found == STRING => {
            let text = unexpected
                .strip_prefix("string \"")
                .and_then(|t| t.strip_suffix('"'))
                .unwrap_or("");
            format!(
                "'{}' can not be converted to an Boolean",
                text.to_uppercase()
            )
        }
        Expected::Boolean => an("Boolean"),
        Expected::Blob => format!("{found} can not be converted to a Blob"),
        Expected::Timestamp => format!("{found} {TO_EPOCH}"),
        Expected::List => "Expected list or null".into(),
        Expected::Map => "Expected map or null".into(),
        Expected::Structure => "Expected null".into(),
    })
}

/// serde's message without the decoder's prefix and the position it appends.
fn bare(message: &str) -> &str {
    let message = message
        .strip_prefix("The request body is not valid JSON: ")
        .or_else(|| message.strip_prefix("The request body is not valid CBOR: "))
        .unwrap_or(message);
    match message.rfind(" at line ") {
        Some(i) => &message[..i],
        None => message,
    }
}

/// Rewords a decoding error of a Kinesis input as AWS's front words it; other errors (and
/// bodies that are not JSON at all) pass unchanged.
pub fn aws_words(error: ApiError) -> ApiError {
    if error.kind != ErrorKind::Serialization {
        return error;
    }
    let text = bare(&error.message);
    let aws = if let Some(rest) = text.strip_prefix("invalid type: ") {
        rest.rsplit_once(", expected ")
            .and_then(|(unexpected, exp)| aws_type_error(unexpected, expected(exp)?))
    } else if text.starts_with("class ") || text == LIST_HERE || text == MAP_HERE {
        Some(text.to_string())
    } else {
        None
    };
    match aws {
        Some(message) => ApiError::new(ErrorKind::Serialization, message),
        None => error,
    }
}
