//! Tests of the session's pure parts: client id patterns, session lifetimes, CONNACK codes.

use std::time::Duration;

use bytes::BytesMut;
use rumqttd::protocol::ConnectReturnCode;

use super::super::codec::{Codec, Version};
use super::auth::client_id_allowed;
use super::connect::{refused_connack, session_keep};

#[test]
fn client_id_patterns() {
    assert!(client_id_allowed(None, "s1", "s1"));
    assert!(!client_id_allowed(None, "s1", "s2"));
    assert!(client_id_allowed(Some("{device}-*"), "s1", "s1-abc"));
    assert!(!client_id_allowed(Some("{device}-*"), "s1", "s2-abc"));
    assert!(!client_id_allowed(Some("{device}-*"), "s1", "s1-a/b"));
    assert!(client_id_allowed(Some("gw-{device}"), "s1", "gw-s1"));
    assert!(!client_id_allowed(Some("gw-{device}"), "s1", "gw-s1x"));
}

#[test]
fn session_lifetimes() {
    assert_eq!(session_keep(Version::V311, true, None), None);
    assert_eq!(
        session_keep(Version::V311, false, None),
        Some(Duration::MAX)
    );
    assert_eq!(session_keep(Version::V5, false, None), None);
    assert_eq!(session_keep(Version::V5, false, Some(0)), None);
    assert_eq!(
        session_keep(Version::V5, true, Some(60)),
        Some(Duration::from_secs(60))
    );
    assert_eq!(
        session_keep(Version::V5, false, Some(u32::MAX)),
        Some(Duration::MAX)
    );
}

#[test]
fn v311_connack_codes_stay_in_range() {
    for code in [
        ConnectReturnCode::BadUserNamePassword,
        ConnectReturnCode::ServerUnavailable,
        ConnectReturnCode::NotAuthorized,
    ] {
        let mut out = BytesMut::new();
        Codec::new(Version::V311)
            .write(refused_connack(Version::V311, code), &mut out)
            .unwrap();
        assert!(out[3] <= 5, "{code:?} -> {}", out[3]);
    }
}
