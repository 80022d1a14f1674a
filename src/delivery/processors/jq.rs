//! jq expressions (through jaq: jaq-core, jaq-std, jaq-json) for the `filter` and
//! `partition_keys` processors: compiling with messages a user can act on, parsing record
//! data, and running an expression for its first output.
//!
//! The standard library is jaq's, without `env` (an expression from the Firehose API must
//! not read the gateway's environment, where secrets live; `$ENV` is not defined either).
//! `halt` does not stop the gateway: it fails the record like any runtime error.

use jaq_core::data::JustLut;
use jaq_core::load::{lex, parse, Arena, File, Loader};
use jaq_core::{compile, Compiler, Ctx, Vars};
use jaq_json::Val;

type Data = JustLut<Val>;

/// Native filters left out (see the module doc).
const LEFT_OUT: &[&str] = &["env"];

/// A compiled expression; shared by the blocking threads that run it.
pub(super) struct Jq {
    filter: jaq_core::Filter<Data>,
}

// Compiled filters hold only terms and function pointers; check that they can be shared.
const _: () = {
    const fn shared<T: Send + Sync>() {}
    shared::<Jq>();
};

/// What running an expression gave for one record.
pub(super) enum Outcome {
    /// The first output.
    Value(Val),
    /// No output at all.
    Empty,
}

impl Jq {
    /// Compiles `expression`; the error says what is wrong and where.
    pub(super) fn compile(expression: &str) -> Result<Jq, String> {
        let defs = jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs());
        let funs = jaq_core::funs()
            .chain(jaq_std::funs())
            .chain(jaq_json::funs())
            .filter(|(name, _, _)| !LEFT_OUT.contains(name));
        let loader = Loader::new(defs);
        let arena = Arena::default();
        let modules = loader
            .load(
                &arena,
                File {
                    code: expression,
                    path: (),
                },
            )
            .map_err(|errors| load_message(expression, errors))?;
        let filter = Compiler::default()
            .with_funs(funs)
            .compile(modules)
            .map_err(|errors| compile_message(expression, errors))?;
        Ok(Jq { filter })
    }

    /// Runs the expression on `input`; only the first output is computed.
    pub(super) fn first(&self, input: Val) -> Result<Outcome, String> {
        let ctx = Ctx::<Data>::new(&self.filter.lut, Vars::new([]));
        let mut outputs = self.filter.id.run((ctx, input));
        match outputs.next() {
            None => Ok(Outcome::Empty),
            Some(Ok(value)) => Ok(Outcome::Value(value)),
            Some(Err(exn)) => Err(match exn.get_err() {
                Ok(error) => truncate(&error.to_string(), 300),
                Err(_) => "the expression stopped (halt or break)".to_string(),
            }),
        }
    }
}

/// Parses a record's data as exactly one JSON value.
pub(super) fn parse_json(data: &[u8]) -> Result<Val, String> {
    jaq_json::read::parse_single(data).map_err(|e| format!("not JSON: {e}"))
}

/// A partition key value: strings as they are, numbers and booleans as JSON writes them.
pub(super) fn key_string(value: &Val) -> Option<String> {
    match value {
        Val::TStr(s) | Val::BStr(s) => Some(String::from_utf8_lossy(s).into_owned()),
        Val::Num(_) | Val::Bool(_) => Some(value.to_string()),
        Val::Null | Val::Arr(_) | Val::Obj(_) => None,
    }
}

/// A short description of a value for messages.
pub(super) fn describe(value: &Val) -> String {
    truncate(&value.to_string(), 100)
}

fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

/// Where `rest` (a tail of `code`) starts, as "at character N" (1-based), or at the end.
fn position(code: &str, rest: &str) -> String {
    let start = code.as_ptr() as usize;
    let at = rest.as_ptr() as usize;
    if at < start || at > start + code.len() {
        return String::new();
    }
    let offset = at - start;
    if offset >= code.len() {
        return " at the end".to_string();
    }
    let chars = code[..offset].chars().count() + 1;
    let near: String = code[offset..].chars().take(20).collect();
    format!(" at character {chars} (near `{near}`)")
}

fn load_message(code: &str, errors: jaq_core::load::Errors<&str, ()>) -> String {
    let mut messages = Vec::new();
    for (_, error) in errors {
        match error {
            jaq_core::load::Error::Io(io) => {
                for (path, e) in io {
                    messages.push(format!("cannot load module `{path}`: {e}"));
                }
            }
            jaq_core::load::Error::Lex(lex) => {
                for (expect, rest) in lex {
                    messages.push(format!(
                        "syntax error: expected {}{}",
                        lex_expected(&expect),
                        position(code, rest)
                    ));
                }
            }
            jaq_core::load::Error::Parse(parse) => {
                for (expect, rest) in parse {
                    messages.push(format!(
                        "syntax error: expected {}{}",
                        parse_expected(&expect),
                        position(code, rest)
                    ));
                }
            }
        }
    }
    if messages.is_empty() {
        messages.push("syntax error".to_string());
    }
    messages.join("; ")
}

fn lex_expected(expect: &lex::Expect<&str>) -> &'static str {
    match expect {
        // `as_str` panics for delimiters other than these.
        lex::Expect::Delim(d) if !matches!(*d, "(" | "[" | "{" | "\"") => "a closing delimiter",
        other => other.as_str(),
    }
}

fn parse_expected<'a>(expect: &parse::Expect<&'a str>) -> &'a str {
    expect.as_str()
}

fn compile_message(code: &str, errors: jaq_core::compile::Errors<&str, ()>) -> String {
    let mut messages = Vec::new();
    for (_, errors) in errors {
        for (name, undefined) in errors {
            let what = match undefined {
                compile::Undefined::Filter(arity) => {
                    format!("undefined function `{name}/{arity}`")
                }
                other => format!("undefined {} `{name}`", other.as_str()),
            };
            messages.push(format!("{what}{}", position(code, name)));
        }
    }
    if messages.is_empty() {
        messages.push("the expression does not compile".to_string());
    }
    messages.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(expression: &str, input: &str) -> Result<Option<String>, String> {
        let jq = Jq::compile(expression)?;
        Ok(match jq.first(parse_json(input.as_bytes())?)? {
            Outcome::Value(v) => Some(v.to_string()),
            Outcome::Empty => None,
        })
    }

    #[test]
    fn runs_expressions_with_the_standard_library() {
        assert_eq!(
            run(".a.b", r#"{"a":{"b":3}}"#).unwrap().as_deref(),
            Some("3")
        );
        assert_eq!(
            run(".xs | map(. * 2) | add", r#"{"xs":[1,2,3]}"#)
                .unwrap()
                .as_deref(),
            Some("12")
        );
        assert_eq!(
            run(r#".name | test("^sen")"#, r#"{"name":"sensor"}"#)
                .unwrap()
                .as_deref(),
            Some("true")
        );
        assert_eq!(run("empty", "1").unwrap(), None);
        assert_eq!(run(".[]", "[7,8]").unwrap().as_deref(), Some("7"));
    }

    #[test]
    fn messages_say_what_is_wrong() {
        let e = Jq::compile(".a |").err().unwrap();
        assert!(e.contains("syntax error"), "{e}");
        let e = Jq::compile("(.a").err().unwrap();
        assert!(e.contains("syntax error"), "{e}");
        let e = Jq::compile(".a | nosuchfn(1)").err().unwrap();
        assert!(e.contains("undefined function `nosuchfn/1`"), "{e}");
        assert!(e.contains("character 6"), "{e}");
        let e = Jq::compile("$nope").err().unwrap();
        assert!(e.contains("undefined variable"), "{e}");
        // The environment is not reachable.
        assert!(Jq::compile("env").is_err());
        assert!(Jq::compile("$ENV").is_err());
    }

    #[test]
    fn runtime_errors_and_halt_fail_instead_of_stopping() {
        let e = run(".a + 1", r#"{"a":"x"}"#).err().unwrap();
        assert!(e.contains("cannot") || e.contains("add"), "{e}");
        assert!(run("halt", "1").is_err());
        assert!(run("error(\"boom\")", "1").err().unwrap().contains("boom"));
    }

    #[test]
    fn key_strings() {
        let v = |s: &str| parse_json(s.as_bytes()).unwrap();
        assert_eq!(key_string(&v(r#""a b""#)).as_deref(), Some("a b"));
        assert_eq!(key_string(&v("42")).as_deref(), Some("42"));
        assert_eq!(key_string(&v("21.5")).as_deref(), Some("21.5"));
        assert_eq!(key_string(&v("true")).as_deref(), Some("true"));
        assert_eq!(key_string(&v("null")), None);
        assert_eq!(key_string(&v("[1]")), None);
        assert!(parse_json(b"{\"a\":").is_err());
        assert!(parse_json(b"1 2").is_err());
    }
}
