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
