//! How a publish that is not stored is answered.
//!
//! Owns the mapping from a commit's result to what the device is told. Invariants: a
//! publish is acknowledged as stored only for `Committed::Ok`; every refusal or failure
//! caused by storage (quota, disk guard, disk full, write error) is, for an MQTT 5 device,
//! PUBACK/PUBREC 0x97 "Quota exceeded" with a reason string saying why; MQTT 3.1.1 has no
//! negative PUBACK, so the connection is closed without one (the device resends later).
//! A record the store refuses as invalid (over 1 MiB of data and key) gets 0x99 "Payload
//! format invalid" instead: resending it cannot help.

use rumqttd::protocol::{
    Packet, PubAck, PubAckProperties, PubAckReason, PubRec, PubRecProperties, PubRecReason,
};
use tokio::sync::oneshot;

use super::codec::{PublishHeader, Version};
use crate::storage::{AppendOutcome, StoreError};

/// The result of waiting for a commit (`None`: the publish had no commit, not routed).
pub(super) type CommitResult =
    Option<Result<Result<Vec<AppendOutcome>, StoreError>, oneshot::error::RecvError>>;

/// How a finished commit went, for the acknowledgement.
#[derive(Debug)]
pub(super) enum Committed {
    /// Stored (or not routed): acknowledge and forward.
    Ok,
    /// The stream refused the record (quota, disk guard).
    Refused(String),
    /// Storage failed for the whole group.
    Failed(String),
    /// The store refused the record itself (too large): resending cannot help.
    Invalid(String),
}

pub(super) fn committed(result: CommitResult) -> Committed {
    match result {
        None => Committed::Ok,
        Some(Ok(Ok(outcomes))) => match outcomes.into_iter().next() {
            Some(Ok(_)) => Committed::Ok,
            Some(Err(rejected)) => Committed::Refused(rejected.to_string()),
            None => Committed::Failed("no outcome".into()),
        },
        Some(Ok(Err(StoreError::InvalidRecord(why)))) => Committed::Invalid(why),
        Some(Ok(Err(e))) => Committed::Failed(e.to_string()),
        Some(Err(_)) => Committed::Failed("the store stopped".into()),
    }
}

/// The reason code and reason string a device gets when its publish was not stored, or
/// `None` when it was. This is the one place that maps storage outcomes to MQTT: MQTT 5 has
/// no "storage failed" code, and 0x97 (Quota exceeded, MQTT 5 §3.4.2.1) is the one that
/// tells a device to keep the message and retry later rather than drop it as bad.
pub(super) fn storage_answer(committed: &Committed) -> Option<(PubAckReason, String)> {
    match committed {
        Committed::Ok => None,
        Committed::Refused(why) => Some((PubAckReason::QuotaExceeded, why.clone())),
        Committed::Failed(why) => Some((
            PubAckReason::QuotaExceeded,
            format!("The record could not be stored ({why}); retry later."),
        )),
        Committed::Invalid(why) => Some((PubAckReason::PayloadFormatInvalid, why.clone())),
    }
}

/// What to do with a publish that is refused.
#[derive(Debug)]
pub(super) enum Refusal {
    /// Send this PUBACK/PUBREC (MQTT 5, QoS 1/2). Boxed: a `Packet` is large.
    Answer(Box<Packet>),
    /// Nothing to send (MQTT 5, QoS 0).
    Drop,
    /// MQTT 3.1.1: no negative acknowledgement exists; close the connection without one.
    Close,
}

/// The refusal of the publish `header` with `reason` (and, MQTT 5, a reason string).
pub(super) fn refusal(
    version: Version,
    header: PublishHeader,
    reason: PubAckReason,
    text: Option<String>,
) -> Refusal {
    match (version, header.qos) {
        (Version::V311, _) => Refusal::Close,
        (Version::V5, 0) => Refusal::Drop,
        (Version::V5, 1) => Refusal::Answer(Box::new(Packet::PubAck(
            PubAck {
                pkid: header.pkid,
                reason,
            },
            text.map(|reason_string| PubAckProperties {
                reason_string: Some(reason_string),
                user_properties: Vec::new(),
            }),
        ))),
        (Version::V5, _) => Refusal::Answer(Box::new(Packet::PubRec(
            PubRec {
                pkid: header.pkid,
                reason: match reason {
                    PubAckReason::NotAuthorized => PubRecReason::NotAuthorized,
                    PubAckReason::TopicNameInvalid => PubRecReason::TopicNameInvalid,
                    PubAckReason::QuotaExceeded => PubRecReason::QuotaExceeded,
                    PubAckReason::PacketIdentifierInUse => PubRecReason::PacketIdentifierInUse,
                    PubAckReason::PayloadFormatInvalid => PubRecReason::PayloadFormatInvalid,
                    _ => PubRecReason::UnspecifiedError,
                },
            },
            text.map(|reason_string| PubRecProperties {
                reason_string: Some(reason_string),
                user_properties: Vec::new(),
            }),
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{FaultKind, Rejected, StorageFault};
    use bytes::BytesMut;

    use super::super::codec::Codec;

    fn answer_bytes(version: Version, qos: u8, result: CommitResult) -> Option<Vec<u8>> {
        let c = committed(result);
        let (reason, text) = storage_answer(&c).expect("a refusal");
        match refusal(version, PublishHeader { qos, pkid: 9 }, reason, Some(text)) {
            Refusal::Answer(packet) => {
                let mut out = BytesMut::new();
                Codec::new(version).write(*packet, &mut out).unwrap();
                Some(out.to_vec())
            }
            Refusal::Drop => Some(Vec::new()),
            Refusal::Close => None,
        }
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn storage_failures_are_quota_exceeded_with_a_reason_string() {
        let disk_full = || {
            Some(Ok(Ok(vec![Err(Rejected::DiskFull {
                free: 10,
                min_free: 100,
            })])))
        };
        let write_error = || Some(Ok(Err(no_space())));
        for (qos, kind) in [(1u8, 0x40u8), (2, 0x50)] {
            for result in [disk_full(), write_error()] {
                let bytes = answer_bytes(Version::V5, qos, result).unwrap();
                // PUBACK/PUBREC, packet id 9, reason 0x97.
                assert_eq!(bytes[0], kind, "{bytes:?}");
                // After the remaining length (a variable byte integer).
                let body = 1 + bytes[1..].iter().position(|b| b & 0x80 == 0).unwrap() + 1;
                assert_eq!(&bytes[body..body + 3], &[0x00, 0x09, 0x97], "{bytes:?}");
                // Properties (length, one byte here), then 0x1F: the reason string.
                assert_eq!(bytes[body + 4], 0x1F, "{bytes:?}");
            }
        }
        let bytes = answer_bytes(Version::V5, 1, write_error()).unwrap();
        assert!(contains(&bytes, b"No space left on device"));
        let bytes = answer_bytes(Version::V5, 1, disk_full()).unwrap();
        assert!(contains(&bytes, b"min_free_disk"));
    }

    #[test]
    fn v311_storage_failures_close_without_puback() {
        let write_error = Some(Ok(Err(no_space())));
        assert!(answer_bytes(Version::V311, 1, write_error).is_none());
        let stopped: CommitResult = {
            let (tx, rx) = oneshot::channel::<Result<Vec<AppendOutcome>, StoreError>>();
            drop(tx);
            Some(futures_util::FutureExt::now_or_never(rx).unwrap())
        };
        assert!(answer_bytes(Version::V311, 2, stopped).is_none());
    }

    fn no_space() -> StoreError {
        StoreError::Storage(StorageFault::new(
            FaultKind::NoSpace,
            "commit",
            std::io::Error::from_raw_os_error(28),
        ))
    }

    #[test]
    fn a_record_too_large_is_payload_format_invalid() {
        let too_large = Some(Ok(Err(StoreError::InvalidRecord(
            "Record 0 has 1048577 bytes".into(),
        ))));
        let bytes = answer_bytes(Version::V5, 1, too_large).unwrap();
        let body = 1 + bytes[1..].iter().position(|b| b & 0x80 == 0).unwrap() + 1;
        assert_eq!(&bytes[body..body + 3], &[0x00, 0x09, 0x99], "{bytes:?}");
        assert!(contains(&bytes, b"1048577 bytes"));
    }

    #[test]
    fn stored_is_not_refused() {
        assert!(storage_answer(&committed(None)).is_none());
    }
}
