//! Idle timer: a timeout that runs only while a poll stays pending, for streams that may pause.
//!
//! A body or a socket write is fine as long as it makes progress; what must be bounded is one
//! pause. Feed every poll's readiness to [`IdleTimer::expired`]: a ready poll disarms the timer,
//! a pending one arms it (once per pause) and reports when the pause outlasted the bound. The
//! sleep is allocated at the first pause and reset after, not re-created.

use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// The bound on one pause of a stream.
#[derive(Debug)]
pub struct IdleTimer {
    after: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl IdleTimer {
    /// A timer that expires after a pause of `after`.
    pub fn new(after: Duration) -> Self {
        Self {
            after,
            sleep: None,
            armed: false,
        }
    }

    /// The bound.
    pub fn after(&self) -> Duration {
        self.after
    }

    /// Records one poll: `pending` arms the timer (registering `cx`); true once the pause has
    /// lasted `after`. A ready poll (`pending == false`) disarms it.
    pub fn expired(&mut self, cx: &mut Context<'_>, pending: bool) -> bool {
        if !pending {
            self.armed = false;
            return false;
        }
        let deadline = Instant::now() + self.after;
        let sleep = match &mut self.sleep {
            Some(s) => {
                if !self.armed {
                    s.as_mut().reset(deadline);
                }
                s
            }
            None => self
                .sleep
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        self.armed = true;
        sleep.as_mut().poll(cx).is_ready()
    }
}
