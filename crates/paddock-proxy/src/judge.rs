//! The one judge every way out goes through: canonical host → host/port
//! decision → resolve → every address checked → pinned. CONNECT, plain
//! HTTP and SOCKS5 each call [`Ctx::admit`] and then hand the connection
//! to the same per-protocol code, so none of them can skip a step.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use paddock_policy::{canonical_host, decide_network, CanonHost};

use crate::addr::{is_own, is_private};
use tokio::sync::{watch, OwnedSemaphorePermit};

use crate::broker::Refusal;
use crate::limits::Activity;
use crate::{Config, Event};
use paddock_reasons::Reason;

/// The way a connection came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Absolute-form `http://` request to the proxy.
    Http,
    /// `CONNECT host:port`.
    Connect,
    /// SOCKS5 `CONNECT`.
    Socks5,
    /// A connection (or datagram) from the sandbox's TUN device, made
    /// without the proxy.
    Transparent,
    /// A DNS question to the transparent path's resolver.
    Dns,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Http => "http",
            Via::Connect => "connect",
            Via::Socks5 => "socks5",
            Via::Transparent => "transparent",
            Via::Dns => "dns",
        }
    }
}

/// A destination the judge admitted: its canonical host, and the one
/// address that was checked and will be connected to.
#[derive(Debug, Clone)]
pub struct Target {
    pub host: String,
    /// A DNS name (not an address literal): TLS to it must carry its SNI.
    pub is_name: bool,
    pub port: u16,
    pub addr: SocketAddr,
    /// False when the name did not resolve here and is left to the
    /// upstream proxy (`addr` is then unspecified).
    pub resolved: bool,
    pub via: Via,
}

pub struct Ctx {
    pub cfg: Arc<Config>,
    /// Connections to servers at once: each request (and each HTTP/2
    /// stream) opens one, so they are counted too.
    pub upstream_slots: Arc<tokio::sync::Semaphore>,
    /// KiB of request bodies held for `body_deny` screening at once (64 MiB).
    pub screen_budget: Arc<tokio::sync::Semaphore>,
    /// TLS to servers, offering HTTP/2 and HTTP/1.1.
    pub upstream_tls: Arc<rustls::ClientConfig>,
    limit_events: Mutex<HashMap<&'static str, Instant>>,
    refusals: Budget,
    conns: Mutex<HashMap<u64, (Activity, watch::Sender<bool>)>>,
    next_conn: AtomicU64,
}

/// One open connection from the sandbox, as the limits see it.
pub struct Conn {
    pub id: u64,
    pub activity: Activity,
    pub kill: watch::Receiver<bool>,
}

/// A connection's place among the `limits.connections`: held by every task
/// that serves it — the connection, then its tunnel, then a WebSocket
/// relay — and given back when the last one ends.
pub struct Lease {
    pub conn: Conn,
    _slot: OwnedSemaphorePermit,
    ctx: Arc<Ctx>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.ctx.unregister(self.conn.id);
    }
}

impl Lease {
    pub fn new(ctx: &Arc<Ctx>, slot: OwnedSemaphorePermit) -> Arc<Lease> {
        Arc::new(Lease {
            conn: ctx.register(),
            _slot: slot,
            ctx: ctx.clone(),
        })
    }

    /// Run `work` until it ends, the connection goes idle, or it is
    /// evicted.
    pub async fn guard(&self, work: impl std::future::Future<Output = ()>) {
        let mut kill = self.conn.kill.clone();
        tokio::select! {
            _ = work => {}
            _ = self.conn.activity.until_idle(self.ctx.cfg.limits.idle) => self.ctx.limit_hit(Reason::NET_LIMIT_IDLE.code()),
            _ = kill.wait_for(|k| *k) => {}
        }
    }
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// At most [`Budget::PER_SECOND`] refusal events a second: a sandbox
/// looping on refused requests cannot fill the disk with its audit trail.
/// What is dropped is counted and reported once the next second starts.
#[derive(Default)]
struct Budget {
    state: Mutex<(u64, u32, u64, u64)>, // (second, used, dropped, dropped to report)
}

impl Budget {
    const PER_SECOND: u32 = 50;

    fn now_s() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    fn admit(&self) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Self::now_s();
        if s.0 != now {
            s.3 += s.2;
            *s = (now, 0, 0, s.3);
        }
        if s.1 < Self::PER_SECOND {
            s.1 += 1;
            true
        } else {
            s.2 += 1;
            false
        }
    }

    fn suppressed_since_last(&self) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let n = std::mem::take(&mut s.3);
        (n > 0).then_some(n)
    }
}

/// What one event says (beyond host, port and way in).
pub struct Outcome<'a> {
    pub request: Option<(&'a str, &'a str)>,
    pub why: Option<&'a str>,
    pub allowed: bool,
    pub code: &'a str,
    pub up: u64,
    pub down: u64,
    /// The brokered credential used (its name).
    pub credential: Option<&'a str>,
}

impl<'a> Outcome<'a> {
    pub fn refused(code: &'a str, request: Option<(&'a str, &'a str)>) -> Self {
        Outcome {
            request,
            why: None,
            allowed: false,
            code,
            up: 0,
            down: 0,
            credential: None,
        }
    }

    /// An allowed exchange and its bytes each way.
    pub fn allowed(request: Option<(&'a str, &'a str)>, up: u64, down: u64) -> Self {
        Outcome {
            request,
            why: None,
            allowed: true,
            code: Reason::NET_ALLOWED.code(),
            up,
            down,
            credential: None,
        }
    }

    /// The brokered credential the request carried.
    pub fn with_credential(mut self, name: Option<&'a str>) -> Self {
        self.credential = name;
        self
    }

    /// The refusal's reason in words, for the audit trail.
    pub fn because(mut self, why: &'a str) -> Self {
        self.why = Some(why);
        self
    }
}

impl Ctx {
    pub fn new(cfg: Arc<Config>) -> Self {
        let mut tls = (*cfg.upstream_tls).clone();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ctx {
            upstream_slots: Arc::new(tokio::sync::Semaphore::new(cfg.limits.connections)),
            screen_budget: Arc::new(tokio::sync::Semaphore::new(64 * 1024)),
            upstream_tls: Arc::new(tls),
            cfg,
            limit_events: Mutex::new(HashMap::new()),
            refusals: Budget::default(),
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(0),
        }
    }

    fn register(&self) -> Conn {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = watch::channel(false);
        let c = Conn {
            id,
            activity: Activity::new(),
            kill: rx,
        };
        let mut m = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        m.insert(id, (c.activity.clone(), tx));
        c
    }

    fn unregister(&self, id: u64) {
        let mut m = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        m.remove(&id);
    }

    /// Close the connection that has been quiet longest, among those that
    /// never did real work if there are any (a flood's half-open
    /// connections go before the agent's own idle keep-alive).
    pub fn evict_quietest(&self) {
        let mut m = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        let quietest = m
            .iter()
            .max_by_key(|(_, (a, _))| (!a.has_served(), a.idle_for()))
            .map(|(id, (_, k))| (*id, k.clone()));
        if let Some((id, kill)) = quietest {
            m.remove(&id);
            let _ = kill.send(true);
        }
    }

    pub fn emit(&self, host: &str, port: u16, via: Via, o: Outcome<'_>, start: Instant) {
        if !o.allowed && !self.refusals.admit() {
            return;
        }
        if let Some(n) = self.refusals.suppressed_since_last() {
            if let Some(sink) = &self.cfg.events {
                sink(&Event {
                    ts_ms: now_ms(),
                    host: "-".into(),
                    port: 0,
                    via: via.as_str(),
                    method: None,
                    path: None,
                    why: Some(format!(
                        "{n} refusals in the last second were not recorded one by one"
                    )),
                    allowed: false,
                    code: Reason::NET_EVENTS_SUPPRESSED.code().into(),
                    bytes_up: 0,
                    bytes_down: 0,
                    duration_ms: 0,
                    credential: None,
                });
            }
        }
        if let Some(sink) = &self.cfg.events {
            sink(&Event {
                ts_ms: now_ms(),
                host: host.to_string(),
                port,
                via: via.as_str(),
                method: o.request.map(|r| r.0.to_string()),
                path: o.request.map(|r| r.1.to_string()),
                why: o.why.map(str::to_string),
                allowed: o.allowed,
                code: o.code.to_string(),
                bytes_up: o.up,
                bytes_down: o.down,
                duration_ms: start.elapsed().as_millis(),
                credential: o.credential.map(str::to_string),
            });
        }
    }

    pub fn emit_at(&self, t: &Target, o: Outcome<'_>, start: Instant) {
        self.emit(&t.host, t.port, t.via, o, start);
    }

    /// A limit was hit: one event per code per second at most, so a flood
    /// does not also flood the audit trail.
    pub fn limit_hit(&self, code: &'static str) {
        self.limit_hit_via(code, Via::Connect)
    }

    /// [`Ctx::limit_hit`], for a limit met on the way in `via`.
    pub fn limit_hit_via(&self, code: &'static str, via: Via) {
        let mut last = self.limit_events.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if last
            .get(code)
            .is_some_and(|t| now.duration_since(*t) < Duration::from_secs(1))
        {
            return;
        }
        last.insert(code, now);
        drop(last);
        self.emit("-", 0, via, Outcome::refused(code, None), now);
    }

    /// Judge `raw_host:port` as the client named it, then resolve it — in
    /// that order. A refusal is recorded here.
    pub async fn admit(
        &self,
        raw_host: &str,
        port: u16,
        via: Via,
        start: Instant,
    ) -> Result<Target, Refusal> {
        let judged = self.judge(raw_host, port, via).await;
        if let Err((code, why)) = &judged {
            let shown = canonical_host(raw_host)
                .map(|h| h.to_string())
                .unwrap_or_else(|_| raw_host.escape_default().to_string());
            self.emit(
                &shown,
                port,
                via,
                Outcome::refused(code, None).because(why),
                start,
            );
        }
        judged
    }

    async fn judge(&self, raw_host: &str, port: u16, via: Via) -> Result<Target, Refusal> {
        let canon = canonical_host(raw_host).map_err(|why| (Reason::NET_BAD_HOST.code(), why))?;
        let host = canon.to_string();
        let d = decide_network(&self.cfg.policy, &host, port, None);
        if !d.allowed {
            return Err((d.code, d.rule));
        }
        let addr = self.resolve(&host, port).await?;
        Ok(Target {
            is_name: matches!(canon, CanonHost::Name(_)),
            host,
            port,
            resolved: addr.is_some(),
            addr: addr.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], port))),
            via,
        })
    }

    /// Resolve `host:port` and check every address it has: none may be
    /// private or this host's own unless the policy names it. Returns the
    /// first, which is the one connected to.
    async fn resolve(&self, host: &str, port: u16) -> Result<Option<SocketAddr>, Refusal> {
        let addrs: Vec<SocketAddr> = if let Some(a) = self.cfg.resolve.get(host) {
            vec![*a]
        } else {
            match tokio::net::lookup_host((host, port)).await {
                Ok(it) => it.collect(),
                // Behind a corporate proxy, names often resolve only there:
                // it connects by name, from its own network.
                Err(_) if self.through_proxy(host) && self.allowed_by_name(host) => {
                    return Ok(None)
                }
                Err(e) => {
                    return Err((
                        Reason::NET_RESOLVE_FAILED.code(),
                        format!("cannot resolve {host}: {e}"),
                    ))
                }
            }
        };
        let first = *addrs.first().ok_or((
            Reason::NET_RESOLVE_FAILED.code(),
            format!("{host} has no address"),
        ))?;
        for addr in &addrs {
            // "Names it": an allow entry that is this very address (and
            // port, when the entry has one).
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
            if let Some(d) = self
                .cfg
                .policy
                .net_deny
                .iter()
                .find(|d| paddock_policy::pattern_matches(&d.value, &ip, addr.port()))
            {
                return Err((
                    Reason::NET_DOMAIN_DENIED.code(),
                    format!(
                        "{host} resolves to {ip}, which network.deny contains (`{}`)",
                        d.value
                    ),
                ));
            }
            if named {
                continue;
            }
            if is_private(addr.ip()) {
                return Err((
                    Reason::NET_PRIVATE_ADDRESS.code(),
                    format!(
                        "{host} resolves to {}, a private or loopback address the policy does not name",
                        addr.ip()
                    ),
                ));
            }
            if is_own(addr.ip()) {
                return Err((
                    Reason::NET_OWN_ADDRESS.code(),
                    format!(
                        "{host} resolves to {}, an address of this host itself, which the policy does not name",
                        addr.ip()
                    ),
                ));
            }
        }
        Ok(Some(first))
    }

    /// Does an allow entry name exactly this host (not a wildcard)? Only
    /// such names are left to the corporate proxy unresolved: a wildcard
    /// would let the sandbox pick names this machine cannot check.
    fn allowed_by_name(&self, host: &str) -> bool {
        self.cfg.policy.net_allow.iter().any(|a| {
            let h = a
                .value
                .rsplit_once(':')
                .map_or(a.value.as_str(), |(h, _)| h);
            h.eq_ignore_ascii_case(host)
        })
    }

    /// Does a connection to `host` go through the upstream proxy?
    pub fn through_proxy(&self, host: &str) -> bool {
        self.cfg
            .upstream_proxy
            .as_ref()
            .is_some_and(|p| !p.bypassed(host))
    }

    /// Is TLS to the target decrypted?
    pub fn inspected(&self, t: &Target) -> bool {
        paddock_policy::net_inspected(&self.cfg.policy, &t.host, t.port)
    }

    /// Must paddock read this target's traffic (a credential, or method
    /// and path rules)?
    pub fn sensitive(&self, t: &Target) -> bool {
        self.has_credential(&t.host)
            || paddock_policy::has_path_rules(&self.cfg.policy, &t.host, t.port)
    }

    pub fn has_credential(&self, host: &str) -> bool {
        self.cfg
            .credentials
            .iter()
            .any(|c| c.host.eq_ignore_ascii_case(host))
    }

    /// The rule's `accept_credentials` for the target.
    pub fn accepted(&self, t: &Target) -> Vec<String> {
        paddock_policy::accepted_credentials(&self.cfg.policy, &t.host, t.port)
            .map(str::to_string)
            .collect()
    }

    /// (secret, placeholder) pairs of the target's credentials, in every
    /// form an answer may echo them ([`crate::broker::scrub_forms`]).
    pub fn secrets(&self, host: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.cfg
            .credentials
            .iter()
            .filter(|c| c.host.eq_ignore_ascii_case(host))
            .flat_map(|c| crate::broker::scrub_forms(&c.secret.get(), &c.placeholder.get()))
            .collect()
    }
}
