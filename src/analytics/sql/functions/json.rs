//! JSON paths (`$.a.b[0]`) and JSON_VALUE.

use super::*;

pub(super) fn parse_path(path: &str) -> Result<Vec<PathStep>, String> {
    let rest = path
        .trim()
        .strip_prefix("$")
        .ok_or_else(|| format!("JSON path '{path}' must start with $"))?;
    let mut steps = Vec::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '.' => {
                let mut key = String::new();
                while let Some(&n) = chars.peek() {
                    if n == '.' || n == '[' {
                        break;
                    }
                    key.push(n);
                    chars.next();
                }
                if key.is_empty() {
                    return Err(format!("JSON path '{path}' has an empty key"));
                }
                steps.push(PathStep::Key(key));
            }
            '[' => {
                let mut inside = String::new();
                for n in chars.by_ref() {
                    if n == ']' {
                        break;
                    }
                    inside.push(n);
                }
                let inside = inside.trim();
                if let Some(key) = inside.strip_prefix('\'').and_then(|k| k.strip_suffix('\'')) {
                    steps.push(PathStep::Key(key.to_string()));
                } else {
                    let i = inside
                        .parse()
                        .map_err(|_| format!("JSON path '{path}': [{inside}] is not an index"))?;
                    steps.push(PathStep::Index(i));
                }
            }
            _ => {
                return Err(format!(
                    "JSON path '{path}' is not supported (use $.a.b[0])"
                ))
            }
        }
    }
    Ok(steps)
}

pub(super) fn json_value(doc: &str, path: &[PathStep], ty: SqlType) -> Value {
    let Ok(mut node) = serde_json::from_str::<serde_json::Value>(doc) else {
        return Value::Null;
    };
    for step in path {
        node = match (step, node) {
            (PathStep::Key(k), serde_json::Value::Object(mut map)) => match map.remove(k) {
                Some(v) => v,
                None => return Value::Null,
            },
            (PathStep::Index(i), serde_json::Value::Array(mut items)) if *i < items.len() => {
                items.swap_remove(*i)
            }
            _ => return Value::Null,
        };
    }
    let scalar = match node {
        serde_json::Value::String(s) => Value::str(&s),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) if !ty.is_approximate() => Value::Int(i),
            _ => Value::Double(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::Bool(b) => Value::Bool(b),
        _ => return Value::Null,
    };
    match ty {
        SqlType::String => match scalar {
            Value::Str(_) => scalar,
            Value::Int(i) => Value::str(&i.to_string()),
            Value::Double(d) => Value::str(
                &serde_json::Number::from_f64(d)
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
            ),
            Value::Bool(b) => Value::str(if b { "true" } else { "false" }),
            other => other,
        },
        ty => cast(scalar, ty).unwrap_or(Value::Null),
    }
}
