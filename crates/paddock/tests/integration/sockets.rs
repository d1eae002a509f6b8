//! Pathname unix sockets: a host daemon's socket file that lies in a mount
//! (ssh ControlMaster, gpg-agent, a database, an editor server) is not a
//! way out. Each attack is judged on the host side: the host daemon's own
//! count of accepted connections.

use std::io::Write;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::session::S;
use crate::util::*;

/// A daemon on the host listening at `path`: it counts the connections it
/// accepts and sends each a secret.
struct HostDaemon {
    path: PathBuf,
    accepted: Arc<AtomicUsize>,
}

impl HostDaemon {
    fn at(path: &Path) -> HostDaemon {
        let _ = std::fs::remove_file(path);
        let l = UnixListener::bind(path).unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            for mut s in l.incoming().flatten() {
                count.fetch_add(1, Ordering::SeqCst);
                let _ = s.write_all(b"host-secret\n");
            }
        });
        HostDaemon {
            path: path.to_path_buf(),
            accepted,
        }
    }
    fn accepted(&self) -> usize {
        // Let a connection that got through be counted.
        std::thread::sleep(std::time::Duration::from_millis(100));
        self.accepted.load(Ordering::SeqCst)
    }
    fn path(&self) -> &str {
        self.path.to_str().unwrap()
    }
}

fn policy(ws: &Ws, name: &str, text: &str) -> String {
    let p = ws.root.join(name);
    std::fs::write(&p, format!("version = 1\n{text}")).unwrap();
    p.to_str().unwrap().to_string()
}

/// The matrix for `paddock run`: every workspace mode, audited and not,
/// with a host daemon's socket in the workspace and in a read-only mount.
/// Every connect is refused with EACCES and the daemons accept nothing.
#[test]
fn host_daemon_socket_in_any_mount_is_refused_in_every_mode() {
    let ws = Ws::new();
    let shared = ws.outside.join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    let in_ws = HostDaemon::at(&ws.proj.join("editor.sock"));
    let in_ro = HostDaemon::at(&shared.join("agent.sock"));
    let probe = probe_bin();
    for mode in ["rw", "ro", "cow", "rw-no-delete"] {
        for audit in ["writes", "off"] {
            let pol = policy(
                &ws,
                &format!("{mode}-{audit}.toml"),
                &format!("[filesystem]\nworkspace = \"{mode}\"\n[audit]\nlevel = \"{audit}\"\n"),
            );
            let o = ws
                .paddock()
                .args(["run", "--policy", &pol])
                .arg("--mount")
                .arg(format!("{}:ro", probe.display()))
                .arg("--mount")
                .arg(format!("{}:ro", shared.display()))
                .args(["--", "sh", "-c"])
                .arg(format!(
                    "echo ws=$({p} unix-connect {a}); echo rel=$({p} unix-connect editor.sock); \
                     echo ro=$({p} unix-connect {b})",
                    p = probe.display(),
                    a = in_ws.path(),
                    b = in_ro.path()
                ))
                .output()
                .unwrap();
            let out = stdout(&o);
            for what in ["ws=", "rel=", "ro="] {
                let line = out
                    .lines()
                    .find(|l| l.starts_with(what))
                    .unwrap_or_else(|| panic!("{mode}/{audit}: no {what}: {out}{}", stderr(&o)));
                assert!(
                    line.contains("err EACCES"),
                    "{mode}/{audit}: {line}\n{}",
                    stderr(&o)
                );
            }
        }
    }
    assert_eq!(in_ws.accepted(), 0, "the workspace daemon was reached");
    assert_eq!(
        in_ro.accepted(),
        0,
        "the read-only mount's daemon was reached"
    );
}

/// The same through a session: `paddock exec`, and the MCP server's
/// run_command. The refusal is in the session's audit trail.
#[test]
fn host_daemon_socket_is_refused_through_exec_and_mcp() {
    let s = S::new();
    let daemon = HostDaemon::at(&s.ws.proj.join("db.sock"));
    let id = s.start(&[]);
    let o = s.exec(
        &id,
        "python3 -c 'import socket; s=socket.socket(socket.AF_UNIX); s.connect(\"db.sock\"); \
         print(s.recv(100))'; echo exit=$?",
    );
    let out = stdout(&o);
    assert!(out.contains("exit=1"), "{out}{}", stderr(&o));
    assert!(stderr(&o).contains("PermissionError"), "{}", stderr(&o));
    let seen = mcp_calls(
        &s.ws,
        &s.ws.root.join("state"),
        &[],
        serde_json::json!([
            ["run_command", {"command": "python3 -c 'import socket; s=socket.socket(socket.AF_UNIX); s.connect(\"db.sock\")' 2>&1; echo exit=$?"}]
        ]),
    );
    let text = seen[0][1].as_str().unwrap();
    assert!(
        text.contains("PermissionError") && text.contains("exit=1"),
        "{text}"
    );
    assert_eq!(daemon.accepted(), 0, "the daemon was reached");
    let trail = s.paddock(&["audit", "tail", "--session", &id, "--json"]);
    let trail = stdout(&trail);
    assert!(trail.contains("NET_UNIX_HOST_SOCKET"), "{trail}");
    s.paddock(&["session", "stop", &id]);
}

/// What the sandbox binds itself keeps working: stream and datagram
/// sockets in /tmp and in the workspace (rw and cow), and a server one
/// exec started reached from the next exec.
#[test]
fn sockets_the_sandbox_made_still_connect() {
    let ws = Ws::new();
    let script = ws.proj.join("own.py");
    std::fs::write(
        &script,
        r#"
import os, socket
for d in ["/tmp/own.sock", "./own.sock"]:
    l = socket.socket(socket.AF_UNIX); l.bind(d); l.listen(1)
    c = socket.socket(socket.AF_UNIX); c.connect(d)
    a, _ = l.accept(); a.send(b"hi"); assert c.recv(2) == b"hi"
    os.unlink(d)
r = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); r.bind("./dg.sock")
w = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); w.connect("./dg.sock"); w.send(b"x")
assert r.recv(1) == b"x"
os.unlink("./dg.sock")
# From a thread other than the main one (the kernel names the thread).
import threading
l = socket.socket(socket.AF_UNIX); l.bind("/tmp/t.sock"); l.listen(1)
got = []
def client():
    c = socket.socket(socket.AF_UNIX); c.connect("/tmp/t.sock"); got.append(c.recv(2))
t = threading.Thread(target=client); t.start()
a, _ = l.accept(); a.send(b"th"); t.join()
assert got == [b"th"], got
print("own-ok")
"#,
    )
    .unwrap();
    for mode in ["rw", "cow"] {
        let pol = policy(
            &ws,
            &format!("{mode}.toml"),
            &format!("[filesystem]\nworkspace = \"{mode}\"\n"),
        );
        let o = ws
            .paddock()
            .args(["run", "--policy", &pol, "--", "python3", "own.py"])
            .output()
            .unwrap();
        assert!(stdout(&o).contains("own-ok"), "{mode}: {}", stderr(&o));
    }
    let s = S::new();
    let id = s.start(&[]);
    let o = s.exec(
        &id,
        "python3 -c 'import socket,os\nl=socket.socket(socket.AF_UNIX); l.bind(\"srv.sock\"); l.listen(1)\nopen(\"ready\",\"w\")\nc,_=l.accept(); c.send(b\"served\")' >/dev/null 2>&1 &\n\
         for i in $(seq 50); do test -e ready && break; sleep 0.1; done; echo started",
    );
    assert!(stdout(&o).contains("started"), "{}", stderr(&o));
    let o = s.exec(
        &id,
        "python3 -c 'import socket; s=socket.socket(socket.AF_UNIX); s.connect(\"srv.sock\"); print(s.recv(10).decode())'",
    );
    assert!(
        stdout(&o).contains("served"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    s.paddock(&["session", "stop", &id]);
}

/// A socket the policy names (`filesystem.sockets`) is shown at its own
/// path and reachable; its neighbour in the same folder is not.
#[test]
fn a_socket_the_policy_names_is_reachable_and_only_it() {
    let ws = Ws::new();
    let dir = ws.outside.join("agent");
    std::fs::create_dir_all(&dir).unwrap();
    let agent = HostDaemon::at(&dir.join("agent.sock"));
    let other = HostDaemon::at(&dir.join("other.sock"));
    let pol = policy(
        &ws,
        "sock.toml",
        &format!("[filesystem]\nsockets = [\"{}\"]\n", agent.path()),
    );
    let probe = probe_bin();
    // Both sockets, tried from inside with `extra` flags.
    let try_both = |extra: &[String]| {
        let o = ws
            .paddock()
            .args(["run", "--policy", &pol])
            .arg("--mount")
            .arg(format!("{}:ro", probe.display()))
            .args(extra)
            .args(["--", "sh", "-c"])
            .arg(format!(
                "echo agent=$({p} unix-connect {a}); echo other=$({p} unix-connect {b})",
                p = probe.display(),
                a = agent.path(),
                b = other.path()
            ))
            .output()
            .unwrap();
        (stdout(&o), stderr(&o))
    };
    let (out, err) = try_both(&[]);
    assert!(out.contains("agent=ok"), "{out}{err}");
    // Not shown at all: only the named socket is mounted.
    assert!(out.contains("other=err ENOENT"), "{out}");
    assert_eq!(agent.accepted(), 1);
    assert_eq!(other.accepted(), 0);
    // With the folder mounted, the neighbour is visible and refused.
    let (out, err) = try_both(&["--mount".into(), format!("{}:ro", dir.display())]);
    assert!(
        out.contains("agent=ok") && out.contains("other=err EACCES"),
        "{out}{err}"
    );
    assert_eq!(agent.accepted(), 2);
    assert_eq!(other.accepted(), 0);
    // The allowed name pointed elsewhere from inside (its folder renamed,
    // a link put in its place) reaches nothing new: the socket allowed is
    // the one pinned before the command ran.
    let victim = HostDaemon::at(&ws.proj.join("victim.sock"));
    let o = ws
        .paddock()
        .args(["run", "--policy", &pol, "--", "python3", "-c"])
        .arg(format!(
            r#"
import os, socket
os.rename("{d}", "{d}.old"); os.mkdir("{d}")
os.symlink("{v}", "{a}")
for p in ["{a}", "victim.sock"]:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(p); print(p, "connected")
    except OSError as e:
        print(p, "refused", e.errno)
"#,
            d = dir.display(),
            v = victim.path(),
            a = agent.path()
        ))
        .output()
        .unwrap();
    let out = stdout(&o);
    assert_eq!(out.matches("refused 13").count(), 2, "{out}{}", stderr(&o));
    assert_eq!(
        victim.accepted(),
        0,
        "the re-pointed name reached another socket"
    );
    // A name that is no socket is a precise error before anything starts.
    let bad = policy(
        &ws,
        "bad.toml",
        &format!(
            "[filesystem]\nsockets = [\"{}\"]\n",
            dir.join("nothing.sock").display()
        ),
    );
    let o = ws
        .paddock()
        .args(["run", "--policy", &bad, "--", "true"])
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("FS_SOCKET_MISSING") && stderr(&o).contains("bad.toml"),
        "{}",
        stderr(&o)
    );
}

/// The checked address cannot be swapped afterwards: one thread connects
/// in a loop to the sandbox's own socket while another rewrites the
/// address in memory, byte by byte, to the host daemon's. pid 1 connects
/// what it read, so the daemon never hears from the sandbox.
#[test]
fn rewriting_the_address_after_the_check_reaches_nothing() {
    let ws = Ws::new();
    let daemon = HostDaemon::at(&ws.proj.join("h.sock"));
    std::fs::write(
        ws.proj.join("race.py"),
        r#"
import ctypes, os, socket, sys, threading, time
libc = ctypes.CDLL(None, use_errno=True)
own = b"/tmp/o.sock"
host = sys.argv[1].encode()
l = socket.socket(socket.AF_UNIX); l.bind(own.decode()); l.listen(4096)
def drain():
    while True:
        c, _ = l.accept(); c.close()
threading.Thread(target=drain, daemon=True).start()
def addr(p):
    b = ctypes.create_string_buffer(110)
    b[0:2] = (1).to_bytes(2, "little")
    b[2:2 + len(p)] = p
    return b
buf = addr(own)
a, b = addr(own), addr(host)
stop = False
def flip():
    while not stop:
        ctypes.memmove(buf, b, 110)
        ctypes.memmove(buf, a, 110)
threading.Thread(target=flip, daemon=True).start()
ok = 0
end = time.time() + 3
n = 0
while time.time() < end:
    s = socket.socket(socket.AF_UNIX)
    if libc.connect(s.fileno(), buf, 110) == 0:
        ok += 1
    s.close(); n += 1
stop = True
print(f"tries={n} connected={ok}")
"#,
    )
    .unwrap();
    let o = ws
        .paddock()
        .args(["run", "--", "python3", "race.py", daemon.path()])
        .output()
        .unwrap();
    let out = stdout(&o);
    assert!(out.contains("tries="), "{out}{}", stderr(&o));
    let tries: usize = out
        .split("tries=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(tries > 100, "too few attempts to mean anything: {out}");
    assert_eq!(
        daemon.accepted(),
        0,
        "the swapped address reached the host: {out}"
    );
}

/// Connects that wait (a listener whose queue is full) do not hold up the
/// rest of the sandbox: while eight threads are blocked in connect, another
/// process creates a file and connects elsewhere at once; and the blocked
/// connects complete as soon as the listener accepts, as without paddock.
#[test]
fn waiting_connects_do_not_stall_the_sandbox() {
    let ws = Ws::new();
    std::fs::write(
        ws.proj.join("stall.py"),
        r#"
import os, socket, subprocess, threading, time
l = socket.socket(socket.AF_UNIX); l.bind("/tmp/full.sock"); l.listen(0)
# Fill the queue, then block eight threads behind it.
fill = []
for _ in range(4):
    c = socket.socket(socket.AF_UNIX); c.setblocking(False)
    try:
        c.connect("/tmp/full.sock")
    except BlockingIOError:
        pass
    fill.append(c)
done = []
def blocked():
    c = socket.socket(socket.AF_UNIX)
    c.connect("/tmp/full.sock"); done.append(c)
ts = [threading.Thread(target=blocked, daemon=True) for _ in range(8)]
for t in ts: t.start()
time.sleep(0.5)
t0 = time.time()
subprocess.run(["sh", "-c", "touch made && python3 -c 'import socket; a=socket.socket(socket.AF_UNIX); a.bind(\"/tmp/o.sock\"); a.listen(1); b=socket.socket(socket.AF_UNIX); b.connect(\"/tmp/o.sock\")'"], check=True)
print(f"other={time.time() - t0:.2f}")
l.setblocking(False)
end = time.time() + 10
while len(done) < 8 and time.time() < end:
    try:
        l.accept()
    except BlockingIOError:
        time.sleep(0.01)
print(f"completed={len(done)}")
"#,
    )
    .unwrap();
    let o = ws
        .paddock()
        .args(["run", "--", "python3", "stall.py"])
        .output()
        .unwrap();
    let out = stdout(&o);
    let other: f64 = out
        .split("other=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{out}{}", stderr(&o)));
    // Eight waits of pid 1's own 2 s would be 16 s; a helper per wait
    // leaves nothing in the way.
    assert!(
        other < 1.5,
        "the sandbox stalled for {other} s behind waiting connects"
    );
    assert!(out.contains("completed=8"), "{out}{}", stderr(&o));
    assert!(ws.proj.join("made").exists());
}
