//! Planting code that the host runs by itself.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use paddock_sandbox::DEFAULT_PROTECTED;

use crate::util::*;

fn git_repo(ws: &Ws) {
    let st = Command::new("git")
        .args(["init", "-q"])
        .current_dir(&ws.proj)
        .status();
    if !st.map(|s| s.success()).unwrap_or(false) {
        // No git on this machine: the layout is what matters.
        std::fs::create_dir_all(ws.proj.join(".git/hooks")).unwrap();
        std::fs::write(ws.proj.join(".git/config"), "[core]\n").unwrap();
        std::fs::write(ws.proj.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
    }
}

/// Git hook / core.fsmonitor planting: code written into .git/hooks or
/// .git/config runs on the host at the user's next `git status`
/// (CVE-2022-24765 and CVE-2024-32002 show how readily git runs what a
/// repository carries). .git and .paddock stay read-only inside a rw
/// workspace; other files there remain writable.
#[test]
fn git_hooks_git_config_and_paddock_policy_are_read_only_in_rw_workspace() {
    let ws = Ws::new();
    git_repo(&ws);
    std::fs::create_dir_all(ws.proj.join(".paddock")).unwrap();
    std::fs::write(ws.proj.join(".paddock/policy.toml"), "version = 1\n").unwrap();
    let before = std::fs::read_to_string(ws.proj.join(".git/config")).unwrap();
    assert_refused(
        &ws.probe(&[], &["create", ".git/hooks/pre-commit"]),
        "EROFS",
    );
    assert_refused(
        &ws.probe(
            &[],
            &["write", ".git/config", "[core]\n\tfsmonitor = /tmp/evil\n"],
        ),
        "EROFS",
    );
    assert_refused(
        &ws.probe(&[], &["write", ".paddock/policy.toml", "[network]\n"]),
        "EROFS",
    );
    // Nor can the protected folder be moved out of the way.
    assert_refused(&ws.probe(&[], &["rename", ".git", "old-git"]), "EBUSY");
    assert_ok(&ws.probe(&[], &["write", "src.txt", "fine"]));
    assert_eq!(
        std::fs::read_to_string(ws.proj.join(".git/config")).unwrap(),
        before
    );
    assert!(!ws.proj.join(".git/hooks/pre-commit").exists());
    assert_eq!(
        std::fs::read_to_string(ws.proj.join("src.txt")).unwrap(),
        "fine"
    );
    // Reading the repository still works.
    assert_ok(&ws.probe(&[], &["read", ".git/HEAD"]));
}

/// The same planting through a linked worktree: the workspace's `.git` is
/// a file pointing into the main repository's git directory, which holds
/// the shared hooks and config. When that repository is mounted writable
/// too, its git directory is protected as well.
#[test]
fn gitdir_pointed_to_by_git_file_is_read_only() {
    let ws = Ws::new();
    let main = ws.home.join("main");
    let gitdir = main.join(".git/worktrees/proj");
    std::fs::create_dir_all(main.join(".git/hooks")).unwrap();
    std::fs::create_dir_all(&gitdir).unwrap();
    std::fs::write(main.join(".git/config"), "[core]\n").unwrap();
    std::fs::write(gitdir.join("commondir"), "../..\n").unwrap();
    std::fs::write(
        ws.proj.join(".git"),
        format!("gitdir: {}\n", gitdir.display()),
    )
    .unwrap();
    let m = format!("{}:rw", main.display());
    let hook = main.join(".git/hooks/post-checkout");
    assert_refused(
        &ws.probe(&["--mount", &m], &["create", hook.to_str().unwrap()]),
        "EROFS",
    );
    let cfg = main.join(".git/config");
    assert_refused(
        &ws.probe(
            &["--mount", &m],
            &["write", cfg.to_str().unwrap(), "[core]\nhooksPath=/tmp\n"],
        ),
        "EROFS",
    );
    assert_refused(
        &ws.probe(&["--mount", &m], &["write", ".git", "gitdir: /elsewhere\n"]),
        "EROFS",
    );
    // The rest of the main repository stays writable.
    let other = main.join("README");
    assert_ok(&ws.probe(&["--mount", &m], &["create", other.to_str().unwrap()]));
}

/// The protection can be lifted explicitly, name by name.
#[test]
fn unprotect_lifts_protection_explicitly() {
    let ws = Ws::new();
    git_repo(&ws);
    assert_ok(&ws.probe(
        &["--unprotect", ".git"],
        &["create", ".git/hooks/pre-commit"],
    ));
    assert!(ws.proj.join(".git/hooks/pre-commit").exists());
}

const MODES: [&str; 3] = ["rw", "rw-no-delete", "cow"];

/// A one-shot run whose workspace folders are older than its start's
/// margin: the last sweep reads only the folders that changed (the start
/// kept a snapshot of them) and still finds every protected name made,
/// in old folders, in new ones, and in old folders moved elsewhere.
#[test]
fn a_run_in_a_workspace_that_was_quiet_sweeps_every_new_name() {
    for mode in ["rw", "rw-no-delete"] {
        let ws = Ws::new();
        for d in ["deep/er", "old/a/b/c", "old/x/y/z", "still/s1/s2"] {
            std::fs::create_dir_all(ws.proj.join(d)).unwrap();
        }
        // Older than the snapshot's one-second margin. The names are made
        // through links with innocent names (the observer refuses a
        // protected name at once; only the sweep catches these).
        std::thread::sleep(std::time::Duration::from_millis(1300));
        let pol = policy_for(&ws, mode);
        let script = format!(
            "{} && ln -s .envrc old/a/b/c/l && echo x > old/a/b/c/l && ln -s .envrc old/x/y/z/l && echo x > old/x/y/z/l && mkdir old/moved && (mv old/x/y old/moved/y 2>/dev/null || [ {mode} = rw-no-delete ])",
            plant_script()
        );
        let o = ws.sh(&["--policy", pol.to_str().unwrap()], &script);
        assert_eq!(o.status.code(), Some(0), "{mode}: {}", stderr(&o));
        assert_eq!(planted_on_host(&ws.proj), Vec::<String>::new(), "{mode}");
        assert!(!ws.proj.join("old/a/b/c/.envrc").exists(), "{mode}");
        assert!(!ws.proj.join("old/moved/y/z/.envrc").exists(), "{mode}");
        assert!(!ws.proj.join("old/x/y/z/.envrc").exists(), "{mode}");
        assert!(quarantined(&ws.proj.join("old")) == 2, "{mode}");
        assert!(ws.proj.join("still/s1/s2").is_dir());
    }
}

/// Every place a protected name is planted: each default name at the top
/// of the workspace and two folders down.
fn targets() -> Vec<String> {
    DEFAULT_PROTECTED
        .iter()
        .flat_map(|n| [n.to_string(), format!("deep/er/{n}")])
        .collect()
}

/// A script that tries to create every target three ways: by name (a
/// file, else a folder), by renaming a fresh folder onto the name, and
/// through a dangling link whose name is innocent (the kernel follows it
/// and creates the protected name: only the sweep can catch that one).
fn plant_script() -> String {
    let mut s = String::from("mkdir -p deep/er; i=0; ");
    for t in targets() {
        s.push_str(&format!(
            "d=$(dirname '{t}'); mkdir -p \"$d\" 2>/dev/null; \
             (echo planted > '{t}') 2>/dev/null || mkdir '{t}' 2>/dev/null; \
             mkdir -p tmp$i && mv tmp$i '{t}' 2>/dev/null; rmdir tmp$i 2>/dev/null; \
             ln -s \"$(basename '{t}')\" \"$d/innocent$i\" 2>/dev/null && (echo planted > \"$d/innocent$i\") 2>/dev/null; \
             i=$((i+1)); "
        ));
    }
    s.push_str("true");
    s
}

/// Protected names present on the host as planted (not moved aside).
fn planted_on_host(proj: &Path) -> Vec<String> {
    targets()
        .into_iter()
        .filter(|t| std::fs::symlink_metadata(proj.join(t)).is_ok())
        .collect()
}

fn quarantined(proj: &Path) -> usize {
    fn walk(d: &Path, n: &mut usize) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            if e.file_name()
                .to_string_lossy()
                .contains(".paddock-quarantine-")
            {
                *n += 1;
            } else if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&e.path(), n);
            }
        }
    }
    let mut n = 0;
    walk(proj, &mut n);
    n
}

fn policy_for(ws: &Ws, mode: &str) -> PathBuf {
    let p = ws.root.join(format!("policy-{mode}.toml"));
    std::fs::write(
        &p,
        format!("version = 1\n[filesystem]\nworkspace = \"{mode}\"\n"),
    )
    .unwrap();
    p
}

/// `paddock policy explain --json --policy POL write PATH`: its reason code.
fn explain_write(ws: &Ws, pol: &Path, path: &Path) -> serde_json::Value {
    let o = ws
        .paddock()
        .args(["policy", "explain", "--json", "--policy"])
        .arg(pol)
        .arg("write")
        .arg(path)
        .output()
        .unwrap();
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("{}: {}{}", path.display(), stdout(&o), stderr(&o)))
}

fn run_in(ws: &Ws, state: &Path, args: &[&str]) -> Output {
    ws.paddock()
        .env("PADDOCK_HOME", state)
        .args(args)
        .output()
        .unwrap()
}

/// After a cow session: nothing on the host, and apply refuses every
/// planted name (APPLY_PROTECTED) and writes none.
fn cow_apply_refuses_all(ws: &Ws, state: &Path, id: &str) {
    let o = run_in(ws, state, &["apply", id]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("APPLY_PROTECTED"), "{}", stderr(&o));
    assert_eq!(
        planted_on_host(&ws.proj),
        Vec::<String>::new(),
        "apply wrote protected names"
    );
}

/// Every protected name, created in every mode through `run`, `exec` and
/// MCP (the control socket carries both of the latter): none is ever on
/// the host as planted. In rw modes each is refused at creation or moved
/// aside before the command's client hears that it ended; in cow it stays
/// in the layer and apply refuses it. `policy explain` says the same.
#[test]
fn every_protected_name_created_in_every_mode_never_reaches_the_host() {
    let script = plant_script();
    for mode in MODES {
        // run
        let ws = Ws::new();
        let pol = policy_for(&ws, mode);
        let o = ws.sh(&["--policy", pol.to_str().unwrap()], &script);
        assert_eq!(o.status.code(), Some(0), "{mode} run: {}", stderr(&o));
        assert_eq!(
            planted_on_host(&ws.proj),
            Vec::<String>::new(),
            "{mode} run"
        );
        if mode != "cow" {
            assert!(quarantined(&ws.proj) > 0, "{mode}: the link trick is swept");
            assert!(
                stderr(&o).contains("PROTECTED_PATH_CREATED"),
                "{}",
                stderr(&o)
            );
        }
        // explain agrees, name by name.
        for t in targets() {
            let v = explain_write(&ws, &pol, &ws.proj.join(&t));
            let want = if mode == "cow" {
                "FS_PROTECTED_COW"
            } else {
                "FS_PROTECTED_QUARANTINED"
            };
            assert_eq!(v["reason_code"], want, "{mode} {t}: {v}");
        }

        // exec: checked the moment the exec returns, before any stop.
        let ws = Ws::new();
        let state = ws.root.join("state");
        let pol = policy_for(&ws, mode);
        let o = run_in(
            &ws,
            &state,
            &["session", "start", "--policy", pol.to_str().unwrap()],
        );
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let id = stdout(&o).trim().to_string();
        let o = run_in(&ws, &state, &["exec", &id, "--", "sh", "-c", &script]);
        assert_eq!(o.status.code(), Some(0), "{mode} exec: {}", stderr(&o));
        assert_eq!(
            planted_on_host(&ws.proj),
            Vec::<String>::new(),
            "{mode} exec, right after"
        );
        assert_eq!(
            run_in(&ws, &state, &["session", "stop", &id]).status.code(),
            Some(0)
        );
        assert_eq!(
            planted_on_host(&ws.proj),
            Vec::<String>::new(),
            "{mode} exec, after stop"
        );
        let trail =
            std::fs::read_to_string(state.join("sessions").join(&id).join("audit.jsonl")).unwrap();
        if mode == "cow" {
            cow_apply_refuses_all(&ws, &state, &id);
        } else {
            assert!(
                trail.contains("PROTECTED_PATH_CREATED"),
                "swept and recorded"
            );
            assert!(
                trail.contains("FS_PROTECTED_CREATE"),
                "refused at creation and recorded"
            );
        }

        // MCP: the second call sees that the first one's plants are gone.
        let ws = Ws::new();
        let state = ws.root.join("state");
        let pol = policy_for(&ws, mode);
        let check: String = targets()
            .iter()
            .map(|t| format!("test -e '{t}' && echo 'PRESENT {t}'; "))
            .collect();
        let seen = mcp_calls(
            &ws,
            &state,
            &["--policy", pol.to_str().unwrap()],
            serde_json::json!([
                ["run_command", {"command": script}],
                ["run_command", {"command": format!("{check} echo checked")}]
            ]),
        );
        assert_eq!(seen[0][0], false, "{seen}");
        let inside = seen[1][1].as_str().unwrap();
        assert!(inside.contains("checked"), "{seen}");
        if mode != "cow" {
            assert!(
                !inside.contains("PRESENT"),
                "{mode} mcp: swept before the call returned: {inside}"
            );
        }
        assert_eq!(
            planted_on_host(&ws.proj),
            Vec::<String>::new(),
            "{mode} mcp"
        );
        if mode == "cow" {
            let list: serde_json::Value =
                serde_json::from_slice(&run_in(&ws, &state, &["session", "list", "--json"]).stdout)
                    .unwrap();
            let id = list[0]["id"].as_str().unwrap().to_string();
            cow_apply_refuses_all(&ws, &state, &id);
        }
    }
}

/// Protected names that exist on the host, at the top and two folders
/// down, as files and as folders: no mode lets the sandbox write, remove
/// or rename them, and explain says FS_WRITE_PROTECTED for each.
#[test]
fn every_existing_protected_name_is_read_only_in_every_mode() {
    for mode in MODES {
        let ws = Ws::new();
        let mut script = String::new();
        // The project policy folder must stay a valid policy folder.
        let names: Vec<&str> = DEFAULT_PROTECTED
            .iter()
            .copied()
            .filter(|n| *n != ".paddock")
            .collect();
        std::fs::create_dir_all(ws.proj.join(".paddock")).unwrap();
        std::fs::write(ws.proj.join(".paddock/policy.toml"), "version = 1\n").unwrap();
        script.push_str(
            "echo evil >> .paddock/policy.toml; rm -rf .paddock; mv .paddock moved-away; ",
        );
        for n in &names {
            let top = ws.proj.join(n);
            std::fs::create_dir_all(top.parent().unwrap()).unwrap();
            std::fs::write(&top, "host\n").unwrap();
            let deep = ws.proj.join("deep/er").join(n);
            std::fs::create_dir_all(&deep).unwrap();
            std::fs::write(deep.join("f"), "host\n").unwrap();
            script.push_str(&format!(
                "echo evil >> '{n}'; rm -f '{n}'; mv '{n}' moved-away; \
                 echo evil > 'deep/er/{n}/f'; rm -rf 'deep/er/{n}'; mv 'deep/er/{n}' 'deep/er/moved'; "
            ));
        }
        script.push_str("true");
        let pol = policy_for(&ws, mode);
        let o = ws.sh(&["--policy", pol.to_str().unwrap()], &script);
        assert_eq!(o.status.code(), Some(0), "{mode}: {}", stderr(&o));
        assert_eq!(
            std::fs::read_to_string(ws.proj.join(".paddock/policy.toml")).unwrap(),
            "version = 1\n"
        );
        for n in &names {
            assert_eq!(
                std::fs::read_to_string(ws.proj.join(n)).unwrap(),
                "host\n",
                "{mode} {n}"
            );
            assert_eq!(
                std::fs::read_to_string(ws.proj.join("deep/er").join(n).join("f")).unwrap(),
                "host\n",
                "{mode} deep {n}"
            );
            let v = explain_write(&ws, &pol, &ws.proj.join("deep/er").join(n).join("f"));
            assert_eq!(v["reason_code"], "FS_WRITE_PROTECTED", "{mode} {n}: {v}");
        }
        assert!(
            !ws.proj.join("moved-away").exists() && !ws.proj.join("deep/er/moved").exists(),
            "{mode}: {:?} {}",
            std::fs::read_dir(&ws.proj)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect::<Vec<_>>(),
            stderr(&o)
        );
    }
}

/// Moving a protected name's parent aside and making it again: the
/// protected folder itself cannot be renamed (a mount), and the new one
/// in the recreated parent is refused or swept, so the host's file keeps
/// its content and no planted copy stays.
#[test]
fn parent_rename_attack_never_replaces_a_protected_file() {
    let ws = Ws::new();
    for base in ["", "sub/"] {
        std::fs::create_dir_all(ws.proj.join(format!("{base}.vscode"))).unwrap();
        std::fs::write(ws.proj.join(format!("{base}.vscode/tasks.json")), "{}\n").unwrap();
    }
    let o = ws.sh(
        &[],
        "mv .vscode v-old; mkdir -p .vscode; echo evil > .vscode/tasks.json; \
         mv sub sub-old && mkdir -p sub/.vscode; echo evil > sub/.vscode/tasks.json; \
         mkdir -p sub/x && echo evil > sub/x/tasks.json && mv sub/x sub/.vscode; true",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(ws.proj.join(".vscode/tasks.json")).unwrap(),
        "{}\n"
    );
    assert!(!ws.proj.join("v-old").exists());
    // `sub` holds a read-only mount, so the kernel refuses to move it
    // (EBUSY); had it moved, its .vscode would have gone with it, intact.
    let kept = if ws.proj.join("sub-old").exists() {
        assert!(
            std::fs::symlink_metadata(ws.proj.join("sub/.vscode")).is_err(),
            "no new .vscode"
        );
        ws.proj.join("sub-old/.vscode/tasks.json")
    } else {
        ws.proj.join("sub/.vscode/tasks.json")
    };
    assert_eq!(std::fs::read_to_string(kept).unwrap(), "{}\n");
    assert_eq!(quarantined(&ws.proj), 0, "nothing even got created");
}

/// A protected name that is a link: the file it leads to is read-only; the
/// link itself may go, but whatever takes its place is refused or moved
/// aside (a new object under a known name is new).
#[test]
fn symlinked_protected_name_cannot_be_replaced() {
    let ws = Ws::new();
    std::fs::write(ws.proj.join("envrc.real"), "export A=1\n").unwrap();
    std::os::unix::fs::symlink("envrc.real", ws.proj.join(".envrc")).unwrap();
    let o = ws.sh(
        &[],
        "echo evil >> envrc.real; rm -f .envrc; echo evil > .envrc; \
         ln -s .envrc innocent; echo evil > innocent; true",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(ws.proj.join("envrc.real")).unwrap(),
        "export A=1\n"
    );
    match std::fs::symlink_metadata(ws.proj.join(".envrc")) {
        Ok(md) => assert!(
            md.file_type().is_symlink(),
            "only the original link may stay"
        ),
        Err(_) => assert!(quarantined(&ws.proj) >= 1),
    }
    if let Ok(s) = std::fs::read_to_string(ws.proj.join(".envrc")) {
        assert!(!s.contains("evil"), "{s}");
    }
}

/// A nested repository (vendored code with its own .git) is protected like
/// the top one, and `git init` of a new one inside the sandbox leaves no
/// .git on the host; core.hooksPath's folder is protected too.
#[test]
fn nested_repository_and_hooks_path_are_protected() {
    let ws = Ws::new();
    git_repo(&ws);
    let nested = ws.proj.join("vendor/lib");
    std::fs::create_dir_all(&nested).unwrap();
    let ok = Command::new("git")
        .args(["init", "-q"])
        .current_dir(&nested)
        .status();
    assert!(ok.is_ok_and(|s| s.success()));
    let cfg = std::fs::read_to_string(nested.join(".git/config")).unwrap();
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(&ws.proj)
            .status()
            .unwrap()
    };
    assert!(git(&["config", "core.hooksPath", "tools/hooks"]).success());
    let o = ws.sh(
        &[],
        "echo '[core] fsmonitor = evil' >> vendor/lib/.git/config; \
         mkdir -p vendor/new && cd vendor/new && git init -q 2>/dev/null; cd ../..; \
         mkdir -p tools/hooks; echo evil > tools/hooks/pre-commit; true",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(nested.join(".git/config")).unwrap(),
        cfg
    );
    assert!(std::fs::symlink_metadata(ws.proj.join("vendor/new/.git")).is_err());
    assert!(std::fs::symlink_metadata(ws.proj.join("tools/hooks")).is_err());
}

/// The sandbox takes every quarantine name it could guess for the next
/// ten minutes, then makes `.envrc` with mknod (a call the observer does
/// not refuse by name): the sweep still moves it aside.
#[test]
fn quarantine_name_taken_in_advance_still_moves_the_name_aside() {
    let ws = Ws::new();
    let o = ws.sh(
        &[],
        "python3 -c '
import os,stat,time
t=int(time.time())
for s in range(t-5,t+600): open(\".envrc.paddock-quarantine-%d\"%s,\"w\").close()
os.mknod(\".envrc\",stat.S_IFREG|0o644)
open(\".envrc\",\"w\").write(\"echo PWNED\\n\")' 2>&1; true",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        !ws.proj.join(".envrc").exists(),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    assert!(quarantined(&ws.proj) > 600);
}

/// A folder the sandbox makes unreadable (mode 0111) with protected names
/// inside: they are swept all the same, and the folder's mode is put back.
#[test]
fn unreadable_folder_does_not_hide_a_protected_name() {
    use std::os::unix::fs::PermissionsExt;
    let s = crate::session::S::new();
    let id = s.start(&[]);
    let o = s.exec(
        &id,
        "mkdir locked && ln -s .envrc locked/a && echo evil > locked/a && ln -s .git locked/b && \
         echo 'gitdir: /tmp/evil' > locked/b && rm locked/a locked/b && chmod 0111 locked",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let locked = s.ws.proj.join("locked");
    let mode = std::fs::metadata(&locked).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o111, "the mode is put back");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(std::fs::symlink_metadata(locked.join(".envrc")).is_err());
    assert!(std::fs::symlink_metadata(locked.join(".git")).is_err());
    assert_eq!(s.paddock(&["session", "stop", &id]).status.code(), Some(0));
}

/// A background process left behind by an exec creates `.envrc` two
/// seconds after the exec returned: moved aside within a few seconds,
/// while the session idles.
#[test]
fn background_process_after_exec_is_swept() {
    let s = crate::session::S::new();
    let id = s.start(&[]);
    let o = s.exec(
        &id,
        // The link's innocent name gets past the observer; only the sweep
        // can catch what the kernel creates through it.
        "ln -s .envrc innocent; nohup setsid sh -c 'sleep 2; echo late > innocent; sleep 60' >/dev/null 2>&1 & echo started",
    );
    assert!(stdout(&o).contains("started"));
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert!(
        wait_until(std::time::Duration::from_secs(5), || !s
            .ws
            .proj
            .join(".envrc")
            .exists()
            && quarantined(&s.ws.proj) == 1),
        "left on the host while the session idles"
    );
    assert_eq!(s.paddock(&["session", "stop", &id]).status.code(), Some(0));
}

/// A workspace that is itself inside a protected name (the shell is in a
/// project's `.vscode`): the whole workspace is read-only, and explain
/// says so.
#[test]
fn workspace_inside_a_protected_folder_is_read_only() {
    let ws = Ws::new();
    let inner = ws.proj.join(".vscode");
    std::fs::create_dir_all(&inner).unwrap();
    std::fs::write(inner.join("tasks.json"), "{}\n").unwrap();
    let o = ws
        .paddock()
        .current_dir(&inner)
        .args([
            "run",
            "--",
            "sh",
            "-c",
            "echo evil > tasks.json; echo x > new.json; true",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(inner.join("tasks.json")).unwrap(),
        "{}\n"
    );
    assert!(!inner.join("new.json").exists());
    let o = ws
        .paddock()
        .current_dir(&inner)
        .args(["policy", "explain", "--json", "write"])
        .arg(inner.join("x.json"))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["reason_code"], "FS_WRITE_PROTECTED", "{v}");
}

/// A protected name moved into place inside a folder the sandbox then
/// makes read-only (`mv x .config; chmod 555 .config` plants
/// `.config/mise`): the sweep still moves it aside, and puts the mode back.
#[test]
fn read_only_parent_does_not_stop_the_sweep() {
    use std::os::unix::fs::PermissionsExt;
    let ws = Ws::new();
    let o = ws.sh(
        &[],
        "mkdir -p x/mise && echo '[tasks.x]' > x/mise/config.toml && mv x .config && chmod 555 .config; true",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let cfg = ws.proj.join(".config");
    assert!(
        std::fs::symlink_metadata(cfg.join("mise")).is_err(),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::metadata(&cfg).unwrap().permissions().mode() & 0o777,
        0o555
    );
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The sweep reads the inotify watch of the workspace's folders: a name
/// whose file is removed and made again as a folder, within one command
/// or across two, is a folder it must watch, or whatever is made in it
/// later stays unseen. Through `run` and a session's `exec`, in `rw` and
/// `rw-no-delete`; each name is checked on the host.
#[test]
fn a_folder_made_where_a_file_was_is_swept_too() {
    let ws = Ws::new();
    let state = ws.root.join("state");
    // Past layer 1 (the observer): the name is made through a link.
    let plant = "ln -s .envrc x/l; echo evil > x/l";
    let replace = "touch x; rm x 2>/dev/null || mv x x.old; mkdir x";
    for mode in ["rw", "rw-no-delete"] {
        let pol = policy_for(&ws, mode);
        let pol = pol.to_str().unwrap();
        let _ = std::fs::remove_dir_all(&ws.proj);
        std::fs::create_dir_all(&ws.proj).unwrap();
        // One command.
        let o = run_in(
            &ws,
            &state,
            &[
                "run",
                "--policy",
                pol,
                "--",
                "sh",
                "-c",
                &format!("{replace}; {plant}"),
            ],
        );
        assert!(
            std::fs::symlink_metadata(ws.proj.join("x/.envrc")).is_err(),
            "{mode} run: x/.envrc on the host: {}",
            stderr(&o)
        );
        // Two commands of a session, the second well after the first.
        let _ = std::fs::remove_dir_all(&ws.proj);
        std::fs::create_dir_all(&ws.proj).unwrap();
        let o = run_in(
            &ws,
            &state,
            &["session", "start", "--json", "--policy", pol],
        );
        let id = serde_json::from_slice::<serde_json::Value>(&o.stdout)
            .unwrap_or_else(|_| panic!("{}", stderr(&o)))["id"]
            .as_str()
            .unwrap()
            .to_string();
        let o = run_in(&ws, &state, &["exec", &id, "--", "sh", "-c", replace]);
        // rw-no-delete refuses the removal and the rename: no folder.
        assert_eq!(o.status.success(), mode == "rw", "{mode}: {}", stderr(&o));
        std::thread::sleep(std::time::Duration::from_millis(1200));
        let o = run_in(&ws, &state, &["exec", &id, "--", "sh", "-c", plant]);
        assert!(
            std::fs::symlink_metadata(ws.proj.join("x/.envrc")).is_err(),
            "{mode} exec: x/.envrc on the host: {}",
            stderr(&o)
        );
        if mode == "rw" {
            assert!(quarantined(&ws.proj) >= 1, "{mode}: moved aside");
        }
        run_in(&ws, &state, &["session", "stop", &id]);
    }
}
