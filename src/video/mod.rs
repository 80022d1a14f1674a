//! Video: cameras (devices of kind `camera`) ingested through GStreamer without transcoding,
//! cut into fMP4 fragments at keyframes, kept in a fragment log (its own redb file), played back
//! as HLS, clips and images, and uploaded when the link allows.
//!
//! `pipeline` builds a camera's GStreamer pipeline and `cutter` decides where its fragments
//! end; `camera` supervises one camera and stores its fragments; `log` is the fragment log;
//! `mp4`, `hls`, `clip` and `image` serve playback; `uploads` is the hookup of camera uploads
//! (the delivery engine uploads fragments; video never depends on delivery);
//! `service` starts and stops all of it.

//!
//! Without the `video` feature (a gateway built without GStreamer) only `config` is built, so
//! a configuration with a `[video]` table still loads (and says cameras are not built in).

#[cfg(feature = "video")]
pub mod camera;
#[cfg(feature = "video")]
pub mod clip;
pub mod config;
#[cfg(feature = "video")]
pub mod cutter;
#[cfg(feature = "video")]
pub mod hls;
#[cfg(feature = "video")]
pub mod image;
#[cfg(feature = "video")]
pub mod log;
#[cfg(feature = "video")]
mod metrics;
#[cfg(feature = "video")]
pub mod mkv;
#[cfg(feature = "video")]
pub mod mp4;
#[cfg(feature = "video")]
pub mod pipeline;
#[cfg(feature = "video")]
pub mod service;
#[cfg(all(test, feature = "video"))]
pub(crate) mod testmedia;
#[cfg(feature = "video")]
pub mod uploads;

#[cfg(feature = "video")]
pub use service::{CameraStatus, VideoService};
