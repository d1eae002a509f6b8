//! Helpers shared by the integration tests: locate the real binaries, make
//! throw-away workspaces, run `paddock run` and the probe inside it.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The `paddock` binary under test (`PADDOCK_BIN` overrides, so the suite
/// can run as another user from a copy of the binaries).
pub fn paddock_bin() -> PathBuf {
    std::env::var_os("PADDOCK_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_paddock")))
}

/// The probe binary, built by the workspace next to `paddock`.
pub fn probe_bin() -> PathBuf {
    let p = std::env::var_os("PADDOCK_PROBE")
        .map(PathBuf::from)
        .unwrap_or_else(|| paddock_bin().with_file_name("paddock-probe"));
    assert!(
        p.exists(),
        "{} is missing: build it first with `cargo build --workspace --bins` (scripts/test does)",
        p.display()
    );
    p
}

/// A temporary folder tree for one test: `root/home` is the fake home of
/// the user, `root/home/proj` the workspace (the current directory), and
/// `root/outside` a folder that is never mounted. Removed on drop.
pub struct Ws {
    pub root: PathBuf,
    pub home: PathBuf,
    pub proj: PathBuf,
    pub outside: PathBuf,
}

impl Ws {
    pub fn new() -> Ws {
        static N: AtomicU32 = AtomicU32::new(0);
        let base = std::fs::canonicalize(std::env::temp_dir()).unwrap();
        let root = base.join(format!(
            "paddock-it-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&root);
        let home = root.join("home");
        let proj = home.join("proj");
        let outside = root.join("outside");
        for d in [&proj, &outside] {
            std::fs::create_dir_all(d).unwrap();
        }
        Ws {
            root,
            home,
            proj,
            outside,
        }
    }

    /// `paddock` with this workspace as current directory and home.
    pub fn paddock(&self) -> Command {
        let mut c = Command::new(paddock_bin());
        c.current_dir(&self.proj)
            .env("HOME", &self.home)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .stdin(Stdio::null());
        c
    }

    /// `paddock run [extra...] -- probe action...`, the probe mounted read-only.
    pub fn probe(&self, extra: &[&str], action: &[&str]) -> Output {
        let probe = probe_bin();
        let mut c = self.paddock();
        c.arg("run")
            .arg("--mount")
            .arg(format!("{}:ro", probe.display()));
        c.args(extra).arg("--").arg(&probe).args(action);
        c.output().expect("paddock runs")
    }

    /// `paddock run [extra...] -- sh -c script`.
    pub fn sh(&self, extra: &[&str], script: &str) -> Output {
        let mut c = self.paddock();
        c.arg("run").args(extra).args(["--", "sh", "-c", script]);
        c.output().expect("paddock runs")
    }
}

impl Drop for Ws {
    fn drop(&mut self) {
        // Folders left read-only by a test must not stop the clean-up.
        let _ = Command::new("chmod")
            .arg("-R")
            .arg("u+rwx")
            .arg(&self.root)
            .status();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Assert the probe reported that the kernel refused the action.
#[track_caller]
pub fn assert_refused(o: &Output, errno: &str) {
    let out = stdout(o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected refusal, got {:?}\nstdout: {out}\nstderr: {}",
        o.status,
        stderr(o)
    );
    assert!(
        out.contains(&format!("err {errno}")),
        "expected {errno}, got: {out}\nstderr: {}",
        stderr(o)
    );
}

/// Assert the probe's action succeeded.
#[track_caller]
pub fn assert_ok(o: &Output) {
    assert_eq!(
        o.status.code(),
        Some(0),
        "expected success\nstdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
}

/// Host processes whose command line contains `marker`.
pub fn host_processes_with(marker: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).contains(marker) {
            out.push(pid);
        }
    }
    out
}

/// Poll `f` until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// Send a signal to a host process with the `kill` command.
pub fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(st.success());
}

/// A script of tests/mcp run with the official Python MCP SDK's venv,
/// against `paddock mcp` in `ws` with state in `state` (the script reads
/// PADDOCK_BIN, PADDOCK_HOME, HOME, WORKDIR and PATH).
pub fn mcp_script(ws: &Ws, state: &std::path::Path, script: &str) -> Command {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/mcp");
    let py = root.join(".venv/bin/python");
    assert!(
        py.exists(),
        "the MCP tests need the official Python SDK: `python3 -m venv tests/mcp/.venv && \
         tests/mcp/.venv/bin/pip install -r tests/mcp/requirements.txt` (scripts/test does it)"
    );
    let mut c = Command::new(&py);
    c.arg(root.join(script))
        .current_dir(&ws.proj)
        .env("PADDOCK_BIN", paddock_bin())
        .env("PADDOCK_HOME", state)
        .env("HOME", &ws.home)
        .env("WORKDIR", &ws.proj)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .stdin(Stdio::null());
    c
}

/// Call `paddock mcp [extra...]` tools in order with the official Python
/// MCP SDK (tests/mcp/calls.py), in `ws` with state in `state`: for each
/// call `[is_error, text]`.
pub fn mcp_calls(
    ws: &Ws,
    state: &std::path::Path,
    extra: &[&str],
    calls: serde_json::Value,
) -> serde_json::Value {
    let o = mcp_script(ws, state, "calls.py")
        .arg(calls.to_string())
        .args(extra)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    serde_json::from_str(stdout(&o).lines().last().unwrap()).unwrap()
}

/// Can this user open the TUN device (as paddock needs to for the
/// transparent path)?
pub fn tun_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .is_ok()
}

/// A test CA and a server certificate for `names`, written into `dir`:
/// (CA PEM, certificate PEM, key PEM).
pub fn test_tls(dir: &std::path::Path, names: &[&str]) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "paddock test upstream CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf_params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    leaf_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, names[0]);
    let leaf = leaf_params.signed_by(&leaf_key, &ca).unwrap();
    let (ca_pem, cert, key) = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&ca_pem, ca.pem()).unwrap();
    std::fs::write(&cert, leaf.pem()).unwrap();
    std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
    (ca_pem, cert, key)
}

/// Does this test run as root (uid 0)?
pub fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|u| u.split_whitespace().next() == Some("0"))
        })
        .unwrap_or(false)
}

/// The extended attribute names of `path` on the host (Python's
/// `os.listxattr`: the standard library has no call for it).
pub fn xattr_names(path: &std::path::Path) -> String {
    let o = Command::new("python3")
        .args(["-c", "import os, sys; print(os.listxattr(sys.argv[1]))"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "listxattr {}: {}",
        path.display(),
        stderr(&o)
    );
    stdout(&o)
}
