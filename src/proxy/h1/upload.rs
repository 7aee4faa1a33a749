//! Upload: the request head and body on their way to the upstream, written as far as the socket
//! and the client's body allow on each poll.
//!
//! The head goes out first; the body follows as the client sends it, framed by `Content-Length`
//! (checked: a body longer or shorter than it declared fails) or chunked (trailers are not
//! forwarded). The upload is polled by whoever holds the connection: before the response head,
//! the exchange; after it, the response body, so a response may stream while the upload goes on
//! (full duplex) and an upstream that answers early (a 413 before reading a large body) is heard.
//! A write that stays blocked longer than its bound fails the upload.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http_body::Body as HttpBody;
use tokio::io::AsyncWrite;

use super::H1Error;
use super::head::Framing;
use crate::idle_timer::IdleTimer;
use crate::proxy::body::Body;

/// The rest of a request to write.
pub struct Upload {
    body: Body,
    framing: Framing,
    /// Body bytes still owed under `Content-Length`.
    left: u64,
    /// Bytes queued for the socket, in order.
    out: VecDeque<Bytes>,
    /// Bytes of the head written so far (zero: nothing left the gateway).
    written: u64,
    /// The body has ended and its end is queued.
    body_ended: bool,
    /// Everything is written and flushed.
    done: bool,
    stall: IdleTimer,
}

impl Upload {
    /// The upload of `head` and then `body`, framed as `framing`; a write may stay blocked for
    /// at most `stall`.
    pub fn new(head: Bytes, body: Body, framing: Framing, stall: Duration) -> Self {
        let left = match framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        Self {
            body,
            framing,
            left,
            out: VecDeque::from([head]),
            written: 0,
            body_ended: matches!(framing, Framing::Empty | Framing::Close),
            done: false,
            stall: IdleTimer::new(stall),
        }
    }

    /// Whether a body follows the head.
    pub fn has_body(&self) -> bool {
        !self.body_ended
    }

    /// Whether all of it is written.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Whether no byte has been written yet (a failure now means the request never left).
    pub fn nothing_sent(&self) -> bool {
        self.written == 0
    }

    /// Moves the upload on: `Ready(Ok)` once everything is written and flushed, `Pending` while
    /// the socket or the client's body is not ready (both register `cx`).
    pub fn poll<W: AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut W,
    ) -> Poll<Result<(), H1Error>> {
        if self.done {
            return Poll::Ready(Ok(()));
        }
        loop {
            ready!(self.poll_write_queued(cx, io))?;
            if self.body_ended {
                ready!(Pin::new(&mut *io).poll_flush(cx))?;
                self.done = true;
                return Poll::Ready(Ok(()));
            }
            match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Pending => {
                    // The body pauses: what was written must not wait in a TLS buffer meanwhile.
                    ready!(Pin::new(&mut *io).poll_flush(cx))?;
                    return Poll::Pending;
                }
                Poll::Ready(None) => self.end()?,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(H1Error::Body(e))),
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.queue(data)?;
                    }
                    if self.body.is_end_stream() {
                        self.end()?;
                    }
                }
            }
        }
    }

    fn poll_write_queued<W: AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut W,
    ) -> Poll<Result<(), H1Error>> {
        while let Some(front) = self.out.front_mut() {
            let polled = Pin::new(&mut *io).poll_write(cx, front);
            if self.stall.expired(cx, polled.is_pending()) {
                return Poll::Ready(Err(H1Error::Timeout));
            }
            match ready!(polled) {
                Ok(0) => {
                    return Poll::Ready(Err(H1Error::Io(std::io::ErrorKind::WriteZero.into())));
                }
                Ok(n) => {
                    self.written += n as u64;
                    front.advance(n);
                    if front.is_empty() {
                        self.out.pop_front();
                    }
                }
                Err(e) => return Poll::Ready(Err(H1Error::Io(e))),
            }
        }
        Poll::Ready(Ok(()))
    }

    fn queue(&mut self, data: Bytes) -> Result<(), H1Error> {
        if data.is_empty() {
            return Ok(());
        }
        match self.framing {
            Framing::Length(_) => {
                let len = data.len() as u64;
                if len > self.left {
                    return Err(H1Error::BodyLength);
                }
                self.left -= len;
                self.out.push_back(data);
            }
            Framing::Chunked => {
                self.out
                    .push_back(Bytes::from(format!("{:x}\r\n", data.len())));
                self.out.push_back(data);
                self.out.push_back(Bytes::from_static(b"\r\n"));
            }
            // A body the framing has no room for (never chosen with a body).
            Framing::Empty | Framing::Close => return Err(H1Error::BodyLength),
        }
        Ok(())
    }

    fn end(&mut self) -> Result<(), H1Error> {
        match self.framing {
            Framing::Length(_) if self.left > 0 => return Err(H1Error::BodyLength),
            Framing::Chunked => self.out.push_back(Bytes::from_static(b"0\r\n\r\n")),
            _ => {}
        }
        self.body_ended = true;
        Ok(())
    }
}
