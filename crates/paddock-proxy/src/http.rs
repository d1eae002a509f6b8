//! HTTP on every path: the front door (forward proxy and `CONNECT`), plain
//! HTTP found inside a tunnel, and inspected TLS. Each request, however it
//! arrived, goes through [`forward`]: one `Host`, no framing ambiguity, a
//! canonical path, the method/path rules, brokering, and a scrubbed answer.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, HOST};
use hyper::Version;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use paddock_policy::{canonical_host, canonical_path, decide_network};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::broker::{self, Scrubbed};
use crate::judge::{Ctx, Lease, Outcome, Target, Via};
use crate::provider;
use paddock_reasons::Reason;

/// CONNECT: what is inside the tunnel, judged (and served as HTTP again
/// when it is inspected).
pub(crate) mod tunnel;

pub type Body = BoxBody<Bytes, hyper::Error>;

fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

pub fn refuse(code: &str, why: &str) -> Response<Body> {
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
        HeaderValue::from_str(code).unwrap_or(HeaderValue::from_static(Reason::NET_REFUSED.code())),
    );
    h.insert(
        "content-type",
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
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

/// `host[:port]` or `[v6][:port]`.
pub fn split_authority(auth: &str, default_port: u16) -> Option<(String, u16)> {
    if let Some(rest) = auth.strip_prefix('[') {
        let (h, tail) = rest.split_once(']')?;
        let port = match tail.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if tail.is_empty() => default_port,
            None => return None,
        };
        return Some((format!("[{h}]"), port));
    }
    match auth.rsplit_once(':') {
        Some((h, p)) => Some((h.to_string(), p.parse().ok()?)),
        None => Some((auth.to_string(), default_port)),
    }
}

fn http1(ctx: &Ctx) -> hyper::server::conn::http1::Builder {
    let l = &ctx.cfg.limits;
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(l.handshake)
        .max_buf_size(l.header_bytes.max(8192));
    b
}

/// The front door: HTTP from the sandbox to the proxy itself.
pub async fn serve_front<S>(ctx: Arc<Ctx>, stream: S, lease: Arc<Lease>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = {
        let ctx = ctx.clone();
        hyper::service::service_fn(move |req| {
            let ctx = ctx.clone();
            let lease = lease.clone();
            async move { Ok::<_, Infallible>(front(ctx, req, lease).await) }
        })
    };
    let _ = http1(&ctx)
        .serve_connection(TokioIo::new(stream), svc)
        .with_upgrades()
        .await;
}

async fn front(ctx: Arc<Ctx>, mut req: Request<Incoming>, lease: Arc<Lease>) -> Response<Body> {
    let start = Instant::now();
    if req.method() == Method::CONNECT {
        let Some((host, port)) = req
            .uri()
            .authority()
            .and_then(|a| split_authority(a.as_str(), 443))
        else {
            return refuse(Reason::NET_BAD_REQUEST.code(), "CONNECT needs host:port");
        };
        let target = match ctx.admit(&host, port, Via::Connect, start).await {
            Ok(t) => t,
            Err((code, why)) => return refuse(code, &why),
        };
        // The tunnel keeps the connection's lease: it counts against the
        // limit, goes idle and is evicted like any connection.
        tokio::spawn(async move {
            let Ok(upgraded) = hyper::upgrade::on(&mut req).await else {
                return;
            };
            let l = lease.clone();
            l.guard(tunnel::serve(
                ctx,
                target,
                TokioIo::new(upgraded),
                start,
                lease,
            ))
            .await;
        });
        return Response::new(empty());
    }
    // Absolute-form plain HTTP.
    let Some(auth) = req.uri().authority().map(|a| a.as_str().to_string()) else {
        return refuse(
            Reason::NET_BAD_REQUEST.code(),
            "this is a proxy: send absolute URLs or CONNECT",
        );
    };
    if req.uri().scheme_str() != Some("http") {
        return refuse(
            Reason::NET_BAD_REQUEST.code(),
            "only http:// URLs are proxied in plain form; use CONNECT for https",
        );
    }
    if auth.contains('@') {
        return refuse(
            Reason::NET_FOREIGN_CREDENTIAL.code(),
            "credentials in the URL are refused; paddock brokers credentials itself",
        );
    }
    let Some((host, port)) = split_authority(&auth, 80) else {
        return refuse(Reason::NET_BAD_REQUEST.code(), "bad host");
    };
    let target = match ctx.admit(&host, port, Via::Http, start).await {
        Ok(t) => t,
        Err((code, why)) => return refuse(code, &why),
    };
    // Addressed to the proxy, not the server.
    req.headers_mut().remove("proxy-authorization");
    forward_detached(ctx.clone(), req, target, None, start, lease.clone()).await
}

/// Plain HTTP found inside a tunnel (CONNECT or SOCKS5 to port 80, say):
/// judged request by request exactly like the forward proxy's.
pub async fn serve_plain<S>(ctx: Arc<Ctx>, t: Target, io: S, lease: Arc<Lease>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = {
        let ctx = ctx.clone();
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let ctx = ctx.clone();
            let t = t.clone();
            let lease = lease.clone();
            async move {
                Ok::<_, Infallible>(
                    forward_detached(ctx, req, t, None, Instant::now(), lease).await,
                )
            }
        })
    };
    let _ = http1(&ctx).serve_connection(TokioIo::new(io), svc).await;
}

/// An inspected tunnel: terminate TLS with a leaf from the session CA,
/// then judge, broker and forward each request.
pub async fn mitm<S>(ctx: Arc<Ctx>, t: Target, client: S, start: Instant, lease: Arc<Lease>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Some(ca) = ctx.cfg.ca.clone() else {
        ctx.emit_at(
            &t,
            Outcome::refused(Reason::NET_INSPECT_UNAVAILABLE.code(), None),
            start,
        );
        return;
    };
    let Ok(leaf) = ca.leaf(&t.host) else { return };
    let Ok(builder) = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
    else {
        return;
    };
    let mut scfg = builder
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Fixed(leaf)));
    scfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(scfg));
    let tls = match tokio::time::timeout(ctx.cfg.limits.handshake, acceptor.accept(client)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(_)) => return,
        Err(_) => {
            ctx.limit_hit(Reason::NET_LIMIT_HANDSHAKE.code());
            return;
        }
    };
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let upstream = ctx.upstream_tls.clone();
    let svc = {
        let ctx = ctx.clone();
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let ctx = ctx.clone();
            let t = t.clone();
            let upstream = upstream.clone();
            let lease = lease.clone();
            async move {
                Ok::<_, Infallible>(
                    forward_detached(ctx, req, t, Some(upstream), Instant::now(), lease).await,
                )
            }
        })
    };
    if h2 {
        // Each stream is one request, judged and brokered on its own.
        let l = &ctx.cfg.limits;
        // Few streams at once: each one opens its own server connection.
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .adaptive_window(true)
            .max_header_list_size(u32::try_from(l.header_bytes.min(16 << 10)).unwrap_or(u32::MAX))
            .max_concurrent_streams(16)
            .serve_connection(TokioIo::new(tls), svc)
            .await;
    } else {
        let _ = http1(&ctx)
            .serve_connection(TokioIo::new(tls), svc)
            .with_upgrades()
            .await;
    }
}

/// Check the request's framing and `Host`: exactly one `Host`, naming the
/// target; no `Content-Length` beside `Transfer-Encoding`; no transfer
/// coding but chunked. What two servers could read two ways is refused.
fn check_head(req: &hyper::http::request::Parts, t: &Target) -> Result<(), (&'static str, String)> {
    let mut hosts: Vec<&HeaderValue> = req.headers.get_all(HOST).iter().collect();
    // HTTP/2 names the host in `:authority` (checked below), `Host` is
    // optional there.
    let authority = req
        .uri
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok());
    if hosts.is_empty() && req.version == Version::HTTP_2 {
        if let Some(a) = &authority {
            hosts.push(a);
        }
    }
    let [h] = hosts.as_slice() else {
        return Err((
            Reason::NET_HOST_MISMATCH.code(),
            format!(
                "the request has {} Host headers; it needs exactly one",
                hosts.len()
            ),
        ));
    };
    let named = h
        .to_str()
        .ok()
        .and_then(|h| split_authority(h, t.port))
        .and_then(|(h, p)| canonical_host(&h).ok().map(|h| (h.to_string(), p)));
    if named != Some((t.host.clone(), t.port)) {
        return Err((
            Reason::NET_HOST_MISMATCH.code(),
            format!(
                "the Host header names another host than {}:{}",
                t.host, t.port
            ),
        ));
    }
    if let Some(auth) = req.uri.authority() {
        if auth.as_str().contains('@') {
            return Err((
                Reason::NET_FOREIGN_CREDENTIAL.code(),
                "credentials in the URL are refused; paddock brokers credentials itself".into(),
            ));
        }
        let same = split_authority(auth.as_str(), t.port)
            .and_then(|(h, p)| canonical_host(&h).ok().map(|h| (h.to_string(), p)));
        if same != Some((t.host.clone(), t.port)) {
            return Err((
                Reason::NET_HOST_MISMATCH.code(),
                "the request's URL names another host than its connection".into(),
            ));
        }
    }
    // Header names a lenient server could read as another
    // (`Transfer_Encoding`): only letters, digits and `-`.
    if let Some(odd) = req.headers.keys().find(|k| {
        !k.as_str()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    }) {
        return Err((
            Reason::NET_REQUEST_AMBIGUOUS.code(),
            format!("the header name `{odd}` (only letters, digits and `-`)"),
        ));
    }
    // What makes a server handle another method or path than the one judged.
    for h in [
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
        "x-original-url",
        "x-rewrite-url",
        "x-original-method",
    ] {
        if req.headers.contains_key(h) {
            return Err((
                Reason::NET_REQUEST_AMBIGUOUS.code(),
                format!("`{h}` would make the server see another request than the one judged"),
            ));
        }
    }
    if req.uri.query().is_some_and(|q| {
        q.split(['&', ';']).any(|p| {
            let k = p.split('=').next().unwrap_or(p);
            crate::broker::normalised_query_name(k) == "_method"
        })
    }) {
        return Err((
            Reason::NET_REQUEST_AMBIGUOUS.code(),
            "`_method=` would make the server see another method than the one judged".into(),
        ));
    }
    let te: Vec<&HeaderValue> = req.headers.get_all("transfer-encoding").iter().collect();
    let cl = req.headers.get_all("content-length").iter().count();
    if !te.is_empty() && cl > 0 {
        return Err((
            Reason::NET_REQUEST_AMBIGUOUS.code(),
            "Content-Length and Transfer-Encoding together".into(),
        ));
    }
    if (req.method == Method::GET || req.method == Method::HEAD)
        && (!te.is_empty()
            || req
                .headers
                .get("content-length")
                .is_some_and(|v| v.as_bytes() != b"0"))
    {
        // A server that ignores such a body reads it as a second request,
        // which nobody judged.
        return Err((
            Reason::NET_REQUEST_AMBIGUOUS.code(),
            format!("a body on {}", req.method),
        ));
    }
    if te.len() > 1
        || te
            .first()
            .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"chunked"))
    {
        return Err((
            Reason::NET_REQUEST_AMBIGUOUS.code(),
            "a transfer coding other than a single `chunked`".into(),
        ));
    }
    Ok(())
}

/// A refused request: reason code, why, and the path as seen.
type Refused = (&'static str, String, String);

/// Everything decided about one request before it is sent: its head, its
/// canonical path and method/path rules, brokering. The head is rewritten
/// in place to exactly what was judged. Ok: the canonical path and whether
/// a secret was put in.
fn judge_request(
    ctx: &Ctx,
    parts: &mut hyper::http::request::Parts,
    t: &Target,
    plaintext: bool,
) -> Result<(String, broker::Brokering), Refused> {
    let raw_path = parts.uri.path().to_string();
    let method = parts.method.to_string();
    if parts.method == Method::CONNECT {
        // A tunnel inside a judged connection would be a way around it.
        return Err((
            Reason::NET_BAD_REQUEST.code(),
            "CONNECT inside a connection paddock already admitted is refused".into(),
            raw_path,
        ));
    }
    check_head(parts, t).map_err(|(code, why)| (code, why, raw_path.clone()))?;
    let path = canonical_path(&raw_path).map_err(|why| {
        (
            Reason::NET_PATH_AMBIGUOUS.code(),
            format!("the path has {why}; servers read such paths differently"),
            raw_path.clone(),
        )
    })?;
    let d = decide_network(&ctx.cfg.policy, &t.host, t.port, Some((&method, &path)));
    if !d.allowed {
        return Err((d.code, d.rule, path));
    }
    let upgrades: Vec<&HeaderValue> = parts.headers.get_all("upgrade").iter().collect();
    if let Some(up) = upgrades.first() {
        // Frames are not read: never where a secret is brokered.
        let ws = upgrades.len() == 1
            && up.as_bytes().eq_ignore_ascii_case(b"websocket")
            && parts.method == Method::GET
            && parts.version == Version::HTTP_11
            && !ctx.has_credential(&t.host)
            && paddock_policy::websocket_allowed(&ctx.cfg.policy, &t.host, t.port, &path);
        if !ws {
            return Err((
                Reason::NET_UPGRADE_REFUSED.code(),
                format!(
                    "an upgrade to `{}` on {path}: only WebSocket, where a rule's `websocket` lists the path, on a host with no brokered credential and no `body_deny` (WebSocket messages are not screened)",
                    String::from_utf8_lossy(up.as_bytes())
                ),
                path,
            ));
        }
    }
    let mut pq = match parts.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.clone(),
    };
    // Hop-by-hop, and what would make the server believe another client,
    // host or address than paddock's own request.
    for h in [
        "proxy-connection",
        "keep-alive",
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-forwarded-port",
        "x-forwarded-server",
        "x-real-ip",
        "x-host",
        "true-client-ip",
    ] {
        parts.headers.remove(h);
    }
    if ctx.has_credential(&t.host) {
        // Pieces of an answer could each hold part of the secret, and a
        // part is not found by the scrubber.
        parts.headers.remove("range");
        parts.headers.remove("if-range");
    }
    // The server sees the host that was judged, in one spelling.
    if parts.version != Version::HTTP_2 {
        if let Ok(v) = HeaderValue::from_str(&authority(t)) {
            parts.headers.insert(HOST, v);
        }
    }
    let brokered = broker::broker(
        &ctx.cfg.credentials,
        &t.host,
        &ctx.accepted(t),
        &mut parts.headers,
        &mut pq,
        plaintext,
    )
    .map_err(|(code, why)| (code, why, path.clone()))?;
    // Origin-form towards the server: exactly what was judged.
    parts.uri = pq.parse().map_err(|_| {
        (
            Reason::NET_BAD_REQUEST.code(),
            "bad path".to_string(),
            path.clone(),
        )
    })?;
    Ok((path, brokered))
}

/// Is an answer with these headers compressed or otherwise coded (a
/// content coding but `identity`, a transfer coding but `chunked`)? Its
/// bytes could not be scanned for a secret.
fn coded(h: &HeaderMap) -> bool {
    let content = h
        .get_all("content-encoding")
        .iter()
        .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    let transfer = h.get_all("transfer-encoding").iter().any(|v| {
        v.to_str().map_or(true, |s| {
            s.split(',')
                .map(str::trim)
                .any(|c| !c.eq_ignore_ascii_case("chunked") && !c.eq_ignore_ascii_case("identity"))
        })
    });
    content || transfer
}

/// [`forward`] in a task of its own, which runs to its end even when the
/// sandbox's client goes away meanwhile: a refresh the server carried out
/// is stored on the host (else the login is lost with the rotated token),
/// and every request that reached a server is recorded.
async fn forward_detached(
    ctx: Arc<Ctx>,
    req: Request<Incoming>,
    t: Target,
    tls: Option<Arc<rustls::ClientConfig>>,
    start: Instant,
    lease: Arc<Lease>,
) -> Response<Body> {
    let task = tokio::spawn(async move { forward(&ctx, req, &t, tls, start, &lease).await });
    match task.await {
        Ok(r) => r,
        Err(_) => bad_gateway("the request's handling ended early"),
    }
}

/// Judge, broker and forward one HTTP request (plain when `tls` is None).
pub async fn forward(
    ctx: &Ctx,
    req: Request<Incoming>,
    t: &Target,
    tls: Option<Arc<rustls::ClientConfig>>,
    start: Instant,
    lease: &Arc<Lease>,
) -> Response<Body> {
    let method = req.method().to_string();
    let (mut parts, body) = req.into_parts();
    let (path, brokering) = match judge_request(ctx, &mut parts, t, tls.is_none()) {
        Ok(ok) => ok,
        Err((code, why, path)) => {
            ctx.emit_at(
                t,
                Outcome::refused(code, Some((&method, &path))).because(&why),
                start,
            );
            // Read (and drop) the body before answering: a client that is
            // still sending would otherwise see its connection or stream
            // reset instead of the refusal.
            drain(body).await;
            return refuse(code, &why);
        }
    };
    let brokered = brokering.injected;
    let used = brokering.used;
    let scrub_extra = brokering.scrub;
    if brokered || ctx.has_credential(&t.host) {
        // The answer is scanned for the secret; it must not be compressed,
        // as a content coding or a transfer coding (`TE: gzip`).
        parts
            .headers
            .insert("accept-encoding", HeaderValue::from_static("identity"));
        let trailers_only = parts
            .headers
            .get_all("te")
            .iter()
            .all(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
        if !trailers_only {
            parts.headers.remove("te");
        }
    }
    // Trailers are not judged: none are sent on.
    parts.headers.remove("trailer");
    let body: Body = match screen_body(ctx, t, &mut parts, body).await {
        Ok(b) => b,
        Err((code, why)) => {
            ctx.emit_at(
                t,
                Outcome::refused(code, Some((&method, &path))).because(&why),
                start,
            );
            return refuse(code, &why);
        }
    };
    // An OAuth refresh paddock carries out: the real refresh token goes
    // in, one refresh at a time (see `refresh`).
    let login = if parts.method == Method::POST {
        match crate::refresh::matching(&ctx.cfg.logins, &t.host, t.port, &path, parts.uri.query()) {
            Ok(l) => l.cloned(),
            Err((code, why)) => {
                ctx.emit_at(
                    t,
                    Outcome::refused(code, Some((&method, &path))).because(&why),
                    start,
                );
                // Read (and drop) the body first, as for any refusal.
                drain(body).await;
                return refuse(code, &why);
            }
        }
    } else {
        None
    };
    let mut body = body;
    let mut refreshing = None;
    if let (Some(l), None) = (&login, &tls) {
        // Never reached (a credential host is refused over plain HTTP
        // before this), and never to be: the refresh token in clear text.
        let why = format!("{} is refreshed over verified TLS only", l.name);
        ctx.emit_at(
            t,
            Outcome::refused(
                Reason::NET_CREDENTIAL_PLAINTEXT.code(),
                Some((&method, &path)),
            )
            .because(&why),
            start,
        );
        drain(body).await;
        return refuse(Reason::NET_CREDENTIAL_PLAINTEXT.code(), &why);
    }
    if let Some(l) = &login {
        let refused = |code: &'static str, why: String| {
            ctx.emit_at(
                t,
                Outcome::refused(code, Some((&method, &path)))
                    .because(&why)
                    .with_credential(Some(&l.name)),
                start,
            );
            refuse(code, &why)
        };
        // One content type, or servers may read the body as another.
        if parts.headers.get_all("content-type").iter().count() > 1 {
            // The body is read first, as for any refusal: closing with
            // unread bytes would reset the connection before the client
            // reads why.
            drain(body).await;
            return refused(
                Reason::NET_BODY_UNREADABLE.code(),
                "the refresh request has more than one content-type; servers read such a body differently".into(),
            );
        }
        let ct = parts
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = match tokio::time::timeout(
            std::time::Duration::from_secs(30),
            http_body_util::Limited::new(body, crate::refresh::MAX).collect(),
        )
        .await
        {
            Ok(Ok(c)) => c.to_bytes(),
            _ => {
                return refused(
                    Reason::NET_BODY_UNREADABLE.code(),
                    "the refresh request's body is too large, broke off or did not arrive".into(),
                )
            }
        };
        let guard = (
            l.lock.clone().lock_owned().await,
            crate::refresh::lock_across_processes(l).await,
        );
        let (doc, current) = match crate::refresh::current_refresh(l).await {
            Ok(x) => x,
            Err(why) => {
                return refused(
                    Reason::NET_CREDENTIAL_SOURCE_MISSING.code(),
                    format!(
                        "the login on the host cannot be read: {why}; sign in on the host again"
                    ),
                )
            }
        };
        let (new, new_type) = match crate::refresh::request_body(l, ct.as_deref(), &bytes, &current)
        {
            Ok(b) => b,
            Err((code, why)) => return refused(code, why),
        };
        parts
            .headers
            .insert("content-type", HeaderValue::from_static(new_type));
        parts.headers.remove("transfer-encoding");
        parts.headers.insert(
            "content-length",
            HeaderValue::from(u64::try_from(new.len()).unwrap_or(u64::MAX)),
        );
        // The answer must be one paddock reads: JSON, uncompressed.
        parts
            .headers
            .insert("accept", HeaderValue::from_static("application/json"));
        body = Full::new(Bytes::from(new))
            .map_err(|never| match never {})
            .boxed();
        refreshing = Some((guard, doc, current));
    }
    let websocket = parts.headers.contains_key("upgrade");
    let mut req = Request::from_parts(parts, body);
    // The sandbox's side of an allowed WebSocket, once the server agrees.
    let client_side = websocket.then(|| hyper::upgrade::on(&mut req));
    let rq = Some((method.as_str(), path.as_str()));
    let up = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0u64);
    let limit = ctx.cfg.limits.handshake;
    let (tcp, slot) = match tokio::time::timeout(limit, connect_upstream(ctx, t)).await {
        Ok(Ok(u)) => (u.stream, u.slot),
        Ok(Err(e)) => {
            ctx.emit_at(
                t,
                Outcome::refused(Reason::NET_UPSTREAM_UNREACHABLE.code(), rq),
                start,
            );
            return bad_gateway(&format!("cannot reach {}:{}: {e}", t.host, t.port));
        }
        Err(_) => {
            ctx.emit_at(
                t,
                Outcome::refused(Reason::NET_UPSTREAM_UNREACHABLE.code(), rq),
                start,
            );
            return bad_gateway(&format!("{}:{} did not answer in time", t.host, t.port));
        }
    };
    let resp = match tls {
        Some(cfg) => {
            let name = match t.addr.ip() {
                ip if !t.is_name => rustls::pki_types::ServerName::IpAddress(ip.into()),
                _ => match rustls::pki_types::ServerName::try_from(t.host.clone()) {
                    Ok(n) => n,
                    Err(_) => {
                        ctx.emit_at(t, Outcome::refused(Reason::NET_BAD_HOST.code(), rq), start);
                        return refuse(Reason::NET_BAD_HOST.code(), "bad host name");
                    }
                },
            };
            // A WebSocket handshake needs HTTP/1.1 with the server too.
            let cfg = if websocket {
                ctx.cfg.upstream_tls.clone()
            } else {
                cfg
            };
            let connecting = tokio_rustls::TlsConnector::from(cfg).connect(name, tcp);
            let stream = match tokio::time::timeout(limit, connecting).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    ctx.emit_at(
                        t,
                        Outcome::refused(Reason::NET_UPSTREAM_TLS.code(), rq),
                        start,
                    );
                    return bad_gateway(&format!("TLS to {} failed: {e}", t.host));
                }
                Err(_) => {
                    ctx.emit_at(
                        t,
                        Outcome::refused(Reason::NET_UPSTREAM_TLS.code(), rq),
                        start,
                    );
                    return bad_gateway(&format!("TLS to {} timed out", t.host));
                }
            };
            if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                send_h2(TokioIo::new(stream), req, t, slot).await
            } else {
                send(TokioIo::new(stream), req, t, slot).await
            }
        }
        None => send(TokioIo::new(tcp), req, t, slot).await,
    };
    match resp {
        Ok(mut r) if r.status() == StatusCode::SWITCHING_PROTOCOLS => {
            let Some(client_side) = client_side else {
                ctx.emit_at(
                    t,
                    Outcome::refused(Reason::NET_UPGRADE_REFUSED.code(), rq),
                    start,
                );
                return bad_gateway("the server switched protocols unasked");
            };
            let server_side = hyper::upgrade::on(&mut r);
            ctx.emit_at(t, Outcome::allowed(rq, up, 0), start);
            let idle = ctx.cfg.limits.idle;
            let lease = lease.clone();
            tokio::spawn(async move {
                let l = lease.clone();
                l.guard(async move {
                    if let (Ok(c), Ok(s)) = (client_side.await, server_side.await) {
                        let _ = crate::limits::relay(TokioIo::new(c), TokioIo::new(s), idle).await;
                    }
                    drop(lease);
                })
                .await;
            });
            r.map(|_| empty())
        }
        Ok(r) if refreshing.is_some() => {
            lease.conn.activity.served();
            let (guard, doc, current) = refreshing.take().expect("checked");
            let l = login.as_ref().expect("a refresh has its login");
            let answer = refreshed(ctx, t, rq, start, l, r, &doc, &current).await;
            drop(guard);
            answer
        }
        Ok(r) => {
            lease.conn.activity.served();
            let down = r
                .headers()
                .get("content-length")
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .unwrap_or(0u64);
            ctx.emit_at(
                t,
                Outcome::allowed(rq, up, down).with_credential(used.as_deref()),
                start,
            );
            let mut secrets = ctx.secrets(&t.host);
            // What the request carried is most often the secret as it is
            // now: scanned for once.
            for extra in scrub_extra {
                if !secrets.iter().any(|(r, _)| *r == extra.0) {
                    secrets.push(extra);
                }
            }
            if secrets.is_empty() {
                return r.map(|b| b.boxed());
            }
            let encoded = coded(r.headers());
            if encoded {
                // Compressed bytes cannot be scanned for the secret.
                ctx.emit_at(
                    t,
                    Outcome::refused(Reason::NET_UPSTREAM_ERROR.code(), rq)
                        .because("the server compressed an answer paddock must scrub"),
                    start,
                );
                return bad_gateway(
                    "the server compressed an answer paddock must scan for the secret",
                );
            }
            // Whatever the server echoes, the sandbox gets the placeholder
            // back, never the secret.
            let (mut parts, body) = r.into_parts();
            broker::scrub_headers(&mut parts.headers, &secrets);
            parts.headers.remove("content-length");
            Response::from_parts(parts, Scrubbed::new(body, secrets).boxed())
        }
        Err(e) => {
            ctx.emit_at(
                t,
                Outcome {
                    request: rq,
                    why: None,
                    allowed: false,
                    code: Reason::NET_UPSTREAM_ERROR.code(),
                    up,
                    down: 0,
                    credential: None,
                },
                start,
            );
            bad_gateway(&format!("{}: {e}", t.host))
        }
    }
}

/// The answer to a refresh paddock carried out: on success the new tokens
/// are stored on the host and the sandbox gets placeholders; otherwise the
/// server's answer, with the real refresh token scrubbed.
#[allow(clippy::too_many_arguments)]
async fn refreshed(
    ctx: &Ctx,
    t: &Target,
    rq: Option<(&str, &str)>,
    start: Instant,
    l: &crate::refresh::Login,
    r: Response<Incoming>,
    doc: &str,
    current: &str,
) -> Response<Body> {
    let (mut parts, body) = r.into_parts();
    let encoded = coded(&parts.headers);
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        http_body_util::Limited::new(body, crate::refresh::MAX).collect(),
    )
    .await;
    let bytes = match read {
        Ok(Ok(c)) if !encoded => c.to_bytes(),
        _ => {
            ctx.emit_at(
                t,
                Outcome::refused(Reason::NET_UPSTREAM_ERROR.code(), rq)
                    .because("the token endpoint's answer is compressed, too large or broke off")
                    .with_credential(Some(&l.name)),
                start,
            );
            return bad_gateway("the token endpoint's answer could not be read whole");
        }
    };
    let ok = parts.status == StatusCode::OK;
    let parsed = if ok {
        crate::refresh::answer(l, &bytes)
    } else {
        None
    };
    // Every real token of the login, old and (from a token answer) new,
    // with its placeholder: whatever the answer holds of them, in its body
    // or its headers, goes back as the placeholder.
    let access_ph = match &parsed {
        Some((tokens, _)) => tokens.access_placeholder.clone(),
        None => l.access.0.get(),
    };
    let mut real: Vec<(String, &str)> = vec![
        (current.to_string(), &l.refresh.0),
        (l.refresh.1.get(), &l.refresh.0),
        (l.access.1.get(), &access_ph),
    ];
    if let Some((tokens, _)) = &parsed {
        real.push((tokens.access.clone(), &access_ph));
        real.extend(tokens.refresh.clone().map(|r| (r, l.refresh.0.as_str())));
    }
    let real: Vec<(Vec<u8>, Vec<u8>)> = real
        .iter()
        .filter(|(secret, _)| !secret.is_empty())
        .flat_map(|(secret, ph)| broker::scrub_forms(secret, ph))
        .collect();
    // The body without them (under another name, as a key, in a link, in
    // the forms servers write them in), and any other token masked.
    let scrubbed = |body: &[u8]| {
        let mut v = body.to_vec();
        for (secret, ph) in &real {
            v = broker::replace_all_bytes(&v, secret, ph);
        }
        let keep = [access_ph.as_str(), l.refresh.0.as_str()];
        paddock_logins::mask_text(
            &String::from_utf8_lossy(&v),
            &keep,
            &mut paddock_logins::fill_random,
        )
        .into_bytes()
    };
    let out = match parsed {
        Some((tokens, out)) => {
            let out = scrubbed(&out);
            if let Err(why) = crate::refresh::store(l, doc, &tokens).await {
                ctx.emit_at(
                    t,
                    Outcome::refused(Reason::NET_LOGIN_NOT_STORED.code(), rq)
                        .because(&why)
                        .with_credential(Some(&l.name)),
                    start,
                );
                return bad_gateway(&format!(
                    "the refreshed login could not be stored on the host ({why}); the host's login is unchanged"
                ));
            }
            let down = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
            ctx.emit_at(
                t,
                Outcome {
                    code: Reason::NET_LOGIN_REFRESHED.code(),
                    ..Outcome::allowed(rq, 0, down)
                }
                .with_credential(Some(&l.name)),
                start,
            );
            out
        }
        None if parts.status.is_success() => {
            // A success paddock cannot read: the server may have rotated
            // the refresh token, and its answer may hold the new one.
            // Nothing of it reaches the sandbox.
            let why = "the token endpoint answered a refresh with no token answer paddock reads (a JSON object or form with access_token); the server may have rotated the login: sign in on the host again if the next refresh fails";
            ctx.emit_at(
                t,
                Outcome::refused(Reason::NET_LOGIN_NOT_STORED.code(), rq)
                    .because(why)
                    .with_credential(Some(&l.name)),
                start,
            );
            return bad_gateway(why);
        }
        None => {
            ctx.emit_at(
                t,
                Outcome::allowed(rq, 0, u64::try_from(bytes.len()).unwrap_or(u64::MAX))
                    .with_credential(Some(&l.name)),
                start,
            );
            // An error answer may echo what was sent, or hold any token.
            scrubbed(&bytes)
        }
    };
    // The answer's headers: only those that describe the body. A token
    // endpoint may set the new tokens in a cookie or a header of its own,
    // which the sandbox's client does not need.
    let kept: Vec<(hyper::header::HeaderName, HeaderValue)> = parts
        .headers
        .iter()
        .filter(|(n, _)| {
            [
                "content-type",
                "cache-control",
                "pragma",
                "date",
                "expires",
                "vary",
            ]
            .contains(&n.as_str())
        })
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    parts.headers.clear();
    for (n, v) in kept {
        parts.headers.append(n, v);
    }
    broker::scrub_headers(&mut parts.headers, &real);
    parts.headers.insert(
        "content-length",
        HeaderValue::from(u64::try_from(out.len()).unwrap_or(u64::MAX)),
    );
    Response::from_parts(
        parts,
        Full::new(Bytes::from(out))
            .map_err(|never| match never {})
            .boxed(),
    )
}

/// `host[:port]` as it goes in `Host` or `:authority`.
fn authority(t: &Target) -> String {
    let host = if t.host.contains(':') {
        format!("[{}]", t.host)
    } else {
        t.host.clone()
    };
    if t.port == 443 || t.port == 80 {
        host
    } else {
        format!("{host}:{}", t.port)
    }
}

/// Send over HTTP/1.1 (origin-form; a request that came in over HTTP/2
/// gets the `Host` it named in `:authority`).
async fn send<S>(
    io: TokioIo<S>,
    mut req: Request<Body>,
    t: &Target,
    slot: tokio::sync::OwnedSemaphorePermit,
) -> Result<Response<Incoming>, hyper::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if req.version() == Version::HTTP_2 {
        *req.version_mut() = Version::HTTP_11;
        if !req.headers().contains_key(HOST) {
            if let Ok(v) = HeaderValue::from_str(&authority(t)) {
                req.headers_mut().insert(HOST, v);
            }
        }
    }
    // One request per server connection: nothing after it is read as a
    // second request.
    if !req.headers().contains_key("upgrade") {
        req.headers_mut()
            .insert("connection", HeaderValue::from_static("close"));
    }
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
        drop(slot);
    });
    sender.send_request(req).await
}

/// Send over HTTP/2: the URL carries scheme and authority (the host that
/// was judged); connection-specific headers do not exist there.
async fn send_h2<S>(
    io: TokioIo<S>,
    mut req: Request<Body>,
    t: &Target,
    slot: tokio::sync::OwnedSemaphorePermit,
) -> Result<Response<Incoming>, hyper::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let pq = req
        .uri()
        .path_and_query()
        .map_or("/".to_string(), |p| p.as_str().to_string());
    if let Ok(u) = format!("https://{}{pq}", authority(t)).parse() {
        *req.uri_mut() = u;
    }
    *req.version_mut() = Version::HTTP_2;
    for h in [
        "host",
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
    ] {
        req.headers_mut().remove(h);
    }
    let (mut sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .adaptive_window(true)
        .handshake(io)
        .await?;
    tokio::spawn(async move {
        let _ = conn.await;
        drop(slot);
    });
    sender.send_request(req).await
}

/// A connection to the real server, without Nagle's delay: to the pinned
/// address, or through the upstream proxy (`CONNECT host:port`, by the
/// canonical name that was judged).
pub async fn connect_upstream(ctx: &Ctx, t: &Target) -> std::io::Result<Upstream> {
    let slot = ctx
        .upstream_slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| std::io::Error::other("the proxy is shutting down"))?;
    Ok(Upstream {
        stream: open_upstream(ctx, t).await?,
        slot,
    })
}

/// A connection to a server, holding its place among
/// `limits.connections` until it closes.
pub struct Upstream {
    pub stream: TcpStream,
    pub slot: tokio::sync::OwnedSemaphorePermit,
}

async fn open_upstream(ctx: &Ctx, t: &Target) -> std::io::Result<TcpStream> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let proxy = match &ctx.cfg.upstream_proxy {
        Some(p) if ctx.through_proxy(&t.host) => p,
        _ => {
            if !t.resolved {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{} did not resolve", t.host),
                ));
            }
            let s = TcpStream::connect(t.addr).await?;
            let _ = s.set_nodelay(true);
            return Ok(s);
        }
    };
    let mut s = TcpStream::connect((proxy.host.as_str(), proxy.port)).await?;
    let _ = s.set_nodelay(true);
    // By the address that was checked (pinned), when this machine resolved
    // it; by name only when it did not, and then the corporate proxy
    // resolves and connects from its own network.
    let target = if t.resolved {
        t.addr.to_string()
    } else {
        authority_with_port(t)
    };
    let mut head = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(a) = &proxy.auth {
        use base64::Engine;
        let b = base64::engine::general_purpose::STANDARD.encode(a);
        head.push_str(&format!("Proxy-Authorization: Basic {b}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await?;
    // Its answer, byte by byte: nothing after the blank line is ours.
    let mut answer = Vec::with_capacity(256);
    let mut b = [0u8; 1];
    while !answer.ends_with(b"\r\n\r\n") {
        if answer.len() > 8192 || s.read(&mut b).await? == 0 {
            return Err(std::io::Error::other(
                "the upstream proxy's answer is not HTTP",
            ));
        }
        answer.push(b[0]);
    }
    let status =
        String::from_utf8_lossy(answer.split(|&c| c == b'\r').next().unwrap_or(&[])).into_owned();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(std::io::Error::other(format!(
            "the upstream proxy {}:{} refused CONNECT {target}: {status}",
            proxy.host, proxy.port
        )));
    }
    Ok(s)
}

/// `host:port`, brackets around IPv6.
fn authority_with_port(t: &Target) -> String {
    if t.host.contains(':') {
        format!("[{}]:{}", t.host, t.port)
    } else {
        format!("{}:{}", t.host, t.port)
    }
}

/// Read and drop a request body that will not be used (at most 1 MiB, for
/// at most two seconds), so that refusing it does not reset the
/// connection under the client's feet.
async fn drain<B>(body: B)
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        http_body_util::Limited::new(body, 1 << 20).collect(),
    )
    .await;
}

/// The largest request body paddock reads to screen it.
const BODY_SCREEN_MAX: usize = 32 << 20;

/// On a host with `body_deny` rules, read the whole body and refuse it if it
/// is not plain JSON or names what the rules deny; otherwise pass it on
/// as it streams. Either way without trailers.
async fn screen_body(
    ctx: &Ctx,
    t: &Target,
    parts: &mut hyper::http::request::Parts,
    body: Incoming,
) -> Result<Body, (&'static str, String)> {
    let rules = paddock_policy::body_rules(&ctx.cfg.policy, &t.host, t.port);
    if rules.is_empty() {
        return Ok(NoTrailers(body).boxed());
    }
    let unreadable = |why: String| (Reason::NET_BODY_UNREADABLE.code(), why);
    if parts
        .headers
        .get_all("content-encoding")
        .iter()
        .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
    {
        // Read what the client is still sending before refusing: closing
        // with unread bytes resets the connection, and the client would
        // see a broken connection instead of the 403 and its reason.
        drain(body).await;
        return Err(unreadable(
            "a compressed body on a host whose bodies are screened".into(),
        ));
    }
    // Bodies held for screening at once are bounded per sandbox: what one
    // may hold is taken before it is read (its length, or the most).
    let declared = parts
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .unwrap_or(BODY_SCREEN_MAX)
        .min(BODY_SCREEN_MAX);
    let units = u32::try_from(declared.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
    let Ok(Ok(_held)) = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        ctx.screen_budget.clone().acquire_many_owned(units),
    )
    .await
    else {
        drain(body).await;
        return Err(unreadable(
            "too many bodies are being screened at once; retry".into(),
        ));
    };
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        http_body_util::Limited::new(body, declared.max(1)).collect(),
    )
    .await;
    let bytes = match read {
        Ok(Ok(c)) => c.to_bytes(),
        Ok(Err(_)) => {
            return Err(unreadable(format!(
                "the body is over {} MiB or broke off",
                BODY_SCREEN_MAX >> 20
            )))
        }
        Err(_) => return Err(unreadable("the body did not arrive in time".into())),
    };
    if !bytes.is_empty() {
        let json = parts
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                let v = v.to_ascii_lowercase();
                let (mime, params) = v.split_once(';').unwrap_or((&v, ""));
                let mime = mime.trim();
                (mime == "application/json" || mime.ends_with("+json"))
                    && params.split(';').all(|p| {
                        p.trim().is_empty() || p.trim().replace(' ', "") == "charset=utf-8"
                    })
            });
        if !json {
            return Err(unreadable(
                "a body on this host must be sent as application/json (UTF-8)".into(),
            ));
        }
        // Checked as it is parsed (no tree in memory), off the proxy's thread.
        let rules: Vec<String> = rules.iter().map(|r| r.to_string()).collect();
        let b = bytes.clone();
        let verdict = tokio::task::spawn_blocking(move || {
            let rules: Vec<&str> = rules.iter().map(String::as_str).collect();
            match paddock_policy::check_body(&rules, &b) {
                Ok(()) => Ok(()),
                Err(paddock_policy::BodyVerdict::Denied(r)) => Err((true, r.to_string())),
                Err(paddock_policy::BodyVerdict::Unreadable(e)) => Err((false, e)),
            }
        })
        .await
        .unwrap_or_else(|_| Err((false, "the check did not finish".into())));
        match verdict {
            Ok(()) => {}
            Err((true, r)) => {
                return Err((
                    Reason::NET_BODY_DENIED.code(),
                    format!(
                        "the body contains what network.rules for {} denies: `{r}`",
                        t.host
                    ),
                ))
            }
            Err((false, e)) => {
                return Err(unreadable(format!(
                    "a body on this host must be JSON paddock can read in one way ({e})"
                )))
            }
        }
    }
    // Sent as read: one length, no chunking left to interpret.
    parts.headers.remove("transfer-encoding");
    parts.headers.insert(
        "content-length",
        HeaderValue::from_str(&bytes.len().to_string()).unwrap_or(HeaderValue::from_static("0")),
    );
    Ok(Full::new(bytes).map_err(|never| match never {}).boxed())
}

/// A request body without its trailers (which nobody judged).
pub struct NoTrailers<B>(B);

impl<B> hyper::body::Body for NoTrailers<B>
where
    B: hyper::body::Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        loop {
            match std::pin::Pin::new(&mut self.0).poll_frame(cx) {
                std::task::Poll::Ready(Some(Ok(f))) if f.is_trailers() => continue,
                other => return other,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.0.size_hint()
    }
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
    fn authorities() {
        assert_eq!(
            split_authority("a.com:8443", 443),
            Some(("a.com".into(), 8443))
        );
        assert_eq!(split_authority("a.com", 80), Some(("a.com".into(), 80)));
        assert_eq!(
            split_authority("[::1]:443", 80),
            Some(("[::1]".into(), 443))
        );
        assert_eq!(split_authority("[::1]x", 80), None);
        assert_eq!(split_authority("a.com:x", 80), None);
    }
}
