//! GetImages: JPEG or PNG images every `SamplingInterval` ms from `StartTimestamp` to
//! `EndTimestamp` (both inclusive, at most 300 s apart), base64 in `ImageContent`, or `Error`
//! NO_MEDIA (no video at that time) / MEDIA_ERROR (video that gave no image), in pages of at
//! most 25 images with a `NextToken`. Decoding is `video::image`'s, one request at a time.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde::Deserialize;

use super::tokens::ImagesPosition;
use super::{
    blocking, epoch_seconds, in_range, invalid, log_error, required, retained_stream_log, select,
    timestamp, ArchiveState, Origin,
};
use crate::api::kvs::{decode, signed_body, KvsError};
use crate::video::image::{self, ImageFormat, ImageRequest, MissKind};

/// GetImages's limits.
const MAX_WINDOW_MS: i64 = 300_000;
const MIN_INTERVAL_MS: i64 = 200;
const DEFAULT_INTERVAL_MS: i64 = 3000;
/// Images per answer: AWS answers pages of at most 25 whatever `MaxResults` says.
const PAGE_SIZE: i64 = 25;
const DEFAULT_JPEG_QUALITY: u8 = 80;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetImagesInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    image_selector_type: Option<String>,
    #[serde(default, deserialize_with = "timestamp")]
    start_timestamp: Option<i64>,
    #[serde(default, deserialize_with = "timestamp")]
    end_timestamp: Option<i64>,
    sampling_interval: Option<i64>,
    format: Option<String>,
    format_config: Option<HashMap<String, String>>,
    width_pixels: Option<i64>,
    height_pixels: Option<i64>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

/// A checked GetImages request: what to sample, how to encode it, where this page starts.
#[derive(Debug, Clone, PartialEq)]
struct Sampling {
    origin: Origin,
    start: i64,
    end: i64,
    interval: i64,
    format: ImageFormat,
    jpeg_quality: u8,
    width: Option<u32>,
    height: Option<u32>,
    page: usize,
    next: i64,
}

pub(super) async fn get_images(
    State(state): State<Arc<ArchiveState>>,
    request: Request,
) -> Response {
    match images(&state, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn images(state: &ArchiveState, request: Request) -> Result<Response, KvsError> {
    let body = match signed_body(&state.kvs, request).await {
        Ok(body) => body,
        Err(refused) => return Ok(refused),
    };
    let input: GetImagesInput = decode(&body)?;
    let (stream_name, stream_arn) = (input.stream_name.clone(), input.stream_arn.clone());
    let sampling = sampling(input)?;
    let (stream, log) = retained_stream_log(state, stream_name.as_deref(), stream_arn.as_deref())?;
    let times: Vec<i64> = (0..)
        .map(|i| sampling.next.saturating_add(i * sampling.interval))
        .take_while(|t| *t <= sampling.end)
        .take(sampling.page)
        .collect();
    let after_page = times
        .last()
        .map(|t| t.saturating_add(sampling.interval))
        .filter(|t| *t <= sampling.end);
    let _slot = state
        .image_slots
        .acquire()
        .await
        .map_err(|_| KvsError::internal("the gateway is stopping"))?;
    let answers = {
        let sampling = sampling.clone();
        let times = times.clone();
        blocking(move || extract(&log, &stream, &sampling, &times)).await?
    };
    let engine = base64::engine::general_purpose::STANDARD;
    let listed: Vec<serde_json::Value> = times
        .iter()
        .zip(answers)
        .map(|(at, answer)| match answer {
            Ok(data) => serde_json::json!({
                "TimeStamp": epoch_seconds(*at),
                "ImageContent": engine.encode(data),
            }),
            Err(kind) => serde_json::json!({
                "TimeStamp": epoch_seconds(*at),
                "Error": match kind {
                    MissKind::NoMedia => "NO_MEDIA",
                    MissKind::MediaError => "MEDIA_ERROR",
                },
            }),
        })
        .collect();
    let mut output = serde_json::json!({ "Images": listed });
    if let Some(next) = after_page {
        output["NextToken"] = ImagesPosition {
            start: sampling.start,
            end: sampling.end,
            interval: sampling.interval,
            next,
        }
        .encode()
        .into();
    }
    Ok(Json(output).into_response())
}

/// Checks the request's members (each error names its member).
fn sampling(input: GetImagesInput) -> Result<Sampling, KvsError> {
    let origin = Origin::parse(
        "ImageSelectorType",
        &required(input.image_selector_type, "ImageSelectorType")?,
    )?;
    let start = required(input.start_timestamp, "StartTimestamp")?;
    let end = required(input.end_timestamp, "EndTimestamp")?;
    if end < start {
        return Err(invalid("EndTimestamp must not be before StartTimestamp"));
    }
    if end - start > MAX_WINDOW_MS {
        return Err(invalid(format!(
            "EndTimestamp must be within {} seconds of StartTimestamp",
            MAX_WINDOW_MS / 1000
        )));
    }
    let interval = input.sampling_interval.unwrap_or(DEFAULT_INTERVAL_MS);
    if interval < MIN_INTERVAL_MS {
        return Err(invalid(format!(
            "SamplingInterval {interval} is too small: at least {MIN_INTERVAL_MS} ms"
        )));
    }
    let format = match required(input.format, "Format")?.as_str() {
        "JPEG" => ImageFormat::Jpeg,
        "PNG" => ImageFormat::Png,
        other => {
            return Err(invalid(format!(
                "Format `{other}` is not valid: JPEG or PNG"
            )))
        }
    };
    let mut jpeg_quality = DEFAULT_JPEG_QUALITY;
    for (key, value) in input.format_config.unwrap_or_default() {
        if key != "JPEGQuality" {
            return Err(invalid(format!(
                "FormatConfig key `{key}` is not valid: JPEGQuality"
            )));
        }
        jpeg_quality = value
            .parse::<u8>()
            .ok()
            .filter(|q| (1..=100).contains(q))
            .ok_or_else(|| {
                invalid(format!(
                    "FormatConfig JPEGQuality `{value}` is not valid: an integer from 1 to 100"
                ))
            })?;
    }
    let width = input
        .width_pixels
        .map(|w| in_range(w, "WidthPixels", 1, 3840))
        .transpose()?
        .map(|w| w as u32);
    let height = input
        .height_pixels
        .map(|h| in_range(h, "HeightPixels", 1, 2160))
        .transpose()?
        .map(|h| h as u32);
    let page = in_range(input.max_results.unwrap_or(PAGE_SIZE), "MaxResults", 1, 100)?
        .min(PAGE_SIZE) as usize;
    let next = match input.next_token.as_deref() {
        None => start,
        Some(token) => {
            let position = ImagesPosition::decode(token)
                .filter(|p| (p.start, p.end, p.interval) == (start, end, interval))
                .ok_or_else(|| {
                    invalid("NextToken is not valid for this request: pass the NextToken of the previous page with the same StartTimestamp, EndTimestamp and SamplingInterval")
                })?;
            position.next
        }
    };
    Ok(Sampling {
        origin,
        start,
        end,
        interval,
        format,
        jpeg_quality,
        width,
        height,
        page,
        next,
    })
}

/// The image (or why none) at each of `times` (of the sampling's origin).
fn extract(
    log: &crate::video::log::FragmentLog,
    stream: &str,
    sampling: &Sampling,
    times: &[i64],
) -> Result<Vec<Result<Vec<u8>, MissKind>>, KvsError> {
    // Producer times to decode at (server times are mapped through the fragment holding them).
    let mut at = Vec::with_capacity(times.len());
    let mut answers: Vec<Option<Result<Vec<u8>, MissKind>>> = Vec::with_capacity(times.len());
    for &t in times {
        let producer = match sampling.origin {
            Origin::Producer => Some(t),
            Origin::Server => select::holding(log, stream, Origin::Server, t)
                .map_err(log_error)?
                .map(|f| f.producer_ms + (t - f.server_ms)),
        };
        match producer {
            Some(p) => {
                at.push(p);
                answers.push(None);
            }
            None => answers.push(Some(Err(MissKind::NoMedia))),
        }
    }
    let request = ImageRequest {
        at,
        width: sampling.width,
        height: sampling.height,
        format: sampling.format,
        jpeg_quality: Some(sampling.jpeg_quality),
    };
    let mut decoded = if request.at.is_empty() {
        Vec::new()
    } else {
        image::extract(log, stream, &request).map_err(KvsError::internal)?
    }
    .into_iter();
    Ok(answers
        .into_iter()
        .map(|answer| match answer {
            Some(answer) => answer,
            None => match decoded.next() {
                Some(image) => image.result.map_err(|miss| miss.kind),
                None => Err(MissKind::MediaError),
            },
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(json: serde_json::Value) -> GetImagesInput {
        serde_json::from_value(json).unwrap()
    }

    fn base() -> serde_json::Value {
        serde_json::json!({
            "StreamName": "cam",
            "ImageSelectorType": "PRODUCER_TIMESTAMP",
            "StartTimestamp": 1_700_000_000.0,
            "EndTimestamp": 1_700_000_010.5,
            "SamplingInterval": 1000,
            "Format": "JPEG",
        })
    }

    #[test]
    fn a_request_is_checked_member_by_member() {
        let s = sampling(input(base())).unwrap();
        assert_eq!(
            (s.start, s.end, s.interval, s.next),
            (
                1_700_000_000_000,
                1_700_000_010_500,
                1000,
                1_700_000_000_000
            )
        );
        assert_eq!((s.page, s.jpeg_quality), (25, 80));
        for (member, value, mentions) in [
            (
                "ImageSelectorType",
                serde_json::json!("NOW"),
                "ImageSelectorType",
            ),
            (
                "EndTimestamp",
                serde_json::json!(1_700_000_301.0),
                "300 seconds",
            ),
            (
                "EndTimestamp",
                serde_json::json!(1_699_999_999.0),
                "EndTimestamp",
            ),
            (
                "SamplingInterval",
                serde_json::json!(199),
                "SamplingInterval",
            ),
            ("Format", serde_json::json!("GIF"), "Format"),
            (
                "FormatConfig",
                serde_json::json!({"JPEGQuality": "101"}),
                "JPEGQuality",
            ),
            (
                "FormatConfig",
                serde_json::json!({"Quality": "1"}),
                "FormatConfig",
            ),
            ("WidthPixels", serde_json::json!(3841), "WidthPixels"),
            ("HeightPixels", serde_json::json!(0), "HeightPixels"),
            ("MaxResults", serde_json::json!(101), "MaxResults"),
            ("NextToken", serde_json::json!("bm9wZQ=="), "NextToken"),
        ] {
            let mut json = base();
            json[member] = value;
            let error = sampling(input(json)).unwrap_err();
            assert!(
                error.message.contains(mentions),
                "{member}: {}",
                error.message
            );
        }
        let mut json = base();
        json.as_object_mut().unwrap().remove("Format");
        assert!(sampling(input(json))
            .unwrap_err()
            .message
            .contains("Format"));
    }

    #[test]
    fn pages_go_on_where_the_token_says_for_the_same_query_only() {
        let token = ImagesPosition {
            start: 1_700_000_000_000,
            end: 1_700_000_010_500,
            interval: 1000,
            next: 1_700_000_005_000,
        }
        .encode();
        let mut json = base();
        json["NextToken"] = token.clone().into();
        json["MaxResults"] = 100.into();
        json["FormatConfig"] = serde_json::json!({"JPEGQuality": "10"});
        let s = sampling(input(json.clone())).unwrap();
        assert_eq!(
            (s.next, s.page, s.jpeg_quality),
            (1_700_000_005_000, 25, 10)
        );
        json["SamplingInterval"] = 2000.into();
        assert!(sampling(input(json)).is_err());
    }
}
