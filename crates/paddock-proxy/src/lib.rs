//! paddock's egress proxy: the sandbox's only way out.
//!
//! The sandbox's network namespace has nothing but its own loopback. Its
//! pid 1 listens on `127.0.0.1:PORT` there and hands the listening socket to
//! paddock, which runs this proxy on it; `HTTP(S)_PROXY` point at it. So
//! every byte that leaves passes here, and every decision is made by
//! [`paddock_policy::decide_network`], the same function `paddock policy
//! explain` answers with.
//!
//! - `CONNECT host:port` and absolute-form `http://` requests are decided by
//!   domain pattern and port (deny wins; default deny). IP literals and
//!   names that resolve to loopback, private or link-local addresses are
//!   refused unless the policy names the address (DNS rebinding).
//! - Tunnels that are not inspected are checked for domain fronting: the
//!   TLS ClientHello's server name must be the CONNECT host.
//! - Hosts with a `[[network.rules]]` `inspect = true`, and every host with a
//!   brokered credential, are decrypted with a per-session CA, so method and
//!   path rules apply and credentials can be swapped.
//! - Credentials: inside the sandbox a variable holds a per-session
//!   placeholder. On the credential's host the placeholder is replaced by
//!   the real secret; that host receiving any *other* credential is refused
//!   (`NET_FOREIGN_CREDENTIAL`) — the prompt-injected attacker key never
//!   leaves; a placeholder sent to any other host is refused and never
//!   forwarded.
//! - Refusals are HTTP 403 with `X-Paddock-Reason: CODE` and the reason in
//!   the body, so an agent can read why. Every decision is an [`Event`].

#![forbid(unsafe_code)]

mod ca;
mod sni;

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, HOST};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use paddock_policy::{decide_network, Effective};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub use ca::SessionCa;
pub use sni::{parse_client_hello, Hello};

/// Errors setting the proxy up.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The session CA could not be created.
    #[error("session CA: {0}")]
    Ca(String),
    /// TLS configuration.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// I/O.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl ProxyError {
    fn ca(e: rcgen::Error) -> Self {
        ProxyError::Ca(e.to_string())
    }
}

/// A credential the proxy injects.
#[derive(Clone)]
pub struct Brokered {
    /// The only host the secret goes to.
    pub host: String,
    /// Header name, lower case.
    pub header: String,
    /// Optional value prefix (`Bearer`).
    pub scheme: Option<String>,
    /// What the sandbox sees.
    pub placeholder: String,
    /// The real secret (never logged, never shown to the sandbox).
    pub secret: String,
}

impl std::fmt::Debug for Brokered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Brokered")
            .field("host", &self.host)
            .field("header", &self.header)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// One network decision.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Unix time, milliseconds.
    pub ts_ms: u128,
    /// Target host.
    pub host: String,
    /// Target port.
    pub port: u16,
    /// HTTP method, when seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Path, when seen (inspected or plain HTTP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Allowed or refused.
    pub allowed: bool,
    /// Reason code.
    pub code: String,
    /// Bytes from the sandbox upstream.
    pub bytes_up: u64,
    /// Bytes from upstream to the sandbox.
    pub bytes_down: u64,
    /// Duration, milliseconds.
    pub duration_ms: u128,
}

/// Where events go.
pub type EventSink = Arc<dyn Fn(&Event) + Send + Sync>;

/// An event sink writing JSON lines to `w`.
pub fn jsonl_sink(w: Box<dyn Write + Send>) -> EventSink {
    let w = Mutex::new(w);
    Arc::new(move |e: &Event| {
        if let Ok(mut line) = serde_json::to_vec(e) {
            line.push(b'\n');
            let mut w = w.lock().unwrap_or_else(|p| p.into_inner());
            let _ = w.write_all(&line);
            let _ = w.flush();
        }
    })
}

/// Everything the proxy needs.
pub struct Config {
    /// The effective policy.
    pub policy: Arc<Effective>,
    /// Brokered credentials.
    pub credentials: Vec<Brokered>,
    /// The session CA (needed when any host is inspected).
    pub ca: Option<Arc<SessionCa>>,
    /// TLS to upstream servers.
    pub upstream_tls: Arc<rustls::ClientConfig>,
    /// Fixed name → address mappings, consulted before DNS (tests point
    /// names at servers they start on loopback).
    pub resolve: HashMap<String, SocketAddr>,
    /// Where decisions go.
    pub events: Option<EventSink>,
}

/// Headers that carry credentials: a request to a host with a brokered
/// credential that carries any of these with another value is refused.
const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "x-auth-token",
    "proxy-authorization",
];

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Client TLS trusting the system's roots plus `extra_pem` (PEM text).
pub fn upstream_tls(extra_pem: Option<&str>) -> Result<Arc<rustls::ClientConfig>, ProxyError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(c);
    }
    if let Some(pem) = extra_pem {
        for c in rustls_pemfile::certs(&mut pem.as_bytes()).flatten() {
            roots.add(c).map_err(|e| ProxyError::Tls(e.to_string()))?;
        }
    }
    let cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ProxyError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

type Body = BoxBody<Bytes, hyper::Error>;

fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

fn refuse(code: &str, why: &str) -> Response<Body> {
    let body = format!("paddock refused this request: {code}: {why}\n");
    let mut r = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = StatusCode::FORBIDDEN;
    let h = r.headers_mut();
    h.insert(
        "x-paddock-reason",
        HeaderValue::from_str(code).unwrap_or(HeaderValue::from_static("NET_REFUSED")),
    );
    h.insert(
        "content-type",
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

struct Ctx {
    cfg: Arc<Config>,
}

impl Ctx {
    fn emit(
        &self,
        host: &str,
        port: u16,
        req: Option<(&str, &str)>,
        (allowed, code, up, down): (bool, &str, u64, u64),
        start: Instant,
    ) {
        if let Some(sink) = &self.cfg.events {
            sink(&Event {
                ts_ms: now_ms(),
                host: host.to_string(),
                port,
                method: req.map(|r| r.0.to_string()),
                path: req.map(|r| r.1.to_string()),
                allowed,
                code: code.to_string(),
                bytes_up: up,
                bytes_down: down,
                duration_ms: start.elapsed().as_millis(),
            });
        }
    }

    /// Judge `host:port` by the policy, then resolve it — in that order: a
    /// lookup of a name the policy refuses would itself carry data out (DNS
    /// exfiltration). A refusal is recorded here. Ok: the address and the
    /// allowing reason code; Err: the refusing code and why.
    async fn admit(
        &self,
        host: &str,
        port: u16,
        start: Instant,
    ) -> Result<(SocketAddr, &'static str), (&'static str, String)> {
        let d = decide_network(&self.cfg.policy, host, port, None);
        let judged = if d.allowed {
            self.resolve(host, port).await.map(|a| (a, d.code))
        } else {
            Err((d.code, d.rule))
        };
        if let Err((code, _)) = &judged {
            self.emit(host, port, None, (false, code, 0, 0), start);
        }
        judged
    }

    /// Resolve `host:port`, refusing private targets the policy does not name.
    async fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, (&'static str, String)> {
        let addr = if let Some(a) = self.cfg.resolve.get(&host.to_ascii_lowercase()) {
            *a
        } else {
            let mut it = tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| ("NET_RESOLVE_FAILED", format!("cannot resolve {host}: {e}")))?;
            it.next()
                .ok_or(("NET_RESOLVE_FAILED", format!("{host} has no address")))?
        };
        // "Names it": an allow entry that is this very address (and port,
        // when the entry has one).
        let ip = addr.ip().to_string();
        let named = self
            .cfg
            .policy
            .net_allow
            .iter()
            .any(|a| match a.value.rsplit_once(':') {
                Some((h, p)) => h == ip && p.parse() == Ok(addr.port()),
                None => a.value == ip,
            });
        if is_private(addr.ip()) && !named {
            return Err((
                "NET_PRIVATE_ADDRESS",
                format!(
                    "{host} resolves to {}, a private or loopback address the policy does not name",
                    addr.ip()
                ),
            ));
        }
        Ok(addr)
    }

    fn must_inspect(&self, host: &str, port: u16) -> bool {
        let p = &self.cfg.policy;
        p.net_rules
            .iter()
            .any(|r| r.value.inspect && paddock_policy::pattern_matches(&r.value.host, host, port))
            || self
                .cfg
                .credentials
                .iter()
                .any(|c| c.host.eq_ignore_ascii_case(host))
    }

    /// Check and rewrite credentials for a request to `host`.
    fn broker(
        &self,
        host: &str,
        req: &mut Request<Incoming>,
    ) -> Result<(), (&'static str, String)> {
        let uri = req.uri().to_string();
        for c in self
            .cfg
            .credentials
            .iter()
            .filter(|c| !c.host.eq_ignore_ascii_case(host))
        {
            let in_headers = req.headers().values().any(|v| {
                v.as_bytes()
                    .windows(c.placeholder.len())
                    .any(|w| w == c.placeholder.as_bytes())
            });
            if in_headers || uri.contains(&c.placeholder) {
                return Err((
                    "NET_PLACEHOLDER_MISROUTED",
                    format!(
                        "the placeholder for {} may only be sent to {}",
                        c.header, c.host
                    ),
                ));
            }
        }
        let mine: Vec<&Brokered> = self
            .cfg
            .credentials
            .iter()
            .filter(|c| c.host.eq_ignore_ascii_case(host))
            .collect();
        if mine.is_empty() {
            return Ok(());
        }
        let mut names: Vec<String> = CREDENTIAL_HEADERS.iter().map(|s| s.to_string()).collect();
        names.extend(mine.iter().map(|c| c.header.to_ascii_lowercase()));
        names.sort();
        names.dedup();
        for name in names {
            let Ok(hn) = HeaderName::from_bytes(name.as_bytes()) else {
                continue;
            };
            let values: Vec<HeaderValue> = req.headers().get_all(&hn).iter().cloned().collect();
            if values.is_empty() {
                continue;
            }
            let mut replaced = Vec::new();
            for v in values {
                let v = v.to_str().unwrap_or("");
                let hit = mine.iter().find(|c| {
                    c.header.eq_ignore_ascii_case(&name)
                        && match &c.scheme {
                            Some(s) => {
                                v.strip_prefix(s.as_str()).map(str::trim_start)
                                    == Some(c.placeholder.as_str())
                            }
                            None => v == c.placeholder,
                        }
                });
                match hit {
                    Some(c) => {
                        let real = match &c.scheme {
                            Some(s) => format!("{s} {}", c.secret),
                            None => c.secret.clone(),
                        };
                        replaced.push(HeaderValue::from_str(&real).map_err(|_| ("NET_CREDENTIAL_INVALID", "the brokered secret is not a valid header value".to_string()))?);
                    }
                    None => {
                        return Err((
                            "NET_FOREIGN_CREDENTIAL",
                            format!("{host} only accepts the credential paddock brokers; this request carries another one in `{name}`"),
                        ))
                    }
                }
            }
            req.headers_mut().remove(&hn);
            for v in replaced {
                req.headers_mut().append(&hn, v);
            }
        }
        Ok(())
    }
}

fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_private(IpAddr::V4(v4)))
        }
    }
}

fn split_authority(auth: &str, default_port: u16) -> Option<(String, u16)> {
    if let Some(rest) = auth.strip_prefix('[') {
        let (h, tail) = rest.split_once(']')?;
        let port = match tail.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None => default_port,
        };
        return Some((h.to_string(), port));
    }
    match auth.rsplit_once(':') {
        Some((h, p)) => Some((h.to_string(), p.parse().ok()?)),
        None => Some((auth.to_string(), default_port)),
    }
}

/// Serve the proxy on `listener` until the runtime is dropped. One port
/// speaks both HTTP (forward proxy and CONNECT) and SOCKS5, told apart by
/// the first byte.
pub async fn serve(listener: tokio::net::TcpListener, cfg: Arc<Config>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        // Small request/response exchanges must not wait for Nagle's
        // algorithm against delayed ACKs (~40 ms each).
        let _ = stream.set_nodelay(true);
        let ctx = Arc::new(Ctx { cfg: cfg.clone() });
        tokio::spawn(async move {
            let mut first = [0u8; 1];
            if matches!(stream.peek(&mut first).await, Ok(1)) && first[0] == 5 {
                socks5(ctx, stream).await;
                return;
            }
            let svc = hyper::service::service_fn(move |req| {
                let ctx = ctx.clone();
                async move { Ok::<_, Infallible>(front(ctx, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades()
                .await;
        });
    }
}

/// Run the proxy on its own thread with a small runtime. The thread ends
/// with the process.
pub fn spawn_thread(
    listener: std::net::TcpListener,
    cfg: Config,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("paddock-proxy".into())
        .spawn(move || {
            rt.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => serve(l, Arc::new(cfg)).await,
                    Err(e) => eprintln!("paddock: proxy could not start: {e}"),
                }
            })
        })
}

/// The first request on a connection from the sandbox.
async fn front(ctx: Arc<Ctx>, mut req: Request<Incoming>) -> Response<Body> {
    let start = Instant::now();
    if req.method() == Method::CONNECT {
        let Some((host, port)) = req
            .uri()
            .authority()
            .and_then(|a| split_authority(a.as_str(), 443))
        else {
            return refuse("NET_BAD_REQUEST", "CONNECT needs host:port");
        };
        let addr = match ctx.admit(&host, port, start).await {
            Ok((a, _)) => a,
            Err((code, why)) => return refuse(code, &why),
        };
        let inspect = ctx.must_inspect(&host, port);
        if inspect && ctx.cfg.ca.is_none() {
            return refuse("NET_INSPECT_UNAVAILABLE", "inspection needs the session CA");
        }
        tokio::spawn(async move {
            let Ok(upgraded) = hyper::upgrade::on(&mut req).await else {
                return;
            };
            let io = TokioIo::new(upgraded);
            if inspect {
                mitm(ctx, io, host, port, addr).await;
            } else {
                tunnel(ctx, io, host, port, addr, start).await;
            }
        });
        return Response::new(empty());
    }
    // Absolute-form plain HTTP.
    let Some(auth) = req.uri().authority().map(|a| a.to_string()) else {
        return refuse(
            "NET_BAD_REQUEST",
            "this is a proxy: send absolute URLs or CONNECT",
        );
    };
    if req.uri().scheme_str() != Some("http") {
        return refuse(
            "NET_BAD_REQUEST",
            "only http:// URLs are proxied in plain form; use CONNECT for https",
        );
    }
    let Some((host, port)) = split_authority(&auth, 80) else {
        return refuse("NET_BAD_REQUEST", "bad host");
    };
    if let Some(h) = req.headers().get(HOST).and_then(|h| h.to_str().ok()) {
        if split_authority(h, 80).map(|(h, _)| h.to_ascii_lowercase())
            != Some(host.to_ascii_lowercase())
        {
            ctx.emit(&host, port, None, (false, "NET_HOST_MISMATCH", 0, 0), start);
            return refuse(
                "NET_HOST_MISMATCH",
                "the Host header names another host than the URL",
            );
        }
    }
    let addr = match ctx.admit(&host, port, start).await {
        Ok((a, _)) => a,
        Err((code, why)) => return refuse(code, &why),
    };
    forward(&ctx, req, &host, port, addr, None, start).await
}

/// Decide, broker and forward one HTTP request (plain, or inside an
/// inspected TLS connection when `tls` is set).
async fn forward(
    ctx: &Ctx,
    mut req: Request<Incoming>,
    host: &str,
    port: u16,
    addr: SocketAddr,
    tls: Option<Arc<rustls::ClientConfig>>,
    start: Instant,
) -> Response<Body> {
    let method = req.method().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let rq = Some((method.as_str(), path.as_str()));
    let d = decide_network(
        &ctx.cfg.policy,
        host,
        port,
        Some((&method, req.uri().path())),
    );
    if !d.allowed {
        ctx.emit(host, port, rq, (false, d.code, 0, 0), start);
        return refuse(d.code, &d.rule);
    }
    if let Err((code, why)) = ctx.broker(host, &mut req) {
        ctx.emit(host, port, rq, (false, code, 0, 0), start);
        return refuse(code, &why);
    }
    // Origin-form towards the server.
    *req.uri_mut() = match path.parse() {
        Ok(u) => u,
        Err(_) => return refuse("NET_BAD_REQUEST", "bad path"),
    };
    req.headers_mut().remove("proxy-connection");
    req.headers_mut().remove("proxy-authorization");
    let up = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0u64);
    let tcp = match connect_upstream(addr).await {
        Ok(s) => s,
        Err(e) => {
            ctx.emit(
                host,
                port,
                rq,
                (false, "NET_UPSTREAM_UNREACHABLE", 0, 0),
                start,
            );
            return bad_gateway(&format!("cannot reach {host}:{port}: {e}"));
        }
    };
    let resp = match tls {
        Some(cfg) => {
            let Ok(name) = rustls::pki_types::ServerName::try_from(host.to_string()) else {
                return refuse("NET_BAD_REQUEST", "bad host name");
            };
            let stream = match tokio_rustls::TlsConnector::from(cfg)
                .connect(name, tcp)
                .await
            {
                Ok(s) => s,
                Err(e) => {
                    ctx.emit(host, port, rq, (false, "NET_UPSTREAM_TLS", 0, 0), start);
                    return bad_gateway(&format!("TLS to {host} failed: {e}"));
                }
            };
            send(TokioIo::new(stream), req).await
        }
        None => send(TokioIo::new(tcp), req).await,
    };
    match resp {
        Ok(r) => {
            let down = r
                .headers()
                .get("content-length")
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .unwrap_or(0u64);
            ctx.emit(host, port, rq, (true, d.code, up, down), start);
            r.map(|b| b.boxed())
        }
        Err(e) => {
            ctx.emit(host, port, rq, (false, "NET_UPSTREAM_ERROR", up, 0), start);
            bad_gateway(&format!("{host}: {e}"))
        }
    }
}

async fn send<S>(io: TokioIo<S>, req: Request<Incoming>) -> Result<Response<Incoming>, hyper::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender.send_request(req).await
}

/// A connection to the real server, without Nagle's delay.
async fn connect_upstream(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect(addr).await?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

fn bad_gateway(why: &str) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(format!("paddock: {why}\n")))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = StatusCode::BAD_GATEWAY;
    r
}

/// A tunnel paddock does not decrypt: check the ClientHello's server name,
/// then copy bytes both ways.
async fn tunnel<S>(
    ctx: Arc<Ctx>,
    mut client: S,
    host: String,
    port: u16,
    addr: SocketAddr,
    start: Instant,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        match sni::parse_client_hello(&buf) {
            Hello::Incomplete if buf.len() < 16 * 1024 => {}
            Hello::Tls(Some(name)) if !name.eq_ignore_ascii_case(&host) => {
                ctx.emit(&host, port, None, (false, "NET_SNI_MISMATCH", 0, 0), start);
                return;
            }
            _ => break,
        }
        match client.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let Ok(mut upstream) = connect_upstream(addr).await else {
        ctx.emit(
            &host,
            port,
            None,
            (false, "NET_UPSTREAM_UNREACHABLE", 0, 0),
            start,
        );
        return;
    };
    if upstream.write_all(&buf).await.is_err() {
        return;
    }
    let (up, down) = tokio::io::copy_bidirectional(&mut client, &mut upstream)
        .await
        .unwrap_or((0, 0));
    ctx.emit(
        &host,
        port,
        None,
        (true, "NET_ALLOWED", up + buf.len() as u64, down),
        start,
    );
}

/// An inspected tunnel: terminate TLS with a leaf from the session CA,
/// then decide, broker and forward each request.
async fn mitm<S>(ctx: Arc<Ctx>, client: S, host: String, port: u16, addr: SocketAddr)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let start = Instant::now();
    let Some(ca) = ctx.cfg.ca.clone() else { return };
    let Ok(leaf) = ca.leaf(&host) else { return };
    let resolver = Arc::new(Fixed(leaf));
    let Ok(builder) = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
    else {
        return;
    };
    let mut scfg = builder.with_no_client_auth().with_cert_resolver(resolver);
    scfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(scfg));
    let Ok(tls) = acceptor.accept(client).await else {
        return;
    };
    let sni = tls.get_ref().1.server_name().map(str::to_ascii_lowercase);
    if sni
        .as_deref()
        .is_some_and(|s| !s.eq_ignore_ascii_case(&host))
    {
        ctx.emit(&host, port, None, (false, "NET_SNI_MISMATCH", 0, 0), start);
        return;
    }
    let upstream = ctx.cfg.upstream_tls.clone();
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let ctx = ctx.clone();
        let host = host.clone();
        let upstream = upstream.clone();
        async move {
            let start = Instant::now();
            let host_hdr = req
                .headers()
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .and_then(|h| split_authority(h, port));
            if host_hdr
                .as_ref()
                .is_some_and(|(h, _)| !h.eq_ignore_ascii_case(&host))
            {
                ctx.emit(&host, port, None, (false, "NET_HOST_MISMATCH", 0, 0), start);
                return Ok::<_, Infallible>(refuse(
                    "NET_HOST_MISMATCH",
                    "the Host header names another host than the tunnel",
                ));
            }
            Ok(forward(&ctx, req, &host, port, addr, Some(upstream), start).await)
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tls), svc)
        .await;
}

/// SOCKS5 (RFC 1928), CONNECT only, no authentication: for TCP that is not
/// HTTP (ssh, databases), under the same domain and port rules. Replies
/// "connection not allowed by ruleset" (2) on refusal.
async fn socks5(ctx: Arc<Ctx>, mut s: TcpStream) {
    let start = Instant::now();
    let mut head = [0u8; 2];
    if s.read_exact(&mut head).await.is_err() {
        return;
    }
    let mut methods = vec![0u8; usize::from(head[1])];
    if s.read_exact(&mut methods).await.is_err() {
        return;
    }
    if !methods.contains(&0) {
        let _ = s.write_all(&[5, 0xff]).await;
        return;
    }
    if s.write_all(&[5, 0]).await.is_err() {
        return;
    }
    let mut req = [0u8; 4];
    if s.read_exact(&mut req).await.is_err() {
        return;
    }
    let reply = |code: u8| [5, code, 0, 1, 0, 0, 0, 0, 0, 0];
    if req[0] != 5 || req[1] != 1 {
        let _ = s.write_all(&reply(7)).await; // command not supported
        return;
    }
    let host = match req[3] {
        1 => {
            let mut a = [0u8; 4];
            if s.read_exact(&mut a).await.is_err() {
                return;
            }
            std::net::Ipv4Addr::from(a).to_string()
        }
        3 => {
            let mut len = [0u8; 1];
            if s.read_exact(&mut len).await.is_err() {
                return;
            }
            let mut name = vec![0u8; usize::from(len[0])];
            if s.read_exact(&mut name).await.is_err() {
                return;
            }
            String::from_utf8_lossy(&name).into_owned()
        }
        4 => {
            let mut a = [0u8; 16];
            if s.read_exact(&mut a).await.is_err() {
                return;
            }
            std::net::Ipv6Addr::from(a).to_string()
        }
        _ => {
            let _ = s.write_all(&reply(8)).await;
            return;
        }
    };
    let mut p = [0u8; 2];
    if s.read_exact(&mut p).await.is_err() {
        return;
    }
    let port = u16::from_be_bytes(p);
    let Ok((addr, allowed_code)) = ctx.admit(&host, port, start).await else {
        let _ = s.write_all(&reply(2)).await;
        return;
    };
    let Ok(mut upstream) = connect_upstream(addr).await else {
        ctx.emit(
            &host,
            port,
            None,
            (false, "NET_UPSTREAM_UNREACHABLE", 0, 0),
            start,
        );
        let _ = s.write_all(&reply(5)).await;
        return;
    };
    if s.write_all(&reply(0)).await.is_err() {
        return;
    }
    let (up, down) = tokio::io::copy_bidirectional(&mut s, &mut upstream)
        .await
        .unwrap_or((0, 0));
    ctx.emit(&host, port, None, (true, allowed_code, up, down), start);
}

#[derive(Debug)]
struct Fixed(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for Fixed {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:4700::1111", "8.8.8.8"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn authorities() {
        assert_eq!(
            split_authority("a.com:8443", 443),
            Some(("a.com".into(), 8443))
        );
        assert_eq!(split_authority("a.com", 80), Some(("a.com".into(), 80)));
        assert_eq!(split_authority("[::1]:443", 80), Some(("::1".into(), 443)));
        assert_eq!(split_authority("a.com:x", 80), None);
    }

    #[test]
    fn session_ca_issues_leaves() {
        let ca = SessionCa::new("t").unwrap();
        assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        let a = ca.leaf("api.example.com").unwrap();
        let b = ca.leaf("api.example.com").unwrap();
        assert!(Arc::ptr_eq(&a, &b), "cached");
        assert_eq!(a.cert.len(), 2);
    }
}
