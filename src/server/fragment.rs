//! Fragment: HTTP/1.1 request lines whose target carries a `#fragment`, seen on the wire.
//!
//! No request-target form includes a fragment (RFC 9112 section 3.2), so such a request is
//! invalid and is answered `400`. But the `http` crate's URI parser drops a fragment silently,
//! and hyper hands the handler only the parsed URI; what the client sent is gone by then. So
//! [`FragmentScan`] watches the bytes hyper reads from an HTTP/1.1 client: a chunk without `#`
//! costs one `memchr` (and one `memrchr` to keep the partial last line); a line around a `#` is
//! checked to be a request line (`METHOD SP target SP HTTP/1.x`), and the target's text before
//! the `#` is queued in [`Fragments`]. The request whose target equals a queued text is the one
//! that carried it: `take` says so once, and the pipeline refuses it.
//!
//! A body line that merely looks like a request line is queued too, but matches only a request
//! on the same connection with that very target (that request is refused: the safe direction);
//! the queue keeps the last [`QUEUE_MAX`] entries. HTTP/2 needs no scan: its `:path` reaches hyper through HPACK, and the
//! gateway never forwards a fragment on either protocol.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use http::Uri;

/// Request lines longer than this are not request lines the gateway serves (`max_uri_bytes` is
/// at most 65,534); their text is not kept.
const LINE_MAX: usize = 66 * 1024;
/// Queued fragment targets per connection.
pub const QUEUE_MAX: usize = 8;

/// Targets (text before `#`) of request lines that carried a fragment, per connection.
#[derive(Debug, Default)]
pub struct Fragments {
    any: AtomicBool,
    queued: Mutex<VecDeque<Box<str>>>,
}

impl Fragments {
    /// True once for the request whose target was sent with a fragment.
    pub fn take(&self, uri: &Uri) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        let Ok(mut q) = self.queued.lock() else {
            return false;
        };
        let found = q.iter().position(|t| same_target(t, uri));
        if let Some(i) = found {
            q.remove(i);
        }
        self.any.store(!q.is_empty(), Ordering::Release);
        found.is_some()
    }

    fn push(&self, target: &str) {
        if let Ok(mut q) = self.queued.lock() {
            if q.len() == QUEUE_MAX {
                q.pop_front();
            }
            q.push_back(target.into());
            self.any.store(true, Ordering::Release);
        }
    }
}

/// Whether `sent` (the target as sent, up to its `#`) is the target `uri` was parsed from.
fn same_target(sent: &str, uri: &Uri) -> bool {
    let pq = uri.path_and_query().map_or("", |pq| pq.as_str());
    match uri.scheme() {
        // absolute-form (rare; only looked at while something is queued): the whole text, the
        // path `/` that an empty one parses to included
        Some(_) => {
            let full = uri.to_string();
            full.eq_ignore_ascii_case(sent)
                || full
                    .strip_suffix('/')
                    .is_some_and(|f| f.eq_ignore_ascii_case(sent))
        }
        None => sent == pq,
    }
}

/// Watches an HTTP/1.1 client's inbound bytes for request lines with a fragment.
#[derive(Debug, Default)]
pub struct FragmentScan {
    /// The bytes after the last `\n` read so far (the start of the current line).
    carry: Vec<u8>,
    /// The current line outgrew `LINE_MAX`: skip it up to its `\n`.
    overflow: bool,
}

impl FragmentScan {
    /// Feeds bytes just read; queues the targets of complete request lines with a fragment.
    pub fn feed(&mut self, chunk: &[u8], out: &Fragments) {
        let has_hash =
            memchr::memchr(b'#', chunk).is_some() || (!self.overflow && self.carry.contains(&b'#'));
        if !has_hash {
            match memchr::memrchr(b'\n', chunk) {
                Some(i) => {
                    self.carry.clear();
                    self.overflow = false;
                    self.keep(&chunk[i + 1..]);
                }
                None => self.keep(chunk),
            }
            return;
        }
        let mut rest = chunk;
        while let Some(i) = memchr::memchr(b'\n', rest) {
            if !self.overflow {
                self.keep(&rest[..i]);
                if !self.overflow {
                    check_line(&self.carry, out);
                }
            }
            self.carry.clear();
            self.overflow = false;
            rest = &rest[i + 1..];
        }
        self.keep(rest);
    }

    fn keep(&mut self, bytes: &[u8]) {
        if self.overflow {
            return;
        }
        if self.carry.len() + bytes.len() > LINE_MAX {
            self.carry = Vec::new();
            self.overflow = true;
        } else {
            self.carry.extend_from_slice(bytes);
        }
    }
}

/// Queues the target of `line` (without its `\n`) if it is a request line with a fragment.
fn check_line(line: &[u8], out: &Fragments) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    let is_method = !method.is_empty() && method.iter().all(|b| b.is_ascii_alphabetic());
    if !is_method || (version != b"HTTP/1.1" && version != b"HTTP/1.0") {
        return;
    }
    let Some(hash) = memchr::memchr(b'#', target) else {
        return;
    };
    if let Ok(sent) = std::str::from_utf8(&target[..hash]) {
        out.push(sent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(chunks: &[&[u8]]) -> Fragments {
        let (mut s, f) = (FragmentScan::default(), Fragments::default());
        for c in chunks {
            s.feed(c, &f);
        }
        f
    }

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    #[test]
    fn a_request_line_with_a_fragment_is_found_once() {
        let f = scan(&[b"GET /a/b?x=1#frag HTTP/1.1\r\nHost: h\r\n\r\n"]);
        assert!(!f.take(&uri("/a/b")));
        assert!(f.take(&uri("/a/b?x=1")));
        assert!(!f.take(&uri("/a/b?x=1")), "taken once");
    }

    #[test]
    fn a_line_split_across_reads_is_found() {
        let f = scan(&[b"GET /a", b"#x HTT", b"P/1.1\r", b"\nHost: h\r\n\r\n"]);
        assert!(f.take(&uri("/a")));
    }

    #[test]
    fn hashes_outside_request_lines_are_ignored() {
        let f = scan(&[
            b"POST /p HTTP/1.1\r\nX-Tag: #1\r\nContent-Length: 9\r\n\r\n{\"a\":\"#\"}",
            b"GET /q HTTP/1.1\r\n\r\n",
        ]);
        assert!(!f.take(&uri("/p")));
        assert!(!f.take(&uri("/q")));
    }

    #[test]
    fn encoded_hash_is_not_a_fragment() {
        let f = scan(&[b"GET /a%23b HTTP/1.1\r\n\r\n"]);
        assert!(!f.take(&uri("/a%23b")));
    }

    #[test]
    fn absolute_form_targets_match() {
        let f = scan(&[b"GET http://example.com/a?q#f HTTP/1.1\r\n\r\n"]);
        assert!(f.take(&uri("http://example.com/a?q")));
    }

    #[test]
    fn overlong_lines_are_skipped_and_the_queue_is_bounded() {
        let long = vec![b'a'; LINE_MAX + 10];
        let mut chunks: Vec<&[u8]> = vec![b"GET /", &long, b"#f HTTP/1.1\r\n"];
        let lines: Vec<String> = (0..QUEUE_MAX + 2)
            .map(|i| format!("GET /{i}#f HTTP/1.1\r\n"))
            .collect();
        chunks.extend(lines.iter().map(|l| l.as_bytes()));
        let f = scan(&chunks);
        assert!(!f.take(&uri("/0")), "oldest dropped");
        assert!(f.take(&uri(&format!("/{}", QUEUE_MAX + 1))));
        assert_eq!(f.queued.lock().unwrap().len(), QUEUE_MAX - 1);
    }
}
