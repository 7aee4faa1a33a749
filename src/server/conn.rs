//! Conn: one client connection from the first byte to the close, every wait bounded.
//!
//! Before hyper sees the stream, the first bytes are read under `header_read_timeout` to tell
//! HTTP/1.1 from h2c (a client that sends nothing is closed). Then the connection is served by
//! hyper as that version ([`Protocols`]) while one task watches it: the server's shutdown signal, an h2
//! control-frame flood, and `client_idle_timeout` with no request in flight each start a graceful
//! close (HTTP/1.1: close when idle; h2: GOAWAY), and a closing connection that is still open
//! with nothing in flight after `CLOSE_GRACE` is dropped. On HTTP/1.1 the same task bounds each
//! request head: its clock starts when the head's first bytes arrive with nothing in flight (the
//! first head's with the connection), and a head still incomplete after `header_read_timeout`
//! (checked at least every quarter of it) closes the connection. Each request's handler runs inside
//! [`catch_panic`](super::catch::catch_panic).

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use http::header::UPGRADE;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::{Notify, watch};

use super::catch::{CatchPanic, catch_panic};
use super::fragment::Fragments;
use super::h2_flood::FrameScanner;
use super::io::ConnIo;
use super::proto::Protocols;
use super::side::Side;
use crate::gateway::Gateway;
use crate::log_limit::LogLimit;
use crate::pipeline::{self, ConnInfo};
use crate::proxy::body::{Body, PollWatch, with_guard};
use crate::request_check;
use crate::request_id::RequestId;

const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// How long a connection told to close may stay open with nothing in flight.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
static FLOOD: LogLimit = LogLimit::per_secs(10);
static STOPPED_READING: LogLimit = LogLimit::per_secs(10);

/// The per-connection bounds, read from the snapshot at accept.
#[derive(Debug, Clone, Copy)]
pub struct ConnSettings {
    /// Bound on the protocol sniff (and, in hyper, on each HTTP/1.1 head).
    pub header_read_timeout: Duration,
    /// Close after this long with no request in flight.
    pub idle_timeout: Duration,
    /// Bound on a blocked response write.
    pub write_timeout: Duration,
    /// h2 PING + SETTINGS frames per second before GOAWAY.
    pub h2_control_frames_per_sec: u32,
}

/// What the connection task and its requests share.
#[derive(Debug)]
pub struct ConnState {
    started: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `started` at which the connection last became idle.
    idle_since_ms: AtomicU64,
    /// 1 + milliseconds after `started` since which a response body waits to be polled again
    /// (0: none waits). On h2 a client that grants no window leaves it waiting.
    owed_since_ms: AtomicU64,
    /// 1 + milliseconds after `started` at which the bytes of an HTTP/1.1 request head began
    /// to arrive with nothing in flight (0: no head under way). The first head's clock starts
    /// with the connection.
    head_since_ms: AtomicU64,
    /// 0: no flood, 1: detected, 2: GOAWAY queued (`FloodStage`).
    flood: AtomicU8,
    wake: Notify,
    /// HTTP/1.1 targets sent with a `#fragment` (fed by `ConnIo`).
    pub fragments: Fragments,
}

/// Where a connection is in answering a control-frame flood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloodStage {
    /// No flood.
    None,
    /// Over the budget; waiting for the connection task to queue GOAWAY.
    Detected,
    /// GOAWAY queued: reads end.
    Closing,
}

impl ConnState {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            owed_since_ms: AtomicU64::new(0),
            head_since_ms: AtomicU64::new(1),
            flood: AtomicU8::new(0),
            wake: Notify::new(),
            fragments: Fragments::default(),
        }
    }

    /// Where the connection is in answering a flood.
    pub fn flood_stage(&self) -> FloodStage {
        match self.flood.load(Ordering::Acquire) {
            0 => FloodStage::None,
            1 => FloodStage::Detected,
            _ => FloodStage::Closing,
        }
    }

    /// Marks a flood and wakes the connection task.
    pub fn flood(&self) {
        if self
            .flood
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.wake.notify_one();
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// How long a response body has waited to be polled again (zero when none waits).
    fn owed_for(&self) -> Duration {
        match self.owed_since_ms.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            since => Duration::from_millis(self.now_ms().saturating_sub(since - 1)),
        }
    }

    /// Bytes of a request head arrived (HTTP/1.1, fed by `ConnIo`): starts the head's clock
    /// unless a request is in flight or the clock already runs.
    pub fn head_bytes(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_since_ms.load(Ordering::Relaxed) == 0
        {
            self.head_since_ms
                .store(self.now_ms() + 1, Ordering::Relaxed);
        }
    }

    /// How long the request head under way has been arriving (zero when none is).
    fn head_for(&self) -> Duration {
        match self.head_since_ms.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            since => Duration::from_millis(self.now_ms().saturating_sub(since - 1)),
        }
    }

    /// How long nothing has been in flight (zero while something is).
    fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(since)
    }
}

/// One request in flight, until its response body is done or dropped.
struct InFlight(Arc<ConnState>);

impl InFlight {
    fn begin(state: &Arc<ConnState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::Relaxed);
        // A request began: its head is complete.
        state.head_since_ms.store(0, Ordering::Relaxed);
        Self(state.clone())
    }
}

impl PollWatch for InFlight {
    fn polled(&self, owes_poll: bool) {
        let since = if owes_poll { self.0.now_ms() + 1 } else { 0 };
        self.0.owed_since_ms.store(since, Ordering::Relaxed);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0
            .idle_since_ms
            .store(self.0.now_ms(), Ordering::Relaxed);
        self.0.owed_since_ms.store(0, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Keeps a connection counted busy while a tunnel on it lives. On h2 the tunnel's stream
/// outlives its (empty) response, whose end alone would let the idle close cut the tunnel.
/// Put in the extensions of requests that may ask for a tunnel (`CONNECT`, `Upgrade`).
#[derive(Debug, Clone)]
pub struct ConnHold(Arc<ConnState>);

impl ConnHold {
    /// Counts one more request in flight until the returned guard drops.
    pub fn busy(&self) -> Busy {
        Busy(InFlight::begin(&self.0))
    }
}

/// One tunnel holding its connection busy (see [`ConnHold`]).
pub struct Busy(#[allow(dead_code)] InFlight);

impl std::fmt::Debug for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Busy")
    }
}

/// Serves one client connection until it closes, is closed, or the server shuts down.
pub async fn serve<S>(
    protocols: &Protocols,
    mut io: S,
    gw: Arc<Gateway>,
    info: ConnInfo,
    shutdown: watch::Receiver<bool>,
    s: ConnSettings,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = info.peer;
    let mut stop = shutdown.clone();
    let sniffed = tokio::select! {
        sniffed = tokio::time::timeout(s.header_read_timeout, sniff(&mut io)) => sniffed,
        _ = stop.wait_for(|stop| *stop) => return,
    };
    let prefix = match sniffed {
        Ok(Ok(prefix)) => prefix,
        Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "closed before a request"),
        Err(_) => return tracing::debug!(%peer, "header_read_timeout before a request; closed"),
    };
    let state = Arc::new(ConnState::new());
    let scanner =
        (prefix[..] == H2_PREFACE[..]).then(|| FrameScanner::new(s.h2_control_frames_per_sec));
    // hyper's own header timer costs a boxed sleep armed and dropped per request; on HTTP/1.1
    // the connection's head clock bounds each head instead (h2 has no per-request head wait).
    let h2 = scanner.is_some();
    let head_timeout = (!h2).then_some(s.header_read_timeout);
    let io = ConnIo::new(io, prefix, s.write_timeout, scanner, state.clone());
    let svc = {
        let (info, state) = (Arc::new(info), state.clone());
        service_fn(move |mut req: Request<Incoming>| {
            let (gw, info, guard) = (gw.clone(), info.clone(), InFlight::begin(&state));
            let request_id = RequestId::from_headers(req.headers());
            if state.fragments.take(req.uri()) {
                req.extensions_mut().insert(request_check::SentFragment);
            }
            if req.method() == http::Method::CONNECT || req.headers().contains_key(UPGRADE) {
                req.extensions_mut().insert(ConnHold(state.clone()));
            }
            // Boxed: hyper moves the service future into its dispatcher by value, and the
            // pipeline's future is several KiB. Allocated first and written in place, so it is
            // not built on the stack and copied either; `Answer` and `CatchPanic` are plain
            // structs, so no `async` layer moves the pipeline's future on its first poll.
            let fut = Box::write(
                Box::new_uninit(),
                Answer {
                    handler: catch_panic(
                        pipeline::handle(gw, info, req, request_id.clone()),
                        request_id,
                    ),
                    guard: Some(guard),
                },
            );
            Box::into_pin(fut)
        })
    };
    let conn = protocols.serve(TokioIo::new(io), svc, h2);
    // Inline: the connection's type names a closure, so no helper can take it by name.
    let mut conn = pin!(conn);
    let (mut shutdown, mut shutting_down) = (shutdown, false);
    let mut watch = Watch::new(s.idle_timeout, s.write_timeout, head_timeout);
    // The side events are polled only when one of them woke the task (see `side`), not at each
    // of the connection's own wakes; the connection is polled first, as `biased` select did.
    let side = Side::new();
    loop {
        let sleep = tokio::time::sleep(watch.wait(&state));
        let (mut sleep, mut flood) = (pin!(sleep), pin!(state.wake.notified()));
        let mut stop = pin!(shutdown.wait_for(|stop| *stop));
        side.arm();
        let event = poll_fn(|cx| {
            if let Poll::Ready(ended) = conn.as_mut().poll(cx) {
                return Poll::Ready(Event::Ended(ended));
            }
            side.poll(cx, |cx| {
                if !shutting_down && stop.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Event::Shutdown);
                }
                if flood.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Event::Flood);
                }
                sleep.as_mut().poll(cx).map(|()| Event::Timer)
            })
        })
        .await;
        match event {
            Event::Ended(ended) => {
                if let Err(e) = ended {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            Event::Shutdown => {
                shutting_down = true;
                conn.as_mut().graceful_shutdown();
            }
            Event::Flood => {
                if let Some(suppressed) = FLOOD.admit() {
                    tracing::warn!(%peer, suppressed, "HTTP/2 control-frame flood; GOAWAY and close");
                }
                conn.as_mut().graceful_shutdown();
                state.flood.store(2, Ordering::Release);
                watch.closing.get_or_insert_with(Instant::now);
            }
            Event::Timer => match watch.tick(&state) {
                Tick::Nothing => {}
                Tick::Close => {
                    tracing::debug!(%peer, "client_idle_timeout; closing");
                    conn.as_mut().graceful_shutdown();
                }
                Tick::Drop => return,
                Tick::HeadTimeout => {
                    return tracing::debug!(%peer, "header_read_timeout inside a request head; closed");
                }
                Tick::StoppedReading => {
                    if let Some(suppressed) = STOPPED_READING.admit() {
                        tracing::warn!(%peer, suppressed, "client_write_timeout: the client stopped reading; closed");
                    }
                    return;
                }
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// One request's answer: the pipeline under the panic catch, then the response body tied
    /// to the request's in-flight guard.
    struct Answer<F> {
        #[pin]
        handler: CatchPanic<F>,
        guard: Option<InFlight>,
    }
}

impl<F: Future<Output = Response<Body>>> Future for Answer<F> {
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let resp = ready!(this.handler.poll(cx));
        Poll::Ready(Ok(match this.guard.take() {
            Some(guard) => {
                // Owed from the start: on h2 without window the body is never polled at all.
                guard.polled(true);
                resp.map(|b| with_guard(b, guard))
            }
            // Polled again after it answered (a caller's bug): nothing left to guard.
            None => resp,
        }))
    }
}

/// What woke the connection task's loop.
enum Event<E> {
    /// The connection ended (with hyper's error, if any).
    Ended(Result<(), E>),
    /// The server is shutting down.
    Shutdown,
    /// The h2 flood scanner asked for a close.
    Flood,
    /// The watch's timer fired.
    Timer,
}

/// The connection task's timers: idle close, then the grace before a closing connection drops;
/// on HTTP/1.1 the bound on each request head.
struct Watch {
    idle_timeout: Duration,
    write_timeout: Duration,
    head_timeout: Option<Duration>,
    closing: Option<Instant>,
}

enum Tick {
    Nothing,
    Close,
    Drop,
    /// A response body waited for a poll longer than the write timeout (h2 flow control).
    StoppedReading,
    /// A request head took longer than `header_read_timeout` to arrive.
    HeadTimeout,
}

impl Watch {
    fn new(idle_timeout: Duration, write_timeout: Duration, head: Option<Duration>) -> Self {
        Self {
            idle_timeout,
            write_timeout,
            head_timeout: head,
            closing: None,
        }
    }

    /// Time until the next decision.
    fn wait(&self, state: &ConnState) -> Duration {
        let left = match self.closing {
            Some(at) => CLOSE_GRACE.saturating_sub(at.elapsed()),
            None => self.idle_timeout.saturating_sub(state.idle_for()),
        };
        // A request (or a head) may start while this sleeps: look again within a quarter of the
        // write timeout, and of the head timeout (so a head is cut off at most 25 % late).
        let head = match self.head_timeout {
            Some(limit) if state.head_for() > Duration::ZERO => {
                limit.saturating_sub(state.head_for())
            }
            Some(limit) => limit / 4,
            None => Duration::MAX,
        };
        left.min(self.write_timeout / 4)
            .min(head)
            .max(Duration::from_millis(10))
    }

    fn tick(&mut self, state: &ConnState) -> Tick {
        if state.owed_for() > self.write_timeout {
            return Tick::StoppedReading;
        }
        if self
            .head_timeout
            .is_some_and(|limit| state.head_for() >= limit)
        {
            return Tick::HeadTimeout;
        }
        let idle = state.idle_for();
        match self.closing {
            Some(at) if at.elapsed() >= CLOSE_GRACE && idle > Duration::ZERO => Tick::Drop,
            Some(_) => Tick::Nothing,
            None if idle >= self.idle_timeout => {
                self.closing = Some(Instant::now());
                Tick::Close
            }
            None => Tick::Nothing,
        }
    }
}

/// Reads until the bytes are the h2 preface or cannot become it (at most 24 bytes).
async fn sniff<S: AsyncRead + Unpin>(io: &mut S) -> std::io::Result<Vec<u8>> {
    let mut buf = [0u8; 24];
    let mut len = 0;
    loop {
        let n = io.read(&mut buf[len..]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        len += n;
        if len == buf.len() || !H2_PREFACE.starts_with(&buf[..len]) {
            return Ok(buf[..len].to_vec());
        }
    }
}
