//! Reading a request body into memory, with two guards against clients that would hold the
//! gateway's memory or connections:
//!
//! - **Memory comes from the body budget as bytes arrive** (`ApiState::body_budget`, in KiB),
//!   never for a declared `Content-Length` up front: a connection that declares 16 MiB and
//!   sends nothing holds nothing. When the budget is spent, reading pauses (TCP pushes back
//!   on the client) until other bodies are done with.
//! - **A minimum rate**: after a grace of [`BODY_GRACE`], the body must keep arriving at
//!   [`BODY_MIN_RATE`] on average: by time `t` after the head, at least
//!   `(t - 10 s) x 64 KiB/s` must have arrived, so a body of `S` bytes has
//!   `10 s + S / 64 KiB/s` in all (a 5 MiB PutRecords: 90 s). Time spent waiting for the
//!   budget counts too, so that bodies that each hold part of the budget cannot wait for one
//!   another for ever.

use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use tokio::sync::{Semaphore, SemaphorePermit};

use super::error::{ApiError, ErrorKind};

/// Time a body gets before the minimum rate applies.
pub const BODY_GRACE: Duration = Duration::from_secs(10);
/// The average rate a body must keep after the grace, bytes per second.
pub const BODY_MIN_RATE: u64 = 64 * 1024;

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the request body is larger than {max} bytes")]
    TooLarge { max: usize },
    #[error(
        "the request body did not arrive in time: {received} bytes in {elapsed_s} s (a body \
         must arrive at {} KiB/s on average after a grace of {} s)",
        BODY_MIN_RATE / 1024,
        BODY_GRACE.as_secs()
    )]
    TooSlow { received: usize, elapsed_s: u64 },
    #[error(
        "the gateway holds as many request bodies in memory as it may; retry (received \
         {received} bytes of this one)"
    )]
    Busy { received: usize },
    #[error("cannot read the request body: {0}")]
    Read(#[source] axum::Error),
    #[error("the gateway is shutting down")]
    Closed,
}

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        let kind = match &e {
            BodyError::TooLarge { .. } | BodyError::Read(_) => ErrorKind::Serialization,
            BodyError::TooSlow { .. } => ErrorKind::RequestTimeout,
            BodyError::Busy { .. } => ErrorKind::Throttling,
            BodyError::Closed => ErrorKind::InternalFailure,
        };
        ApiError::new(kind, e.to_string())
    }
}

/// When the first `received` bytes must have arrived by, for a body whose head came at
/// `start`.
fn deadline(start: Instant, received: usize) -> Instant {
    start + BODY_GRACE + Duration::from_secs_f64(received as f64 / BODY_MIN_RATE as f64)
}

/// Reads `body` (at most `max` bytes; `declared` is its Content-Length, if any). The returned
/// permit holds the body's room in `budget` (1 permit per KiB) until dropped.
pub async fn read_body<'a>(
    body: Body,
    declared: Option<u64>,
    max: usize,
    budget: &'a Semaphore,
) -> Result<(Bytes, Option<SemaphorePermit<'a>>), BodyError> {
    if declared.is_some_and(|len| len > max as u64) {
        return Err(BodyError::TooLarge { max });
    }
    let start = Instant::now();
    let mut body = body;
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut received = 0usize;
    let mut room: Option<SemaphorePermit<'a>> = None;
    let mut held_kib = 0usize;
    loop {
        let frame = tokio::time::timeout_at(deadline(start, received).into(), body.frame())
            .await
            .map_err(|_| BodyError::TooSlow {
                received,
                elapsed_s: start.elapsed().as_secs(),
            })?;
        let Some(frame) = frame else { break };
        let Ok(data) = frame.map_err(BodyError::Read)?.into_data() else {
            continue; // trailers
        };
        received += data.len();
        if received > max {
            return Err(BodyError::TooLarge { max });
        }
        let need_kib = received.div_ceil(1024);
        if need_kib > held_kib {
            let more =
                u32::try_from(need_kib - held_kib).map_err(|_| BodyError::TooLarge { max })?;
            let permit = tokio::time::timeout_at(
                deadline(start, received).into(),
                budget.acquire_many(more),
            )
            .await
            .map_err(|_| BodyError::Busy { received })?
            .map_err(|_| BodyError::Closed)?;
            match &mut room {
                Some(room) => room.merge(permit),
                None => room = Some(permit),
            }
            held_kib = need_kib;
        }
        chunks.push(data);
    }
    let bytes = match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.pop().unwrap_or_default(),
        _ => {
            let mut all = BytesMut::with_capacity(received);
            for chunk in chunks {
                all.extend_from_slice(&chunk);
            }
            all.freeze()
        }
    };
    Ok((bytes, room))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;

    fn chunked(parts: Vec<&'static [u8]>) -> Body {
        Body::from_stream(stream::iter(
            parts
                .into_iter()
                .map(|p| Ok::<_, std::io::Error>(Bytes::from_static(p))),
        ))
    }

    #[tokio::test]
    async fn budget_is_taken_as_bytes_arrive() {
        let budget = Semaphore::new(8);
        let (bytes, room) = read_body(chunked(vec![b"abc", &[7u8; 2048]]), None, 10_000, &budget)
            .await
            .unwrap();
        assert_eq!(bytes.len(), 2051);
        assert_eq!(room.as_ref().map(|r| r.num_permits()), Some(3));
        assert_eq!(budget.available_permits(), 5);
        drop(room);
        assert_eq!(budget.available_permits(), 8);
    }

    #[tokio::test]
    async fn a_declared_length_takes_nothing_before_bytes_come() {
        let budget: &'static Semaphore = Box::leak(Box::new(Semaphore::new(4)));
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
        let body = Body::from_stream(tokio_stream_from(rx));
        let reader = tokio::spawn(async move {
            read_body(body, Some(3000), 10_000, budget)
                .await
                .map(|(b, _)| b.len())
        });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!reader.is_finished());
        assert_eq!(
            budget.available_permits(),
            4,
            "nothing arrived, nothing taken"
        );
        tx.send(Ok(Bytes::from_static(b"x"))).await.unwrap();
        drop(tx);
        assert_eq!(reader.await.unwrap().unwrap(), 1);
        assert_eq!(budget.available_permits(), 4);
    }

    fn tokio_stream_from(
        mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    ) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_times_out_after_the_grace() {
        let budget = Semaphore::new(64);
        let (_tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
        let body = Body::from_stream(tokio_stream_from(rx));
        let error = read_body(body, Some(1 << 20), 2 << 20, &budget)
            .await
            .unwrap_err();
        assert!(
            matches!(error, BodyError::TooSlow { received: 0, .. }),
            "{error}"
        );
        assert_eq!(budget.available_permits(), 64);
    }

    #[tokio::test]
    async fn too_large_is_refused_before_reading() {
        let budget = Semaphore::new(64);
        let error = read_body(chunked(vec![b"abc"]), Some(100), 10, &budget)
            .await
            .unwrap_err();
        assert!(matches!(error, BodyError::TooLarge { max: 10 }));
        let error = read_body(chunked(vec![b"abc", b"defgh", b"ijk"]), None, 10, &budget)
            .await
            .unwrap_err();
        assert!(matches!(error, BodyError::TooLarge { max: 10 }));
    }
}
