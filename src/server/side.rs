//! Side: futures a connection task polls only after their own waker fired.
//!
//! A connection task waits on its hyper connection and on three side events: the server's
//! shutdown, an h2 control-frame flood, and its timer. `tokio::select!` polls every branch on
//! every wake of the task, and the task wakes about twice a request (the request arrives, the
//! upstream answers), so each request paid for polling a `watch` receiver, a `Notified` and a
//! `Sleep` that had nothing to say: about 1 k instructions a request under callgrind. [`Side`]
//! hands the side futures a waker of their own, which records the wake and passes it on to the
//! task; the task then polls them only after one of them was woken (the way `FuturesUnordered`
//! polls only its woken futures).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use atomic_waker::AtomicWaker;

/// The side futures' waker and whether it fired since they were last polled.
pub struct Side {
    flag: Arc<Flag>,
    waker: Waker,
}

struct Flag {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl Default for Side {
    fn default() -> Self {
        Self::new()
    }
}

impl Side {
    /// A side whose futures are polled at the first [`poll`](Self::poll).
    pub fn new() -> Self {
        let flag = Arc::new(Flag {
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        Self {
            waker: Waker::from(flag.clone()),
            flag,
        }
    }

    /// Polls the side futures at the next [`poll`](Self::poll) whatever happened: a new side
    /// future must be polled once to register its waker.
    pub fn arm(&self) {
        self.flag.woken.store(true, Ordering::Release);
    }

    /// Runs `side` (which polls the side futures with the context it is given) if they were
    /// woken since it last ran, else answers `Pending`. Either way the task behind `cx` is woken
    /// when a side future is.
    pub fn poll<T>(
        &self,
        cx: &mut Context<'_>,
        side: impl FnOnce(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        // Registered before the flag is read: a wake after the read wakes this task again.
        self.flag.task.register(cx.waker());
        if !self.flag.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        side(&mut Context::from_waker(&self.waker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use std::pin::pin;
    use std::time::Duration;

    #[tokio::test]
    async fn a_side_future_is_polled_after_its_wake_and_not_before() {
        let side = Side::new();
        let notify = std::sync::Arc::new(tokio::sync::Notify::new());
        let mut notified = pin!(notify.notified());
        let mut polls = 0;
        {
            let mut poll_side = |cx: &mut Context<'_>| {
                side.poll(cx, |cx| {
                    polls += 1;
                    notified.as_mut().poll(cx)
                })
            };
            // First poll registers; a second without a wake does not reach the future.
            let mut cx = Context::from_waker(Waker::noop());
            assert!(poll_side(&mut cx).is_pending());
            assert!(poll_side(&mut cx).is_pending());
        }
        assert_eq!(polls, 1);
        // A notification while the task waits wakes it (bounded wait), and the side future
        // completes at the next poll.
        let waiter = async {
            poll_fn(|cx| {
                side.poll(cx, |cx| {
                    polls += 1;
                    notified.as_mut().poll(cx)
                })
            })
            .await
        };
        let later = notify.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            later.notify_one();
        });
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the side future's wake reached the task");
        // Not polled while the task waited for the wake; polled once after it.
        assert_eq!(polls, 2);
    }

    #[tokio::test]
    async fn arm_polls_a_new_side_future_once() {
        let side = Side::new();
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut count = 0;
        let _ = side.poll(&mut cx, |_| {
            count += 1;
            Poll::<()>::Pending
        });
        let _ = side.poll(&mut cx, |_| {
            count += 1;
            Poll::<()>::Pending
        });
        side.arm();
        let _ = side.poll(&mut cx, |_| {
            count += 1;
            Poll::<()>::Pending
        });
        assert_eq!(count, 2);
    }
}
