//! Which addresses a public name may not lead to: loopback, private,
//! link-local and the like by range, and — whatever its range — any address
//! of this host itself (a host service bound to the machine's public
//! address is still the host).

use std::net::{IpAddr, SocketAddr, UdpSocket};

/// Loopback, RFC 1918, CGNAT, link-local, ULA, unspecified, broadcast,
/// multicast, documentation-free reserved ranges, and the IPv4 forms
/// embedded in IPv6 (mapped, compatible, NAT64, 6to4) of any of these.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
                || o[0] >= 240
                // Azure's platform endpoint (wire server), like a metadata
                // service.
                || o == [168, 63, 129, 16]
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let embedded = |a: u8, b: u8, c: u8, d: u8| is_private(IpAddr::from([a, b, c, d]));
            let ([a, b], [c, d]) = (s[6].to_be_bytes(), s[7].to_be_bytes());
            let ([e, f], [g, h]) = (s[1].to_be_bytes(), s[2].to_be_bytes());
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] & 0xffc0) == 0xfec0
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_private(IpAddr::V4(v4)))
                // ::a.b.c.d (deprecated IPv4-compatible)
                || (s[..6] == [0; 6] && embedded(a, b, c, d))
                // 64:ff9b::/96 (NAT64)
                || (s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] && embedded(a, b, c, d))
                // 2002::/16 (6to4) carries the IPv4 address in bits 16..48
                || (s[0] == 0x2002 && embedded(e, f, g, h))
        }
    }
}

/// Is `ip` one of this host's own addresses? Asked of the kernel's routing
/// table at the moment of the connection: a datagram socket "connected" to
/// the address picks it as its own source only when the route is local.
/// No packet is sent.
pub fn is_own(ip: IpAddr) -> bool {
    let any: SocketAddr = match ip {
        IpAddr::V4(_) => "0.0.0.0:0".parse().expect("literal"),
        IpAddr::V6(_) => "[::]:0".parse().expect("literal"),
    };
    let Ok(s) = UdpSocket::bind(any) else {
        return false;
    };
    if s.connect(SocketAddr::new(ip, 9)).is_err() {
        return false;
    }
    s.local_addr().is_ok_and(|l| l.ip() == ip)
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
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "0.0.0.0",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:4700::1111", "8.8.8.8"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn own_addresses_are_recognised() {
        assert!(is_own("127.0.0.1".parse().unwrap()));
        assert!(!is_own("203.0.113.9".parse().unwrap()));
    }
}

/// The uid owning the TCP socket whose local address is `from` and whose
/// peer is `to`, from the kernel's table of this network namespace
/// (/proc/net/tcp, tcp6): who opened a connection to our listener. None
/// if it is not there (already closed).
pub(crate) fn tcp_owner(from: std::net::SocketAddr, to: std::net::SocketAddr) -> Option<u32> {
    let table = match from {
        std::net::SocketAddr::V4(_) => "/proc/net/tcp",
        std::net::SocketAddr::V6(_) => "/proc/net/tcp6",
    };
    let text = std::fs::read_to_string(table).ok()?;
    text.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (local, remote, uid) = (f.get(1)?, f.get(2)?, f.get(7)?);
        (proc_addr(local)? == from && proc_addr(remote)? == to).then(|| uid.parse().ok())?
    })
}

/// `0100007F:1F90` (the address as the kernel prints it: its bytes in
/// memory order, as 32-bit words in hex; then the port) as an address.
fn proc_addr(s: &str) -> Option<std::net::SocketAddr> {
    let (ip, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words: Vec<u32> = (0..ip.len() / 8)
        .map(|i| u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16).ok())
        .collect::<Option<_>>()?;
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let ip: std::net::IpAddr = match bytes.len() {
        4 => std::net::Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).into(),
        16 => {
            let mut b = [0u8; 16];
            b.copy_from_slice(&bytes);
            std::net::Ipv6Addr::from(b).into()
        }
        _ => return None,
    };
    Some(std::net::SocketAddr::new(ip, port))
}

#[cfg(test)]
pub(crate) mod owner_tests {
    /// This process's real uid, as the kernel shows it.
    pub(crate) fn my_uid() -> u32 {
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap()
    }

    #[test]
    fn a_loopback_connection_is_found_with_its_owner() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (_s, peer) = l.accept().unwrap();
        assert_eq!(peer, c.local_addr().unwrap());
        let me = my_uid();
        assert_eq!(super::tcp_owner(peer, l.local_addr().unwrap()), Some(me));
        assert_eq!(
            super::proc_addr("0100007F:1F90"),
            Some("127.0.0.1:8080".parse().unwrap())
        );
    }
}
