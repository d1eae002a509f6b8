//! Attacks on the filesystem boundary.

use std::path::Path;

use crate::util::*;

/// Exfiltration of credentials from the user's home (an agent told by a
/// prompt-injected file to read ~/.ssh/id_rsa; see OWASP LLM01 prompt
/// injection). Home is an empty private tmpfs: the key does not exist there.
#[test]
fn secret_in_home_outside_mounts_cannot_be_read() {
    let ws = Ws::new();
    std::fs::create_dir_all(ws.home.join(".ssh")).unwrap();
    std::fs::write(ws.home.join(".ssh/id_rsa"), "PRIVATE KEY").unwrap();
    std::fs::write(ws.outside.join("secret"), "outside").unwrap();
    let key = ws.home.join(".ssh/id_rsa");
    assert_refused(&ws.probe(&[], &["read", key.to_str().unwrap()]), "ENOENT");
    let out = ws.outside.join("secret");
    assert_refused(&ws.probe(&[], &["read", out.to_str().unwrap()]), "ENOENT");
    // The workspace itself is readable: the boundary is not "deny all".
    std::fs::write(ws.proj.join("notes"), "mine").unwrap();
    let o = ws.probe(&[], &["read", "notes"]);
    assert_ok(&o);
    assert!(stdout(&o).contains("mine"));
}

/// Host secrets under the read-only system tree (/etc/shadow) are hidden:
/// when paddock runs as root, uid 0 inside owns them and read-only is not
/// enough.
#[test]
fn etc_shadow_is_hidden() {
    let ws = Ws::new();
    let o = ws.sh(&[], "wc -c < /etc/shadow");
    assert_eq!(stdout(&o).trim(), "0", "stderr: {}", stderr(&o));
    let o = ws.sh(&[], "test -r /etc/passwd && echo visible");
    assert_eq!(stdout(&o).trim(), "visible");
}

/// Writes through a read-only mount fail (EROFS from the mount; Landlock
/// would refuse them too).
#[test]
fn write_to_ro_mount_fails() {
    let ws = Ws::new();
    let data = ws.outside.join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("f"), "orig").unwrap();
    let m = format!("{}:ro", data.display());
    let f = data.join("f");
    assert_refused(
        &ws.probe(&["--mount", &m], &["write", f.to_str().unwrap()]),
        "EROFS",
    );
    let n = data.join("new");
    assert_refused(
        &ws.probe(&["--mount", &m], &["create", n.to_str().unwrap()]),
        "EROFS",
    );
    assert_ok(&ws.probe(&["--mount", &m], &["read", f.to_str().unwrap()]));
    assert_eq!(std::fs::read_to_string(data.join("f")).unwrap(), "orig");
    // System folders are read-only too.
    assert_refused(&ws.probe(&[], &["create", "/usr/bin/planted"]), "EROFS");
}

/// An agent told to "clean up" deletes the user's work: in rw-no-delete it
/// may create and modify, never unlink, rmdir or rename away (Landlock
/// REMOVE_FILE / REMOVE_DIR are withheld).
#[test]
fn rw_no_delete_allows_create_and_modify_but_not_delete_or_rename_away() {
    let ws = Ws::new();
    let d = ws.outside.join("keep");
    std::fs::create_dir_all(d.join("sub")).unwrap();
    std::fs::write(d.join("a"), "a").unwrap();
    let m = format!("{}:rw-no-delete", d.display());
    let p = |n: &str| d.join(n).to_str().unwrap().to_string();
    assert_ok(&ws.probe(&["--mount", &m], &["write", &p("a"), "more"]));
    assert_ok(&ws.probe(&["--mount", &m], &["create", &p("new")]));
    assert_ok(&ws.probe(&["--mount", &m], &["mkdir", &p("newdir")]));
    assert_refused(&ws.probe(&["--mount", &m], &["unlink", &p("a")]), "EACCES");
    assert_refused(&ws.probe(&["--mount", &m], &["rmdir", &p("sub")]), "EACCES");
    assert_refused(
        &ws.probe(&["--mount", &m], &["rename", &p("a"), &p("b")]),
        "EACCES",
    );
    let away = ws.root.join("away");
    let o = ws.probe(
        &["--mount", &m],
        &["rename", &p("a"), away.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert_eq!(std::fs::read_to_string(d.join("a")).unwrap(), "amore");
    assert!(d.join("new").exists() && d.join("sub").exists());
}

/// `cow`: the sandbox sees its own writes, the real folder never changes.
#[test]
fn cow_writes_never_reach_the_real_folder() {
    let ws = Ws::new();
    let d = ws.outside.join("src");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("keep"), "original").unwrap();
    std::fs::write(d.join("gone"), "x").unwrap();
    let m = format!("{}:cow", d.display());
    let script = format!(
        "cd {} && echo changed > keep && rm gone && echo new > added && cat keep added && ls",
        d.display()
    );
    let o = ws.sh(&["--mount", &m], &script);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("changed") && out.contains("new") && !out.contains("gone"),
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(d.join("keep")).unwrap(), "original");
    assert!(d.join("gone").exists());
    assert!(!d.join("added").exists());
}

/// Symlink swap on the mount source (the class of CVE-2021-30465 in runc:
/// a path checked once, then replaced by a symlink to somewhere else). A
/// mount path that crosses a symlink is refused outright, naming the link,
/// and nothing starts.
#[test]
fn mount_path_through_escaping_symlink_is_refused() {
    let ws = Ws::new();
    std::fs::create_dir_all(ws.home.join(".ssh")).unwrap();
    std::os::unix::fs::symlink(ws.home.join(".ssh"), ws.proj.join("innocent")).unwrap();
    let o = ws.sh(&["--mount", "innocent:ro"], "echo started");
    assert_eq!(o.status.code(), Some(125));
    let err = stderr(&o);
    assert!(err.contains("MOUNT_SYMLINK_ESCAPE"), "{err}");
    assert!(err.contains("innocent"), "{err}");
    assert!(!stdout(&o).contains("started"));
}

/// A symlink planted inside the sandbox pointing at a host path leads
/// nowhere: the host path is not in the sandbox's tree. (A symlink that was
/// already in the workspace, left by an attacker, neither.)
#[test]
fn symlink_inside_sandbox_pointing_outside_leads_nowhere() {
    let ws = Ws::new();
    std::fs::write(ws.outside.join("secret"), "host secret").unwrap();
    let target = ws.outside.join("secret");
    std::os::unix::fs::symlink(&target, ws.proj.join("planted-before")).unwrap();
    assert_refused(&ws.probe(&[], &["read", "planted-before"]), "ENOENT");
    let script = format!("ln -s {} made-inside && cat made-inside", target.display());
    let o = ws.sh(&[], &script);
    assert_ne!(o.status.code(), Some(0));
    assert!(!stdout(&o).contains("host secret"));
    assert!(Path::new(&ws.proj.join("made-inside")).is_symlink());
}

/// /tmp is private: what the host keeps in /tmp is not visible, and what
/// the sandbox writes there never reaches the host.
#[test]
fn tmp_is_private() {
    let ws = Ws::new();
    let marker = ws.root.join("host-tmp-file");
    std::fs::write(&marker, "x").unwrap();
    let script = format!(
        "test -e {} && echo seen; echo s > /tmp/from-sandbox-{}",
        marker.display(),
        std::process::id()
    );
    let o = ws.sh(&["--workdir", "/tmp"], &script);
    assert!(!stdout(&o).contains("seen"));
    assert!(!Path::new(&format!("/tmp/from-sandbox-{}", std::process::id())).exists());
}

/// rw-no-delete on the workspace itself, which lies inside the private
/// home: the home's grants must not leak the right to delete into it.
#[test]
fn rw_no_delete_workspace_inside_home_keeps_its_files() {
    let ws = Ws::new();
    std::fs::write(ws.proj.join("work.txt"), "precious").unwrap();
    let m = ".:rw-no-delete";
    assert_refused(
        &ws.probe(&["--mount", m], &["unlink", "work.txt"]),
        "EACCES",
    );
    assert_ok(&ws.probe(&["--mount", m], &["write", "work.txt", " edited"]));
    // The private home stays writable.
    let scratch = ws.home.join("tool-cache");
    assert_ok(&ws.probe(&["--mount", m], &["create", scratch.to_str().unwrap()]));
    assert_eq!(
        std::fs::read_to_string(ws.proj.join("work.txt")).unwrap(),
        "precious edited"
    );
    assert!(!scratch.exists(), "home writes stay in the sandbox");
}

/// A rw-no-delete mount nested in a rw mount would inherit its rights:
/// refused with an explanation instead of silently not enforced.
#[test]
fn rw_no_delete_inside_rw_mount_is_refused() {
    let ws = Ws::new();
    std::fs::create_dir(ws.proj.join("keep")).unwrap();
    let o = ws.sh(&["--mount", "keep:rw-no-delete"], "echo started");
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("cannot be enforced"), "{}", stderr(&o));
}

/// A workspace under /var/tmp (which is a link to /tmp inside) runs, and
/// its writes land in the real folder.
#[test]
fn workspace_under_var_tmp_runs() {
    let dir = std::path::PathBuf::from(format!(
        "/var/tmp/paddock-it-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let ws = Ws::new();
    let o = ws
        .paddock()
        .current_dir(&dir)
        .args(["run", "--", "sh", "-c", "pwd; echo hi > f"])
        .output()
        .unwrap();
    let ok = o.status.code() == Some(0)
        && std::fs::read_to_string(dir.join("f")).ok().as_deref() == Some("hi\n");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ok, "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains(&dir.display().to_string()));
}

/// /tmp, the private home and /dev/shm share one size cap: filling one
/// leaves no room in the others, so together they hold at most
/// `--tmp-size` of host memory.
#[test]
fn scratch_folders_share_one_cap() {
    let ws = Ws::new();
    let o = ws.sh(
        &["--tmp-size", "64"],
        "head -c 40000000 /dev/zero > /tmp/a && echo tmp-ok; \
         head -c 40000000 /dev/zero > $HOME/b 2>/dev/null && echo home-ok || echo home-full; \
         head -c 40000000 /dev/zero > /dev/shm/c 2>/dev/null && echo shm-ok || echo shm-full; \
         df -k /tmp | tail -1",
    );
    let out = stdout(&o);
    assert!(
        out.contains("tmp-ok") && out.contains("home-full") && out.contains("shm-full"),
        "{out}{}",
        stderr(&o)
    );
    let size_kib: u64 = out
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(size_kib <= 64 * 1024, "{out}");
}

/// Moving a file into another folder (what git, package managers and
/// editors do for atomic writes) works in every writable mode: the
/// Landlock domains stacked over a command (pid 1's included) all grant
/// the move.
#[test]
fn moving_a_file_into_another_folder_works_in_every_writable_mode() {
    // (rw-no-delete refuses moves out of a folder by design.)
    for mode in ["rw", "cow"] {
        let ws = Ws::new();
        let pol = ws.root.join(format!("mv-{mode}.toml"));
        std::fs::write(
            &pol,
            format!("version = 1\n[filesystem]\nworkspace = \"{mode}\"\n"),
        )
        .unwrap();
        let o = ws.sh(
            &["--policy", pol.to_str().unwrap()],
            "mkdir -p a b /tmp/c /tmp/d && echo x > a/f && mv a/f b/f && ln b/f a/g && echo y > /tmp/c/f \
             && mv /tmp/c/f /tmp/d/f && echo moved",
        );
        assert!(stdout(&o).contains("moved"), "{mode}: {}", stderr(&o));
    }
}
