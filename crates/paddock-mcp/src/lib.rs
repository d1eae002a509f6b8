//! `paddock mcp`: an MCP server over stdio whose tools act inside one
//! paddock session.
//!
//! The session is created on the first tool call that needs a sandbox
//! (`run_command`, `read_file`, `write_file`, `list_files`): a host that
//! launches the server at start-up pays for this process only. Every call
//! is attributed in the session's audit trail to its MCP request id (or to
//! the `toolCallId` the client puts in the request's `_meta`). File tools
//! run *inside* the sandbox (`cat`, `find`), so Landlock, mounts and
//! protected paths apply to them exactly as to commands.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, ContentBlock, RequestId, RequestMetaObject, ServerCapabilities, ServerConfig,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{schemars, tool, tool_handler, tool_router, ErrorData, ServerHandler, ServiceExt};
use serde::Deserialize;

use paddock_session::{Meta, Store};

use paddock_control as supervisor;
use paddock_plan::compile::HostFacts;
use paddock_plan::error::CliError;
use paddock_plan::{audit, compile, policy_files};
use paddock_reasons::Reason;

/// Output kept per stream (head and tail), bytes.
const OUTPUT_LIMIT: usize = 64 * 1024;
/// The largest file `read_file` returns.
const READ_LIMIT: usize = 1 << 20;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct RunCommand {
    /// A shell command line, run with `sh -c` (give this or `argv`).
    command: Option<String>,
    /// The program and its arguments, run without a shell.
    argv: Option<Vec<String>>,
    /// Working directory inside the sandbox (default: the workspace).
    cwd: Option<String>,
    /// Seconds before the command is killed (default 120, at most 3600).
    timeout_s: Option<u64>,
    /// Text given to the command on its standard input.
    stdin: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct ReadFile {
    /// Path inside the sandbox (relative: to the workspace).
    path: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct WriteFile {
    /// Path inside the sandbox (relative: to the workspace).
    path: String,
    /// The new content (the file is created or replaced).
    content: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct ListFiles {
    /// Folder inside the sandbox (default: the workspace).
    path: Option<String>,
    /// How deep to list (default 1, at most 5).
    depth: Option<u32>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct Nothing {}

struct State {
    store: Store,
    host: HostFacts,
    policy: Option<PathBuf>,
    session: Mutex<Option<Meta>>,
}

/// The server.
#[derive(Clone)]
pub struct Paddock {
    state: Arc<State>,
    #[allow(dead_code)]
    tool_router: ToolRouter<Self>,
}

fn failure(text: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(text.into())])
}

/// A file tool's answer: `ok(output)` when its command succeeded, else the
/// command's stderr (the sandbox's refusal, in its own words).
fn answer(
    r: Result<supervisor::Captured, String>,
    ok: impl FnOnce(&supervisor::Captured) -> String,
) -> CallToolResult {
    match r {
        Ok(c) if c.code == 0 => CallToolResult::success(vec![ContentBlock::text(ok(&c))]),
        Ok(c) => failure(String::from_utf8_lossy(&c.stderr).trim().to_string()),
        Err(e) => failure(e),
    }
}

fn caller(id: &RequestId, meta: &RequestMetaObject) -> paddock_audit::Caller {
    let from_meta = serde_json::to_value(meta).ok().and_then(|v| {
        ["toolCallId", "tool_call_id"]
            .iter()
            .find_map(|k| v[*k].as_str().map(str::to_string))
    });
    let mut c = audit::caller_from_env();
    c.tool_call_id = Some(from_meta.unwrap_or_else(|| {
        let id = serde_json::to_value(id).unwrap_or_default();
        format!(
            "mcp-{}",
            id.as_str().map(str::to_string).unwrap_or(id.to_string())
        )
    }));
    c.agent = c.agent.or(Some("mcp".into()));
    c
}

impl Paddock {
    /// The session, created on first use.
    fn session(&self) -> Result<Meta, CliError> {
        let mut g = self.state.session.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = g.as_ref() {
            return self
                .state
                .store
                .load(&m.id)
                .map_err(supervisor::session_err);
        }
        let inputs = paddock_session::Inputs {
            workspace: self.state.host.cwd.clone(),
            policy: self.state.policy.clone(),
            ..Default::default()
        };
        let flags = supervisor::session_flags(&inputs);
        let eff = policy_files::effective(
            &self.state.host,
            self.state.policy.as_deref(),
            Some(compile::flags_layer(&flags)?),
        )?;
        let meta = self
            .state
            .store
            .create(None, eff.hash(), eff.idle_timeout_s.value, inputs)
            .map_err(supervisor::session_err)?;
        *g = Some(meta.clone());
        Ok(meta)
    }

    /// Run `argv` in the session, off the async runtime.
    async fn run(
        &self,
        argv: Vec<String>,
        cwd: Option<String>,
        stdin: Vec<u8>,
        timeout: Duration,
        who: paddock_audit::Caller,
        limit: usize,
    ) -> Result<supervisor::Captured, String> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let meta = this
                .session()
                .map_err(|e| format!("{}: {}", e.code, e.message))?;
            let cwd = cwd.map(|c| {
                let p = PathBuf::from(c);
                if p.is_absolute() {
                    p
                } else {
                    meta.inputs.workspace.join(p)
                }
            });
            supervisor::exec_captured(
                &this.state.store,
                &meta,
                supervisor::CaptureRequest {
                    argv,
                    cwd: cwd.or_else(|| Some(meta.inputs.workspace.clone())),
                    caller: who,
                    stdin,
                    timeout,
                    limit,
                },
            )
            .map_err(|e| format!("{}: {}", e.code, e.message))
        })
        .await
        .map_err(|e| format!("internal error: {e}"))?
    }

    /// A file tool's command: one minute at most, no working directory,
    /// output kept whole up to twice `READ_LIMIT`.
    async fn file_op(
        &self,
        argv: Vec<String>,
        stdin: Vec<u8>,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<supervisor::Captured, String> {
        let who = caller(&ctx.id, &ctx.meta);
        // Twice the largest file: a whole read never loses its middle.
        let limit = 2 * READ_LIMIT;
        self.run(argv, None, stdin, Duration::from_secs(60), who, limit)
            .await
    }

    fn workspace_path(&self, p: &str) -> String {
        // `.` components go; `..` stays for the sandbox to resolve.
        let joined: PathBuf = self.state.host.cwd.join(p).components().collect();
        joined.display().to_string()
    }
}

/// A tool argument that becomes a path: no NUL byte (invalid params,
/// naming the field).
fn no_nul(value: &str, field: &str) -> Result<(), ErrorData> {
    paddock_protocol::check_no_nul(value, field)
        .map_err(|e| ErrorData::invalid_params(e.to_string(), None))
}

#[tool_router]
impl Paddock {
    fn new(state: State) -> Paddock {
        Paddock {
            state: Arc::new(state),
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        description = "Run a command inside the paddock sandbox (its files, network and limits as the policy says). Give `command` (a shell line) or `argv`. Returns the exit code, stdout and stderr (long output is cut in the middle)."
    )]
    async fn run_command(
        &self,
        ctx: RequestContext<RoleServer>,
        Parameters(a): Parameters<RunCommand>,
    ) -> Result<CallToolResult, ErrorData> {
        let (argv, field) = match (a.command, a.argv) {
            (Some(c), None) => (vec!["sh".into(), "-c".into(), c], "command"),
            (None, Some(v)) if !v.is_empty() => (v, "argv"),
            _ => {
                return Err(ErrorData::invalid_params(
                    "give exactly one of `command` (a shell line) or `argv` (a non-empty list)",
                    None,
                ))
            }
        };
        // Validated, not repaired: a NUL byte would cut the command short.
        let checked = if field == "command" {
            paddock_protocol::check_no_nul(&argv[2], "command")
        } else {
            paddock_protocol::check_argv(&argv, "argv")
        }
        .and_then(|()| match &a.cwd {
            Some(c) => paddock_protocol::check_no_nul(c, "cwd"),
            None => Ok(()),
        });
        if let Err(e) = checked {
            return Err(ErrorData::invalid_params(e.to_string(), None));
        }
        let timeout = Duration::from_secs(a.timeout_s.unwrap_or(120).clamp(1, 3600));
        let stdin = a.stdin.unwrap_or_default().into_bytes();
        match self
            .run(
                argv,
                a.cwd,
                stdin,
                timeout,
                caller(&ctx.id, &ctx.meta),
                OUTPUT_LIMIT,
            )
            .await
        {
            Ok(c) => {
                let body = serde_json::json!({
                    "exit_code": c.code,
                    "timed_out": c.timed_out,
                    "stdout": String::from_utf8_lossy(&c.stdout),
                    "stderr": String::from_utf8_lossy(&c.stderr),
                    "truncated_bytes": c.truncated,
                });
                let text = serde_json::to_string_pretty(&body).unwrap_or_default();
                Ok(if c.code == 0 {
                    CallToolResult::success(vec![ContentBlock::text(text)])
                } else {
                    CallToolResult::error(vec![ContentBlock::text(text)])
                })
            }
            Err(e) => Ok(failure(e)),
        }
    }

    #[tool(
        description = "Read a text file as the sandbox sees it (at most 1 MiB). Paths the sandbox cannot read are refused with the reason."
    )]
    async fn read_file(
        &self,
        ctx: RequestContext<RoleServer>,
        Parameters(a): Parameters<ReadFile>,
    ) -> Result<CallToolResult, ErrorData> {
        no_nul(&a.path, "path")?;
        let path = self.workspace_path(&a.path);
        let argv = vec![
            "head".into(),
            "-c".into(),
            READ_LIMIT.to_string(),
            "--".into(),
            path,
        ];
        let r = self.file_op(argv, Vec::new(), &ctx).await;
        Ok(answer(r, |c| {
            String::from_utf8_lossy(&c.stdout).into_owned()
        }))
    }

    #[tool(
        description = "Create or replace a file inside the sandbox. Folders that are read-only, protected or not mounted refuse it."
    )]
    async fn write_file(
        &self,
        ctx: RequestContext<RoleServer>,
        Parameters(a): Parameters<WriteFile>,
    ) -> Result<CallToolResult, ErrorData> {
        no_nul(&a.path, "path")?;
        let path = self.workspace_path(&a.path);
        let argv = vec![
            "sh".into(),
            "-c".into(),
            "cat > \"$1\"".into(),
            "write_file".into(),
            path.clone(),
        ];
        let n = a.content.len();
        let r = self.file_op(argv, a.content.into_bytes(), &ctx).await;
        Ok(answer(r, |_| format!("wrote {n} bytes to {path}")))
    }

    #[tool(
        description = "List a folder inside the sandbox: one line per entry, `TYPE SIZE PATH` (TYPE f file, d folder, l link)."
    )]
    async fn list_files(
        &self,
        ctx: RequestContext<RoleServer>,
        Parameters(a): Parameters<ListFiles>,
    ) -> Result<CallToolResult, ErrorData> {
        no_nul(a.path.as_deref().unwrap_or("."), "path")?;
        let path = self.workspace_path(a.path.as_deref().unwrap_or("."));
        let depth = a.depth.unwrap_or(1).clamp(1, 5);
        let argv = vec![
            "find".into(),
            path,
            "-mindepth".into(),
            "1".into(),
            "-maxdepth".into(),
            depth.to_string(),
            "-printf".into(),
            "%y %s %p\\n".into(),
        ];
        let r = self.file_op(argv, Vec::new(), &ctx).await;
        Ok(answer(r, |c| {
            let mut lines: Vec<&str> = std::str::from_utf8(&c.stdout)
                .unwrap_or("")
                .lines()
                .collect();
            // By path (the third field).
            lines.sort_by_key(|l| l.splitn(3, ' ').nth(2).map(str::to_string));
            lines.join("\n")
        }))
    }

    #[tool(
        description = "What the session changed in `cow` mounts (the workspace when the policy says `workspace = \"cow\"`), as a unified diff, for review before `paddock apply`."
    )]
    async fn workspace_diff(
        &self,
        Parameters(_): Parameters<Nothing>,
    ) -> Result<CallToolResult, ErrorData> {
        let this = self.clone();
        let text = tokio::task::spawn_blocking(move || {
            let g = this.state.session.lock().unwrap_or_else(|e| e.into_inner());
            let Some(m) = g.as_ref() else {
                return "no session yet: nothing has run".to_string();
            };
            match paddock_session::cow::changes(
                &this.state.store.dir(&m.id),
                &supervisor::session_protected(m),
            ) {
                Ok(c) if c.is_empty() => {
                    "no changes in cow mounts (a rw workspace is changed in place)".to_string()
                }
                Ok(c) => c.iter().map(paddock_session::cow::unified).collect(),
                Err(e) => format!("cannot read the changes: {e}"),
            }
        })
        .await
        .unwrap_or_else(|e| format!("internal error: {e}"));
        Ok(CallToolResult::success(vec![ContentBlock::text(text)]))
    }

    #[tool(
        description = "The session behind these tools: id, state, policy hash, mounts, network rules, limits, and where its audit trail is. Starts nothing."
    )]
    async fn session_info(
        &self,
        Parameters(_): Parameters<Nothing>,
    ) -> Result<CallToolResult, ErrorData> {
        let this = self.clone();
        let v = tokio::task::spawn_blocking(move || {
            let g = this.state.session.lock().unwrap_or_else(|e| e.into_inner());
            match g.as_ref().and_then(|m| this.state.store.load(&m.id).ok()) {
                None => serde_json::json!({"session": null, "note": "no session yet: the first command creates it"}),
                Some(m) => {
                    let summary: Option<serde_json::Value> = std::fs::read(this.state.store.dir(&m.id).join("summary.json"))
                        .ok()
                        .and_then(|d| serde_json::from_slice(&d).ok());
                    serde_json::json!({
                        "session": m.id,
                        "state": m.liveness(),
                        "policy_hash": m.policy_hash,
                        "workspace": m.inputs.workspace,
                        "commands": m.commands,
                        "audit_trail": this.state.store.dir(&m.id).join("audit.jsonl"),
                        "sandbox": summary,
                    })
                }
            }
        })
        .await
        .unwrap_or_default();
        Ok(CallToolResult::success(vec![ContentBlock::text(
            serde_json::to_string_pretty(&v).unwrap_or_default(),
        )]))
    }
}

#[tool_handler]
impl ServerHandler for Paddock {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(rmcp::model::Implementation::new(
                "paddock",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "Tools that act inside a paddock sandbox: commands and file access confined by \
             namespaces, Landlock and seccomp, network only as the policy allows, every action \
             recorded in an audit trail.",
            )
    }
}

/// stdin/stdout for the MCP service, with one addition: a line that is not
/// JSON gets the JSON-RPC parse error (-32700) it is owed, instead of
/// silence. Answers and errors share one writer, a line at a time.
fn guarded_stdio() -> (tokio::io::DuplexStream, tokio::io::DuplexStream) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let (svc_in, mut feed) = tokio::io::duplex(1 << 20);
    let (svc_out_w, svc_out_r) = tokio::io::duplex(1 << 20);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(256);
    let errors = tx.clone();
    tokio::spawn(async move {
        let mut input = tokio::io::BufReader::new(tokio::io::stdin());
        loop {
            // One line, bytes as they are, at most MAX_LINE of them kept.
            let mut line = Vec::new();
            let mut too_long = false;
            let mut ended = false;
            loop {
                let buf = match input.fill_buf().await {
                    Ok(b) => b,
                    Err(_) => {
                        ended = true;
                        break;
                    }
                };
                if buf.is_empty() {
                    ended = true;
                    break;
                }
                let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
                    Some(i) => (&buf[..i], Some(i + 1)),
                    None => (buf, None),
                };
                if !too_long {
                    if line.len() + chunk.len() > paddock_protocol::MAX_LINE {
                        too_long = true;
                        line.clear();
                    } else {
                        line.extend_from_slice(chunk);
                    }
                }
                let used = done.unwrap_or(buf.len());
                input.consume(used);
                if done.is_some() {
                    break;
                }
            }
            if ended && line.is_empty() && !too_long {
                break;
            }
            let l = paddock_protocol::classify_line(&line, too_long);
            match l {
                paddock_protocol::Line::Blank => {}
                paddock_protocol::Line::Json(text) => {
                    if feed
                        .write_all(format!("{text}\n").as_bytes())
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                other => {
                    if let Some(e) = other.error() {
                        let _ = errors.send(e.to_string()).await;
                    }
                }
            }
            if ended {
                break;
            }
        }
        // End of input: the service sees it and ends.
        let _ = feed.shutdown().await;
    });
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(svc_out_r).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if tx.send(line).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        let mut out = tokio::io::stdout();
        while let Some(line) = rx.recv().await {
            if out.write_all(format!("{line}\n").as_bytes()).await.is_err()
                || out.flush().await.is_err()
            {
                break;
            }
        }
    });
    (svc_in, svc_out_w)
}

/// Serve MCP on stdin/stdout until the client goes away; then stop the
/// session this server created.
pub fn serve(policy: Option<PathBuf>) -> Result<i32, CliError> {
    let host = HostFacts::current()?;
    let policy = policy.map(|p| if p.is_absolute() { p } else { host.cwd.join(p) });
    // A bad policy is an error now, not at the first tool call.
    policy_files::effective(&host, policy.as_deref(), None)?;
    let store = Store::locate(&host.home);
    let server = Paddock::new(State {
        store: store.clone(),
        host,
        policy,
        session: Mutex::new(None),
    });
    let state = server.state.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::new(Reason::HOST_IO_ERROR.code(), format!("runtime: {e}"), ""))?;
    let served = rt.block_on(async move {
        let running = server
            .serve(guarded_stdio())
            .await
            .map_err(|e| e.to_string())?;
        running.waiting().await.map_err(|e| e.to_string())?;
        Ok::<(), String>(())
    });
    // The client is gone: so is the sandbox (the record stays for review).
    let meta = state
        .session
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if let Some(m) = meta.and_then(|m| store.load(&m.id).ok()) {
        let _ = supervisor::stop(&store, &m);
    }
    served.map_err(|e| {
        CliError::new(
            Reason::MCP_TRANSPORT.code(),
            format!("MCP over stdio: {e}"),
            "start `paddock mcp` from an MCP host (it speaks JSON-RPC on stdin/stdout)",
        )
    })?;
    Ok(0)
}
