//! Setting up a run's way out when `network.mode = "proxy"`: the session CA
//! and the CA bundle the sandbox trusts, the brokered credentials and their
//! placeholders, and the proxy configuration.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use paddock_policy::Effective;
use paddock_proxy::{Brokered, Config, SessionCa};

use crate::error::CliError;
use crate::host::HostFacts;
use paddock_reasons::Reason;
use paddock_sandbox::Level;

/// The port the proxy listens on inside the sandbox's own network
/// namespace (always free: the namespace is new).
pub const PROXY_PORT: u16 = 3128;

/// Where the sandbox finds the CA bundle; also bound over the system bundle.
pub const BUNDLE_IN_SANDBOX: &str = "/run/paddock/ca-bundle.pem";

/// System CA bundle locations, first existing wins.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// The egress of one run.
pub struct Egress {
    /// Port inside the sandbox.
    pub port: u16,
    /// The transparent path too (a TUN device in the sandbox, served by
    /// paddock's network stack): where `/dev/net/tun` opens here. Without
    /// it a program that ignores the proxy variables has no network; the
    /// error says why.
    pub transparent: Result<(), String>,
    dir: PathBuf,
    bundle: PathBuf,
    system_bundle: Option<PathBuf>,
    ca: Arc<SessionCa>,
    credentials: Vec<(Option<String>, Brokered)>,
    logins: Vec<Arc<paddock_proxy::refresh::Login>>,
    files: Vec<(PathBuf, String)>,
    host_files: Vec<PathBuf>,
    upstream: Option<paddock_proxy::UpstreamProxy>,
}

/// Does the TUN device open read-write for this user (the module loaded,
/// the device node reachable)? Opening it alone creates nothing. Debug
/// builds (the test suite) read `PADDOCK_TEST_NO_TUN` to act as if not.
fn tun_opens() -> Result<(), String> {
    #[cfg(debug_assertions)]
    if std::env::var_os("PADDOCK_TEST_NO_TUN").is_some() {
        return Err("/dev/net/tun: disabled by PADDOCK_TEST_NO_TUN".into());
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map(drop)
        .map_err(|e| format!("/dev/net/tun cannot be opened ({e})"))
}

/// The proxy paddock itself goes through: `network.upstream_proxy`, else
/// `HTTPS_PROXY` (or `https_proxy`) in paddock's own environment, with
/// `NO_PROXY`.
fn upstream_proxy(
    eff: &Effective,
    host: &HostFacts,
) -> Result<Option<paddock_proxy::UpstreamProxy>, CliError> {
    let var = |names: &[&str]| {
        names.iter().find_map(|n| {
            host.env
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| (n.to_string(), v.to_string_lossy().into_owned()))
        })
    };
    let (url, from) = match &eff.upstream_proxy.value {
        Some(u) => (u.clone(), eff.upstream_proxy.origin.describe()),
        None => match var(&["HTTPS_PROXY", "https_proxy"]) {
            Some((n, v)) if !v.trim().is_empty() => (v, format!("${n} in paddock's environment")),
            _ => return Ok(None),
        },
    };
    let (h, port, auth) = paddock_policy::parse_proxy_url(url.trim()).map_err(|why| {
        CliError::new(
            Reason::NET_UPSTREAM_PROXY_INVALID.code(),
            format!("the upstream proxy ({from}) is not usable: {why}"),
            "write http://host:port (or http://user:password@host:port), or unset it",
        )
    })?;
    let bypass = var(&["NO_PROXY", "no_proxy"])
        .map(|(_, v)| {
            v.split(',')
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    Ok(Some(paddock_proxy::UpstreamProxy {
        host: h,
        port,
        auth,
        bypass,
    }))
}

fn io(e: std::io::Error) -> CliError {
    CliError::new(
        Reason::HOST_IO_ERROR.code(),
        format!("preparing the egress proxy: {e}"),
        "check that $XDG_RUNTIME_DIR or /tmp is writable",
    )
}

impl Egress {
    /// Prepare everything, before the sandbox starts.
    pub fn prepare(eff: &Effective, host: &HostFacts) -> Result<Egress, CliError> {
        let dir = crate::places::run_dir_checked(crate::places::EGRESS_DIR)?;
        let session = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let ca = Arc::new(SessionCa::new(&session).map_err(|e| {
            CliError::new(
                Reason::NET_CA_FAILED.code(),
                e.to_string(),
                "this is a bug; please report it",
            )
        })?);
        let system_bundle = SYSTEM_BUNDLES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file());
        let mut pem = system_bundle
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default();
        if !pem.ends_with('\n') && !pem.is_empty() {
            pem.push('\n');
        }
        pem.push_str(&ca.cert_pem());
        let bundle = dir.join("ca-bundle.pem");
        std::fs::write(&bundle, pem).map_err(io)?;

        let resolved = crate::logins::resolve(eff, host)?;
        let upstream = upstream_proxy(eff, host)?;
        Ok(Egress {
            upstream,
            port: PROXY_PORT,
            transparent: tun_opens(),
            dir,
            bundle,
            system_bundle,
            ca,
            credentials: resolved.credentials,
            logins: resolved.logins,
            files: resolved.files,
            host_files: resolved.host_files,
        })
    }

    /// Masked login documents the sandbox sees: (path; text).
    pub fn files(&self) -> &[(PathBuf, String)] {
        &self.files
    }

    /// The host files secrets are read from (real paths).
    pub fn host_files(&self) -> &[PathBuf] {
        &self.host_files
    }

    /// The CA bundle file on the host.
    pub fn bundle(&self) -> &std::path::Path {
        &self.bundle
    }

    /// Where the sandbox finds the CA bundle at `level`: paddock's own
    /// path, or at `no-userns` (no mounts) the bundle's host path.
    fn bundle_inside(&self, level: Level) -> String {
        if level.namespaces() {
            BUNDLE_IN_SANDBOX.to_string()
        } else {
            self.bundle.to_string_lossy().into_owned()
        }
    }

    /// Variables set inside the sandbox at `level`.
    pub fn environment(&self, level: Level) -> Vec<(String, String)> {
        let url = format!("http://127.0.0.1:{}", self.port);
        let mut env = Vec::new();
        for k in ["HTTP_PROXY", "HTTPS_PROXY"] {
            env.push((k.to_string(), url.clone()));
            env.push((k.to_ascii_lowercase(), url.clone()));
        }
        // SOCKS5 on the same port, under the same judge, for what speaks
        // neither HTTP nor CONNECT (ssh ProxyCommand, database clients).
        // Offered by name only: `ALL_PROXY=socks5h://` makes mainstream
        // clients (every httpx-based SDK) fail without an optional package.
        let socks = format!("socks5h://127.0.0.1:{}", self.port);
        env.push(("PADDOCK_SOCKS_PROXY".into(), socks));
        // Node's built-in fetch honours the proxy variables only when asked
        // (Node 22.21 / 24 and later).
        env.push(("NODE_USE_ENV_PROXY".into(), "1".into()));
        env.push(("NO_PROXY".into(), "localhost,127.0.0.1,::1".into()));
        env.push(("no_proxy".into(), "localhost,127.0.0.1,::1".into()));
        for k in [
            "SSL_CERT_FILE",
            "REQUESTS_CA_BUNDLE",
            "NODE_EXTRA_CA_CERTS",
            "CURL_CA_BUNDLE",
            "GIT_SSL_CAINFO",
            "PIP_CERT",
        ] {
            env.push((k.to_string(), self.bundle_inside(level)));
        }
        for (name, b) in &self.credentials {
            if let Some(name) = name {
                env.push((name.clone(), b.placeholder.get()));
            }
        }
        env
    }

    /// Read-only mounts: the bundle at its own path and over the system's.
    /// At `no-userns`, the bundle is shown at its own host path only.
    pub fn mounts(&self, level: Level) -> Vec<(PathBuf, PathBuf)> {
        if !level.namespaces() {
            return vec![(self.bundle.clone(), self.bundle.clone())];
        }
        let mut m = vec![(self.bundle.clone(), PathBuf::from(BUNDLE_IN_SANDBOX))];
        if let Some(sys) = &self.system_bundle {
            m.push((self.bundle.clone(), sys.clone()));
        }
        m
    }

    /// The proxy's configuration. Debug builds (the test suite) read two
    /// hooks that release builds ignore: `PADDOCK_TEST_RESOLVE`
    /// (`name=ip:port,...`, consulted before DNS) and
    /// `PADDOCK_TEST_UPSTREAM_CA` (a PEM file of extra trusted roots).
    pub fn config(
        &self,
        eff: &Effective,
        events: Option<paddock_proxy::EventSink>,
    ) -> Result<Config, CliError> {
        #[allow(unused_mut)]
        let mut resolve: HashMap<String, SocketAddr> = HashMap::new();
        #[allow(unused_mut)]
        let mut extra_ca: Option<String> = None;
        #[cfg(debug_assertions)]
        {
            if let Ok(spec) = std::env::var("PADDOCK_TEST_RESOLVE") {
                for pair in spec.split(',').filter(|p| !p.is_empty()) {
                    if let Some((name, addr)) = pair.split_once('=') {
                        if let Ok(a) = addr.parse() {
                            resolve.insert(name.to_ascii_lowercase(), a);
                        }
                    }
                }
            }
            if let Some(p) = std::env::var_os("PADDOCK_TEST_UPSTREAM_CA") {
                extra_ca = std::fs::read_to_string(std::path::Path::new(&p)).ok();
            }
        }
        let upstream_tls = paddock_proxy::upstream_tls(extra_ca.as_deref()).map_err(|e| {
            CliError::new(
                Reason::NET_TLS_SETUP.code(),
                e.to_string(),
                "check the system CA bundle",
            )
        })?;
        // Each connection holds two descriptors; the soft limit is raised
        // to the hard one (after the sandbox was created, so its commands
        // keep the usual limit) and the connection cap fits what is left.
        let fds = paddock_sys::raise_nofile().unwrap_or(1024);
        let mut limits = paddock_proxy::Limits::default();
        if let Some(n) = eff.net_connections.value {
            limits.connections = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if let Some(k) = eff.net_header_kib.value {
            limits.header_bytes = usize::try_from(k.saturating_mul(1024)).unwrap_or(usize::MAX);
        }
        if let Some(t) = eff.net_handshake_s.value {
            limits.handshake = std::time::Duration::from_secs(t);
        }
        if let Some(t) = eff.net_idle_s.value {
            limits.idle = std::time::Duration::from_secs(t);
        }
        Ok(Config {
            limits: limits.fit_fds(fds),
            upstream_proxy: self.upstream.clone(),
            peer_uid: None,
            policy: Arc::new(eff.clone()),
            credentials: self.credentials.iter().map(|(_, b)| b.clone()).collect(),
            logins: self.logins.clone(),
            ca: Some(self.ca.clone()),
            upstream_tls,
            resolve,
            events,
        })
    }
}

impl Drop for Egress {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
