//! Limits that keep one abusive sandbox from starving its own allowed
//! requests: how many connections at once, how large a request head, how
//! long a handshake may take, how long a connection may sit idle. And the
//! two stream adapters the proxy needs: bytes read while sniffing, put
//! back in front of a stream; and a stream that notices when it goes idle.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The proxy's limits, per sandbox (each sandbox has its own proxy).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections from the sandbox open at once; more are closed at once
    /// (`NET_LIMIT_CONNECTIONS`).
    pub connections: usize,
    /// Largest request head (request line and headers), bytes.
    pub header_bytes: usize,
    /// From accepting a connection to a complete request head, ClientHello
    /// or SOCKS5 request (`NET_LIMIT_HANDSHAKE`, slowloris).
    pub handshake: Duration,
    /// A connection with no bytes either way for this long is closed
    /// (`NET_LIMIT_IDLE`).
    pub idle: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections: 256,
            header_bytes: 64 * 1024,
            handshake: Duration::from_secs(10),
            idle: Duration::from_secs(300),
        }
    }
}

impl Limits {
    /// The connection limit that fits `fds` open files (each connection
    /// needs two: the sandbox's side and the server's), keeping some spare.
    pub fn fit_fds(mut self, fds: u64) -> Self {
        let fit = usize::try_from(fds.saturating_sub(64) / 2).unwrap_or(usize::MAX);
        self.connections = self.connections.min(fit.max(8));
        self
    }
}

/// `inner`, with `prefix` read first: what the proxy read to tell the
/// protocol, handed on unchanged.
pub struct Prefixed<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Prefixed<S> {
    /// Put `prefix` back in front of `inner`.
    pub fn new(prefix: Vec<u8>, inner: S) -> Self {
        Prefixed {
            prefix: Bytes::from(prefix),
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let chunk = self.prefix.split_to(n);
            buf.put_slice(&chunk);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// When a connection last moved a byte, shared by its two sides.
#[derive(Clone)]
pub struct Activity {
    epoch: Instant,
    last_ms: Arc<AtomicU64>,
    /// Has the connection done real work (a request answered, a tunnel
    /// opened)? Under pressure, connections that never did go first.
    served: Arc<std::sync::atomic::AtomicBool>,
}

impl Activity {
    /// Now.
    pub fn new() -> Self {
        Activity {
            epoch: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
            served: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
    }
    /// The connection did real work.
    pub fn served(&self) {
        self.served.store(true, Ordering::Relaxed);
    }
    /// Did it?
    pub fn has_served(&self) -> bool {
        self.served.load(Ordering::Relaxed)
    }
    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }
    /// How long nothing has moved.
    pub fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last)
    }
    /// Resolves once nothing has moved for `idle`.
    pub async fn until_idle(&self, idle: Duration) {
        loop {
            let quiet = self.idle_for();
            if quiet >= idle {
                return;
            }
            tokio::time::sleep(idle - quiet).await;
        }
    }
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

/// A stream that records its activity.
pub struct Watched<S> {
    inner: S,
    activity: Activity,
}

impl<S> Watched<S> {
    /// Watch `inner`.
    pub fn new(inner: S, activity: Activity) -> Self {
        Watched { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Copy both ways until either side closes or nothing moves for `idle`.
/// Returns bytes (client → server, server → client) and whether it ended
/// by going idle.
pub async fn relay<A, B>(a: A, b: B, idle: Duration) -> (u64, u64, bool)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let act = Activity::new();
    let mut a = Watched::new(a, act.clone());
    let mut b = Watched::new(b, act.clone());
    tokio::select! {
        r = tokio::io::copy_bidirectional(&mut a, &mut b) => {
            let (u, d) = r.unwrap_or((0, 0));
            (u, d, false)
        }
        _ = act.until_idle(idle) => (0, 0, true),
    }
}
