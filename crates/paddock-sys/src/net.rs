//! Sockets: loopback, descriptor passing, polling, the connect the observer makes for a command, sock_diag.

use super::*;

// Kernel constants narrowed to the fields that carry them (each fits; the
// compiler checks the values at build time below).
#[allow(clippy::cast_possible_truncation)]
const IFF_UP_RUNNING: libc::c_short = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
#[allow(clippy::cast_possible_truncation)]
const NLM_DUMP_REQUEST: u16 = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
#[allow(clippy::cast_possible_truncation)]
const AF_UNIX_U8: u8 = libc::AF_UNIX as u8;
#[allow(clippy::cast_possible_truncation)]
const NLMSG_DONE_U16: u16 = libc::NLMSG_DONE as u16;
#[allow(clippy::cast_possible_truncation)]
const NLMSG_ERROR_U16: u16 = libc::NLMSG_ERROR as u16;
#[allow(clippy::cast_possible_truncation)]
const INT_LEN: libc::socklen_t = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
const _: () = assert!(
    (libc::IFF_UP | libc::IFF_RUNNING) <= i16::MAX as i32
        && (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) <= u16::MAX as i32
        && libc::AF_UNIX <= u8::MAX as i32
);

/// Bring the loopback interface up in the current network namespace
/// (a new network namespace starts with `lo` down).
pub fn loopback_up() -> io::Result<()> {
    set_link_flags("lo", IFF_UP_RUNNING)
}

/// An `AF_INET` datagram socket, for interface ioctls.
pub(crate) fn inet_ioctl_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket takes integers only.
    let fd = check_int(unsafe {
        libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0)
    })?;
    Ok(owned(libc::c_long::from(fd)))
}

/// An ifreq naming `name` (at most 15 bytes, no NUL).
pub(crate) fn ifreq_named(name: &str) -> io::Result<libc::ifreq> {
    if name.len() >= libc::IFNAMSIZ || name.as_bytes().contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: ifreq is plain data; zero is a valid initial value.
    let mut req = unsafe { std::mem::zeroed::<libc::ifreq>() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
        *dst = *src as libc::c_char;
    }
    Ok(req)
}

/// Add `flags` to the interface `name`'s flags (read, then written back).
pub(crate) fn set_link_flags(name: &str, flags: libc::c_short) -> io::Result<()> {
    let sock = inet_ioctl_socket()?;
    let mut req = ifreq_named(name)?;
    // SAFETY: `req` is a valid ifreq naming the interface; SIOCGIFFLAGS
    // writes the flags union member.
    check_int(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) })?;
    // SAFETY: the flags member was initialised by SIOCGIFFLAGS above.
    unsafe { req.ifr_ifru.ifru_flags |= flags };
    // SAFETY: `req` is a valid ifreq with name and flags set.
    check_int(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) }).map(drop)
}

/// Send one file descriptor over a unix socket (SCM_RIGHTS), with a
/// one-byte payload.
pub fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> io::Result<()> {
    send_fds(sock, &[fd], &[0])
}

/// Receive one file descriptor sent with [`send_fd`]. `Ok(None)` at end of
/// stream.
pub fn recv_fd(sock: BorrowedFd<'_>) -> io::Result<Option<OwnedFd>> {
    let (payload, fds) = recv_fds(sock, 1)?;
    if payload.is_empty() {
        return Ok(None);
    }
    fds.into_iter()
        .next()
        .map(Some)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no file descriptor received"))
}

/// Look at what is waiting on a stream socket without taking it
/// (`MSG_PEEK`): up to `buf.len()` bytes; 0 at end of stream.
pub fn peek(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes across the call.
    let n = unsafe {
        libc::recv(
            sock.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_PEEK,
        )
    };
    check(n as libc::c_long).map(|n| usize::try_from(n).unwrap_or(0))
}

/// `poll(2)` for readability on `fds`, with a timeout in milliseconds (-1:
/// forever). Returns, for each fd, whether it is readable (or hung up).
pub fn poll_readable(fds: &[BorrowedFd<'_>], timeout_ms: i32) -> io::Result<Vec<bool>> {
    Ok(poll_revents(fds, timeout_ms)?
        .into_iter()
        .map(|r| r != 0)
        .collect())
}

/// Send `payload` with up to 8 file descriptors (SCM_RIGHTS).
pub fn send_fds(sock: BorrowedFd<'_>, fds: &[BorrowedFd<'_>], payload: &[u8]) -> io::Result<()> {
    if fds.len() > 8 || payload.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "1-8 fds and a non-empty payload",
        ));
    }
    let mut iov = libc::iovec {
        iov_base: payload.as_ptr() as *mut libc::c_void,
        iov_len: payload.len(),
    };
    let mut cbuf = [0u64; 16];
    // SAFETY: msghdr is plain data; zero is a valid initial value.
    let mut msg = unsafe { std::mem::zeroed::<libc::msghdr>() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let bytes = u32::try_from(std::mem::size_of_val(fds))
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE only computes a size.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(bytes) } as usize;
        // SAFETY: `cbuf` (128 bytes) holds a header plus 8 ints; the first
        // header pointer is inside it and writable.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(bytes) as usize;
            let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
            for (i, f) in fds.iter().enumerate() {
                std::ptr::write_unaligned(data.add(i), f.as_raw_fd());
            }
        }
    }
    // SAFETY: `msg` and the buffers it points to live across the call; the
    // kernel only reads from `payload`.
    let ret = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    check(ret as libc::c_long).map(drop)
}

/// Receive a payload (up to `max` bytes) and any file descriptors sent
/// with [`send_fds`]. An empty payload means end of stream.
pub fn recv_fds(sock: BorrowedFd<'_>, max: usize) -> io::Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut buf = vec![0u8; max.max(1)];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cbuf = [0u64; 16];
    // SAFETY: msghdr is plain data; zero is a valid initial value.
    let mut msg = unsafe { std::mem::zeroed::<libc::msghdr>() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cbuf);
    // SAFETY: `msg` points to live buffers of the sizes it declares.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    let n = to_len(check(n as libc::c_long)?)?;
    buf.truncate(n);
    let mut fds = Vec::new();
    // SAFETY: the kernel filled the control buffer; the CMSG macros walk it
    // within msg_controllen.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                let count =
                    ((*cmsg).cmsg_len - libc::CMSG_LEN(0) as usize) / std::mem::size_of::<RawFd>();
                for i in 0..count {
                    fds.push(owned(libc::c_long::from(std::ptr::read_unaligned(
                        data.add(i),
                    ))));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((buf, fds))
}

/// A connected pair of unix SOCK_SEQPACKET sockets (message boundaries are
/// kept), close-on-exec.
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors socketpair writes.
    check_int(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    Ok((
        owned(libc::c_long::from(fds[0])),
        owned(libc::c_long::from(fds[1])),
    ))
}

/// `poll(2)` on `fds` for input; returns each fd's `revents`.
pub fn poll_revents(fds: &[BorrowedFd<'_>], timeout_ms: i32) -> io::Result<Vec<i16>> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|f| libc::pollfd {
            fd: f.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        // SAFETY: `p` is a valid array of `p.len()` pollfd structures.
        let r = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, timeout_ms) };
        match check_int(r) {
            Ok(_) => return Ok(p.iter().map(|x| x.revents).collect()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// An integer `SOL_SOCKET` option of the socket open at `fd`.
pub(crate) fn socket_option(fd: BorrowedFd<'_>, name: libc::c_int) -> io::Result<i32> {
    let mut v: libc::c_int = 0;
    let mut len = INT_LEN;
    // SAFETY: `v` and `len` are live, writable and sized as passed.
    check_int(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            name,
            std::ptr::addr_of_mut!(v).cast(),
            &mut len,
        )
    })?;
    Ok(v)
}

/// The address family of the socket open at `fd` (`SO_DOMAIN`).
pub fn socket_domain(fd: BorrowedFd<'_>) -> io::Result<i32> {
    socket_option(fd, libc::SO_DOMAIN)
}

/// `connect(fd, addr)` with `addr` the raw bytes of a socket address
/// (at most 128: a sockaddr_storage).
pub fn connect_raw(fd: BorrowedFd<'_>, addr: &[u8]) -> io::Result<()> {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut sa: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::sockaddr_storage>();
    if addr.len() > size {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: `addr.len()` bytes fit in `sa` (checked above) and the two do
    // not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(
            addr.as_ptr(),
            std::ptr::addr_of_mut!(sa).cast::<u8>(),
            addr.len(),
        );
    }
    let len = libc::socklen_t::try_from(addr.len())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `sa` is initialised and at least `len` bytes long.
    check_int(unsafe {
        libc::connect(
            fd.as_raw_fd(),
            std::ptr::addr_of!(sa).cast::<libc::sockaddr>(),
            len,
        )
    })
    .map(drop)
}

/// The files that bound unix sockets of this network namespace are bound
/// to, as (device, inode) in the kernel's own encoding (major << 20 |
/// minor; the inode's low 32 bits), read through sock_diag
/// (`UDIAG_SHOW_VFS`). A socket's file and the socket are both pinned by
/// the socket while it lives.
pub fn unix_bound_files() -> io::Result<Vec<(u32, u32)>> {
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const UDIAG_SHOW_VFS: u32 = 0x2;
    const UNIX_DIAG_VFS: u16 = 1;
    // SAFETY: socket takes three integers.
    let s = check_int(unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    })
    .map(|fd| owned(libc::c_long::from(fd)))?;
    // nlmsghdr (16) + unix_diag_req (24).
    let mut req = [0u8; 40];
    req[0..4].copy_from_slice(&40u32.to_ne_bytes());
    req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    let flags = NLM_DUMP_REQUEST;
    req[6..8].copy_from_slice(&flags.to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    req[16] = AF_UNIX_U8;
    // udiag_states: every state.
    req[20..24].copy_from_slice(&u32::MAX.to_ne_bytes());
    req[28..32].copy_from_slice(&UDIAG_SHOW_VFS.to_ne_bytes());
    // SAFETY: `req` is live and its length is passed.
    let sent = unsafe { libc::send(s.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        // SAFETY: `buf` is live, writable and its length is passed.
        let n = unsafe { libc::recv(s.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
        if n == 0 {
            return Ok(out);
        }
        let mut at = 0;
        while at + 16 <= n {
            let word = |i: usize| u32::from_ne_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
            let len = word(at) as usize;
            let kind = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
            if len < 16 || at + len > n {
                return Err(io::Error::from_raw_os_error(libc::EPROTO));
            }
            if kind == NLMSG_DONE_U16 {
                return Ok(out);
            }
            if kind == NLMSG_ERROR_U16 {
                let code =
                    i32::from_ne_bytes([buf[at + 16], buf[at + 17], buf[at + 18], buf[at + 19]]);
                return Err(io::Error::from_raw_os_error(-code));
            }
            // unix_diag_msg is 16 bytes; attributes follow, 4-aligned.
            let mut a = at + 32;
            while a + 4 <= at + len {
                let alen = usize::from(u16::from_ne_bytes([buf[a], buf[a + 1]]));
                let akind = u16::from_ne_bytes([buf[a + 2], buf[a + 3]]);
                if alen < 4 || a + alen > at + len {
                    break;
                }
                if akind == UNIX_DIAG_VFS && alen >= 12 {
                    out.push((word(a + 8), word(a + 4)));
                }
                a += (alen + 3) & !3;
            }
            at += (len + 3) & !3;
        }
    }
}

/// Wait up to `timeout_ms` for `fd` to become writable (a connect that
/// finished, either way).
pub fn poll_writable(fd: BorrowedFd<'_>, timeout_ms: i32) -> io::Result<bool> {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    loop {
        // SAFETY: one live pollfd, count 1.
        let r = unsafe { libc::poll(&mut p, 1, timeout_ms) };
        match check_int(r) {
            Ok(n) => return Ok(n > 0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// A socket's pending error (`SO_ERROR`, 0 for none): how a non-blocking
/// connect ended.
pub fn socket_error(fd: BorrowedFd<'_>) -> io::Result<i32> {
    socket_option(fd, libc::SO_ERROR)
}
