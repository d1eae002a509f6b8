//! `paddock mcp` with a real MCP client nobody here wrote (the official
//! Python SDK, `mcp` from PyPI): tools listed and called against a real
//! sandbox, nothing started while idle, malformed input answered with
//! protocol errors.

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value as J;

use crate::util::*;

#[test]
fn official_python_client_lists_and_calls_the_tools_in_a_real_sandbox() {
    let ws = Ws::new();
    let state = ws.root.join("state");
    std::fs::create_dir_all(ws.home.join(".ssh")).unwrap();
    std::fs::write(ws.home.join(".ssh/id_rsa"), "PRIVATE KEY").unwrap();
    // Larger than run_command's output limit, well under read_file's.
    std::fs::write(ws.proj.join("big.txt"), "a".repeat(200_000)).unwrap();
    let o = mcp_script(&ws, &state, "client.py").output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let seen: J = serde_json::from_str(stdout(&o).lines().last().unwrap()).unwrap();
    assert_eq!(
        seen["tools"],
        serde_json::json!([
            "list_files",
            "read_file",
            "run_command",
            "session_info",
            "workspace_diff",
            "write_file"
        ])
    );
    // Started and idle: no session, no sandbox.
    assert_eq!(seen["idle_processes"], serde_json::json!([]));
    assert_eq!(seen["idle_sessions"], serde_json::json!([]));
    assert_eq!(seen["info_before"]["session"], J::Null);
    // Real work in the sandbox, landing in the workspace.
    assert_eq!(seen["write"][0], false, "{seen}");
    assert_eq!(
        std::fs::read_to_string(ws.proj.join("hello.txt")).unwrap(),
        "hi from mcp\n"
    );
    assert_eq!(seen["read"], serde_json::json!([false, "hi from mcp\n"]));
    assert_eq!(
        seen["read_big"],
        serde_json::json!([false, 200_000]),
        "read whole"
    );
    assert_eq!(seen["run"][0], true);
    assert_eq!(seen["run"][1]["exit_code"], 3);
    assert_eq!(seen["run"][1]["stdout"], "out\n");
    assert_eq!(seen["run"][1]["stderr"], "err\n");
    assert_eq!(seen["run_stdin"][1]["stdout"], "piped\ndone\n");
    assert_eq!(seen["timeout"][1]["timed_out"], true);
    assert_eq!(seen["timeout"][1]["exit_code"], 124);
    assert!(seen["list"][1].as_str().unwrap().contains("hello.txt"));
    // The sandbox's rules hold for the tools.
    assert_eq!(seen["write_denied"][0], true);
    assert!(seen["write_denied"][1]
        .as_str()
        .unwrap()
        .contains("Read-only"));
    assert_eq!(seen["read_denied"][0], true);
    assert!(!seen.to_string().contains("PRIVATE KEY"));
    // Bad calls: protocol errors, and the server carried on.
    assert_eq!(seen["bad_args"][0], "McpError", "{seen}");
    assert_eq!(seen["bad_tool"][0], "McpError", "{seen}");
    let id = seen["info_after"]["session"].as_str().unwrap().to_string();
    // Every call is in the audit trail under its MCP request id.
    let trail =
        std::fs::read_to_string(state.join("sessions").join(&id).join("audit.jsonl")).unwrap();
    let evs: Vec<J> = trail
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let starts: Vec<&J> = evs.iter().filter(|e| e["kind"] == "exec.start").collect();
    assert!(starts.len() >= 7, "{}", starts.len());
    assert!(starts
        .iter()
        .all(|e| e["tool_call_id"].as_str().unwrap().starts_with("mcp-") && e["agent"] == "mcp"));
    let denied = evs
        .iter()
        .find(|e| e["kind"] == "file.denied" && e["data"]["path"] == "/usr/bin/paddock-mcp-evil")
        .expect("the refused write is audited");
    assert!(denied["tool_call_id"].as_str().unwrap().starts_with("mcp-"));
    // The client left: the server stopped its sandbox, the record stays.
    let list: J = serde_json::from_slice(
        &ws.paddock()
            .env("PADDOCK_HOME", &state)
            .args(["session", "list", "--json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(list[0]["state"], "stopped", "{list}");
}

/// Garbage on stdin gets a JSON-RPC error, not a crash; a valid request
/// after it is answered; end of input ends the server, having started no
/// sandbox.
#[test]
fn malformed_mcp_input_is_answered_with_protocol_errors() {
    let ws = Ws::new();
    let state = ws.root.join("state");
    let mut child = ws
        .paddock()
        .env("PADDOCK_HOME", &state)
        .arg("mcp")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    input.write_all(b"{this is not json\n").unwrap();
    // Invalid UTF-8, and a line far over the limit: answered, not fatal.
    input.write_all(b"\xff\xfe{\"jsonrpc\":\"2.0\"}\n").unwrap();
    input
        .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"no/such/method\",\"params\":{}}\n")
        .unwrap();
    let init = serde_json::json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}});
    input.write_all(format!("{init}\n").as_bytes()).unwrap();
    input.flush().unwrap();
    let mut got = Vec::new();
    while let Ok(l) = rx.recv_timeout(Duration::from_secs(10)) {
        let v: J = serde_json::from_str(&l).unwrap_or_else(|e| panic!("not JSON-RPC ({e}): {l}"));
        got.push(v);
        if got.iter().any(|v| v["id"] == 1) {
            break;
        }
    }
    assert_eq!(
        got.iter().filter(|v| v["error"]["code"] == -32700).count(),
        2,
        "one parse error for the non-JSON line, one for the non-UTF-8 line: {got:?}"
    );
    let parse_error = got
        .iter()
        .find(|v| v["error"]["code"] == -32700)
        .unwrap_or_else(|| panic!("no parse error: {got:?}"));
    assert_eq!(parse_error["id"], J::Null);
    assert!(
        got.iter()
            .any(|v| v["id"] == 7 && v["error"]["code"].is_i64()),
        "{got:?}"
    );
    let init_answer = got
        .iter()
        .find(|v| v["id"] == 1)
        .unwrap_or_else(|| panic!("{got:?}"));
    assert_eq!(init_answer["result"]["serverInfo"]["name"], "paddock");
    assert!(
        init_answer["result"]["serverInfo"].is_object(),
        "{init_answer}"
    );
    assert!(
        got.iter()
            .all(|v| v["error"].is_null() || v["error"]["code"].is_i64()),
        "{got:?}"
    );
    // After all that, a real tool call works.
    input
        .write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n")
        .unwrap();
    input.write_all(b"\xc3\x28 not utf-8 either\n").unwrap();
    input
        .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/call\",\"params\":{\"name\":\"session_info\",\"arguments\":{}}}\n")
        .unwrap();
    input.flush().unwrap();
    let mut answered = None;
    while let Ok(l) = rx.recv_timeout(Duration::from_secs(20)) {
        let v: J = serde_json::from_str(&l).unwrap();
        if v["id"] == 9 {
            answered = Some(v);
            break;
        }
    }
    let answered = answered.expect("the tool call after bad input is answered");
    assert!(answered["result"].is_object(), "{answered}");
    drop(input);
    let st = child.wait().unwrap();
    assert!(st.code().is_some(), "ended by a signal: {st:?}");
    assert!(
        !state.join("sessions").exists()
            || std::fs::read_dir(state.join("sessions"))
                .unwrap()
                .next()
                .is_none()
    );
}
