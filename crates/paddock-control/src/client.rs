//! The client side of the control socket: start a session's supervisor
//! when needed, run a command in it (relayed terminal, or captured
//! output), stop it.

use super::*;
use paddock_reasons::Reason;

/// The control socket of `meta`'s supervisor, starting the supervisor
/// (`paddock __supervise ID`) when the session has none running.
pub fn ensure_supervisor(store: &Store, meta: &Meta) -> Result<PathBuf, CliError> {
    let sock = store.dir(&meta.id).join("control.sock");
    if meta.liveness() == Liveness::Running {
        return Ok(sock);
    }
    // Starting is serialised: the first caller starts the supervisor while
    // holding this lock; the others wait for it, then find the session
    // running and attach to the same supervisor.
    let start_lock = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(store.dir(&meta.id).join("start.lock"))
        .map_err(io_err("start.lock"))?;
    paddock_sys::flock_exclusive(start_lock.as_fd(), true).map_err(io_err("start.lock"))?;
    let meta = &store.load(&meta.id).map_err(session_err)?;
    if meta.liveness() == Liveness::Running {
        return Ok(sock);
    }
    let exe = std::env::current_exe().map_err(io_err("locating paddock"))?;
    use std::os::unix::process::CommandExt;
    let mut child = std::process::Command::new(exe)
        .arg("__supervise")
        .arg(&meta.id)
        .current_dir(&meta.inputs.workspace)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(io_err("starting the supervisor"))?;
    let mut line = String::new();
    let out = child
        .stdout
        .take()
        .ok_or_else(|| CliError::new(Reason::SESSION_IO.code(), "no supervisor output", ""))?;
    let _ = BufReader::new(out).read_line(&mut line);
    if line.trim() == "ready" {
        // The supervisor outlives us; nobody waits for it but init.
        std::mem::drop(child);
        return Ok(sock);
    }
    let _ = child.wait();
    // The supervisor reports a failure as one JSON line.
    let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
    let message = v["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| {
            format!(
                "the supervisor exited without a word; see {}",
                store.dir(&meta.id).join("supervisor.log").display()
            )
        });
    Err(CliError {
        code: Reason::SESSION_START_FAILED.code(),
        message: format!(
            "session {} could not start its sandbox [{}]:\n{message}",
            meta.label(),
            v["code"].as_str().unwrap_or("?")
        ),
        fix: String::new(),
        exit: v["exit"]
            .as_i64()
            .and_then(|c| i32::try_from(c).ok())
            .unwrap_or(125),
        raw: false,
    })
}

/// `paddock exec`: run one command in the session's sandbox.
pub fn exec(store: &Store, meta: &Meta, argv: Vec<String>) -> Result<i32, CliError> {
    if paddock_sys::isatty(0) && paddock_sys::isatty(1) {
        return exec_tty(store, meta, argv);
    }
    let (i, o, e) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
    exec_with(store, meta, argv, [i.as_fd(), o.as_fd(), e.as_fd()])
}

/// An interactive exec: the command gets a fresh pseudo-terminal (its own
/// controlling terminal, so shells have job control), and this process
/// relays between it and the user's terminal in raw mode. The user's
/// terminal itself never enters the sandbox.
pub(crate) fn exec_tty(store: &Store, meta: &Meta, argv: Vec<String>) -> Result<i32, CliError> {
    use std::io::Read;
    // Before any thread exists: a signal meant for the command must not
    // land on a relay thread and take its default action on this process.
    let _ =
        paddock_sys::block_signals(&paddock_sys::SigSet::of(paddock_sandbox::FORWARDED_SIGNALS));
    let (master, slave) = paddock_sys::openpty().map_err(io_err("allocating a terminal"))?;
    paddock_sys::copy_winsize(0, std::os::fd::AsRawFd::as_raw_fd(&master));
    let saved = paddock_sys::make_raw(0).map_err(io_err("raw mode"))?;
    let mut from_master = std::fs::File::from(master.try_clone().map_err(io_err("terminal"))?);
    let mut to_master = std::fs::File::from(master);
    let out = std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        let mut stdout = std::io::stdout();
        // EIO once the last holder of the slave side is gone.
        while let Ok(n) = from_master.read(&mut buf) {
            if n == 0
                || stdout
                    .write_all(&buf[..n])
                    .and_then(|_| stdout.flush())
                    .is_err()
            {
                break;
            }
        }
    });
    let master_fd = std::os::fd::AsRawFd::as_raw_fd(&to_master);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut stdin = std::io::stdin();
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 || to_master.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    let result = {
        let fds = [slave.as_fd(), slave.as_fd(), slave.as_fd()];
        exec_with_winch(store, meta, argv, fds, Some(master_fd))
    };
    drop(slave);
    // Drain what the command wrote last; a background process that still
    // holds the terminal must not keep us waiting.
    let deadline = Instant::now() + Duration::from_millis(500);
    while !out.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    paddock_sys::restore_terminal(0, &saved);
    result
}

/// Run one command in the session with the given stdin, stdout, stderr.
pub fn exec_with(
    store: &Store,
    meta: &Meta,
    argv: Vec<String>,
    stdio: [std::os::fd::BorrowedFd<'_>; 3],
) -> Result<i32, CliError> {
    exec_with_winch(store, meta, argv, stdio, None)
}

/// [`exec_with`], keeping `pty_master`'s window size in step with the
/// user's terminal on SIGWINCH.
pub(crate) fn exec_with_winch(
    store: &Store,
    meta: &Meta,
    argv: Vec<String>,
    stdio: [std::os::fd::BorrowedFd<'_>; 3],
    pty_master: Option<std::os::fd::RawFd>,
) -> Result<i32, CliError> {
    let cwd = std::env::current_dir()
        .ok()
        .filter(|c| c.starts_with(&meta.inputs.workspace));
    let caller = CALLER.with(|c| c.borrow().clone());
    // Relay signals: the command runs in a session of its own, so even a
    // terminal's Ctrl-C reaches it only through us. They are held from
    // before the request is sent: the command may run (and print) before
    // its first answer reaches us, and a signal sent then is the
    // command's too. If no command starts, they take effect here.
    let set = paddock_sys::SigSet::of(paddock_sandbox::FORWARDED_SIGNALS);
    let _ = paddock_sys::block_signals(&set);
    let (conn, first) = match send_exec(store, meta, argv, cwd, caller, &stdio, None) {
        Ok(c) => c,
        Err(e) => {
            let _ = paddock_sys::unblock_signals(&set);
            return Err(e);
        }
    };
    if let Ok(w) = conn.try_clone() {
        std::thread::spawn(move || {
            while let Ok(sig) = paddock_sys::wait_signal(&set) {
                if let (libc::SIGWINCH, Some(m)) = (sig.signo, pty_master) {
                    // The pty's own size change signals the command.
                    paddock_sys::copy_winsize(0, m);
                    continue;
                }
                if (&w)
                    .write_all(format!("signal {}\n", sig.signo).as_bytes())
                    .is_err()
                {
                    break;
                }
            }
        });
    }
    let lines = std::iter::once(Ok(first)).chain(BufReader::new(conn).lines());
    for line in lines {
        let Ok(line) = line else { break };
        if line.is_empty() {
            break;
        }
        match serde_json::from_str::<ExecEvent>(&line) {
            Ok(ExecEvent::Started { .. } | ExecEvent::Audit { .. }) => {}
            Ok(ExecEvent::Exited { code, .. }) => {
                paddock_sys::mark("client: exit received");
                return Ok(code);
            }
            Ok(ExecEvent::Failed { code, message, .. }) => return Err(exec_failed(code, message)),
            Err(_) => {}
        }
    }
    Err(CliError::new(
        Reason::SESSION_LOST.code(),
        format!("session {} ended while the command ran", meta.label()),
        "see its supervisor.log",
    ))
}

/// Ask a live session (or a live `paddock run`) to stop and wait until it
/// has.
pub fn stop(store: &Store, meta: &Meta) -> Result<bool, CliError> {
    if meta.liveness() != Liveness::Running {
        return Ok(false);
    }
    if meta.oneshot {
        // A `paddock run`: its own process is the record's supervisor, and
        // SIGTERM is forwarded to its command (liveness above checked that
        // the pid is still that process).
        if let Some(s) = &meta.supervisor {
            let _ = paddock_sys::kill(s.pid, libc::SIGTERM);
        }
    } else {
        let sock = store.dir(&meta.id).join("control.sock");
        if let Ok(conn) = UnixStream::connect(&sock) {
            let payload = serde_json::to_vec(&ControlRequest::Stop).unwrap_or_default();
            let _ = paddock_sys::send_fds(conn.as_fd(), &[], &payload);
            let mut line = String::new();
            let _ = BufReader::new(conn).read_line(&mut line);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if store
            .load(&meta.id)
            .map(|m| m.liveness() != Liveness::Running)
            .unwrap_or(true)
        {
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(CliError::new(
        Reason::SESSION_STOP_TIMEOUT.code(),
        format!("session {} did not stop within 10 s", meta.label()),
        "kill its supervisor (pid in meta.json); its sandbox dies with it",
    ))
}

/// A command to run with its output collected.
pub struct CaptureRequest {
    /// Command and arguments.
    pub argv: Vec<String>,
    /// Working directory inside the sandbox.
    pub cwd: Option<PathBuf>,
    /// Who asked.
    pub caller: paddock_audit::Caller,
    /// Its standard input.
    pub stdin: Vec<u8>,
    /// Killed (with its process group) after this long.
    pub timeout: Duration,
    /// Bytes of each stream kept.
    pub limit: usize,
}

/// What a captured exec produced.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    /// Exit code (128 + signal when killed; 124 when the timeout killed it).
    pub code: i32,
    /// Standard output, at most `limit` bytes kept (head and tail).
    pub stdout: Vec<u8>,
    /// Standard error, likewise.
    pub stderr: Vec<u8>,
    /// Bytes of output left out of the middle.
    pub truncated: u64,
    /// Whether the timeout ended it.
    pub timed_out: bool,
}

/// What a capture thread kept: the bytes, and how many were left out.
type Kept = (Vec<u8>, u64);

/// The threads collecting a command's stdout and stderr.
pub(crate) struct Output {
    out: std::thread::JoinHandle<Kept>,
    err: std::thread::JoinHandle<Kept>,
}

impl Output {
    /// Both streams, waiting at most half a second for each: a background
    /// process may hold a pipe open long after the command ended.
    pub(crate) fn collect(self) -> (Kept, Kept) {
        let join = |h: std::thread::JoinHandle<Kept>| {
            let until = Instant::now() + Duration::from_millis(500);
            while !h.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(5));
            }
            if h.is_finished() {
                h.join().unwrap_or_default()
            } else {
                (b"[output still open in a background process]".to_vec(), 0)
            }
        };
        (join(self.out), join(self.err))
    }
}

/// Three pipes for a command: its ends (stdin, stdout, stderr, to send
/// along with the exec request), a thread feeding it `stdin`, and threads
/// keeping `limit` bytes of each output (head and tail).
pub(crate) fn piped(
    stdin: Vec<u8>,
    limit: usize,
) -> std::io::Result<([std::os::fd::OwnedFd; 3], Output)> {
    let (in_r, mut in_w) = std::io::pipe()?;
    let (out_r, out_w) = std::io::pipe()?;
    let (err_r, err_w) = std::io::pipe()?;
    // Not waited for: a command that never reads its stdin must not hold
    // us up (the write fails once the command is gone).
    std::thread::spawn(move || {
        let _ = in_w.write_all(&stdin);
    });
    let output = Output {
        out: std::thread::spawn(move || capture_output(out_r, limit)),
        err: std::thread::spawn(move || capture_output(err_r, limit)),
    };
    Ok(([in_r.into(), out_w.into(), err_w.into()], output))
}

/// Connect to `meta`'s supervisor (starting it) and send an exec request
/// with the command's stdin, stdout and stderr. Returns the connection and
/// its first answer line, of which only a part (or nothing) when
/// `deadline` came first.
pub(crate) fn send_exec(
    store: &Store,
    meta: &Meta,
    argv: Vec<String>,
    cwd: Option<PathBuf>,
    caller: paddock_audit::Caller,
    stdio: &[std::os::fd::BorrowedFd<'_>],
    deadline: Option<Instant>,
) -> Result<(UnixStream, String), CliError> {
    // Validated here too, so the caller gets the field, not a lost session.
    paddock_protocol::check_argv(&argv, "argv")
        .and_then(|()| match &cwd {
            Some(c) => paddock_protocol::check_no_nul(&c.to_string_lossy(), "cwd"),
            None => Ok(()),
        })
        .map_err(|e| {
            CliError::new(
                Reason::BAD_REQUEST.code(),
                e.to_string(),
                "a command line cannot carry a NUL byte; remove it",
            )
        })?;
    let payload = serde_json::to_vec(&ControlRequest::Exec {
        argv,
        cwd,
        caller,
        capture: false,
        stdin: None,
    })
    .unwrap_or_default();
    let mut meta = meta.clone();
    for attempt in 0..2 {
        let sock = ensure_supervisor(store, &meta)?;
        let conn = match UnixStream::connect(&sock) {
            Ok(c) => c,
            Err(e)
                if attempt == 0
                    && matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                    ) =>
            {
                meta = wait_supervisor_gone(store, &meta)?;
                continue;
            }
            Err(e) => return Err(io_err("connecting to the session")(e)),
        };
        paddock_sys::send_fds(conn.as_fd(), stdio, &payload)
            .map_err(io_err("sending the command"))?;
        paddock_sys::mark("client: request sent");
        // The first answer: a supervisor whose sandbox has just ended
        // (it is on its way out) runs nothing; start the session again.
        let first = read_one_line(&conn, deadline);
        let gone = matches!(
            serde_json::from_str::<ExecEvent>(&first),
            Ok(ExecEvent::Failed { ref message, .. }) if message == SANDBOX_GONE
        );
        if gone && attempt == 0 {
            meta = wait_supervisor_gone(store, &meta)?;
            continue;
        }
        return Ok((conn, first));
    }
    Err(CliError::new(
        Reason::SESSION_LOST.code(),
        format!("session {} could not be started again", meta.label()),
        "see its supervisor.log",
    ))
}

/// What a supervisor answers an exec when its sandbox has ended.
pub(crate) const SANDBOX_GONE: &str = "the sandbox is gone";

/// Wait (up to 5 s) for an ending supervisor to exit; the session's
/// record as it is then.
fn wait_supervisor_gone(store: &Store, meta: &Meta) -> Result<Meta, CliError> {
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until
        && store
            .load(&meta.id)
            .is_ok_and(|m| m.liveness() == Liveness::Running)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    store.load(&meta.id).map_err(session_err)
}

/// One line from `conn`, taking nothing after it from the stream (the
/// rest is the caller's): what is waiting is looked at first and only the
/// bytes up to the newline are read. Empty at end of stream, and only what
/// came before `deadline` if it passes first.
fn read_one_line(conn: &UnixStream, deadline: Option<Instant>) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    if deadline.is_some() {
        let _ = conn.set_read_timeout(Some(Duration::from_millis(100)));
    }
    loop {
        match paddock_sys::peek(conn.as_fd(), &mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let take = buf[..n].iter().position(|b| *b == b'\n').map(|i| i + 1);
                let want = take.unwrap_or(n);
                // What was looked at is waiting: this read returns it all.
                match std::io::Read::read(&mut &*conn, &mut buf[..want]) {
                    Ok(got) if got > 0 => out.extend_from_slice(&buf[..got]),
                    _ => break,
                }
                // Only up to the first newline is ever read.
                if out.last() == Some(&b'\n') {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) && deadline.is_some_and(|d| Instant::now() < d) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            _ => break,
        }
    }
    let _ = conn.set_read_timeout(None);
    String::from_utf8_lossy(&out).into_owned()
}

/// The error of an exec that could not start.
pub(crate) fn exec_failed(code: i32, message: String) -> CliError {
    let reason = ExecEvent::failure_reason(code, &message);
    // A message that names its reason (`CODE: ...`) gets that reason's fix.
    let (message, fix) = match message
        .strip_prefix(reason)
        .and_then(|m| m.strip_prefix(": "))
    {
        Some(rest) => (
            rest.to_string(),
            paddock_reasons::Reason::from_code(reason)
                .map(|r| r.fix().to_string())
                .unwrap_or_default(),
        ),
        None => (message, String::new()),
    };
    CliError {
        code: reason,
        message,
        fix,
        exit: code,
        raw: false,
    }
}

/// Keep the first and last `limit / 2` bytes of what `r` produces.
pub(crate) fn capture_output(mut r: impl std::io::Read, limit: usize) -> (Vec<u8>, u64) {
    let half = limit / 2;
    let mut head = Vec::new();
    let mut tail: std::collections::VecDeque<u8> = std::collections::VecDeque::new();
    let mut dropped = 0u64;
    let mut buf = [0u8; 8192];
    while let Ok(n) = r.read(&mut buf) {
        if n == 0 {
            break;
        }
        for &b in &buf[..n] {
            if head.len() < half {
                head.push(b);
            } else {
                tail.push_back(b);
                if tail.len() > half {
                    tail.pop_front();
                    dropped += 1;
                }
            }
        }
    }
    if dropped > 0 {
        head.extend_from_slice(format!("\n[… {dropped} bytes left out …]\n").as_bytes());
    }
    head.extend(tail);
    (head, dropped)
}

/// Run one command in the session with `stdin` as its input, collecting
/// its output (for programs driving paddock: the MCP server). The command
/// is killed after `timeout`. Safe to call from any thread: no signal
/// handling is touched.
pub fn exec_captured(store: &Store, meta: &Meta, r: CaptureRequest) -> Result<Captured, CliError> {
    let CaptureRequest {
        argv,
        cwd,
        caller,
        stdin,
        timeout,
        limit,
    } = r;
    let (ends, output) = piped(stdin, limit).map_err(io_err("pipe"))?;
    let deadline = Instant::now() + timeout;
    let (conn, first) = send_exec(
        store,
        meta,
        argv,
        cwd,
        caller,
        &[ends[0].as_fd(), ends[1].as_fd(), ends[2].as_fd()],
        Some(deadline),
    )?;
    drop(ends);
    let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
    let mut reader = BufReader::new(conn.try_clone().map_err(io_err("session"))?);
    let mut timed_out = false;
    // What has been read of the next line; a read that times out keeps
    // its part here, so no answer is lost to the timeout.
    let mut line = first;
    let lost = || {
        CliError::new(
            Reason::SESSION_LOST.code(),
            format!("session {} ended while the command ran", meta.label()),
            "see its supervisor.log",
        )
    };
    let result = loop {
        if timed_out && Instant::now() >= deadline + Duration::from_secs(10) {
            // Killed, yet no answer: do not wait for ever on a stuck session.
            break Err(lost());
        }
        if !timed_out && Instant::now() >= deadline {
            timed_out = true;
            // The command and everything it started in its group.
            let _ = (&conn).write_all(format!("signal-group {}\n", libc::SIGKILL).as_bytes());
        }
        let (complete, at_end) = if line.ends_with('\n') {
            (true, false)
        } else {
            match reader.read_line(&mut line) {
                Ok(0) => (!line.is_empty(), true),
                Ok(_) => (line.ends_with('\n'), false),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    (false, false)
                }
                Err(e) => break Err(io_err("session")(e)),
            }
        };
        if complete {
            match serde_json::from_str::<ExecEvent>(&line) {
                Ok(ExecEvent::Exited { code, .. }) => break Ok(code),
                Ok(ExecEvent::Failed { code, message, .. }) => {
                    break Err(exec_failed(code, message))
                }
                _ => {}
            }
            line.clear();
        }
        if at_end {
            break Err(lost());
        }
    };
    let ((stdout, t1), (stderr, t2)) = output.collect();
    let code = result?;
    Ok(Captured {
        code: if timed_out { 124 } else { code },
        stdout,
        stderr,
        truncated: t1 + t2,
        timed_out,
    })
}
