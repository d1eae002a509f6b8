//! One blocking HTTP/1.1 POST per batch, over TCP or TLS (rustls, with
//! the system's roots and `SSL_CERT_FILE`).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// A parsed `http://` or `https://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// As given.
    pub url: String,
    tls: bool,
    host: String,
    port: u16,
    path: String,
}

impl Endpoint {
    /// Parse `url`; the message says what is wrong.
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let bad = |why: &str| {
            format!(
                "OTLP endpoint `{url}`: {why}. Fix: give an http:// or https:// URL such as {}",
                crate::DEFAULT_ENDPOINT
            )
        };
        let (tls, rest) = if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else {
            return Err(bad("only http:// or https:// URLs are supported"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("unclosed [ in the host"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad("the port is not a number"))?,
                None => default_port,
            };
            (h.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (
                    h.to_string(),
                    p.parse().map_err(|_| bad("the port is not a number"))?,
                ),
                None => (authority.to_string(), default_port),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(Endpoint {
            url: url.to_string(),
            tls,
            host,
            port,
            path: path.to_string(),
        })
    }
}

fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CFG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CFG.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(c);
        }
        if roots.is_empty() {
            return Err(
                "no trusted root certificates found (install ca-certificates or set SSL_CERT_FILE)"
                    .into(),
            );
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|b| Arc::new(b.with_root_certificates(roots).with_no_client_auth()))
            .map_err(|e| e.to_string())
    })
    .clone()
}

/// POST `body` (protobuf) to `ep`; Ok on a 2xx answer.
pub(crate) fn post(
    ep: &Endpoint,
    body: &[u8],
    headers: &[(String, String)],
    timeout: Duration,
) -> Result<(), String> {
    let addr = (ep.host.as_str(), ep.port)
        .to_socket_addrs()
        .map_err(|e| format!("resolving {}: {e}", ep.host))?
        .next()
        .ok_or_else(|| format!("{} has no address", ep.host))?;
    let tcp = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    tcp.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    let host_header = if ep.host.contains(':') {
        format!("[{}]:{}", ep.host, ep.port)
    } else {
        format!("{}:{}", ep.host, ep.port)
    };
    let mut req = format!(
        "POST {} HTTP/1.1\r\nHost: {host_header}\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\nUser-Agent: paddock/{}\r\nConnection: close\r\n",
        ep.path,
        body.len(),
        env!("CARGO_PKG_VERSION")
    );
    for (k, v) in headers {
        if k.contains(['\r', '\n', ':']) || v.contains(['\r', '\n']) {
            continue;
        }
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut answer = Vec::new();
    if ep.tls {
        let name = rustls::pki_types::ServerName::try_from(ep.host.clone())
            .map_err(|e| format!("{}: {e}", ep.host))?;
        let conn = rustls::ClientConnection::new(tls_config()?, name).map_err(|e| e.to_string())?;
        let mut s = rustls::StreamOwned::new(conn, tcp);
        exchange(&mut s, req.as_bytes(), body, &mut answer)?;
    } else {
        let mut s = tcp;
        exchange(&mut s, req.as_bytes(), body, &mut answer)?;
    }
    let status_line = answer.split(|b| *b == b'\n').next().unwrap_or_default();
    let text = String::from_utf8_lossy(status_line);
    let code: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {}", text.trim()))?;
    if (200..300).contains(&code) {
        Ok(())
    } else {
        Err(format!("the collector answered {}", text.trim()))
    }
}

fn exchange(
    s: &mut (impl Read + Write),
    head: &[u8],
    body: &[u8],
    answer: &mut Vec<u8>,
) -> Result<(), String> {
    s.write_all(head)
        .and_then(|_| s.write_all(body))
        .and_then(|_| s.flush())
        .map_err(|e| format!("sending: {e}"))?;
    // The status line is all that matters; read a little of the answer.
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.len() > 16 * 1024 || answer.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(e) if answer.is_empty() => return Err(format!("reading the answer: {e}")),
            Err(_) => break,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_defaults() {
        let e = Endpoint::parse("http://127.0.0.1:4318/v1/traces").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.path.as_str(), e.tls),
            ("127.0.0.1", 4318, "/v1/traces", false)
        );
        let e = Endpoint::parse("https://otel.example").unwrap();
        assert_eq!((e.port, e.path.as_str(), e.tls), (443, "/", true));
        let e = Endpoint::parse("http://[::1]:9/x").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 9));
        assert!(Endpoint::parse("http://host:port/").is_err());
        assert!(Endpoint::parse("http:///x").is_err());
    }
}
