//! A TUN device in the current network namespace: created, addressed and
//! routed (netlink), its descriptor returned to carry out of the sandbox.

use super::*;
use std::net::IpAddr;

const TUNSETIFF: libc::c_ulong = 0x4004_54ca; // _IOW('T', 202, int)
const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_F_NODAD: u8 = 0x02;
const RTA_OIF: u16 = 4;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RTN_UNICAST: u8 = 1;
#[allow(clippy::cast_possible_truncation)]
const NLM_CREATE_REQUEST: u16 =
    (libc::NLM_F_REQUEST | libc::NLM_F_ACK | libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16;
#[allow(clippy::cast_possible_truncation)]
const AF_INET_U8: u8 = libc::AF_INET as u8;
#[allow(clippy::cast_possible_truncation)]
const AF_INET6_U8: u8 = libc::AF_INET6 as u8;
const _: () = assert!(
    (libc::NLM_F_REQUEST | libc::NLM_F_ACK | libc::NLM_F_CREATE | libc::NLM_F_EXCL)
        <= u16::MAX as i32
        && libc::AF_INET6 <= u8::MAX as i32
);

/// Create the TUN device `name` (layer 3, no packet information header),
/// bring it up, give it each address in `addrs` (address, prefix length;
/// IPv6 ones without duplicate address detection, which would hold them
/// back for a second) and make it the default route for IPv4 and, when an
/// IPv6 address is given, for IPv6. The device's descriptor is returned
/// non-blocking and close-on-exec: it reads and writes whole IP packets,
/// and the device lives as long as the descriptor.
pub fn tun_up(name: &str, mtu: u32, addrs: &[(IpAddr, u8)]) -> io::Result<OwnedFd> {
    let path = c"/dev/net/tun";
    // SAFETY: `path` is NUL-terminated; open takes integers otherwise.
    let fd = check_int(unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDWR | libc::O_CLOEXEC | libc::O_NONBLOCK,
        )
    })?;
    let tun = owned(libc::c_long::from(fd));
    let mut req = ifreq_named(name)?;
    req.ifr_ifru.ifru_flags = IFF_TUN | IFF_NO_PI;
    // SAFETY: `req` is a valid ifreq with the name and flags TUNSETIFF reads.
    check_int(unsafe { libc::ioctl(tun.as_raw_fd(), TUNSETIFF as _, &mut req) })?;
    set_mtu(name, mtu)?;
    set_link_flags(name, IFF_UP_FLAG)?;
    let cname = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `cname` is NUL-terminated.
    let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: socket takes three integers.
    let nl = check_int(unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    })
    .map(|fd| owned(libc::c_long::from(fd)))?;
    let mut seq = 1;
    let mut v6 = false;
    for (addr, prefix) in addrs {
        let (family, bytes, flags) = match addr {
            IpAddr::V4(a) => (AF_INET_U8, a.octets().to_vec(), 0),
            IpAddr::V6(a) => {
                v6 = true;
                (AF_INET6_U8, a.octets().to_vec(), IFA_F_NODAD)
            }
        };
        // ifaddrmsg: family, prefixlen, flags, scope, index.
        let mut body = vec![family, *prefix, flags, RT_SCOPE_UNIVERSE];
        body.extend_from_slice(&index.to_ne_bytes());
        attr(&mut body, IFA_LOCAL, &bytes);
        attr(&mut body, IFA_ADDRESS, &bytes);
        netlink_request(nl.as_fd(), RTM_NEWADDR, seq, &body)?;
        seq += 1;
    }
    let families = if v6 {
        vec![AF_INET_U8, AF_INET6_U8]
    } else {
        vec![AF_INET_U8]
    };
    for family in families {
        // rtmsg: family, dst_len, src_len, tos, table, protocol, scope,
        // type, flags (u32).
        let mut body = vec![
            family,
            0,
            0,
            0,
            RT_TABLE_MAIN,
            RTPROT_BOOT,
            RT_SCOPE_UNIVERSE,
            RTN_UNICAST,
        ];
        body.extend_from_slice(&0u32.to_ne_bytes());
        attr(&mut body, RTA_OIF, &index.to_ne_bytes());
        netlink_request(nl.as_fd(), RTM_NEWROUTE, seq, &body)?;
        seq += 1;
    }
    Ok(tun)
}

/// Register `fd` with the current tokio runtime for readiness, owning it
/// (as a `File`, to read and write it). Must be called inside a runtime.
pub fn async_fd(fd: OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<std::fs::File>> {
    let fd = std::fs::File::from(fd);
    // SAFETY: the AsyncFd takes `fd` by value and owns it until it is
    // dropped, which deregisters it first: the descriptor cannot be closed
    // (or its number reused) while registered, the condition `register`
    // states.
    unsafe { tokio::io::unix::AsyncFd::register(fd) }.map_err(io::Error::from)
}

/// Set the MTU of the interface `name`.
fn set_mtu(name: &str, mtu: u32) -> io::Result<()> {
    let sock = inet_ioctl_socket()?;
    let mut req = ifreq_named(name)?;
    req.ifr_ifru.ifru_mtu =
        libc::c_int::try_from(mtu).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `req` is a valid ifreq naming the interface, with the MTU set.
    check_int(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFMTU, &req) }).map(drop)
}

#[allow(clippy::cast_possible_truncation)]
const IFF_UP_FLAG: libc::c_short = libc::IFF_UP as libc::c_short;

/// Append a route attribute (length, type, value, padded to 4 bytes).
fn attr(body: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = u16::try_from(4 + value.len()).unwrap_or(u16::MAX);
    body.extend_from_slice(&len.to_ne_bytes());
    body.extend_from_slice(&kind.to_ne_bytes());
    body.extend_from_slice(value);
    while !body.len().is_multiple_of(4) {
        body.push(0);
    }
}

/// Send one rtnetlink request and wait for its acknowledgement.
fn netlink_request(nl: BorrowedFd<'_>, kind: u16, seq: u32, body: &[u8]) -> io::Result<()> {
    let len =
        u32::try_from(16 + body.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?;
    let mut msg = Vec::with_capacity(16 + body.len());
    msg.extend_from_slice(&len.to_ne_bytes());
    msg.extend_from_slice(&kind.to_ne_bytes());
    msg.extend_from_slice(&NLM_CREATE_REQUEST.to_ne_bytes());
    msg.extend_from_slice(&seq.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(body);
    // SAFETY: `msg` is live and its length is passed; the kernel only reads it.
    let sent = unsafe { libc::send(nl.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: `buf` is live, writable and its length is passed.
        let n = unsafe { libc::recv(nl.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
        let mut at = 0;
        while at + 20 <= n {
            let len = u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]) as usize;
            let kind = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
            let got = u32::from_ne_bytes([buf[at + 8], buf[at + 9], buf[at + 10], buf[at + 11]]);
            if len < 16 || at + len > n {
                return Err(io::Error::from_raw_os_error(libc::EPROTO));
            }
            if kind == NLMSG_ERROR_KIND && got == seq {
                let code =
                    i32::from_ne_bytes([buf[at + 16], buf[at + 17], buf[at + 18], buf[at + 19]]);
                return if code == 0 {
                    Ok(())
                } else {
                    Err(io::Error::from_raw_os_error(-code))
                };
            }
            at += (len + 3) & !3;
        }
        if n == 0 {
            return Err(io::Error::from_raw_os_error(libc::EPROTO));
        }
    }
}

#[allow(clippy::cast_possible_truncation)]
const NLMSG_ERROR_KIND: u16 = libc::NLMSG_ERROR as u16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_padded_to_four_bytes() {
        let mut b = Vec::new();
        attr(&mut b, 1, &[1, 2, 3, 4, 5]);
        assert_eq!(b.len(), 12);
        assert_eq!(u16::from_ne_bytes([b[0], b[1]]), 9);
        assert_eq!(&b[4..9], &[1, 2, 3, 4, 5]);
    }

    #[test]
    fn interface_names_are_checked() {
        assert!(ifreq_named("paddock0").is_ok());
        assert!(ifreq_named("a-name-far-too-long").is_err());
        assert!(ifreq_named("nul\0").is_err());
    }
}

#[cfg(test)]
mod namespace_tests {
    use super::*;

    /// Run by hand in a network namespace of its own (`unshare -Urn`
    /// TEST_BINARY --ignored tun_comes_up): the device, its addresses and
    /// routes, as `ip` would show them.
    #[test]
    #[ignore = "needs a network namespace of its own"]
    fn tun_comes_up() {
        let fd = tun_up(
            "paddock0",
            65520,
            &[
                ("198.18.0.2".parse().unwrap(), 15),
                ("fd70:6164:6463::2".parse().unwrap(), 48),
            ],
        )
        .unwrap();
        let out = std::process::Command::new("ip")
            .args(["addr"])
            .output()
            .unwrap();
        println!("{}", String::from_utf8_lossy(&out.stdout));
        let out = std::process::Command::new("ip")
            .args(["route"])
            .output()
            .unwrap();
        println!("{}", String::from_utf8_lossy(&out.stdout));
        let out = std::process::Command::new("ip")
            .args(["-6", "route"])
            .output()
            .unwrap();
        println!("{}", String::from_utf8_lossy(&out.stdout));
        drop(fd);
    }
}
