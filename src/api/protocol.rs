//! The AWS JSON 1.1 and CBOR 1.1 wire protocols: content types, request decoding, response
//! encoding, and the two types whose form differs between them (blobs and timestamps).
//!
//! In JSON a blob is base64 text and a timestamp is epoch seconds (a float); in CBOR a blob is
//! a byte string and a timestamp is epoch milliseconds (tag 1 + integer, as the Java SDK and
//! KCL send and expect). Serde's `is_human_readable` tells the two apart.

use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use serde::de::{self, DeserializeOwned, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::{ApiError, ErrorKind};

pub const JSON_1_1: &str = "application/x-amz-json-1.1";
pub const CBOR_1_1: &str = "application/x-amz-cbor-1.1";

/// Request bodies and answers of at least this size are decoded and encoded on the blocking
/// pool rather than on a runtime worker; smaller ones take less time than the hand-over
/// (docs/performance.md).
pub const OFF_THREAD_BYTES: usize = 256 * 1024;

/// How a request was encoded; the response uses the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Json,
    Cbor,
}

impl Wire {
    /// The wire of a request from its Content-Type. A request without one is refused, as
    /// AWS refuses it (its front answers `UnknownOperationException` in XML; kinedge answers
    /// `SerializationException` in JSON, as AWS's Smithy server framework does, so that SDKs
    /// can read it).
    pub fn from_headers(headers: &HeaderMap) -> Result<Wire, ApiError> {
        let Some(value) = headers.get(header::CONTENT_TYPE) else {
            return Err(ApiError::new(
                ErrorKind::Serialization,
                format!("The request has no Content-Type header: send {JSON_1_1} or {CBOR_1_1}."),
            ));
        };
        let Ok(text) = value.to_str() else {
            return Err(ApiError::new(
                ErrorKind::Serialization,
                format!("The Content-Type header is not visible ASCII text: send {JSON_1_1} or {CBOR_1_1}."),
            ));
        };
        let media = text
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/x-amz-json-1.1" | "application/x-amz-json-1.0" | "application/json" => {
                Ok(Wire::Json)
            }
            "application/x-amz-cbor-1.1" | "application/cbor" => Ok(Wire::Cbor),
            _ => Err(ApiError::new(
                ErrorKind::Serialization,
                format!(
                    "Unsupported Content-Type '{}': use {JSON_1_1} or {CBOR_1_1}.",
                    text.chars().take(100).collect::<String>()
                ),
            )),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Wire::Json => JSON_1_1,
            Wire::Cbor => CBOR_1_1,
        }
    }

    /// Decodes a request body. An empty body is an empty input.
    pub fn decode<T: DeserializeOwned>(self, body: &[u8]) -> Result<T, ApiError> {
        let malformed = |what: String| {
            ApiError::new(
                ErrorKind::Serialization,
                format!("The request body is not valid {}: {what}", self.name()),
            )
        };
        match self {
            Wire::Json => {
                let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
                    b"{}"
                } else {
                    body
                };
                serde_json::from_slice(body).map_err(|e| malformed(e.to_string()))
            }
            Wire::Cbor => {
                if body.is_empty() {
                    // An empty CBOR input is an empty map.
                    return ciborium::from_reader(&[0xa0u8][..])
                        .map_err(|e| malformed(e.to_string()));
                }
                ciborium::from_reader(body).map_err(|e| malformed(e.to_string()))
            }
        }
    }

    /// [`Wire::decode`] for an owned body: one of [`OFF_THREAD_BYTES`] or more is decoded on
    /// the blocking pool, so that a multi-MiB base64 or CBOR body does not hold a runtime
    /// worker for milliseconds.
    pub async fn decode_owned<T: DeserializeOwned + Send + 'static>(
        self,
        body: Bytes,
    ) -> Result<T, ApiError> {
        if body.len() < OFF_THREAD_BYTES {
            return self.decode(&body);
        }
        tokio::task::spawn_blocking(move || self.decode(&body))
            .await
            .map_err(|e| {
                ApiError::new(
                    ErrorKind::InternalFailure,
                    format!("decoding the request failed: {e}"),
                )
            })?
    }

    fn name(self) -> &'static str {
        match self {
            Wire::Json => "JSON",
            Wire::Cbor => "CBOR",
        }
    }

    pub fn encode<T: Serialize>(self, value: &T) -> Result<Vec<u8>, ApiError> {
        self.encode_with_capacity(value, 256)
    }

    /// Encodes into a buffer of `capacity` bytes to start with, so that a large answer is
    /// not copied again and again as the buffer grows.
    pub fn encode_with_capacity<T: Serialize>(
        self,
        value: &T,
        capacity: usize,
    ) -> Result<Vec<u8>, ApiError> {
        let failed = |e: String| {
            ApiError::new(
                ErrorKind::InternalFailure,
                format!("cannot encode the response: {e}"),
            )
        };
        match self {
            Wire::Json => {
                let mut out = Vec::with_capacity(capacity);
                serde_json::to_writer(&mut out, value).map_err(|e| failed(e.to_string()))?;
                Ok(out)
            }
            Wire::Cbor => {
                let mut out = Vec::with_capacity(capacity);
                ciborium::into_writer(value, &mut out).map_err(|e| failed(e.to_string()))?;
                Ok(out)
            }
        }
    }

    /// A 200 response carrying `value`.
    pub fn ok<T: Serialize>(self, value: &T) -> Result<Response, ApiError> {
        let body = self.encode(value)?;
        Ok(self.response(StatusCode::OK, body))
    }

    /// A 200 response carrying `value`, encoded into a buffer of `capacity` bytes (its
    /// expected size): on the blocking pool from [`OFF_THREAD_BYTES`] on.
    pub async fn ok_large<T: Serialize + Send + 'static>(
        self,
        value: T,
        capacity: usize,
    ) -> Result<Response, ApiError> {
        if capacity < OFF_THREAD_BYTES {
            return self.ok_with_capacity(&value, capacity);
        }
        tokio::task::spawn_blocking(move || self.ok_with_capacity(&value, capacity))
            .await
            .map_err(|e| {
                ApiError::new(
                    ErrorKind::InternalFailure,
                    format!("encoding the response failed: {e}"),
                )
            })?
    }

    /// A 200 response carrying `value`, encoded into a buffer of `capacity` bytes.
    pub fn ok_with_capacity<T: Serialize>(
        self,
        value: &T,
        capacity: usize,
    ) -> Result<Response, ApiError> {
        let body = self.encode_with_capacity(value, capacity)?;
        Ok(self.response(StatusCode::OK, body))
    }

    /// A 200 response without a body, for operations that have no output.
    pub fn empty(self) -> Response {
        self.response(StatusCode::OK, Vec::new())
    }

    pub fn error(self, error: &ApiError) -> Response {
        #[derive(Serialize)]
        struct Body<'a> {
            __type: &'a str,
            message: &'a str,
        }
        let body = Body {
            __type: error.kind.aws_type(),
            message: &error.message,
        };
        let bytes = self.encode(&body).unwrap_or_default();
        self.response(error.kind.status(), bytes)
    }

    fn response(self, status: StatusCode, body: Vec<u8>) -> Response {
        let mut response = (status, Bytes::from(body)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type()),
        );
        response
    }
}

/// A binary value: base64 in JSON, a byte string in CBOR.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Blob(pub Bytes);

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&STANDARD.encode(&self.0))
        } else {
            serializer.serialize_bytes(&self.0)
        }
    }
}

/// A borrowed binary value, serialized like [`Blob`].
pub struct BlobRef<'a>(pub &'a [u8]);

impl Serialize for BlobRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(&base64::display::Base64Display::new(self.0, &STANDARD))
        } else {
            serializer.serialize_bytes(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BlobVisitor;
        impl<'de> Visitor<'de> for BlobVisitor {
            type Value = Blob;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("base64 text or a byte string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Blob, E> {
                STANDARD
                    .decode(v.as_bytes())
                    .map(|b| Blob(Bytes::from(b)))
                    .map_err(|e| E::custom(format!("blob is not valid base64: {e}")))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Blob, E> {
                Ok(Blob(Bytes::copy_from_slice(v)))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Blob, E> {
                Ok(Blob(Bytes::from(v)))
            }
        }
        deserializer.deserialize_any(BlobVisitor)
    }
}

/// A point in time in epoch milliseconds: seconds (float) in JSON, milliseconds in CBOR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp(pub u64);

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_f64(self.0 as f64 / 1000.0)
        } else {
            ciborium::tag::Required::<u64, 1>(self.0).serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TimestampVisitor {
            seconds: bool,
        }
        impl TimestampVisitor {
            fn scale<E: de::Error>(&self, v: f64) -> Result<Timestamp, E> {
                let ms = if self.seconds { v * 1000.0 } else { v };
                if !ms.is_finite() || ms < 0.0 {
                    return Err(E::custom("timestamp must be a non-negative number"));
                }
                Ok(Timestamp(ms.round() as u64))
            }
        }
        impl<'de> Visitor<'de> for TimestampVisitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an epoch timestamp")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Timestamp, E> {
                self.scale(v)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
                self.scale(v as f64)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
                self.scale(v as f64)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                // AWS also takes a number in a string.
                let n: f64 = v
                    .trim()
                    .parse()
                    .map_err(|_| E::custom(format!("timestamp '{v}' is not an epoch number")))?;
                self.scale(n)
            }
        }
        if deserializer.is_human_readable() {
            return deserializer.deserialize_any(TimestampVisitor { seconds: true });
        }
        // CBOR: an integer or float of milliseconds, possibly wrapped in tag 1.
        let mut value = ciborium::Value::deserialize(deserializer)?;
        while let ciborium::Value::Tag(_, inner) = value {
            value = *inner;
        }
        let millis = TimestampVisitor { seconds: false };
        match value {
            ciborium::Value::Integer(i) => {
                let n = i128::from(i);
                millis.scale(n as f64)
            }
            ciborium::Value::Float(f) => millis.scale(f),
            ciborium::Value::Text(t) => millis.visit_str(&t),
            _ => Err(de::Error::custom(
                "timestamp must be a number of epoch milliseconds",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    #[serde(rename_all = "PascalCase")]
    struct Sample {
        data: Blob,
        at: Timestamp,
    }

    #[test]
    fn json_uses_base64_and_seconds() {
        let s = Sample {
            data: Blob(Bytes::from_static(b"hi")),
            at: Timestamp(1_500),
        };
        let json = String::from_utf8(Wire::Json.encode(&s).unwrap()).unwrap();
        assert_eq!(json, r#"{"Data":"aGk=","At":1.5}"#);
        let back: Sample = Wire::Json.decode(json.as_bytes()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn cbor_uses_bytes_and_millis() {
        let s = Sample {
            data: Blob(Bytes::from_static(&[0, 1, 2])),
            at: Timestamp(1_500),
        };
        let bytes = Wire::Cbor.encode(&s).unwrap();
        let value: ciborium::Value = ciborium::from_reader(bytes.as_slice()).unwrap();
        let map = value.as_map().unwrap();
        assert_eq!(map[0].1, ciborium::Value::Bytes(vec![0, 1, 2]));
        assert_eq!(
            map[1].1,
            ciborium::Value::Tag(1, Box::new(ciborium::Value::Integer(1500.into())))
        );
        let back: Sample = Wire::Cbor.decode(&bytes).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn malformed_bodies_are_serialization_errors() {
        let e = Wire::Json.decode::<Sample>(b"{not json").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Serialization);
        let e = Wire::Cbor.decode::<Sample>(&[0xff, 0x00]).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Serialization);
        let e = Wire::Json
            .decode::<Sample>(br#"{"Data":"***","At":1}"#)
            .unwrap_err();
        assert!(e.message.contains("base64"), "{}", e.message);
    }

    #[test]
    fn content_types() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-amz-cbor-1.1"),
        );
        assert_eq!(Wire::from_headers(&h).unwrap(), Wire::Cbor);
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let e = Wire::from_headers(&h).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Serialization);
        assert!(e.message.contains("text/plain"));
        let e = Wire::from_headers(&HeaderMap::new()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Serialization);
        assert!(e.message.contains("no Content-Type"), "{}", e.message);
    }
}
