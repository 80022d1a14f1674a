//! The table shape of a serde struct, read from serde itself: which keys each table has, at
//! every depth. A tiny `Deserializer` answers `deserialize_struct` by recording its `fields`
//! and then visiting each of them (the idea of `serde_aux`'s `serde_introspect`, recursive).
//!
//! Rules the raw structs follow: a field that holds a struct (or `Option`/`Vec` of one) is a
//! table (an array of tables); any other field is a value; a field of type
//! `serde::de::IgnoredAny` is accepted but not listed as supported (its section refuses it with
//! a reason, e.g. a plaintext `secret`).

use serde::de::value::{Error, StrDeserializer};
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};

/// The keys of one level of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    Value,
    /// A struct: its Rust name and its fields in order.
    Table(&'static str, Vec<(&'static str, Shape)>),
    ArrayOfTables(&'static str, Vec<(&'static str, Shape)>),
    /// Accepted but not listed as supported: the section refuses it with a reason.
    Unlisted,
}

/// The shape of `T`: `Shape::Table` with its name and fields for a struct.
pub fn shape_of<T: DeserializeOwned>() -> Shape {
    let mut shape = Shape::Value;
    // The introspector offers every field once, with a value of the wrong kind at worst; an
    // error only stops the walk below the field it happened in.
    let _ = T::deserialize(Introspector { out: &mut shape });
    shape
}

struct Introspector<'a> {
    out: &'a mut Shape,
}

impl<'de> de::Deserializer<'de> for Introspector<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        *self.out = Shape::Value;
        visitor.visit_bool(false)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let mut found: Vec<(&'static str, Shape)> =
            fields.iter().map(|f| (*f, Shape::Value)).collect();
        let result = visitor.visit_map(Fields {
            fields: &mut found,
            next: 0,
        });
        *self.out = Shape::Table(name, found);
        result
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let mut element = Shape::Value;
        let result = visitor.visit_seq(OneElement {
            out: &mut element,
            done: false,
        });
        *self.out = match element {
            Shape::Table(name, fields) => Shape::ArrayOfTables(name, fields),
            _ => Shape::Value,
        };
        result
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        *self.out = Shape::Unlisted;
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct newtype_struct tuple
        tuple_struct map enum identifier
    }
}

/// Offers each field of a struct once.
struct Fields<'a> {
    fields: &'a mut Vec<(&'static str, Shape)>,
    next: usize,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some((name, _)) = self.fields.get(self.next) else {
            return Ok(None);
        };
        let key: StrDeserializer<'_, Error> = name.into_deserializer();
        seed.deserialize(key).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let index = self.next;
        self.next += 1;
        seed.deserialize(Introspector {
            out: &mut self.fields[index].1,
        })
    }
}

/// A sequence of one element, to learn the element's shape.
struct OneElement<'a> {
    out: &'a mut Shape,
    done: bool,
}

impl<'de> SeqAccess<'de> for OneElement<'_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        if self.done {
            return Ok(None);
        }
        self.done = true;
        seed.deserialize(Introspector { out: self.out }).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        a: Option<toml::Value>,
        hidden: Option<de::IgnoredAny>,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        x: Option<toml::Value>,
        inner: Option<Inner>,
        list: Option<Vec<Inner>>,
    }

    #[test]
    fn reads_the_fields_at_every_depth() {
        let inner = vec![("a", Shape::Value), ("hidden", Shape::Unlisted)];
        assert_eq!(
            shape_of::<Outer>(),
            Shape::Table(
                "Outer",
                vec![
                    ("x", Shape::Value),
                    ("inner", Shape::Table("Inner", inner.clone())),
                    ("list", Shape::ArrayOfTables("Inner", inner)),
                ]
            )
        );
    }
}
