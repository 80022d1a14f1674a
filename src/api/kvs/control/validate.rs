//! The `kinesisvideo` model's constraints on the control plane's members (lengths, patterns,
//! ranges), checked before anything is read or written, each refusal an
//! InvalidArgumentException naming the member, as AWS answers a request its model refuses.

use std::collections::BTreeMap;

use super::super::{KvsError, KvsErrorKind};

/// AWS's largest `DataRetentionInHours` (87,600 hours: 10 years).
pub const MAX_RETENTION_HOURS: u64 = 87_600;
/// Tags on one stream (AWS's limit).
pub const MAX_TAGS: usize = 50;

pub fn invalid(message: impl Into<String>) -> KvsError {
    KvsError::new(KvsErrorKind::InvalidArgument, message)
}

fn length(member: &str, value: &str, min: usize, max: usize) -> Result<(), KvsError> {
    let len = value.chars().count();
    if len < min || len > max {
        return Err(invalid(format!(
            "{member} must be {min} to {max} characters long (got {len})"
        )));
    }
    Ok(())
}

fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// `StreamName`: 1-256 of `[a-zA-Z0-9_.-]`.
pub fn stream_name(member: &str, name: &str) -> Result<(), KvsError> {
    length(member, name, 1, 256)?;
    if !name.chars().all(name_char) {
        return Err(invalid(format!(
            "{member} `{name}` may only hold letters, digits, `_`, `.` and `-`"
        )));
    }
    Ok(())
}

/// `DeviceName`: 1-128 of `[a-zA-Z0-9_.-]`.
pub fn device_name(name: &str) -> Result<(), KvsError> {
    length("DeviceName", name, 1, 128)?;
    if !name.chars().all(name_char) {
        return Err(invalid(format!(
            "DeviceName `{name}` may only hold letters, digits, `_`, `.` and `-`"
        )));
    }
    Ok(())
}

/// `MediaType`: 1-128 characters, `type/subtype` pairs separated by commas, each part of
/// `[\w\-\.\+]`.
pub fn media_type(media_type: &str) -> Result<(), KvsError> {
    length("MediaType", media_type, 1, 128)?;
    let part = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '+'))
    };
    let valid = media_type.split(',').all(|pair| {
        pair.split_once('/')
            .is_some_and(|(kind, sub)| part(kind) && part(sub))
    });
    if !valid {
        return Err(invalid(format!(
            "MediaType `{media_type}` is not a list of type/subtype (e.g. video/h264)"
        )));
    }
    Ok(())
}

/// `KmsKeyId`: 1-2048 characters.
pub fn kms_key_id(id: &str) -> Result<(), KvsError> {
    length("KmsKeyId", id, 1, 2048)
}

/// `Version` (`CurrentVersion`): 1-64 of `[a-zA-Z0-9]`.
pub fn version(version: &str) -> Result<(), KvsError> {
    length("CurrentVersion", version, 1, 64)?;
    if !version.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(invalid(format!(
            "CurrentVersion `{version}` may only hold letters and digits"
        )));
    }
    Ok(())
}

/// `DataRetentionInHours`: 0 to `MAX_RETENTION_HOURS`.
pub fn retention_hours(hours: i64) -> Result<u32, KvsError> {
    u64::try_from(hours)
        .ok()
        .filter(|&h| h <= MAX_RETENTION_HOURS)
        .and_then(|h| u32::try_from(h).ok())
        .ok_or_else(|| {
            invalid(format!(
                "DataRetentionInHours must be 0 to {MAX_RETENTION_HOURS} (got {hours})"
            ))
        })
}

/// `NextToken`: at most 1024 of `[a-zA-Z0-9+/=]`.
pub fn next_token(token: &str) -> Result<(), KvsError> {
    length("NextToken", token, 0, 1024)?;
    if !token
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))
    {
        return Err(invalid("NextToken is not a token this gateway handed out"));
    }
    Ok(())
}

/// `ResourceARN`: 1-1024 characters (its form is checked where the stream is resolved).
pub fn arn(member: &str, arn: &str) -> Result<(), KvsError> {
    length(member, arn, 1, 1024)
}

fn tag_char(c: char) -> bool {
    // \p{L}, \p{Z}, \p{N} and `_.:/=+-@`.
    c.is_alphanumeric()
        || c.is_whitespace()
        || matches!(c, '_' | '.' | ':' | '/' | '=' | '+' | '-' | '@')
}

/// A tag key: 1-128 characters of letters, spaces, digits and `_.:/=+-@`.
pub fn tag_key(key: &str) -> Result<(), KvsError> {
    length("a tag key", key, 1, 128)?;
    if !key.chars().all(tag_char) {
        return Err(invalid(format!(
            "tag key `{key}` may only hold letters, digits, spaces and `_.:/=+-@`"
        )));
    }
    Ok(())
}

/// A tag value: 0-256 characters of letters, spaces, digits and `_.:/=+-@`.
pub fn tag_value(key: &str, value: &str) -> Result<(), KvsError> {
    length(&format!("the value of tag `{key}`"), value, 0, 256)?;
    if !value.chars().all(tag_char) {
        return Err(invalid(format!(
            "the value of tag `{key}` may only hold letters, digits, spaces and `_.:/=+-@`"
        )));
    }
    Ok(())
}

/// `Tags` (a map of 1-50 valid keys and values).
pub fn tags(tags: &BTreeMap<String, String>) -> Result<(), KvsError> {
    if tags.is_empty() || tags.len() > MAX_TAGS {
        return Err(invalid(format!(
            "Tags must hold 1 to {MAX_TAGS} tags (got {})",
            tags.len()
        )));
    }
    for (key, value) in tags {
        tag_key(key)?;
        tag_value(key, value)?;
    }
    Ok(())
}

/// `TagKeyList` (1-50 valid keys).
pub fn tag_keys(keys: &[String]) -> Result<(), KvsError> {
    if keys.is_empty() || keys.len() > MAX_TAGS {
        return Err(invalid(format!(
            "TagKeyList must hold 1 to {MAX_TAGS} keys (got {})",
            keys.len()
        )));
    }
    keys.iter().try_for_each(|key| tag_key(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_checked_as_the_model_says() {
        assert!(stream_name("StreamName", "door_1.cam-2").is_ok());
        assert!(stream_name("StreamName", "").is_err());
        assert!(stream_name("StreamName", &"a".repeat(257)).is_err());
        assert!(stream_name("StreamName", "bad name").is_err());
        assert!(stream_name("StreamName", "bad/name").is_err());
        assert!(media_type("video/h264").is_ok());
        assert!(media_type("video/h264,audio/aac").is_ok());
        assert!(media_type("video").is_err());
        assert!(media_type("video/h264,").is_err());
        assert!(version("18c0v1").is_ok());
        assert!(version("v-1").is_err());
        assert_eq!(retention_hours(0).unwrap(), 0);
        assert_eq!(retention_hours(87_600).unwrap(), 87_600);
        assert!(retention_hours(-1).is_err());
        assert!(retention_hours(87_601).is_err());
        assert!(tag_key("team:owner").is_ok());
        assert!(tag_key("").is_err());
        assert!(tag_key("a#b").is_err());
        assert!(tag_value("k", "").is_ok());
        assert!(tags(&BTreeMap::new()).is_err());
        let many: BTreeMap<String, String> =
            (0..51).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(tags(&many).is_err());
        assert!(next_token("abc+/=").is_ok());
        assert!(next_token("a b").is_err());
    }
}
