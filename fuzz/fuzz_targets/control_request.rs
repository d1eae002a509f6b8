//! The session control socket's request parser (`paddock-protocol`) on
//! arbitrary bytes: it must answer Ok or a BadRequest naming a field, never
//! panic, and an accepted exec never carries a NUL byte in its argv or cwd.
#![no_main]

use libfuzzer_sys::fuzz_target;
use paddock_protocol::{parse_request, ControlRequest};

fuzz_target!(|data: &[u8]| {
    match parse_request(data) {
        Ok(ControlRequest::Exec { argv, cwd, .. }) => {
            assert!(!argv.is_empty());
            assert!(argv.iter().all(|a| !a.contains('\0')));
            assert!(cwd.is_none_or(|c| !c.to_string_lossy().contains('\0')));
        }
        Ok(_) => {}
        Err(e) => assert!(!e.field.is_empty()),
    }
});
