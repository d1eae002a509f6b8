//! SOCKS5 (RFC 1928), CONNECT only, no authentication. The request names a
//! host; from there on it is the same judge and the same tunnel handling as
//! `CONNECT` — inspected, SNI-checked, brokered. Refusal replies 2
//! ("connection not allowed by ruleset").

use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::http::tunnel;
use crate::judge::{Ctx, Lease, Via};
use paddock_reasons::Reason;

fn reply(code: u8) -> [u8; 10] {
    [5, code, 0, 1, 0, 0, 0, 0, 0, 0]
}

/// Read the greeting and the request: (host as written, port), or the
/// reply code to send.
async fn request<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
) -> Result<(String, u16), Option<u8>> {
    let mut head = [0u8; 2];
    s.read_exact(&mut head).await.map_err(|_| None)?;
    let mut methods = vec![0u8; usize::from(head[1])];
    s.read_exact(&mut methods).await.map_err(|_| None)?;
    if head[0] != 5 || !methods.contains(&0) {
        let _ = s.write_all(&[5, 0xff]).await;
        return Err(None);
    }
    s.write_all(&[5, 0]).await.map_err(|_| None)?;
    let mut req = [0u8; 4];
    s.read_exact(&mut req).await.map_err(|_| None)?;
    if req[0] != 5 || req[1] != 1 {
        return Err(Some(7)); // command not supported
    }
    let host = match req[3] {
        1 => {
            let mut a = [0u8; 4];
            s.read_exact(&mut a).await.map_err(|_| None)?;
            std::net::Ipv4Addr::from(a).to_string()
        }
        3 => {
            let mut len = [0u8; 1];
            s.read_exact(&mut len).await.map_err(|_| None)?;
            let mut name = vec![0u8; usize::from(len[0])];
            s.read_exact(&mut name).await.map_err(|_| None)?;
            // Not text: no name at all (the judge never sees a lossy one).
            String::from_utf8(name).map_err(|_| Some(2))?
        }
        4 => {
            let mut a = [0u8; 16];
            s.read_exact(&mut a).await.map_err(|_| None)?;
            format!("[{}]", std::net::Ipv6Addr::from(a))
        }
        _ => return Err(Some(8)),
    };
    let mut p = [0u8; 2];
    s.read_exact(&mut p).await.map_err(|_| None)?;
    Ok((host, u16::from_be_bytes(p)))
}

/// Serve one SOCKS5 connection.
pub async fn serve<S>(ctx: Arc<Ctx>, mut s: S, start: Instant, lease: Arc<Lease>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let asked = tokio::time::timeout(ctx.cfg.limits.handshake, request(&mut s)).await;
    let (host, port) = match asked {
        Ok(Ok(hp)) => hp,
        Ok(Err(Some(code))) => {
            let _ = s.write_all(&reply(code)).await;
            return;
        }
        Ok(Err(None)) => return,
        Err(_) => {
            ctx.limit_hit(Reason::NET_LIMIT_HANDSHAKE.code());
            return;
        }
    };
    let target = match ctx.admit(&host, port, Via::Socks5, start).await {
        Ok(t) => t,
        Err(_) => {
            let _ = s.write_all(&reply(2)).await;
            return;
        }
    };
    if s.write_all(&reply(0)).await.is_err() {
        return;
    }
    tunnel::serve(ctx, target, s, start, lease).await;
}
