//! Tests of the pipeline descriptions.

use super::source::v4l2_description;
use super::*;

#[test]
fn v4l2_uses_the_requested_encoder_and_key_interval() {
    let spec = PipelineSpec {
        source: CameraSource::V4l2 {
            device: "/dev/video0".into(),
        },
        username: None,
        password: None,
        fragment_duration: Duration::from_secs(2),
        encoder: CameraEncoder::X264,
        width: Some(1280),
        height: Some(720),
        framerate: Some(25),
        queue: 4,
    };
    let d = v4l2_description("/dev/video0", &spec);
    assert!(
        d.contains("x264enc tune=zerolatency speed-preset=ultrafast key-int-max=50"),
        "{d}"
    );
    assert!(d.contains("width=1280,height=720,framerate=25/1"), "{d}");
    init().unwrap();
    // The description parses with the installed plugins.
    gst::parse::bin_from_description(&d, true).unwrap();
}
