//! The audit observer in containers: under a policy that audits, what a
//! container's processes do to files, the programs they start and the
//! calls paddock refuses are in the node's audit log, from the first
//! process and from `podman exec`, with paths as the container sees them.
//! Ground truth is the log on the node, and the descriptors the
//! container's programs hold.

use std::process::Command;

use crate::oci::{image_as, runtime, Podman};
use crate::util::*;

const POLICY: &str = r#"version = 1
[network]
mode = "none"

[audit]
level = "writes"
sinks = ["jsonl"]
"#;

/// What the first process does: relative paths under a working folder,
/// a path that exists on the host but not in the container, a rename, an
/// append, a delete, a link, a folder, a refused mount; and whether it
/// holds a seccomp listener (it must not: it could answer its own calls).
const FIRST: &str = r#"
cd /tmp
echo one > rel.txt
mkdir d
mv rel.txt d/moved.txt
echo two >> d/moved.txt
rm d/moved.txt
ln -s /etc/hostname lnk
mkdir -p /usr/bin
echo shadow > /usr/bin/env
mount -t tmpfs x /mnt 2>/dev/null; echo mount=$?
echo listeners=$(ls -l /proc/self/fd/ /proc/$$/fd/ 2>/dev/null | grep -c seccomp)
"#;

const FROM_EXEC: &str = r#"
echo x > /tmp/from-exec
echo exec_listeners=$(ls -l /proc/self/fd/ /proc/$$/fd/ 2>/dev/null | grep -c seccomp)
"#;

/// Every event of container `id`'s audit log.
fn events(audit: &std::path::Path, id: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(audit.join(id).join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn find<'a>(
    evs: &'a [serde_json::Value],
    kind: &str,
    key: &str,
    value: &str,
) -> Option<&'a serde_json::Value> {
    evs.iter()
        .find(|e| e["kind"] == kind && e["data"][key] == value)
}

/// Under `io.paddock.policy` with `audit.level = "writes"`, every file a
/// container's process creates, changes, renames or deletes, every
/// program it starts and every call paddock's filter refuses is recorded
/// with the container's id, from `podman run` and from `podman exec`;
/// relative paths are recorded as the container's absolute ones, and
/// whether a file existed is judged inside the container (a path the host
/// has and the container lacks is a creation). No program of the
/// container holds the observer's listener.
#[test]
fn a_containers_file_and_process_activity_is_in_the_nodes_audit_log() {
    let ws = Ws::new();
    let policies = ws.root.join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(policies.join("watched.toml"), POLICY).unwrap();
    let audit = ws.root.join("audit");
    let wrapper = ws.root.join("paddock-oci-node");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec {} --policy-dir {} --audit-dir {} --policies '*' \"$@\"\n",
            runtime(&ws.root).display(),
            policies.display(),
            audit.display()
        ),
    )
    .unwrap();
    Command::new("chmod")
        .args(["0755", wrapper.to_str().unwrap()])
        .status()
        .unwrap();
    let pm = Podman {
        dir: ws.root.join("podman"),
        rt: wrapper,
    };
    std::fs::create_dir_all(&pm.dir).unwrap();
    if !pm.usable() {
        return;
    }
    assert!(
        std::path::Path::new("/usr/bin/env").exists(),
        "the host has /usr/bin/env"
    );
    let image = "localhost/paddock-test-watched:1";
    image_as(&pm, image, &|r| {
        for a in ["mv", "rm", "ln"] {
            std::os::unix::fs::symlink("busybox", r.join("bin").join(a)).unwrap();
        }
    });
    let args = [
        "--network",
        "none",
        "--annotation",
        "io.paddock.policy=watched",
        "--annotation",
        "io.kubernetes.pod.name=watched-pod",
    ];

    // 1. The first process.
    let mut extra = vec!["-d"];
    extra.extend(args);
    let o = pm.run_in(
        image,
        &extra,
        &["sh", "-c", &format!("{FIRST}\nexec sleep 60")],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let id = stdout(&o).trim().to_string();
    // 2. `podman exec` into it.
    let o = pm
        .cmd()
        .args(["exec", &id, "sh", "-c", FROM_EXEC])
        .output()
        .unwrap();
    let exec_out = stdout(&o);
    assert!(o.status.success(), "{exec_out}{}", stderr(&o));
    assert_eq!(
        exec_out
            .lines()
            .find_map(|l| l.strip_prefix("exec_listeners=")),
        Some("0"),
        "{exec_out}"
    );
    let o = pm.cmd().args(["logs", &id]).output().unwrap();
    let out = stdout(&o);
    let o = pm
        .cmd()
        .args(["rm", "-f", "-t", "0", &id])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        out.lines().any(|l| l == "listeners=0"),
        "the container's program holds no listener: {out}"
    );
    assert!(!out.contains("mount=0"), "{out}");

    // Ground truth: the node's log, written by the container's daemon.
    let evs = events(&audit, &id);
    let text = serde_json::to_string_pretty(&evs).unwrap();
    for e in &evs {
        assert_eq!(e["labels"]["container.id"], id.as_str(), "{e}");
        assert_eq!(e["labels"]["k8s.pod.name"], "watched-pod", "{e}");
    }
    let create = find(&evs, "file.create", "path", "/tmp/rel.txt")
        .unwrap_or_else(|| panic!("the relative create, as the container's path: {text}"));
    assert_eq!(create["allowed"], true, "{create}");
    assert_eq!(create["reason_code"], "FS_CONTAINER", "{create}");
    let dir = find(&evs, "file.create", "path", "/tmp/d").expect(&text);
    assert_eq!(dir["data"]["file_type"], "dir", "{dir}");
    let mv = find(&evs, "file.rename", "path", "/tmp/rel.txt").expect(&text);
    assert_eq!(mv["data"]["to"], "/tmp/d/moved.txt", "{mv}");
    assert!(
        find(&evs, "file.modify", "path", "/tmp/d/moved.txt").is_some(),
        "the append: {text}"
    );
    assert!(
        find(&evs, "file.delete", "path", "/tmp/d/moved.txt").is_some(),
        "{text}"
    );
    let link = find(&evs, "file.create", "path", "/tmp/lnk").expect(&text);
    assert_eq!(link["data"]["file_type"], "symlink", "{link}");
    // The host has /usr/bin/env; the container did not, until it made it.
    assert!(
        find(&evs, "file.create", "path", "/usr/bin/env").is_some(),
        "existence judged inside the container: {text}"
    );
    assert!(
        find(&evs, "file.modify", "path", "/usr/bin/env").is_none(),
        "{text}"
    );
    // The first program itself (its execve is the first watched call).
    let sh = find(&evs, "process.exec", "path", "/bin/sh").expect(&text);
    assert_eq!(sh["data"]["argv"][0], "sh", "{sh}");
    assert_eq!(sh["data"]["argv"][1], "-c", "{sh}");
    let denied = find(&evs, "syscall.denied", "syscall", "mount").expect(&text);
    assert_eq!(denied["allowed"], false, "{denied}");
    // The exec's file, under the exec's own id.
    let start = evs
        .iter()
        .find(|e| e["kind"] == "exec.start" && e["data"]["argv"][0] == "sh")
        .expect(&text);
    let exec_id = start["data"]["exec_id"].as_u64().expect("an exec id");
    let made = find(&evs, "file.create", "path", "/tmp/from-exec").expect(&text);
    assert_eq!(made["data"]["exec_id"].as_u64(), Some(exec_id), "{made}");
    // The first process's records carry no exec id.
    assert!(create["data"].get("exec_id").is_none(), "{create}");
    assert!(
        evs.iter().any(|e| e["kind"] == "session.stop"),
        "the daemon ended with the container: {text}"
    );
    pm.clean();
}
