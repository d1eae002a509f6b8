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
    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|s| usize::from(s[0]) << 16 | usize::from(s[1]) << 8 | usize::from(s[2]))
    }
}

/// Parse the start of a TLS stream.
pub fn parse_client_hello(buf: &[u8]) -> Hello {
    if buf.is_empty() {
        return Hello::Incomplete;
    }
    if buf[0] != 0x16 {
        return Hello::NotTls;
    }
    if buf.len() < 5 {
        return Hello::Incomplete;
    }
    let record_len = usize::from(buf[3]) << 8 | usize::from(buf[4]);
    let Some(record) = buf.get(5..5 + record_len) else {
        return Hello::Incomplete;
    };
    match hello_sni(record) {
        Some(sni) => Hello::Tls(sni),
        None => Hello::NotTls,
    }
}

fn hello_sni(record: &[u8]) -> Option<Option<String>> {
    let mut r = Reader { b: record, at: 0 };
    if r.u8()? != 1 {
        return None; // not a ClientHello
    }
    let len = r.u24()?;
    let body = r.take(len.min(record.len().saturating_sub(4)))?;
    let mut r = Reader { b: body, at: 0 };
    r.take(2 + 32)?; // version, random
    let sid = r.u8()?;
    r.take(sid)?;
    let cs = r.u16()?;
    r.take(cs)?;
    let comp = r.u8()?;
    r.take(comp)?;
    if r.at == body.len() {
        return Some(None); // no extensions
    }
    let ext_len = r.u16()?;
    let exts = r.take(ext_len)?;
    let mut e = Reader { b: exts, at: 0 };
    while e.at < exts.len() {
        let kind = e.u16()?;
        let len = e.u16()?;
        let data = e.take(len)?;
        if kind == 0 {
            let mut s = Reader { b: data, at: 0 };
            let list = s.u16()?;
            let list = s.take(list)?;
            let mut l = Reader { b: list, at: 0 };
            while l.at < list.len() {
                let name_type = l.u8()?;
                let n = l.u16()?;
                let name = l.take(n)?;
                if name_type == 0 {
                    return Some(Some(String::from_utf8_lossy(name).to_ascii_lowercase()));
                }
            }
        }
    }
    Some(None)
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
