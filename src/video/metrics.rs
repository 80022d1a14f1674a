//! What video reports at each scrape: per camera, fragments recorded, reconnects, gaps,
//! drops, refusals and evictions, bitrate, connection, what is kept and the upload backlog.

use crate::observe::{Labels, MetricsWriter, Report};

use super::VideoService;

impl Report for VideoService {
    fn report(&self, out: &mut MetricsWriter) {
        let video = self;
        use crate::video::camera::CameraState;
        let list = video.status();
        type Row = (Labels, u64);
        let mut counters: [(&'static str, &'static str, Vec<Row>); 7] = [
            (
                "kinedge_camera_fragments",
                "Fragments stored since start.",
                Vec::new(),
            ),
            (
                "kinedge_camera_fragment_bytes",
                "Bytes of the fragments stored since start.",
                Vec::new(),
            ),
            (
                "kinedge_camera_reconnects",
                "Times the camera's pipeline was rebuilt after a loss.",
                Vec::new(),
            ),
            (
                "kinedge_camera_gaps",
                "Gaps in the recording since start (a loss, a restart).",
                Vec::new(),
            ),
            (
                "kinedge_camera_dropped_fragments",
                "Fragments dropped because the log could not keep up.",
                Vec::new(),
            ),
            (
                "kinedge_camera_refused_fragments",
                "Fragments refused by the log (deny_new, disk guard).",
                Vec::new(),
            ),
            (
                "kinedge_camera_evicted_fragments",
                "Oldest fragments deleted by retention (age, max_bytes, free disk).",
                Vec::new(),
            ),
        ];
        let mut bitrate = Vec::new();
        let mut connected = Vec::new();
        let mut stored_bytes = Vec::new();
        let mut stored_fragments = Vec::new();
        let mut upload_backlog = Vec::new();
        for c in &list {
            let labels = vec![("camera", c.name.clone())];
            let values = [
                c.live.recorded_fragments,
                c.live.recorded_bytes,
                c.live.reconnects,
                c.live.gaps,
                c.live.dropped_fragments,
                c.live.refused_fragments,
                c.evicted_fragments,
            ];
            for (family, value) in counters.iter_mut().zip(values) {
                family.2.push((labels.clone(), value));
            }
            bitrate.push((labels.clone(), c.live.bitrate_bps as f64));
            let up = matches!(c.live.state, CameraState::Connected);
            connected.push((labels.clone(), if up { 1.0 } else { 0.0 }));
            stored_bytes.push((labels.clone(), c.bytes as f64));
            stored_fragments.push((labels.clone(), c.fragments as f64));
            if let Some(upload) = &c.upload {
                upload_backlog.push((labels, upload.backlog_bytes as f64));
            }
        }
        for (name, help, rows) in counters {
            out.counter(name, help, rows);
        }
        out.gauge(
            "kinedge_camera_bitrate_bps",
            "Bits per second of the camera's last fragments (smoothed).",
            bitrate,
        );
        out.gauge(
            "kinedge_camera_connected",
            "1 while the camera's stream is being recorded.",
            connected,
        );
        out.gauge(
            "kinedge_camera_stored_bytes",
            "Bytes of the camera's fragments kept.",
            stored_bytes,
        );
        out.gauge(
            "kinedge_camera_stored_fragments",
            "Fragments of the camera kept.",
            stored_fragments,
        );
        out.gauge(
            "kinedge_camera_upload_backlog_bytes",
            "Bytes of fragments waiting for upload.",
            upload_backlog,
        );
    }
}
