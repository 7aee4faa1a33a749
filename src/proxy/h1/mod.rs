//! H1: the gateway's own HTTP/1.1 client connection to an upstream, driven by the request's task.
//!
//! hyper's client runs each connection in a task of its own and passes the request, the
//! response and every body chunk across channels, so a forward crossed two tasks and woke each
//! of them several times (callgrind: the upstream connection task alone was 12 k of a plain
//! forward's 45.8 k instructions). Here the task that serves the client writes the request and
//! reads the response head itself ([`exchange`]), and the response body reads the socket when
//! the server polls it (`pool::UpstreamBody`), as Pingora does. The wire format is in `head`
//! (request framing, response head parsing with httparse) and `decode` (response bodies); the
//! request body streams through `upload`, also after the response head has arrived.

pub mod decode;
pub mod head;
pub mod upload;

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::BytesMut;
use http::Method;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

use crate::proxy::body::BoxError;
use head::{MAX_HEAD, MAX_HEADERS, ResponseHead};
use upload::Upload;

/// The transport of an upstream connection (TCP, or TLS over TCP).
pub type Io =
    TokioIo<<crate::proxy::pool::Connector as tower_service::Service<http::Uri>>::Response>;

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum H1Error {
    /// The upstream closed the connection before the response was complete.
    #[error("connection closed before the response was complete")]
    Closed,
    /// The socket failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The response broke the HTTP/1.1 syntax or framing rules.
    #[error("invalid response: {0}")]
    Parse(String),
    /// The response head is over the size or field-count bound.
    #[error("response head larger than {MAX_HEAD} bytes or {MAX_HEADERS} fields")]
    HeadTooLarge,
    /// The client's request body failed (over its cap, paused too long, broken).
    #[error("request body: {0}")]
    Body(BoxError),
    /// The request body did not match its declared length.
    #[error("request body longer or shorter than its Content-Length")]
    BodyLength,
    /// No response head in time, or a write blocked too long.
    #[error("timed out")]
    Timeout,
}

/// One connection to an upstream and the bytes read from it but not yet used.
pub struct Conn {
    /// Boxed: a TLS stream is over a kilobyte, and a connection moves from the pool to the
    /// exchange, the response body and back on every request.
    io: Box<Io>,
    buf: BytesMut,
}

impl Conn {
    /// A fresh connection.
    pub fn new(io: Io) -> Self {
        Self {
            io: Box::new(io),
            buf: BytesMut::new(),
        }
    }

    /// Whether an idle connection can carry another exchange: nothing unread, not closed.
    /// Never waits; costs no system call unless the socket became readable since the last read.
    pub fn is_usable(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(Waker::noop());
        let mut probe = [0u8; 1];
        let mut probe = ReadBuf::new(&mut probe);
        Pin::new(&mut *self.io)
            .poll_read(&mut cx, &mut probe)
            .is_pending()
    }

    /// Reads more bytes into the buffer; `Ready(Ok(0))` at the end of the stream.
    pub fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
            self.buf.reserve(READ_CHUNK);
        }
        // tokio's `read_buf` reads into the spare capacity; one poll of it loses nothing.
        pin!(self.io.read_buf(&mut self.buf)).poll(cx)
    }

    /// The read buffer.
    pub fn buf(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// The transport (for the upload).
    pub fn io(&mut self) -> &mut Io {
        &mut self.io
    }
}

/// The response head of an exchange (the upload may still be under way: an early answer).
pub struct Exchanged {
    /// The parsed head.
    pub head: ResponseHead,
}

/// Why an exchange failed, and whether it may be tried again on another connection.
#[derive(Debug)]
pub struct Failed {
    /// What went wrong.
    pub error: H1Error,
    /// No byte of the request left the gateway.
    pub unsent: bool,
    /// The response had not begun (no byte of it arrived).
    pub before_response: bool,
}

/// Writes `upload` and reads the response head: at most `head_timeout` after the request was
/// written to its end, which an early response may precede. The response's fields are put in
/// `fields` (cleared first: the request's map, whose room is about what the response needs).
pub async fn exchange(
    conn: &mut Conn,
    upload: &mut Upload,
    method: &Method,
    head_timeout: Duration,
    mut fields: http::HeaderMap,
) -> Result<Exchanged, Failed> {
    let mut deadline = pin!(tokio::time::sleep(head_timeout));
    let mut upload_failed: Option<H1Error> = None;
    let had_body = upload.has_body();
    let mut interim = 0;
    let result = poll_fn(|cx| {
        if upload_failed.is_none() && !upload.is_done() {
            match upload.poll(cx, conn.io()) {
                Poll::Ready(Ok(())) if had_body => {
                    deadline
                        .as_mut()
                        .reset(tokio::time::Instant::now() + head_timeout);
                }
                Poll::Ready(Ok(())) | Poll::Pending => {}
                // The client's body failed: that is the answer, whatever the upstream says.
                Poll::Ready(Err(e @ (H1Error::Body(_) | H1Error::BodyLength))) => {
                    return Poll::Ready(Err(e));
                }
                // The upstream may have answered early and closed: listen for it (bounded).
                Poll::Ready(Err(e)) => {
                    upload_failed = Some(e);
                    deadline
                        .as_mut()
                        .reset(tokio::time::Instant::now() + head_timeout);
                }
            }
        }
        loop {
            if let Some(head) = head::parse_response(conn.buf(), method, &mut fields, &mut interim)?
            {
                return Poll::Ready(Ok(head));
            }
            match conn.poll_fill(cx) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(upload_failed.take().unwrap_or(H1Error::Closed)));
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => {
                    return Poll::Ready(Err(upload_failed.take().unwrap_or(H1Error::Io(e))));
                }
                Poll::Pending => break,
            }
        }
        if (upload.is_done() || upload_failed.is_some()) && deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(upload_failed.take().unwrap_or(H1Error::Timeout)));
        }
        Poll::Pending
    })
    .await;
    match result {
        Ok(head) => Ok(Exchanged { head }),
        Err(error) => Err(Failed {
            unsent: upload.nothing_sent(),
            before_response: conn.buf.is_empty(),
            error,
        }),
    }
}
