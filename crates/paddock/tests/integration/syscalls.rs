//! Kernel attack surface: seccomp, capabilities, nested namespaces, TTY.

use crate::util::*;

/// Terminal injection: TIOCSTI pushes keystrokes into the terminal's input
/// queue, so a sandboxed program could type commands into the user's shell
/// (CVE-2017-5226, bubblewrap; CVE-2016-7545, SELinux sandbox). The probe
/// opens a terminal it controls and tries; outside the sandbox the same
/// call succeeds where the kernel still allows it.
#[test]
fn tiocsti_injection_fails() {
    let ws = Ws::new();
    let legacy = std::fs::read_to_string("/proc/sys/dev/tty/legacy_tiocsti").unwrap_or_default();
    if legacy.trim() == "1" {
        let native = std::process::Command::new(probe_bin())
            .arg("tiocsti")
            .output()
            .unwrap();
        assert_eq!(
            native.status.code(),
            Some(0),
            "control: TIOCSTI works outside: {}",
            stdout(&native)
        );
    }
    assert_refused(&ws.probe(&[], &["tiocsti"]), "EPERM");
    assert_refused(&ws.probe(&[], &["tioclinux"]), "EPERM");
}

/// Nested user namespaces hand an attacker fresh capabilities over new
/// namespaces, the entry point of many kernel exploits (CVE-2022-0185,
/// CVE-2023-32233). Denied by seccomp, for unshare and for clone.
#[test]
fn nested_user_namespace_cannot_be_created() {
    let ws = Ws::new();
    assert_refused(&ws.probe(&[], &["unshare-user"]), "EPERM");
    // util-linux's unshare uses unshare(2); a shell-level check too.
    let o = ws.sh(&[], "unshare -U true && echo CREATED");
    assert!(!stdout(&o).contains("CREATED"));
}

/// Mount manipulation: unmounting the read-only cover of .git, or mounting
/// over anything, would undo paddock's layout.
#[test]
fn mount_and_umount_are_denied() {
    let ws = Ws::new();
    assert_refused(&ws.probe(&[], &["mount-tmpfs", "/tmp"]), "EPERM");
    assert_refused(&ws.probe(&[], &["umount", "/usr"]), "EPERM");
    assert_refused(&ws.probe(&[], &["unshare-mount"]), "EPERM");
}

/// Kernel interfaces with a record of privilege-escalation bugs: bpf
/// (CVE-2021-3490), perf_event_open (CVE-2023-2235), userfaultfd (the race
/// tool of many exploits), io_uring (CVE-2022-29582), keyctl (host
/// keyring), open_by_handle_at (the 2014 "shocker" escape).
#[test]
fn dangerous_syscalls_are_denied() {
    let ws = Ws::new();
    for call in [
        "bpf",
        "perf_event_open",
        "userfaultfd",
        "io_uring",
        "keyctl",
        "open_by_handle_at",
    ] {
        assert_refused(&ws.probe(&[], &[call]), "EPERM");
    }
}

/// After setup the command holds no capability, no_new_privs is set and the
/// seccomp filter is installed (mode 2).
#[test]
fn no_capabilities_no_new_privs_seccomp_filter() {
    let ws = Ws::new();
    let o = ws.probe(&[], &["status"]);
    assert_ok(&o);
    let out = stdout(&o);
    for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        let line = out.lines().find(|l| l.starts_with(cap)).unwrap();
        assert!(line.ends_with("0000000000000000"), "{line}");
    }
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    // The command runs as the invoking user.
    let uid = std::fs::read_to_string("/proc/self/status").unwrap();
    let uid_line = uid.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(out.contains(uid_line), "{out} vs {uid_line}");
}
