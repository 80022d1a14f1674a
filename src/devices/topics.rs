//! MQTT topic names and filters: validation, matching, and whether one filter covers another
//! (what a device's ACL needs to decide on a SUBSCRIBE).

/// Why a topic or filter is not valid MQTT.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("a topic must not be empty")]
    Empty,
    #[error("a topic is at most 65535 bytes")]
    TooLong,
    #[error("a topic must not contain the NUL character")]
    Nul,
    #[error("a topic name (not a filter) must not contain the wildcards + or #")]
    WildcardInName,
    #[error("'#' must be the last level of a filter, alone in its level")]
    MisplacedMultiLevel,
    #[error("'+' must stand alone in its level")]
    MisplacedSingleLevel,
}

fn check_common(text: &str) -> Result<(), TopicError> {
    if text.is_empty() {
        return Err(TopicError::Empty);
    }
    if text.len() > 65_535 {
        return Err(TopicError::TooLong);
    }
    if text.contains('\0') {
        return Err(TopicError::Nul);
    }
    Ok(())
}

/// Checks a topic name (what a PUBLISH carries).
pub fn check_topic_name(topic: &str) -> Result<(), TopicError> {
    check_common(topic)?;
    if topic.contains(['+', '#']) {
        return Err(TopicError::WildcardInName);
    }
    Ok(())
}

/// Why a PUBLISH's topic makes the whole packet unacceptable: the connection closes (MQTT 5:
/// after a DISCONNECT with the code the spec gives for each case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PublishTopicError {
    /// MQTT 5 §1.5.4 [MQTT-1.5.4-1] (3.1.1: [MQTT-1.5.3-1]): ill-formed UTF-8 is a
    /// Malformed Packet (0x81).
    #[error("the topic name is not valid UTF-8")]
    InvalidUtf8,
    /// MQTT 5 §1.5.4 [MQTT-1.5.4-2] (3.1.1: [MQTT-1.5.3-2]): U+0000 is a Malformed Packet
    /// (0x81).
    #[error("the topic name contains the NUL character")]
    Nul,
    /// MQTT 5 §3.3.2.1: "It is a Protocol Error if the Topic Name is zero length and there
    /// is no Topic Alias" (0x82); 3.1.1 [MQTT-4.7.3-1]: at least one character.
    #[error("the topic name is empty (and there is no topic alias)")]
    Empty,
    /// [MQTT-3.3.2-2]: no wildcards in a Topic Name; MQTT 5 §3.14.2.1 0x90 "Topic Name
    /// invalid".
    #[error("the topic name contains a wildcard (+ or #)")]
    Wildcard,
    /// MQTT 5 §3.3.2.3.4: a Topic Alias greater than the Topic Alias Maximum (kinedge's is 0)
    /// is a Protocol Error; DISCONNECT 0x94 "Topic Alias invalid".
    #[error("a topic alias was sent, but the gateway's Topic Alias Maximum is 0")]
    AliasNotAllowed,
}

/// The topic name of a PUBLISH, if it is acceptable (`alias`: the PUBLISH had a Topic Alias).
pub fn publish_topic(bytes: &[u8], alias: bool) -> Result<&str, PublishTopicError> {
    let topic = std::str::from_utf8(bytes).map_err(|_| PublishTopicError::InvalidUtf8)?;
    if topic.contains('\0') {
        return Err(PublishTopicError::Nul);
    }
    if alias {
        return Err(PublishTopicError::AliasNotAllowed);
    }
    if topic.is_empty() {
        return Err(PublishTopicError::Empty);
    }
    if topic.contains(['+', '#']) {
        return Err(PublishTopicError::Wildcard);
    }
    Ok(topic)
}

/// Checks a topic filter (what a SUBSCRIBE carries, or an ACL entry).
pub fn check_filter(filter: &str) -> Result<(), TopicError> {
    check_common(filter)?;
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Err(TopicError::MisplacedMultiLevel);
        }
        if level.contains('+') && *level != "+" {
            return Err(TopicError::MisplacedSingleLevel);
        }
    }
    Ok(())
}

/// True when `filter` matches `topic` (both assumed valid). Topics starting with `$` are not
/// matched by a wildcard in the first level, as MQTT requires.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// True when every topic `requested` matches is also matched by `allowed`: a subscription
/// to `requested` stays inside what `allowed` permits.
pub fn covers(allowed: &str, requested: &str) -> bool {
    // A wildcard in the first level never reaches $-topics.
    if requested.starts_with('$') && allowed.starts_with(['+', '#']) {
        return false;
    }
    let mut a = allowed.split('/');
    let mut r = requested.split('/');
    loop {
        match (a.next(), r.next()) {
            (Some("#"), _) => return true,
            (Some(_), Some("#")) => return false,
            (Some("+"), Some(_)) => {}
            (Some(x), Some(y)) if x == y && y != "+" => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_topic_errors() {
        assert_eq!(publish_topic(b"a/b", false), Ok("a/b"));
        assert_eq!(
            publish_topic(b"a/\xff", false),
            Err(PublishTopicError::InvalidUtf8)
        );
        assert_eq!(publish_topic(b"a\0b", false), Err(PublishTopicError::Nul));
        assert_eq!(publish_topic(b"", false), Err(PublishTopicError::Empty));
        assert_eq!(
            publish_topic(b"a/+", false),
            Err(PublishTopicError::Wildcard)
        );
        assert_eq!(
            publish_topic(b"a/#", false),
            Err(PublishTopicError::Wildcard)
        );
        assert_eq!(
            publish_topic(b"", true),
            Err(PublishTopicError::AliasNotAllowed)
        );
    }

    #[test]
    fn names_and_filters() {
        assert!(check_topic_name("devices/s1/telemetry").is_ok());
        assert!(check_topic_name("a//b").is_ok());
        assert_eq!(check_topic_name("a/+"), Err(TopicError::WildcardInName));
        assert_eq!(check_topic_name(""), Err(TopicError::Empty));
        assert!(check_filter("devices/+/telemetry").is_ok());
        assert!(check_filter("#").is_ok());
        assert!(check_filter("a/#").is_ok());
        assert_eq!(check_filter("a/#/b"), Err(TopicError::MisplacedMultiLevel));
        assert_eq!(check_filter("a/b#"), Err(TopicError::MisplacedMultiLevel));
        assert_eq!(check_filter("a/b+"), Err(TopicError::MisplacedSingleLevel));
        assert_eq!(check_filter("a\0"), Err(TopicError::Nul));
    }

    #[test]
    fn matching() {
        assert!(matches("devices/+/telemetry", "devices/s1/telemetry"));
        assert!(!matches("devices/+/telemetry", "devices/s1/x/telemetry"));
        assert!(matches("devices/#", "devices"));
        assert!(matches("devices/#", "devices/s1/a/b"));
        assert!(matches("#", "anything/at/all"));
        assert!(!matches("#", "$SYS/broker"));
        assert!(!matches("+/broker", "$SYS/broker"));
        assert!(matches("$SYS/#", "$SYS/broker"));
        assert!(!matches("a/b", "a/b/c"));
        assert!(matches("a//b", "a//b"));
    }

    #[test]
    fn covering() {
        assert!(covers("devices/s1/#", "devices/s1/commands/#"));
        assert!(covers("devices/s1/#", "devices/s1/+"));
        assert!(covers("devices/s1/#", "devices/s1"));
        assert!(covers("devices/+/telemetry", "devices/s1/telemetry"));
        assert!(covers("devices/+/telemetry", "devices/+/telemetry"));
        assert!(!covers("devices/s1/#", "devices/#"));
        assert!(!covers("devices/s1/#", "devices/+/commands"));
        assert!(!covers("devices/s1/commands/#", "devices/s1/#"));
        assert!(!covers("devices/+/telemetry", "devices/#"));
        assert!(!covers("a/b", "a/b/c"));
        assert!(covers("#", "a/+/c"));
        assert!(!covers("#", "$SYS/#"));
        assert!(covers("$SYS/#", "$SYS/broker"));
    }
}
