//! The audit observer in containers: under a policy that audits, what a
//! container's processes do to files, the programs they start and the
//! calls paddock refuses are in the node's audit log, from the first
//! process and from `podman exec`, with paths as the container sees them.
//! Ground truth is the log on the node, and the descriptors the
//! container's programs hold.

use std::process::Command;

use crate::oci::{image_as, node_runtime, Podman};
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
echo x > /proc/self/root/tmp/via-proc
mkdir /proc/self/cwd/dir-via-proc
ln -s /tmp /dev/t
echo y > /dev/t/via-dev
echo z > /dev/newfile
echo n > /dev/null
/proc/self/root/bin/busybox touch /tmp/procroot-exec
/bin/attack memfd
/bin/attack race
mkdir -p /a/b/c; ln -s /etc /a/proc; ln -s /a/b/c /tmp/l
echo dotdot >> /tmp/l/../../proc/dotdot-victim
rm /dev/stdout; ln -s /tmp/stdout-victim /dev/stdout; echo replaced >> /dev/stdout
mkdir -p /tmp/j/proc; cp /bin/busybox /tmp/j/touch; chroot /tmp/j /touch /proc/chroot-made
echo old > /tmp/j/existing; cp /bin/busybox /tmp/j/sh; chroot /tmp/j /sh -c 'echo new >> /existing'
(cd / && /bin/attack chrootrel /data data2/../etc/chrootrel-victim); echo chrootrel=$?
echo core_limit=$(ulimit -c); ulimit -c unlimited 2>/dev/null; echo raised=$?
cd /tmp; sh -c 'kill -SEGV $$'; ls /tmp | grep -c '^core' | sed 's/^/cores=/'
"#;

/// The attacks that need more than a shell: a program run from a memfd
/// (`execveat` of a descriptor whose file is no name), and a thread that
/// makes the page holding a path unreadable and readable again while
/// another creates files with it (a call the observer could not read
/// must not go through).
const ATTACK_C: &str = r#"
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static char *page;
static volatile int done;

static void *flip(void *arg) {
    (void)arg;
    while (!done) {
        mprotect(page, 4096, PROT_NONE);
        for (volatile int i = 0; i < 300; i++) {}
        mprotect(page, 4096, PROT_READ);
        for (volatile int i = 0; i < 300; i++) {}
    }
    return 0;
}

static char *buf;

static void *swap(void *arg) {
    (void)arg;
    while (!done) {
        strcpy(buf, "/dev/null");
        for (volatile int i = 0; i < 300; i++) {}
        strcpy(buf, "/tmp/rf/x");
        for (volatile int i = 0; i < 300; i++) {}
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "swap") == 0) {
        buf = malloc(64);
        strcpy(buf, "/tmp/rf/x");
        mkdir("/tmp/rf", 0755);
        pthread_t t;
        pthread_create(&t, 0, swap, 0);
        int made = 0, tries = 500;
        char to[64];
        for (int i = 0; i < tries; i++) {
            int fd = syscall(SYS_openat, AT_FDCWD, buf, O_WRONLY | O_CREAT | O_EXCL, 0644);
            if (fd >= 0) {
                close(fd);
                sprintf(to, "/tmp/rf/%d", i);
                if (rename("/tmp/rf/x", to) == 0) made++;
            }
        }
        done = 1;
        pthread_join(t, 0);
        printf("swap_tries=%d swap_made=%d\n", tries, made);
        return 0;
    }
    if (argc > 3 && strcmp(argv[1], "chrootrel") == 0) {
        // Into a chroot without a chdir: a relative path climbs out of
        // another mount of the same folder by `..`.
        if (chroot(argv[2]) != 0) return 4;
        int fd = open(argv[3], O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd < 0) return 5;
        write(fd, "x\n", 2);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "memfd") == 0) {
        int src = open("/bin/busybox", O_RDONLY);
        struct stat st;
        fstat(src, &st);
        int m = memfd_create("prog", 0);
        off_t off = 0;
        while (off < st.st_size) {
            if (sendfile(m, src, &off, st.st_size - off) <= 0) return 2;
        }
        char *args[] = {"memfd-touch", "touch", "/tmp/memfd-ran", 0};
        char *env[] = {0};
        syscall(SYS_execveat, m, "", args, env, AT_EMPTY_PATH);
        return 3;
    }
    int m = memfd_create("path", 0);
    ftruncate(m, 4096);
    char *w = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, m, 0);
    page = mmap(0, 4096, PROT_READ, MAP_SHARED, m, 0);
    mkdir("/tmp/race", 0755);
    pthread_t t;
    pthread_create(&t, 0, flip, 0);
    int made = 0;
    for (int i = 0; i < 2000; i++) {
        sprintf(w, "/tmp/race/%d", i);
        int fd = syscall(SYS_openat, AT_FDCWD, page, O_WRONLY | O_CREAT, 0644);
        if (fd >= 0) {
            made++;
            close(fd);
        }
    }
    done = 1;
    pthread_join(t, 0);
    printf("race_made=%d\n", made);
    return 0;
}
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
    let wrapper = node_runtime(&ws.root, "", &policies, &audit);
    let pm = Podman::at(&ws.root, wrapper);
    if !pm.usable() {
        return;
    }
    assert!(
        std::path::Path::new("/usr/bin/env").exists(),
        "the host has /usr/bin/env"
    );
    let src = ws.root.join("attack.c");
    std::fs::write(&src, ATTACK_C).unwrap();
    let bin = ws.root.join("attack");
    let o = Command::new("gcc")
        .args(["-static", "-O1", "-pthread", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .expect("needs gcc and libc6-dev (apt-get install gcc libc6-dev)");
    assert!(o.status.success(), "gcc: {}", stderr(&o));
    let image = "localhost/paddock-test-watched:1";
    image_as(&pm, image, &|r| {
        for a in ["mv", "rm", "ln", "touch", "cp", "chroot"] {
            std::os::unix::fs::symlink("busybox", r.join("bin").join(a)).unwrap();
        }
        std::fs::copy(&bin, r.join("bin/attack")).unwrap();
    });
    // An engine's startContainer hook: the image's program, run in the
    // container before the first one.
    let hooks = ws.root.join("hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    std::fs::write(
        hooks.join("start.json"),
        r#"{"version":"1.0.0","hook":{"path":"/bin/sh","args":["sh","-c","echo h > /tmp/hook-file"]},"when":{"always":true},"stages":["startContainer"]}"#,
    )
    .unwrap();
    let vol = ws.root.join("vol");
    std::fs::create_dir_all(&vol).unwrap();
    let vol_a = format!("{}:/data", vol.display());
    let vol_b = format!("{}:/data2", vol.display());
    let args = [
        "-v",
        &vol_a,
        "-v",
        &vol_b,
        "--network",
        "none",
        "--annotation",
        "io.paddock.policy=watched",
        "--annotation",
        "io.kubernetes.pod.name=watched-pod",
    ];

    // 1. The first process (after the hook).
    let o = pm
        .cmd()
        .arg("--hooks-dir")
        .arg(&hooks)
        .args([
            "run",
            "-d",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ])
        .args(args)
        .arg(image)
        .args([
            "sh",
            "-c",
            &format!("{FIRST}\necho first-done\nexec sleep 60"),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let id = stdout(&o).trim().to_string();
    assert!(
        wait_until(std::time::Duration::from_secs(30), || {
            stdout(&pm.cmd().args(["logs", &id]).output().unwrap()).contains("first-done")
        }),
        "the first process did not finish its script"
    );
    // The files the race made, as the container has them.
    let o = pm
        .cmd()
        .args(["exec", &id, "ls", "/tmp/race"])
        .output()
        .unwrap();
    let raced: Vec<String> = stdout(&o)
        .lines()
        .map(|l| format!("/tmp/race/{l}"))
        .collect();
    // 2. `podman exec` into it.
    let o = pm.exec(&id, &["sh", "-c", FROM_EXEC]);
    let exec_out = stdout(&o);
    assert!(o.status.success(), "{exec_out}{}", stderr(&o));
    // 3. A thread swapping the path between a device and a file while
    //    another creates with it: every call has its record (with what the
    //    observer read: a record may be wrong, none is left out).
    let o = pm.exec(&id, &["/bin/attack", "swap"]);
    let swap_out = stdout(&o);
    assert!(o.status.success(), "{swap_out}{}", stderr(&o));
    assert_eq!(
        exec_out
            .lines()
            .find_map(|l| l.strip_prefix("exec_listeners=")),
        Some("0"),
        "{exec_out}"
    );
    // The daemon's CPU is the container's (what the container makes it
    // do counts against the container's limit), where cgroups are made.
    let inspect = pm
        .cmd()
        .args(["inspect", "--format", "{{.State.Pid}}", &id])
        .output()
        .unwrap();
    let first: i32 = stdout(&inspect).trim().parse().unwrap();
    let daemon = events(&audit, &id)
        .iter()
        .find_map(|e| e["data"]["proxy_pid"].as_i64())
        .expect("session.start names the daemon");
    let cpu_group = |pid: i64| {
        std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .unwrap_or_default()
            .lines()
            .find(|l| {
                l.split(':')
                    .nth(1)
                    .is_some_and(|c| c.split(',').any(|c| c == "cpu"))
            })
            .map(|l| l.rsplit(':').next().unwrap_or("").to_string())
    };
    if running_as_root() {
        if let Some(g) = cpu_group(i64::from(first)) {
            assert_eq!(cpu_group(daemon), Some(g), "the daemon's CPU group");
        }
    }
    let o = pm.cmd().args(["logs", &id]).output().unwrap();
    let out = stdout(&o);
    pm.remove(&id);
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
    let sh = evs
        .iter()
        .find(|e| {
            e["kind"] == "process.exec"
                && e["data"]["path"] == "/bin/sh"
                && e["data"]["argv"][2]
                    .as_str()
                    .is_some_and(|a| a.contains("first-done"))
        })
        .expect(&text);
    assert_eq!(sh["data"]["argv"][0], "sh", "{sh}");
    let denied = find(&evs, "syscall.denied", "syscall", "mount").expect(&text);
    assert_eq!(denied["allowed"], false, "{denied}");
    // Through the process's own links in /proc, and in /dev: files all.
    for (kind, path) in [
        ("file.create", "/tmp/via-proc"),
        ("file.create", "/tmp/dir-via-proc"),
        // /dev/t is a link to /tmp: the file the kernel reaches.
        ("file.create", "/tmp/via-dev"),
        ("file.create", "/dev/newfile"),
        ("file.create", "/tmp/hook-file"),
    ] {
        assert!(
            find(&evs, kind, "path", path).is_some(),
            "{kind} {path}: {text}"
        );
    }
    // A file that was there, changed from inside a chroot: a change.
    assert!(
        find(&evs, "file.modify", "path", "/tmp/j/existing").is_some(),
        "{text}"
    );
    assert!(out.lines().any(|l| l == "chrootrel=0"), "{out}");
    // No core dumps (the kernel writes them with no call to observe).
    assert!(out.lines().any(|l| l == "core_limit=0"), "{out}");
    assert!(out.lines().any(|l| l == "raised=1"), "{out}");
    assert!(out.lines().any(|l| l == "cores=0"), "{out}");
    // A kernel interface is recorded, and said to be one.
    let null = find(&evs, "file.modify", "path", "/dev/null").expect(&text);
    assert_eq!(null["data"]["file_type"], "kernel", "{null}");
    // A `..` after a link, the container's own /dev/stdout replaced, a
    // chroot: each write has its record, with the file the kernel
    // reached (links followed first, `..` after them, the chroot shown).
    for path in [
        "/etc/dotdot-victim",
        "/tmp/stdout-victim",
        "/tmp/j/proc/chroot-made",
        // `..` from /data2, another mount of the chroot's /data.
        "/etc/chrootrel-victim",
    ] {
        assert!(
            evs.iter().any(
                |e| e["kind"].as_str().is_some_and(|k| k.starts_with("file."))
                    && e["data"]["path"] == path
            ),
            "{path}: {text}"
        );
    }
    // The swap: one record per open, whichever path the observer read.
    let tries: usize = swap_out
        .split_whitespace()
        .find_map(|w| w.strip_prefix("swap_tries="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{swap_out}"));
    let swap_exec = evs
        .iter()
        .find(|e| e["kind"] == "exec.start" && e["data"]["argv"][1] == "swap")
        .and_then(|e| e["data"]["exec_id"].as_u64())
        .expect(&text);
    let opens = evs
        .iter()
        .filter(|e| {
            e["data"]["exec_id"].as_u64() == Some(swap_exec)
                && e["data"]["syscall"] == "openat"
                && (e["data"]["path"] == "/tmp/rf/x" || e["data"]["path"] == "/dev/null")
        })
        .count();
    assert_eq!(opens, tries, "{swap_out}");
    // Programs started from a path through /proc, and from a memfd.
    for argv0 in ["/proc/self/root/bin/busybox", "memfd-touch"] {
        assert!(
            evs.iter()
                .any(|e| e["kind"] == "process.exec" && e["data"]["argv"][0] == argv0),
            "process.exec of {argv0}: {text}"
        );
    }
    // Every file the race made has its record.
    let made = out
        .lines()
        .find_map(|l| l.strip_prefix("race_made="))
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(made, raced.len(), "{out}");
    assert!(made > 0, "{out}");
    let unrecorded: Vec<&String> = raced
        .iter()
        .filter(|p| find(&evs, "file.create", "path", p).is_none())
        .collect();
    assert!(
        unrecorded.is_empty(),
        "{} of {made} files made without a record, e.g. {:?}",
        unrecorded.len(),
        unrecorded.first()
    );
    // The exec's file, under the exec's own id.
    let start = evs
        .iter()
        .find(|e| e["kind"] == "exec.start" && e["data"]["argv"][0] == "sh")
        .expect(&text);
    let exec_id = start["data"]["exec_id"].as_u64().expect("an exec id");
    let made = find(&evs, "file.create", "path", "/tmp/from-exec").expect(&text);
    assert_eq!(made["data"]["exec_id"].as_u64(), Some(exec_id), "{made}");
    // One writer: the log is in sequence, and an exec's start comes before
    // anything it did.
    let seqs: Vec<u64> = evs.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "the log's sequence numbers: {seqs:?}"
    );
    let first_of_exec = evs
        .iter()
        .position(|e| e["data"]["exec_id"].as_u64() == Some(exec_id))
        .unwrap();
    assert_eq!(evs[first_of_exec]["kind"], "exec.start", "{text}");
    // The first process's records carry no exec id.
    assert!(create["data"].get("exec_id").is_none(), "{create}");
    assert!(
        evs.iter().any(|e| e["kind"] == "session.stop"),
        "the daemon ended with the container: {text}"
    );
    pm.clean();
}
