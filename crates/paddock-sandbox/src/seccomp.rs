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
/// build time.
pub(crate) fn programs() -> Result<Vec<BpfProgram>, SandboxError> {
    let mut out = Vec::with_capacity(3);
    if cfg!(target_arch = "x86_64") {
        out.push(x32_guard());
    }
    out.push(program(compiled::CLONE3));
    out.push(program(compiled::SANDBOX));
    Ok(out)
}

/// Install `programs` on the calling thread (no_new_privs must be set).
pub(crate) fn install(programs: &[BpfProgram]) -> Result<(), String> {
    for p in programs {
        seccompiler::apply_filter(p).map_err(|e| e.to_string())?;
    }
    Ok(())
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
    #[test]
    fn build_time_filters_match_the_json_source() {
        let arch = seccompiler::TargetArch::try_from(std::env::consts::ARCH).unwrap();
        let mut map = seccompiler::compile_from_json(super::FILTER_JSON.as_bytes(), arch).unwrap();
        let progs = super::programs().unwrap();
        let n = progs.len();
        assert_eq!(progs[n - 1], map.remove("sandbox").unwrap());
        assert_eq!(progs[n - 2], map.remove("clone3").unwrap());
    }

    #[test]
    fn builtin_filter_compiles_and_every_rule_has_a_reason() {
        let progs = super::programs().expect("filter compiles");
        assert!(progs.iter().all(|p| !p.is_empty()));
        let v: serde_json::Value = serde_json::from_str(super::FILTER_JSON).unwrap();
        for f in ["sandbox", "clone3"] {
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
}
