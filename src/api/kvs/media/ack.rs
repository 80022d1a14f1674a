//! PutMedia's acknowledgements, as AWS streams them back while the body is still arriving:
//! one JSON object per line, `{"EventType":"BUFFERING"|"RECEIVED"|"PERSISTED"|"ERROR"|"IDLE",
//! "FragmentTimecode":..., "FragmentNumber":"...", "ErrorId":..., "ErrorCode":"..."}`, with
//! the error ids and names of AWS's PutMedia documentation (the producer SDK's
//! `SERVICE_CALL_RESULT_*` values).

use serde::Serialize;

use crate::video::mkv::remux::RemuxError;
use crate::video::mkv::MkvError;

/// AWS's PutMedia error ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckError {
    StreamReadError,
    MaxFragmentSizeReached,
    MaxFragmentDurationReached,
    MaxConnectionDurationReached,
    FragmentTimecodeLesserThanPrevious,
    MoreThanAllowedTracksFound,
    InvalidMkvData,
    StreamNotActive,
    InternalError,
}

impl AckError {
    pub fn id(self) -> u32 {
        use AckError::*;
        match self {
            StreamReadError => 4000,
            MaxFragmentSizeReached => 4001,
            MaxFragmentDurationReached => 4002,
            MaxConnectionDurationReached => 4003,
            FragmentTimecodeLesserThanPrevious => 4004,
            MoreThanAllowedTracksFound => 4005,
            InvalidMkvData => 4006,
            StreamNotActive => 4008,
            InternalError => 5000,
        }
    }

    pub fn code(self) -> &'static str {
        use AckError::*;
        match self {
            StreamReadError => "STREAM_READ_ERROR",
            MaxFragmentSizeReached => "MAX_FRAGMENT_SIZE_REACHED",
            MaxFragmentDurationReached => "MAX_FRAGMENT_DURATION_REACHED",
            MaxConnectionDurationReached => "MAX_CONNECTION_DURATION_REACHED",
            FragmentTimecodeLesserThanPrevious => "FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS",
            MoreThanAllowedTracksFound => "MORE_THAN_ALLOWED_TRACKS_FOUND",
            InvalidMkvData => "INVALID_MKV_DATA",
            StreamNotActive => "STREAM_NOT_ACTIVE",
            InternalError => "INTERNAL_ERROR",
        }
    }
}

impl From<&RemuxError> for AckError {
    fn from(error: &RemuxError) -> AckError {
        match error {
            RemuxError::Mkv(MkvError::TooLarge { .. }) | RemuxError::FragmentTooLarge { .. } => {
                AckError::MaxFragmentSizeReached
            }
            RemuxError::Mkv(MkvError::TooManyTracks { .. }) => AckError::MoreThanAllowedTracksFound,
            RemuxError::FragmentTooLong { .. } => AckError::MaxFragmentDurationReached,
            RemuxError::TimecodeLessThanPrevious { .. } => {
                AckError::FragmentTimecodeLesserThanPrevious
            }
            RemuxError::Mkv(MkvError::Invalid { .. })
            | RemuxError::NoKeyframe
            | RemuxError::CodecChanged { .. }
            | RemuxError::NoVideoTrack
            | RemuxError::BadCodecPrivate(_)
            | RemuxError::NoPictureSize
            | RemuxError::FrameBeforeTracks => AckError::InvalidMkvData,
        }
    }
}

/// One acknowledgement event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ack {
    pub event_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fragment_timecode: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fragment_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<&'static str>,
}

impl Ack {
    fn event(event_type: &'static str, timecode: Option<u64>) -> Ack {
        Ack {
            event_type,
            fragment_timecode: timecode,
            fragment_number: None,
            error_id: None,
            error_code: None,
        }
    }

    pub fn buffering(timecode: u64) -> Ack {
        Ack::event("BUFFERING", Some(timecode))
    }

    pub fn received(timecode: u64) -> Ack {
        Ack::event("RECEIVED", Some(timecode))
    }

    pub fn persisted(timecode: u64, number: u64) -> Ack {
        Ack {
            fragment_number: Some(number.to_string()),
            ..Ack::event("PERSISTED", Some(timecode))
        }
    }

    pub fn idle() -> Ack {
        Ack::event("IDLE", None)
    }

    pub fn error(error: AckError, timecode: Option<u64>) -> Ack {
        Ack {
            error_id: Some(error.id()),
            error_code: Some(error.code()),
            ..Ack::event("ERROR", timecode)
        }
    }

    /// The event as sent: its JSON and a newline.
    pub fn line(&self) -> bytes::Bytes {
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        bytes::Bytes::from(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_json_lines_as_aws_sends_them() {
        assert_eq!(
            &Ack::persisted(1200, 7).line()[..],
            b"{\"EventType\":\"PERSISTED\",\"FragmentTimecode\":1200,\"FragmentNumber\":\"7\"}\n"
        );
        assert_eq!(
            &Ack::error(AckError::InvalidMkvData, None).line()[..],
            b"{\"EventType\":\"ERROR\",\"ErrorId\":4006,\"ErrorCode\":\"INVALID_MKV_DATA\"}\n"
        );
        assert_eq!(&Ack::idle().line()[..], b"{\"EventType\":\"IDLE\"}\n");
    }
}
