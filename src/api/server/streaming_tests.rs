//! A streaming answer (SubscribeToShard's event stream) on the real server: its connection is
//! busy for as long as the answer runs, so neither the head nor the idle timeout cuts it,
//! even with silences longer than both between its frames.

use std::convert::Infallible;
use std::time::Duration;

use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{serve, ServeOptions, Timeouts};

/// Frames sent, with a pause before each one longer than the idle and head timeouts (and
/// than the reaper's period, so that it runs in every pause).
const FRAMES: usize = 3;
const PAUSE: Duration = Duration::from_millis(1_300);

async fn streaming() -> axum::response::Response {
    let stream = futures_util::stream::unfold(0usize, |i| async move {
        if i == FRAMES {
            return None;
        }
        tokio::time::sleep(PAUSE).await;
        Some((
            Ok::<_, Infallible>(Bytes::from(format!("frame-{i};"))),
            i + 1,
        ))
    });
    axum::response::Response::new(axum::body::Body::from_stream(stream))
}

#[tokio::test]
async fn a_streaming_answer_outlives_the_idle_and_head_timeouts() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut options = ServeOptions::new(8, None);
    options.timeouts = Timeouts {
        header: Duration::from_millis(200),
        idle: Duration::from_millis(200),
        send: Duration::from_secs(30),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = Router::new().route("/", post(streaming));
    let server = tokio::spawn(serve(listener, app, options, async move {
        let _ = stopped.await;
    }));
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket
        .write_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        let mut buf = [0u8; 1024];
        // Until the last chunk (`0\r\n\r\n`) or the server closes the connection.
        while !answer.ends_with(b"0\r\n\r\n") {
            let n = socket.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    assert!(read.is_ok(), "the answer did not end within 30 s");
    let text = String::from_utf8_lossy(&answer);
    for i in 0..FRAMES {
        assert!(
            text.contains(&format!("frame-{i};")),
            "frame {i} missing: {text}"
        );
    }
    assert!(text.ends_with("0\r\n\r\n"), "the answer was cut: {text}");
    let _ = stop.send(());
    drop(socket);
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
}
