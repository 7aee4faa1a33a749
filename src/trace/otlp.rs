//! OTLP encoding: a batch of finished spans as an OTLP/HTTP `ExportTraceServiceRequest` in the
//! protobuf JSON mapping (`Content-Type: application/json`).
//!
//! The mapping's rules that matter here: trace and span ids are lower-case hex strings (not
//! base64), 64-bit integers (times in ns, `intValue`) are decimal strings, enums are numbers
//! (`kind` 2 = `SPAN_KIND_SERVER`; status `code` 2 = `STATUS_CODE_ERROR`). JSON keeps us free of
//! a protobuf dependency; every OpenTelemetry collector accepts it on `/v1/traces`.

use serde_json::{Value as Json, json};

use super::Hex;
use super::span::{Event, FinishedSpan, Value};

/// `SPAN_KIND_SERVER`.
const KIND_SERVER: u8 = 2;
/// `STATUS_CODE_ERROR`.
const STATUS_ERROR: u8 = 2;

/// The request body for `spans`, all from `service_name`.
pub fn encode(service_name: &str, spans: &[FinishedSpan]) -> Vec<u8> {
    let body = json!({
        "resourceSpans": [{
            "resource": {
                "attributes": [attribute("service.name", &Value::Str(service_name.into()))]
            },
            "scopeSpans": [{
                "scope": { "name": "portcullis", "version": env!("CARGO_PKG_VERSION") },
                "spans": spans.iter().map(span).collect::<Vec<_>>(),
            }]
        }]
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

fn span(s: &FinishedSpan) -> Json {
    let mut out = json!({
        "traceId": Hex::<32>::of(&s.trace_id).as_str(),
        "spanId": Hex::<16>::of(&s.span_id).as_str(),
        "name": s.name,
        "kind": KIND_SERVER,
        "flags": u32::from(s.flags),
        "startTimeUnixNano": s.start_ns.to_string(),
        "endTimeUnixNano": s.end_ns.to_string(),
        "attributes": s.attributes.iter().map(|(k, v)| attribute(k, v)).collect::<Vec<_>>(),
        "events": s.events.iter().map(event).collect::<Vec<_>>(),
    });
    if let Some(parent) = &s.parent_id {
        out["parentSpanId"] = Hex::<16>::of(parent).as_str().into();
    }
    if let Some(state) = &s.tracestate {
        out["traceState"] = state.as_str().into();
    }
    if s.error {
        out["status"] = json!({ "code": STATUS_ERROR });
    }
    out
}

fn event(e: &Event) -> Json {
    json!({
        "timeUnixNano": e.time_ns.to_string(),
        "name": e.name,
        "attributes": e.attributes.iter().map(|(k, v)| attribute(k, v)).collect::<Vec<_>>(),
    })
}

fn attribute(key: &str, v: &Value) -> Json {
    let value = match v {
        Value::Str(s) => json!({ "stringValue": s }),
        Value::Int(i) => json!({ "intValue": i.to_string() }),
        Value::Bool(b) => json!({ "boolValue": b }),
    };
    json!({ "key": key, "value": value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_hex_and_times_are_strings() {
        let s = FinishedSpan {
            trace_id: [0xab; 16],
            span_id: [1; 8],
            parent_id: Some([2; 8]),
            flags: 1,
            tracestate: None,
            name: "GET r".into(),
            start_ns: 5,
            end_ns: 7,
            attributes: vec![("http.response.status_code", Value::Int(200))],
            events: vec![],
            error: false,
        };
        let v: Json = serde_json::from_slice(&encode("svc", &[s])).unwrap();
        let span = &v["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(span["traceId"], "abababababababababababababababab");
        assert_eq!(span["parentSpanId"], "0202020202020202");
        assert_eq!(span["startTimeUnixNano"], "5");
        assert_eq!(span["attributes"][0]["value"]["intValue"], "200");
        assert_eq!(span["kind"], 2);
    }
}
