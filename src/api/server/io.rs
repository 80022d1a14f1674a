//! A connection's socket as hyper sees it: reads and writes are reported to the
//! connection's [`Activity`] (head timing, clients that do not read), and the bare error
//! answers hyper writes on its own get the AWS error shape.
//!
//! hyper answers a request head it cannot parse (a control byte in a header, an oversized
//! head, a malformed request line) itself, before any handler runs, with an empty
//! `400 Bad Request` and no request id. Clients of an AWS API expect
//! `{"__type": ..., "message": ...}` and `x-amzn-RequestId`, so such an answer is replaced on
//! its way out. It is recognised by three things together: the connection speaks HTTP/1,
//! no request began since the bytes were read, and the head written is a 4xx/5xx status
//! line without the `x-amzn-requestid` header that every answer of the API's own carries.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::connections::Activity;

/// The socket (plain or TLS) of one API connection.
pub struct TrackedIo<T> {
    inner: T,
    activity: Arc<Activity>,
    /// `requests_started` when the last bytes were read.
    started_at_read: u64,
    /// An error answer being written instead of hyper's: the bytes, how many went out, and
    /// how long hyper's own answer was (reported as written once ours is out).
    replacement: Option<(Vec<u8>, usize, usize)>,
}

impl<T> TrackedIo<T> {
    pub fn new(inner: T, activity: Arc<Activity>) -> Self {
        TrackedIo {
            inner,
            activity,
            started_at_read: 0,
            replacement: None,
        }
    }

    /// Whether `buf` is hyper's own error answer to an unparsable head.
    fn is_hypers_error_answer(&self, buf: &[u8]) -> bool {
        if self.activity.is_http2()
            || self.activity.requests_started() != self.started_at_read
            || !(buf.starts_with(b"HTTP/1.1 4")
                || buf.starts_with(b"HTTP/1.1 5")
                || buf.starts_with(b"HTTP/1.0 4")
                || buf.starts_with(b"HTTP/1.0 5"))
        {
            return false;
        }
        let Some(end) = find(buf, b"\r\n\r\n") else {
            return false;
        };
        let head = buf[..end].to_ascii_lowercase();
        find(&head, b"\r\nx-amzn-requestid:").is_none()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The AWS-shaped answer for hyper's status line `buf` (e.g. `HTTP/1.1 400 Bad Request`).
fn replacement_for(buf: &[u8]) -> Vec<u8> {
    let line_end = find(buf, b"\r\n").unwrap_or(buf.len());
    let status_line = String::from_utf8_lossy(&buf[..line_end]).into_owned();
    let code = status_line.get(9..12).unwrap_or("400");
    let message = match code {
        "431" => "The request head is too large: too many headers, or headers too long.",
        "414" => "The request URI is too long.",
        "505" => "This HTTP version is not supported: use HTTP/1.1 or HTTP/2.",
        _ => {
            "The request is not valid HTTP: a header name or value holds a control character \
             or another byte HTTP does not allow, or the request line or message framing is \
             malformed."
        }
    };
    let body =
        serde_json::json!({"__type": "SerializationException", "message": message}).to_string();
    let id = super::super::request_id();
    format!(
        "{status_line}\r\ncontent-type: {}\r\nx-amzn-requestid: {id}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        super::super::protocol::JSON_1_1,
        body.len()
    )
    .into_bytes()
}

impl<T: AsyncRead + Unpin> AsyncRead for TrackedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        let n = buf.filled().len() - before;
        if n > 0 {
            self.activity.on_read(n);
            self.started_at_read = self.activity.requests_started();
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> TrackedIo<T> {
    /// Writes the replacement answer; `Ready(Ok(n))` with hyper's length once it is out.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        while let Some((bytes, written, _)) = &mut self.replacement {
            if *written == bytes.len() {
                break;
            }
            match Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => *written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    self.activity.on_write(true);
                    return Poll::Pending;
                }
            }
        }
        self.activity.on_write(false);
        let hypers = self.replacement.take().map_or(0, |(_, _, len)| len);
        Poll::Ready(Ok(hypers))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TrackedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.replacement.is_none() && this.is_hypers_error_answer(buf) {
            this.replacement = Some((replacement_for(buf), 0, buf.len()));
        }
        if this.replacement.is_some() {
            return this.poll_replacement(cx);
        }
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.activity.on_write(result.is_pending());
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let first = bufs.iter().find(|b| !b.is_empty());
        if this.replacement.is_some() || first.is_some_and(|b| this.is_hypers_error_answer(b)) {
            // hyper's error answer is a head alone: write it (as ours) through poll_write.
            let first = first.map_or(&[][..], |b| &b[..]);
            return Pin::new(this).poll_write(cx, first);
        }
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.activity.on_write(result.is_pending());
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_flush(cx);
        if result.is_pending() {
            self.activity.on_write(true);
        }
        result
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_bare_400_becomes_an_aws_error() {
        let out = replacement_for(
            b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
        );
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
        assert!(head.contains("x-amzn-requestid: "), "{head}");
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["__type"], "SerializationException");
        assert!(v["message"].as_str().unwrap().contains("control character"));
    }

    #[test]
    fn own_answers_are_left_alone() {
        let registry = Arc::new(super::super::connections::Registry::default());
        let conn = registry.register();
        let mut io = TrackedIo::new(tokio::io::empty(), conn.activity.clone());
        let bare = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        assert!(io.is_hypers_error_answer(bare));
        let own = b"HTTP/1.1 400 Bad Request\r\ncontent-type: x\r\nx-amzn-requestid: 1\r\n\r\n{}";
        assert!(!io.is_hypers_error_answer(own));
        assert!(!io.is_hypers_error_answer(b"HTTP/1.1 200 OK\r\n\r\n"));
        // Once a request began after the last read, an error head is the handler's.
        let guard = conn.activity.begin_request(false);
        assert!(!io.is_hypers_error_answer(bare));
        drop(guard);
        io.started_at_read = conn.activity.requests_started();
        assert!(io.is_hypers_error_answer(bare));
    }
}
