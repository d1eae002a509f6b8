//! Network decisions, as pure functions of the effective policy. The same
//! function answers `paddock policy explain` and (with the egress proxy)
//! every real request, so the two cannot disagree.

use serde::Serialize;

use crate::effective::{Effective, Origin};
use crate::file::NetworkMode;

/// The verdict on one network action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetDecision {
    /// Allowed or not.
    pub allowed: bool,
    /// Stable reason code.
    pub code: &'static str,
    /// The rule that decided, in words.
    pub rule: String,
    /// Where that rule is written.
    pub origin: Option<Origin>,
}

/// Does `pattern` (`host`, `*.domain`, optional `:port`) match `host:port`?
/// Without a port, a pattern matches 80 and 443.
pub fn pattern_matches(pattern: &str, host: &str, port: u16) -> bool {
    let (p_host, p_port) = match pattern.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().ok()),
        None => (pattern, None),
    };
    let port_ok = match p_port {
        Some(p) => p == port,
        None => port == 443 || port == 80,
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let p_host = p_host.to_ascii_lowercase();
    let host_ok = match p_host.strip_prefix("*.") {
        Some(suffix) => host.ends_with(&format!(".{suffix}")),
        None => host == p_host,
    };
    port_ok && host_ok
}

fn is_ip_literal(host: &str) -> bool {
    host.trim_matches(['[', ']'])
        .parse::<std::net::IpAddr>()
        .is_ok()
}

/// Decide a connection to `host:port`, and when `method`/`path` are given
/// (an inspected HTTP request), the request too.
pub fn decide(
    eff: &Effective,
    host: &str,
    port: u16,
    request: Option<(&str, &str)>,
) -> NetDecision {
    let deny = |code, rule: String, origin: Option<Origin>| NetDecision {
        allowed: false,
        code,
        rule,
        origin,
    };
    if eff.network_mode.value == NetworkMode::None {
        return deny(
            "NET_DOMAIN_NOT_ALLOWED",
            "network.mode = none: the sandbox has no network but its own loopback".into(),
            Some(eff.network_mode.origin.clone()),
        );
    }
    if let Some(d) = eff
        .net_deny
        .iter()
        .find(|d| pattern_matches(&d.value, host, port))
    {
        return deny(
            "NET_DOMAIN_DENIED",
            format!("network.deny contains `{}`", d.value),
            Some(d.origin.clone()),
        );
    }
    let allow = eff
        .net_allow
        .iter()
        .find(|a| pattern_matches(&a.value, host, port));
    if is_ip_literal(host) && allow.is_none_or(|a| !a.value.starts_with(host)) {
        return deny(
            "NET_IP_LITERAL",
            "IP addresses are refused unless the policy names them".into(),
            None,
        );
    }
    let Some(allow) = allow else {
        return deny(
            "NET_DOMAIN_NOT_ALLOWED",
            format!("no network.allow pattern matches {host}:{port} (default deny)"),
            None,
        );
    };
    if let Some((method, path)) = request {
        for rule in eff
            .net_rules
            .iter()
            .filter(|r| r.value.inspect && pattern_matches(&r.value.host, host, port))
        {
            let hit = |e: &String| {
                e.split_once(' ').is_some_and(|(m, p)| {
                    (m == "*" || m.eq_ignore_ascii_case(method)) && path.starts_with(p)
                })
            };
            if let Some(d) = rule.value.deny.iter().find(|e| hit(e)) {
                return deny(
                    "NET_PATH_DENIED",
                    format!("network.rules for {} denies `{d}`", rule.value.host),
                    Some(rule.origin.clone()),
                );
            }
            if !rule.value.allow.is_empty() && !rule.value.allow.iter().any(hit) {
                return deny(
                    "NET_PATH_NOT_ALLOWED",
                    format!(
                        "network.rules for {} allows only {:?}",
                        rule.value.host, rule.value.allow
                    ),
                    Some(rule.origin.clone()),
                );
            }
        }
    }
    NetDecision {
        allowed: true,
        code: "NET_ALLOWED",
        rule: format!("network.allow contains `{}`", allow.value),
        origin: Some(allow.origin.clone()),
    }
}
