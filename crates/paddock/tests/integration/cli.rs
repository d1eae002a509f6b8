//! Bad input: precise errors, exit 125, nothing started or left behind.

use crate::util::*;

#[test]
fn bad_mount_flags_are_refused_precisely() {
    let ws = Ws::new();
    for (flag, code) in [
        ("/nonexistent-paddock-path:ro", "MOUNT_SOURCE_MISSING"),
        ("/usr:/proc/x:ro", "MOUNT_TARGET_INVALID"),
        ("/usr:relative:ro", "MOUNT_FLAG_INVALID"),
        ("/usr:/x:badmode", "MOUNT_FLAG_INVALID"),
    ] {
        let o = ws.sh(&["--mount", flag], "echo started");
        assert_eq!(o.status.code(), Some(125), "{flag}");
        assert!(stderr(&o).contains(code), "{flag}: {}", stderr(&o));
        assert!(stderr(&o).contains("fix:"), "{flag}: {}", stderr(&o));
        assert!(!stdout(&o).contains("started"));
    }
}

#[test]
fn bad_policy_file_points_at_line_and_starts_nothing() {
    let ws = Ws::new();
    let p = ws.root.join("policy.toml");
    std::fs::write(
        &p,
        "version = 1\n[filesystem]\nworkspace = \"rw\"\nmounts = 3\n",
    )
    .unwrap();
    let o = ws.sh(&["--policy", p.to_str().unwrap()], "echo started");
    assert_eq!(o.status.code(), Some(125));
    let err = stderr(&o);
    assert!(err.contains("policy.toml:4:1"), "{err}");
    assert!(!stdout(&o).contains("started"));
}

#[test]
fn policy_file_sets_workspace_mode_and_mounts() {
    let ws = Ws::new();
    let data = ws.outside.join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("x"), "data").unwrap();
    let p = ws.root.join("policy.toml");
    std::fs::write(
        &p,
        format!(
            "version = 1\n[filesystem]\nworkspace = \"ro\"\n[[filesystem.mount]]\npath = \"{}\"\ntarget = \"/data\"\nmode = \"ro\"\n",
            data.display()
        ),
    )
    .unwrap();
    let o = ws.sh(
        &["--policy", p.to_str().unwrap()],
        "cat /data/x; touch in-ws && echo WROTE",
    );
    assert_eq!(stdout(&o).trim(), "data", "{}", stderr(&o));
}

#[test]
fn missing_command_is_a_usage_error() {
    let ws = Ws::new();
    let o = ws.paddock().args(["run"]).output().unwrap();
    assert_eq!(o.status.code(), Some(125));
}

#[test]
fn doctor_json_reports_every_feature() {
    let ws = Ws::new();
    let o = ws.paddock().args(["doctor", "--json"]).output().unwrap();
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).expect("doctor --json prints JSON");
    let ids: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    for id in [
        "user_namespaces",
        "landlock",
        "seccomp",
        "overlayfs_userns",
        "cgroup_delegation",
        "tun",
    ] {
        assert!(ids.contains(&id), "{id} missing: {ids:?}");
    }
    let ll = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "landlock")
        .unwrap();
    assert!(ll["detail"].as_str().unwrap().starts_with("ABI "), "{ll}");
    // The two capabilities that decide how far a boundary reaches: who
    // refuses host unix sockets (and the Landlock ABI that could), and
    // whether the memory limit is one for the sandbox or one per process.
    let check = |id: &str| {
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no {id}: {v}"))
    };
    let sockets = check("unix_sockets");
    let detail = sockets["detail"].as_str().unwrap();
    assert!(
        detail.contains("NET_UNIX_HOST_SOCKET") && detail.contains("Landlock ABI"),
        "{sockets}"
    );
    let memory = check("memory_limit");
    let detail = memory["detail"].as_str().unwrap();
    // Root here has writable cgroup v1 memory groups; an unprivileged user
    // has none, and is told the limit is per process.
    let root = stdout(&std::process::Command::new("id").arg("-u").output().unwrap()).trim() == "0";
    if root {
        assert!(detail.contains("whole sandbox"), "{memory}");
    } else {
        assert!(detail.starts_with("per process"), "{memory}");
        assert!(
            memory["fix"]
                .as_str()
                .unwrap()
                .contains("systemd-run --user --scope"),
            "{memory}"
        );
    }
    assert_eq!(o.status.code(), Some(0));
}
