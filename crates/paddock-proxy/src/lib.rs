//! paddock's egress proxy: the sandbox's only way out.
//!
//! The sandbox's network namespace has nothing but its own loopback. Its
//! pid 1 listens on `127.0.0.1:PORT` there and hands the listening socket to
//! paddock, which runs this proxy on it. One port speaks HTTP (forward
//! proxy and `CONNECT`) and SOCKS5, told apart by the first byte.
//!
//! Every way in runs the same chain ([`judge`]), so no entry point is
//! weaker than another:
//!
//! 1. **Canonical host**: lower case, trailing dot removed, every IP
//!    notation parsed ([`paddock_policy::canonical_host`]); what has no one
//!    form is refused.
//! 2. **Host and port** by [`paddock_policy::decide_network`], the function
//!    `paddock policy explain` answers with. Before any DNS lookup: a lookup
//!    of a refused name would itself carry data out.
//! 3. **Resolve, check every address, pin**: no address of the name may be
//!    loopback, private, link-local or one of this host's own unless the
//!    policy names it; the connection goes to the address that was checked
//!    (or, behind a corporate proxy, `CONNECT name:port` through it).
//! 4. **Sniff the protocol** on a tunnel (CONNECT or SOCKS5): a TLS
//!    ClientHello (reassembled across records) must name the host (no SNI,
//!    or another name, is refused) and is **inspected** — decrypted with a
//!    per-session CA — unless a rule says `inspect = false`; plain HTTP is
//!    judged request by request; another protocol is tunnelled only where
//!    no rule or credential needs paddock to read it.
//! 5. **Each request**: one `Host` that names the host, no framing
//!    ambiguity, a canonical path ([`paddock_policy::canonical_path`]),
//!    then method and path rules.
//! 6. **Broker** ([`broker`]): the placeholder is swapped for the secret
//!    wherever it is, on its host only and never in clear text; any other
//!    credential is refused; the secret is scrubbed from the answer.
//!
//! Refusals are HTTP 403 with `X-Paddock-Reason: CODE` and the reason in
//! the body (SOCKS5: reply 2; a refused TLS tunnel is closed). Every
//! decision is an [`Event`].

#![forbid(unsafe_code)]

mod addr;
pub mod broker;
mod ca;
mod dns;
mod http;
mod judge;
mod limits;
pub mod refresh;
mod sni;
mod socks;
mod transparent;

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

pub use addr::{is_own, is_private};
pub use ca::SessionCa;
pub use limits::Limits;
pub use sni::{parse_client_hello, Hello};

use judge::Ctx;
use paddock_reasons::Reason;

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

/// A string shared between paddock's tasks: a real secret in its memory (a
/// refreshed login replaces it while the sandbox keeps its placeholder),
/// or a placeholder (a JWT's changes with the claims of the new token).
#[derive(Clone)]
pub struct Secret(Arc<std::sync::RwLock<String>>);

impl Secret {
    /// A secret holding `s`.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(Arc::new(std::sync::RwLock::new(s.into())))
    }

    /// Its value now.
    pub fn get(&self) -> String {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replace it (a refreshed token).
    pub fn set(&self, s: String) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = s;
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A credential the proxy injects.
#[derive(Clone)]
pub struct Brokered {
    /// The only host the secret goes to.
    pub host: String,
    /// The variable that holds the placeholder inside the sandbox, or the
    /// login file and key (for messages and audit events; never a value).
    pub env: String,
    /// What the sandbox sees now: shared by every credential of one login
    /// secret, and replaced when a refresh brings a JWT with other claims
    /// (its placeholder keeps them).
    pub placeholder: Secret,
    /// The real secret (never logged, never shown to the sandbox).
    pub secret: Secret,
    /// An OAuth refresh token: it goes only into a refresh paddock carries
    /// out at its token endpoint, never into a header or query.
    pub refresh_only: bool,
}

impl std::fmt::Debug for Brokered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Brokered")
            .field("host", &self.host)
            .field("env", &self.env)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// One network decision.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Unix time, milliseconds.
    pub ts_ms: u128,
    /// Target host, canonical.
    pub host: String,
    /// Target port.
    pub port: u16,
    /// The way in: `http` (forward proxy), `connect`, `socks5`.
    pub via: &'static str,
    /// HTTP method, when seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Path, when seen (inspected or plain HTTP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Allowed or refused.
    pub allowed: bool,
    /// Why it was refused, in words (the rule, the header, the address).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// Reason code.
    pub code: String,
    /// Bytes from the sandbox upstream.
    pub bytes_up: u64,
    /// Bytes from upstream to the sandbox.
    pub bytes_down: u64,
    /// Duration, milliseconds.
    pub duration_ms: u128,
    /// The brokered credential this request carried (its variable, or its
    /// login file and key), never its value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
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
    pub policy: Arc<paddock_policy::Effective>,
    /// Brokered credentials.
    pub credentials: Vec<Brokered>,
    /// OAuth logins whose refresh paddock carries out for the sandbox.
    pub logins: Vec<Arc<refresh::Login>>,
    /// The session CA (needed to inspect).
    pub ca: Option<Arc<SessionCa>>,
    /// TLS to upstream servers.
    pub upstream_tls: Arc<rustls::ClientConfig>,
    /// Fixed name → address mappings, consulted before DNS (tests point
    /// names at servers they start).
    pub resolve: HashMap<String, SocketAddr>,
    /// Where decisions go.
    pub events: Option<EventSink>,
    /// Connection, size and time limits.
    pub limits: Limits,
    /// A proxy paddock itself must go through (after its own decision).
    pub upstream_proxy: Option<UpstreamProxy>,
    /// When the listener is on the host's own loopback (isolation level
    /// `no-userns`), where any local user could connect to it: only
    /// connections from sockets of this uid are served, the others closed
    /// at once (`NET_PROXY_FOREIGN_USER`).
    pub peer_uid: Option<u32>,
}

/// A proxy between paddock and the servers (a corporate proxy): each
/// connection is a `CONNECT host:port` through it.
#[derive(Clone)]
pub struct UpstreamProxy {
    /// Where it listens.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// `user:password` for `Proxy-Authorization: Basic`.
    pub auth: Option<String>,
    /// Host patterns (`NO_PROXY`) reached directly instead.
    pub bypass: Vec<String>,
}

impl std::fmt::Debug for UpstreamProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamProxy")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("auth", &self.auth.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl UpstreamProxy {
    /// Is `host` reached without this proxy (`NO_PROXY` semantics:
    /// `example.com` and `.example.com` cover the domain and its
    /// subdomains, `*` everything)?
    pub fn bypassed(&self, host: &str) -> bool {
        self.bypass.iter().any(|b| {
            let b = b.trim().trim_start_matches("*.").trim_start_matches('.');
            b == "*" || host == b || host.ends_with(&format!(".{b}"))
        })
    }
}

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
        use rustls::pki_types::pem::PemObject;
        for c in rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()).flatten() {
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

/// Serve the proxy on `listener` until the runtime is dropped.
///
/// At most `limits.connections` connections are served at once. When all
/// are taken, the one that has been quiet longest is closed to make room
/// (`NET_LIMIT_CONNECTIONS`): a sandbox that floods the proxy with
/// connections that never finish a request, or sit idle, cannot keep its
/// own next real request out. A connection quiet for `limits.idle` is
/// closed (`NET_LIMIT_IDLE`). An `accept` that fails (out of file
/// descriptors) backs off instead of spinning (`NET_LIMIT_FDS`).
pub async fn serve(listener: tokio::net::TcpListener, cfg: Arc<Config>) {
    serve_all(listener, None, cfg).await
}

/// [`serve`], and with `tun`, the transparent path on the sandbox's TUN
/// device: the same judge, the same connection limit.
pub async fn serve_all(
    listener: tokio::net::TcpListener,
    tun: Option<std::os::fd::OwnedFd>,
    cfg: Arc<Config>,
) {
    let ctx = Arc::new(Ctx::new(cfg));
    let slots = Arc::new(tokio::sync::Semaphore::new(ctx.cfg.limits.connections));
    if let Some(fd) = tun {
        tokio::spawn(transparent::serve(fd, ctx.clone(), slots.clone()));
    }
    loop {
        let stream = match listener.accept().await {
            Ok((s, peer)) => {
                if let Some(uid) = ctx.cfg.peer_uid {
                    let own = listener
                        .local_addr()
                        .is_ok_and(|local| addr::tcp_owner(peer, local) == Some(uid));
                    if !own {
                        ctx.limit_hit(Reason::NET_PROXY_FOREIGN_USER.code());
                        drop(s);
                        continue;
                    }
                }
                s
            }
            Err(e) => {
                let code = if matches!(e.raw_os_error(), Some(24 | 23)) {
                    Reason::NET_LIMIT_FDS.code()
                } else {
                    Reason::NET_ACCEPT_FAILED.code()
                };
                ctx.limit_hit(code);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = take_slot(&ctx, &slots).await else {
            drop(stream);
            continue;
        };
        // Small request/response exchanges must not wait for Nagle's
        // algorithm against delayed ACKs (~40 ms each).
        let _ = stream.set_nodelay(true);
        let lease = judge::Lease::new(&ctx, slot);
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            let work = async {
                let mut first = [0u8; 1];
                let peeked =
                    tokio::time::timeout(ctx.cfg.limits.handshake, stream.peek(&mut first)).await;
                let watched = limits::Watched::new(stream, lease.conn.activity.clone());
                match peeked {
                    Ok(Ok(1)) if first[0] == 5 => {
                        socks::serve(ctx.clone(), watched, start, lease.clone()).await
                    }
                    Ok(Ok(1)) => http::serve_front(ctx.clone(), watched, lease.clone()).await,
                    Err(_) => ctx.limit_hit(Reason::NET_LIMIT_HANDSHAKE.code()),
                    _ => {}
                }
            };
            lease.guard(work).await;
        });
    }
}

/// A place among the connections: at once if one is free, else the
/// quietest connection is closed to make room (waiting at most 500 ms).
async fn take_slot(
    ctx: &Ctx,
    slots: &Arc<tokio::sync::Semaphore>,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    if let Ok(s) = slots.clone().try_acquire_owned() {
        return Some(s);
    }
    ctx.limit_hit(Reason::NET_LIMIT_CONNECTIONS.code());
    ctx.evict_quietest();
    match tokio::time::timeout(Duration::from_millis(500), slots.clone().acquire_owned()).await {
        Ok(Ok(s)) => Some(s),
        _ => None,
    }
}

/// Wait (at most `within`) for the refreshes of `logins` under way to
/// end, and hold them off from then on: call it when the sandbox has
/// ended, before the proxy goes with the process. A refresh the server
/// has carried out must be stored, or the rotated login is lost; one not
/// yet sent then never is. Keep the guards until the process ends.
pub fn finish_refreshes(
    logins: &[Arc<refresh::Login>],
    within: std::time::Duration,
) -> Vec<tokio::sync::OwnedMutexGuard<()>> {
    let until = std::time::Instant::now() + within;
    let mut held = Vec::new();
    for l in logins {
        loop {
            if let Ok(g) = l.lock.clone().try_lock_owned() {
                held.push(g);
                break;
            }
            if std::time::Instant::now() >= until {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    held
}

/// Run the proxy on its own thread with a small runtime, with the
/// transparent path on `tun` when given. The thread ends with the process.
pub fn spawn_thread(
    listener: std::net::TcpListener,
    tun: Option<std::os::fd::OwnedFd>,
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
                    Ok(l) => serve_all(l, tun, Arc::new(cfg)).await,
                    Err(e) => eprintln!("paddock: proxy could not start: {e}"),
                }
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ca_issues_leaves() {
        let ca = SessionCa::new("t").unwrap();
        assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        let a = ca.leaf("api.example.com").unwrap();
        let b = ca.leaf("api.example.com").unwrap();
        assert!(Arc::ptr_eq(&a, &b), "cached");
        assert_eq!(a.cert.len(), 2);
        assert!(ca.leaf("127.0.0.1").is_ok(), "IP addresses get leaves too");
    }

    /// What a plain proxy request gets back from a proxy that serves only
    /// `peer_uid`: the bytes read until the proxy closes.
    fn answer_with_peer_uid(peer_uid: Option<u32>) -> Vec<u8> {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let cfg = Config {
            policy: Arc::new(paddock_policy::Effective::default()),
            credentials: Vec::new(),
            logins: Vec::new(),
            ca: None,
            upstream_tls: upstream_tls(None).unwrap(),
            resolve: HashMap::new(),
            events: None,
            limits: Limits::default(),
            upstream_proxy: None,
            peer_uid,
        };
        spawn_thread(l, None, cfg).unwrap();
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = c.write_all(b"GET http://denied.example/ HTTP/1.1\r\nHost: denied.example\r\n\r\n");
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        out
    }

    /// On the host's loopback the proxy serves this user's connections
    /// only: another uid's is closed before a byte is read or answered.
    #[test]
    fn a_proxy_on_the_host_loopback_serves_only_its_user() {
        let me = addr::owner_tests::my_uid();
        let served = answer_with_peer_uid(Some(me));
        assert!(
            served.starts_with(b"HTTP/1.1 403"),
            "{}",
            String::from_utf8_lossy(&served)
        );
        assert!(answer_with_peer_uid(Some(me.wrapping_add(1))).is_empty());
        assert!(answer_with_peer_uid(None).starts_with(b"HTTP/1.1 403"));
    }
}
