//! Reviewing and applying a `cow` session's changes when the sandbox chose
//! every name, link and file type in its layer, and the host folder below
//! holds links of its own. Ground truth is read on the host: the files
//! outside the workspace, what `apply` left, what `git` says.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::session::S;
use crate::util::*;

/// A cow session over the workspace, `script` run in it, then stopped.
fn cow_session(s: &S, script: &str) -> String {
    let id = s.start(&["--mount", ".:cow"]);
    let o = s.exec(&id, script);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(s.paddock(&["session", "stop", &id]).status.code(), Some(0));
    id
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn no_apply_leftovers(dir: &Path) {
    for e in walk(dir) {
        let n = e.file_name().unwrap().to_string_lossy().to_string();
        assert!(!n.contains("paddock-apply"), "left behind: {}", e.display());
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            out.push(p.clone());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(walk(&p));
            }
        }
    }
    out
}

/// The old apply wrote through `.NAME.paddock-apply`; a session that
/// plants a link under any name beside a file it edits cannot redirect the
/// write: the new content lands in the file itself, the planted link is
/// refused (it points outside), the host file it aimed at is untouched.
#[test]
fn apply_planted_temp_name_symlink_never_redirects_the_write() {
    let s = S::new();
    let p = &s.ws.proj;
    let victim = s.ws.outside.join("bashrc");
    std::fs::write(&victim, "# the user's shell start-up\n").unwrap();
    std::fs::write(p.join("f.txt"), "old\n").unwrap();
    let v = victim.display();
    let id = cow_session(
        &s,
        &format!(
            "echo new > f.txt; ln -s {v} .f.txt.paddock-apply; \
             for i in 0 1 2 3; do ln -s {v} .paddock-apply-$i; done"
        ),
    );
    let o = s.paddock(&["apply", &id]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("APPLY_SYMLINK_ESCAPE"),
        "{}",
        stderr(&o)
    );
    assert_eq!(read(&p.join("f.txt")), "new\n");
    assert!(!std::fs::symlink_metadata(p.join("f.txt"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(read(&victim), "# the user's shell start-up\n");
    assert!(std::fs::symlink_metadata(p.join(".f.txt.paddock-apply")).is_err());
    no_apply_leftovers(p);
}

/// A link in the layer that points outside the workspace is refused; with
/// `--allow-outward-symlinks` it is made as a link, never as a copy of
/// what it points at. A link that stays inside is applied as a link.
#[test]
fn apply_outward_file_symlink_is_refused_unless_asked() {
    let s = S::new();
    let p = &s.ws.proj;
    let secret = s.ws.outside.join("id_ed25519");
    std::fs::write(&secret, "PRIVATE KEY\n").unwrap();
    std::fs::write(p.join("a.txt"), "a\n").unwrap();
    let id = cow_session(
        &s,
        &format!(
            "ln -s {} key; ln -s ../../etc/passwd up; ln -s a.txt inward",
            secret.display()
        ),
    );
    let o = s.paddock(&["apply", &id]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.matches("APPLY_SYMLINK_ESCAPE").count() >= 2, "{err}");
    assert!(std::fs::symlink_metadata(p.join("key")).is_err());
    assert!(std::fs::symlink_metadata(p.join("up")).is_err());
    assert_eq!(
        std::fs::read_link(p.join("inward")).unwrap(),
        Path::new("a.txt")
    );
    let o = s.paddock(&["apply", &id, "--allow-outward-symlinks"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(std::fs::read_link(p.join("key")).unwrap(), secret);
    assert_eq!(read(&secret), "PRIVATE KEY\n");
}

/// A folder the session replaced by a link to somewhere outside: refused;
/// the folder and what is in it stay on the host.
#[test]
fn apply_directory_replaced_by_outward_symlink_is_refused() {
    let s = S::new();
    let p = &s.ws.proj;
    std::fs::create_dir_all(p.join("d")).unwrap();
    std::fs::write(p.join("d/keep.txt"), "keep\n").unwrap();
    let id = cow_session(&s, &format!("rm -rf d; ln -s {} d", s.ws.outside.display()));
    let o = s.paddock(&["apply", &id]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("APPLY_SYMLINK_ESCAPE"),
        "{}",
        stderr(&o)
    );
    assert!(std::fs::symlink_metadata(p.join("d")).unwrap().is_dir());
    assert_eq!(read(&p.join("d/keep.txt")), "keep\n");
}

/// Links on the host side are never walked: a link a build tool made is
/// replaced by the folder the session made (not followed into what it
/// points at), and a folder swapped for a link on the host after the
/// session ran is a conflict, with nothing written through it.
#[test]
fn apply_never_walks_a_host_side_symlink_in_the_lower_tree() {
    let s = S::new();
    let p = &s.ws.proj;
    let out = &s.ws.outside;
    std::os::unix::fs::symlink(out, p.join("build")).unwrap();
    std::fs::create_dir_all(p.join("sub")).unwrap();
    let id = cow_session(
        &s,
        "rm build && mkdir build && echo x > build/out.txt && echo y > sub/new.txt",
    );
    // Meanwhile on the host, `sub` becomes a link to the outside folder.
    std::fs::remove_dir(p.join("sub")).unwrap();
    std::os::unix::fs::symlink(out, p.join("sub")).unwrap();
    let o = s.paddock(&["apply", &id]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("APPLY_CONFLICT"), "{}", stderr(&o));
    assert!(std::fs::symlink_metadata(p.join("build")).unwrap().is_dir());
    assert_eq!(read(&p.join("build/out.txt")), "x\n");
    assert!(!out.join("out.txt").exists() && !out.join("new.txt").exists());
    assert!(std::fs::symlink_metadata(p.join("sub"))
        .unwrap()
        .file_type()
        .is_symlink());
    no_apply_leftovers(p);
}

/// A layer link to a private key: `diff`, `diff --json` and the MCP
/// `workspace_diff` tool show the link, never the key.
#[test]
fn diff_of_layer_symlink_to_secret_never_shows_the_secret() {
    let s = S::new();
    let secret = s.ws.outside.join("id_rsa");
    std::fs::write(&secret, "-----BEGIN PRIVATE KEY----- hunter2\n").unwrap();
    std::fs::write(s.ws.proj.join("notes.txt"), "n\n").unwrap();
    let id = cow_session(&s, &format!("ln -sf {} notes.txt", secret.display()));
    for args in [vec!["diff", &id], vec!["diff", &id, "--json"]] {
        let o = s.paddock(&args);
        assert_eq!(o.status.code(), Some(0));
        let out = stdout(&o);
        assert!(
            out.contains("notes.txt") && out.contains("symlink"),
            "{out}"
        );
        assert!(!out.contains("hunter2"), "{out}");
    }
    // Through MCP, in a cow workspace policy, the same.
    let pol = s.ws.proj.join(".paddock");
    std::fs::create_dir_all(&pol).unwrap();
    std::fs::write(
        pol.join("policy.toml"),
        "version = 1\n[filesystem]\nworkspace = \"cow\"\n",
    )
    .unwrap();
    let seen = mcp_calls(
        &s.ws,
        &s.ws.root.join("state"),
        &[],
        serde_json::json!([
            ["run_command", {"command": format!("ln -s {} leak; mkfifo pipe; echo ok", secret.display())}],
            ["workspace_diff", {}]
        ]),
    );
    let diff = seen[1][1].as_str().unwrap();
    assert!(diff.contains("leak") && diff.contains("symlink"), "{seen}");
    assert!(diff.contains("pipe") && diff.contains("fifo"), "{seen}");
    assert!(!seen.to_string().contains("hunter2"), "{seen}");
}

/// A FIFO in the layer is listed, never opened: diff and apply return at
/// once, apply refuses it.
#[test]
fn fifo_in_the_layer_never_hangs_diff_or_apply() {
    let s = S::new();
    let id = cow_session(&s, "mkfifo pipe; echo done > after.txt");
    let t = Instant::now();
    let o = s.paddock(&["diff", &id]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("fifo pipe"), "{}", stdout(&o));
    let o = s.paddock(&["apply", &id]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("APPLY_SPECIAL_FILE"), "{}", stderr(&o));
    assert!(t.elapsed() < Duration::from_secs(20));
    assert!(std::fs::symlink_metadata(s.ws.proj.join("pipe")).is_err());
    assert_eq!(read(&s.ws.proj.join("after.txt")), "done\n");
}

/// A folder the session deleted whose contents the host edited deep
/// inside afterwards: apply refuses it, naming the edited file, and the
/// edit survives.
#[test]
fn deleted_folder_with_a_host_edit_deep_inside_is_a_conflict() {
    let s = S::new();
    let p = &s.ws.proj;
    std::fs::create_dir_all(p.join("a/b/c")).unwrap();
    std::fs::write(p.join("a/b/c/deep.txt"), "v1\n").unwrap();
    std::fs::write(p.join("a/top.txt"), "t\n").unwrap();
    let id = cow_session(&s, "rm -rf a");
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(p.join("a/b/c/deep.txt"), "host edit\n").unwrap();
    let o = s.paddock(&["apply", &id]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("APPLY_CONFLICT") && err.contains("a/b/c/deep.txt"),
        "{err}"
    );
    assert_eq!(read(&p.join("a/b/c/deep.txt")), "host edit\n");
    assert_eq!(read(&p.join("a/top.txt")), "t\n");
}

/// Mode changes are shown by diff; setuid/setgid are shown and never
/// applied.
#[test]
fn mode_changes_are_shown_and_setuid_never_applied() {
    let s = S::new();
    let p = &s.ws.proj;
    std::fs::write(p.join("run.sh"), "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(p.join("run.sh"), std::fs::Permissions::from_mode(0o644)).unwrap();
    // Inside, seccomp refuses the bit (openat2 could still carry it);
    // a layer that holds one anyway is made here, from the host side.
    let id = cow_session(
        &s,
        "chmod 755 run.sh; cp /bin/true suid; chmod 4755 suid 2>/dev/null && echo SET || echo refused",
    );
    let layers = s.ws.root.join("state/sessions").join(&id).join("cow");
    let layer = std::fs::read_dir(&layers)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let up = layer.join("upper/suid");
    assert_eq!(
        std::fs::metadata(&up).unwrap().permissions().mode() & 0o6000,
        0,
        "refused inside"
    );
    std::fs::set_permissions(&up, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let d = stdout(&s.paddock(&["diff", &id]));
    assert!(d.contains("mode changed run.sh: 644 -> 755"), "{d}");
    assert!(d.contains("setuid"), "{d}");
    let j: serde_json::Value =
        serde_json::from_slice(&s.paddock(&["diff", &id, "--json"]).stdout).unwrap();
    let suid = j
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["rel"] == "suid")
        .unwrap();
    assert_eq!(suid["new"]["mode"], 0o4755);
    let o = s.paddock(&["apply", &id]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mode = |n: &str| std::fs::metadata(p.join(n)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("run.sh"), 0o755);
    assert_eq!(mode("suid"), 0o755);
}

/// kill -9 of `paddock apply` at random points, over and over: every file
/// holds exactly its old or its new content, never a mix; `--resume`
/// finishes (all new) or `--abort` rolls back (all old, changes kept), and
/// no temporary file survives either.
#[test]
fn killed_apply_never_leaves_a_torn_file_and_resume_finishes() {
    const N: usize = 40;
    const SIZE: usize = 256 * 1024;
    let s = S::new();
    let p = &s.ws.proj;
    let old = "o".repeat(SIZE);
    let new = "n".repeat(SIZE);
    for i in 0..N {
        std::fs::write(p.join(format!("f{i}")), &old).unwrap();
    }
    std::fs::create_dir_all(p.join("gone")).unwrap();
    std::fs::write(p.join("gone/x"), "x").unwrap();
    let id = cow_session(
        &s,
        &format!("for i in $(seq 0 {}); do head -c {SIZE} /dev/zero | tr '\\0' n > f$i; done; rm -rf gone; echo a > added", N - 1),
    );
    let mut seed = std::process::id() as u64 ^ 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut interrupted_rounds = 0;
    for round in 0..12 {
        let mut c = s.ws.paddock();
        c.env("PADDOCK_HOME", s.ws.root.join("state"))
            .env("PADDOCK_TEST_APPLY_PAUSE_MS", "2")
            .args(["apply", &id])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = c.spawn().unwrap();
        std::thread::sleep(Duration::from_micros(rnd() % 150_000));
        let _ = child.kill();
        let _ = child.wait();
        // Every file whole.
        for i in 0..N {
            let got = read(&p.join(format!("f{i}")));
            assert!(
                got == old || got == new,
                "round {round}: f{i} is torn ({} bytes)",
                got.len()
            );
        }
        let interrupted =
            s.ws.root
                .join("state")
                .join("sessions")
                .join(&id)
                .join("apply.journal")
                .exists();
        if !interrupted {
            // The kill came before the journal was written, or after the end.
            if stdout(&s.paddock(&["diff", &id, "--stat"])).contains("0 change(s)") {
                break;
            }
            continue;
        }
        interrupted_rounds += 1;
        if interrupted_rounds < 3 {
            let o = s.paddock(&["apply", &id, "--abort"]);
            assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
            for i in 0..N {
                assert_eq!(read(&p.join(format!("f{i}"))), old, "abort restores f{i}");
            }
            assert_eq!(read(&p.join("gone/x")), "x");
            assert!(!p.join("added").exists());
            no_apply_leftovers(p);
            assert!(stdout(&s.paddock(&["diff", &id, "--stat"]))
                .contains(&format!("{} change(s)", N + 2)));
        } else {
            let o = s.paddock(&["apply", &id, "--resume"]);
            assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
            break;
        }
    }
    eprintln!("apply killed inside its journal {interrupted_rounds} time(s)");
    assert!(interrupted_rounds >= 1, "no kill landed inside an apply");
    for i in 0..N {
        assert_eq!(
            read(&p.join(format!("f{i}"))),
            new,
            "f{i} is new after resume"
        );
    }
    assert!(!p.join("gone").exists());
    assert_eq!(read(&p.join("added")), "a\n");
    no_apply_leftovers(p);
}

/// Names and contents with escape sequences never reach the terminal raw
/// (`diff`, `diff --stat`, `apply`, `audit tail`, `status`); `--json`
/// keeps them exact.
#[test]
fn escape_sequences_never_reach_the_terminal() {
    let s = S::new();
    let id = cow_session(
        &s,
        "printf 'x\\033[2K\\033[1A\\n' > \"$(printf 'evil\\033]0;t\\007name')\"; printf 'ok\\n' > plain; echo \"$(printf '\\033[31mred')\"",
    );
    for args in [
        vec!["diff", id.as_str()],
        vec!["diff", &id, "--stat"],
        vec!["audit", "tail", "--session", &id],
        vec!["status"],
        vec!["apply", &id],
    ] {
        let o = s.paddock(&args);
        for (what, bytes) in [("stdout", &o.stdout), ("stderr", &o.stderr)] {
            assert!(
                !bytes.iter().any(|&b| b == 0x1b || b == 0x07 || b == 0x9b),
                "{args:?} {what}: {}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
    let j = stdout(&s.paddock(&["audit", "tail", "--session", &id, "--json"]));
    assert!(j.contains("\\u001b"), "json keeps the exact bytes: {j}");
    assert!(
        s.ws.proj.join("evil\x1b]0;t\x07name").exists(),
        "applied under its exact name"
    );
}

fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "git {args:?}: {}", stderr(&o));
    stdout(&o)
}

/// The ordinary path, end to end: an agent edits a real repository in a
/// cow session; `paddock diff` shows the changes real `git diff` shows
/// once applied; `git status` agrees on every path.
#[test]
fn cow_session_on_a_real_repository_diff_apply_and_git_agree() {
    let s = S::new();
    let p = &s.ws.proj;
    git(p, &["init", "-q"]);
    std::fs::create_dir_all(p.join("src")).unwrap();
    std::fs::write(p.join("src/lib.rs"), "fn a() {}\nfn b() {}\nfn c() {}\n").unwrap();
    std::fs::write(p.join("README"), "hello\n").unwrap();
    std::fs::write(p.join("old.txt"), "bye\n").unwrap();
    git(p, &["add", "-A"]);
    git(p, &["commit", "-qm", "init"]);
    let id = cow_session(
        &s,
        "sed -i 's/fn b() {}/fn b() { todo!() }/' src/lib.rs && rm old.txt && \
         mkdir -p src/new && printf 'pub mod x;\\n' > src/new/mod.rs && echo more >> README",
    );
    let d = stdout(&s.paddock(&["diff", &id]));
    assert!(
        d.contains("-fn b() {}") && d.contains("+fn b() { todo!() }"),
        "{d}"
    );
    assert!(
        d.contains("+more") && d.contains("+pub mod x;") && d.contains("-bye"),
        "{d}"
    );
    let o = s.paddock(&["apply", &id]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let gd = git(p, &["diff"]);
    for line in ["-fn b() {}", "+fn b() { todo!() }", "+more", "-bye"] {
        assert!(gd.contains(line), "git diff lacks {line}: {gd}");
        assert!(d.contains(line));
    }
    let st = git(p, &["status", "--porcelain"]);
    let mut got: Vec<&str> = st.lines().collect();
    got.sort();
    assert_eq!(
        got,
        [" D old.txt", " M README", " M src/lib.rs", "?? src/new/"],
        "{st}"
    );
    no_apply_leftovers(p);
}

/// `paddock export` of a tree the sandbox built with links out of it, a
/// FIFO and a setuid binary: the outward links and the FIFO are dropped
/// (and named), the inward link kept, the setuid bit cleared.
#[test]
fn export_of_outward_symlinks_drops_them() {
    let s = S::new();
    let id = s.start(&[]);
    let o = s.exec(
        &id,
        "mkdir -p /tmp/out/sub && echo hi > /tmp/out/inner.txt && ln -s /etc/passwd /tmp/out/p && \
         ln -s ../../x /tmp/out/sub/up && ln -s ../inner.txt /tmp/out/sub/ok && mkfifo /tmp/out/fifo && \
         cp /bin/true /tmp/out/suid && (chmod 4755 /tmp/out/suid 2>/dev/null; true)",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let dest = s.ws.root.join("dest");
    std::fs::create_dir_all(&dest).unwrap();
    // A link as the exported thing itself points at what was not exported.
    let o = s.exec(&id, "ln -s .bashrc /tmp/report.txt");
    assert_eq!(o.status.code(), Some(0));
    let o = s.paddock(&[
        "export",
        &id,
        "/tmp/report.txt",
        dest.join("report.txt").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("EXPORT_SYMLINK_ESCAPE"),
        "{}",
        stderr(&o)
    );
    assert!(std::fs::symlink_metadata(dest.join("report.txt")).is_err());
    let o = s.paddock(&["export", &id, "/tmp/out", dest.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.matches("EXPORT_SYMLINK_ESCAPE").count() == 2, "{err}");
    assert!(err.contains("EXPORT_SPECIAL_FILE"), "{err}");
    let out = dest.join("out");
    assert_eq!(read(&out.join("inner.txt")), "hi\n");
    assert_eq!(
        std::fs::read_link(out.join("sub/ok")).unwrap(),
        Path::new("../inner.txt")
    );
    for gone in ["p", "sub/up", "fifo"] {
        assert!(std::fs::symlink_metadata(out.join(gone)).is_err(), "{gone}");
    }
    let mode = std::fs::metadata(out.join("suid"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o6000, 0, "{mode:o}");
    assert_eq!(s.paddock(&["session", "stop", &id]).status.code(), Some(0));
}

/// A session's cow layers are capped (process.limits.cow_mib): past the
/// cap the session stops, a new exec is refused with COW_LAYER_FULL and
/// the fix, the changes stay reviewable, and discarding them frees it.
#[test]
fn cow_layer_over_its_cap_stops_the_session_and_keeps_the_changes() {
    let s = S::new();
    let pol = s.policy("version = 1\n[process.limits]\ncow_mib = 2\n");
    let id = s.start(&["--mount", ".:cow", "--policy", &pol]);
    let o = s.exec(&id, "head -c 3000000 /dev/zero > big; echo written");
    assert!(stdout(&o).contains("written"), "{}", stderr(&o));
    assert!(
        wait_until(Duration::from_secs(10), || s.state(&id) == "stopped"),
        "the session stopped"
    );
    let o = s.paddock(&["exec", &id, "--", "true"]);
    assert!(
        stderr(&o).contains("COW_LAYER_FULL") && stderr(&o).contains("paddock discard"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&s.paddock(&["diff", &id, "--stat"])).contains("big"));
    assert!(!s.ws.proj.join("big").exists());
    assert_eq!(s.paddock(&["discard", &id]).status.code(), Some(0));
    let o = s.paddock(&["exec", &id, "--", "true"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(s.paddock(&["session", "stop", &id]).status.code(), Some(0));
}

/// A link whose text stays inside but passes through a link on the host
/// (`hl -> /elsewhere`, then `L -> hl/secret`) points outside: refused like
/// any outward link, also when the sandbox hides the host link behind a
/// layer entry apply refuses (a FIFO in its place).
#[test]
fn link_through_a_host_link_is_an_outward_link() {
    for script in ["ln -s hl/secret L", "rm hl; mkfifo hl; ln -s hl/secret L"] {
        let s = S::new();
        let p = &s.ws.proj;
        std::fs::write(s.ws.outside.join("secret"), "SECRET\n").unwrap();
        std::os::unix::fs::symlink(&s.ws.outside, p.join("hl")).unwrap();
        let id = cow_session(&s, script);
        let o = s.paddock(&["apply", &id]);
        assert_eq!(o.status.code(), Some(1), "{script}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("APPLY_SYMLINK_ESCAPE"),
            "{script}: {}",
            stderr(&o)
        );
        assert!(
            std::fs::symlink_metadata(p.join("L")).is_err(),
            "{script}: L was applied"
        );
    }
}

/// A file the session changed and the host deleted afterwards is a
/// conflict: apply does not bring it back.
#[test]
fn host_deletion_after_the_session_started_is_a_conflict() {
    let s = S::new();
    let p = &s.ws.proj;
    std::fs::write(p.join("doomed.txt"), "v1\n").unwrap();
    std::fs::create_dir_all(p.join("dir")).unwrap();
    std::fs::write(p.join("dir/inner.txt"), "v1\n").unwrap();
    let id = cow_session(
        &s,
        "echo sandbox >> doomed.txt; echo sandbox >> dir/inner.txt",
    );
    std::fs::remove_file(p.join("doomed.txt")).unwrap();
    std::fs::remove_dir_all(p.join("dir")).unwrap();
    let o = s.paddock(&["apply", &id]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("APPLY_CONFLICT") && stderr(&o).contains("removed"),
        "{}",
        stderr(&o)
    );
    assert!(!p.join("doomed.txt").exists() && !p.join("dir").exists());
}

/// The host edits files while apply runs: every host edit survives, in
/// the file itself (left as the host has it) or kept beside it; nothing
/// is silently overwritten.
#[test]
fn host_edit_during_apply_is_never_lost() {
    const N: usize = 60;
    let s = S::new();
    let p = &s.ws.proj;
    for i in 0..N {
        std::fs::write(p.join(format!("m{i}")), "orig\n").unwrap();
    }
    let id = cow_session(
        &s,
        &format!("for i in $(seq 0 {}); do echo sandbox > m$i; done", N - 1),
    );
    let mut c = s.ws.paddock();
    let child = c
        .env("PADDOCK_HOME", s.ws.root.join("state"))
        .env("PADDOCK_TEST_APPLY_PAUSE_MS", "3")
        .args(["apply", &id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(150));
    for i in (0..N).step_by(3) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(p.join(format!("m{i}")))
            .unwrap();
        writeln!(f, "HOST-EDIT-{i}").unwrap();
    }
    let o = child.wait_with_output().unwrap();
    let mut everything = String::new();
    for e in std::fs::read_dir(p).unwrap().flatten() {
        everything.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
    }
    for i in (0..N).step_by(3) {
        assert!(
            everything.contains(&format!("HOST-EDIT-{i}\n")),
            "the host's edit of m{i} was lost: {}",
            stderr(&o)
        );
    }
    no_apply_leftovers(p);
}

/// A journal cut before its plan (an empty file) is a journal of nothing:
/// `--resume` clears it and apply works again.
#[test]
fn empty_journal_is_recoverable() {
    let s = S::new();
    std::fs::write(s.ws.proj.join("a.txt"), "a\n").unwrap();
    let id = cow_session(&s, "echo b > a.txt");
    let j =
        s.ws.root
            .join("state/sessions")
            .join(&id)
            .join("apply.journal");
    std::fs::write(&j, "").unwrap();
    let o = s.paddock(&["apply", &id]);
    assert!(stderr(&o).contains("APPLY_INTERRUPTED"), "{}", stderr(&o));
    let o = s.paddock(&["apply", &id, "--abort"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!j.exists());
    let o = s.paddock(&["apply", &id]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(read(&s.ws.proj.join("a.txt")), "b\n");
}

/// A session whose workspace lies inside a protected name (a project's
/// `.config/mise`): apply writes none of it.
#[test]
fn cow_mount_inside_a_protected_folder_is_never_applied() {
    let s = S::new();
    let inner = s.ws.proj.join(".config/mise");
    std::fs::create_dir_all(&inner).unwrap();
    let mut c = s.ws.paddock();
    let o = c
        .current_dir(&inner)
        .env("PADDOCK_HOME", s.ws.root.join("state"))
        .args(["session", "start", "--mount", ".:cow"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let id = stdout(&o).trim().to_string();
    let o = s.paddock(&[
        "exec",
        &id,
        "--",
        "sh",
        "-c",
        &format!("cd {} && echo '[tasks]' > config.toml", inner.display()),
    ]);
    // The whole mount is kept read-only inside, cow or not.
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("Read-only"), "{}", stderr(&o));
    assert_eq!(s.paddock(&["session", "stop", &id]).status.code(), Some(0));
    let o = s.paddock(&["apply", &id]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!inner.join("config.toml").exists());
}
