//! Decode: the states of an upstream response body on the wire (length, chunked, to the close).
//!
//! A [`Decoder`] takes what it can from the connection's read buffer and says what it needs:
//! more bytes, or nothing (the body is done). Chunked bodies are read strictly (RFC 9112
//! section 7.1): a hex size of at most 15 digits, extensions skipped, `CRLF` after each chunk's
//! data, and a trailer section read to its end and dropped (RFC 9110 section 6.5.1 lets a proxy
//! discard trailers; a backend's trailer must not pass for a header the gateway vouched for).
//! Each size line and the trailer section are bounded.

use bytes::{Bytes, BytesMut};

use super::H1Error;
use super::head::Framing;

/// Longest chunk-size line (size, extensions, CRLF) read before the body is refused.
const MAX_CHUNK_LINE: usize = 4096;
/// Largest trailer section.
const MAX_TRAILERS: usize = 16 * 1024;

/// One step of decoding.
#[derive(Debug)]
pub enum Step {
    /// Body bytes.
    Data(Bytes),
    /// The buffer holds too little: read more.
    NeedMore,
    /// The body is complete.
    End,
}

/// Where in the body the decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoder {
    /// This many bytes left.
    Length(u64),
    /// Before a chunk-size line.
    ChunkSize,
    /// Inside a chunk's data, this many bytes left.
    ChunkData(u64),
    /// After a chunk's data: its CRLF.
    ChunkEnd,
    /// After the last chunk: trailer fields up to the empty line.
    Trailers,
    /// Until the connection closes.
    Close,
    /// Nothing more.
    Done,
}

impl Decoder {
    /// The decoder for a body framed as `framing`.
    pub fn new(framing: Framing) -> Self {
        match framing {
            Framing::Empty | Framing::Length(0) => Decoder::Done,
            Framing::Length(n) => Decoder::Length(n),
            Framing::Chunked => Decoder::ChunkSize,
            Framing::Close => Decoder::Close,
        }
    }

    /// Whether the body is complete.
    pub fn is_done(&self) -> bool {
        *self == Decoder::Done
    }

    /// Bytes left, when known.
    pub fn remaining(&self) -> Option<u64> {
        match self {
            Decoder::Length(n) => Some(*n),
            Decoder::Done => Some(0),
            _ => None,
        }
    }

    /// Takes the next step from `buf`; `eof` says the connection has closed.
    pub fn step(&mut self, buf: &mut BytesMut, eof: bool) -> Result<Step, H1Error> {
        loop {
            match *self {
                Decoder::Done => return Ok(Step::End),
                Decoder::Length(_) | Decoder::ChunkData(_) if buf.is_empty() => return more(eof),
                Decoder::Length(n) | Decoder::ChunkData(n) => return Ok(self.take(buf, n)),
                Decoder::Close if buf.is_empty() && eof => {
                    *self = Decoder::Done;
                    return Ok(Step::End);
                }
                Decoder::Close if buf.is_empty() => return Ok(Step::NeedMore),
                Decoder::Close => return Ok(Step::Data(buf.split().freeze())),
                Decoder::ChunkSize => match line(buf, MAX_CHUNK_LINE)? {
                    None => return more(eof),
                    Some(l) => {
                        let size = chunk_size(&l)?;
                        *self = if size == 0 {
                            Decoder::Trailers
                        } else {
                            Decoder::ChunkData(size)
                        };
                    }
                },
                Decoder::ChunkEnd => {
                    if buf.len() < 2 {
                        return more(eof);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(H1Error::Parse("chunk data not followed by CRLF".into()));
                    }
                    let _ = buf.split_to(2);
                    *self = Decoder::ChunkSize;
                }
                Decoder::Trailers => return self.trailers(buf, eof),
            }
        }
    }

    /// Data of a length-delimited stretch with `n` bytes left (`buf` is not empty).
    fn take(&mut self, buf: &mut BytesMut, n: u64) -> Step {
        let len = (buf.len() as u64).min(n);
        let data = buf.split_to(len as usize).freeze();
        let left = n - len;
        *self = match (*self, left) {
            (Decoder::Length(_), 0) => Decoder::Done,
            (Decoder::ChunkData(_), 0) => Decoder::ChunkEnd,
            (Decoder::ChunkData(_), left) => Decoder::ChunkData(left),
            (_, left) => Decoder::Length(left),
        };
        Step::Data(data)
    }

    fn trailers(&mut self, buf: &mut BytesMut, eof: bool) -> Result<Step, H1Error> {
        // The section ends at the first empty line: right away when there are no trailers.
        let end = if buf.starts_with(b"\r\n") {
            Some(2)
        } else {
            memchr::memmem::find(buf, b"\r\n\r\n").map(|i| i + 4)
        };
        let Some(end) = end else {
            if buf.len() > MAX_TRAILERS {
                return Err(H1Error::Parse("trailer section too large".into()));
            }
            return more(eof);
        };
        if end > MAX_TRAILERS {
            return Err(H1Error::Parse("trailer section too large".into()));
        }
        let section = buf.split_to(end);
        let mut fields = [httparse::EMPTY_HEADER; 64];
        match httparse::parse_headers(&section, &mut fields) {
            Ok(httparse::Status::Complete(_)) => {}
            _ => return Err(H1Error::Parse("invalid trailer section".into())),
        }
        *self = Decoder::Done;
        Ok(Step::End)
    }
}

fn more(eof: bool) -> Result<Step, H1Error> {
    if eof {
        Err(H1Error::Closed)
    } else {
        Ok(Step::NeedMore)
    }
}

/// One CRLF-terminated line from the front of `buf` (without its CRLF), if it has arrived.
fn line(buf: &mut BytesMut, max: usize) -> Result<Option<BytesMut>, H1Error> {
    match memchr::memchr(b'\n', buf) {
        Some(i) if i > 0 && buf[i - 1] == b'\r' => {
            let mut l = buf.split_to(i + 1);
            l.truncate(i - 1);
            Ok(Some(l))
        }
        Some(_) => Err(H1Error::Parse("chunk-size line not ended by CRLF".into())),
        None if buf.len() > max => Err(H1Error::Parse("chunk-size line too long".into())),
        None => Ok(None),
    }
}

/// The hex size of a chunk-size line, extensions (`;...`) ignored.
fn chunk_size(l: &[u8]) -> Result<u64, H1Error> {
    let bad = || H1Error::Parse("invalid chunk size".into());
    let end = l.iter().position(|&b| b == b';').unwrap_or(l.len());
    let hex = l[..end].trim_ascii_end();
    if hex.is_empty() || hex.len() > 15 {
        return Err(bad());
    }
    hex.iter().try_fold(0u64, |n, &b| {
        let d = (b as char).to_digit(16).ok_or_else(bad)?;
        Ok(n << 4 | u64::from(d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(framing: Framing, wire: &[u8]) -> Result<(Vec<u8>, BytesMut), H1Error> {
        let mut d = Decoder::new(framing);
        let mut buf = BytesMut::from(wire);
        let mut body = Vec::new();
        for _ in 0..1000 {
            match d.step(&mut buf, true)? {
                Step::Data(b) => body.extend_from_slice(&b),
                Step::End => return Ok((body, buf)),
                Step::NeedMore => return Err(H1Error::Closed),
            }
        }
        unreachable!("bounded");
    }

    #[test]
    fn chunked_with_extensions_and_trailers() {
        let wire = b"5;ext=1\r\nhello\r\n1\r\n!\r\n0\r\nx-sum: 9\r\n\r\nNEXT";
        let (body, rest) = all(Framing::Chunked, wire).unwrap();
        assert_eq!((body.as_slice(), &rest[..]), (&b"hello!"[..], &b"NEXT"[..]));
        let (body, rest) = all(Framing::Chunked, b"3\r\nabc\r\n0\r\n\r\n").unwrap();
        assert_eq!((body.as_slice(), rest.is_empty()), (&b"abc"[..], true));
        assert!(all(Framing::Chunked, b"1\r\na\r\n0\r\nbad trailer\r\n\r\n").is_err());
    }

    #[test]
    fn broken_chunked_bodies_are_errors() {
        for wire in [
            &b"zz\r\nabc\r\n0\r\n\r\n"[..],
            b"3\r\nabcXY0\r\n\r\n",
            b"3\nabc\r\n0\r\n\r\n",
            b"3\r\nabc\r\n",
            b"ffffffffffffffff\r\n",
        ] {
            assert!(all(Framing::Chunked, wire).is_err(), "{wire:?}");
        }
    }

    #[test]
    fn length_and_close() {
        assert_eq!(all(Framing::Length(2), b"okEXTRA").unwrap().0, b"ok");
        assert!(all(Framing::Length(5), b"ok").is_err());
        assert_eq!(all(Framing::Close, b"all of it").unwrap().0, b"all of it");
    }
}
