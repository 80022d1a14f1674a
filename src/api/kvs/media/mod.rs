//! `kinesis-video-media` (PutMedia, GetMedia) and archived-media's GetMediaForFragmentList:
//! MKV in and out of the fragment log. `put` reads a producer's MKV into fragments and
//! answers with acknowledgements (`ack`); `get` sends stored fragments back as MKV. The MKV
//! format itself is `crate::video::mkv`.
//!
//! What the requests share lives in [`MediaState`] (in `KvsState`): the streams that have a
//! PutMedia in progress (one per stream, at most `put::MAX_PUT_SESSIONS`) and the GetMedia
//! slots.

mod ack;
mod get;
mod put;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use axum::routing::post;
use axum::Router;

use super::{KvsError, KvsErrorKind, KvsState, KvsStream};
use crate::video::log::{RetentionPolicy, StreamStatus};

/// The media operations' shared state.
pub struct MediaState {
    putting: Mutex<BTreeSet<String>>,
    getting: Arc<tokio::sync::Semaphore>,
}

impl Default for MediaState {
    fn default() -> Self {
        MediaState {
            putting: Mutex::new(BTreeSet::new()),
            getting: Arc::new(tokio::sync::Semaphore::new(get::MAX_GET_SESSIONS)),
        }
    }
}

fn get_sessions(state: &KvsState) -> Arc<tokio::sync::Semaphore> {
    state.media.getting.clone()
}

/// A stream's PutMedia slot: taken for the request's life, given back when dropped.
pub(crate) struct Slot {
    state: Arc<KvsState>,
    name: String,
}

impl Slot {
    fn take(state: Arc<KvsState>, name: &str) -> Option<Slot> {
        let mut putting = state
            .media
            .putting
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if putting.len() >= put::MAX_PUT_SESSIONS || !putting.insert(name.to_string()) {
            return None;
        }
        drop(putting);
        Some(Slot {
            state,
            name: name.to_string(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut putting = self
            .state
            .media
            .putting
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        putting.remove(&self.name);
    }
}

/// Where a PutMedia stores: the stream's name in the fragment log and its retention.
#[derive(Debug, Clone)]
pub(crate) struct PutTarget {
    pub name: String,
    pub policy: RetentionPolicy,
}

/// The stream a PutMedia names: a stream created through CreateStream and ACTIVE. A camera
/// of the device files is refused: its pipeline feeds it.
fn put_target(
    state: &KvsState,
    name: Option<&str>,
    arn: Option<&str>,
) -> Result<PutTarget, KvsError> {
    match state.stream_info(name, arn)? {
        KvsStream::Camera { name, .. } => Err(KvsError::new(
            KvsErrorKind::InvalidArgument,
            format!(
                "stream {name:?} is a camera of the device files: its pipeline feeds it, \
                 PutMedia cannot"
            ),
        )),
        KvsStream::Created(record) if record.status == StreamStatus::Active => Ok(PutTarget {
            policy: state.video()?.created_stream_policy(&record),
            name: record.name,
        }),
        KvsStream::Created(_) => Err(KvsError::new(
            KvsErrorKind::ResourceNotFound,
            "The requested stream is not found or not active.",
        )),
    }
}

pub(super) fn routes(state: Arc<KvsState>) -> Router {
    Router::new()
        .route("/putMedia", post(put::put_media))
        .route("/getMedia", post(get::get_media))
        .route(
            "/getMediaForFragmentList",
            post(get::get_media_for_fragment_list),
        )
        .with_state(state)
}
