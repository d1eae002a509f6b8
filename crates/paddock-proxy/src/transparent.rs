//! The transparent path: the sandbox's TUN device, served by a user-space
//! network stack (smoltcp), so that a program ignoring the proxy variables
//! meets the same judge as one honouring them.
//!
//! Every IP packet the sandbox sends arrives here, and is sorted before
//! the stack sees it:
//!
//! - **TCP**: a SYN opens a connection of the stack to exactly the address
//!   and port the sandbox asked for. Its bytes travel to a task that treats
//!   it as a `CONNECT` to that destination: a synthetic address stands for
//!   the name it was given to ([`crate::dns`]), any other address is an
//!   address literal; then [`Ctx::admit`] and the tunnel's code (SNI,
//!   inspection, brokering, rules) exactly as for the proxy. TCP to the
//!   resolver's port 53 is DNS. The number of connections is the proxy's
//!   limit, shared with it.
//! - **UDP** to port 53, whatever the address: a DNS question, answered
//!   from the policy. Other UDP is dropped (`NET_UDP_REFUSED`).
//! - **ICMP** echo requests are dropped (`NET_ICMP_REFUSED`); other ICMP
//!   and every other protocol, silently.
//!
//! The stack owns no host socket: the only way from here to a server is the
//! judge's pinned connection.

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use smoltcp::iface::{Config as IfaceConfig, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::{tcp, udp};
use smoltcp::wire::{
    HardwareAddress, IpAddress, IpCidr, IpListenEndpoint, IpProtocol, Ipv4Packet, Ipv6Packet,
    TcpPacket, UdpPacket,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};
use tokio::sync::{Notify, Semaphore};

use crate::dns::{self, Bad, Pool};
use crate::http::tunnel;
use crate::judge::{Ctx, Lease, Outcome, Via};
use crate::limits;
use paddock_reasons::Reason;
use paddock_types::transparent as t;

/// The TUN device's MTU.
const MTU: usize = t::MTU as usize;
/// Each connection's window, each way, in the stack and in the pipe to its
/// task (pages are touched only as bytes arrive).
const WINDOW: usize = 256 * 1024;
/// Packets read from the device before the stack runs.
const BURST: usize = 256;

/// The device as smoltcp sees it: packets read from the TUN wait in `rx`;
/// what the stack sends collects in `tx` until written to the TUN.
struct Queue {
    rx: VecDeque<Vec<u8>>,
    tx: Vec<Vec<u8>>,
}

struct Rx(Vec<u8>);
struct Tx<'a>(&'a mut Vec<Vec<u8>>);

impl phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut b = vec![0u8; len];
        let r = f(&mut b);
        self.0.push(b);
        r
    }
}

impl Device for Queue {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _: smoltcp::time::Instant) -> Option<(Rx, Tx<'_>)> {
        let p = self.rx.pop_front()?;
        Some((Rx(p), Tx(&mut self.tx)))
    }

    fn transmit(&mut self, _: smoltcp::time::Instant) -> Option<Tx<'_>> {
        Some(Tx(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ip;
        c.max_transmission_unit = MTU;
        c
    }
}

/// Wakes the stack's loop when a connection's task reads or writes.
struct Wakeup(Arc<Notify>);

impl Wake for Wakeup {
    fn wake(self: Arc<Self>) {
        self.0.notify_one();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.notify_one();
    }
}

/// One TCP connection: the stack's socket and the stack's end of the pipe
/// to the task that judges and serves it.
struct Flow {
    key: (SocketAddr, SocketAddr),
    pipe: DuplexStream,
    /// The sandbox sent its FIN and every byte before it reached the task.
    shut_to_task: bool,
    /// The task has nothing more to send (its end closed).
    task_done: bool,
    /// Seen closed by a previous pass.
    ended: bool,
    /// The handshake completed once.
    established: bool,
    /// When the task ended.
    done_at: Option<Instant>,
}

/// What a connection is to, decided from its address alone.
enum Dest {
    /// A name, through its synthetic address.
    Name(String),
    /// An address the sandbox named itself.
    Literal(IpAddr),
    /// The resolver, over TCP.
    Dns,
    /// A synthetic address never given out, or the resolver on another port.
    Unknown,
}

/// Serve the TUN device `fd` until it closes (the sandbox ended).
pub async fn serve(fd: OwnedFd, ctx: Arc<Ctx>, slots: Arc<Semaphore>) {
    let tun = match paddock_sys::async_fd(fd) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("paddock: the transparent path could not start: {e}");
            return;
        }
    };
    let pool = Arc::new(Pool::default());
    let notify = Arc::new(Notify::new());
    let waker = Waker::from(Arc::new(Wakeup(notify.clone())));
    let mut dev = Queue {
        rx: VecDeque::new(),
        tx: Vec::new(),
    };
    let mut cfg = IfaceConfig::new(HardwareAddress::Ip);
    cfg.random_seed = seed();
    let epoch = Instant::now();
    let now = || smoltcp::time::Instant::from_micros(micros(epoch));
    let mut iface = Interface::new(cfg, &mut dev, now());
    // Accept packets for every address: the sandbox's destination is the
    // connection's local end here.
    iface.set_any_ip(true);
    iface.update_ip_addrs(|a| {
        let _ = a.push(IpCidr::new(IpAddress::Ipv4(t::RESOLVER_V4), t::PREFIX_V4));
        let _ = a.push(IpCidr::new(IpAddress::Ipv6(t::RESOLVER_V6), t::PREFIX_V6));
    });
    let mut sockets = SocketSet::new(Vec::new());
    let dns_udp = {
        let buf =
            || udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 64], vec![0u8; 64 * 1024]);
        let mut s = udp::Socket::new(buf(), buf());
        // Port 53 on every address: a program with its own resolver
        // address asks paddock too.
        let _ = s.bind(IpListenEndpoint {
            addr: None,
            port: 53,
        });
        sockets.add(s)
    };
    let mut flows: HashMap<SocketHandle, Flow> = HashMap::new();
    let mut by_key: HashMap<(SocketAddr, SocketAddr), SocketHandle> = HashMap::new();
    let mut buf = vec![0u8; 65536];
    loop {
        // 1. The sandbox's packets, sorted; new connections get a socket.
        for p in std::mem::take(&mut dev.rx) {
            match sort(&p, &ctx) {
                Verdict::Drop => {}
                Verdict::Stack => dev.rx.push_back(p),
                Verdict::Open(src, dst) => {
                    // A SYN sent again finds its socket; one without room
                    // finds none and is reset by the stack.
                    if !by_key.contains_key(&(src, dst)) {
                        open(
                            &ctx,
                            &slots,
                            &pool,
                            &mut sockets,
                            &mut flows,
                            &mut by_key,
                            src,
                            dst,
                        );
                    }
                    dev.rx.push_back(p);
                }
            }
        }
        // 2. The stack, then the pipes both ways, then the stack again for
        // what the pipes gave it.
        iface.poll(now(), &mut dev, &mut sockets);
        pump(
            &mut sockets,
            &mut flows,
            &mut by_key,
            &mut Context::from_waker(&waker),
            ctx.cfg.limits.handshake,
        );
        answer_dns(&ctx, &pool, sockets.get_mut::<udp::Socket>(dns_udp));
        iface.poll(now(), &mut dev, &mut sockets);
        // 3. Out to the sandbox. A full device queue drops the packet;
        // TCP sends it again.
        for p in dev.tx.drain(..) {
            let _ = tun.get_ref().write(&p);
        }
        // 4. Wait for a packet, a task, or the stack's next timer.
        // Nothing to do until a packet, a task or the stack's own timer
        // (retransmission, keep-alive) — or a closed connection's removal.
        let delay = if flows.values().any(|f| f.ended) {
            Duration::from_millis(10)
        } else if flows.values().any(|f| f.done_at.is_some()) {
            Duration::from_secs(1)
        } else {
            iface
                .poll_delay(now(), &sockets)
                .map(|d| Duration::from_micros(d.total_micros()))
                .unwrap_or(Duration::from_secs(3600))
        };
        tokio::select! {
            r = tun.readable() => {
                let Ok(mut g) = r else { return };
                for _ in 0..BURST {
                    match g.try_io(|f| f.get_ref().read(&mut buf)) {
                        Ok(Ok(0)) => return,
                        Ok(Ok(n)) => dev.rx.push_back(buf[..n].to_vec()),
                        // The device is gone: the sandbox ended.
                        Ok(Err(e)) if e.kind() != std::io::ErrorKind::Interrupted => return,
                        Ok(Err(_)) => {}
                        Err(_would_block) => break,
                    }
                }
            }
            _ = notify.notified() => {}
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

fn micros(epoch: Instant) -> i64 {
    i64::try_from(epoch.elapsed().as_micros()).unwrap_or(i64::MAX)
}

fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    #[allow(clippy::cast_possible_truncation)]
    let low = t as u64;
    low ^ u64::from(std::process::id()).rotate_left(32)
}

enum Verdict {
    /// Not for the stack.
    Drop,
    /// For the stack as it is.
    Stack,
    /// A TCP SYN: a connection from the first address to the second.
    Open(SocketAddr, SocketAddr),
}

/// Sort one packet from the sandbox (see the module's text).
fn sort(p: &[u8], ctx: &Ctx) -> Verdict {
    let (src, dst, proto, payload): (IpAddr, IpAddr, IpProtocol, &[u8]) =
        match p.first().map(|b| b >> 4) {
            Some(4) => {
                let Ok(ip) = Ipv4Packet::new_checked(p) else {
                    return Verdict::Drop;
                };
                if ip.more_frags() || ip.frag_offset() != 0 {
                    return Verdict::Drop;
                }
                let hl = usize::from(ip.header_len());
                let end = usize::from(ip.total_len()).min(p.len());
                (
                    IpAddr::V4(ip.src_addr()),
                    IpAddr::V4(ip.dst_addr()),
                    ip.next_header(),
                    p.get(hl..end).unwrap_or_default(),
                )
            }
            Some(6) => {
                let Ok(ip) = Ipv6Packet::new_checked(p) else {
                    return Verdict::Drop;
                };
                let end = (40 + usize::from(ip.payload_len())).min(p.len());
                (
                    IpAddr::V6(ip.src_addr()),
                    IpAddr::V6(ip.dst_addr()),
                    ip.next_header(),
                    p.get(40..end).unwrap_or_default(),
                )
            }
            _ => return Verdict::Drop,
        };
    if src != IpAddr::V4(t::SANDBOX_V4) && src != IpAddr::V6(t::SANDBOX_V6) {
        return Verdict::Drop;
    }
    let start = Instant::now();
    match proto {
        IpProtocol::Tcp => {
            let Ok(tcp) = TcpPacket::new_checked(payload) else {
                return Verdict::Drop;
            };
            if tcp.syn() && !tcp.ack() {
                Verdict::Open(
                    SocketAddr::new(src, tcp.src_port()),
                    SocketAddr::new(dst, tcp.dst_port()),
                )
            } else {
                Verdict::Stack
            }
        }
        IpProtocol::Udp => {
            let Ok(udp) = UdpPacket::new_checked(payload) else {
                return Verdict::Drop;
            };
            if udp.dst_port() == 53 {
                return Verdict::Stack;
            }
            ctx.emit(
                &shown(dst),
                udp.dst_port(),
                Via::Transparent,
                Outcome::refused(Reason::NET_UDP_REFUSED.code(), None)
                    .because("only DNS leaves the sandbox as UDP"),
                start,
            );
            Verdict::Drop
        }
        IpProtocol::Icmp | IpProtocol::Icmpv6 => {
            // Echo request: type 8 (ICMPv4) or 128 (ICMPv6).
            let echo = matches!(
                (proto, payload.first()),
                (IpProtocol::Icmp, Some(8)) | (IpProtocol::Icmpv6, Some(128))
            );
            if echo {
                ctx.emit(
                    &shown(dst),
                    0,
                    Via::Transparent,
                    Outcome::refused(Reason::NET_ICMP_REFUSED.code(), None)
                        .because("ping leaves no sandbox"),
                    start,
                );
            }
            Verdict::Drop
        }
        _ => Verdict::Drop,
    }
}

/// An address as a host the judge reads: IPv6 in brackets.
fn shown(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    }
}

/// Open the stack's side of a new connection and start its task. With no
/// room, nothing is opened (the SYN then meets no socket and is reset).
#[allow(clippy::too_many_arguments)]
fn open(
    ctx: &Arc<Ctx>,
    slots: &Arc<Semaphore>,
    pool: &Arc<Pool>,
    sockets: &mut SocketSet<'static>,
    flows: &mut HashMap<SocketHandle, Flow>,
    by_key: &mut HashMap<(SocketAddr, SocketAddr), SocketHandle>,
    src: SocketAddr,
    dst: SocketAddr,
) {
    // Sockets waiting for their handshake count too: a SYN flood is
    // bounded by the same number as the proxy's connections.
    if flows.len() >= ctx.cfg.limits.connections.saturating_mul(2) {
        ctx.limit_hit_via(Reason::NET_LIMIT_CONNECTIONS.code(), Via::Transparent);
        return;
    }
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0u8; WINDOW]),
        tcp::SocketBuffer::new(vec![0u8; WINDOW]),
    );
    s.set_nagle_enabled(false);
    s.set_ack_delay(None);
    // A handshake the sandbox never finishes (a SYN flood) ends like a
    // proxy connection that never sends its request; once established,
    // the task's idle limit applies instead.
    s.set_timeout(Some(smoltcp::time::Duration::from_millis(
        u64::try_from(ctx.cfg.limits.handshake.as_millis()).unwrap_or(u64::MAX),
    )));
    let local = match dst.ip() {
        IpAddr::V4(a) => IpAddress::Ipv4(a),
        IpAddr::V6(a) => IpAddress::Ipv6(a),
    };
    if s.listen(IpListenEndpoint {
        addr: Some(local),
        port: dst.port(),
    })
    .is_err()
    {
        return;
    }
    let h = sockets.add(s);
    let (ours, theirs) = tokio::io::duplex(WINDOW);
    flows.insert(
        h,
        Flow {
            key: (src, dst),
            pipe: ours,
            shut_to_task: false,
            task_done: false,
            ended: false,
            established: false,
            done_at: None,
        },
    );
    by_key.insert((src, dst), h);
    let dest = destination(pool, dst);
    tokio::spawn(connection(
        ctx.clone(),
        slots.clone(),
        pool.clone(),
        theirs,
        dst,
        dest,
    ));
}

fn destination(pool: &Pool, dst: SocketAddr) -> Dest {
    let ip = dst.ip();
    if ip == IpAddr::V4(t::RESOLVER_V4) || ip == IpAddr::V6(t::RESOLVER_V6) {
        return if dst.port() == 53 {
            Dest::Dns
        } else {
            Dest::Unknown
        };
    }
    if t::index_of(ip).is_some() {
        return match pool.name_of(ip) {
            Some(n) => Dest::Name(n),
            None => Dest::Unknown,
        };
    }
    Dest::Literal(ip)
}

/// Move bytes between each socket and its pipe; close and remove what is
/// finished.
fn pump(
    sockets: &mut SocketSet<'static>,
    flows: &mut HashMap<SocketHandle, Flow>,
    by_key: &mut HashMap<(SocketAddr, SocketAddr), SocketHandle>,
    cx: &mut Context<'_>,
    grace: Duration,
) {
    let mut gone = Vec::new();
    for (h, f) in flows.iter_mut() {
        let s = sockets.get_mut::<tcp::Socket>(*h);
        if !f.established && s.state() == tcp::State::Established {
            f.established = true;
            s.set_timeout(None);
        }
        // Sandbox → task.
        while s.can_recv() {
            let r = s.recv(|b| match Pin::new(&mut f.pipe).poll_write(cx, b) {
                Poll::Ready(Ok(n)) => (n, Ok(n)),
                Poll::Ready(Err(_)) => (0, Err(())),
                Poll::Pending => (0, Ok(0)),
            });
            match r {
                Ok(Ok(0)) => break,
                Ok(Ok(_)) => {}
                _ => {
                    s.abort();
                    break;
                }
            }
        }
        // The sandbox's FIN, once every byte before it was passed on.
        let past_handshake = !matches!(s.state(), tcp::State::Listen | tcp::State::SynReceived);
        if !f.shut_to_task
            && past_handshake
            && !s.may_recv()
            && s.recv_queue() == 0
            && Pin::new(&mut f.pipe).poll_shutdown(cx).is_ready()
        {
            f.shut_to_task = true;
        }
        // Task → sandbox.
        while !f.task_done && s.can_send() {
            let r = s.send(|b| {
                let mut rb = ReadBuf::new(b);
                match Pin::new(&mut f.pipe).poll_read(cx, &mut rb) {
                    Poll::Ready(Ok(())) if rb.filled().is_empty() => (0, Some(true)),
                    Poll::Ready(Ok(())) => {
                        let n = rb.filled().len();
                        (n, Some(false))
                    }
                    Poll::Ready(Err(_)) => (0, Some(true)),
                    Poll::Pending => (0, None),
                }
            });
            match r {
                Ok(Some(false)) => {}
                Ok(Some(true)) => {
                    f.task_done = true;
                    f.done_at = Some(Instant::now());
                    s.close();
                }
                _ => break,
            }
        }
        // The task is gone but the sandbox keeps its end open (it never
        // closes, FIN-WAIT-2 has no end of its own): reset after the
        // grace, so held sockets cannot fill the table.
        if f.done_at.is_some_and(|t| t.elapsed() >= grace) && s.state() != tcp::State::Closed {
            s.abort();
        }
        // Removed one pass after it closed: a reset the stack still has to
        // send (an abort above) goes out with the next poll first.
        if matches!(s.state(), tcp::State::Closed | tcp::State::TimeWait) {
            if f.ended {
                gone.push(*h);
            }
            f.ended = true;
        }
    }
    for h in gone {
        if let Some(f) = flows.remove(&h) {
            by_key.remove(&f.key);
        }
        sockets.remove(h);
    }
}

/// Answer every DNS question waiting on the UDP socket.
fn answer_dns(ctx: &Ctx, pool: &Pool, s: &mut udp::Socket<'_>) {
    while let Ok((data, meta)) = s.recv() {
        let query = data.to_vec();
        let Some(reply) = dns_reply(ctx, pool, &query) else {
            continue;
        };
        let _ = s.send_slice(
            &reply,
            udp::UdpMetadata {
                endpoint: meta.endpoint,
                local_address: meta.local_address,
                meta: Default::default(),
            },
        );
    }
}

/// The answer to one DNS message, or none (not a query).
fn dns_reply(ctx: &Ctx, pool: &Pool, query: &[u8]) -> Option<Vec<u8>> {
    let start = Instant::now();
    let q = match dns::parse_query(query) {
        Ok(q) => q,
        Err(Bad::Drop) => return None,
        Err(Bad::Answer { id, rd, rcode }) => {
            ctx.emit(
                "-",
                53,
                Via::Dns,
                Outcome::refused(Reason::NET_DNS_BAD_QUERY.code(), None),
                start,
            );
            return Some(dns::bare(id, rd, rcode));
        }
    };
    if !dns::internet(&q) {
        return Some(dns::response(&q, dns::REFUSED, &[]));
    }
    let d = paddock_policy::decide_name(&ctx.cfg.policy, &q.name);
    if !d.allowed {
        let shown = q.name.escape_default().to_string();
        ctx.emit(
            &shown,
            53,
            Via::Dns,
            Outcome::refused(Reason::NET_DNS_REFUSED.code(), None).because(&d.rule),
            start,
        );
        return Some(dns::response(&q, dns::REFUSED, &[]));
    }
    let Some((i, new)) = pool.index(&q.name) else {
        ctx.emit(
            &q.name,
            53,
            Via::Dns,
            Outcome::refused(Reason::NET_DNS_POOL_FULL.code(), None),
            start,
        );
        return Some(dns::response(&q, dns::SERVFAIL, &[]));
    };
    if new {
        ctx.emit(
            &q.name,
            53,
            Via::Dns,
            Outcome::allowed(None, 0, 0).because(&d.rule),
            start,
        );
    }
    Some(dns::response(&q, dns::NOERROR, &dns::addresses(i, q.qtype)))
}

/// One connection's task: judged and served as a `CONNECT` to its
/// destination would be.
async fn connection(
    ctx: Arc<Ctx>,
    slots: Arc<Semaphore>,
    pool: Arc<Pool>,
    stream: DuplexStream,
    dst: SocketAddr,
    dest: Dest,
) {
    let Some(slot) = crate::take_slot(&ctx, &slots).await else {
        return;
    };
    let lease = Lease::new(&ctx, slot);
    let start = Instant::now();
    let mut s = limits::Watched::new(stream, lease.conn.activity.clone());
    let work = async {
        let host = match dest {
            Dest::Name(n) => n,
            Dest::Literal(ip) => shown(ip),
            Dest::Dns => return dns_over_tcp(&ctx, &pool, &mut s).await,
            Dest::Unknown => {
                ctx.emit(
                    &shown(dst.ip()),
                    dst.port(),
                    Via::Transparent,
                    Outcome::refused(Reason::NET_TRANSPARENT_UNKNOWN.code(), None)
                        .because("no name was given this address"),
                    start,
                );
                return;
            }
        };
        let Ok(target) = ctx.admit(&host, dst.port(), Via::Transparent, start).await else {
            return;
        };
        tunnel::serve(ctx.clone(), target, s, start, lease.clone()).await;
    };
    lease.guard(work).await;
}

/// DNS over TCP (RFC 7766): two-byte lengths, one question each, until
/// the client closes or is quiet for the handshake limit.
async fn dns_over_tcp<S: AsyncRead + AsyncWrite + Unpin>(ctx: &Ctx, pool: &Pool, s: &mut S) {
    loop {
        let mut len = [0u8; 2];
        let Ok(Ok(_)) =
            tokio::time::timeout(ctx.cfg.limits.handshake, s.read_exact(&mut len)).await
        else {
            return;
        };
        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
        let Ok(Ok(_)) =
            tokio::time::timeout(ctx.cfg.limits.handshake, s.read_exact(&mut msg)).await
        else {
            return;
        };
        let Some(reply) = dns_reply(ctx, pool, &msg) else {
            return;
        };
        let Ok(n) = u16::try_from(reply.len()) else {
            return;
        };
        let mut out = n.to_be_bytes().to_vec();
        out.extend_from_slice(&reply);
        if s.write_all(&out).await.is_err() {
            return;
        }
    }
}
