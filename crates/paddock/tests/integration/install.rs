//! install.sh into a temporary prefix, the installed binary at work,
//! `paddock info`, `reset` and `uninstall`, and nothing left afterwards.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::util::{paddock_bin, stderr, stdout, wait_until, Ws};

fn install_sh() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../install.sh")
}

/// Every file (not folder) under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Every path under `dir` whose name mentions paddock.
fn paddock_paths(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if e.file_name().to_string_lossy().contains("paddock") {
                out.push(p.clone());
            }
            if p.is_dir() && !p.is_symlink() {
                out.extend(paddock_paths(&p));
            }
        }
    }
    out
}

fn ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what} failed: {:?}\nstdout: {}\nstderr: {}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

#[test]
fn install_sh_into_a_prefix_then_run_reset_and_uninstall_leave_nothing() {
    let ws = Ws::new();
    // A prefix with a space: quoting in the script and in the AppArmor
    // profile is part of what is tested.
    let prefix = ws.root.join("my prefix");
    let env_clean = |c: &mut Command| {
        c.env("HOME", &ws.home)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_STATE_HOME")
            .env_remove("XDG_CACHE_HOME")
            .env_remove("PADDOCK_HOME")
            .current_dir(&ws.proj)
            .stdin(Stdio::null());
    };
    let script = |args: &[&str]| {
        let mut c = Command::new("bash");
        c.arg(install_sh())
            .arg("--prefix")
            .arg(&prefix)
            .arg("--binary")
            .arg(paddock_bin())
            .arg("--apparmor")
            .arg("no")
            .args(args);
        env_clean(&mut c);
        c.output().unwrap()
    };

    // A dry run says what goes where and how many bytes, and writes nothing.
    let dry = script(&["--dry-run"]);
    ok(&dry, "install.sh --dry-run");
    let plan = stdout(&dry);
    let bin_size = std::fs::metadata(paddock_bin()).unwrap().len();
    assert!(
        plan.contains(&format!(
            "{bin_size} bytes  {}/bin/paddock",
            prefix.display()
        )),
        "{plan}"
    );
    for p in [
        "share/bash-completion/completions/paddock",
        "share/zsh/site-functions/_paddock",
        "share/fish/vendor_completions.d/paddock.fish",
        "share/man/man1/",
        "share/paddock/apparmor/paddock",
    ] {
        assert!(
            plan.contains(&format!("{}/{p}", prefix.display())),
            "{p}: {plan}"
        );
    }
    assert!(plan.contains("dry run: nothing written"), "{plan}");
    assert!(!prefix.exists(), "a dry run wrote {}", prefix.display());

    // Not on a terminal and no --yes: refused, nothing written.
    let refused = script(&[]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("pass --yes"),
        "{}",
        stderr(&refused)
    );
    assert!(!prefix.exists());

    let inst = script(&["--yes"]);
    ok(&inst, "install.sh --yes");
    let bin = prefix.join("bin/paddock");
    assert_eq!(std::fs::metadata(&bin).unwrap().len(), bin_size);
    let bash =
        std::fs::read_to_string(prefix.join("share/bash-completion/completions/paddock")).unwrap();
    assert!(
        bash.contains("_paddock()") && bash.contains("uninstall"),
        "bash completion"
    );
    let zsh = std::fs::read_to_string(prefix.join("share/zsh/site-functions/_paddock")).unwrap();
    assert!(zsh.starts_with("#compdef paddock"), "zsh completion");
    let fish = std::fs::read_to_string(prefix.join("share/fish/vendor_completions.d/paddock.fish"))
        .unwrap();
    assert!(fish.contains("complete -c paddock"), "fish completion");
    let man = std::fs::read_to_string(prefix.join("share/man/man1/paddock-run.1")).unwrap();
    assert!(man.contains(".TH paddock-run 1"), "man page: {man}");
    let profile = prefix.join("share/paddock/apparmor/paddock");
    let aa = std::fs::read_to_string(&profile).unwrap();
    assert!(
        aa.contains(&format!(
            "profile paddock \"{}\" flags=(unconfined) {{",
            bin.display()
        )),
        "{aa}"
    );
    validate_apparmor(&profile);

    let paddock = |args: &[&str]| {
        let mut c = Command::new(&bin);
        c.args(args);
        env_clean(&mut c);
        c.output().unwrap()
    };
    // The installed binary does its job.
    let run = paddock(&[
        "run",
        "--",
        "sh",
        "-c",
        "echo made > out.txt; cat out.txt; hostname",
    ]);
    ok(&run, "installed paddock run");
    assert_eq!(stdout(&run), "made\npaddock\n");
    assert_eq!(
        std::fs::read_to_string(ws.proj.join("out.txt")).unwrap(),
        "made\n"
    );

    // info sees the install and every place, with sizes.
    let info = paddock(&["info", "--json"]);
    ok(&info, "paddock info");
    let v: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(v["installed"]["by"], "install_sh", "{v}");
    let place = |what: &str| {
        v["places"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["what"] == what)
            .unwrap_or_else(|| panic!("no {what} in {v}"))
            .clone()
    };
    assert_eq!(place("binary")["bytes"], bin_size);
    let state = place("state (sessions, runs)");
    assert_eq!(
        state["path"],
        ws.home.join(".local/state/paddock").to_str().unwrap()
    );
    assert!(state["bytes"].as_u64().unwrap() > 0, "{state}");
    let config_dir = ws.home.join(".config/paddock");
    assert_eq!(place("user config")["path"], config_dir.to_str().unwrap());

    // A user policy, a live session, and one with unapplied cow changes.
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::write(config_dir.join("policy.toml"), "version = 1\n").unwrap();
    let live = paddock(&["session", "start", "--name", "live"]);
    ok(&live, "session start");
    ok(&paddock(&["exec", "live", "--", "true"]), "exec live");
    let meta: serde_json::Value =
        serde_json::from_slice(&paddock(&["session", "list", "--json"]).stdout).unwrap();
    let sup = meta
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "live")
        .and_then(|m| m["supervisor_pid"].as_i64())
        .and_then(|p| i32::try_from(p).ok())
        .expect("live supervisor");
    let cow_src = ws.home.join("data");
    std::fs::create_dir_all(&cow_src).unwrap();
    let cow = paddock(&[
        "session",
        "start",
        "--name",
        "cow",
        "--mount",
        &format!("{}:cow", cow_src.display()),
    ]);
    ok(&cow, "session start cow");
    ok(
        &paddock(&[
            "exec",
            "cow",
            "--",
            "sh",
            "-c",
            &format!("echo x > {}/new", cow_src.display()),
        ]),
        "exec cow",
    );
    ok(&paddock(&["session", "stop", "cow"]), "stop cow");

    // reset refuses while changes are unapplied, and removes nothing.
    let r = paddock(&["reset", "--yes"]);
    assert_eq!(r.status.code(), Some(125), "{}", stdout(&r));
    assert!(
        stderr(&r).contains("UNAPPLIED_CHANGES") && stderr(&r).contains("cow"),
        "{}",
        stderr(&r)
    );
    assert!(ws.home.join(".local/state/paddock/sessions").exists());

    // reset --discard-changes: stops the live session, removes state and
    // cache, keeps the binary and the config.
    let r = paddock(&["reset", "--yes", "--discard-changes", "--json"]);
    ok(&r, "reset");
    let rv: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(rv["stopped"], serde_json::json!(["live"]), "{rv}");
    assert!(rv["bytes"].as_u64().unwrap() > 0, "{rv}");
    assert!(
        wait_until(std::time::Duration::from_secs(5), || !alive(sup)),
        "the live session's supervisor {sup} still runs after reset"
    );
    assert!(!ws.home.join(".local/state/paddock").exists());
    assert!(bin.exists() && config_dir.join("policy.toml").exists());
    assert_eq!(std::fs::read_to_string(cow_src.join("new")).ok(), None);

    // Use it again, then uninstall: nothing of paddock is left.
    ok(&paddock(&["run", "--", "true"]), "run after reset");
    let dry = paddock(&["uninstall", "--dry-run"]);
    ok(&dry, "uninstall --dry-run");
    assert!(
        stdout(&dry).contains(&bin.display().to_string()),
        "{}",
        stdout(&dry)
    );
    assert!(bin.exists());
    let u = paddock(&["uninstall", "--yes"]);
    ok(&u, "uninstall");
    assert!(stdout(&u).contains("removed"), "{}", stdout(&u));
    assert!(
        !prefix.exists(),
        "left in the prefix: {:?}",
        files_under(&prefix)
    );
    let left: Vec<PathBuf> = paddock_paths(&ws.home);
    assert!(left.is_empty(), "left in home: {left:?}");
    // What remains in home is the user's own: the workspace, the cow
    // source, and the empty XDG base folders shared by every program.
    let files: Vec<PathBuf> = files_under(&ws.home)
        .into_iter()
        .filter(|f| !f.starts_with(&ws.proj) && !f.starts_with(&cow_src))
        .collect();
    assert!(files.is_empty(), "files left in home: {files:?}");
}

fn alive(pid: i32) -> bool {
    // A zombie (the host's init here reaps slowly) counts as ended.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

/// Check the profile with apparmor_parser (without loading it). AppArmor
/// 4 parsers read it as shipped; older ones (Debian 12 has 3.0) know
/// neither `abi <abi/4.0>` nor the `userns` rule, so they check a copy with
/// exactly those two lines adapted, and everything else as written.
fn validate_apparmor(profile: &Path) {
    let Ok(v) = Command::new("apparmor_parser").arg("--version").output() else {
        eprintln!("note: apparmor_parser is not installed; the profile was not parsed");
        return;
    };
    let version = stdout(&v);
    let major: u32 = version
        .split_whitespace()
        .find_map(|w| w.split('.').next()?.parse().ok())
        .unwrap_or(0);
    let parse = |p: &Path| {
        Command::new("apparmor_parser")
            .args(["-Q", "-K"])
            .arg(p)
            .output()
            .unwrap()
    };
    let text = std::fs::read_to_string(profile).unwrap();
    let checked = if major >= 4 {
        profile.to_path_buf()
    } else {
        let adapted: Vec<&str> = text
            .lines()
            .filter(|l| l.trim() != "userns,")
            .map(|l| {
                if l == "abi <abi/4.0>," {
                    "abi <abi/3.0>,"
                } else {
                    l
                }
            })
            .collect();
        assert_eq!(adapted.len() + 1, text.lines().count(), "one userns rule");
        assert!(text.lines().any(|l| l == "abi <abi/4.0>,"));
        let p = profile.with_file_name("paddock.abi3");
        std::fs::write(&p, adapted.join("\n") + "\n").unwrap();
        p
    };
    let o = parse(&checked);
    assert!(
        o.status.success(),
        "apparmor_parser {version} rejects the profile: {}",
        stderr(&o)
    );
    // The check itself catches a broken profile.
    let broken = profile.with_file_name("paddock.broken");
    std::fs::write(
        &broken,
        std::fs::read_to_string(&checked)
            .unwrap()
            .replace("flags=(unconfined)", "flags=(nonsense)"),
    )
    .unwrap();
    assert!(
        !parse(&broken).status.success(),
        "apparmor_parser accepted a broken profile"
    );
    std::fs::remove_file(&broken).unwrap();
    if checked != profile {
        std::fs::remove_file(&checked).unwrap();
    }
}
