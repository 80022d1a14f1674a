//! The limits Kinesis puts on names, keys, tags and record sizes, and how it reads a ShardId,
//! in one place.

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

/// The highest shard index a ShardId can name (AWS reads the number into a Java `int`).
pub const MAX_SHARD_INDEX: u64 = 2_147_483_647;

/// The shard a ShardId names, as AWS reads it: the number after the last `-`
/// (`shardId-000000000001`, `1` and `abc-000000000001` all name shard 1).
pub fn resolve_shard_id(text: &str) -> Option<u64> {
    let digits = text.rsplit('-').next().unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let significant = digits.trim_start_matches('0');
    if significant.len() > 10 {
        return None;
    }
    let index: u64 = if significant.is_empty() {
        0
    } else {
        significant.parse().ok()?
    };
    (index <= MAX_SHARD_INDEX).then_some(index)
}

/// Whether a tag key or value keeps to AWS's character set: Unicode letters, digits, white
/// space (not control characters such as tab or newline) and `_ . / = + - % @`.
pub fn is_valid_tag_text(text: &str) -> bool {
    text.chars().all(|c| {
        c.is_alphanumeric()
            || (c.is_whitespace() && !c.is_control())
            || matches!(c, '_' | '.' | '/' | '=' | '+' | '-' | '%' | '@')
    })
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
    fn shard_ids_resolve_by_the_number_after_the_last_dash() {
        for (text, index) in [
            ("shardId-000000000001", Some(1)),
            ("1", Some(1)),
            ("abc-000000000001", Some(1)),
            ("a-b-7", Some(7)),
            ("-00002147483647", Some(2_147_483_647)),
            ("shardId-0", Some(0)),
            ("000", Some(0)),
            ("2147483648", None),
            ("shardId-002147483648", None),
            ("ABKLFD8", None),
            ("2.14E4", None),
            ("shardId-", None),
            ("", None),
        ] {
            assert_eq!(resolve_shard_id(text), index, "{text}");
        }
    }

    #[test]
    fn tag_characters() {
        for ok in ["a", "ü0 _.", "/=+-@%", "ünïcödé 名前", ""] {
            assert!(is_valid_tag_text(ok), "{ok}");
        }
        for bad in ["abc;def", "abc\tdef", "abc\ndef", "abc,def", "a*"] {
            assert!(!is_valid_tag_text(bad), "{bad:?}");
        }
    }

    #[test]
    fn partition_keys_count_characters_not_bytes() {
        assert_eq!(partition_key_chars("ééé"), 3);
    }
}
