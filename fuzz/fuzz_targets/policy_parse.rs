//! Any text, as any layer: parsing, merging, showing and hashing must
//! return a value or a positioned error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use paddock_policy::{merge, Layer, ParsedLayer, PolicyErrors};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut layers = Vec::new();
    for layer in [Layer::User, Layer::Project, Layer::Flags, Layer::Admin] {
        match ParsedLayer::parse(layer, "fuzz.toml", text) {
            Ok(l) => layers.push(l),
            Err(errs) => {
                assert!(!errs.is_empty());
                let _ = PolicyErrors(errs).to_string();
            }
        }
    }
    match merge(&layers) {
        Ok(eff) => {
            let _ = eff.items();
            let _ = eff.hash();
        }
        Err(errs) => {
            let _ = PolicyErrors(errs).to_string();
        }
    }
});
