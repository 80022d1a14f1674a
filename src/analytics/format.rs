//! Record formats: decoding a record's bytes into the row's physical columns (`json` reads
//! only the fields the query uses and skips the rest without building them; `csv` by position;
//! `raw` is the whole record), and encoding result rows (Flink's JSON: TIMESTAMP as
//! 'yyyy-MM-dd HH:mm:ss.SSS', DOUBLE as a number, NULL as null).

use std::fmt;
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};

use super::sql::functions::cast;
use super::sql::plan::{Field, Format};
use super::value::{format_date, format_timestamp, parse_date, parse_timestamp, SqlType, Value};

/// Decodes records of one table.
#[derive(Debug, Clone)]
pub struct Decoder {
    pub format: Format,
    pub fields: Vec<Field>,
    pub delimiter: char,
}

impl Decoder {
    /// Fills the physical columns of `row` from `data`.
    pub fn decode(&self, data: &[u8], row: &mut [Value]) -> Result<(), String> {
        match self.format {
            Format::Json => {
                let mut de = serde_json::Deserializer::from_slice(data);
                RowSeed {
                    fields: &self.fields,
                    row,
                }
                .deserialize(&mut de)
                .map_err(|e| format!("not a JSON object of this table: {e}"))?;
                de.end()
                    .map_err(|e| format!("trailing data after the JSON object: {e}"))
            }
            Format::Raw => {
                if let Some(field) = self.fields.first() {
                    row[field.slot] = Value::Str(Arc::from(String::from_utf8_lossy(data).as_ref()));
                }
                Ok(())
            }
            Format::Csv => {
                let text =
                    std::str::from_utf8(data).map_err(|_| "CSV record is not UTF-8".to_string())?;
                let text = text.trim_end_matches(['\r', '\n']);
                let cells = split_csv(text, self.delimiter);
                if cells.len() != self.fields.len() {
                    return Err(format!(
                        "CSV record has {} fields, the table {}",
                        cells.len(),
                        self.fields.len()
                    ));
                }
                for (field, cell) in self.fields.iter().zip(cells) {
                    row[field.slot] = if cell.is_empty() && field.ty != SqlType::String {
                        Value::Null
                    } else {
                        text_value(&cell, field)?
                    };
                }
                Ok(())
            }
        }
    }
}

fn split_csv(line: &str, delimiter: char) -> Vec<String> {
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cell.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            c if c == delimiter && !quoted => cells.push(std::mem::take(&mut cell)),
            c => cell.push(c),
        }
    }
    cells.push(cell);
    cells
}

fn text_value(text: &str, field: &Field) -> Result<Value, String> {
    let bad = || {
        format!(
            "field {} = '{text}' is not a {}",
            field.name,
            field.ty.name()
        )
    };
    Ok(match field.ty {
        SqlType::String => Value::Str(Arc::from(text)),
        SqlType::Timestamp | SqlType::TimestampLtz => {
            Value::Ts(parse_timestamp(text).ok_or_else(bad)?)
        }
        SqlType::Date => Value::Date(parse_date(text.trim()).ok_or_else(bad)?),
        ty => cast(Value::Str(Arc::from(text)), ty).map_err(|_| bad())?,
    })
}

struct RowSeed<'a> {
    fields: &'a [Field],
    row: &'a mut [Value],
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(index) = map.next_key_seed(KeySeed(self.fields))? {
            match index {
                Some(i) => {
                    let field = &self.fields[i];
                    self.row[field.slot] = map.next_value_seed(ValueSeed(field))?;
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

struct KeySeed<'a>(&'a [Field]);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|f| f.name == v))
    }
}

struct ValueSeed<'a>(&'a Field);

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a {} for field {}", self.0.ty.name(), self.0.name)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        match self.0.ty {
            SqlType::Boolean => Ok(Value::Bool(v)),
            SqlType::String => Ok(Value::str(if v { "true" } else { "false" })),
            _ => Err(E::custom(format!(
                "field {} is a boolean, not a {}",
                self.0.name,
                self.0.ty.name()
            ))),
        }
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        number(self.0, Value::Int(v), || v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        match i64::try_from(v) {
            Ok(i) => self.visit_i64(i),
            Err(_) => self.visit_f64(v as f64),
        }
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        if self.0.ty.is_integer() {
            return Err(E::custom(format!(
                "field {} = {v} is not an integer",
                self.0.name
            )));
        }
        number(self.0, Value::Double(v), || {
            serde_json::Number::from_f64(v)
                .map(|n| n.to_string())
                .unwrap_or_default()
        })
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        text_value(v, self.0).map_err(E::custom)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Err(de::Error::custom(format!("field {} is a JSON object; declare the nested fields you need or read the text with JSON_VALUE", self.0.name)))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Err(de::Error::custom(format!(
            "field {} is a JSON array, which is not supported",
            self.0.name
        )))
    }
}

/// A JSON number as the column's type; its text (made only for a STRING column) by `text`.
fn number<E: de::Error>(
    field: &Field,
    v: Value,
    text: impl FnOnce() -> String,
) -> Result<Value, E> {
    match field.ty {
        SqlType::Double => Ok(match v {
            Value::Int(i) => Value::Double(i as f64),
            v => v,
        }),
        SqlType::String => Ok(Value::str(&text())),
        ty if ty.is_numeric() => cast(v, ty).map_err(E::custom),
        SqlType::TimestampLtz | SqlType::Timestamp => Ok(Value::Ts(v.as_i64().unwrap_or(0))),
        ty => Err(E::custom(format!(
            "field {} is a number, not a {}",
            field.name,
            ty.name()
        ))),
    }
}

/// A value converted to a column's type, as JSON text appended to `out`.
pub fn write_json_value(out: &mut String, value: &Value, ty: SqlType) {
    let value = if ty == SqlType::String || ty == SqlType::Null {
        value.clone()
    } else {
        cast(value.clone(), ty).unwrap_or(Value::Null)
    };
    match &value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Double(d) => match serde_json::Number::from_f64(*d) {
            Some(n) => out.push_str(&n.to_string()),
            None => out.push_str("null"),
        },
        Value::Str(s) if ty == SqlType::String || ty == SqlType::Null => {
            out.push_str(&serde_json::to_string(s.as_ref()).unwrap_or_else(|_| "null".into()))
        }
        Value::Str(s) => {
            out.push_str(&serde_json::to_string(s.as_ref()).unwrap_or_else(|_| "null".into()))
        }
        Value::Ts(t) => {
            out.push('"');
            out.push_str(&format_timestamp(*t));
            out.push('"');
        }
        Value::Date(d) => {
            out.push('"');
            out.push_str(&format_date(*d));
            out.push('"');
        }
        Value::Interval(i) => out.push_str(&i.to_string()),
    }
}

/// A result row encoded in a sink's format.
pub fn encode(format: Format, columns: &[(String, SqlType)], values: &[Value]) -> String {
    match format {
        Format::Json => {
            let mut out = String::with_capacity(16 * columns.len() + 2);
            out.push('{');
            for (i, ((name, ty), value)) in columns.iter().zip(values).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(name).unwrap_or_default());
                out.push(':');
                write_json_value(&mut out, value, *ty);
            }
            out.push('}');
            out
        }
        Format::Raw => values
            .first()
            .map(|v| {
                if v.is_null() {
                    String::new()
                } else {
                    super::sql::functions::cast_to_string(v)
                }
            })
            .unwrap_or_default(),
        Format::Csv => values
            .iter()
            .map(|v| match v {
                Value::Null => String::new(),
                Value::Str(s) if s.contains([',', '"', '\n']) => {
                    format!("\"{}\"", s.replace('"', "\"\""))
                }
                v => super::sql::functions::cast_to_string(v),
            })
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// A result row as a JSON object (queries).
pub fn json_object(
    columns: &[(String, SqlType)],
    values: &[Value],
) -> serde_json::Map<String, serde_json::Value> {
    let text = encode(Format::Json, columns, values);
    match serde_json::from_str(&text) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    }
}
