//! Timestamps of paddock's own steps, for profiling a start or an exec.
//! With `PADDOCK_TRACE_TIMING` in the environment, [`mark`] writes one line
//! per step: `paddock-timing <CLOCK_MONOTONIC ms> <pid> <step>`. The value
//! `1` writes to stderr; a path appends to that file, where every process
//! of a command (client, supervisor, pid 1, the exec template and a command
//! before its execve, which keep the file open across their forks) writes
//! on one clock. Off, a mark costs one load and a branch.

use std::io::Write;
use std::sync::OnceLock;

enum Sink {
    Off,
    Stderr,
    File(std::fs::File),
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// Read `PADDOCK_TRACE_TIMING` once, first thing in `main`.
pub fn trace_timing_init() {
    SINK.get_or_init(|| match std::env::var_os("PADDOCK_TRACE_TIMING") {
        None => Sink::Off,
        Some(v) if v.to_string_lossy().starts_with('/') => std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&v)
            .map(Sink::File)
            .unwrap_or(Sink::Stderr),
        Some(_) => Sink::Stderr,
    });
}

/// The step `what` just ended.
pub fn mark(what: &str) {
    let Some(sink) = SINK.get() else { return };
    if matches!(sink, Sink::Off) {
        return;
    }
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    #[allow(clippy::cast_precision_loss)]
    let ms = ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6;
    let line = format!("paddock-timing {ms:.3} {} {what}\n", std::process::id());
    match sink {
        Sink::Off => {}
        Sink::Stderr => {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
        Sink::File(f) => {
            let _ = (&*f).write_all(line.as_bytes());
        }
    }
}
