//! Reading the server name (SNI) out of a TLS ClientHello, to catch domain
//! fronting on tunnels paddock does not decrypt: a CONNECT to an allowed
//! host whose TLS handshake then names another one.

/// What the first bytes of a tunnel say.
#[derive(Debug, PartialEq, Eq)]
pub enum Hello {
    /// More bytes are needed.
    Incomplete,
    /// Not a TLS ClientHello (some other protocol).
    NotTls,
    /// A ClientHello, with its server name if it sent one.
    Tls(Option<String>),
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
    fn u8(&mut self) -> Option<usize> {
        self.take(1).map(|s| usize::from(s[0]))
    }
    fn u16(&mut self) -> Option<usize> {
        self.take(2)
            .map(|s| usize::from(s[0]) << 8 | usize::from(s[1]))
    }
}

/// Does the ClientHello carry Encrypted Client Hello (the real server name
/// is then hidden from the outer SNI)? Matters only where paddock does not
/// terminate TLS itself.
pub fn offers_ech(buf: &[u8]) -> bool {
    let mut at = 0;
    let mut hs = Vec::new();
    while let Some(head) = buf.get(at..at + 5) {
        let len = usize::from(head[3]) << 8 | usize::from(head[4]);
        let Some(rec) = buf.get(at + 5..at + 5 + len) else {
            break;
        };
        hs.extend_from_slice(rec);
        at += 5 + len;
    }
    hs.get(4..).and_then(ech_in).unwrap_or(false)
}

/// A ClientHello body's extensions block: None if malformed, Some(None)
/// if it has none.
fn extensions(body: &[u8]) -> Option<Option<&[u8]>> {
    let mut r = Reader { b: body, at: 0 };
    r.take(2 + 32)?; // version, random
    let sid = r.u8()?;
    r.take(sid)?;
    let cs = r.u16()?;
    r.take(cs)?;
    let comp = r.u8()?;
    r.take(comp)?;
    if r.at == body.len() {
        return Some(None);
    }
    let ext_len = r.u16()?;
    r.take(ext_len).map(Some)
}

fn ech_in(body: &[u8]) -> Option<bool> {
    let Some(exts) = extensions(body)? else {
        return Some(false);
    };
    let mut e = Reader { b: exts, at: 0 };
    while e.at < exts.len() {
        let kind = e.u16()?;
        let len = e.u16()?;
        e.take(len)?;
        if kind == 0xfe0d {
            return Some(true);
        }
    }
    Some(false)
}

/// The largest ClientHello paddock reassembles (post-quantum key shares
/// make real ones 1.5–2 KiB; anything this large is refused).
pub const MAX_HELLO: usize = 16 * 1024;

/// Parse the start of a TLS stream. A ClientHello split over several
/// records is put back together (up to [`MAX_HELLO`]); anything that is not
/// a well-formed ClientHello is `NotTls`, so the caller refuses it instead of
/// guessing.
pub fn parse_client_hello(buf: &[u8]) -> Hello {
    let mut hs: Vec<u8> = Vec::new();
    let mut at = 0;
    loop {
        if buf.len() == at {
            return Hello::Incomplete;
        }
        if buf[at] != 0x16 {
            return Hello::NotTls;
        }
        let Some(head) = buf.get(at..at + 5) else {
            return Hello::Incomplete;
        };
        let len = usize::from(head[3]) << 8 | usize::from(head[4]);
        if len == 0 || len > 16384 + 256 {
            return Hello::NotTls;
        }
        let Some(record) = buf.get(at + 5..at + 5 + len) else {
            return Hello::Incomplete;
        };
        hs.extend_from_slice(record);
        at += 5 + len;
        if hs[0] != 1 {
            return Hello::NotTls;
        }
        if hs.len() >= 4 {
            let mlen = usize::from(hs[1]) << 16 | usize::from(hs[2]) << 8 | usize::from(hs[3]);
            if mlen > MAX_HELLO {
                return Hello::NotTls;
            }
            if let Some(body) = hs.get(4..4 + mlen) {
                return match hello_sni(body) {
                    Some(sni) => Hello::Tls(sni),
                    None => Hello::NotTls,
                };
            }
        }
    }
}

fn hello_sni(body: &[u8]) -> Option<Option<String>> {
    let Some(exts) = extensions(body)? else {
        return Some(None); // no extensions
    };
    let mut e = Reader { b: exts, at: 0 };
    let mut seen = std::collections::HashSet::new();
    let mut found: Option<String> = None;
    while e.at < exts.len() {
        let kind = e.u16()?;
        let len = e.u16()?;
        let data = e.take(len)?;
        // A repeated extension has two readings (real TLS stacks refuse it).
        if !seen.insert(kind) {
            return None;
        }
        if kind == 0 {
            let mut s = Reader { b: data, at: 0 };
            let list = s.u16()?;
            let list = s.take(list)?;
            let mut l = Reader { b: list, at: 0 };
            while l.at < list.len() {
                let name_type = l.u8()?;
                let n = l.u16()?;
                let name = l.take(n)?;
                // One name, of the one type there is.
                if name_type != 0 || found.is_some() {
                    return None;
                }
                found = Some(String::from_utf8(name.to_vec()).ok()?);
            }
        }
    }
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello for `name` as rustls would send it.
    fn hello(name: &str) -> Vec<u8> {
        let mut roots = rustls::RootCertStore::empty();
        let _ = &mut roots;
        let cfg = std::sync::Arc::new(
            rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
        );
        let mut c =
            rustls::ClientConnection::new(cfg, name.to_string().try_into().unwrap()).unwrap();
        let mut out = Vec::new();
        c.write_tls(&mut out).unwrap();
        out
    }

    #[test]
    fn reads_sni_from_a_real_client_hello() {
        let h = hello("api.example.com");
        assert_eq!(
            parse_client_hello(&h),
            Hello::Tls(Some("api.example.com".into()))
        );
        assert_eq!(parse_client_hello(&h[..20]), Hello::Incomplete);
        assert_eq!(parse_client_hello(b"GET / HTTP/1.1\r\n"), Hello::NotTls);
    }

    /// The same hello cut into records of 7 bytes each: a server accepts
    /// it, so paddock must read the name out of it too.
    #[test]
    fn reassembles_a_hello_split_over_records() {
        let h = hello("api.example.com");
        let body = &h[5..];
        let mut split = Vec::new();
        for c in body.chunks(7) {
            split.extend_from_slice(&[0x16, 3, 1, 0, u8::try_from(c.len()).unwrap()]);
            split.extend_from_slice(c);
        }
        assert_eq!(
            parse_client_hello(&split),
            Hello::Tls(Some("api.example.com".into()))
        );
        assert_eq!(
            parse_client_hello(&split[..split.len() - 3]),
            Hello::Incomplete
        );
        // A non-handshake record in the middle: refused, not skipped.
        let mut mixed = split[..12].to_vec();
        mixed.extend_from_slice(&[0x17, 3, 3, 0, 1, 0]);
        assert_eq!(parse_client_hello(&mixed), Hello::NotTls);
    }

    #[test]
    fn a_hello_without_sni_is_seen_as_such() {
        let h = hello("127.0.0.1");
        assert_eq!(parse_client_hello(&h), Hello::Tls(None));
    }

    #[test]
    fn garbage_never_panics() {
        let h = hello("x.example");
        for i in 0..h.len() {
            let mut g = h.clone();
            g[i] ^= 0xff;
            let _ = parse_client_hello(&g);
            let _ = parse_client_hello(&h[..i]);
        }
    }
}
