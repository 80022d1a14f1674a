//! Video: cameras (devices of kind `camera`) ingested through GStreamer without transcoding,
//! cut into fMP4 fragments at keyframes, kept in a fragment log (its own redb file), played back
//! as HLS, clips and images, and uploaded when the link allows.

pub mod clip;
pub mod hls;
pub mod log;
pub mod mp4;
#[cfg(test)]
pub(crate) mod testmedia;
