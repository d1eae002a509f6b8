//! The plain value the sandbox executes.
//!
//! A [`SandboxSpec`] is what every policy, flag and default compiles down to.
//! It holds no TOML, no layers and no provenance: the policy crate owns those.
//! The sandbox takes a spec, checks it against the host (sources exist, no
//! symlink escapes) and builds exactly what it says.

use std::ffi::OsString;
use std::path::PathBuf;

pub use paddock_types::{AuditLevel, IsolationLevel as Level, MountMode};

use serde::{Deserialize, Serialize};

/// One host path made visible inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountSpec {
    /// Absolute host path. It must not cross a symbolic link.
    pub source: PathBuf,
    /// Absolute path inside the sandbox.
    pub target: PathBuf,
    /// Access mode.
    pub mode: MountMode,
    /// Where this mount came from, for error messages ("--mount", "the
    /// current directory", "policy.toml:12").
    pub origin: String,
}

/// Everything the sandbox needs to run one command.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// The command and its arguments. `argv[0]` is looked up on the
    /// sandbox's `PATH` when it has no slash.
    pub argv: Vec<OsString>,
    /// The complete environment of the command (already scrubbed).
    pub env: Vec<(OsString, OsString)>,
    /// Working directory inside the sandbox.
    pub workdir: PathBuf,
    /// The user's home directory path; inside it is an empty private tmpfs,
    /// with only explicit mounts on top.
    pub home: PathBuf,
    /// Host paths to show, in any order (they are attached parents first).
    pub mounts: Vec<MountSpec>,
    /// Names, relative to the root of every writable mount, that stay
    /// read-only because the host acts on them by itself (`.git`,
    /// `.paddock`, `.envrc`, ...).
    pub protected: Vec<PathBuf>,
    /// Host paths inside mounts that `filesystem.deny` hides: (host path,
    /// path inside). Each is covered by an empty read-only file or folder.
    #[serde(default)]
    pub hidden: Vec<(PathBuf, PathBuf)>,
    /// Pathname unix sockets, as paths inside the sandbox, that commands
    /// may connect to though the sandbox did not create them (an
    /// ssh-agent the user forwards). Every other socket file that lies in
    /// a mount from the host is refused (`NET_UNIX_HOST_SOCKET`).
    #[serde(default)]
    pub unix_sockets: Vec<PathBuf>,
    /// Login files shown in the private home: (path inside, under `home`;
    /// text). Each is a brokered credential's copy of the tool's login
    /// file, with placeholders and never a secret, written owner-only
    /// (0600, new folders 0700) before any mount is attached.
    #[serde(default)]
    pub files: Vec<(PathBuf, String)>,
    /// Size cap of the private `/tmp` and of the private home, in MiB.
    pub tmp_size_mib: u64,
    /// Hostname inside the sandbox.
    pub hostname: String,
    /// When set, pid 1 listens on `127.0.0.1:PORT` inside the sandbox's
    /// network namespace and hands the listening socket to paddock, whose
    /// egress proxy accepts on it: the sandbox's only way out.
    #[serde(default)]
    pub proxy_port: Option<u16>,
    /// With a proxy port, at the levels with a network namespace: the
    /// sandbox also gets a TUN device (`paddock0`) as its default route for
    /// IPv4 and IPv6, and a resolver at its far end
    /// ([`paddock_types::transparent`]). pid 1 hands the device's
    /// descriptor to paddock after the listener, whose user-space network
    /// stack judges every connection on it as the proxy would: programs
    /// that ignore the proxy variables are judged too, not cut off.
    #[serde(default)]
    pub transparent: bool,
    /// Maximum number of processes and threads inside the sandbox
    /// (RLIMIT_NPROC, counted in the sandbox's own user namespace).
    #[serde(default)]
    pub pids_limit: Option<u64>,
    /// Maximum address space of each process, MiB (RLIMIT_AS).
    #[serde(default)]
    pub memory_limit_mib: Option<u64>,
    /// Session mode: `argv` is ignored and pid 1 serves exec requests on
    /// the control channel of [`crate::Running`] until told to stop.
    #[serde(default)]
    pub serve_execs: bool,
    /// Where `cow` mounts keep their upper layers on the host (one folder
    /// per mount, named by [`cow_key`]), so that changes outlive the
    /// sandbox for review; `None`: a private tmpfs, discarded at the end.
    #[serde(default)]
    pub cow_dir: Option<PathBuf>,
    /// What the sandbox's pid 1 observes and reports as [`crate::AuditRecord`]s
    /// (see `audit.rs`); at `Off` the observer records nothing and watches
    /// only `connect`, which it carries out itself (unix sockets).
    #[serde(default)]
    pub audit: AuditLevel,
    /// A name for what host tools see of this sandbox (the session id): it
    /// goes into the cgroup group's name, `paddock-<label>-…`.
    #[serde(default)]
    pub label: Option<String>,
    /// How the sandbox is built.
    #[serde(default)]
    pub level: Level,
    /// At level `no-userns`, the host folder that holds the private home
    /// and /tmp (as `home/` and `tmp/`), since nothing can be mounted; the
    /// command's HOME and TMPDIR point there.
    #[serde(default)]
    pub scratch_dir: Option<PathBuf>,
}

/// The folder name of a `cow` mount's layers under `cow_dir`: the target
/// path, hex-encoded (stable, unique, no separators).
pub fn cow_key(target: &std::path::Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    target
        .as_os_str()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The names kept read-only inside writable mounts unless a policy lifts
/// them: each is something the host runs or trusts on its own, so writing it
/// would let the sandbox plant code that runs outside.
pub const DEFAULT_PROTECTED: &[&str] = &[
    // git: hooks, core.fsmonitor, core.hooksPath and aliases in .git/config
    // run on the host at the user's next `git status` (nested repositories
    // too: git uses the nearest .git; a .git file points at a worktree's
    // or submodule's git directory, which is protected as well, and so is
    // the folder core.hooksPath names).
    ".git",
    // paddock: the project's own sandbox policy.
    ".paddock",
    // direnv: runs .envrc on `cd`.
    ".envrc",
    // VS Code: tasks.json (run on folder open), launch.json, settings.json
    // (terminal profiles, formatter paths) and mcp.json (MCP servers it
    // starts); the whole folder, so that it cannot be renamed away.
    ".vscode",
    // JetBrains IDEs: run configurations, external tools, startup tasks.
    ".idea",
    // Cursor: rules fed to its agent and .cursor/mcp.json servers.
    ".cursor",
    ".cursorrules",
    // Zed: tasks and settings (language servers, terminal).
    ".zed",
    // Neovim (exrc) and Vim: project start-up scripts.
    ".nvim.lua",
    ".nvimrc",
    ".exrc",
    // Dev containers: lifecycle commands run on the host when opened.
    ".devcontainer",
    ".devcontainer.json",
    // Claude Code: settings (hooks run shell commands), commands, agents,
    // and the project's MCP servers.
    ".claude",
    ".mcp.json",
    // Codex CLI and Gemini CLI: project configuration and MCP servers.
    ".codex",
    ".gemini",
    // pre-commit, lefthook and husky: hooks git runs on commit and push.
    ".pre-commit-config.yaml",
    "lefthook.yml",
    "lefthook.yaml",
    ".lefthook.yml",
    ".lefthook.yaml",
    "lefthook-local.yml",
    ".husky",
    // mise and asdf: tool versions to install and run, mise's tasks, hooks
    // and environment scripts.
    "mise.toml",
    ".mise.toml",
    "mise.local.toml",
    ".mise.local.toml",
    ".mise",
    ".config/mise",
    ".config/mise.toml",
    ".tool-versions",
];

/// Host files that hold secrets even though they live under the read-only
/// system tree; they are replaced by empty read-only files or folders.
/// (When paddock runs as root, uid 0 inside owns them, so read-only is not
/// enough.)
pub const HIDDEN_SYSTEM_PATHS: &[&str] = &[
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/ssl/private",
    "/etc/ssh/ssh_host_rsa_key",
    "/etc/ssh/ssh_host_ecdsa_key",
    "/etc/ssh/ssh_host_ed25519_key",
    "/etc/ssh/ssh_host_dsa_key",
    "/etc/security/opasswd",
    "/etc/NetworkManager/system-connections",
    "/etc/wpa_supplicant",
    "/etc/krb5.keytab",
    "/etc/docker",
    "/etc/libvirt",
];

/// Lexically normalise an absolute path (`.` dropped, `..` applied). Safe
/// for mount paths because every mount source is refused if it crosses a
/// symbolic link, so the lexical and the real path agree.
pub fn normalize(p: &std::path::Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

/// System folders shown read-only at the same path. A folder that is a
/// symbolic link on the host (`/bin -> usr/bin` on merged-/usr systems) is
/// recreated as the same link.
pub const SYSTEM_DIRS: &[&str] = &[
    "usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "opt",
];
