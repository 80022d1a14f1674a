//! Still images from stored video: JPEG or PNG at given times, optionally scaled to a width.
//!
//! Owns finding the fragment that holds each time, decoding it with GStreamer from its first
//! keyframe (`qtdemux ! decodebin`), picking the frame closest to each asked time, and encoding
//! those frames. Blocking: callers run it on the blocking pool, one request at a time.

use std::collections::BTreeMap;
use std::time::Duration;

use gst::prelude::*;

use super::log::{FragmentLog, VideoLogError};

/// Longest a decode or an encode may take before it is abandoned.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Jpeg,
    Png,
}

impl ImageFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "image/jpeg",
            ImageFormat::Png => "image/png",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "jpeg",
            ImageFormat::Png => "png",
        }
    }

    /// The encoder element, with `jpeg_quality` (1..=100; 85 without) for JPEG.
    fn encoder(self, jpeg_quality: Option<u8>) -> String {
        match self {
            ImageFormat::Jpeg => format!("jpegenc quality={}", jpeg_quality.unwrap_or(85)),
            ImageFormat::Png => "pngenc".to_string(),
        }
    }
}

/// What to extract.
#[derive(Debug, Clone)]
pub struct ImageRequest {
    /// Epoch milliseconds.
    pub at: Vec<i64>,
    /// Scale to this width (height keeps the aspect ratio); `None` = as recorded.
    pub width: Option<u32>,
    /// Scale to this height (width keeps the aspect ratio); with `width` too, the frame is
    /// stretched to exactly `width` x `height`.
    pub height: Option<u32>,
    pub format: ImageFormat,
    /// JPEG quality 1..=100 (85 without).
    pub jpeg_quality: Option<u8>,
}

/// One image, or why there is none at that time.
#[derive(Debug)]
pub struct Image {
    pub at: i64,
    pub result: Result<Vec<u8>, ImageMiss>,
}

/// Why there is no image at a time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ImageMiss {
    pub kind: MissKind,
    pub message: String,
}

/// No video at that time, or video that did not give an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissKind {
    NoMedia,
    MediaError,
}

impl ImageMiss {
    fn no_media(message: impl Into<String>) -> ImageMiss {
        ImageMiss {
            kind: MissKind::NoMedia,
            message: message.into(),
        }
    }

    fn media_error(message: impl Into<String>) -> ImageMiss {
        ImageMiss {
            kind: MissKind::MediaError,
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Log(#[from] VideoLogError),
    #[error("GStreamer: {0}")]
    Gstreamer(String),
}

/// Images at the asked times, in order; a time with no video gets an error entry.
pub fn extract(
    log: &FragmentLog,
    camera: &str,
    request: &ImageRequest,
) -> Result<Vec<Image>, ImageError> {
    super::pipeline::init().map_err(|e| ImageError::Gstreamer(e.to_string()))?;
    // Which fragment holds each time.
    let mut by_fragment: BTreeMap<u64, (super::log::FragmentMeta, Vec<usize>)> = BTreeMap::new();
    let mut results: Vec<Option<Result<Vec<u8>, ImageMiss>>> =
        request.at.iter().map(|_| None).collect();
    for (index, at) in request.at.iter().enumerate() {
        match log.fragments(camera, *at, at + 1, 1)?.into_iter().next() {
            Some(fragment) => by_fragment
                .entry(fragment.number)
                .or_insert_with(|| (fragment, Vec::new()))
                .1
                .push(index),
            None => {
                results[index] = Some(Err(ImageMiss::no_media(
                    "no video was recorded at this time",
                )))
            }
        }
    }
    for (number, (meta, indexes)) in by_fragment {
        let init = log.init_segment(camera, meta.init_id)?;
        let data = log.read(camera, number)?;
        let (Some(init), Some(data)) = (init, data) else {
            for index in indexes {
                results[index] = Some(Err(ImageMiss::no_media(
                    "the fragment was deleted by retention",
                )));
            }
            continue;
        };
        let offsets: Vec<i64> = indexes
            .iter()
            .map(|&i| request.at[i] - meta.producer_ms)
            .collect();
        match decode_frames(&init, &data, &offsets, request.width, request.height) {
            Ok(frames) => {
                for (index, frame) in indexes.into_iter().zip(frames) {
                    results[index] = Some(match frame {
                        Some(sample) => encode(&sample, request.format, request.jpeg_quality)
                            .map_err(|e| ImageMiss::media_error(e.to_string())),
                        None => Err(ImageMiss::media_error("no decodable frame near this time")),
                    });
                }
            }
            Err(error) => {
                tracing::warn!(camera, fragment = number, %error, "cannot decode a fragment for an image");
                for index in indexes {
                    results[index] = Some(Err(ImageMiss::media_error(format!(
                        "cannot decode the fragment: {error}"
                    ))));
                }
            }
        }
    }
    Ok(request
        .at
        .iter()
        .zip(results)
        .map(|(at, result)| Image {
            at: *at,
            result: result.unwrap_or_else(|| Err(ImageMiss::media_error("not extracted"))),
        })
        .collect())
}

/// Decodes `init + fragment` and returns, for each offset (ms from the fragment's start), the
/// decoded frame closest to it.
fn decode_frames(
    init: &[u8],
    fragment: &[u8],
    offsets_ms: &[i64],
    width: Option<u32>,
    height: Option<u32>,
) -> Result<Vec<Option<gst::Sample>>, ImageError> {
    let mut caps = String::from("video/x-raw,format=I420,pixel-aspect-ratio=1/1");
    if let Some(width) = width {
        caps.push_str(&format!(",width={width}"));
    }
    if let Some(height) = height {
        caps.push_str(&format!(",height={height}"));
    }
    // Both sides given: stretch to them rather than add borders.
    let borders = if width.is_some() && height.is_some() {
        " add-borders=false"
    } else {
        ""
    };
    let description = format!(
        "appsrc name=src caps=video/quicktime ! qtdemux ! decodebin ! videoconvert ! videoscale{borders} ! {caps} ! appsink name=sink sync=false"
    );
    let (pipeline, src, sink) = build(&description)?;
    let mut best: Vec<Option<(u64, gst::Sample)>> = offsets_ms.iter().map(|_| None).collect();
    let mut run = || -> Result<(), ImageError> {
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| ImageError::Gstreamer(format!("cannot start decoding: {e}")))?;
        let mut bytes = Vec::with_capacity(init.len() + fragment.len());
        bytes.extend_from_slice(init);
        bytes.extend_from_slice(fragment);
        src.push_buffer(gst::Buffer::from_slice(bytes))
            .map_err(|e| ImageError::Gstreamer(format!("decoder refused the fragment: {e:?}")))?;
        let _ = src.end_of_stream();
        let mut first_pts: Option<gst::ClockTime> = None;
        loop {
            let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(
                STEP_TIMEOUT.as_millis() as u64,
            )) else {
                break;
            };
            let Some(pts) = sample.buffer().and_then(|b| b.pts()) else {
                continue;
            };
            let first = *first_pts.get_or_insert(pts);
            let position_ms = pts.saturating_sub(first).mseconds() as i64;
            for (slot, offset) in best.iter_mut().zip(offsets_ms) {
                let distance = (position_ms - offset).unsigned_abs();
                if slot.as_ref().is_none_or(|(d, _)| distance < *d) {
                    *slot = Some((distance, sample.clone()));
                }
            }
        }
        bus_error(&pipeline)
    };
    let result = run();
    let _ = pipeline.set_state(gst::State::Null);
    result?;
    Ok(best
        .into_iter()
        .map(|b| b.map(|(_, sample)| sample))
        .collect())
}

/// Encodes one decoded frame.
fn encode(
    sample: &gst::Sample,
    format: ImageFormat,
    jpeg_quality: Option<u8>,
) -> Result<Vec<u8>, ImageError> {
    let caps = sample
        .caps()
        .ok_or_else(|| ImageError::Gstreamer("decoded frame without caps".into()))?;
    let buffer = sample
        .buffer_owned()
        .ok_or_else(|| ImageError::Gstreamer("decoded frame without data".into()))?;
    let description = format!(
        "appsrc name=src ! videoconvert ! {} ! appsink name=sink sync=false",
        format.encoder(jpeg_quality)
    );
    let (pipeline, src, sink) = build(&description)?;
    src.set_caps(Some(&caps.to_owned()));
    let run = || -> Result<Vec<u8>, ImageError> {
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| ImageError::Gstreamer(format!("cannot start encoding: {e}")))?;
        src.push_buffer(buffer)
            .map_err(|e| ImageError::Gstreamer(format!("encoder refused the frame: {e:?}")))?;
        let _ = src.end_of_stream();
        let sample = sink
            .try_pull_sample(gst::ClockTime::from_mseconds(
                STEP_TIMEOUT.as_millis() as u64
            ))
            .ok_or_else(|| {
                bus_error(&pipeline)
                    .err()
                    .unwrap_or_else(|| ImageError::Gstreamer("the encoder produced nothing".into()))
            })?;
        let buffer = sample
            .buffer()
            .ok_or_else(|| ImageError::Gstreamer("encoded image without data".into()))?;
        let map = buffer
            .map_readable()
            .map_err(|e| ImageError::Gstreamer(e.to_string()))?;
        Ok(map.to_vec())
    };
    let result = run();
    let _ = pipeline.set_state(gst::State::Null);
    result
}

fn build(
    description: &str,
) -> Result<(gst::Pipeline, gst_app::AppSrc, gst_app::AppSink), ImageError> {
    let pipeline = gst::parse::launch(description)
        .map_err(|e| ImageError::Gstreamer(format!("{description}: {e}")))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| ImageError::Gstreamer("not a pipeline".into()))?;
    let src = pipeline
        .by_name("src")
        .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        .ok_or_else(|| ImageError::Gstreamer("no appsrc".into()))?;
    src.set_format(gst::Format::Time);
    let sink = pipeline
        .by_name("sink")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or_else(|| ImageError::Gstreamer("no appsink".into()))?;
    Ok((pipeline, src, sink))
}

/// The first error the pipeline posted, if any.
fn bus_error(pipeline: &gst::Pipeline) -> Result<(), ImageError> {
    let Some(bus) = pipeline.bus() else {
        return Ok(());
    };
    while let Some(message) = bus.pop_filtered(&[gst::MessageType::Error]) {
        if let gst::MessageView::Error(e) = message.view() {
            return Err(ImageError::Gstreamer(e.error().to_string()));
        }
    }
    Ok(())
}
