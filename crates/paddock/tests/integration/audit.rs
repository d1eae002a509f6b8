//! The audit trail end to end: commands that write, delete, and are
//! refused on files, system calls and the network, observed per process,
//! in the JSONL file, in `audit tail --json`, and at a real OTLP/HTTP
//! receiver; a supervisor killed while logging hard leaves a valid log.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, KeyValue};
use prost::Message;
use serde_json::Value as J;

use crate::util::*;

/// (path, body) of each request received.
type Requests = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// An OTLP/HTTP receiver on loopback that keeps every request it gets.
pub(crate) struct Receiver {
    pub(crate) port: u16,
    got: Requests,
}

impl Receiver {
    pub(crate) fn start() -> Receiver {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let got: Requests = Arc::default();
        let keep = got.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut c) = conn else { continue };
                let mut r = BufReader::new(c.try_clone().unwrap());
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let mut len = 0usize;
                loop {
                    let mut h = String::new();
                    r.read_line(&mut h).unwrap();
                    if h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        if k.eq_ignore_ascii_case("content-length") {
                            len = v.trim().parse().unwrap();
                        }
                    }
                }
                let mut body = vec![0u8; len];
                r.read_exact(&mut body).unwrap();
                keep.lock().unwrap().push((path, body));
                let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
            }
        });
        Receiver { port, got }
    }

    pub(crate) fn spans(&self) -> Vec<opentelemetry_proto::tonic::trace::v1::Span> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == "/v1/traces")
            .flat_map(|(_, b)| {
                let r = ExportTraceServiceRequest::decode(b.as_slice()).expect("valid OTLP traces");
                r.resource_spans
                    .into_iter()
                    .flat_map(|rs| rs.scope_spans)
                    .flat_map(|ss| ss.spans)
            })
            .collect()
    }

    pub(crate) fn logs(&self) -> Vec<opentelemetry_proto::tonic::logs::v1::LogRecord> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == "/v1/logs")
            .flat_map(|(_, b)| {
                let r = ExportLogsServiceRequest::decode(b.as_slice()).expect("valid OTLP logs");
                r.resource_logs
                    .into_iter()
                    .flat_map(|rl| rl.scope_logs)
                    .flat_map(|sl| sl.log_records)
            })
            .collect()
    }
}

pub(crate) fn attr(attrs: &[KeyValue], key: &str) -> Option<Value> {
    attrs
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.clone()?.value)
}

pub(crate) fn text(attrs: &[KeyValue], key: &str) -> Option<String> {
    match attr(attrs, key)? {
        Value::StringValue(s) => Some(s),
        other => Some(format!("{other:?}")),
    }
}

struct Audited {
    ws: Ws,
    state: PathBuf,
    otlp: Receiver,
}

impl Drop for Audited {
    /// A failed assertion must not leave a session running.
    fn drop(&mut self) {
        for id in list_ids(self) {
            let _ = self.pd(&["session", "rm", &id]);
        }
    }
}

impl Audited {
    fn new() -> Audited {
        let ws = Ws::new();
        let state = ws.root.join("state");
        Audited {
            ws,
            state,
            otlp: Receiver::start(),
        }
    }

    fn cmd(&self) -> Command {
        let mut c = self.ws.paddock();
        c.env("PADDOCK_HOME", &self.state).env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{}", self.otlp.port),
        );
        c
    }

    fn pd(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    fn exec(&self, id: &str, call: &str, script: &str) -> Output {
        self.pd(&["exec", "--tool-call-id", call, id, "--", "sh", "-c", script])
    }

    fn jsonl(&self, id: &str) -> PathBuf {
        self.state.join("sessions").join(id).join("audit.jsonl")
    }
}

fn lines_json(s: &str) -> Vec<J> {
    s.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn find<'a>(evs: &'a [J], kind: &str, pred: impl Fn(&J) -> bool) -> &'a J {
    evs.iter()
        .find(|e| e["kind"] == kind && pred(e))
        .unwrap_or_else(|| {
            panic!(
                "no {kind} event matching; got:\n{}",
                evs.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        })
}

fn pid_of(o: &Output, tag: &str) -> i64 {
    stdout(o)
        .lines()
        .find_map(|l| l.strip_prefix(tag))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {tag} in {}", stdout(o)))
}

/// Every expected event, with its type, path, pid and reason code, in the
/// JSONL file, in `audit tail --json`, and at an OTLP receiver.
#[test]
fn writes_deletes_and_denials_are_recorded_per_process_everywhere() {
    let a = Audited::new();
    let ws = &a.ws;
    std::fs::write(ws.proj.join("keep.txt"), "one\n").unwrap();
    std::fs::write(ws.proj.join("gone.txt"), "bye\n").unwrap();
    let nodel = ws.outside.join("nodel");
    std::fs::create_dir(&nodel).unwrap();
    std::fs::write(nodel.join("precious.txt"), "keep me\n").unwrap();
    let policy = ws.root.join("policy.toml");
    std::fs::write(
        &policy,
        "version = 1\n[network]\nmode = \"proxy\"\nallow = []\n[audit]\nlevel = \"writes\"\n",
    )
    .unwrap();
    let probe = probe_bin();
    let o = a.pd(&[
        "session",
        "start",
        "--policy",
        policy.to_str().unwrap(),
        "--mount",
        &format!("{}:rw-no-delete", nodel.display()),
        "--mount",
        &format!("{}:ro", probe.display()),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let id = stdout(&o).trim().to_string();

    // Writes, by the shell itself and by a child (rm).
    let o = a.exec(
        &id,
        "call_write",
        "echo \"SH=$$\"; echo data > new.txt; echo two >> keep.txt; rm gone.txt",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let sh_write = pid_of(&o, "SH=");
    // Refusals: a system folder, a no-delete mount, a direct connection,
    // a denied system call, a host the proxy does not allow.
    let script = format!(
        "echo \"SH=$$\"; echo x > /usr/bin/paddock-evil; rm {nodel}/precious.txt; \
         bash -c 'exec 3<>/dev/tcp/192.0.2.1/80' 2>/dev/null; {probe} bpf; \
         curl -s -o /dev/null http://denied.example/; true",
        nodel = nodel.display(),
        probe = probe.display()
    );
    let o = a.exec(&id, "call_deny", &script);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let sh_deny = pid_of(&o, "SH=");
    assert!(nodel.join("precious.txt").exists());
    // Host visibility: the supervisor's child is the sandbox's init, named
    // so in `ps`.
    let list: J = serde_json::from_slice(&a.pd(&["session", "list", "--json"]).stdout).unwrap();
    let sup = list[0]["supervisor_pid"].as_u64().expect("running");
    let kids = std::fs::read_dir(format!("/proc/{sup}/task"))
        .unwrap()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .collect::<String>();
    let comms: Vec<String> = kids
        .split_whitespace()
        .filter_map(|k| std::fs::read_to_string(format!("/proc/{k}/comm")).ok())
        .map(|c| c.trim().to_string())
        .collect();
    assert!(comms.iter().any(|c| c == "paddock-init"), "{comms:?}");

    let check = |evs: &[J], source: &str| {
        let proj = ws.proj.display().to_string();
        let e = find(evs, "file.create", |e| {
            e["data"]["path"] == format!("{proj}/new.txt")
        });
        assert_eq!(e["data"]["pid"], sh_write, "{source}: {e}");
        assert_eq!(e["reason_code"], "FS_ALLOWED");
        assert_eq!(e["tool_call_id"], "call_write");
        assert_eq!(e["session"], id.as_str());
        let e = find(evs, "file.modify", |e| {
            e["data"]["path"] == format!("{proj}/keep.txt")
        });
        assert_eq!(e["data"]["pid"], sh_write, "{source}: {e}");
        let del = find(evs, "file.delete", |e| {
            e["data"]["path"] == format!("{proj}/gone.txt")
        });
        // The delete is rm's, attributed to rm's own pid.
        let rm = find(evs, "process.exec", |e| {
            e["data"]["argv"][0] == "rm" && e["data"]["argv"][1] == "gone.txt"
        });
        assert_eq!(del["data"]["pid"], rm["data"]["pid"], "{source}");
        assert_ne!(del["data"]["pid"], sh_write);

        let e = find(evs, "file.denied", |e| {
            e["data"]["path"] == "/usr/bin/paddock-evil"
        });
        assert_eq!(e["allowed"], false);
        assert_eq!(e["reason_code"], "FS_WRITE_READ_ONLY", "{source}: {e}");
        assert_eq!(e["data"]["op"], "write");
        assert_eq!(e["data"]["pid"], sh_deny);
        assert_eq!(e["tool_call_id"], "call_deny");
        let e = find(evs, "file.denied", |e| {
            e["data"]["path"] == format!("{}/precious.txt", nodel.display())
        });
        assert_eq!(e["reason_code"], "FS_DELETE_NO_DELETE", "{source}: {e}");
        assert_eq!(e["data"]["op"], "delete");
        if tun_usable() {
            // The direct connection went out the TUN device to the judge,
            // which refused the address literal.
            let e = find(evs, "net.decision", |e| {
                e["data"]["host"] == "192.0.2.1" && e["data"]["via"] == "transparent"
            });
            assert_eq!(e["allowed"], false);
            assert_eq!(e["reason_code"], "NET_IP_LITERAL", "{source}: {e}");
            assert_eq!(e["data"]["port"], 80);
        } else {
            // No TUN device: no route at all, as the observer records.
            let e = find(evs, "net.denied", |e| e["data"]["addr"] == "192.0.2.1:80");
            assert_eq!(e["reason_code"], "NET_DIRECT_BLOCKED", "{source}: {e}");
            assert!(e["data"]["pid"].as_i64().unwrap() > 1);
        }
        let e = find(evs, "syscall.denied", |e| e["data"]["syscall"] == "bpf");
        assert_eq!(e["reason_code"], "SYSCALL_DENIED", "{source}: {e}");
        let e = find(evs, "net.decision", |e| {
            e["data"]["host"] == "denied.example"
        });
        assert_eq!(e["allowed"], false);
        assert_eq!(e["reason_code"], "NET_DOMAIN_NOT_ALLOWED", "{source}: {e}");
        // One log, in order; a command's start precedes what it did.
        let mut started = Vec::new();
        for (i, e) in evs.iter().enumerate() {
            assert_eq!(e["seq"], i + 1, "{source}");
            let x = &e["data"]["exec_id"];
            if e["kind"] == "exec.start" {
                started.push(x.clone());
            } else if !x.is_null() {
                assert!(started.contains(x), "{source}: {e} before its exec.start");
            }
        }
    };

    let file = std::fs::read_to_string(a.jsonl(&id)).unwrap();
    check(&lines_json(&file), "audit.jsonl");
    let o = a.pd(&["audit", "tail", "--session", &id, "--json"]);
    check(&lines_json(&stdout(&o)), "audit tail --json");
    let o = a.pd(&["audit", "tail", "--session", &id, "--json", "--denied"]);
    let denied = lines_json(&stdout(&o));
    assert!(denied.len() >= 5 && denied.iter().all(|e| e["allowed"] == false));

    // Stopping the session flushes the export.
    assert_eq!(a.pd(&["session", "stop", &id]).status.code(), Some(0));
    assert!(
        wait_until(Duration::from_secs(10), || a
            .otlp
            .logs()
            .iter()
            .any(|l| l.event_name == "paddock.net.decision")),
        "the receiver got no network decision"
    );
    let spans = a.otlp.spans();
    let span = spans
        .iter()
        .find(|s| text(&s.attributes, "gen_ai.tool.call.id").as_deref() == Some("call_deny"))
        .expect("a span for the second command");
    assert_eq!(span.name, "execute_tool sh");
    assert_eq!(
        text(&span.attributes, "gen_ai.operation.name").as_deref(),
        Some("execute_tool")
    );
    assert_eq!(
        text(&span.attributes, "session.id").as_deref(),
        Some(id.as_str())
    );
    assert_eq!(
        attr(&span.attributes, "process.exit.code"),
        Some(Value::IntValue(0))
    );
    let logs = a.otlp.logs();
    let denial = logs
        .iter()
        .find(|l| {
            l.event_name == "paddock.file.denied"
                && text(&l.attributes, "file.path").as_deref() == Some("/usr/bin/paddock-evil")
        })
        .expect("the denied write as a log record");
    assert_eq!(
        text(&denial.attributes, "paddock.reason_code").as_deref(),
        Some("FS_WRITE_READ_ONLY")
    );
    assert_eq!(
        attr(&denial.attributes, "process.pid"),
        Some(Value::IntValue(sh_deny))
    );
    assert_eq!(denial.severity_number, 13);
    // Attached to the span of the command that caused it.
    assert_eq!(denial.span_id, span.span_id);
    assert_eq!(denial.trace_id, span.trace_id);
    let (event, code) = if tun_usable() {
        ("paddock.net.decision", "NET_IP_LITERAL")
    } else {
        ("paddock.net.denied", "NET_DIRECT_BLOCKED")
    };
    assert!(logs.iter().any(|l| l.event_name == event
        && text(&l.attributes, "paddock.reason_code").as_deref() == Some(code)));
    let _ = a.pd(&["session", "rm", &id]);
}

/// A one-shot `paddock run` keeps its own audit trail; the agent's
/// TRACEPARENT makes the command's span a child of the agent's span.
#[test]
fn a_run_is_recorded_and_nests_under_the_callers_trace() {
    let a = Audited::new();
    let o = a
        .cmd()
        .env(
            "TRACEPARENT",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .env("PADDOCK_TOOL_CALL_ID", "toolu_run")
        .args([
            "run",
            "--",
            "sh",
            "-c",
            "echo \"S=$PADDOCK_SESSION\"; echo hi > made.txt; echo nope > /etc/paddock-x",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let sessions: Vec<J> =
        serde_json::from_slice(&a.pd(&["session", "list", "--json"]).stdout).unwrap();
    let run = sessions
        .iter()
        .find(|s| s["oneshot"] == true)
        .expect("the run has a record");
    assert_eq!(run["state"], "stopped");
    let id = run["id"].as_str().unwrap();
    // The command's environment names its record, for host tools.
    assert!(stdout(&o).contains(&format!("S={id}")), "{}", stdout(&o));
    let evs = lines_json(&std::fs::read_to_string(a.jsonl(id)).unwrap());
    let kinds: Vec<&str> = evs.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"session.start"));
    assert_eq!(kinds.last(), Some(&"session.stop"));
    let made = find(&evs, "file.create", |e| {
        e["data"]["path"] == format!("{}/made.txt", a.ws.proj.display())
    });
    assert_eq!(made["tool_call_id"], "toolu_run");
    find(&evs, "file.denied", |e| {
        e["data"]["path"] == "/etc/paddock-x"
    });
    let exit = find(&evs, "exec.exit", |_| true);
    assert_eq!(exit["data"]["exit_code"], 2);
    // The run flushes its export before it returns.
    let spans = a.otlp.spans();
    let span = spans.first().expect("the run's span");
    assert_eq!(span.name, "execute_tool sh");
    assert_eq!(
        span.trace_id,
        [
            0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e,
            0x47, 0x36
        ]
    );
    assert_eq!(
        span.parent_span_id,
        [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
    );
    assert_eq!(span.status.as_ref().unwrap().code, 2, "exit 2 is an error");
}

/// Levels: `off` records nothing, `denied` only refusals.
#[test]
fn audit_levels_choose_what_is_recorded() {
    let a = Audited::new();
    let run = |level: &str| -> Vec<J> {
        let policy = a.ws.root.join(format!("{level}.toml"));
        std::fs::write(
            &policy,
            format!("version = 1\n[audit]\nlevel = \"{level}\"\n"),
        )
        .unwrap();
        let before: Vec<String> = list_ids(&a);
        let o = a
            .cmd()
            .args([
                "run",
                "--policy",
                policy.to_str().unwrap(),
                "--",
                "sh",
                "-c",
            ])
            .arg(format!(
                "echo a > w-{level}.txt; echo b > /usr/nope; cat w-{level}.txt > /dev/null"
            ))
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let new: Vec<String> = list_ids(&a)
            .into_iter()
            .filter(|i| !before.contains(i))
            .collect();
        new.first()
            .map(|id| lines_json(&std::fs::read_to_string(a.jsonl(id)).unwrap_or_default()))
            .unwrap_or_default()
    };
    assert!(run("off").is_empty(), "level off keeps no record");
    let denied = run("denied");
    assert!(denied
        .iter()
        .all(|e| e["allowed"] == false || e["kind"].as_str().unwrap().starts_with("session.")));
    find(&denied, "file.denied", |e| e["data"]["path"] == "/usr/nope");
    let writes = run("writes");
    find(&writes, "file.create", |_| true);
    assert!(!writes.iter().any(|e| e["kind"] == "file.read"));
    let all = run("all");
    find(&all, "file.read", |e| {
        e["data"]["path"] == format!("{}/w-all.txt", a.ws.proj.display())
    });
}

/// A flood of one denied call is not recorded call by call, but every
/// refusal is counted in the trail: the records of `unshare`, each
/// standing for itself plus its `suppressed` count, add up to exactly the
/// calls made, in `paddock run` (the rest recorded when the command ends)
/// and in a session's exec (when its command tree is gone). Spending the
/// budget on harmless calls first hides nothing.
#[test]
fn a_flood_of_denied_calls_is_counted_to_the_last_call() {
    let a = Audited::new();
    let policy = a.ws.root.join("all.toml");
    std::fs::write(&policy, "version = 1\n[audit]\nlevel = \"all\"\n").unwrap();
    let policy = policy.to_str().unwrap();
    // 257 refused unshare(CLONE_NEWUSER) calls from one process.
    let flood = "import ctypes; c = ctypes.CDLL(None); \
                 r = [c.unshare(0x10000000) for _ in range(257)]; \
                 print('refused', r.count(-1))";
    let counted = |evs: &[J]| -> u64 {
        evs.iter()
            .filter(|e| e["kind"] == "syscall.denied" && e["data"]["syscall"] == "unshare")
            .map(|e| 1 + e["data"]["suppressed"].as_u64().unwrap_or(0))
            .sum()
    };
    let before = list_ids(&a);
    let o = a
        .cmd()
        .args(["run", "--policy", policy, "--", "python3", "-c", flood])
        .output()
        .unwrap();
    assert!(
        stdout(&o).contains("refused 257"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    let id = list_ids(&a)
        .into_iter()
        .find(|i| !before.contains(i))
        .expect("the run's record");
    let evs = lines_json(&std::fs::read_to_string(a.jsonl(&id)).unwrap());
    assert_eq!(counted(&evs), 257, "run: {evs:?}");
    let records = evs.iter().filter(|e| e["kind"] == "syscall.denied").count();
    assert!(
        records < 30,
        "a flood must not be recorded call by call: {records}"
    );

    let o = a.pd(&["session", "start", "--policy", policy]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let sid = stdout(&o).trim().to_string();
    let o = a.pd(&["exec", &sid, "--", "python3", "-c", flood]);
    assert!(
        stdout(&o).contains("refused 257"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    assert!(
        wait_until(Duration::from_secs(10), || {
            let evs = lines_json(&std::fs::read_to_string(a.jsonl(&sid)).unwrap_or_default());
            counted(&evs) == 257
        }),
        "session: {}",
        std::fs::read_to_string(a.jsonl(&sid)).unwrap_or_default()
    );
}

fn list_ids(a: &Audited) -> Vec<String> {
    let v: J =
        serde_json::from_slice(&a.pd(&["session", "list", "--json"]).stdout).unwrap_or(J::Null);
    v.as_array()
        .map(|l| {
            l.iter()
                .filter_map(|s| s["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// kill -9 of the supervisor while a command floods the log leaves every
/// line but possibly the last valid, numbered without gaps; the session's
/// next supervisor continues the numbering after it.
#[test]
fn a_supervisor_killed_while_logging_hard_leaves_a_valid_log() {
    let a = Audited::new();
    let o = a.pd(&["session", "start"]);
    let id = stdout(&o).trim().to_string();
    let flood = "i=0; while [ $i -lt 200000 ]; do : > f$((i % 64)); i=$((i+1)); done";
    let mut child = a
        .cmd()
        .args(["exec", &id, "--", "sh", "-c", flood])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let log = a.jsonl(&id);
    let count = |p: &Path| {
        std::fs::read(p)
            .map(|d| d.iter().filter(|b| **b == b'\n').count())
            .unwrap_or(0)
    };
    assert!(
        wait_until(Duration::from_secs(30), || count(&log) > 3000),
        "the flood did not reach the log"
    );
    let list: J = serde_json::from_slice(&a.pd(&["session", "list", "--json"]).stdout).unwrap();
    let sup = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id.as_str())
        .and_then(|s| s["supervisor_pid"].as_u64())
        .and_then(|p| u32::try_from(p).ok())
        .expect("a running supervisor");
    signal(sup, "KILL");
    let _ = child.wait();
    std::thread::sleep(Duration::from_millis(200));
    let data = std::fs::read(&log).unwrap();
    let lines: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    let (last, complete) = lines.split_last().unwrap();
    for (i, l) in complete.iter().enumerate() {
        let e: J = serde_json::from_slice(l).unwrap_or_else(|err| {
            panic!(
                "line {} is damaged ({err}): {}",
                i + 1,
                String::from_utf8_lossy(l)
            )
        });
        assert_eq!(e["seq"], i + 1, "numbered without gaps");
    }
    // A torn tail, if any, is a prefix of one line, never more.
    assert!(!last.contains(&b'\n'));
    let n = complete.len();
    assert!(n > 3000);
    // The session goes on: the next exec restarts it and numbering follows.
    let o = a.pd(&["exec", &id, "--", "sh", "-c", "echo next > after.txt"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let evs = paddock_read(&a, &id);
    let after = find(&evs, "file.create", |e| {
        e["data"]["path"] == format!("{}/after.txt", a.ws.proj.display())
    });
    assert!(after["seq"].as_u64().unwrap() > n as u64);
    let _ = a.pd(&["session", "rm", &id]);
}

fn paddock_read(a: &Audited, id: &str) -> Vec<J> {
    lines_json(&stdout(&a.pd(&[
        "audit",
        "tail",
        "--session",
        id,
        "--json",
    ])))
}

/// Every run leaves a record, and records do not pile up: past the
/// retention count they are collected automatically; a session whose
/// supervisor died is kept (its trail and changes) by that automatic
/// collection.
#[test]
fn run_records_are_collected_automatically() {
    let a = Audited::new();
    let policy = a.ws.root.join("keep2.toml");
    std::fs::write(&policy, "version = 1\n[session.retention]\nmax_count = 2\n").unwrap();
    // A session whose supervisor is killed.
    let id = stdout(&a.pd(&["session", "start"])).trim().to_string();
    assert_eq!(a.pd(&["exec", &id, "--", "true"]).status.code(), Some(0));
    let list: J = serde_json::from_slice(&a.pd(&["session", "list", "--json"]).stdout).unwrap();
    let sup = list[0]["supervisor_pid"]
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
        .unwrap();
    signal(sup, "KILL");
    for _ in 0..24 {
        let o = a
            .cmd()
            .args(["run", "--policy", policy.to_str().unwrap(), "--", "true"])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    let left = list_ids(&a);
    assert!(left.len() <= 2 + 16 + 1, "{} records left", left.len());
    assert!(left.contains(&id), "the dead session's record was kept");
}
