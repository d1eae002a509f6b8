//! paddock's wire protocols, parsed and validated in one place: the
//! control socket's requests, MCP's line framing, and ([`dns`]) the DNS
//! messages of the transparent path.
//!
//! Requests arrive from programs paddock does not control: other tools on
//! the control socket (docs/api.md), the MCP host on stdio. They are
//! *validated, not repaired*: a value that cannot be carried out exactly
//! as sent (an argument with a NUL byte, which `execve` would cut short)
//! is refused with the field it is in, never dropped or truncated, and a
//! line that is not UTF-8, not JSON or too long gets an error answer while
//! the server keeps serving.

#![forbid(unsafe_code)]

pub mod dns;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The version of the control socket's JSON protocol (docs/api.md).
pub const PROTOCOL_VERSION: u32 = 1;

/// The largest control-socket message, bytes.
pub const MAX_REQUEST: usize = 256 * 1024;

/// The largest MCP line, bytes (a `write_file` of a few MiB fits).
pub const MAX_LINE: usize = 16 << 20;

/// A request on a session's control socket (docs/api.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ControlRequest {
    /// Which protocol this supervisor speaks.
    Hello,
    /// Run a command: with stdin, stdout, stderr as file descriptors
    /// (SCM_RIGHTS) travelling with the message, or with `capture` and no
    /// descriptors, its output returned in an `output` event.
    Exec {
        /// Command and arguments.
        argv: Vec<String>,
        /// Working directory inside the sandbox, if visible there.
        #[serde(default)]
        cwd: Option<PathBuf>,
        /// Who asked (recorded with the command's audit events).
        #[serde(default)]
        caller: paddock_audit::Caller,
        /// Collect stdout and stderr (no descriptors sent).
        #[serde(default)]
        capture: bool,
        /// With `capture`: the command's standard input.
        #[serde(default)]
        stdin: Option<String>,
    },
    /// The session's audit events with a sequence number above `after`,
    /// then every new one as it happens, until the client hangs up.
    Subscribe {
        /// Only events after this sequence number (default 0: all).
        #[serde(default)]
        after: u64,
    },
    /// End the sandbox.
    Stop,
    /// Report what runs.
    Status,
}

/// Why a request was refused: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRequest {
    /// The field (`argv[2]`, `cwd`, `caller.agent`, or `request`).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for BadRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn bad(field: impl Into<String>, message: impl Into<String>) -> BadRequest {
    BadRequest {
        field: field.into(),
        message: message.into(),
    }
}

/// A command line as it will be executed: not empty, and no argument with
/// a NUL byte (execve would end it there, so another command would run).
pub fn check_argv(argv: &[String], field: &str) -> Result<(), BadRequest> {
    if argv.is_empty() {
        return Err(bad(field, "is empty"));
    }
    for (i, a) in argv.iter().enumerate() {
        if a.contains('\0') {
            return Err(bad(
                format!("{field}[{i}]"),
                "contains a NUL byte, which no command line can carry",
            ));
        }
    }
    Ok(())
}

/// A text that becomes a path or a C string: no NUL byte.
pub fn check_no_nul(value: &str, field: &str) -> Result<(), BadRequest> {
    if value.contains('\0') {
        Err(bad(field, "contains a NUL byte"))
    } else {
        Ok(())
    }
}

/// Parse and validate one control-socket message.
pub fn parse_request(bytes: &[u8]) -> Result<ControlRequest, BadRequest> {
    if bytes.len() > MAX_REQUEST {
        return Err(bad("request", format!("is over {MAX_REQUEST} bytes")));
    }
    let text =
        std::str::from_utf8(bytes).map_err(|e| bad("request", format!("is not UTF-8: {e}")))?;
    let req: ControlRequest =
        serde_json::from_str(text).map_err(|e| bad("request", format!("bad request: {e}")))?;
    if let ControlRequest::Exec {
        argv, cwd, caller, ..
    } = &req
    {
        check_argv(argv, "argv")?;
        if let Some(c) = cwd {
            check_no_nul(&c.to_string_lossy(), "cwd")?;
        }
        for (name, v) in [
            ("caller.tool_call_id", &caller.tool_call_id),
            ("caller.agent", &caller.agent),
            ("caller.traceparent", &caller.traceparent),
        ] {
            if let Some(v) = v {
                if v.chars().any(char::is_control) {
                    return Err(bad(name, "contains a control character"));
                }
            }
        }
    }
    Ok(req)
}

/// One line from the MCP host, classified before the MCP service sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// Only white space: skipped.
    Blank,
    /// A JSON value: handed to the service.
    Json(String),
    /// Not valid UTF-8 (JSON-RPC parse error, -32700).
    NotUtf8,
    /// UTF-8 but not JSON (-32700).
    NotJson,
    /// Longer than [`MAX_LINE`] (-32600); the rest of it is skipped.
    TooLong,
}

impl Line {
    /// The JSON-RPC error answer owed for this line, if any.
    pub fn error(&self) -> Option<serde_json::Value> {
        let (code, message) = match self {
            Line::Blank | Line::Json(_) => return None,
            Line::NotUtf8 => (-32700, "parse error: the line is not UTF-8".to_string()),
            Line::NotJson => (-32700, "parse error: the line is not JSON".to_string()),
            Line::TooLong => (
                -32600,
                format!("invalid request: the line is over {MAX_LINE} bytes"),
            ),
        };
        Some(
            serde_json::json!({"jsonrpc": "2.0", "id": null, "error": {"code": code, "message": message}}),
        )
    }
}

/// Classify one line (without its newline; `too_long` when the reader cut
/// it at [`MAX_LINE`]).
pub fn classify_line(bytes: &[u8], too_long: bool) -> Line {
    if too_long {
        return Line::TooLong;
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Line::NotUtf8;
    };
    let text = text.trim_end_matches('\r');
    if text.trim().is_empty() {
        return Line::Blank;
    }
    if serde_json::from_str::<serde_json::Value>(text).is_err() {
        return Line::NotJson;
    }
    Line::Json(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_in_argv_is_refused_with_its_index() {
        let r = parse_request(br#"{"op":"exec","argv":["sh","-c","echo safe\u0000","touch x"]}"#);
        let e = r.unwrap_err();
        assert_eq!(e.field, "argv[2]");
        let r = parse_request(br#"{"op":"exec","argv":["true"],"cwd":"/tmp\u0000/x"}"#);
        assert_eq!(r.unwrap_err().field, "cwd");
        let r = parse_request(br#"{"op":"exec","argv":[]}"#);
        assert_eq!(r.unwrap_err().field, "argv");
        assert!(parse_request(br#"{"op":"exec","argv":["true"]}"#).is_ok());
    }

    #[test]
    fn bad_bytes_and_sizes_are_refused() {
        assert_eq!(parse_request(b"\xff{").unwrap_err().field, "request");
        assert_eq!(
            parse_request(&vec![b' '; MAX_REQUEST + 1])
                .unwrap_err()
                .field,
            "request"
        );
        assert_eq!(
            parse_request(br#"{"op":"launch"}"#).unwrap_err().field,
            "request"
        );
    }

    #[test]
    fn lines_are_classified() {
        assert_eq!(classify_line(b"  ", false), Line::Blank);
        assert_eq!(classify_line(b"\xff\xfe", false), Line::NotUtf8);
        assert_eq!(classify_line(b"{oops", false), Line::NotJson);
        assert_eq!(classify_line(b"{}", true), Line::TooLong);
        assert_eq!(classify_line(b"{}\r", false), Line::Json("{}".into()));
        assert!(Line::NotUtf8.error().is_some() && Line::Blank.error().is_none());
    }
}
