//! `paddock-probe ACTION [ARGS]`: one attack or check, run inside a sandbox
//! by the test suite.
//!
//! It prints one line, `ok` or `err ERRNO_NAME (message)`, and exits 0 when
//! the action *succeeded* and 1 when the kernel refused it. Tests assert
//! which one they expect, so a sandbox that lets an attack through fails its
//! test. Unknown actions exit 2.

#![forbid(unsafe_code)]

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;

use paddock_sys as sys;

fn report(r: io::Result<()>) -> i32 {
    match r {
        Ok(()) => {
            println!("ok");
            0
        }
        Err(e) => {
            let name = match e.raw_os_error() {
                Some(libc::EPERM) => "EPERM",
                Some(libc::EACCES) => "EACCES",
                Some(libc::ENOENT) => "ENOENT",
                Some(libc::EROFS) => "EROFS",
                Some(libc::ENOSYS) => "ENOSYS",
                Some(libc::ESRCH) => "ESRCH",
                Some(libc::EXDEV) => "EXDEV",
                Some(libc::EIO) => "EIO",
                Some(libc::ECONNREFUSED) => "ECONNREFUSED",
                Some(libc::ENETUNREACH) => "ENETUNREACH",
                Some(libc::EINVAL) => "EINVAL",
                Some(libc::EBUSY) => "EBUSY",
                _ => "OTHER",
            };
            println!("err {name} ({e})");
            1
        }
    }
}

fn arg(args: &[String], i: usize) -> io::Result<&str> {
    args.get(i)
        .map(String::as_str)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "missing argument"))
}

/// Actions that would do real harm to a host if the probe were started
/// outside a sandbox by mistake.
const HOST_DANGEROUS: &[&str] = &["kill", "ptrace", "mount-tmpfs", "umount", "unshare-mount"];

/// True inside a user namespace other than the initial one (whose uid map is
/// the identity over the whole range).
fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .map(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
        .unwrap_or(false)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let action = args.first().cloned().unwrap_or_default();
    if HOST_DANGEROUS.contains(&action.as_str()) && !in_user_namespace() {
        eprintln!("paddock-probe: refusing `{action}` outside a sandbox");
        std::process::exit(3);
    }
    let r: io::Result<()> = match action.as_str() {
        "read" => arg(&args, 1).and_then(|p| {
            let mut buf = Vec::new();
            std::fs::File::open(p)?.read_to_end(&mut buf)?;
            if let Ok(s) = std::str::from_utf8(&buf) {
                print!("{s}");
            }
            Ok(())
        }),
        "write" => arg(&args, 1).and_then(|p| {
            let data = args
                .get(2)
                .map(String::as_str)
                .unwrap_or("written by probe\n");
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)?
                .write_all(data.as_bytes())
        }),
        "create" => arg(&args, 1).and_then(|p| std::fs::File::create_new(p).map(drop)),
        "mkdir" => arg(&args, 1).and_then(std::fs::create_dir),
        "unlink" => arg(&args, 1).and_then(std::fs::remove_file),
        "rmdir" => arg(&args, 1).and_then(std::fs::remove_dir),
        "rename" => arg(&args, 1).and_then(|a| std::fs::rename(a, arg(&args, 2)?)),
        "symlink" => arg(&args, 1).and_then(|t| std::os::unix::fs::symlink(t, arg(&args, 2)?)),
        "kill" => arg(&args, 1).and_then(|pid| {
            let pid: i32 = pid
                .parse()
                .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
            let sig: i32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
            sys::kill(pid, sig)
        }),
        "ptrace" => arg(&args, 1).and_then(|pid| {
            sys::ptrace_attach(
                pid.parse()
                    .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
            )
        }),
        "unshare-user" => sys::unshare(sys::ns::USER),
        "unshare-mount" => sys::unshare(sys::ns::MOUNT),
        "mount-tmpfs" => arg(&args, 1).and_then(|p| {
            sys::mount(
                Some("tmpfs"),
                std::path::Path::new(p),
                Some("tmpfs"),
                0,
                None,
            )
        }),
        "umount" => arg(&args, 1).and_then(|p| sys::umount_detach(std::path::Path::new(p))),
        "tiocsti" => sys::controlling_pty().and_then(|tty| sys::tiocsti(tty.as_raw_fd(), b'x')),
        "tioclinux" => sys::controlling_pty().and_then(|tty| sys::tioclinux(tty.as_raw_fd())),
        "bpf" => sys::bpf_probe(),
        "keyctl" => sys::keyctl_probe(),
        "userfaultfd" => sys::userfaultfd_probe(),
        "perf_event_open" => sys::perf_event_open_probe(),
        "io_uring" => sys::io_uring_setup_probe(),
        "open_by_handle_at" => sys::open_by_handle_at_probe(),
        "connect" => arg(&args, 1).and_then(|a| {
            std::net::TcpStream::connect_timeout(
                &a.parse()
                    .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
                std::time::Duration::from_secs(2),
            )
            .map(drop)
        }),
        "udp" => std::net::UdpSocket::bind("0.0.0.0:0").map(drop),
        "unix-connect" => {
            arg(&args, 1).and_then(|p| std::os::unix::net::UnixStream::connect(p).map(drop))
        }
        "shmget" => sys::shmget_probe(),
        "loopback-echo" => (|| {
            // A server and a client inside the sandbox: loopback must work.
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            let addr = l.local_addr()?;
            let t = std::thread::spawn(move || -> io::Result<()> {
                let (mut s, _) = l.accept()?;
                s.write_all(b"pong")
            });
            let mut c = std::net::TcpStream::connect(addr)?;
            let mut buf = [0u8; 4];
            c.read_exact(&mut buf)?;
            t.join().map_err(|_| io::Error::other("thread"))??;
            if &buf == b"pong" {
                Ok(())
            } else {
                Err(io::Error::other("bad echo"))
            }
        })(),
        "abstract-connect" => arg(&args, 1).and_then(|name| {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            std::os::unix::net::UnixStream::connect_addr(&addr).map(drop)
        }),
        "interfaces" => std::fs::read_to_string("/proc/net/dev").map(|s| {
            for l in s.lines().skip(2) {
                if let Some((name, _)) = l.split_once(':') {
                    println!("{}", name.trim());
                }
            }
        }),
        "pids" => std::fs::read_dir("/proc").map(|rd| {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.chars().all(|c| c.is_ascii_digit()) {
                    let cmd = std::fs::read(format!("/proc/{n}/cmdline")).unwrap_or_default();
                    let cmd: String = String::from_utf8_lossy(&cmd).replace('\0', " ");
                    println!("{n} {}", cmd.trim());
                }
            }
        }),
        "status" => std::fs::read_to_string("/proc/self/status").map(|s| {
            for l in s.lines() {
                if [
                    "CapInh",
                    "CapPrm",
                    "CapEff",
                    "CapBnd",
                    "CapAmb",
                    "NoNewPrivs",
                    "Seccomp:",
                    "Seccomp_filters",
                    "Uid",
                    "Gid",
                ]
                .iter()
                .any(|k| l.starts_with(k))
                {
                    println!("{l}");
                }
            }
        }),
        // The resource limits in force (soft and hard).
        "limits" => std::fs::read_to_string("/proc/self/limits").map(|s| {
            for l in s.lines().skip(1) {
                println!("{}", l.split_whitespace().collect::<Vec<_>>().join(" "));
            }
        }),
        "sleep" => {
            let secs: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
            std::thread::sleep(std::time::Duration::from_secs(secs));
            Ok(())
        }
        _ => {
            eprintln!("paddock-probe: unknown action `{action}`");
            std::process::exit(2);
        }
    };
    std::process::exit(report(r));
}
