//! The limits Kinesis puts on names, keys and record sizes, in one place.

/// Largest record: data plus partition key (1 MiB).
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// PutRecords: at most this many records ...
pub const MAX_PUT_RECORDS: usize = 500;
/// ... and this many bytes of data and keys in all (5 MiB).
pub const MAX_PUT_RECORDS_BYTES: usize = 5 * 1024 * 1024;
/// GetRecords: Limit range and the most bytes one call returns (10 MiB).
pub const MAX_GET_RECORDS: u32 = 10_000;
pub const MAX_GET_RECORDS_BYTES: usize = 10 * 1024 * 1024;
pub const MAX_PARTITION_KEY_CHARS: usize = 256;
pub const MAX_STREAM_NAME_CHARS: usize = 128;

/// Stream names: 1-128 characters of `[a-zA-Z0-9_.-]`.
pub fn is_valid_stream_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_STREAM_NAME_CHARS
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Streams the gateway keeps for itself (a direct-put delivery stream's buffer is
/// `firehose:<name>`): their names are not valid Kinesis names, so the Kinesis API cannot
/// reach them, and listings leave them out.
pub fn is_internal_stream(name: &str) -> bool {
    name.contains(':')
}

/// Partition keys: 1-256 Unicode characters.
pub fn partition_key_chars(key: &str) -> usize {
    key.chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names() {
        assert!(is_valid_stream_name("telemetry_1.a-b"));
        assert!(is_valid_stream_name(&"a".repeat(128)));
        assert!(!is_valid_stream_name(&"a".repeat(129)));
        assert!(!is_valid_stream_name(""));
        assert!(!is_valid_stream_name("a b"));
        assert!(!is_valid_stream_name("a/b"));
        assert!(!is_valid_stream_name("é"));
    }

    #[test]
    fn partition_keys_count_characters_not_bytes() {
        assert_eq!(partition_key_chars("ééé"), 3);
    }
}
