//! Policy layers, locks, and `policy explain` checked against real
//! sandboxes on the same cases.

use std::path::Path;
use std::process::Output;

use crate::util::*;

/// A workspace with its own user config folder and admin folder.
struct PolicyWs {
    ws: Ws,
}

impl PolicyWs {
    fn new() -> Self {
        let ws = Ws::new();
        std::fs::create_dir_all(ws.root.join("config/paddock")).unwrap();
        std::fs::create_dir_all(ws.root.join("etc/policy.d")).unwrap();
        PolicyWs { ws }
    }
    fn user(&self, text: &str) {
        std::fs::write(self.ws.root.join("config/paddock/policy.toml"), text).unwrap();
    }
    fn project(&self, text: &str) {
        std::fs::create_dir_all(self.ws.proj.join(".paddock")).unwrap();
        std::fs::write(self.ws.proj.join(".paddock/policy.toml"), text).unwrap();
    }
    fn admin(&self, text: &str) {
        std::fs::write(self.ws.root.join("etc/policy.toml"), text).unwrap();
    }
    fn paddock(&self, args: &[&str]) -> Output {
        self.ws
            .paddock()
            .env("XDG_CONFIG_HOME", self.ws.root.join("config"))
            .env("PADDOCK_TEST_ADMIN_DIR", self.ws.root.join("etc"))
            .args(args)
            .output()
            .unwrap()
    }
}

#[test]
fn project_policy_that_widens_network_is_refused_with_file_and_line() {
    let p = PolicyWs::new();
    p.project("version = 1\n[network]\nmode = \"proxy\"\nallow = [\"attacker.example\"]\n");
    let o = p.paddock(&["run", "--", "sh", "-c", "echo started"]);
    assert_eq!(o.status.code(), Some(125));
    let err = stderr(&o);
    assert!(err.contains("POLICY_PROJECT_LOOSENS"), "{err}");
    assert!(err.contains(".paddock/policy.toml:3:8"), "{err}");
    assert!(
        err.contains("allow = [\"attacker.example\"]"),
        "the offending line is shown: {err}"
    );
    assert!(!stdout(&o).contains("started"));
    // check reports the same, with exit 1
    let o = p.paddock(&["policy", "check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("POLICY_PROJECT_LOOSENS"));
}

#[test]
fn project_policy_can_tighten_the_workspace() {
    let p = PolicyWs::new();
    p.project("version = 1\n[filesystem]\nworkspace = \"ro\"\n");
    let o = p.paddock(&["run", "--", "sh", "-c", "touch x"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(!p.ws.proj.join("x").exists());
    let o = p.paddock(&["policy", "show", "--effective", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let ws = v["effective"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["key"] == "filesystem.workspace")
        .unwrap();
    assert_eq!(ws["value"], "ro");
    assert_eq!(ws["layer"], "project");
    assert_eq!(ws["line"], 3);
    assert!(ws["file"]
        .as_str()
        .unwrap()
        .ends_with(".paddock/policy.toml"));
}

#[test]
fn user_layer_applies_and_flags_override_it() {
    let p = PolicyWs::new();
    p.user("version = 1\n[filesystem]\nworkspace = \"ro\"\n");
    let o = p.paddock(&["run", "--", "sh", "-c", "touch a"]);
    assert_ne!(o.status.code(), Some(0));
    let o = p.paddock(&["run", "--mount", ".:rw", "--", "sh", "-c", "touch b"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(p.ws.proj.join("b").exists());
}

#[test]
fn admin_lock_refuses_user_setting_with_both_locations() {
    let p = PolicyWs::new();
    p.admin("version = 1\n[admin]\nlock = [\"filesystem.workspace\"]\n[filesystem]\nworkspace = \"cow\"\n");
    p.user("version = 1\n[filesystem]\nworkspace = \"rw\"\n");
    let o = p.paddock(&["run", "--", "true"]);
    assert_eq!(o.status.code(), Some(125));
    let err = stderr(&o);
    assert!(err.contains("POLICY_LOCKED_BY_ADMIN"), "{err}");
    assert!(err.contains("config/paddock/policy.toml:3:13"), "{err}");
    assert!(
        err.contains("etc/policy.toml:3"),
        "the lock's origin is named: {err}"
    );
}

#[test]
fn admin_layer_wins_over_flags() {
    let p = PolicyWs::new();
    p.admin("version = 1\n[filesystem]\nworkspace = \"cow\"\n");
    let o = p.paddock(&[
        "run",
        "--",
        "sh",
        "-c",
        "echo x > made-here && cat made-here",
    ]);
    assert_eq!(stdout(&o).trim(), "x", "{}", stderr(&o));
    assert!(
        !p.ws.proj.join("made-here").exists(),
        "cow: nothing reached the folder"
    );
}

#[test]
fn admin_disables_exec_and_everything_else_keeps_working() {
    let p = PolicyWs::new();
    p.admin("version = 1\n[admin]\nexec = \"disabled\"\n");
    let marker = p.ws.proj.join("ran");
    let o = p.paddock(&["run", "--", "touch", marker.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("EXEC_DISABLED_BY_ADMIN"),
        "{}",
        stderr(&o)
    );
    assert!(!marker.exists());
    let o = p.paddock(&["policy", "explain", "exec"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("EXEC_DISABLED_BY_ADMIN"));
    assert_eq!(p.paddock(&["policy", "show"]).status.code(), Some(0));
    assert_eq!(p.paddock(&["policy", "check"]).status.code(), Some(0));
    assert_eq!(p.paddock(&["doctor", "--json"]).status.code(), Some(0));
}

#[test]
fn bad_policy_corpus_gives_precise_errors_and_starts_nothing() {
    let p = PolicyWs::new();
    let marker = p.ws.proj.join("started");
    for (text, line) in [
        ("version = 1\n[filesystem\n", 2),
        ("version = 1\n[process.limits]\npids = \"many\"\n", 3),
        ("version = 1\n[filesystem]\nmounts = []\n", 3),
        (
            "version = 1\n[[filesystem.mount]]\npath = \"/x\"\ntarget = \"/proc/1\"\n",
            4,
        ),
        ("version = 1\n[audit]\nsinks = [\"syslog\"]\n", 3),
        (
            "version = 1\n[audit]\notlp_endpoint = \"collector:4318\"\n",
            3,
        ),
        ("version = 1\n[audit]\nlevel = \"verbose\"\n", 3),
    ] {
        let f = p.ws.root.join("bad.toml");
        std::fs::write(&f, text).unwrap();
        let o = p.paddock(&[
            "run",
            "--policy",
            f.to_str().unwrap(),
            "--",
            "touch",
            marker.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(125), "{text}");
        assert!(
            stderr(&o).contains(&format!("bad.toml:{line}:")),
            "{text}: {}",
            stderr(&o)
        );
        assert!(!marker.exists(), "{text}: a sandbox ran");
    }
}

/// `policy explain` must agree with what the sandbox actually does.
#[test]
fn explain_agrees_with_the_sandbox() {
    let p = PolicyWs::new();
    let ws = &p.ws;
    std::fs::create_dir_all(ws.home.join(".ssh")).unwrap();
    std::fs::write(ws.home.join(".ssh/id_rsa"), "KEY").unwrap();
    std::fs::write(ws.proj.join("notes.md"), "n").unwrap();
    std::fs::create_dir_all(ws.proj.join(".git")).unwrap();
    std::fs::create_dir_all(ws.outside.join("ro")).unwrap();
    std::fs::write(ws.outside.join("ro/f"), "f").unwrap();
    std::fs::write(ws.outside.join("secret"), "s").unwrap();
    let ro_mount = format!("{}:ro", ws.outside.join("ro").display());
    let key = ws.home.join(".ssh/id_rsa");
    let rof = ws.outside.join("ro/f");
    let sec = ws.outside.join("secret");
    let cases: Vec<(Vec<&str>, &str, &str, &str)> = vec![
        // (extra flags, op, path, expected code)
        (
            vec![],
            "read",
            key.to_str().unwrap(),
            "FS_READ_OUTSIDE_MOUNTS",
        ),
        (
            vec![],
            "read",
            sec.to_str().unwrap(),
            "FS_READ_OUTSIDE_MOUNTS",
        ),
        (vec![], "read", "notes.md", "FS_ALLOWED"),
        (vec![], "write", "notes.md", "FS_ALLOWED"),
        (vec![], "write", ".git/config", "FS_WRITE_PROTECTED"),
        (vec![], "write", "/usr/bin/x", "FS_WRITE_READ_ONLY"),
        (vec![], "read", "/usr/bin/env", "FS_READ_SYSTEM"),
        (
            vec!["--mount", &ro_mount],
            "write",
            rof.to_str().unwrap(),
            "FS_WRITE_READ_ONLY",
        ),
        (
            vec!["--mount", &ro_mount],
            "read",
            rof.to_str().unwrap(),
            "FS_ALLOWED",
        ),
        (
            vec!["--mount", ".:rw-no-delete"],
            "delete",
            "notes.md",
            "FS_DELETE_NO_DELETE",
        ),
        (
            vec!["--mount", ".:rw-no-delete"],
            "write",
            "notes.md",
            "FS_ALLOWED",
        ),
        (vec![], "delete", "notes.md", "FS_ALLOWED"),
    ];
    for (extra, op, path, code) in cases {
        let mut args = vec!["policy", "explain", "--json"];
        args.extend(extra.iter().copied());
        args.extend([op, path]);
        let o = p.paddock(&args);
        let v: serde_json::Value =
            serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", stderr(&o)));
        assert_eq!(v["reason_code"], code, "{op} {path} {extra:?}: {v}");
        let allowed = v["allowed"].as_bool().unwrap();
        // The same action in a real sandbox.
        let probe_action = match op {
            "read" => vec!["read", path],
            "write" => vec!["write", path, "x"],
            _ => vec!["unlink", path],
        };
        let r = ws.probe(&extra, &probe_action);
        let sandbox_allowed = r.status.code() == Some(0);
        assert_eq!(
            allowed,
            sandbox_allowed,
            "explain says {allowed} for {op} {path} {extra:?}, sandbox: {}",
            stdout(&r)
        );
        // Reset what a successful write or delete changed.
        if op != "read" && Path::new(&ws.proj.join(path)).starts_with(&ws.proj) {
            std::fs::write(ws.proj.join("notes.md"), "n").unwrap();
        }
    }
    // Network: explain denies, and the sandbox has no route.
    let o = p.paddock(&["policy", "explain", "--json", "connect", "192.0.2.1:443"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["reason_code"], "NET_DOMAIN_NOT_ALLOWED");
    assert_refused(&ws.probe(&[], &["connect", "192.0.2.1:443"]), "ENETUNREACH");
}

#[test]
fn diff_is_semantic() {
    let p = PolicyWs::new();
    let a = p.ws.root.join("a.toml");
    let b = p.ws.root.join("b.toml");
    let c = p.ws.root.join("c.toml");
    std::fs::write(&a, "version = 1\n[network]\ndeny = [\"x.example\"]\n").unwrap();
    std::fs::write(
        &b,
        "# reordered, reformatted\nversion=1\n[network]\ndeny=['x.example']\n",
    )
    .unwrap();
    std::fs::write(
        &c,
        "version = 1\n[network]\ndeny = [\"y.example\"]\n[filesystem]\nworkspace = \"cow\"\n",
    )
    .unwrap();
    let o = p.paddock(&["policy", "diff", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let o = p.paddock(&["policy", "diff", a.to_str().unwrap(), c.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("~ filesystem.workspace: rw -> cow"), "{out}");
    assert!(
        out.contains("- network.deny: x.example") && out.contains("+ network.deny: y.example"),
        "{out}"
    );
}

#[test]
fn init_writes_a_valid_starter_and_never_overwrites() {
    let p = PolicyWs::new();
    let o = p.paddock(&["policy", "init", "--write"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = p.paddock(&["policy", "check", ".paddock/policy.toml"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = p.paddock(&["policy", "init", "--write"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("POLICY_EXISTS"));
}

/// The policies shipped in examples/ are valid.
#[test]
fn example_policies_check() {
    let p = PolicyWs::new();
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "toml") {
            let o = p.paddock(&["policy", "check", e.path().to_str().unwrap()]);
            assert_eq!(
                o.status.code(),
                Some(0),
                "{}: {}",
                e.path().display(),
                stderr(&o)
            );
            n += 1;
        }
    }
    assert!(n >= 2);
}

/// A repository's `.paddock/policy.toml` that points the audit export at
/// its own collector and sets retention to zero: refused at its lines
/// (POLICY_PROJECT_HOST_KEY) for `run` and `session start`, the collector
/// receives nothing (not even with the user's OTLP headers in the
/// environment), and the user's other sessions survive.
#[test]
fn hostile_project_file_cannot_steer_audit_export_or_retention() {
    use std::io::Read;
    let collector = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    collector.set_nonblocking(true).unwrap();
    let port = collector.local_addr().unwrap().port();
    let ws = Ws::new();
    let state = ws.root.join("state");
    // The user's own stopped session, in another folder.
    let other = ws.home.join("other");
    std::fs::create_dir_all(&other).unwrap();
    let mut c = ws.paddock();
    let o = c
        .current_dir(&other)
        .env("PADDOCK_HOME", &state)
        .args(["session", "start", "--name", "mine"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    std::fs::create_dir_all(ws.proj.join(".paddock")).unwrap();
    std::fs::write(
        ws.proj.join(".paddock/policy.toml"),
        format!(
            "version = 1\n[audit]\nsinks = [\"otlp\"]\notlp_endpoint = \"http://127.0.0.1:{port}\"\n\
             [session.retention]\nmax_count = 0\nmax_age = \"0\"\n"
        ),
    )
    .unwrap();
    for args in [
        vec!["run", "--", "true"],
        vec!["session", "start"],
        vec!["gc"],
    ] {
        let o = ws
            .paddock()
            .env("PADDOCK_HOME", &state)
            .env("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=collector-secret")
            .args(&args)
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_ne!(o.status.code(), Some(0), "{args:?}: {err}");
        assert!(
            err.contains("POLICY_PROJECT_HOST_KEY")
                && err.contains(".paddock/policy.toml:3")
                && err.contains("otlp_endpoint"),
            "{args:?}: {err}"
        );
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    match collector.accept() {
        Ok((mut s, _)) => {
            let mut got = String::new();
            let _ = s.read_to_string(&mut got);
            panic!("the repository's collector was contacted: {got}");
        }
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock),
    }
    let list = ws
        .paddock()
        .env("PADDOCK_HOME", &state)
        .current_dir(&other)
        .args(["session", "list", "--json"])
        .output()
        .unwrap();
    assert!(stdout(&list).contains("\"mine\""), "{}", stdout(&list));
}

/// A deny path reached through a symbolic link denies what the link leads
/// to: the real folder, mounted under its own name, is refused. A deny path
/// inside a system folder (shown read-only at its own path) is hidden
/// there: nothing of it is listed or readable inside, and the host's
/// folder is untouched.
#[test]
fn filesystem_deny_holds_through_links_and_inside_system_folders() {
    let ws = Ws::new();
    let real = ws.root.join("real/secretdir");
    std::fs::create_dir_all(&real).unwrap();
    std::fs::write(real.join("key"), "TOPSECRET\n").unwrap();
    let link = ws.root.join("denylink");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let pol = ws.root.join("deny-link.toml");
    std::fs::write(
        &pol,
        format!(
            "version = 1\n[filesystem]\ndeny = [\"{}\"]\n",
            link.display()
        ),
    )
    .unwrap();
    let o = ws
        .paddock()
        .args(["run", "--policy", pol.to_str().unwrap(), "--mount"])
        .arg(format!("{}:/data:ro", real.display()))
        .args(["--", "cat", "/data/key"])
        .output()
        .unwrap();
    assert!(!stdout(&o).contains("TOPSECRET"), "{}", stdout(&o));
    assert!(stderr(&o).contains("FS_DENIED_BY_POLICY"), "{}", stderr(&o));
    assert_eq!(o.status.code(), Some(125));

    // A system folder: /usr/share/doc is there on every Debian.
    let doc = std::path::Path::new("/usr/share/doc");
    let host_entries = std::fs::read_dir(doc).unwrap().count();
    assert!(host_entries > 0);
    let pol = ws.root.join("deny-system.toml");
    std::fs::write(
        &pol,
        "version = 1\n[filesystem]\ndeny = [\"/usr/share/doc\"]\n",
    )
    .unwrap();
    let o = ws.sh(
        &["--policy", pol.to_str().unwrap()],
        "echo entries=$(ls -A /usr/share/doc | wc -l); cat /usr/share/doc/*/copyright 2>/dev/null | wc -c; ls /usr/share | grep -c '^doc$'",
    );
    let out = stdout(&o);
    assert!(out.starts_with("entries=0\n0\n1"), "{out}{}", stderr(&o));
    assert_eq!(std::fs::read_dir(doc).unwrap().count(), host_entries);
}

/// `filesystem.deny` inside a mounted workspace hides the path (a file and
/// a folder), in rw and cow alike, and `policy explain` says so; the rest
/// of the workspace stays as it was.
#[test]
fn filesystem_deny_hides_a_path_inside_a_mount() {
    let ws = Ws::new();
    std::fs::create_dir_all(ws.proj.join("sec")).unwrap();
    std::fs::write(ws.proj.join("sec/key"), "TOPSECRET\n").unwrap();
    std::fs::write(ws.proj.join(".env.local"), "TOKEN=TOPSECRET\n").unwrap();
    std::fs::write(ws.proj.join("ok.txt"), "visible\n").unwrap();
    for mode in ["rw", "cow"] {
        let pol = ws.root.join(format!("deny-{mode}.toml"));
        std::fs::write(
            &pol,
            format!(
                "version = 1\n[filesystem]\nworkspace = \"{mode}\"\ndeny = [\"{}\", \"{}\"]\n",
                ws.proj.join("sec").display(),
                ws.proj.join(".env.local").display()
            ),
        )
        .unwrap();
        let p = pol.to_str().unwrap();
        let o = ws.sh(
            &["--policy", p],
            "cat sec/key .env.local ok.txt; ls -A sec; echo x > sec/new 2>&1 || echo write-refused",
        );
        let out = stdout(&o);
        assert!(!out.contains("TOPSECRET"), "{mode}: {out}{}", stderr(&o));
        assert!(
            out.contains("visible") && out.contains("write-refused"),
            "{mode}: {out}{}",
            stderr(&o)
        );
        for path in [ws.proj.join("sec/key"), ws.proj.join(".env.local")] {
            let o = ws
                .paddock()
                .args(["policy", "explain", "--json", "--policy", p, "read"])
                .arg(&path)
                .output()
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            assert_eq!(v["reason_code"], "FS_DENIED_INSIDE", "{mode}: {v}");
            assert_eq!(o.status.code(), Some(1));
        }
    }
    assert_eq!(
        std::fs::read_to_string(ws.proj.join("sec/key")).unwrap(),
        "TOPSECRET\n"
    );
}
