//! Video: cameras (devices of kind `camera`) ingested through GStreamer without transcoding,
//! cut into fMP4 fragments at keyframes, kept in a fragment log (its own redb file), played back
//! as HLS, clips and images, and uploaded when the link allows.
//!
//! `pipeline` builds a camera's GStreamer pipeline and `cutter` decides where its fragments
//! end; `camera` supervises one camera and stores its fragments; `log` is the fragment log;
//! `mp4`, `hls`, `clip` and `image` serve playback; `uploads` is the hookup of camera uploads
//! (the delivery engine uploads fragments; video never depends on delivery);
//! `service` starts and stops all of it.

pub mod camera;
pub mod clip;
pub mod config;
pub mod cutter;
pub mod hls;
pub mod image;
pub mod log;
mod metrics;
pub mod mkv;
pub mod mp4;
pub mod pipeline;
pub mod service;
#[cfg(test)]
pub(crate) mod testmedia;
pub mod uploads;

pub use service::{CameraStatus, VideoService};
