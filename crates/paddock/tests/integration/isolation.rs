//! The isolation ladder. Each missing layer is forced for real where the
//! kernel allows it: user namespaces are taken away by running paddock
//! *inside a paddock sandbox*, whose seccomp filter refuses clone3 and
//! nested user namespaces exactly as a container runtime's default profile
//! does; Landlock, which cannot be switched off without a reboot, through
//! a debug-only hook (`PADDOCK_TEST_NO_LANDLOCK`) that release builds do
//! not contain. Then the held-back attacks are run at each level.

use std::process::Output;

use crate::util::{paddock_bin, probe_bin, stderr, stdout, Ws};

fn outer_policy(ws: &Ws) -> std::path::PathBuf {
    // The outer sandbox records nothing and, with PADDOCK_TEST_NO_OBSERVER,
    // watches nothing, so that the inner one may install its own audit
    // listener (the kernel allows one per filter chain).
    let p = ws.root.join("outer.toml");
    std::fs::write(&p, "version = 1\n[audit]\nlevel = \"off\"\n").unwrap();
    p
}

/// `paddock run` (outer, full isolation) of `sh -c script`, with the
/// paddock and probe binaries visible inside; the script runs paddock
/// again (inner).
fn nested(ws: &Ws, script: &str) -> Output {
    let bin = paddock_bin();
    let probe = probe_bin();
    ws.paddock()
        // Debug builds only: the unaudited outer sandbox installs no
        // listener at all, so that the inner one can install its own.
        .env("PADDOCK_TEST_NO_OBSERVER", "1")
        .arg("run")
        .arg("--policy")
        .arg(outer_policy(ws))
        .arg("--mount")
        .arg(format!("{}:ro", bin.display()))
        .arg("--mount")
        .arg(format!("{}:ro", probe.display()))
        .args(["--env", &format!("P={}", bin.display())])
        .args(["--env", &format!("PR={}", probe.display())])
        .args(["--env", &format!("REALHOME={}", ws.home.display())])
        .args(["--", "sh", "-c", script])
        .output()
        .unwrap()
}

/// The value after `label=` on a line of `out`.
fn line<'a>(out: &'a str, label: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{label}=")))
        .unwrap_or_else(|| panic!("no {label}= in:\n{out}"))
}

#[test]
fn without_user_namespaces_no_userns_is_chosen_recorded_and_still_blocks_the_attacks() {
    let ws = Ws::new();
    std::fs::write(
        ws.proj.join("inner.toml"),
        "version = 1\n[network]\nmode = \"proxy\"\nallow = [\"allowed.test\"]\n",
    )
    .unwrap();
    // Inside the outer sandbox: a secret in the (outer's private) home, a
    // process outside the inner sandbox to signal and read, then the inner
    // run; afterwards its record, and whether its background child lives.
    let o = nested(
        &ws,
        r#"
echo topsecret > "$REALHOME/.secret"
sleep 30 & OUTSIDE=$!
# Another terminal of the user's: a pty held open out here.
python3 -c 'import os,time; m,s=os.openpty(); open("pty.name","w").write(os.ttyname(s)); time.sleep(30)' & PTYHOLDER=$!
for i in $(seq 50); do test -s pty.name && break; sleep 0.1; done
OTHERPTY=$(cat pty.name)
$P run -v --policy inner.toml --mount $PR:ro --env OUTSIDE=$OUTSIDE --env OTHERPTY=$OTHERPTY --env REALHOME --env PR -- sh -c '
  PORT=${HTTP_PROXY##*:}
  echo "home=$HOME"
  echo "proxy=$PORT"
  echo "secret=$($PR read $REALHOME/.secret)"
  echo "shadow=$($PR read /etc/shadow)"
  echo "passwd=$($PR read /etc/passwd | head -c 5)"
  echo "otherpty=$($PR write $OTHERPTY injected)"
  echo "plant=$($PR create $REALHOME/planted)"
  echo "tmp=$($PR create /tmp/x)"
  echo "scratch=$($PR create $TMPDIR/ok)"
  echo "workspace=$($PR create $PWD/made)"
  echo "via-proxy=$($PR connect 127.0.0.1:$PORT)"
  echo "other-port=$($PR connect 127.0.0.1:$((PORT + 1)))"
  echo "udp=$($PR udp)"
  echo "unix=$($PR unix-connect /run/anything.sock)"
  echo "sysv=$($PR shmget)"
  echo "signal=$($PR kill $OUTSIDE 0)"
  echo "environ=$($PR read /proc/$OUTSIDE/environ)"
  echo "ptrace=$($PR ptrace $OUTSIDE)"
  echo "userns=$($PR unshare-user)"
  echo "bpf=$($PR bpf)"
  ls / >/dev/null 2>&1 && echo "list-root=ok" || echo "list-root=refused"
  setsid sleep 1000 >/dev/null 2>&1 & echo $! > bg.pid
  echo "http=$(curl -s -o /dev/null -w %{http_code} http://denied.test/)"
  echo planted > .envrc 2>/dev/null; echo "envrc-direct=$?"
  ln -s .envrc innocent && echo planted > innocent
'
echo "inner-exit=$?"
test -e .envrc && echo "envrc=present" || echo "envrc=absent"
ls -a | grep -c "^.envrc.paddock-quarantine-" | sed "s/^/envrc-quarantined=/"
sleep 0.3
if kill -0 "$(cat bg.pid)" 2>/dev/null; then echo "leftover=yes"; else echo "leftover=no"; fi
kill $OUTSIDE $PTYHOLDER
for d in $REALHOME/.local/state/paddock/sessions/*/; do
  echo "meta=$(tr -d '\n ' < $d/meta.json)"
  echo "audit-lines=$(wc -l < $d/audit.jsonl)"
  echo "audit-not-tagged=$(grep -vc '"isolation":"no-userns"' $d/audit.jsonl)"
  echo "audit-start=$(grep '"session.start"' $d/audit.jsonl)"
  echo "audit-denied-write=$(grep -c '"file.denied"' $d/audit.jsonl)"
done
"#,
    );
    let out = stdout(&o);
    let err = stderr(&o);
    assert!(o.status.success(), "{:?}\n{out}\n{err}", o.status);
    assert_eq!(line(&out, "inner-exit"), "0", "{out}\n{err}");
    // The level, said loudly with the reason and the fix.
    assert!(
        err.contains("enforced (isolation level no-userns): no namespaces"),
        "{err}"
    );
    assert!(
        err.contains("warning[ISOLATION_DEGRADED]") && err.contains("clone3 is refused"),
        "{err}"
    );
    assert!(err.contains("seccomp profile"), "the fix: {err}");
    // The private home is the scratch folder, not the real one.
    assert!(line(&out, "home").contains("paddock-scratch-"), "{out}");
    // Files: the real home neither readable nor writable, /tmp closed,
    // the scratch and the workspace writable, `/` not listable.
    assert!(line(&out, "secret").starts_with("err EACCES"), "{out}");
    // The host's /etc secrets: not readable (the outer sandbox shows an
    // empty file there; a root host would show the real one), the rest of
    // /etc is.
    assert!(line(&out, "shadow").starts_with("err EACCES"), "{out}");
    assert!(!line(&out, "passwd").starts_with("err"), "{out}");
    // The user's other terminals are out of reach.
    assert!(line(&out, "otherpty").starts_with("err EACCES"), "{out}");
    assert!(line(&out, "plant").starts_with("err EACCES"), "{out}");
    assert!(line(&out, "tmp").starts_with("err EACCES"), "{out}");
    assert_eq!(line(&out, "scratch"), "ok", "{out}");
    assert_eq!(line(&out, "workspace"), "ok", "{out}");
    assert!(ws.proj.join("made").exists());
    assert_eq!(line(&out, "list-root"), "refused", "{out}");
    // Network: the proxy's port only; it refuses what the policy refuses.
    assert_eq!(line(&out, "via-proxy"), "ok", "{out}");
    assert!(line(&out, "other-port").starts_with("err EACCES"), "{out}");
    assert_eq!(line(&out, "http"), "403", "{out}");
    assert!(line(&out, "udp").starts_with("err EPERM"), "{out}");
    assert!(line(&out, "unix").starts_with("err EPERM"), "{out}");
    assert!(line(&out, "sysv").starts_with("err EPERM"), "{out}");
    // Processes outside: no signal, no environment, no ptrace.
    assert!(line(&out, "signal").starts_with("err EPERM"), "{out}");
    assert!(line(&out, "environ").starts_with("err EACCES"), "{out}");
    assert!(line(&out, "ptrace").starts_with("err EPERM"), "{out}");
    assert!(line(&out, "userns").starts_with("err EPERM"), "{out}");
    assert!(line(&out, "bpf").starts_with("err EPERM"), "{out}");
    // Protected names at this level: no mounts keep existing ones
    // read-only, but a new one is refused where the name is read, and the
    // one made through a link is swept aside.
    assert_ne!(line(&out, "envrc-direct"), "0", "{out}");
    assert_eq!(line(&out, "envrc"), "absent", "{out}\n{err}");
    assert_eq!(line(&out, "envrc-quarantined"), "1", "{out}\n{err}");
    // A detached background process does not outlive the run.
    assert_eq!(line(&out, "leftover"), "no", "{out}");
    // The record and every audit event carry the level.
    let meta = line(&out, "meta");
    assert!(meta.contains(r#""isolation":"no-userns""#), "{meta}");
    assert!(
        line(&out, "audit-lines").parse::<u32>().unwrap() >= 3,
        "{out}"
    );
    assert_eq!(line(&out, "audit-not-tagged"), "0", "{out}");
    assert!(
        line(&out, "audit-start").contains(r#""isolation":"no-userns""#),
        "{out}"
    );
    // The observer works at this level too: the refused writes are there.
    assert!(
        line(&out, "audit-denied-write").parse::<u32>().unwrap() >= 2,
        "{out}"
    );
}

#[test]
fn a_minimum_the_host_cannot_meet_is_refused_with_the_missing_layer_and_nothing_runs() {
    let ws = Ws::new();
    std::fs::write(
        ws.proj.join("strict.toml"),
        "version = 1\n[isolation]\nminimum = \"full\"\n",
    )
    .unwrap();
    let o = nested(
        &ws,
        r#"$P run --policy strict.toml -- touch ran; echo "exit=$?"; $P doctor >/dev/null; echo "doctor=$?""#,
    );
    let out = stdout(&o);
    let err = stderr(&o);
    assert_eq!(line(&out, "exit"), "125", "{out}\n{err}");
    assert!(err.contains("error[ISOLATION_BELOW_MINIMUM]"), "{err}");
    assert!(
        err.contains("gives isolation level no-userns but the policy requires at least full"),
        "{err}"
    );
    assert!(
        err.contains("strict.toml"),
        "names where the minimum comes from: {err}"
    );
    assert!(
        err.contains("user namespaces") && err.contains("seccomp profile"),
        "names the layer and the fix: {err}"
    );
    assert!(!ws.proj.join("ran").exists(), "the command ran");
    // doctor run here (default minimum) is satisfied: exit 0.
    assert_eq!(line(&out, "doctor"), "0", "{out}\n{err}");
}

#[test]
fn without_landlock_the_namespaces_still_block_and_what_needs_landlock_is_refused() {
    let ws = Ws::new();
    std::fs::write(ws.home.join(".secret"), "topsecret").unwrap();
    let probe = probe_bin();
    let run = |extra: &[&str], action: &[&str]| {
        let mut c = ws.paddock();
        c.env("PADDOCK_TEST_NO_LANDLOCK", "1")
            .arg("run")
            .arg("-v")
            .arg("--mount")
            .arg(format!("{}:ro", probe.display()))
            .args(extra)
            .arg("--")
            .arg(&probe)
            .args(action);
        c.output().unwrap()
    };
    let first = run(&[], &["status"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let err = stderr(&first);
    assert!(
        err.contains("enforced (isolation level landlock-unavailable)")
            && err.contains("Landlock ABI 0 (none enforcement)"),
        "{err}"
    );
    assert!(err.contains("warning[ISOLATION_DEGRADED]"), "{err}");

    let secret = ws.home.join(".secret");
    let outside_pid = std::process::id().to_string();
    for (action, want) in [
        (vec!["write", "/usr/bin/paddock-planted"], "err EROFS"),
        (vec!["read", secret.to_str().unwrap()], "err ENOENT"),
        (vec!["connect", "10.0.0.1:80"], "err ENETUNREACH"),
        (vec!["kill", &outside_pid, "0"], "err ESRCH"),
        (vec!["unshare-user"], "err EPERM"),
        (vec!["bpf"], "err EPERM"),
    ] {
        let o = run(&[], &action);
        assert!(
            stdout(&o).starts_with(want),
            "{action:?}: {}\n{}",
            stdout(&o),
            stderr(&o)
        );
    }

    // rw-no-delete is Landlock's: refused, not silently weakened.
    let keep = ws.home.join("keep");
    std::fs::create_dir_all(&keep).unwrap();
    let o = run(
        &["--mount", &format!("{}:rw-no-delete", keep.display())],
        &["status"],
    );
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("error[ISOLATION_LEVEL_LACKS]") && stderr(&o).contains("rw-no-delete"),
        "{}",
        stderr(&o)
    );

    // A policy that requires Landlock's level refuses to start.
    std::fs::write(
        ws.proj.join("strict.toml"),
        "version = 1\n[isolation]\nminimum = \"full\"\n",
    )
    .unwrap();
    let o = run(&["--policy", "strict.toml"], &["status"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("ISOLATION_BELOW_MINIMUM") && stderr(&o).contains("Landlock"),
        "{}",
        stderr(&o)
    );

    // The run's record says which level it ran at, and so do its events.
    let list = ws
        .paddock()
        .env("PADDOCK_TEST_NO_LANDLOCK", "1")
        .args(["session", "list", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let id = v[0]["id"].as_str().unwrap().to_string();
    let dir = ws.home.join(".local/state/paddock/sessions").join(&id);
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["isolation"], "landlock-unavailable", "{meta}");
    let audit = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap();
    assert!(
        audit
            .lines()
            .all(|l| l.contains(r#""isolation":"landlock-unavailable""#)),
        "{audit}"
    );

    // doctor and status show the level and the default minimum.
    let d = ws
        .paddock()
        .env("PADDOCK_TEST_NO_LANDLOCK", "1")
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    let dv: serde_json::Value = serde_json::from_slice(&d.stdout).unwrap();
    assert_eq!(dv["isolation"], "landlock-unavailable", "{dv}");
    assert_eq!(dv["minimum"], "no-userns", "{dv}");
    let s = ws
        .paddock()
        .env("PADDOCK_TEST_NO_LANDLOCK", "1")
        .arg("status")
        .output()
        .unwrap();
    assert!(
        stdout(&s).contains("isolation: landlock-unavailable")
            && stdout(&s).contains("minimum: no-userns (default"),
        "{}",
        stdout(&s)
    );
}

#[test]
fn unsafe_no_sandbox_is_loud_recorded_and_refusable_by_the_administrator() {
    let ws = Ws::new();
    std::fs::write(ws.home.join(".secret"), "topsecret").unwrap();
    let secret = ws.home.join(".secret");
    let o = ws
        .paddock()
        .args(["run", "--unsafe-no-sandbox", "--", "cat"])
        .arg(&secret)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // It really is unsandboxed (the home is the real one), and says so.
    assert_eq!(stdout(&o), "topsecret");
    assert!(
        stderr(&o).contains("WARNING[UNSAFE_NO_SANDBOX]")
            && stderr(&o).contains("WITHOUT ANY SANDBOX"),
        "{}",
        stderr(&o)
    );
    let sessions = ws.home.join(".local/state/paddock/sessions");
    let dir = std::fs::read_dir(&sessions)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let audit = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap();
    assert!(
        audit.contains(r#""isolation":"none""#) && audit.contains(r#""UNSAFE_NO_SANDBOX""#),
        "{audit}"
    );

    // An administrator turns it off (and locks it): refused, nothing runs.
    let admin = ws.root.join("admin");
    std::fs::create_dir_all(&admin).unwrap();
    std::fs::write(
        admin.join("policy.toml"),
        "version = 1\n[isolation]\nallow_unsafe_no_sandbox = false\n[admin]\nlock = [\"isolation\"]\n",
    )
    .unwrap();
    let marker = ws.proj.join("ran");
    let o = ws
        .paddock()
        .env("PADDOCK_TEST_ADMIN_DIR", &admin)
        .args(["run", "--unsafe-no-sandbox", "--", "touch"])
        .arg(&marker)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("error[UNSAFE_NO_SANDBOX_REFUSED]")
            && stderr(&o).contains("policy.toml"),
        "{}",
        stderr(&o)
    );
    assert!(!marker.exists());
    // A project policy cannot lift it again.
    std::fs::create_dir_all(ws.proj.join(".paddock")).unwrap();
    std::fs::write(
        ws.proj.join(".paddock/policy.toml"),
        "version = 1\n[isolation]\nallow_unsafe_no_sandbox = true\n",
    )
    .unwrap();
    let o = ws
        .paddock()
        .env("PADDOCK_TEST_ADMIN_DIR", &admin)
        .args(["run", "--unsafe-no-sandbox", "--", "touch"])
        .arg(&marker)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(!marker.exists());
}

/// Without user namespaces nothing can be mounted over a path, so a
/// `filesystem.deny` that names a system folder itself (or a path inside
/// one) cannot be hidden: the run is refused up front and nothing of it is
/// read.
#[test]
fn without_user_namespaces_a_denied_system_folder_is_refused_up_front() {
    let ws = Ws::new();
    std::fs::write(
        ws.proj.join("inner.toml"),
        "version = 1\n[filesystem]\ndeny = [\"/etc\"]\n",
    )
    .unwrap();
    let o = nested(
        &ws,
        r#"$P run --policy inner.toml -- sh -c 'cat /etc/passwd; echo ran'; echo "inner-exit=$?""#,
    );
    let out = stdout(&o);
    let err = stderr(&o);
    assert_eq!(line(&out, "inner-exit"), "125", "{out}\n{err}");
    assert!(!out.contains("root:") && !out.contains("ran"), "{out}");
    assert!(
        err.contains("ISOLATION_LEVEL_LACKS") && err.contains("filesystem.deny hides /etc"),
        "{err}"
    );
}
