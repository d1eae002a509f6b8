//! The supervisor: one process per live session, serving its control
//! socket and owning its sandbox.

use super::*;
use paddock_audit::EventKind;
use paddock_reasons::Reason;

pub(crate) struct Shared {
    ctl: Mutex<UnixStream>,
    waiters: Mutex<HashMap<u64, mpsc::Sender<ExecEvent>>>,
    pids: Mutex<HashMap<u64, i32>>,
    active: AtomicUsize,
    last: Mutex<Instant>,
    next: AtomicU64,
    meta: Mutex<Meta>,
    store: Store,
    stop: mpsc::Sender<&'static str>,
    audit: Arc<paddock_audit::Log>,
    /// Who asked for each exec request and what (argv, cwd), for its
    /// `exec.start` and its processes' audit records.
    callers: Mutex<HashMap<u64, (paddock_audit::Caller, serde_json::Value)>>,
    /// Clients subscribed to the audit events.
    subscribers: Arc<Mutex<Vec<mpsc::Sender<paddock_audit::Event>>>>,
    /// The host paths `filesystem.deny` covers (pid 1 checks each cover
    /// before an exec; a second name of a file is seen only from here).
    denied: Vec<std::path::PathBuf>,
    /// Exec connections that have not had their last line yet: the
    /// supervisor waits for them (briefly) before it exits, so a client
    /// hears why the sandbox ended its command.
    answering: AtomicUsize,
}

impl Shared {
    /// A denied file that has gained a second name (a hard link) since
    /// the session started: that name would show it.
    fn denied_file_linked(&self) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        self.denied.iter().find_map(|p| {
            let md = std::fs::symlink_metadata(p).ok()?;
            (md.is_file() && md.nlink() > 1).then(|| {
                format!(
                    "{}: {} (filesystem.deny) has gained a second name (a hard link) on the host \
                     since the session started, which would show it",
                    Reason::FS_DENY_CHANGED.code(),
                    p.display()
                )
            })
        })
    }
}

impl Shared {
    /// A copy of the session's record.
    fn meta(&self) -> Meta {
        self.meta.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A command starts (`started`) or ends. The record on disk is
    /// rewritten when one ends, after its client has its answer: a start
    /// only counts in memory, so no file is written before a command runs.
    fn touch(&self, started: bool) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        let mut m = self.meta.lock().unwrap_or_else(|e| e.into_inner());
        m.last_used = paddock_session::now();
        if started {
            m.commands += 1;
        } else {
            let _ = self.store.save_quick(&m);
        }
    }
}

/// `paddock __supervise ID`: become the session's supervisor. Prints
/// `ready` (or a JSON error) on stdout for the client that started it.
pub fn supervise_main(id: &str) -> i32 {
    match supervise(id) {
        Ok(c) => c,
        Err(e) => {
            let v = serde_json::json!({"code": e.code, "message": e.to_string(), "exit": e.exit});
            println!("{v}");
            eprintln!("{e}");
            e.exit
        }
    }
}

pub(crate) fn supervise(id: &str) -> Result<i32, CliError> {
    let _ = paddock_sys::setsid();
    let host0 = HostFacts::current()?;
    let store = Store::locate(&host0.home);
    let mut meta = store.load(id).map_err(session_err)?;
    // One supervisor per session, whatever races: the first to hold this
    // lock is it, for its whole life (the lock ends with the process).
    let dir = store.dir(&meta.id);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("supervisor.lock"))
        .map_err(io_err("supervisor.lock"))?;
    // A supervisor that has just recorded its end still holds the lock
    // for the moments it takes to exit: wait for it (a little), rather
    // than refuse the session's next command.
    let has_one = |meta: &Meta| {
        CliError::new(
            Reason::SESSION_RUNNING.code(),
            format!("session {} already has a supervisor", meta.label()),
            "",
        )
    };
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while !paddock_sys::flock_exclusive(lock.as_fd(), false).map_err(io_err("supervisor.lock"))? {
        let running = store
            .load(id)
            .is_ok_and(|m| m.liveness() == Liveness::Running);
        if running || std::time::Instant::now() >= until {
            return Err(has_one(&meta));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Held (never closed) until this process ends.
    std::mem::forget(lock);
    meta = store.load(id).map_err(session_err)?;
    if meta.liveness() == Liveness::Running {
        return Err(has_one(&meta));
    }
    let host = HostFacts {
        cwd: meta.inputs.workspace.clone(),
        ..host0
    };
    let flags = session_flags(&meta.inputs);
    let eff = policy_files::effective(
        &host,
        meta.inputs.policy.as_deref(),
        Some(flags_layer(&flags)?),
    )?;
    if eff.hash() != meta.policy_hash {
        return Err(CliError::new(
            Reason::SESSION_POLICY_CHANGED.code(),
            format!(
                "the effective policy changed since session {} started ({} → {})",
                meta.label(),
                meta.policy_hash,
                eff.hash()
            ),
            "start a new session to use the new policy",
        ));
    }
    let cow_cap = eff.cow_mib.value.saturating_mul(1 << 20);
    let cow_used = paddock_session::cow::layer_bytes(&dir);
    if cow_used > cow_cap {
        return Err(cow_full(&meta, cow_used, eff.cow_mib.value));
    }
    let choice = isolation::choose(&eff, &host.home)?;
    let paddock_plan::Plan { spec, egress, .. } = paddock_plan::plan(&paddock_plan::Request {
        host: &host,
        eff: &eff,
        flags: &flags,
        level: choice.level,
        purpose: paddock_plan::Purpose::Session {
            id: &meta.id,
            dir: &dir,
        },
    })?;

    // From here on, diagnostics go to the session's log.
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("supervisor.log"))
        .map_err(io_err("supervisor.log"))?;
    let _ = paddock_sys::dup2(log.as_fd(), 2);
    isolation::warn(&choice);

    // Single-threaded until here: the sandbox is cloned now.
    let mut running = paddock_sandbox::spawn(&spec)?;
    running.ready()?;
    let guard = running.guard();
    crate::status::save_summary(
        &store,
        &meta.id,
        &crate::status::summarize(&eff, &spec, &running.limits),
    );
    // Subscribers (`{"op":"subscribe"}`) get every event as it is recorded.
    let subscribers: Arc<Mutex<Vec<mpsc::Sender<paddock_audit::Event>>>> = Arc::default();
    let fanout = {
        let subs = subscribers.clone();
        Arc::new(move |e: &paddock_audit::Event| {
            subs.lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|tx| tx.send(e.clone()).is_ok());
        }) as paddock_audit::Sink
    };
    let mut audit_out = audit::open_log(
        &dir,
        &meta.id,
        &meta.policy_hash,
        &eff,
        choice.level.as_str(),
        Some(fanout),
    )?;
    audit_out.start_export();
    let audit = audit_out.log.clone();
    let mut logins = Vec::new();
    if let (Some(g), Some(l)) = (&egress, running.proxy_listener.take()) {
        let log = audit.clone();
        let sink: paddock_proxy::EventSink = Arc::new(move |e: &paddock_proxy::Event| {
            log.emit(
                EventKind::NetDecision,
                Some(e.allowed),
                Some(&e.code),
                &paddock_audit::Caller::default(),
                serde_json::to_value(e).unwrap_or_default(),
            );
        });
        let mut cfg = g.config(&eff, Some(sink))?;
        logins = cfg.logins.clone();
        // On the host's loopback (no network namespace): this user only.
        if !choice.level.namespaces() {
            cfg.peer_uid = Some(paddock_sys::getuid());
        }
        paddock_proxy::spawn_thread(l, running.tun.take(), cfg).map_err(io_err("egress proxy"))?;
    }
    let ctl = running
        .control
        .take()
        .ok_or_else(|| CliError::new(Reason::SESSION_IO.code(), "no control channel", ""))?;
    let sock = dir.join("control.sock");
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).map_err(io_err("control.sock"))?;

    let pid = std::process::id() as i32;
    meta.state = State::Running;
    meta.supervisor = Some(Supervisor {
        pid,
        start_time: paddock_sys::process_start_time(pid).unwrap_or(0),
    });
    meta.last_used = paddock_session::now();
    meta.isolation = Some(choice.level.as_str().to_string());
    store.save(&meta).map_err(session_err)?;

    let (stop_tx, stop_rx) = mpsc::channel::<&'static str>();
    let shared = Arc::new(Shared {
        ctl: Mutex::new(ctl.try_clone().map_err(io_err("control channel"))?),
        waiters: Mutex::new(HashMap::new()),
        pids: Mutex::new(HashMap::new()),
        active: AtomicUsize::new(0),
        last: Mutex::new(Instant::now()),
        next: AtomicU64::new(1),
        meta: Mutex::new(meta.clone()),
        store: store.clone(),
        stop: stop_tx,
        audit: audit.clone(),
        callers: Mutex::new(HashMap::new()),
        subscribers,
        denied: spec.hidden.iter().map(|(host, _)| host.clone()).collect(),
        answering: AtomicUsize::new(0),
    });
    shared.audit.emit(
        EventKind::SessionStart,
        None,
        None,
        &paddock_audit::Caller::default(),
        serde_json::json!({"supervisor_pid": pid, "workspace": meta.inputs.workspace, "network": format!("{:?}", eff.network_mode.value).to_lowercase(), "isolation": choice.level.as_str()}),
    );

    // Protected names a command created in an rw mount are moved aside
    // before its client hears that it ended, and every second while
    // commands run (docs/sandbox.md says what this leaves open).
    // The cow layers' cap is checked at the same moments (every fifth
    // second while commands run): past it, the session stops, its changes
    // kept for review.
    let has_cow = spec
        .mounts
        .iter()
        .any(|m| m.mode == paddock_sandbox::MountMode::Cow);
    let sweep = {
        let shared = shared.clone();
        let guard = guard.clone();
        let dir = dir.clone();
        let cow_mib = eff.cow_mib.value;
        let ticks = AtomicU64::new(0);
        Arc::new(move |check: Check| {
            if check != Check::Cow && !guard.is_empty() {
                audit::swept(Some(&shared.audit), guard.sweep());
            }
            let now = match check {
                Check::Protected => false,
                Check::Cow => true,
                Check::Tick => ticks.fetch_add(1, Ordering::Relaxed) % 5 == 4,
            };
            if has_cow && now {
                let used = paddock_session::cow::layer_bytes(&dir);
                if used > cow_cap {
                    let e = cow_full(&shared.meta(), used, cow_mib);
                    eprintln!("{e}");
                    shared.audit.emit(
                        EventKind::SessionCowFull,
                        Some(false),
                        Some(Reason::COW_LAYER_FULL.code()),
                        &paddock_audit::Caller::default(),
                        serde_json::json!({"bytes": used, "cap_mib": cow_mib}),
                    );
                    // A moment for the client threads to deliver the exit
                    // statuses they hold before the sandbox goes.
                    let stop = shared.stop.clone();
                    std::thread::spawn(move || {
                        std::thread::sleep(Duration::from_millis(300));
                        let _ = stop.send("its cow layers passed process.limits.cow_mib");
                    });
                }
            }
        })
    };
    if !guard.is_empty() || has_cow {
        let shared = shared.clone();
        let sweep = sweep.clone();
        // Every second while the sandbox lives: a process left running in
        // the background after its command ended may still create names.
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_secs(1));
            sweep(if shared.active.load(Ordering::SeqCst) > 0 {
                Check::Tick
            } else {
                Check::Protected
            });
        });
    }

    // pid 1's events, routed to the waiting clients.
    let events = {
        let shared = shared.clone();
        let sweep = sweep.clone();
        std::thread::spawn(move || {
            // One message per read: records can be long (argv).
            for line in BufReader::with_capacity(1 << 16, ctl).lines() {
                let Ok(line) = line else { break };
                let Ok(ev) = serde_json::from_str::<ExecEvent>(&line) else {
                    continue;
                };
                let id = match &ev {
                    ExecEvent::Audit { id, record } => {
                        let caller = shared
                            .callers
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get(id)
                            .map(|c| c.0.clone())
                            .unwrap_or_default();
                        audit::emit_record(&shared.audit, &caller, *id, record);
                        continue;
                    }
                    ExecEvent::Started { id, pid } => {
                        // Recorded here, in pid 1's order, so that it
                        // precedes the command's own records.
                        let (caller, mut data) = shared
                            .callers
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get(id)
                            .cloned()
                            .unwrap_or_default();
                        data["pid"] = (*pid).into();
                        data["exec_id"] = (*id).into();
                        shared
                            .audit
                            .emit(EventKind::ExecStart, Some(true), None, &caller, data);
                        *id
                    }
                    ExecEvent::Failed { id, .. } | ExecEvent::Exited { id, .. } => *id,
                };
                let done = !matches!(ev, ExecEvent::Started { .. });
                paddock_sys::mark(if done {
                    "supervisor: exit from pid 1"
                } else {
                    "supervisor: start from pid 1"
                });
                if done {
                    sweep(Check::Protected);
                    paddock_sys::mark("supervisor: protected names swept");
                }
                let tx = {
                    let mut w = shared.waiters.lock().unwrap_or_else(|e| e.into_inner());
                    if done {
                        w.remove(&id)
                    } else {
                        w.get(&id).cloned()
                    }
                };
                if let Some(tx) = tx {
                    let _ = tx.send(ev);
                }
                if done {
                    shared.active.fetch_sub(1, Ordering::SeqCst);
                    shared.touch(false);
                    // After the client has its answer: this may stop the session.
                    sweep(Check::Cow);
                }
            }
            let _ = shared.stop.send("sandbox ended"); // pid 1 is gone
        })
    };
    // Idle timeout: no command running for that long ends the sandbox.
    if meta.idle_timeout_s > 0 {
        let shared = shared.clone();
        let limit = Duration::from_secs(meta.idle_timeout_s);
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(200).min(limit));
            let idle = shared
                .last
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .elapsed();
            if shared.active.load(Ordering::SeqCst) == 0 && idle >= limit {
                let _ = shared.stop.send("idle timeout");
                break;
            }
        });
    }
    {
        let shared = shared.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let shared = shared.clone();
                std::thread::spawn(move || client(shared, conn));
            }
        });
    }

    // SIGTERM, SIGINT or SIGHUP to the supervisor (kill, logout, a
    // service manager) stop the session cleanly. They are blocked in every
    // thread since the sandbox was spawned, so this thread takes them.
    {
        let stop = shared.stop.clone();
        std::thread::spawn(move || {
            let set = paddock_sys::SigSet::of(&[libc::SIGTERM, libc::SIGINT, libc::SIGHUP]);
            if paddock_sys::wait_signal(&set).is_ok() {
                let _ = stop.send("terminated by a signal");
            }
        });
    }

    println!("ready");
    let _ = std::io::stdout().flush();
    if let Ok(null) = std::fs::File::open("/dev/null") {
        let _ = paddock_sys::dup2(null.as_fd(), 1);
    }

    let reason = stop_rx.recv().unwrap_or("supervisor ending");
    {
        let ctl = shared.ctl.lock().unwrap_or_else(|e| e.into_inner());
        let _ = paddock_sys::send_fds(ctl.as_fd(), &[], b"stop");
    }
    if let Ok(o) = running.wait() {
        for q in &o.created_protected {
            audit::quarantined(Some(&shared.audit), q);
        }
    }
    // pid 1's last records (it sends them as it ends) are in the trail
    // before the stop: its socket ends with it.
    let until = Instant::now() + Duration::from_secs(2);
    while !events.is_finished() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(2));
    }
    // A refresh under way is stored before the proxy ends with us.
    let _refreshes = paddock_proxy::finish_refreshes(&logins, Duration::from_secs(30));
    let until = Instant::now() + Duration::from_secs(2);
    while shared.answering.load(Ordering::SeqCst) > 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = std::fs::remove_file(&sock);
    shared.audit.emit(
        EventKind::SessionStop,
        None,
        None,
        &paddock_audit::Caller::default(),
        serde_json::json!({"reason": reason}),
    );
    let mut m = shared.meta();
    m.state = State::Stopped;
    m.supervisor = None;
    store.save(&m).map_err(session_err)?;
    audit_out.finish();
    drop(egress);
    Ok(0)
}

pub(crate) fn send_line<T: Serialize>(conn: &UnixStream, v: &T) -> bool {
    let mut line = serde_json::to_vec(v).unwrap_or_default();
    line.push(b'\n');
    (&*conn).write_all(&line).is_ok()
}

/// One client connection.
pub(crate) fn client(shared: Arc<Shared>, conn: UnixStream) {
    let Ok((payload, fds)) = paddock_sys::recv_fds(conn.as_fd(), paddock_protocol::MAX_REQUEST)
    else {
        return;
    };
    paddock_sys::mark("supervisor: request read");
    let req = match paddock_protocol::parse_request(&payload) {
        Ok(r) => r,
        Err(e) => {
            send_line(
                &conn,
                &serde_json::json!({"error": Reason::BAD_REQUEST.code(), "field": e.field, "message": e.to_string(), "protocol": PROTOCOL_VERSION}),
            );
            return;
        }
    };
    match req {
        ControlRequest::Hello => {
            let m = shared.meta();
            send_line(
                &conn,
                &serde_json::json!({"protocol": PROTOCOL_VERSION, "paddock": env!("CARGO_PKG_VERSION"), "session": m.id, "policy_hash": m.policy_hash, "ops": ["hello", "exec", "status", "stop", "subscribe"]}),
            );
        }
        ControlRequest::Subscribe { after } => {
            // Registered first, so nothing falls between the backlog and
            // the live events; duplicates are skipped by sequence number.
            let (tx, rx) = mpsc::channel::<paddock_audit::Event>();
            shared
                .subscribers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(tx);
            let path = shared.store.dir(&shared.meta().id).join("audit.jsonl");
            let mut last = after;
            for e in paddock_audit::read(&path) {
                if e.seq > last {
                    last = e.seq;
                    if !send_line(&conn, &e) {
                        return;
                    }
                }
            }
            while let Ok(e) = rx.recv() {
                if e.seq > last {
                    last = e.seq;
                    if !send_line(&conn, &e) {
                        return;
                    }
                }
            }
        }
        ControlRequest::Stop => {
            send_line(&conn, &serde_json::json!({"ok": true}));
            let _ = shared.stop.send("stopped on request");
        }
        ControlRequest::Status => {
            let m = shared.meta();
            send_line(
                &conn,
                &serde_json::json!({"id": m.id, "running_commands": shared.active.load(Ordering::SeqCst), "commands": m.commands}),
            );
        }
        ControlRequest::Exec {
            argv,
            cwd,
            caller,
            capture,
            stdin,
        } => {
            if argv.is_empty() {
                send_line(
                    &conn,
                    &serde_json::json!({"error": Reason::BAD_REQUEST.code(), "message": "argv is empty"}),
                );
                return;
            }
            // Captured: paddock makes the pipes and collects the output.
            let mut fds = fds;
            let mut captured = None;
            if capture && fds.is_empty() {
                match piped(stdin.unwrap_or_default().into_bytes(), 1 << 20) {
                    Ok((ends, output)) => {
                        fds = ends.into();
                        captured = Some(output);
                    }
                    Err(e) => {
                        send_line(
                            &conn,
                            &serde_json::json!({"error": Reason::SESSION_IO.code(), "message": format!("pipes: {e}")}),
                        );
                        return;
                    }
                }
            }
            if fds.len() != 3 {
                send_line(
                    &conn,
                    &ExecEvent::Failed {
                        id: 0,
                        code: 125,
                        message: "exec needs stdin, stdout and stderr as descriptors, or \"capture\": true"
                            .into(),
                    },
                );
                return;
            }
            let id = shared.next.fetch_add(1, Ordering::SeqCst);
            if let Some(message) = shared.denied_file_linked() {
                shared.audit.emit(
                    EventKind::ExecExit,
                    Some(false),
                    Some(Reason::FS_DENY_CHANGED.code()),
                    &caller,
                    serde_json::json!({"argv": argv, "exit_code": 125, "message": message, "exec_id": id}),
                );
                send_line(
                    &conn,
                    &ExecEvent::Failed {
                        id,
                        code: 125,
                        message,
                    },
                );
                return;
            }
            shared
                .callers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(
                    id,
                    (
                        caller.clone(),
                        serde_json::json!({"argv": argv, "cwd": cwd}),
                    ),
                );
            let (tx, rx) = mpsc::channel();
            shared
                .waiters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id, tx);
            shared.active.fetch_add(1, Ordering::SeqCst);
            shared.touch(true);
            let started_at = Instant::now();
            let audit_argv = argv.clone();
            let req = ExecRequest {
                id,
                argv,
                // Host tools (ps e, EDR) attribute sandbox processes to
                // their session through this marker.
                env: vec![("PADDOCK_SESSION".to_string(), shared.meta().id)],
                cwd,
            };
            let payload = serde_json::to_vec(&req).unwrap_or_default();
            let sent = {
                let ctl = shared.ctl.lock().unwrap_or_else(|e| e.into_inner());
                let borrowed: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
                paddock_sys::send_fds(ctl.as_fd(), &borrowed, &payload)
            };
            paddock_sys::mark("supervisor: request sent to pid 1");
            drop(fds);
            if sent.is_err() {
                shared
                    .waiters
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id);
                shared.active.fetch_sub(1, Ordering::SeqCst);
                send_line(
                    &conn,
                    &ExecEvent::Failed {
                        id,
                        code: 125,
                        message: crate::client::SANDBOX_GONE.into(),
                    },
                );
                return;
            }
            // Signals from the client: "signal N" lines (to the command),
            // "signal-group N" (to its whole process group).
            if let Ok(rd) = conn.try_clone() {
                let shared = shared.clone();
                std::thread::spawn(move || {
                    for line in BufReader::new(rd).lines() {
                        let Ok(line) = line else { break };
                        let (group, rest) = match line.strip_prefix("signal-group ") {
                            Some(r) => (true, Some(r)),
                            None => (false, line.strip_prefix("signal ")),
                        };
                        let Some(sig) = rest.and_then(|s| s.trim().parse::<i32>().ok()) else {
                            continue;
                        };
                        // The command may have reported itself before its
                        // `started` event reached us: wait for its pid.
                        let mut pid = None;
                        for _ in 0..500 {
                            pid = shared
                                .pids
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .get(&id)
                                .copied();
                            if pid.is_some() {
                                break;
                            }
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        if let Some(pid) = pid {
                            let ctl = shared.ctl.lock().unwrap_or_else(|e| e.into_inner());
                            let _ = paddock_sys::send_fds(
                                ctl.as_fd(),
                                &[],
                                format!("signal {} {sig}", if group { -pid } else { pid })
                                    .as_bytes(),
                            );
                        }
                    }
                });
            }
            shared.answering.fetch_add(1, Ordering::SeqCst);
            while let Ok(ev) = rx.recv() {
                match &ev {
                    ExecEvent::Started { pid, .. } => {
                        shared
                            .pids
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(id, *pid);
                    }
                    ExecEvent::Exited { code, signal, .. } => shared.audit.emit(
                        EventKind::ExecExit,
                        None,
                        None,
                        &caller,
                        serde_json::json!({"argv": audit_argv, "exit_code": code, "signal": signal, "duration_ms": started_at.elapsed().as_millis(), "exec_id": id}),
                    ),
                    ExecEvent::Audit { .. } => {}
                    ExecEvent::Failed { code, message, .. } => {
                        let reason = ExecEvent::failure_reason(*code, message);
                        shared.audit.emit(
                            EventKind::ExecExit,
                            Some(false),
                            Some(reason),
                            &caller,
                            serde_json::json!({"argv": audit_argv, "exit_code": code, "message": message, "exec_id": id}),
                        );
                    }
                }
                let done = !matches!(ev, ExecEvent::Started { .. });
                if done {
                    if let Some(output) = captured.take() {
                        let ((stdout, _), (stderr, _)) = output.collect();
                        send_line(
                            &conn,
                            &serde_json::json!({"event": "output", "id": id, "stdout": String::from_utf8_lossy(&stdout), "stderr": String::from_utf8_lossy(&stderr)}),
                        );
                    }
                }
                if !send_line(&conn, &ev) || done {
                    paddock_sys::mark("supervisor: exit sent to the client");
                    break;
                }
            }
            shared.answering.fetch_sub(1, Ordering::SeqCst);
            shared
                .pids
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
        }
    }
}

/// Make sure `meta`'s supervisor runs; start it if not. Returns the
/// control socket path.
/// What one pass of the session's checks looks at.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Protected names only (a command ended; its client is waiting).
    Protected,
    /// The cow layers' size only (after the client was answered).
    Cow,
    /// The periodic pass: protected names, and every fifth time the size.
    Tick,
}

/// A session whose cow layers passed their cap.
pub(crate) fn cow_full(meta: &Meta, used: u64, cap_mib: u64) -> CliError {
    CliError::new(
        Reason::COW_LAYER_FULL.code(),
        format!(
            "session {}'s copy-on-write changes take {} MiB, over process.limits.cow_mib = {cap_mib}",
            meta.label(),
            used >> 20
        ),
        format!(
            "review them with `paddock diff {0}`, then `paddock apply {0}` or `paddock discard {0}`; or raise process.limits.cow_mib",
            meta.label()
        ),
    )
}
