//! The bounding set is emptied again in a new user namespace, although the
//! process (as every command forked after pid 1 dropped it) carries the mark
//! that its set was already emptied: a new user namespace hands out a full
//! set, and `drop_all_capabilities` must notice.

use paddock_sys::{drop_all_capabilities, fork, unshare, waitpid, ExitStatus, Forked};

/// CapBnd of this process, from /proc/self/status.
fn bounding_set() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .expect("a CapBnd line");
    u64::from_str_radix(hex.trim(), 16).expect("CapBnd in hex")
}

/// A user namespace of our own; with `map`, our ids mapped to 0 in it (so
/// that a further one may be made from inside: its owner must be mapped).
fn enter_user_namespace(which: &str, map: bool) -> Result<(), String> {
    let (uid, gid) = (paddock_sys::getuid(), paddock_sys::getgid());
    unshare(libc::CLONE_NEWUSER as u64)
        .map_err(|e| format!("{which}: unshare(CLONE_NEWUSER): {e}"))?;
    if !map {
        // Mapping 0 needs CAP_SETFCAP in the parent namespace, which the
        // drop took; the last namespace needs no map.
        return Ok(());
    }
    std::fs::write("/proc/self/setgroups", "deny")
        .map_err(|e| format!("{which}: setgroups: {e}"))?;
    std::fs::write("/proc/self/uid_map", format!("0 {uid} 1"))
        .map_err(|e| format!("{which}: uid_map ({uid}): {e}"))?;
    std::fs::write("/proc/self/gid_map", format!("0 {gid} 1"))
        .map_err(|e| format!("{which}: gid_map ({gid}): {e}"))?;
    Ok(())
}

fn child() -> Result<(), String> {
    enter_user_namespace("first", true)?;
    drop_all_capabilities().map_err(|e| format!("first drop: {e}"))?;
    let left = bounding_set();
    if left != 0 {
        return Err(format!("after the first drop CapBnd is {left:x}"));
    }
    // A second namespace, made from inside the first: a full set again.
    enter_user_namespace("second", false)?;
    let full = bounding_set();
    if full == 0 {
        return Err("a new user namespace gave an empty bounding set".into());
    }
    drop_all_capabilities().map_err(|e| format!("second drop: {e}"))?;
    match bounding_set() {
        0 => Ok(()),
        left => Err(format!(
            "the second drop left CapBnd {left:x} (it was {full:x}): the mark was trusted"
        )),
    }
}

fn main() {
    // Single-threaded here (no test harness), as fork and unshare require.
    match fork().expect("fork") {
        Forked::Child => {
            let code = match child() {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("bounding_set: {e}");
                    1
                }
            };
            paddock_sys::exit_now(code);
        }
        Forked::Parent { pid, .. } => {
            let (_, st) = waitpid(pid, false).expect("waitpid").expect("a status");
            assert_eq!(
                st,
                ExitStatus::Exited(0),
                "the child's check failed (see above)"
            );
            println!("bounding_set: a new user namespace's full set is dropped again: ok");
        }
    }
}
