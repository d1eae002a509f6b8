//! The seccomp filters, kept as data in `resources/seccomp/sandbox.json`.
//!
//! Every denied system call has a `comment` there saying which attack it
//! closes. The filters are a deny list on purpose: the sandbox runs arbitrary
//! developer tools, whose system calls cannot be enumerated, while the calls
//! that matter for escaping are few and well known. Denied calls fail with
//! `EPERM` (so tools print an error instead of dying), except `clone3`, which
//! fails with `ENOSYS` so that libc falls back to `clone(2)`, whose flags the
//! filter can inspect.

use seccompiler::{sock_filter, BpfProgram};

use crate::error::SandboxError;
use crate::spec::AuditLevel;

/// The `unshare` flags of the user-namespace check: `CLONE_NEWUSER` with
/// `CLONE_VFORK`, which `unshare` never accepts (the kernel answers
/// `EINVAL` before looking at the other flags), so the call can never
/// create a namespace. The sandbox's filter matches `CLONE_NEWUSER` and
/// answers `EPERM` first. (Not a `CSIGNAL` bit: 0x80 is `CLONE_NEWTIME`,
/// which `unshare` accepts.)
pub(crate) const USERNS_PROBE_FLAGS: u64 = 0x1000_0000 | 0x4000;

/// The filter source, compiled into the binary.
pub const FILTER_JSON: &str = include_str!("../resources/seccomp/sandbox.json");

/// x32 system calls use the x86_64 audit architecture with bit 30 set in the
/// syscall number, so a filter keyed on x86_64 numbers would let their x32
/// twins through. This guard fails every such call with ENOSYS.
fn x32_guard() -> BpfProgram {
    // BPF_LD | BPF_W | BPF_ABS (0x00 | 0x00 | 0x20)
    const BPF_LD_W_ABS: u16 = 0x20;
    // BPF_JMP | BPF_JGE | BPF_K
    const BPF_JGE_K: u16 = 0x35;
    const BPF_RET_K: u16 = 0x06;
    const RET_ERRNO: u32 = 0x0005_0000;
    const RET_ALLOW: u32 = 0x7fff_0000;
    let ins = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    vec![
        // A = seccomp_data.nr
        ins(BPF_LD_W_ABS, 0, 0, 0),
        // if (A >= __X32_SYSCALL_BIT) goto deny
        ins(BPF_JGE_K, 0, 1, 0x4000_0000),
        ins(BPF_RET_K, 0, 0, RET_ERRNO | libc::ENOSYS as u32),
        ins(BPF_RET_K, 0, 0, RET_ALLOW),
    ]
}

mod compiled {
    include!(concat!(env!("OUT_DIR"), "/seccomp_filters.rs"));
}

fn program(ins: &[(u16, u8, u8, u32)]) -> BpfProgram {
    ins.iter()
        .map(|&(code, jt, jf, k)| sock_filter { code, jt, jf, k })
        .collect()
}

/// The programs to install, in order: compiled from the JSON source at
/// build time. When auditing, the deny list is not among them: it is part
/// of [`audit_program`], installed last with a listener.
pub(crate) fn programs(
    level: AuditLevel,
    isolation: crate::spec::Level,
) -> Result<Vec<BpfProgram>, SandboxError> {
    let mut out = Vec::with_capacity(4);
    if cfg!(target_arch = "x86_64") {
        out.push(x32_guard());
    }
    out.push(program(compiled::CLONE3));
    // setuid/setgid refused in every mode argument. Its own filter, at
    // every audit level: some of these calls (open, mknod) are watched by
    // the observer, and an errno from any filter wins over the observer's
    // notification, so the refusal holds whatever the observer answers.
    out.push(program(compiled::MODES));
    // With no network or IPC namespace, what those namespaces would have
    // isolated is denied instead (see the `no_userns` filter's comments).
    if !isolation.namespaces() {
        out.push(program(compiled::NO_USERNS));
    }
    if level == AuditLevel::Off {
        out.push(program(compiled::SANDBOX));
    }
    Ok(out)
}

const BPF_LD_W_ABS: u16 = 0x20;
/// The deny list alone (what [`audit_program`] wraps).
pub(crate) fn deny_list() -> BpfProgram {
    program(compiled::SANDBOX)
}

/// What replaces the observer where its listener cannot be installed:
/// unix sockets refused whole (see the `unobserved` filter's comment).
pub(crate) fn unobserved() -> BpfProgram {
    program(compiled::UNOBSERVED)
}

const BPF_JEQ_K: u16 = 0x15;
const BPF_JGE_K: u16 = 0x35;
const BPF_JSET_K: u16 = 0x45;
const BPF_JA: u16 = 0x05;
const BPF_RET_K: u16 = 0x06;
const RET_EPERM: u32 = 0x0005_0000 | libc::EPERM as u32;

#[cfg(target_arch = "x86_64")]
pub(crate) const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
pub(crate) const AUDIT_ARCH: u32 = 0xc000_00b7;

/// The system calls the observer is told about, by what they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Watched {
    /// `open`-like with the flags in argument `flags_arg`; the path in
    /// `path_arg`, relative to the fd in `dirfd_arg` (None: the cwd).
    Open {
        dirfd_arg: Option<usize>,
        path_arg: usize,
        flags_arg: Option<usize>,
    },
    /// `openat2`: flags inside a struct.
    Openat2,
    /// Deletes the path (unlink, rmdir).
    Delete {
        dirfd_arg: Option<usize>,
        path_arg: usize,
    },
    /// Renames: (dirfd, path) from and to.
    Rename {
        from: (Option<usize>, usize),
        to: (Option<usize>, usize),
    },
    /// Creates the path (mkdir, link, symlink), of this type.
    Create {
        dirfd_arg: Option<usize>,
        path_arg: usize,
        what: &'static str,
    },
    /// Starts a program.
    Exec {
        dirfd_arg: Option<usize>,
        path_arg: usize,
        argv_arg: usize,
    },
    /// A socket connection.
    Connect,
}

/// The watched calls of this architecture: (number, name, what).
pub(crate) fn watched() -> Vec<(u32, &'static str, Watched)> {
    use Watched::*;
    let n = |x: libc::c_long| u32::try_from(x).expect("syscall numbers fit in 32 bits");
    #[allow(unused_mut)]
    let mut v = vec![
        (
            n(libc::SYS_openat),
            "openat",
            Open {
                dirfd_arg: Some(0),
                path_arg: 1,
                flags_arg: Some(2),
            },
        ),
        (n(libc::SYS_openat2), "openat2", Openat2),
        (
            n(libc::SYS_unlinkat),
            "unlinkat",
            Delete {
                dirfd_arg: Some(0),
                path_arg: 1,
            },
        ),
        (
            n(libc::SYS_renameat2),
            "renameat2",
            Rename {
                from: (Some(0), 1),
                to: (Some(2), 3),
            },
        ),
        (
            n(libc::SYS_mkdirat),
            "mkdirat",
            Create {
                dirfd_arg: Some(0),
                path_arg: 1,
                what: "dir",
            },
        ),
        (
            n(libc::SYS_linkat),
            "linkat",
            Create {
                dirfd_arg: Some(2),
                path_arg: 3,
                what: "link",
            },
        ),
        (
            n(libc::SYS_symlinkat),
            "symlinkat",
            Create {
                dirfd_arg: Some(1),
                path_arg: 2,
                what: "symlink",
            },
        ),
        (
            n(libc::SYS_mknodat),
            "mknodat",
            Create {
                dirfd_arg: Some(0),
                path_arg: 1,
                what: "node",
            },
        ),
        (
            n(libc::SYS_execve),
            "execve",
            Exec {
                dirfd_arg: None,
                path_arg: 0,
                argv_arg: 1,
            },
        ),
        (
            n(libc::SYS_execveat),
            "execveat",
            Exec {
                dirfd_arg: Some(0),
                path_arg: 1,
                argv_arg: 2,
            },
        ),
        (n(libc::SYS_connect), "connect", Connect),
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend([
        (
            n(libc::SYS_open),
            "open",
            Open {
                dirfd_arg: None,
                path_arg: 0,
                flags_arg: Some(1),
            },
        ),
        (
            n(libc::SYS_creat),
            "creat",
            Open {
                dirfd_arg: None,
                path_arg: 0,
                flags_arg: None,
            },
        ),
        (
            n(libc::SYS_unlink),
            "unlink",
            Delete {
                dirfd_arg: None,
                path_arg: 0,
            },
        ),
        (
            n(libc::SYS_rmdir),
            "rmdir",
            Delete {
                dirfd_arg: None,
                path_arg: 0,
            },
        ),
        (
            n(libc::SYS_rename),
            "rename",
            Rename {
                from: (None, 0),
                to: (None, 1),
            },
        ),
        (
            n(libc::SYS_renameat),
            "renameat",
            Rename {
                from: (Some(0), 1),
                to: (Some(2), 3),
            },
        ),
        (
            n(libc::SYS_mkdir),
            "mkdir",
            Create {
                dirfd_arg: None,
                path_arg: 0,
                what: "dir",
            },
        ),
        (
            n(libc::SYS_link),
            "link",
            Create {
                dirfd_arg: None,
                path_arg: 1,
                what: "link",
            },
        ),
        (
            n(libc::SYS_symlink),
            "symlink",
            Create {
                dirfd_arg: None,
                path_arg: 1,
                what: "symlink",
            },
        ),
        (
            n(libc::SYS_mknod),
            "mknod",
            Create {
                dirfd_arg: None,
                path_arg: 0,
                what: "node",
            },
        ),
    ]);
    v
}

/// Open flags that make an open a write: O_WRONLY, O_RDWR, O_CREAT, O_TRUNC.
pub(crate) const WRITE_FLAGS: u32 =
    (libc::O_WRONLY | libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC) as u32;

/// The name of a system call the deny list names.
pub(crate) fn denied_name(nr: u32) -> Option<&'static str> {
    compiled::DENIED_NAMES
        .iter()
        .find(|(n, _)| *n == nr)
        .map(|(_, name)| *name)
}

/// The observing filter for `level`.
///
/// One program, because the kernel allows one listener per filter chain
/// and because an `ERRNO` from another filter would outrank a notification
/// and hide every denied call from the audit. It is:
///
/// 1. a prologue that sends the watched calls (for `openat`/`open`, only
///    those with a write flag below level `all`; no `execve` at level
///    `denied`) to the listener, which records them and lets the kernel
///    carry them out (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`): Landlock and the
///    mount table still decide;
/// 2. the deny list, unchanged except that its `EPERM` verdicts become
///    notifications, which the listener answers with `EPERM` after
///    recording them. If the listener is gone, such a call fails with
///    `ENOSYS`: denied either way.
///
/// `connect` is watched at every level, `off` included, and is not let
/// through but carried out by the listener on a unix socket (observe.rs):
/// that is how sockets the sandbox did not create are refused on kernels
/// whose Landlock cannot (before ABI 9). At `off` the deny list keeps its
/// `EPERM` verdicts and nothing else is watched.
///
/// No watched call is on the deny list (a unit test checks this), so the
/// prologue never lets through a call the deny list would refuse.
pub(crate) fn audit_program(level: AuditLevel) -> Vec<(u16, u8, u8, u32)> {
    audit_program_around(level, compiled::SANDBOX)
}

/// [`audit_program`] around the deny list `main`.
pub(crate) fn audit_program_around(
    level: AuditLevel,
    main: &[(u16, u8, u8, u32)],
) -> Vec<(u16, u8, u8, u32)> {
    let off = level == AuditLevel::Off;
    let arg_lo = |i: usize| -> u32 {
        let off = 16 + 8 * u32::try_from(i).expect("argument index below 6");
        if cfg!(target_endian = "big") {
            off + 4
        } else {
            off
        }
    };
    let mut plain = Vec::new();
    let mut flagged = Vec::new();
    for (nr, _, w) in watched() {
        match w {
            // Unaudited, pid 1 still makes every unix connection itself
            // (see observe.rs): only connect goes to it.
            Watched::Connect => plain.push(nr),
            _ if off => {}
            Watched::Exec { .. } if level < AuditLevel::Writes => {}
            Watched::Open {
                flags_arg: Some(a), ..
            } if level < AuditLevel::All => flagged.push((nr, a)),
            _ => plain.push(nr),
        }
    }
    // Instruction layout, so that every jump is forward:
    //   ld arch; jeq ARCH ? next : MAIN
    //   ld nr; a balanced tree of the watched numbers (`jge` splits, a
    //   leaf `jeq`s up to four of them, then `ja MAIN`): a plain one goes
    //   to NOTIF, a flagged one to its block
    //   (ld arg; jset WRITE ? NOTIF : MAIN)*
    //   NOTIF: ret USER_NOTIF
    //   MAIN: the deny list
    // Installing a filter runs it once per system call number (the
    // kernel's cache of calls always allowed): a tree takes a few steps
    // where a chain of every watched number took them all.
    #[derive(Clone, Copy)]
    enum To {
        Next,
        At(usize),
        Block(usize),
        Notif,
        Main,
    }
    fn tree(out: &mut Vec<(u16, To, To, u32)>, keys: &[(u32, To)]) {
        if keys.len() <= 4 {
            for &(nr, to) in keys {
                out.push((BPF_JEQ_K, to, To::Next, nr));
            }
            out.push((BPF_JA, To::Main, To::Next, 0));
            return;
        }
        let mid = keys.len() / 2;
        let at = out.len();
        out.push((BPF_JGE_K, To::Next, To::Next, keys[mid].0));
        tree(out, &keys[..mid]);
        out[at].1 = To::At(out.len());
        tree(out, &keys[mid..]);
    }
    let mut keys: Vec<(u32, To)> = plain.iter().map(|&nr| (nr, To::Notif)).collect();
    keys.extend(
        flagged
            .iter()
            .enumerate()
            .map(|(i, &(nr, _))| (nr, To::Block(i))),
    );
    keys.sort_unstable_by_key(|k| k.0);
    let mut out: Vec<(u16, To, To, u32)> = vec![
        (BPF_LD_W_ABS, To::Next, To::Next, 4),
        (BPF_JEQ_K, To::Next, To::Main, AUDIT_ARCH),
        (BPF_LD_W_ABS, To::Next, To::Next, 0),
    ];
    tree(&mut out, &keys);
    let blocks = out.len();
    for &(_, arg) in &flagged {
        out.push((BPF_LD_W_ABS, To::Next, To::Next, arg_lo(arg)));
        out.push((BPF_JSET_K, To::Notif, To::Main, WRITE_FLAGS));
    }
    out.push((BPF_RET_K, To::Next, To::Next, libc::SECCOMP_RET_USER_NOTIF));
    let notif_at = out.len() - 1;
    let main_at = out.len();
    let place = |to: To, at: usize| -> usize {
        let t = match to {
            To::Next => at + 1,
            To::At(t) => t,
            To::Block(i) => blocks + 2 * i,
            To::Notif => notif_at,
            To::Main => main_at,
        };
        t - at - 1
    };
    let mut p: Vec<(u16, u8, u8, u32)> = out
        .iter()
        .enumerate()
        .map(|(at, &(code, jt, jf, k))| match code {
            BPF_JA => (
                code,
                0,
                0,
                u32::try_from(place(jt, at)).expect("short prologue"),
            ),
            BPF_JEQ_K | BPF_JGE_K | BPF_JSET_K => {
                let off = |to| u8::try_from(place(to, at)).expect("prologue jumps fit in 8 bits");
                (code, off(jt), off(jf), k)
            }
            _ => (code, 0, 0, k),
        })
        .collect();
    debug_assert_eq!(p.len(), main_at);
    p.extend(main.iter().map(|&(code, jt, jf, k)| {
        if code == BPF_RET_K && k == RET_EPERM && !off {
            (code, jt, jf, libc::SECCOMP_RET_USER_NOTIF)
        } else {
            (code, jt, jf, k)
        }
    }));
    p
}

/// Install `programs` on the calling thread (no_new_privs must be set).
pub(crate) fn install(programs: &[BpfProgram]) -> Result<(), String> {
    for p in programs {
        seccompiler::apply_filter(p).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Install the filters a container of paddock's OCI runtime gets: those
/// of a sandbox with audit off (the deny list, and clone3, set-id modes and
/// x32 refused, `openat2` answered ENOSYS). no_new_privs must be set.
pub fn install_container_filters() -> Result<(), String> {
    let p = programs(AuditLevel::Off, crate::spec::Level::Full).map_err(|e| e.to_string())?;
    install(&p)
}

/// Install the filters a container gets when its policy audits
/// (`level` above `off`): those of a sandbox at `level`, the observing
/// filter last, holding the deny list (whose refusals are then recorded
/// as `syscall.denied`). Returns the observing filter's listener
/// (close-on-exec), for the container's observer on the host
/// ([`crate::ContainerObserver`]); until it is served, a watched call
/// waits, and once it is closed a watched call fails (`ENOSYS`).
/// no_new_privs must be set.
pub fn install_container_observer(level: AuditLevel) -> Result<std::os::fd::OwnedFd, String> {
    if level == AuditLevel::Off {
        return Err("audit level off: no observer".into());
    }
    let p = programs(level, crate::spec::Level::Full).map_err(|e| e.to_string())?;
    install(&p)?;
    paddock_sys::seccomp_install_with_listener(&audit_program(level))
        .map_err(|e| format!("the observing filter: {e}"))
}

/// The names of the system calls the filter denies, for `paddock doctor`
/// and the documentation.
pub fn denied_syscalls() -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(FILTER_JSON).unwrap_or_default();
    let mut names: Vec<String> = v["sandbox"]["filter"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["syscall"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::USERNS_PROBE_FLAGS;

    /// The setup sequence's user-namespace check must never create one,
    /// filter or no filter: run here, unfiltered, it fails with EINVAL and
    /// this process keeps its namespaces.
    #[test]
    fn the_user_namespace_probe_can_never_create_a_namespace() {
        let before = std::fs::read_link("/proc/self/ns/user").unwrap();
        let err = paddock_sys::unshare(USERNS_PROBE_FLAGS).expect_err("the kernel must refuse");
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
        assert_eq!(std::fs::read_link("/proc/self/ns/user").unwrap(), before);
        assert_ne!(
            USERNS_PROBE_FLAGS & 0x1000_0000,
            0,
            "the filter must see CLONE_NEWUSER"
        );
    }

    #[test]
    fn build_time_filters_match_the_json_source() {
        let arch = seccompiler::TargetArch::try_from(std::env::consts::ARCH).unwrap();
        let mut map = seccompiler::compile_from_json(super::FILTER_JSON.as_bytes(), arch).unwrap();
        let progs = super::programs(crate::spec::AuditLevel::Off, Default::default()).unwrap();
        let n = progs.len();
        // Written shorter at build time (bpf_compact.rs), with the verdicts
        // of the JSON compiler's own program for every input tried.
        let insns = |p: &super::BpfProgram| -> Vec<(u16, u8, u8, u32)> {
            p.iter().map(|i| (i.code, i.jt, i.jf, i.k)).collect()
        };
        for (i, name) in [(n - 1, "sandbox"), (n - 2, "modes"), (n - 3, "clone3")] {
            let source = insns(&map.remove(name).unwrap());
            let built = insns(&progs[i]);
            assert!(built.len() < source.len(), "{name}");
            crate::bpf_compact::same(&source, &built, super::AUDIT_ARCH)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn builtin_filter_compiles_and_every_rule_has_a_reason() {
        let progs = super::programs(crate::spec::AuditLevel::Off, Default::default())
            .expect("filter compiles");
        assert!(progs.iter().all(|p| !p.is_empty()));
        let v: serde_json::Value = serde_json::from_str(super::FILTER_JSON).unwrap();
        for f in ["sandbox", "clone3", "modes", "no_userns", "unobserved"] {
            for rule in v[f]["filter"].as_array().unwrap() {
                let c = rule["comment"].as_str().unwrap_or("");
                assert!(c.len() > 10, "rule without a reason: {rule}");
            }
        }
        let denied = super::denied_syscalls();
        for must in [
            "ptrace",
            "mount",
            "bpf",
            "perf_event_open",
            "keyctl",
            "add_key",
            "userfaultfd",
            "kexec_load",
            "init_module",
            "finit_module",
            "open_by_handle_at",
            "io_uring_setup",
            "ioctl",
            "unshare",
            "clone",
        ] {
            assert!(denied.iter().any(|d| d == must), "{must} not denied");
        }
    }

    #[test]
    fn no_watched_call_is_on_the_deny_list() {
        // The prologue lets watched calls through to the kernel; one that
        // the deny list refuses would then escape it.
        let denied = super::denied_syscalls();
        for (nr, name, _) in super::watched() {
            assert!(
                !denied.iter().any(|d| d == name),
                "{name} is watched and denied"
            );
            assert!(super::denied_name(nr).is_none(), "{name} ({nr}) is denied");
        }
        assert_eq!(
            super::denied_name(u32::try_from(libc::SYS_ptrace).unwrap()),
            Some("ptrace")
        );
        assert_eq!(
            super::denied_name(u32::try_from(libc::SYS_mount).unwrap()),
            Some("mount")
        );
    }

    #[test]
    fn the_observing_filter_sends_pid_1_exactly_the_watched_calls() {
        use crate::bpf_compact::run;
        use crate::spec::AuditLevel;
        for level in [
            AuditLevel::Off,
            AuditLevel::Denied,
            AuditLevel::Writes,
            AuditLevel::All,
        ] {
            let p = super::audit_program(level);
            let off = level == AuditLevel::Off;
            let notif = libc::SECCOMP_RET_USER_NOTIF;
            // The deny list alone, its refusals sent to pid 1 when auditing.
            let main = |nr: u32, arch: u32, args: &[u64; 6]| {
                let v = run(super::compiled::SANDBOX, nr, arch, args).unwrap();
                if v == super::RET_EPERM && !off {
                    notif
                } else {
                    v
                }
            };
            let watched = super::watched();
            let mut argsets = vec![[0u64; 6], [u64::MAX; 6]];
            for i in 0..6 {
                let mut a = [0u64; 6];
                a[i] = u64::from(super::WRITE_FLAGS);
                argsets.push(a);
            }
            for nr in 0..1100u32 {
                for args in &argsets {
                    let expect = match watched.iter().find(|w| w.0 == nr).map(|w| w.2) {
                        Some(super::Watched::Connect) => notif,
                        Some(_) if off => main(nr, super::AUDIT_ARCH, args),
                        Some(super::Watched::Exec { .. }) if level < AuditLevel::Writes => {
                            main(nr, super::AUDIT_ARCH, args)
                        }
                        Some(super::Watched::Open {
                            flags_arg: Some(a), ..
                        }) if level < AuditLevel::All => {
                            if args[a] & u64::from(super::WRITE_FLAGS) != 0 {
                                notif
                            } else {
                                main(nr, super::AUDIT_ARCH, args)
                            }
                        }
                        Some(_) => notif,
                        None => main(nr, super::AUDIT_ARCH, args),
                    };
                    let got = run(&p, nr, super::AUDIT_ARCH, args);
                    assert_eq!(got, Some(expect), "{level:?} nr {nr} args {args:x?}");
                }
                // Another architecture: the deny list's verdict.
                let other = run(&p, nr, 0x4000_0003, &[0; 6]);
                assert_eq!(other, Some(main(nr, 0x4000_0003, &[0; 6])));
            }
        }
    }

    #[test]
    fn audit_program_keeps_every_deny_verdict() {
        use crate::spec::AuditLevel;
        // Unaudited: the deny list's verdicts stay EPERM, only connect is
        // sent to pid 1.
        let off = super::audit_program(AuditLevel::Off);
        let main = super::compiled::SANDBOX;
        assert_eq!(&off[off.len() - main.len()..], main);
        assert_eq!(off.len() - main.len(), 3 + 1 + 2);
        for level in [AuditLevel::Denied, AuditLevel::Writes, AuditLevel::All] {
            let p = super::audit_program(level);
            let main = super::compiled::SANDBOX;
            let tail = &p[p.len() - main.len()..];
            for (a, b) in tail.iter().zip(main) {
                if b.0 == super::BPF_RET_K && b.3 == super::RET_EPERM {
                    assert_eq!(a.3, libc::SECCOMP_RET_USER_NOTIF);
                } else {
                    assert_eq!(a, b);
                }
            }
            // Every jump of the prologue lands inside the program.
            for (i, ins) in p[..p.len() - main.len()].iter().enumerate() {
                if ins.0 & 0x07 == 0x05 {
                    let t = if ins.0 == super::BPF_JA {
                        ins.3 as usize
                    } else {
                        ins.1.max(ins.2) as usize
                    };
                    assert!(i + 1 + t < p.len());
                }
            }
        }
    }
}
