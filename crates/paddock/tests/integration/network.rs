//! The network boundary: loopback only.

use std::io::Read;

use crate::util::*;

/// Data exfiltration over the network (the incident class the egress work
/// targets: files uploaded to an attacker through an allowed API). Until
/// the proxy exists the sandbox has no route at all: only its own `lo`.
#[test]
fn only_loopback_exists_and_host_services_are_unreachable() {
    let ws = Ws::new();
    let o = ws.probe(&[], &["interfaces"]);
    assert_ok(&o);
    assert_eq!(
        stdout(&o)
            .lines()
            .filter(|l| *l != "ok")
            .collect::<Vec<_>>(),
        ["lo"]
    );
    // A service listening on the host's loopback is not the sandbox's.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    assert_refused(&ws.probe(&[], &["connect", &addr]), "ECONNREFUSED");
    // No route to anything else.
    assert_refused(&ws.probe(&[], &["connect", "192.0.2.1:443"]), "ENETUNREACH");
    l.set_nonblocking(true).unwrap();
    assert!(l.accept().is_err(), "nothing reached the host listener");
    // Loopback inside the sandbox works (test servers, language servers).
    assert_ok(&ws.probe(&[], &["loopback-echo"]));
}

/// Abstract unix sockets on the host (D-Bus, X11 and many agents' IPC
/// listen on them) are unreachable: separate network namespace, and
/// Landlock's abstract-socket scope on top.
#[test]
fn host_abstract_unix_socket_is_unreachable() {
    use std::os::linux::net::SocketAddrExt;
    let ws = Ws::new();
    let name = format!("paddock-test-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let l = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    assert_refused(&ws.probe(&[], &["abstract-connect", &name]), "ECONNREFUSED");
    l.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 1];
    assert!(l.accept().map(|(mut s, _)| s.read(&mut buf)).is_err());
}

/// Without XDG_RUNTIME_DIR, paddock keeps a run's CA key under
/// `$TMPDIR/paddock-UID`. Another user who made that folder first (open
/// to all, or a link to a folder of theirs) must not receive it: refused
/// with RUNTIME_DIR_UNSAFE, nothing written there.
#[test]
fn runtime_folder_made_by_someone_else_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let ws = Ws::new();
    let pol = ws.root.join("proxy.toml");
    std::fs::write(
        &pol,
        "version = 1\n[network]\nmode = \"proxy\"\nallow = [\"example.com\"]\n",
    )
    .unwrap();
    let uid = std::process::Command::new("id").arg("-u").output().unwrap();
    let uid = String::from_utf8_lossy(&uid.stdout).trim().to_string();
    let run_with_tmpdir = |tmp: &std::path::Path| {
        ws.paddock()
            .env_remove("XDG_RUNTIME_DIR")
            .env("TMPDIR", tmp)
            .args(["run", "--policy", pol.to_str().unwrap(), "--", "true"])
            .output()
            .unwrap()
    };
    for plant in ["open", "link"] {
        let tmp = ws.root.join(format!("tmp-{plant}"));
        std::fs::create_dir_all(&tmp).unwrap();
        let base = tmp.join(format!("paddock-{uid}"));
        let theirs = ws.root.join(format!("theirs-{plant}"));
        std::fs::create_dir_all(&theirs).unwrap();
        if plant == "open" {
            std::fs::create_dir(&base).unwrap();
            std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o777)).unwrap();
        } else {
            std::os::unix::fs::symlink(&theirs, &base).unwrap();
        }
        let o = run_with_tmpdir(&tmp);
        assert_eq!(o.status.code(), Some(125), "{plant}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("RUNTIME_DIR_UNSAFE"),
            "{plant}: {}",
            stderr(&o)
        );
        let planted = if plant == "open" {
            base.clone()
        } else {
            theirs.clone()
        };
        assert_eq!(
            std::fs::read_dir(&planted).unwrap().count(),
            0,
            "{plant}: nothing written"
        );
    }
    // A safe one of our own is made and used.
    let tmp = ws.root.join("tmp-fresh");
    std::fs::create_dir_all(&tmp).unwrap();
    let o = run_with_tmpdir(&tmp);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let md = std::fs::metadata(tmp.join(format!("paddock-{uid}"))).unwrap();
    assert_eq!(md.permissions().mode() & 0o777, 0o700);
}
