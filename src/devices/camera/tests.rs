//! Tests of the `[camera]` table.

use super::*;

fn check(text: &str) -> Result<CameraConfig, Vec<(String, String)>> {
    let table: toml::Table = toml::from_str(text).unwrap();
    let mut problems = Vec::new();
    match parse_camera(&table, &mut |k, m| problems.push((k.to_string(), m))) {
        Some(c) if problems.is_empty() => Ok(c),
        _ => Err(problems),
    }
}

#[test]
fn defaults_for_an_rtsp_camera() {
    let c = check("source = \"rtsp://192.0.2.10:554/stream1\"\nusername = \"viewer\"\npassword_file = \"/etc/kinedge/cam1.secret\"\n").unwrap();
    assert_eq!(c.retention_hours, 24);
    assert_eq!(c.on_full, CameraOnFull::DeleteOldest);
    assert_eq!(c.no_data_timeout_s, 10);
    assert!(c.upload.is_none());
    assert!(matches!(
        c.password,
        Some(crate::config::SecretSource::File(_))
    ));
}

#[test]
fn sources() {
    assert!(matches!(
        parse_source("srt://:7001"),
        Ok(CameraSource::Srt { listener: true, .. })
    ));
    assert!(matches!(
        parse_source("srt://10.0.0.2:7001"),
        Ok(CameraSource::Srt {
            listener: false,
            ..
        })
    ));
    assert!(matches!(
        parse_source("srt://0.0.0.0:7001?mode=listener"),
        Ok(CameraSource::Srt { listener: true, .. })
    ));
    assert!(parse_source("v4l2:///dev/video0").is_ok());
    assert!(parse_source("file:///tmp/a.ts").is_ok());
    assert!(parse_source("rtsp://u:p@cam/x")
        .unwrap_err()
        .contains("plaintext"));
    assert!(parse_source("http://cam/x")
        .unwrap_err()
        .contains("not supported"));
    assert!(parse_source("srt://cam").unwrap_err().contains("port"));
    assert!(parse_source("file://rel.ts")
        .unwrap_err()
        .contains("absolute"));
}

#[test]
fn every_mistake_is_named() {
    let problems = check(
        "source = \"rtsp://cam/1\"\npassword = \"hunter2\"\nretention_hours = 721\nmax_bytes = \"1MiB\"\non_full = \"drop\"\nwidth = 640\nupload = { destination = \"v\", window = \"25:00-01:00\", colour = 1 }\n",
    )
    .unwrap_err();
    let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
    for key in [
        "camera.password",
        "camera.retention_hours",
        "camera.max_bytes",
        "camera.on_full",
        "camera.width",
        "camera.upload.window",
        "camera.upload.colour",
    ] {
        assert!(keys.contains(&key), "{key} not in {problems:?}");
    }
    assert!(problems
        .iter()
        .any(|(_, m)| m.contains("plaintext secrets are not allowed")));
}

#[test]
fn upload_window() {
    let c = check("source = \"file:///v.ts\"\nupload = { destination = \"video-to-s3\", window = \"23:30-05:00\", delete_after_upload = true }\n").unwrap();
    let upload = c.upload.unwrap();
    assert_eq!(upload.window, Some((23 * 60 + 30, 5 * 60)));
    assert!(upload.delete_after_upload);
    assert!(parse_window("01:00-01:00").is_err());
}

/// The supported keys named by an unknown-key message come from the raw structs, in the
/// order the messages always gave them.
#[test]
fn unknown_keys_name_the_supported_ones() {
    let problems = check(
        "source = \"rtsp://192.0.2.10/s\"\nzoom = 2\nupload = { destination = \"v\", speed = 1 }\n",
    )
    .unwrap_err();
    let message = |key: &str| {
        problems
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    };
    assert_eq!(
        message("camera.zoom"),
        "unknown key `zoom` (a [camera] table has source, username, password_file, \
         password_env, retention_hours, max_bytes, on_full, fragment_duration_ms, \
         no_data_timeout_s, encoder, width, height, framerate, upload)",
        "{problems:?}"
    );
    assert!(
        message("camera.upload.speed")
            .ends_with("(upload has destination, window, delete_after_upload, segment_minutes)"),
        "{problems:?}"
    );
}
