//! The one place in paddock where `unsafe` code lives.
//!
//! Every other crate in the workspace is `#![forbid(unsafe_code)]`. This crate
//! wraps the Linux system calls the sandbox needs into small, safe functions
//! that take Rust types and return [`std::io::Result`]. Each wrapper keeps the
//! kernel's semantics (no retries, no policy): the *order* in which they are
//! called, and why, lives in `paddock-sandbox`.
//!
//! Every `unsafe` block carries a `// SAFETY:` comment saying which invariant
//! of the call makes it sound.

#![deny(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

pub use libc::pid_t;

/// Turn a `-1` return into the thread's `errno` as an [`io::Error`].
fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Like [`check`] for calls that return `c_int`.
fn check_int(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cstr(p: &Path) -> io::Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

fn cstring(s: &str) -> io::Result<CString> {
    CString::new(s)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "string contains a NUL byte"))
}

/// A byte count the kernel returned (non-negative after [`check`]).
fn to_len(n: libc::c_long) -> io::Result<usize> {
    usize::try_from(n).map_err(|_| io::Error::from_raw_os_error(libc::EOVERFLOW))
}

/// Wrap a raw fd returned by a successful system call.
fn owned(fd: libc::c_long) -> OwnedFd {
    let fd = RawFd::try_from(fd).expect("kernel returned an fd that does not fit in an int");
    // SAFETY: `fd` was just returned by the kernel as a new descriptor that no
    // other owner knows about; we take sole ownership of it here.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

mod process;
pub use process::*;
mod privilege;
pub use privilege::*;
mod signal;
pub use signal::*;
mod mount;
pub use mount::*;
mod fs;
pub use fs::*;
mod net;
pub use net::*;
mod tun;
pub use tun::*;
mod seccomp;
pub use seccomp::*;
mod pty;
pub use pty::*;
mod container;
pub use container::*;
mod timing;
pub use timing::*;
#[cfg(feature = "attack")]
mod attack;
#[cfg(feature = "attack")]
pub use attack::*;
