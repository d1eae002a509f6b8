//! paddock's policy: one versioned TOML file format, layered from several
//! places, merged into one effective policy in which every value knows its
//! layer, file, line and column.
//!
//! This crate is pure: it turns text into values and values into the
//! effective policy, and reports mistakes with `file:line:column`, what is
//! wrong and what to write instead. Finding the files, and compiling the
//! effective policy into what the sandbox executes, is the `paddock`
//! binary's job.
//!
//! ```
//! use paddock_policy::{merge, Layer, ParsedLayer, WorkspaceMode};
//! let user = ParsedLayer::parse(Layer::User, "user.toml", "version = 1\n[filesystem]\nworkspace = \"cow\"\n").unwrap();
//! let eff = merge(&[user]).unwrap();
//! assert_eq!(eff.workspace.value, WorkspaceMode::Cow);
//! assert_eq!(eff.workspace.origin.line, Some(3));
//! ```

#![forbid(unsafe_code)]

mod body;
mod diag;
mod effective;
mod file;
mod layer;
mod net;

pub use body::{check_body, BodyVerdict};
pub use diag::{PolicyError, PolicyErrors};
pub use effective::{merge, Effective, Item, Origin, Sourced};
pub use file::*;
pub use layer::{
    key_class, parse_duration, parse_proxy_url, valid_env_name, valid_host_pattern, KeyClass,
    Layer, ParsedLayer, Seg, KEYS,
};
pub use net::{
    accepted_credentials, body_rules, canonical_host, canonical_path, decide as decide_network,
    decide_name, has_credential, has_path_rules, inspected as net_inspected, path_matches,
    pattern_matches, rule_applies, websocket_allowed, CanonHost, NetDecision, PathAmbiguity,
};

/// The only policy format version this build understands.
pub const VERSION: u32 = 1;

/// The JSON Schema of a policy file, generated from the types above (the
/// copy in `schema/policy.schema.json` is checked against it by a test).
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(PolicyFile);
    let mut s = serde_json::to_string_pretty(&schema).unwrap_or_default();
    s.push('\n');
    s
}

/// A commented starter policy: every section, with the built-in defaults.
pub const STARTER: &str = include_str!("starter.toml");

#[cfg(test)]
mod tests;
