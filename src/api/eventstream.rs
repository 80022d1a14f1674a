//! The AWS event-stream framing (`application/vnd.amazon.eventstream`) that SubscribeToShard
//! answers with: each message is a prelude (total length u32, headers length u32, CRC32 of
//! those 8 bytes), the headers (name length u8, name, type 7 = string, value length u16,
//! value), the payload and a CRC32 of everything before it, all big-endian.
//!
//! The framing itself is `aws-smithy-eventstream`'s, the implementation AWS's Rust SDK reads
//! these streams with: CRCs and lengths are not written by hand here. This module only
//! builds the messages Kinesis sends: events (`:message-type` event, `:event-type`,
//! `:content-type`) and exceptions (`:message-type` exception, `:exception-type`).
//!
//! Invariant: a frame is complete and self-checking; a frame that cannot be written (a
//! header or payload too long for the format) is an error, never a truncated frame.

use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::{Bytes, BytesMut};

/// The HTTP content type of an event-stream response.
pub const CONTENT_TYPE: &str = "application/vnd.amazon.eventstream";

/// Prelude (12 bytes) and message CRC (4): what a frame adds to its headers and payload.
pub const FRAME_OVERHEAD: usize = 16;

/// A message that the framing refused (a header or payload beyond the format's lengths).
#[derive(Debug, thiserror::Error)]
#[error("cannot frame an event-stream message: {source}")]
pub struct FrameError {
    #[source]
    source: aws_smithy_eventstream::error::Error,
}

/// An event: `:event-type` names it (e.g. `initial-response`, `SubscribeToShardEvent`), the
/// payload is encoded as `content_type` says.
pub fn event(
    event_type: &str,
    content_type: &str,
    payload: impl Into<Bytes>,
) -> Result<Bytes, FrameError> {
    frame(
        vec![
            string_header(":event-type", event_type),
            string_header(":content-type", content_type),
            string_header(":message-type", "event"),
        ],
        payload,
    )
}

/// An exception inside the stream (the HTTP status was already 200): `:exception-type` is
/// the AWS error type, the payload `{"message": ...}` in the request's encoding.
pub fn exception(
    exception_type: &str,
    content_type: &str,
    payload: impl Into<Bytes>,
) -> Result<Bytes, FrameError> {
    frame(
        vec![
            string_header(":exception-type", exception_type),
            string_header(":content-type", content_type),
            string_header(":message-type", "exception"),
        ],
        payload,
    )
}

fn string_header(name: &str, value: &str) -> Header {
    Header::new(
        name.to_string(),
        HeaderValue::String(value.to_string().into()),
    )
}

fn frame(headers: Vec<Header>, payload: impl Into<Bytes>) -> Result<Bytes, FrameError> {
    let payload = payload.into();
    let header_bytes: usize = headers
        .iter()
        .map(|h| {
            4 + h.name().as_bytes().len() + h.value().as_string().map_or(0, |s| s.as_bytes().len())
        })
        .sum();
    let mut out = BytesMut::with_capacity(FRAME_OVERHEAD + header_bytes + payload.len());
    let message = Message::new_from_parts(headers, payload);
    aws_smithy_eventstream::frame::write_message_to(&message, &mut out)
        .map_err(|source| FrameError { source })?;
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crc(bytes: &[u8]) -> u32 {
        crc32fast::hash(bytes)
    }

    /// AWS's event-stream test vectors (aws-c-event-stream, `encoded/positive`): the empty
    /// message, a payload without headers, and a payload with one string header.
    #[test]
    fn aws_test_vectors() {
        let empty = frame(Vec::new(), &b""[..]).unwrap();
        assert_eq!(
            &empty[..],
            &[0, 0, 0, 0x10, 0, 0, 0, 0, 0x05, 0xc2, 0x48, 0xeb, 0x7d, 0x98, 0xc8, 0xff]
        );
        let payload = &b"{'foo':'bar'}"[..];
        let no_headers = frame(Vec::new(), payload).unwrap();
        assert_eq!(
            &no_headers[..12],
            &[0, 0, 0, 0x1d, 0, 0, 0, 0, 0xfd, 0x52, 0x8c, 0x5a]
        );
        assert_eq!(&no_headers[12..25], payload);
        assert_eq!(&no_headers[25..], &[0xc3, 0x65, 0x39, 0x36]);
        let one_header = frame(
            vec![string_header("content-type", "application/json")],
            payload,
        )
        .unwrap();
        assert_eq!(
            &one_header[..12],
            &[0, 0, 0, 0x3d, 0, 0, 0, 0x20, 0x07, 0xfd, 0x83, 0x96]
        );
        assert_eq!(
            &one_header[one_header.len() - 4..],
            &[0x8d, 0x9c, 0x08, 0xb1]
        );
    }

    #[test]
    fn an_event_is_laid_out_as_the_spec_says() {
        let bytes = event("SubscribeToShardEvent", "application/json", &b"{}"[..]).unwrap();
        let total = u32::from_be_bytes(bytes[0..4].try_into().unwrap()) as usize;
        let headers_len = u32::from_be_bytes(bytes[4..8].try_into().unwrap()) as usize;
        assert_eq!(total, bytes.len());
        assert_eq!(
            u32::from_be_bytes(bytes[8..12].try_into().unwrap()),
            crc(&bytes[..8])
        );
        assert_eq!(
            u32::from_be_bytes(bytes[total - 4..].try_into().unwrap()),
            crc(&bytes[..total - 4])
        );
        // Headers, by hand: name length, name, type 7 (string), value length, value.
        let mut expected = Vec::new();
        for (name, value) in [
            (":event-type", "SubscribeToShardEvent"),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ] {
            expected.push(name.len() as u8);
            expected.extend_from_slice(name.as_bytes());
            expected.push(7);
            expected.extend_from_slice(&(value.len() as u16).to_be_bytes());
            expected.extend_from_slice(value.as_bytes());
        }
        assert_eq!(headers_len, expected.len());
        assert_eq!(&bytes[12..12 + headers_len], &expected[..]);
        assert_eq!(&bytes[12 + headers_len..total - 4], b"{}");
    }

    #[test]
    fn exceptions_round_trip_through_the_sdk_decoder() {
        let bytes = exception(
            "ResourceInUseException",
            "application/x-amz-cbor-1.1",
            &b"\xa0"[..],
        )
        .unwrap();
        let message = aws_smithy_eventstream::frame::read_message_from(bytes).unwrap();
        let header = |name: &str| {
            message
                .headers()
                .iter()
                .find(|h| h.name().as_str() == name)
                .and_then(|h| h.value().as_string().ok())
                .map(|s| s.as_str().to_string())
        };
        assert_eq!(header(":message-type").as_deref(), Some("exception"));
        assert_eq!(
            header(":exception-type").as_deref(),
            Some("ResourceInUseException")
        );
        assert_eq!(message.payload().as_ref(), b"\xa0");
    }

    #[test]
    fn a_corrupted_frame_fails_its_crc() {
        let mut bytes = event("initial-response", "application/json", &b"{}"[..])
            .unwrap()
            .to_vec();
        let last = bytes.len() - 6;
        bytes[last] ^= 1;
        assert!(aws_smithy_eventstream::frame::read_message_from(&bytes[..]).is_err());
    }
}
