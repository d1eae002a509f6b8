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

/// vsock ignores network namespaces (it reaches the hypervisor and host
/// services), and AF_ALG is a large kernel surface: both socket families
/// are refused, as Docker's and Podman's default profiles refuse them.
#[test]
fn vsock_and_af_alg_sockets_are_refused() {
    let ws = Ws::new();
    let o = ws.sh(
        &[],
        r#"python3 - <<'PY'
import socket
for fam, typ, name in [(40, socket.SOCK_STREAM, "vsock"), (40, socket.SOCK_DGRAM, "vsock-dgram"), (38, socket.SOCK_SEQPACKET, "alg")]:
    try:
        s = socket.socket(fam, typ)
        print(name, "CREATED")
        try:
            s.bind((0xFFFFFFFF, 1234)) if fam == 40 else None
            print(name, "BOUND")
        except OSError as e:
            print(name, "bind", e.errno)
    except OSError as e:
        print(name, "refused", e.errno)
PY"#,
    );
    let out = stdout(&o);
    assert!(
        !out.contains("CREATED") && !out.contains("BOUND"),
        "{out}{}",
        stderr(&o)
    );
    assert_eq!(out.matches("refused 1").count(), 3, "EPERM for each: {out}");
}

/// setuid and setgid bits cannot be set from inside, by any call that
/// carries a mode (chmod, fchmod, fchmodat, open/openat/creat with
/// O_CREAT, mknod; openat2, whose mode seccomp cannot read, is answered
/// ENOSYS), nor file capabilities: a sandbox run as root cannot leave a
/// setuid-root copy of a shell, or one with capabilities, in the
/// workspace.
#[test]
fn setuid_chmod_leaves_no_setuid_binary_on_the_host() {
    use std::os::unix::fs::PermissionsExt;
    let ws = Ws::new();
    let o = ws.sh(
        &[],
        r#"cp /bin/sh ./sh; chmod 4755 ./sh; chmod g+s ./sh; python3 - <<'PY'
import ctypes, os, stat
libc = ctypes.CDLL(None, use_errno=True)
class How(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]
def openat2():
    h = How(os.O_CREAT | os.O_WRONLY, 0o4755, 0)
    fd = libc.syscall(437, -100, b"new3", ctypes.byref(h), ctypes.sizeof(h))
    if fd < 0:
        raise OSError(ctypes.get_errno(), "openat2")
    os.close(fd)
# struct vfs_cap_data, revision 2, effective: cap_setuid and cap_setgid.
fcap = (0x02000001).to_bytes(4, "little") + ((1 << 6) | (1 << 7)).to_bytes(4, "little") + bytes(12)
tries = {
  "openat2": openat2,
  "setxattr": lambda: os.setxattr("sh", "security.capability", fcap),
  "chmod": lambda: os.chmod("sh", 0o4755),
  "fchmod": lambda: os.fchmod(os.open("sh", os.O_RDONLY), 0o2755),
  "fchmodat": lambda: os.chmod("sh", 0o6755, follow_symlinks=True),
  "open": lambda: os.close(os.open("new1", os.O_CREAT | os.O_WRONLY, 0o4755)),
  "mknod": lambda: os.mknod("new2", stat.S_IFREG | 0o4755),
}
for name, f in tries.items():
    try:
        f(); print(name, "DONE")
    except OSError as e:
        print(name, "refused", e.errno)
PY
true"#,
    );
    let out = stdout(&o);
    assert!(!out.contains("DONE"), "{out}{}", stderr(&o));
    for f in ["sh", "new1", "new2", "new3"] {
        if let Ok(md) = std::fs::metadata(ws.proj.join(f)) {
            assert_eq!(
                md.permissions().mode() & 0o6000,
                0,
                "{f} on the host: {out}"
            );
        }
    }
    assert!(ws.proj.join("sh").exists(), "the copy itself is allowed");
    let xattrs = xattr_names(&ws.proj.join("sh"));
    assert!(
        !xattrs.contains("security.capability"),
        "file capabilities on the host: {xattrs}"
    );
}
