//! H2 flood: counts the PING and SETTINGS frames an HTTP/2 client sends, to stop control floods.
//!
//! The scanner reads the frame headers in the bytes the connection receives (after the 24-byte
//! client preface) and skips the payloads. More than the budget of non-ACK PING + SETTINGS frames
//! within one second is a flood: the connection answers GOAWAY and closes. h2 itself bounds
//! RST_STREAM floods (rapid reset), CONTINUATION floods and streams; this covers what it answers
//! without limit.

use std::time::{Duration, Instant};

const PREFACE_LEN: usize = 24;
const HEAD_LEN: usize = 9;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const ACK: u8 = 0x1;
const WINDOW: Duration = Duration::from_secs(1);

/// Frame-header scanner for one HTTP/2 connection's inbound bytes.
#[derive(Debug)]
pub struct FrameScanner {
    skip: usize,
    head: [u8; HEAD_LEN],
    head_len: usize,
    budget: u32,
    count: u32,
    window_start: Instant,
}

impl FrameScanner {
    /// A scanner allowing `budget` control frames per second.
    pub fn new(budget: u32) -> Self {
        Self {
            skip: PREFACE_LEN,
            head: [0; HEAD_LEN],
            head_len: 0,
            budget,
            count: 0,
            window_start: Instant::now(),
        }
    }

    /// Scans the next bytes received; once the client goes over its budget, the offset in
    /// `bytes` where the offending frame starts (0 when it started in an earlier read).
    pub fn feed(&mut self, bytes: &[u8]) -> Option<usize> {
        let mut at = 0;
        while at < bytes.len() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len() - at);
                self.skip -= n;
                at += n;
                continue;
            }
            let n = (HEAD_LEN - self.head_len).min(bytes.len() - at);
            self.head[self.head_len..self.head_len + n].copy_from_slice(&bytes[at..at + n]);
            self.head_len += n;
            at += n;
            if self.head_len == HEAD_LEN {
                self.head_len = 0;
                let h = self.head;
                self.skip = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
                if (h[3] == PING || h[3] == SETTINGS) && h[4] & ACK == 0 && self.over_budget() {
                    return Some(at.saturating_sub(HEAD_LEN));
                }
            }
        }
        None
    }

    fn over_budget(&mut self) -> bool {
        let now = Instant::now();
        if now.duration_since(self.window_start) >= WINDOW {
            self.window_start = now;
            self.count = 0;
        }
        self.count += 1;
        self.count > self.budget
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, payload: usize) -> Vec<u8> {
        let mut f = vec![0, 0, payload as u8, kind, flags, 0, 0, 0, 0];
        f.extend(std::iter::repeat_n(0u8, payload));
        f
    }

    #[test]
    fn counts_pings_across_split_reads_and_ignores_acks_and_data() {
        let mut s = FrameScanner::new(3);
        let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        bytes.extend(frame(SETTINGS, 0, 6));
        bytes.extend(frame(SETTINGS, ACK, 0));
        bytes.extend(frame(0x0, 0, 200));
        bytes.extend(frame(PING, 0, 8));
        bytes.extend(frame(PING, ACK, 8));
        bytes.extend(frame(PING, 0, 8));
        for chunk in bytes.chunks(5) {
            assert_eq!(
                s.feed(chunk),
                None,
                "three control frames fit a budget of three"
            );
        }
        let mut tail = frame(0x0, 0, 3);
        tail.extend(frame(PING, 0, 8));
        assert_eq!(
            s.feed(&tail),
            Some(12),
            "the fourth goes over, after the data frame"
        );
    }
}
