//! Planting code that the host runs by itself.

use std::process::Command;

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

/// direnv runs .envrc on `cd`: one created by the sandbox is moved aside
/// after the run, loudly, so the host never acts on it.
#[test]
fn envrc_created_inside_is_quarantined_after_the_run() {
    let ws = Ws::new();
    let o = ws.probe(&[], &["create", ".envrc"]);
    assert_ok(&o);
    assert!(!ws.proj.join(".envrc").exists());
    let err = stderr(&o);
    assert!(err.contains("PROTECTED_PATH_CREATED"), "{err}");
    let moved: Vec<_> = std::fs::read_dir(&ws.proj)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".envrc.paddock-quarantine-")
        })
        .collect();
    assert_eq!(moved.len(), 1, "the file is kept, renamed");
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
