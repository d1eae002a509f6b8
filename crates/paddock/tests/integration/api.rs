//! The control socket's JSON API (docs/api.md), spoken raw as another
//! program would: hello, exec with captured output, live audit
//! subscription, and errors for malformed requests.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use serde_json::Value as J;

use crate::util::*;

fn request(sock: &std::path::Path, body: &str) -> BufReader<UnixStream> {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    BufReader::new(s)
}

fn next(r: &mut BufReader<UnixStream>) -> J {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
}

/// A session started and running (one exec made its supervisor): its id and
/// control socket.
fn running_session(
    pd: &dyn Fn(&[&str]) -> std::process::Output,
    state: &std::path::Path,
) -> (String, std::path::PathBuf) {
    let id = stdout(&pd(&["session", "start"])).trim().to_string();
    assert_eq!(pd(&["exec", &id, "--", "true"]).status.code(), Some(0));
    let sock = state.join("sessions").join(&id).join("control.sock");
    (id, sock)
}

#[test]
fn control_socket_speaks_versioned_json() {
    let ws = Ws::new();
    let state = ws.root.join("state");
    let pd = |args: &[&str]| {
        ws.paddock()
            .env("PADDOCK_HOME", &state)
            .args(args)
            .output()
            .unwrap()
    };
    let (id, sock) = running_session(&pd, &state);

    let hello = next(&mut request(&sock, r#"{"op":"hello"}"#));
    assert_eq!(hello["protocol"], 1);
    assert_eq!(hello["session"], id.as_str());
    assert!(hello["ops"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o == "subscribe"));

    // A subscriber sees what happens from now on (and the backlog).
    let mut sub = request(&sock, r#"{"op":"subscribe","after":0}"#);
    let first = next(&mut sub);
    assert_eq!(first["kind"], "session.start");

    let mut ex = request(
        &sock,
        r#"{"op":"exec","argv":["sh","-c","echo hi; cat; echo oops >&2; exit 4"],"capture":true,"stdin":"from stdin\n","caller":{"tool_call_id":"api-1"}}"#,
    );
    let started = next(&mut ex);
    assert_eq!(started["event"], "started", "{started}");
    let output = next(&mut ex);
    assert_eq!(output["event"], "output", "{output}");
    assert_eq!(output["stdout"], "hi\nfrom stdin\n");
    assert_eq!(output["stderr"], "oops\n");
    let exited = next(&mut ex);
    assert_eq!(exited["event"], "exited");
    assert_eq!(exited["code"], 4);

    // The subscription delivers the command's events live.
    let mut saw = Vec::new();
    while !saw
        .iter()
        .any(|e: &J| e["kind"] == "exec.exit" && e["tool_call_id"] == "api-1")
    {
        saw.push(next(&mut sub));
    }
    assert!(saw
        .iter()
        .any(|e| e["kind"] == "exec.start" && e["tool_call_id"] == "api-1"));
    let seqs: Vec<u64> = saw.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");

    // Malformed requests: an error with a code, never a crash.
    for bad in [
        "this is not json",
        r#"{"op":"launch"}"#,
        r#"{"op":"exec","argv":[]}"#,
    ] {
        let e = next(&mut request(&sock, bad));
        assert_eq!(e["error"], "BAD_REQUEST", "{bad}: {e}");
    }
    let e = next(&mut request(&sock, r#"{"op":"exec","argv":["true"]}"#));
    assert_eq!(e["event"], "failed", "{e}");
    assert!(e["message"].as_str().unwrap().contains("capture"));
    // Still serving.
    assert_eq!(
        next(&mut request(&sock, r#"{"op":"hello"}"#))["protocol"],
        1
    );
    let _ = pd(&["session", "rm", &id]);
}

/// A NUL byte in an argument would have cut `echo safe` short and run the
/// next argument as the script: the request is refused with the field
/// (BAD_REQUEST, `argv[2]`), through the control socket and through MCP,
/// and nothing ran (no file on the host).
#[test]
fn nul_in_argv_is_refused_through_both_protocols() {
    let ws = Ws::new();
    let state = ws.root.join("state");
    let pd = |args: &[&str]| {
        ws.paddock()
            .env("PADDOCK_HOME", &state)
            .args(args)
            .output()
            .unwrap()
    };
    let (id, sock) = running_session(&pd, &state);
    let pwned = ws.proj.join("pwned");
    let body = serde_json::json!({"op": "exec", "capture": true,
        "argv": ["sh", "-c", "echo safe\u{0}", format!("touch {}", pwned.display())]});
    let answer = next(&mut request(&sock, &body.to_string()));
    assert_eq!(answer["error"], "BAD_REQUEST", "{answer}");
    assert_eq!(answer["field"], "argv[2]", "{answer}");
    let body =
        serde_json::json!({"op": "exec", "capture": true, "argv": ["true"], "cwd": "/tmp\u{0}x"});
    assert_eq!(next(&mut request(&sock, &body.to_string()))["field"], "cwd");
    // The session still serves.
    let ok = next(&mut request(&sock, r#"{"op":"hello"}"#));
    assert_eq!(ok["protocol"], 1);
    assert_eq!(pd(&["session", "stop", &id]).status.code(), Some(0));

    let seen = mcp_calls(
        &ws,
        &state,
        &[],
        serde_json::json!([
            ["run_command", {"argv": ["sh", "-c", "echo safe\u{0}", format!("touch {}", pwned.display())]}],
            ["run_command", {"command": format!("echo safe\u{0}; touch {}", pwned.display())}],
            ["run_command", {"command": "echo still serving"}],
            ["write_file", {"path": "a\u{0}b", "content": "x"}],
            ["read_file", {"path": "a\u{0}b"}],
            ["list_files", {"path": ".\u{0}/x"}]
        ]),
    );
    for i in 0..2 {
        let e = seen[i].to_string();
        assert!(e.contains("NUL"), "{seen}");
        assert!(seen[i][0] != false, "refused: {seen}");
    }
    assert!(
        seen[2][1].as_str().unwrap().contains("still serving"),
        "{seen}"
    );
    for i in 3..6 {
        let e = seen[i].to_string();
        assert!(
            e.contains("NUL") && e.contains("path") && !e.contains("SESSION_LOST"),
            "{seen}"
        );
    }
    assert!(!pwned.exists(), "a different command ran");
}
