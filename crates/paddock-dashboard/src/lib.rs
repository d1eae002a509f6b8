//! The local dashboard: one small page, served only on 127.0.0.1, only to
//! whoever holds the random token printed at start.
//!
//! A web server on the user's machine is reachable by every web page the
//! user visits (through the browser) and by every local process. So every
//! request must:
//!
//! - carry the token (`?token=` or `X-Paddock-Token`), compared in constant
//!   time: other local users and other browser tabs do not know it;
//! - name this server in `Host` (`127.0.0.1:PORT` or `localhost:PORT`):
//!   a page on `evil.example` that re-points its DNS name at 127.0.0.1
//!   (DNS rebinding) sends `Host: evil.example` and is refused;
//! - if it has an `Origin` (browsers send one with every POST and every
//!   cross-origin request), have this server's origin: a cross-site form
//!   or fetch is refused (CSRF). State-changing requests are POST only.
//!
//! Responses forbid framing, caching, referrers (the URL holds the token)
//! and any script but the page's own (`Content-Security-Policy`).
//!
//! The data comes from a [`Backend`] (the `paddock` binary provides it).

#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST, ORIGIN};
use hyper::{Method, Request, Response, StatusCode};
use paddock_reasons::Reason;

const INDEX: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// Where the dashboard's data comes from. Calls may block (they read the
/// session store); they run off the server's event loop.
pub trait Backend: Send + Sync + 'static {
    /// `paddock status --json`.
    fn status(&self) -> serde_json::Value;
    /// A session's audit events with a sequence number above `after`.
    fn events(&self, session: &str, after: u64) -> Vec<serde_json::Value>;
    /// A session's effective policy with provenance.
    fn policy(&self, session: &str) -> Result<serde_json::Value, String>;
    /// A session's `cow` changes as a unified diff.
    fn diff(&self, session: &str) -> Result<String, String>;
    /// Stop a session.
    fn stop(&self, session: &str) -> Result<String, String>;
    /// Collect ended sessions.
    fn gc(&self) -> Result<serde_json::Value, String>;
}

type Body = BoxBody<Bytes, Infallible>;

struct Ctx {
    token: String,
    port: u16,
    backend: Arc<dyn Backend>,
}

/// A 32-hex-digit secret from the kernel's random pool.
pub fn new_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Serve on `listener` (bound to 127.0.0.1) until Ctrl-C or SIGTERM.
pub fn serve(
    listener: std::net::TcpListener,
    token: String,
    backend: Arc<dyn Backend>,
) -> std::io::Result<()> {
    let port = listener.local_addr()?.port();
    listener.set_nonblocking(true)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let ctx = Arc::new(Ctx {
            token,
            port,
            backend,
        });
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        loop {
            let (stream, _) = tokio::select! {
                a = listener.accept() => a?,
                _ = tokio::signal::ctrl_c() => return Ok(()),
                _ = term.recv() => return Ok(()),
            };
            let _ = stream.set_nodelay(true);
            let ctx = ctx.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let ctx = ctx.clone();
                    async move { Ok::<_, Infallible>(handle(&ctx, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    })
}

fn full(status: StatusCode, ctype: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_str(ctype).unwrap_or(HeaderValue::from_static("text/plain")),
    );
    r
}

fn json(status: StatusCode, v: &serde_json::Value) -> Response<Body> {
    full(status, "application/json", v.to_string())
}

fn refuse(status: StatusCode, code: &str, why: &str) -> Response<Body> {
    json(status, &serde_json::json!({"error": code, "message": why}))
}

fn harden(mut r: Response<Body>) -> Response<Body> {
    let h = r.headers_mut();
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

fn query_param(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

fn same(a: &str, b: &str) -> bool {
    // Constant time in the length of the expected token.
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The guard every request passes: Host, Origin, token.
fn check(ctx: &Ctx, req: &Request<Incoming>) -> Result<(), Box<Response<Body>>> {
    let host = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let ours = [
        format!("127.0.0.1:{}", ctx.port),
        format!("localhost:{}", ctx.port),
    ];
    if !ours.iter().any(|o| o == host) {
        return Err(Box::new(refuse(
            StatusCode::FORBIDDEN,
            Reason::DASHBOARD_BAD_HOST.code(),
            "this dashboard answers only to 127.0.0.1 or localhost with its port (DNS rebinding guard)",
        )));
    }
    if let Some(origin) = req.headers().get(ORIGIN) {
        let o = origin.to_str().unwrap_or("");
        if !ours.iter().any(|h| o == format!("http://{h}")) {
            return Err(Box::new(refuse(
                StatusCode::FORBIDDEN,
                Reason::DASHBOARD_BAD_ORIGIN.code(),
                "requests from other sites are refused (CSRF guard)",
            )));
        }
    }
    let given = query_param(req, "token").or_else(|| {
        req.headers()
            .get("x-paddock-token")
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
    });
    if !given.is_some_and(|t| same(&t, &ctx.token)) {
        return Err(Box::new(refuse(
            StatusCode::UNAUTHORIZED,
            Reason::DASHBOARD_TOKEN_REQUIRED.code(),
            "open the URL `paddock dashboard` printed: it carries the token",
        )));
    }
    Ok(())
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

fn session_of(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/api/session/")?;
    let (id, what) = rest.split_once('/')?;
    (!id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    .then_some((id, what))
}

async fn handle(ctx: &Arc<Ctx>, req: Request<Incoming>) -> Response<Body> {
    if let Err(r) = check(ctx, &req) {
        return harden(*r);
    }
    let path = req.uri().path().to_string();
    let b = ctx.backend.clone();
    let r = match (req.method().clone(), path.as_str()) {
        (Method::GET, "/") => full(
            StatusCode::OK,
            "text/html; charset=utf-8",
            INDEX.replace("{{TOKEN}}", &ctx.token),
        ),
        (Method::GET, "/app.js") => full(StatusCode::OK, "text/javascript; charset=utf-8", APP_JS),
        (Method::GET, "/app.css") => full(StatusCode::OK, "text/css; charset=utf-8", APP_CSS),
        (Method::GET, "/api/status") => match blocking(move || b.status()).await {
            Some(v) => json(StatusCode::OK, &v),
            None => refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                Reason::DASHBOARD_ERROR.code(),
                "status failed",
            ),
        },
        (Method::GET, "/api/stream") => stream(ctx, query_param(&req, "session")),
        (Method::POST, "/api/gc") => match blocking(move || b.gc()).await {
            Some(Ok(v)) => json(StatusCode::OK, &v),
            Some(Err(e)) => refuse(StatusCode::CONFLICT, Reason::GC_FAILED.code(), &e),
            None => refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                Reason::DASHBOARD_ERROR.code(),
                "gc failed",
            ),
        },
        (m, p) => match (m, session_of(p)) {
            (Method::GET, Some((id, "policy"))) => {
                let id = id.to_string();
                match blocking(move || b.policy(&id)).await {
                    Some(Ok(v)) => json(StatusCode::OK, &v),
                    Some(Err(e)) => {
                        refuse(StatusCode::NOT_FOUND, Reason::SESSION_NOT_FOUND.code(), &e)
                    }
                    None => refuse(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        Reason::DASHBOARD_ERROR.code(),
                        "failed",
                    ),
                }
            }
            (Method::GET, Some((id, "diff"))) => {
                let id = id.to_string();
                match blocking(move || b.diff(&id)).await {
                    Some(Ok(t)) => full(StatusCode::OK, "text/plain; charset=utf-8", t),
                    Some(Err(e)) => {
                        refuse(StatusCode::NOT_FOUND, Reason::SESSION_NOT_FOUND.code(), &e)
                    }
                    None => refuse(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        Reason::DASHBOARD_ERROR.code(),
                        "failed",
                    ),
                }
            }
            (Method::GET, Some((id, "events"))) => {
                let id = id.to_string();
                let after = query_param(&req, "after")
                    .and_then(|a| a.parse().ok())
                    .unwrap_or(0);
                match blocking(move || b.events(&id, after)).await {
                    Some(v) => json(StatusCode::OK, &serde_json::Value::Array(v)),
                    None => refuse(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        Reason::DASHBOARD_ERROR.code(),
                        "failed",
                    ),
                }
            }
            (Method::POST, Some((id, "stop"))) => {
                let id = id.to_string();
                match blocking(move || b.stop(&id)).await {
                    Some(Ok(m)) => json(
                        StatusCode::OK,
                        &serde_json::json!({"ok": true, "message": m}),
                    ),
                    Some(Err(e)) => refuse(StatusCode::CONFLICT, Reason::STOP_FAILED.code(), &e),
                    None => refuse(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        Reason::DASHBOARD_ERROR.code(),
                        "failed",
                    ),
                }
            }
            (Method::GET | Method::POST, _) => refuse(
                StatusCode::NOT_FOUND,
                Reason::NOT_FOUND.code(),
                "no such page",
            ),
            _ => refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                Reason::METHOD_NOT_ALLOWED.code(),
                "GET or POST only",
            ),
        },
    };
    harden(r)
}

/// Server-sent events: `status` (whenever it changes, checked every
/// second) and, with `?session=ID`, that session's new `audit` events
/// (checked every 300 ms).
fn stream(ctx: &Arc<Ctx>, session: Option<String>) -> Response<Body> {
    let (mut tx, body) = http_body_util::channel::Channel::<Bytes, Infallible>::new(16);
    let backend = ctx.backend.clone();
    tokio::spawn(async move {
        let mut last_status = String::new();
        let mut after = 0u64;
        let mut tick = 0u32;
        loop {
            if tick.is_multiple_of(4) {
                let b = backend.clone();
                let Some(v) = blocking(move || b.status()).await else {
                    break;
                };
                // Compare without the collection time, which always moves.
                let mut cmp = v.clone();
                if let Some(o) = cmp.as_object_mut() {
                    o.remove("generated_at");
                }
                let key = cmp.to_string();
                if key != last_status {
                    last_status = key;
                    if tx
                        .send(Frame::data(Bytes::from(format!(
                            "event: status\ndata: {v}\n\n"
                        ))))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
            if let Some(id) = &session {
                let b = backend.clone();
                let id2 = id.clone();
                let evs = blocking(move || b.events(&id2, after))
                    .await
                    .unwrap_or_default();
                for e in evs {
                    after = after.max(e["seq"].as_u64().unwrap_or(after));
                    if tx
                        .send(Frame::data(Bytes::from(format!(
                            "event: audit\ndata: {e}\n\n"
                        ))))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
            // A comment line keeps proxies and the connection check alive.
            if tick.is_multiple_of(40)
                && tx
                    .send(Frame::data(Bytes::from_static(b": keep-alive\n\n")))
                    .await
                    .is_err()
            {
                break;
            }
            tick = tick.wrapping_add(1);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    let mut r = Response::new(body.boxed());
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    r
}

/// The address to bind: loopback only.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}
