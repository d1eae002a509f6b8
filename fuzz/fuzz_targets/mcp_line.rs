//! The MCP server's line classifier (`paddock-protocol`) on arbitrary
//! bytes: every line is blank, JSON, or gets a JSON-RPC error answer;
//! nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use paddock_protocol::{classify_line, Line};

fuzz_target!(|data: &[u8]| {
    let l = classify_line(data, false);
    match &l {
        Line::Json(t) => assert!(serde_json::from_str::<serde_json::Value>(t).is_ok()),
        Line::Blank => {}
        _ => assert!(l.error().is_some()),
    }
});
