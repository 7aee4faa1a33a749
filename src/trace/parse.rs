//! Trace-context parsing: the W3C Trace Context Level 1 `traceparent` and `tracestate` headers.
//!
//! `traceparent` = `VV-<32 hex trace-id>-<16 hex parent-id>-<2 hex flags>`, lower-case hex only.
//! Version `ff`, an all-zero trace-id or parent-id, upper-case hex or a wrong length make it
//! invalid. Version `00` is exactly 55 bytes; a higher version is read by its first four fields
//! (it may go on with `-...`). `tracestate` is kept only if every list member is well formed;
//! at most 32 members and 512 bytes are kept, dropping members from the end (W3C section 3.3.1.1).

use http::HeaderMap;
use http::header::HeaderValue;

/// `traceparent`.
pub const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");
/// `tracestate`.
pub const TRACESTATE: http::HeaderName = http::HeaderName::from_static("tracestate");

/// Most list members of `tracestate` that are kept.
pub const MAX_TRACESTATE_MEMBERS: usize = 32;
/// Most bytes of `tracestate` that are kept.
pub const MAX_TRACESTATE_BYTES: usize = 512;

/// The fields of a valid `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    /// The trace id.
    pub trace_id: [u8; 16],
    /// The caller's span id.
    pub parent_id: [u8; 8],
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
}

/// The one `traceparent` of `headers`, if valid (two of them are invalid).
pub fn traceparent(headers: &HeaderMap) -> Option<Parent> {
    let mut all = headers.get_all(TRACEPARENT).iter();
    let value = all.next()?;
    if all.next().is_some() {
        return None;
    }
    parse_traceparent(value.as_bytes())
}

/// Parses one `traceparent` value.
pub fn parse_traceparent(v: &[u8]) -> Option<Parent> {
    if v.len() < 55 || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let version = hex_byte(&v[0..2])?;
    match version {
        0xff => return None,
        0 if v.len() != 55 => return None,
        _ if v.len() > 55 && v[55] != b'-' => return None,
        _ => {}
    }
    let mut trace_id = [0u8; 16];
    let mut parent_id = [0u8; 8];
    decode(&v[3..35], &mut trace_id)?;
    decode(&v[36..52], &mut parent_id)?;
    let flags = hex_byte(&v[53..55])?;
    if trace_id == [0; 16] || parent_id == [0; 8] {
        return None;
    }
    // A later version's flags may mean things version 00 does not: only "sampled" goes on.
    let flags = if version == 0 { flags } else { flags & 1 };
    Some(Parent {
        trace_id,
        parent_id,
        flags,
    })
}

/// The incoming `tracestate` to pass on: every value joined by `,`, empty members dropped,
/// members from the end dropped beyond 32 or 512 bytes; `None` when absent or malformed.
pub fn tracestate(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut values = headers.get_all(TRACESTATE).iter();
    let first = values.next()?;
    // The common case: one value already within the limits goes on as the same bytes.
    if values.next().is_none() && as_is(first.as_bytes()) {
        return Some(first.clone());
    }
    rebuilt(headers)
}

/// One `tracestate` value that needs no rewriting: at most 512 bytes and 32 members, no
/// empty member or optional whitespace, every member well formed.
fn as_is(v: &[u8]) -> bool {
    v.len() <= MAX_TRACESTATE_BYTES
        && !v.is_empty()
        && v.split(|&b| b == b',').count() <= MAX_TRACESTATE_MEMBERS
        && v.split(|&b| b == b',')
            .all(|m| std::str::from_utf8(m).is_ok_and(|m| !m.starts_with(' ') && valid_member(m)))
}

/// Joins, trims and caps the members of every `tracestate` value.
fn rebuilt(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut kept = String::new();
    let mut members = 0;
    for value in headers.get_all(TRACESTATE) {
        let text = value.to_str().ok()?;
        for member in text.split(',').map(|m| m.trim_matches([' ', '\t'])) {
            if member.is_empty() {
                continue;
            }
            if !valid_member(member) {
                return None;
            }
            let extra = member.len() + usize::from(!kept.is_empty());
            if members == MAX_TRACESTATE_MEMBERS || kept.len() + extra > MAX_TRACESTATE_BYTES {
                continue;
            }
            if !kept.is_empty() {
                kept.push(',');
            }
            kept.push_str(member);
            members += 1;
        }
    }
    if kept.is_empty() {
        return None;
    }
    HeaderValue::try_from(kept).ok()
}

/// `key=value`: key = `[a-z0-9][a-z0-9_\-*/]{0,255}` optionally `@` + tenant-style vendor part;
/// value = 1..256 printable ASCII except `,` and `=`, not ending in a space.
fn valid_member(m: &str) -> bool {
    let Some((key, value)) = m.split_once('=') else {
        return false;
    };
    let first = key.bytes().next().unwrap_or(b'-');
    let key_ok = key.len() <= 256
        && (first.is_ascii_lowercase() || first.is_ascii_digit())
        && key.bytes().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || matches!(b, b'_' | b'-' | b'*' | b'/' | b'@')
        })
        && key.bytes().filter(|&b| b == b'@').count() <= 1;
    let value_ok = !value.is_empty()
        && value.len() <= 256
        && !value.ends_with(' ')
        && value
            .bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=');
    key_ok && value_ok
}

fn decode(hex: &[u8], out: &mut [u8]) -> Option<()> {
    for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *o = hex_byte(pair)?;
    }
    Some(())
}

fn hex_byte(pair: &[u8]) -> Option<u8> {
    Some(nibble(pair[0])? << 4 | nibble(pair[1])?)
}

/// Lower-case hex only: upper case is invalid in `traceparent`.
fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_spec_example_parses() {
        let p = parse_traceparent(GOOD.as_bytes()).unwrap();
        assert_eq!(p.trace_id[0], 0x4b);
        assert_eq!(p.parent_id[7], 0xb7);
        assert_eq!(p.flags, 1);
    }

    #[test]
    fn invalid_traceparents_are_refused() {
        for bad in [
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "",
        ] {
            assert_eq!(parse_traceparent(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn a_later_version_is_read_by_its_first_four_fields() {
        let v = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03-what-ever";
        let p = parse_traceparent(v.as_bytes()).unwrap();
        assert_eq!(
            p.flags, 1,
            "only the sampled flag of a later version goes on"
        );
        assert_eq!(
            parse_traceparent(b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x"),
            None
        );
    }

    #[test]
    fn tracestate_is_joined_capped_and_refused_when_malformed() {
        let mut h = HeaderMap::new();
        h.append(TRACESTATE, HeaderValue::from_static("congo=t61rcWkgMzE"));
        h.append(
            TRACESTATE,
            HeaderValue::from_static(" rojo=00f067aa0ba902b7 ,"),
        );
        assert_eq!(
            tracestate(&h).unwrap(),
            "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
        );
        let many: Vec<String> = (0..40).map(|i| format!("k{i}=v")).collect();
        let mut h = HeaderMap::new();
        h.insert(TRACESTATE, HeaderValue::try_from(many.join(",")).unwrap());
        let kept = tracestate(&h).unwrap();
        assert_eq!(kept.to_str().unwrap().split(',').count(), 32);
        assert!(kept.to_str().unwrap().ends_with("k31=v"));
        let long: Vec<String> = (0..8)
            .map(|i| format!("k{i}={}", "x".repeat(100)))
            .collect();
        h.insert(TRACESTATE, HeaderValue::try_from(long.join(",")).unwrap());
        assert!(tracestate(&h).unwrap().len() <= MAX_TRACESTATE_BYTES);
        h.insert(TRACESTATE, HeaderValue::from_static("Bad=key"));
        assert_eq!(tracestate(&h), None);
        h.insert(TRACESTATE, HeaderValue::from_static("novalue"));
        assert_eq!(tracestate(&h), None);
    }
}
