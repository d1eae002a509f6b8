//! The bundle's hooks (runtime-spec "POSIX-platform hooks"): programs the
//! engine has run at each step of a container's life, given the
//! container's state as JSON on their standard input.
//!
//! | stage | where it runs | when |
//! |---|---|---|
//! | `prestart`, `createRuntime` | the runtime, on the host | the namespaces made, before `pivot_root` |
//! | `createContainer` | the container's first process, in its namespaces (the path is the host's) | next, before `pivot_root` |
//! | `startContainer` | in the container (the path is the container's), **confined** as the container's program is | after `start`, before the program |
//! | `poststart` | the runtime, on the host (`start`) | once the program runs |
//! | `poststop` | the runtime, on the host (`delete`) | once the container is gone |
//!
//! Hooks are the engine's (podman's hooks.d, containerd's), run as the
//! runtime's user: they are trusted as the engine is. The one exception is
//! `startContainer`, whose program is found in the image: it runs with
//! the boundary of the container's program (no_new_privs, its
//! capabilities minus those that undo the boundary, the seccomp filters),
//! never with the runtime's privileges. A hook that fails or outlives its
//! `timeout` stops the container before it starts (the first four), or is
//! said in the runtime's log (`poststart`, `poststop`).

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// `hooks` of `config.json`.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(rename_all = "camelCase", default)]
pub struct Hooks {
    pub prestart: Vec<Hook>,
    pub create_runtime: Vec<Hook>,
    pub create_container: Vec<Hook>,
    pub start_container: Vec<Hook>,
    pub poststart: Vec<Hook>,
    pub poststop: Vec<Hook>,
}

/// One hook.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(default)]
pub struct Hook {
    pub path: String,
    pub args: Vec<String>,
    pub env: Vec<String>,
    /// Seconds; none: as long as it takes.
    pub timeout: Option<i64>,
}

impl Hooks {
    /// Every hook names an absolute path and a positive timeout, if any.
    pub fn check(&self) -> Result<(), String> {
        for (stage, list) in self.stages() {
            for (i, h) in list.iter().enumerate() {
                if !h.path.starts_with('/') {
                    return Err(format!(
                        "hooks.{stage}[{i}]: the path `{}` is not absolute: give the program's full path",
                        h.path
                    ));
                }
                if h.timeout.is_some_and(|t| t <= 0) {
                    return Err(format!(
                        "hooks.{stage}[{i}]: timeout {} is not a positive number of seconds",
                        h.timeout.unwrap_or(0)
                    ));
                }
            }
        }
        Ok(())
    }

    fn stages(&self) -> [(&'static str, &[Hook]); 6] {
        [
            ("prestart", &self.prestart),
            ("createRuntime", &self.create_runtime),
            ("createContainer", &self.create_container),
            ("startContainer", &self.start_container),
            ("poststart", &self.poststart),
            ("poststop", &self.poststop),
        ]
    }

    /// Whether the first process stops before `pivot_root` for the hooks
    /// (and learns its pid as the host sees it, which their state gives).
    pub fn any_before_start(&self) -> bool {
        !self.prestart.is_empty()
            || !self.create_runtime.is_empty()
            || !self.create_container.is_empty()
            || !self.start_container.is_empty()
    }
}

/// The state a hook reads on its standard input.
pub fn state(
    id: &str,
    status: &str,
    pid: i32,
    bundle: &str,
    annotations: &serde_json::Value,
) -> String {
    serde_json::json!({
        "ociVersion": "1.0.2",
        "id": id,
        "status": status,
        "pid": pid,
        "bundle": bundle,
        "annotations": annotations,
    })
    .to_string()
}

/// Run `hooks` of `stage` in order, each given `state`; the first that
/// fails, with what it said.
pub fn run(stage: &str, hooks: &[Hook], state: &str) -> Result<(), String> {
    for (i, h) in hooks.iter().enumerate() {
        run_one(h, state).map_err(|e| format!("hooks.{stage}[{i}] {}: {e}", h.path))?;
    }
    Ok(())
}

fn run_one(h: &Hook, state: &str) -> Result<(), String> {
    let mut cmd = Command::new(&h.path);
    if let Some((first, rest)) = h.args.split_first() {
        std::os::unix::process::CommandExt::arg0(&mut cmd, first);
        cmd.args(rest);
    }
    cmd.env_clear();
    for kv in &h.env {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    // A hook need not read its input: a closed pipe is not its failure.
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(state.as_bytes());
    }
    let mut err_pipe = child.stderr.take();
    let said = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(p) = err_pipe.as_mut() {
            let _ = p.take(4096).read_to_string(&mut s);
        }
        s
    });
    let deadline = h
        .timeout
        .map(|t| Instant::now() + Duration::from_secs(t.max(1) as u64));
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if deadline.is_some_and(|d| Instant::now() >= d) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "did not end within its timeout of {}s",
                    h.timeout.unwrap_or(0)
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(e.to_string()),
        }
    };
    if status.success() {
        return Ok(());
    }
    let said = said.join().unwrap_or_default();
    Err(format!("{status}: {}", said.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(script: &str, timeout: Option<i64>) -> Hook {
        Hook {
            path: "/bin/sh".into(),
            args: vec!["sh".into(), "-c".into(), script.into()],
            env: vec!["X=1".into()],
            timeout,
        }
    }

    #[test]
    fn a_hook_reads_the_state_and_its_failure_is_told() {
        let st = state("c1", "creating", 42, "/b", &serde_json::json!({}));
        run(
            "prestart",
            &[hook(r#"grep -q '"id":"c1"' && [ "$X" = 1 ]"#, None)],
            &st,
        )
        .unwrap();
        let e = run("prestart", &[hook("echo nope >&2; exit 3", None)], &st).unwrap_err();
        assert!(
            e.contains("hooks.prestart[0] /bin/sh") && e.contains("nope"),
            "{e}"
        );
        let e = run("poststop", &[hook("sleep 5", Some(1))], &st).unwrap_err();
        assert!(e.contains("timeout of 1s"), "{e}");
    }

    #[test]
    fn paths_are_absolute_and_timeouts_positive() {
        let mut h = Hooks::default();
        h.poststop.push(Hook {
            path: "x".into(),
            ..Hook::default()
        });
        assert!(h.check().unwrap_err().contains("hooks.poststop[0]"));
        h.poststop[0] = Hook {
            path: "/x".into(),
            timeout: Some(0),
            ..Hook::default()
        };
        assert!(h.check().unwrap_err().contains("timeout"));
    }
}
