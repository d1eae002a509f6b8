//! `paddock status` and the dashboard: the JSON form against its schema,
//! the dashboard's guards (token, Host, Origin) with raw requests, and the
//! whole page in a real Chromium driven by playwright-core.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::Value as J;

use crate::util::*;

struct Dash {
    ws: Ws,
    state: PathBuf,
    child: Child,
    port: u16,
    token: String,
    url: String,
}

impl Dash {
    fn start() -> Dash {
        let ws = Ws::new();
        let state = ws.root.join("state");
        let mut child = ws
            .paddock()
            .env("PADDOCK_HOME", &state)
            .args(["dashboard", "--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .to_string();
        let port = url
            .trim_start_matches("http://127.0.0.1:")
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let token = url.rsplit("token=").next().unwrap().to_string();
        Dash {
            ws,
            state,
            child,
            port,
            token,
            url,
        }
    }

    fn pd(&self, args: &[&str]) -> std::process::Output {
        self.ws
            .paddock()
            .env("PADDOCK_HOME", &self.state)
            .args(args)
            .output()
            .unwrap()
    }

    /// One raw HTTP/1.1 request; (status, headers + body as text).
    fn raw(&self, method: &str, path: &str, headers: &[(&str, String)]) -> (u16, String) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let mut req =
            format!("{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: 0\r\n");
        let mut has_host = false;
        for (k, v) in headers {
            has_host |= k.eq_ignore_ascii_case("host");
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if !has_host {
            req.push_str(&format!("Host: 127.0.0.1:{}\r\n", self.port));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).unwrap();
        // The server closes after answering; a reset after the answer is
        // not a failure.
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match s.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if !buf.is_empty() => {
                    let _ = e;
                    break;
                }
                Err(e) => panic!("no answer to {method} {path}: {e}"),
            }
        }
        let out = String::from_utf8_lossy(&buf).into_owned();
        let code = out.split_whitespace().nth(1).unwrap().parse().unwrap();
        (code, out)
    }
}

impl Drop for Dash {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let v: J = serde_json::from_slice(&self.pd(&["session", "list", "--json"]).stdout)
            .unwrap_or(J::Null);
        for s in v.as_array().cloned().unwrap_or_default() {
            if let Some(id) = s["id"].as_str() {
                let _ = self.pd(&["session", "rm", id]);
            }
        }
    }
}

/// Requests without the token, with a foreign Host (DNS rebinding) or a
/// foreign Origin (CSRF) are refused; the right ones get the page with a
/// strict content security policy.
#[test]
fn dashboard_refuses_requests_without_token_foreign_host_or_origin() {
    let d = Dash::start();
    let t = d.token.clone();
    let (code, body) = d.raw("GET", "/", &[]);
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("DASHBOARD_TOKEN_REQUIRED"));
    let (code, _) = d.raw(
        "GET",
        "/api/status?token=00000000000000000000000000000000",
        &[],
    );
    assert_eq!(code, 401);
    let (code, body) = d.raw(
        "GET",
        &format!("/api/status?token={t}"),
        &[("Host", format!("attacker.example:{}", d.port))],
    );
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("DASHBOARD_BAD_HOST"));
    let (code, body) = d.raw(
        "POST",
        &format!("/api/gc?token={t}"),
        &[("Origin", "http://attacker.example".into())],
    );
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("DASHBOARD_BAD_ORIGIN"));
    // A state change is POST only.
    let (code, _) = d.raw("GET", &format!("/api/gc?token={t}"), &[]);
    assert_eq!(code, 404);
    // The right request: the page, hardened.
    let (code, body) = d.raw(
        "GET",
        &format!("/?token={t}"),
        &[("Origin", format!("http://127.0.0.1:{}", d.port))],
    );
    assert_eq!(code, 200);
    let lower = body.to_ascii_lowercase();
    assert!(lower.contains("content-security-policy: default-src 'none'"));
    assert!(lower.contains("x-frame-options: deny"));
    assert!(lower.contains("referrer-policy: no-referrer"));
    let (code, body) = d.raw("GET", "/api/status", &[("X-Paddock-Token", t.clone())]);
    assert_eq!(code, 200, "{body}");
    // Only loopback is listened on.
    assert!(
        std::net::TcpStream::connect(("0.0.0.0", d.port)).is_ok_and(|s| s
            .peer_addr()
            .unwrap()
            .ip()
            .is_loopback())
    );
}

/// `status --json` follows schema/status.schema.json: every required field
/// of every object is there, with its type; and it reports a live session's
/// memory, mounts and denials.
#[test]
fn status_json_follows_its_schema_and_reports_a_live_session() {
    let d = Dash::start();
    let o = d.pd(&["status", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: J = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["running"], false);
    assert_eq!(v["sessions"], J::Array(vec![]));
    let id = stdout(&d.pd(&["session", "start", "--name", "st"]))
        .trim()
        .to_string();
    let o = d.pd(&[
        "exec",
        "st",
        "--",
        "sh",
        "-c",
        "echo x > /usr/bin/nope 2>/dev/null; true",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let o = d.pd(&["status", "--json"]);
    let v: J = serde_json::from_slice(&o.stdout).unwrap();
    let schema: J = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../schema/status.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    conforms(&v, &schema, &schema, "$");
    assert_eq!(v["version"], 1);
    assert_eq!(v["running"], true);
    let s = &v["sessions"][0];
    assert_eq!(s["id"], id.as_str());
    assert_eq!(s["state"], "running");
    assert!(s["rss_kib"].as_u64().unwrap() > 1000, "{s}");
    let mounts = s["sandbox"]["mounts"].as_array().unwrap();
    assert!(mounts
        .iter()
        .any(|m| m["mode"] == "rw" && m["target"] == d.ws.proj.display().to_string()));
    assert_eq!(s["sandbox"]["egress"]["mode"], "none");
    assert!(v["recent_denials"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["reason_code"] == "FS_WRITE_READ_ONLY" && x["session"] == id.as_str()));
    // The human form fits 80 columns.
    let o = d.pd(&["status"]);
    for l in stdout(&o).lines() {
        assert!(l.chars().count() <= 80, "too wide: {l}");
    }
}

/// A minimal JSON Schema check (types, required properties, items,
/// `$ref`s, nullable unions) of `v` against `s`.
fn conforms(v: &J, s: &J, root: &J, at: &str) {
    if let Some(r) = s["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap();
        return conforms(v, &root["$defs"][name], root, at);
    }
    if let Some(any) = s["anyOf"].as_array() {
        assert!(
            any.iter()
                .any(|alt| std::panic::catch_unwind(|| conforms(v, alt, root, at)).is_ok()),
            "{at}: matches no alternative"
        );
        return;
    }
    let types: Vec<&str> = match &s["type"] {
        J::String(t) => vec![t.as_str()],
        J::Array(a) => a.iter().filter_map(|x| x.as_str()).collect(),
        _ => vec![],
    };
    if !types.is_empty() {
        let actual = match v {
            J::Null => "null",
            J::Bool(_) => "boolean",
            J::Number(n) if n.is_u64() || n.is_i64() => "integer",
            J::Number(_) => "number",
            J::String(_) => "string",
            J::Array(_) => "array",
            J::Object(_) => "object",
        };
        assert!(
            types.contains(&actual) || (actual == "integer" && types.contains(&"number")),
            "{at}: {actual} where the schema says {types:?}"
        );
    }
    if let (Some(props), J::Object(o)) = (s["properties"].as_object(), v) {
        for r in s["required"].as_array().into_iter().flatten() {
            let r = r.as_str().unwrap();
            assert!(o.contains_key(r), "{at}: missing {r}");
        }
        for (k, sub) in props {
            if let Some(x) = o.get(k) {
                conforms(x, sub, root, &format!("{at}.{k}"));
            }
        }
        for k in o.keys() {
            assert!(props.contains_key(k), "{at}: {k} is not in the schema");
        }
    }
    if let (Some(items), J::Array(a)) = (s.get("items"), v) {
        for (i, x) in a.iter().enumerate() {
            if items.is_object() {
                conforms(x, items, root, &format!("{at}[{i}]"));
            }
        }
    }
}

/// The page in Debian's Chromium, driven by playwright-core: a session
/// appears live after a command runs, its denial shows in the audit
/// stream, the stop button stops it; screenshots are kept.
#[test]
fn dashboard_in_a_real_browser() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script = repo.join("tests/browser/dashboard.mjs");
    let modules = repo.join("tests/browser/node_modules/playwright-core");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        modules.exists() && std::path::Path::new(&chromium).exists(),
        "the browser test needs Debian's chromium and playwright-core: \
         `apt-get install chromium` and `npm ci --prefix tests/browser` (.ci/run does both)"
    );
    let d = Dash::start();
    // Artifacts next to the build when writable (CI keeps target/), else
    // in the test's own folder.
    let artifacts = {
        let t = repo.join("target/test-artifacts");
        if std::fs::create_dir_all(&t).is_ok() && tempfile_ok(&t) {
            t
        } else {
            d.ws.root.join("artifacts")
        }
    };
    let o = Command::new("node")
        .arg(&script)
        .current_dir(&d.ws.proj)
        .env("DASHBOARD_URL", &d.url)
        .env("PADDOCK_BIN", paddock_bin())
        .env("PADDOCK_HOME", &d.state)
        .env("HOME", &d.ws.home)
        .env("WORKDIR", &d.ws.proj)
        .env("ARTIFACTS", &artifacts)
        .env("CHROMIUM", &chromium)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .stdin(Stdio::null())
        .output()
        .expect("node runs");
    assert_eq!(
        o.status.code(),
        Some(0),
        "browser test failed (screenshots in {}):\n{}\n{}",
        artifacts.display(),
        stdout(&o),
        stderr(&o)
    );
    for f in ["dashboard-live.png", "dashboard-stopped.png"] {
        let png = std::fs::read(artifacts.join(f)).unwrap();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{f}");
    }
    eprintln!("screenshots: {}", artifacts.display());
}

fn tempfile_ok(dir: &std::path::Path) -> bool {
    let p = dir.join(format!(".probe-{}", std::process::id()));
    let ok = std::fs::write(&p, b"x").is_ok();
    let _ = std::fs::remove_file(p);
    ok
}
