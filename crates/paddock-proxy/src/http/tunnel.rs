//! What a tunnel (CONNECT or SOCKS5) carries, decided from its first
//! bytes — the same way for both entry points.

use std::sync::Arc;
use std::time::{Duration, Instant};

use paddock_policy::canonical_host;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{connect_upstream, mitm, serve_plain};
use crate::judge::{Ctx, Lease, Outcome, Target};
use crate::limits::{relay, Prefixed};
use crate::sni::{offers_ech, parse_client_hello, Hello, MAX_HELLO};
use paddock_reasons::Reason;

/// What the first bytes say.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    /// A complete ClientHello, with its server name if any.
    Tls(Option<String>),
    /// An HTTP/1 request line.
    Http,
    /// Starts like TLS but is no ClientHello paddock can read.
    Unreadable,
    /// Some other protocol, the client speaking first (ssh, databases).
    Opaque,
}

fn classify(buf: &[u8]) -> Option<Kind> {
    let first = *buf.first()?;
    if first == 0x16 {
        return match parse_client_hello(buf) {
            Hello::Incomplete if buf.len() <= MAX_HELLO + 1024 => None,
            Hello::Incomplete | Hello::NotTls => Some(Kind::Unreadable),
            Hello::Tls(sni) => Some(Kind::Tls(sni)),
        };
    }
    // An HTTP method: upper-case letters, then a space.
    let head = &buf[..buf.len().min(9)];
    match head.iter().position(|&b| b == b' ') {
        Some(n) if n > 0 && head[..n].iter().all(u8::is_ascii_uppercase) => Some(Kind::Http),
        None if head.len() < 9 && head.iter().all(u8::is_ascii_uppercase) => None,
        _ => Some(Kind::Opaque),
    }
}

/// Serve an admitted tunnel.
pub async fn serve<S>(ctx: Arc<Ctx>, t: Target, mut client: S, start: Instant, lease: Arc<Lease>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let inspected = ctx.inspected(&t);
    let deadline = start + ctx.cfg.limits.handshake;
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    let kind = loop {
        if let Some(k) = classify(&buf) {
            break Some(k);
        }
        // A protocol whose server speaks first (MySQL, SMTP) sends nothing:
        // tunnelled only for hosts the policy opts out of inspection.
        let wait = if buf.is_empty() && !inspected {
            Duration::from_millis(300)
        } else {
            deadline.saturating_duration_since(Instant::now())
        };
        match tokio::time::timeout(wait, client.read(&mut chunk)).await {
            Err(_) if buf.is_empty() && !inspected => break None,
            Err(_) => {
                ctx.emit_at(
                    &t,
                    Outcome::refused(Reason::NET_LIMIT_HANDSHAKE.code(), None),
                    start,
                );
                return;
            }
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let refuse = |code: &str| ctx.emit_at(&t, Outcome::refused(code, None), start);
    match kind {
        Some(Kind::Tls(sni)) => {
            let named = sni.as_deref().map(canonical_host);
            let ok = match (&named, t.is_name) {
                (None, true) => {
                    refuse(Reason::NET_SNI_MISSING.code());
                    return;
                }
                (None, false) => true,
                (Some(Ok(h)), _) => h.to_string() == t.host,
                (Some(Err(_)), _) => false,
            };
            if !ok {
                refuse(Reason::NET_SNI_MISMATCH.code());
                return;
            }
            if inspected {
                mitm(ctx, t, Prefixed::new(buf, client), start, lease).await;
            } else if offers_ech(&buf) {
                // Not decrypted, so the outer name is all paddock checks;
                // with ECH the real one is hidden.
                refuse(Reason::NET_SNI_HIDDEN.code());
            } else {
                lease.conn.activity.served();
                opaque(&ctx, &t, client, buf, start).await;
            }
        }
        Some(Kind::Http) => serve_plain(ctx, t, Prefixed::new(buf, client), lease).await,
        Some(Kind::Unreadable) => refuse(Reason::NET_TLS_UNREADABLE.code()),
        Some(Kind::Opaque) => {
            let web = t.port == 443 || t.port == 80;
            if t.port == 443 || (inspected && (web || ctx.sensitive(&t))) {
                // Port 443 carries TLS, whose name paddock checks.
                refuse(Reason::NET_PROTOCOL_UNINSPECTABLE.code());
                return;
            }
            lease.conn.activity.served();
            opaque(&ctx, &t, client, buf, start).await;
        }
        None if t.port == 443 => refuse(Reason::NET_PROTOCOL_UNINSPECTABLE.code()),
        None => {
            lease.conn.activity.served();
            opaque(&ctx, &t, client, buf, start).await
        }
    }
}

/// Copy bytes both ways, unread by paddock.
async fn opaque<S>(ctx: &Ctx, t: &Target, mut client: S, first: Vec<u8>, start: Instant)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let limit = ctx.cfg.limits.handshake;
    let Ok(Ok(up)) = tokio::time::timeout(limit, connect_upstream(ctx, t)).await else {
        ctx.emit_at(
            t,
            Outcome::refused(Reason::NET_UPSTREAM_UNREACHABLE.code(), None),
            start,
        );
        let _ = client.shutdown().await;
        return;
    };
    let (mut upstream, _slot) = (up.stream, up.slot);
    if upstream.write_all(&first).await.is_err() {
        return;
    }
    let (up, down, idle) = relay(client, upstream, ctx.cfg.limits.idle).await;
    ctx.emit_at(
        t,
        Outcome {
            request: None,
            why: None,
            allowed: !idle,
            code: if idle {
                Reason::NET_LIMIT_IDLE.code()
            } else {
                Reason::NET_ALLOWED.code()
            },
            up: up + first.len() as u64,
            down,
            credential: None,
        },
        start,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bytes_tell_the_protocol() {
        assert_eq!(classify(b""), None);
        assert_eq!(classify(b"GE"), None);
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Some(Kind::Http));
        assert_eq!(classify(b"OPTIONS * HTTP/1.1"), Some(Kind::Http));
        assert_eq!(classify(b"SSH-2.0-OpenSSH_9.2\r\n"), Some(Kind::Opaque));
        assert_eq!(classify(b"get / HTTP/1.1"), Some(Kind::Opaque));
        assert_eq!(classify(&[0x16, 3, 1]), None);
        assert_eq!(classify(&[0x16, 3, 1, 0, 2, 2, 0]), Some(Kind::Unreadable));
    }
}
