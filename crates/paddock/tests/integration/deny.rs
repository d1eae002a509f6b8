//! `filesystem.deny` attacked by every other route to the same object:
//! the system folder itself, renaming a folder above a denied file, the
//! host changing a denied path during a session, hard links, bind mounts,
//! `..` after a link. Each is judged by what the host's files hold and
//! what the sandbox printed, through `run` and a session's `exec`, in every
//! writable mode and with and without Landlock.

use std::path::Path;
use std::process::Command;

use crate::session::S;
use crate::util::*;

const SECRET: &str = "TOPSECRET";

fn policy(ws: &Ws, name: &str, body: &str) -> String {
    let p = ws.root.join(name);
    std::fs::write(&p, format!("version = 1\n{body}")).unwrap();
    p.display().to_string()
}

fn deny_list(paths: &[&Path]) -> String {
    let quoted: Vec<String> = paths
        .iter()
        .map(|p| format!("\"{}\"", p.display()))
        .collect();
    format!("deny = [{}]\n", quoted.join(", "))
}

/// Every file under `dir` on the host whose contents hold the secret.
fn holders(dir: &Path) -> Vec<String> {
    let o = Command::new("grep")
        .args(["-rl", SECRET])
        .arg(dir)
        .output()
        .unwrap();
    let mut v: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
    v.sort();
    v
}

/// Denying a system folder itself (not only a path inside one) hides it
/// whole: nothing of /etc or /opt is listed or readable, through `run` and
/// a session's exec, with Landlock and without; the host's /etc is as it
/// was.
#[test]
fn a_denied_system_folder_is_hidden_whole() {
    let before = std::fs::read_dir("/etc").unwrap().count();
    for no_landlock in [false, true] {
        let s = S::new();
        let pol = policy(
            &s.ws,
            "deny-etc.toml",
            "[filesystem]\ndeny = [\"/etc\", \"/opt\"]\n",
        );
        let script = "echo etc=$(ls -A /etc | wc -l) opt=$(ls -A /opt 2>/dev/null | wc -l); \
                      cat /etc/passwd /etc/hostname /etc/os-release 2>/dev/null | wc -c";
        let o = s.paddock_at(
            no_landlock,
            &["run", "--policy", &pol, "--", "sh", "-c", script],
        );
        assert_eq!(
            stdout(&o),
            "etc=0 opt=0\n0\n",
            "run, no_landlock={no_landlock}: {}",
            stderr(&o)
        );
        let o = s.paddock_at(no_landlock, &["session", "start", "--policy", &pol]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let id = stdout(&o).trim().to_string();
        let o = s.exec(&id, script);
        assert_eq!(stdout(&o), "etc=0 opt=0\n0\n", "exec: {}", stderr(&o));
        s.paddock(&["session", "stop", &id]);
    }
    assert_eq!(std::fs::read_dir("/etc").unwrap().count(), before);
}

/// The attack on a cover that is a mount on the file's dentry: rename a
/// folder above the denied file (or the file itself), link it, copy the
/// folder, then look for the secret in a later sandbox under the new
/// names. Every move is refused; the host's workspace still holds the
/// secret only where it was, and no later sandbox shows it. In rw,
/// rw-no-delete and cow, through `run` and a session's exec.
#[test]
fn a_denied_file_cannot_be_moved_out_from_under_its_cover() {
    let attack = "mv deep deep.moved 2>/dev/null && echo moved-top; \
                  mv deep/er deep/er.moved 2>/dev/null && echo moved-mid; \
                  mv deep/er/key deep/key.moved 2>/dev/null && echo moved-file; \
                  ln deep/er/key hard 2>/dev/null && echo linked; \
                  cp -r deep copy 2>/dev/null; \
                  rm -rf deep 2>/dev/null; \
                  echo changed > deep/er/other.txt && echo wrote-beside; \
                  echo done";
    let look = "cat deep/er/key deep.moved/er/key deep/er.moved/key deep/key.moved hard \
                copy/er/key 2>/dev/null; find . -type f -exec cat {} + 2>/dev/null";
    for mode in ["rw", "rw-no-delete", "cow"] {
        for via_session in [false, true] {
            let s = S::new();
            let deep = s.ws.proj.join("deep/er");
            std::fs::create_dir_all(&deep).unwrap();
            std::fs::write(deep.join("key"), format!("{SECRET}\n")).unwrap();
            std::fs::write(deep.join("other.txt"), "plain\n").unwrap();
            let pol = policy(
                &s.ws,
                "deny.toml",
                &format!(
                    "[filesystem]\nworkspace = \"{mode}\"\n{}",
                    deny_list(&[&deep.join("key")])
                ),
            );
            let what = format!("{mode}, session={via_session}");
            let out = if via_session {
                let id = s.start(&["--policy", &pol]);
                let o = s.exec(&id, attack);
                let first = stdout(&o);
                // The same session, then a new one.
                let again = s.exec(&id, look);
                s.paddock(&["session", "stop", &id]);
                let id = s.start(&["--policy", &pol]);
                let later = s.exec(&id, look);
                s.paddock(&["session", "stop", &id]);
                format!("{first}{}{}", stdout(&again), stdout(&later))
            } else {
                let o = s.ws.sh(&["--policy", &pol], attack);
                let later = s.ws.sh(&["--policy", &pol], look);
                format!("{}{}", stdout(&o), stdout(&later))
            };
            assert!(out.contains("done"), "{what}: {out}");
            assert!(!out.contains(SECRET), "{what}: {out}");
            for refused in ["moved-top", "moved-mid", "moved-file", "linked"] {
                assert!(!out.contains(refused), "{what}: {refused}: {out}");
            }
            // Ground truth: the secret is where it was, and nowhere else.
            let key = s.ws.proj.join("deep/er/key");
            assert_eq!(
                std::fs::read_to_string(&key).unwrap(),
                format!("{SECRET}\n"),
                "{what}"
            );
            assert_eq!(
                holders(&s.ws.proj),
                vec![key.display().to_string()],
                "{what}"
            );
        }
    }
}

/// The host changes a denied path while a session lives: creates one that
/// was not there, replaces one (rename over it, as editors and package
/// tools do), or renames a folder above one and puts a new one in its
/// place. The cover placed at the start no longer lies on what the path
/// shows, so pid 1 (woken by the change) ends every process of the
/// sandbox at once: a background loop of an earlier exec that copies the
/// path into the workspace stops (read on the host), a command running
/// through the JSON API ends with `failed`
/// (FS_DENY_CHANGED), and the next exec runs in a new sandbox that covers
/// the path as it is now. With Landlock and without.
#[test]
fn a_denied_path_changed_on_the_host_during_a_session_is_not_shown() {
    use std::io::{BufRead, Write};
    for no_landlock in [false, true] {
        for change in ["create", "replace", "rename-parent"] {
            let s = S::new();
            let p = &s.ws.proj;
            std::fs::create_dir_all(p.join("sec")).unwrap();
            std::fs::write(p.join("sec/key"), "old-covered\n").unwrap();
            let pol = policy(
                &s.ws,
                "deny.toml",
                &format!(
                    "[filesystem]\n{}",
                    deny_list(&[&p.join(".env"), &p.join("sec/key")])
                ),
            );
            let pd = |args: &[&str]| s.paddock_at(no_landlock, args);
            let o = pd(&["session", "start", "--policy", &pol]);
            assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
            let id = stdout(&o).trim().to_string();
            let bg = "nohup sh -c 'while :; do cat .env sec/key >> leak.txt 2>/dev/null; \
                      touch /tmp/alive; sleep 0.05; done' >/dev/null 2>&1 & echo started";
            let o = pd(&["exec", &id, "--", "sh", "-c", bg]);
            assert!(stdout(&o).contains("started"), "{}", stderr(&o));
            // A command that is running when the change comes, through the
            // JSON API (the control socket exists once a command ran).
            let sock =
                s.ws.root
                    .join("state/sessions")
                    .join(&id)
                    .join("control.sock");
            let mut api = std::os::unix::net::UnixStream::connect(&sock).unwrap();
            api.set_read_timeout(Some(std::time::Duration::from_secs(20)))
                .unwrap();
            api.write_all(
                br#"{"op":"exec","argv":["sh","-c","sleep 3; cat .env sec/key; echo api-ran"],"capture":true}"#,
            )
            .unwrap();
            let mut api = std::io::BufReader::new(api);
            let mut seen = String::new();
            api.read_line(&mut seen).unwrap();
            assert!(seen.contains("started"), "{seen}");
            match change {
                "create" => std::fs::write(p.join(".env"), format!("{SECRET}\n")).unwrap(),
                "replace" => {
                    std::fs::write(p.join("sec/key.new"), format!("{SECRET}\n")).unwrap();
                    std::fs::rename(p.join("sec/key.new"), p.join("sec/key")).unwrap();
                }
                _ => {
                    std::fs::rename(p.join("sec"), p.join("sec.old")).unwrap();
                    std::fs::create_dir(p.join("sec")).unwrap();
                    std::fs::write(p.join("sec/key"), format!("{SECRET}\n")).unwrap();
                }
            }
            let what = format!("{change}, no_landlock={no_landlock}");
            loop {
                let mut line = String::new();
                if api.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                seen.push_str(&line);
                if line.contains("\"failed\"") || line.contains("\"exited\"") {
                    break;
                }
            }
            assert!(
                !seen.contains(SECRET) && !seen.contains("api-ran"),
                "{what}: {seen}"
            );
            assert!(
                seen.contains("\"failed\"") && seen.contains("FS_DENY_CHANGED"),
                "{what}: {seen}"
            );
            // Ground truth: the loop has ended (its file stops growing). In
            // the milliseconds between the change and pid 1's reaction it
            // may have read the path (docs/sandbox.md, "Denied paths").
            std::thread::sleep(std::time::Duration::from_millis(300));
            let size = |f: &Path| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
            let before = size(&p.join("leak.txt"));
            std::thread::sleep(std::time::Duration::from_millis(400));
            assert_eq!(
                size(&p.join("leak.txt")),
                before,
                "{what}: the loop still runs"
            );
            // The next exec: a new sandbox (the loop's marker in the old
            // one's private /tmp is gone), the path covered as it is now.
            let o = pd(&[
                "exec",
                &id,
                "--",
                "sh",
                "-c",
                "test -e /tmp/alive && echo old-sandbox; cat .env sec/key 2>&1; echo ran",
            ]);
            let out = stdout(&o);
            assert!(out.contains("ran"), "{what}: {out}{}", stderr(&o));
            assert!(
                !out.contains(SECRET) && !out.contains("old-sandbox"),
                "{what}: {out}"
            );
            pd(&["session", "stop", &id]);
        }
    }
}

/// Through MCP: the agent itself makes a denied path that was absent; its
/// sandbox ends at once (the tool call is an error naming
/// FS_DENY_CHANGED), and the next call runs in a new sandbox in which the
/// path is covered.
#[test]
fn an_mcp_session_refuses_a_call_once_a_denied_path_changed() {
    let ws = Ws::new();
    let pol = policy(
        &ws,
        "deny.toml",
        &format!("[filesystem]\n{}", deny_list(&[&ws.proj.join(".env")])),
    );
    let seen = mcp_calls(
        &ws,
        &ws.root.join("state"),
        &["--policy", &pol],
        serde_json::json!([
            ["run_command", {"command": "echo made > .env; sleep 2; cat .env; echo first"}],
            ["run_command", {"command": "cat .env; echo ran"}]
        ]),
    );
    let first = seen[0][1].as_str().unwrap();
    assert_eq!(seen[0][0], true, "{seen}");
    assert!(
        first.contains("FS_DENY_CHANGED") && !first.contains("first"),
        "{seen}"
    );
    let second = seen[1][1].as_str().unwrap();
    assert!(second.contains("ran") && !second.contains("made"), "{seen}");
}

/// A second name of a denied file (a hard link) on a filesystem the
/// sandbox shows would show its contents: the run is refused before
/// anything starts (FS_DENY_HARD_LINKED, exit 125), whether the entry is
/// the file or a folder holding it, and a link made on the host during a
/// session refuses the next exec. The host's files are untouched.
#[test]
fn a_hard_link_to_a_denied_file_is_refused() {
    let s = S::new();
    let dir = s.ws.outside.join("keys");
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("id");
    std::fs::write(&key, format!("{SECRET}\n")).unwrap();
    std::fs::hard_link(&key, s.ws.proj.join("innocent.txt")).unwrap();
    for entry in [&key, &dir] {
        let pol = policy(
            &s.ws,
            "deny.toml",
            &format!("[filesystem]\n{}", deny_list(&[entry])),
        );
        let o = s.ws.sh(&["--policy", &pol], "cat innocent.txt; echo ran");
        assert!(!stdout(&o).contains(SECRET), "{}", stdout(&o));
        assert!(!stdout(&o).contains("ran"), "{}", stdout(&o));
        assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("error[FS_DENY_HARD_LINKED]") && stderr(&o).contains("-samefile"),
            "{}",
            stderr(&o)
        );
        let o = s.paddock(&["session", "start", "--policy", &pol]);
        assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
        assert!(stderr(&o).contains("FS_DENY_HARD_LINKED"), "{}", stderr(&o));
    }
    // A hard link below a folder the search cannot read (as an earlier
    // sandbox could leave it): refused as well, since what the folder
    // holds is not known.
    let dir2 = s.ws.outside.join("keys2");
    std::fs::create_dir_all(dir2.join("sub")).unwrap();
    std::fs::write(dir2.join("sub/key"), format!("{SECRET}\n")).unwrap();
    std::fs::hard_link(dir2.join("sub/key"), s.ws.proj.join("notes")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir2.join("sub"), std::fs::Permissions::from_mode(0o311)).unwrap();
    let pol = policy(
        &s.ws,
        "deny3.toml",
        &format!("[filesystem]\n{}", deny_list(&[&dir2])),
    );
    let o = s.ws.sh(&["--policy", &pol], "cat notes; echo ran");
    std::fs::set_permissions(dir2.join("sub"), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(!stdout(&o).contains(SECRET), "{}", stdout(&o));
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(stderr(&o).contains("FS_DENY_HARD_LINKED"), "{}", stderr(&o));
    std::fs::remove_file(s.ws.proj.join("notes")).unwrap();

    // Made during a session: the next exec is refused.
    std::fs::remove_file(s.ws.proj.join("innocent.txt")).unwrap();
    let inside = s.ws.proj.join("sec");
    std::fs::create_dir_all(&inside).unwrap();
    let key = inside.join("key");
    std::fs::write(&key, format!("{SECRET}\n")).unwrap();
    let pol = policy(
        &s.ws,
        "deny2.toml",
        &format!("[filesystem]\n{}", deny_list(&[&key])),
    );
    let id = s.start(&["--policy", &pol]);
    let o = s.exec(&id, "cat sec/key late.txt 2>&1; echo ran");
    assert!(stdout(&o).contains("ran") && !stdout(&o).contains(SECRET));
    std::fs::hard_link(&key, s.ws.proj.join("late.txt")).unwrap();
    let o = s.exec(&id, "cat late.txt; echo ran");
    assert!(!stdout(&o).contains(SECRET), "{}", stdout(&o));
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(stderr(&o).contains("FS_DENY_CHANGED"), "{}", stderr(&o));
    // The refusal is in the session's audit trail.
    let trail = stdout(&s.paddock(&["audit", "tail", "--session", &id, "--json"]));
    assert!(
        trail
            .lines()
            .any(|l| l.contains("exec.exit") && l.contains("FS_DENY_CHANGED")),
        "{trail}"
    );
    s.paddock(&["session", "stop", &id]);
    assert_eq!(
        std::fs::read_to_string(&key).unwrap(),
        format!("{SECRET}\n")
    );
}

/// A bind mount on the host shows a denied folder under a second path
/// inside the workspace: that path is covered too, and a workspace that
/// is itself such an alias is refused. Run in a private mount namespace
/// of the test's own (`unshare -m`, or `-rm` for an unprivileged user), so
/// the host's mount table is not touched.
#[test]
fn a_bind_mount_of_a_denied_folder_is_denied_too() {
    let ws = Ws::new();
    let secret = ws.outside.join("secretdir");
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(secret.join("key"), format!("{SECRET}\n")).unwrap();
    std::fs::create_dir_all(ws.proj.join("alias")).unwrap();
    // A folder inside the denied one, bound elsewhere on its own.
    std::fs::create_dir_all(secret.join("sub")).unwrap();
    std::fs::write(secret.join("sub/key2"), format!("{SECRET}\n")).unwrap();
    std::fs::create_dir_all(ws.proj.join("alias2")).unwrap();
    let pol = policy(
        &ws,
        "deny.toml",
        &format!("[filesystem]\n{}", deny_list(&[&secret])),
    );
    let root = running_as_root();
    let script = format!(
        "mount --bind {secret} {alias} || exit 99; \
         mount --bind {secret}/sub {alias}2 || exit 99; \
         {pd} run --policy {pol} -- sh -c 'cat alias/key alias2/key2 2>&1; ls -A alias | wc -l; echo ran'; \
         cd {alias} && {pd} run --policy {pol} -- true; echo alias-run=$?",
        secret = secret.display(),
        alias = ws.proj.join("alias").display(),
        pd = paddock_bin().display(),
    );
    let o = Command::new("unshare")
        .args(if root { vec!["-m"] } else { vec!["-rm"] })
        .args(["--propagation", "private", "sh", "-c", &script])
        .current_dir(&ws.proj)
        .env("HOME", &ws.home)
        .env("PADDOCK_HOME", ws.root.join("state"))
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .output()
        .unwrap();
    let out = stdout(&o);
    assert_ne!(
        o.status.code(),
        Some(99),
        "bind mount failed: {}",
        stderr(&o)
    );
    assert!(out.contains("ran"), "{out}{}", stderr(&o));
    assert!(!out.contains(SECRET), "{out}");
    assert!(out.contains("\n0\nran"), "{out}{}", stderr(&o));
    assert!(out.contains("alias-run=125"), "{out}{}", stderr(&o));
    assert!(stderr(&o).contains("FS_DENIED_BY_POLICY"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(secret.join("key")).unwrap(),
        format!("{SECRET}\n")
    );
}

/// `..` in a deny path names another place than it reads as once a link
/// is on the way (`~/link/../.ssh`): refused when the policy is read, with
/// the file, the line and the fix; nothing runs.
#[test]
fn dot_dot_in_a_deny_path_is_refused() {
    let ws = Ws::new();
    std::os::unix::fs::symlink(&ws.outside, ws.home.join("link")).unwrap();
    let pol = policy(
        &ws,
        "dots.toml",
        "[filesystem]\ndeny = [\"~/link/../.ssh\"]\n",
    );
    let o = ws.sh(&["--policy", &pol], "echo ran");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert!(!stdout(&o).contains("ran"));
    assert!(
        err.contains("dots.toml:3") && err.contains("`..`") && err.contains("without `..`"),
        "{err}"
    );
}
