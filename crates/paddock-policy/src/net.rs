//! Network decisions, as pure functions of the effective policy. The same
//! functions answer `paddock policy explain` and (with the egress proxy)
//! every real connection and request, so the two cannot disagree.
//!
//! Everything a decision looks at is first put into one canonical form —
//! the host by [`canonical_host`], the path by [`canonical_path`] — and
//! what cannot be put into one form without guessing is refused: a parser
//! that guesses is a parser an attacker can steer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

use crate::effective::{Effective, Origin};
use crate::file::{HostRule, NetworkMode};
use paddock_reasons::Reason;

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

/// A host in the one form every decision uses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CanonHost {
    /// A DNS name: lower case, ASCII, no trailing dot.
    Name(String),
    /// An address, however it was written (`2130706433`, `0x7f.1`, `[::1]`).
    Ip(IpAddr),
}

impl std::fmt::Display for CanonHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CanonHost::Name(n) => f.write_str(n),
            CanonHost::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// One IPv4 part as `inet_aton` (and the URL standard) read it: `0x..`
/// hexadecimal, a leading `0` octal, decimal otherwise.
fn ipv4_part(p: &str) -> Option<u64> {
    let (digits, radix) = if let Some(h) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
        (h, 16)
    } else if p.len() > 1 && p.starts_with('0') {
        (&p[1..], 8)
    } else {
        (p, 10)
    };
    if digits.is_empty() {
        return (radix == 16).then_some(0);
    }
    if digits.len() > 12 {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

fn looks_numeric(label: &str) -> bool {
    !label.is_empty()
        && (label.bytes().all(|b| b.is_ascii_digit())
            || (label.len() >= 2
                && label[..2].eq_ignore_ascii_case("0x")
                && label[2..].bytes().all(|b| b.is_ascii_hexdigit())))
}

/// Parse the numeric IPv4 notations: 1 to 4 parts, the last filling the
/// remaining bytes.
fn parse_ipv4(host: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = host.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let nums: Vec<u64> = parts.iter().map(|p| ipv4_part(p)).collect::<Option<_>>()?;
    let (last, head) = nums.split_last()?;
    if head.iter().any(|&n| n > 255) {
        return None;
    }
    // Each leading part is one byte; the last fills the rest.
    let mut v: u64 = 0;
    for n in head {
        v = v << 8 | n;
    }
    let room = 8 * (4 - head.len());
    if *last >= 1u64 << room {
        return None;
    }
    v = v << room | last;
    u32::try_from(v).ok().map(Ipv4Addr::from)
}

/// Put a host as a client wrote it (CONNECT authority, `Host` header,
/// SOCKS5 name, URL) into its one canonical form, or say why it has none.
///
/// Lower case; one trailing dot removed; `[v6]` brackets removed; every
/// IPv4 notation (`2130706433`, `0x7f.0.0.1`, `0177.1`) parsed to the
/// address it means. Names must be ASCII letters, digits, `-` and `_`
/// (non-ASCII names are refused rather than converted: clients send the
/// `xn--` form; a guessed conversion is a homograph waiting to happen).
pub fn canonical_host(raw: &str) -> Result<CanonHost, String> {
    if let Some(inner) = raw.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .ok_or_else(|| format!("`{raw}`: unbalanced brackets"))?;
        return inner
            .parse::<Ipv6Addr>()
            .map(|a| canonical_ip(IpAddr::V6(a)))
            .map_err(|_| format!("`{raw}` is not an IPv6 address (zone ids are refused)"));
    }
    if !raw.is_ascii() {
        return Err(format!(
            "`{raw}` is not ASCII: send the name in its xn-- (punycode) form"
        ));
    }
    let lower = raw.to_ascii_lowercase();
    let name = lower.strip_suffix('.').unwrap_or(&lower);
    if name.is_empty() {
        return Err("the host is empty".into());
    }
    if name.contains(':') {
        return name
            .parse::<Ipv6Addr>()
            .map(|a| canonical_ip(IpAddr::V6(a)))
            .map_err(|_| format!("`{raw}` is neither a name nor an address"));
    }
    let last = name.rsplit('.').next().unwrap_or(name);
    if looks_numeric(last) {
        return parse_ipv4(name)
            .map(|a| CanonHost::Ip(IpAddr::V4(a)))
            .ok_or_else(|| format!("`{raw}` ends in a number but is no IPv4 address"));
    }
    if name.len() > 253 {
        return Err(format!("`{raw}` is longer than 253 characters"));
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!("`{raw}` is not a valid host name"));
        }
    }
    Ok(CanonHost::Name(name.to_string()))
}

/// IPv4-mapped IPv6 addresses are the IPv4 address they carry.
fn canonical_ip(ip: IpAddr) -> CanonHost {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => CanonHost::Ip(IpAddr::V4(v4)),
            None => CanonHost::Ip(ip),
        },
        v4 => CanonHost::Ip(v4),
    }
}

/// Why a path has no single meaning.
pub type PathAmbiguity = &'static str;

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The canonical form of a request path (without its query): unreserved
/// escapes decoded, other escapes in upper case, dot segments removed
/// (RFC 3986 §5.2.4), repeated slashes merged. What servers disagree on is
/// refused instead: an encoded `/`, `\` or `.`, a `..;` segment, NUL and
/// control characters, a backslash, invalid UTF-8, a path that climbs
/// above the root.
pub fn canonical_path(raw: &str) -> Result<String, PathAmbiguity> {
    if raw.is_empty() {
        return Ok("/".into());
    }
    if !raw.starts_with('/') {
        return Err("the path does not start with `/`");
    }
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut decoded = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            ) else {
                return Err("a `%` that is not followed by two hex digits");
            };
            let v = h << 4 | l;
            match v {
                b'\\' => return Err("an encoded `\\`"),
                // Kept encoded; rules are checked against both readings.
                b'/' => out.extend_from_slice(b"%2F"),
                b'.' => return Err("an encoded `.`"),
                // `%25` followed by hex is a second layer of escaping, read
                // once more by some gateways.
                b'%' if b.get(i + 3).copied().and_then(hex).is_some()
                    && b.get(i + 4).copied().and_then(hex).is_some() =>
                {
                    return Err("a double-encoded escape (`%25XX`)")
                }
                0 => return Err("an encoded NUL"),
                v if v < 0x20 || v == 0x7f => return Err("an encoded control character"),
                v if v.is_ascii_alphanumeric() || v == b'-' || v == b'_' || v == b'~' => {
                    out.push(v)
                }
                v => out.extend_from_slice(format!("%{v:02X}").as_bytes()),
            }
            decoded.push(v);
            i += 3;
            continue;
        }
        if c < 0x20 || c == 0x7f {
            return Err("a control character");
        }
        if c == b'\\' {
            return Err("a backslash");
        }
        out.push(c);
        decoded.push(c);
        i += 1;
    }
    if std::str::from_utf8(&decoded).is_err() {
        return Err("escapes that are not UTF-8");
    }
    let text = String::from_utf8(out).map_err(|_| "escapes that are not UTF-8")?;
    if text.matches('/').count() > 128 {
        return Err("more than 128 segments");
    }
    let mut segs: Vec<&str> = Vec::new();
    let raw_segs: Vec<&str> = text[1..].split('/').collect();
    let mut trailing = false;
    for (n, s) in raw_segs.iter().enumerate() {
        let last = n + 1 == raw_segs.len();
        let bare = s.split(';').next().unwrap_or("");
        if s.contains(';') && (bare == "." || bare == "..") {
            return Err("a `..;` or `.;` segment");
        }
        if s.contains(';') && bare.is_empty() {
            return Err("a segment of only `;params`");
        }
        match *s {
            "" => trailing = last,
            "." => trailing = last,
            ".." => {
                if segs.pop().is_none() {
                    return Err("a `..` above the root");
                }
                trailing = last;
            }
            s => {
                segs.push(s);
                trailing = false;
            }
        }
    }
    let mut p = String::with_capacity(text.len());
    for s in &segs {
        p.push('/');
        p.push_str(s);
    }
    if p.is_empty() || trailing {
        p.push('/');
    }
    Ok(p)
}

/// The readings of a canonical path that rules are checked against: every
/// escape decoded (but `%2F` and `%25`), and — when the path has an encoded
/// `/` — the reading of a server that decodes it before splitting. A deny
/// rule that matches any reading refuses; an allow list must match all.
pub fn path_readings(canonical: &str) -> Result<Vec<String>, PathAmbiguity> {
    let decode = |p: &str, slash: bool| -> String {
        let b = p.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' && i + 2 < b.len() + 1 {
                if let (Some(h), Some(l)) = (
                    b.get(i + 1).copied().and_then(hex),
                    b.get(i + 2).copied().and_then(hex),
                ) {
                    let v = h << 4 | l;
                    if v != b'%' && (v != b'/' || slash) {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                }
            }
            out.push(b[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    let mut v = vec![decode(canonical, false)];
    if canonical.contains("%2F") {
        let split = decode(canonical, true);
        v.push(canonical_path(&split)?);
    }
    Ok(v)
}

/// Does a rule entry's path pattern match a canonical path, on whole
/// segments? The pattern is a prefix: `/v1/messages` matches `/v1/messages`
/// and `/v1/messages/x`, never `/v1/messagesX`. `*` matches one segment,
/// `**` any number. A segment's `;params` are ignored for matching (some
/// servers drop them). `fold` is for deny entries, which must hold against
/// lenient servers: compared without case, `;params` dropped, and a
/// segment's extension or trailing dot ignored (`files.json`, `files.`).
/// Allow entries compare whole segments exactly, `;params` included.
pub fn path_matches(pattern: &str, path: &str, fold: bool) -> bool {
    let pat: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    let segs: Vec<&str> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            if fold {
                s.split(';').next().unwrap_or("")
            } else {
                s
            }
        })
        .collect();
    fn go(pat: &[&str], segs: &[&str], fold: bool) -> bool {
        let Some((p, rest)) = pat.split_first() else {
            return true; // prefix: whatever follows is inside
        };
        match *p {
            "**" => (0..=segs.len()).any(|k| go(rest, &segs[k..], fold)),
            "*" => !segs.is_empty() && go(rest, &segs[1..], fold),
            lit => {
                segs.first().is_some_and(|s| {
                    if fold {
                        // Case folded as Java, Go and Spring fold it (`ſ` is
                        // `s`, `K` the Kelvin sign is `k`), trailing blanks
                        // trimmed, an extension ignored.
                        let same = |a: &str, b: &str| {
                            let (a, b) = (a.trim_end(), b.trim_end());
                            a.eq_ignore_ascii_case(b)
                                || a.to_uppercase() == b.to_uppercase()
                                || a.to_lowercase() == b.to_lowercase()
                        };
                        let stem = s.split('.').next().unwrap_or(s);
                        same(s, lit) || (!lit.contains('.') && same(stem, lit))
                    } else {
                        *s == lit
                    }
                }) && go(rest, &segs[1..], fold)
            }
        }
    }
    go(&pat, &segs, fold)
}

/// Does `pattern` (`host`, `*.domain`, optional `:port`) match `host:port`?
/// Without a port, a pattern matches 80 and 443.
pub fn pattern_matches(pattern: &str, host: &str, port: u16) -> bool {
    let (p_host, p_port) = split_pattern(pattern);
    let port_ok = match p_port {
        Some(p) => p == port,
        None => port == 443 || port == 80,
    };
    port_ok && host_matches(p_host, host)
}

fn split_pattern(pattern: &str) -> (&str, Option<u16>) {
    match pattern.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, p.parse::<u16>().ok()),
        _ => (pattern, None),
    }
}

fn host_matches(p_host: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let p_host = p_host.to_ascii_lowercase();
    match p_host.strip_prefix("*.") {
        Some(suffix) => host.ends_with(&format!(".{suffix}")),
        None => host == p_host,
    }
}

/// Does a `[[network.rules]]` entry apply to `host:port`? A rule host
/// without a port applies on every port (so allowing another port cannot
/// step around the host's rules).
pub fn rule_applies(rule: &HostRule, host: &str, port: u16) -> bool {
    let (h, p) = split_pattern(&rule.host);
    host_matches(h, host) && p.is_none_or(|p| p == port)
}

/// Is TLS to `host:port` decrypted (the default), or did a rule opt the
/// host out with `inspect = false`?
///
/// Inspection wins: a host is opted out only when nothing else needs its
/// requests read — no brokered credential, and no rule applying to it that
/// has method/path rules, WebSocket paths or credential exceptions (in any
/// layer, under any spelling of the host).
pub fn inspected(eff: &Effective, host: &str, port: u16) -> bool {
    let applying = || {
        eff.net_rules
            .iter()
            .filter(|r| rule_applies(&r.value, host, port))
    };
    let opted_out = applying().any(|r| r.value.inspect == Some(false));
    let needed = has_credential(eff, host)
        || applying().any(|r| {
            !r.value.allow.is_empty()
                || !r.value.deny.is_empty()
                || !r.value.body_deny.is_empty()
                || !r.value.websocket.is_empty()
                || !r.value.accept_credentials.is_empty()
        });
    !opted_out || needed
}

/// The names (header names, `cookie`, `query:NAME`) a host's rules let
/// carry the client's own credentials.
pub fn accepted_credentials<'a>(
    eff: &'a Effective,
    host: &'a str,
    port: u16,
) -> impl Iterator<Item = &'a str> + 'a {
    eff.net_rules
        .iter()
        .filter(move |r| rule_applies(&r.value, host, port))
        .flat_map(|r| r.value.accept_credentials.iter().map(String::as_str))
}

/// May a WebSocket upgrade be made to `path` (canonical) on `host:port`?
/// Never on a host with `body_deny` (from any layer): its messages are not
/// screened, so they would carry what a request body may not.
pub fn websocket_allowed(eff: &Effective, host: &str, port: u16, path: &str) -> bool {
    body_rules(eff, host, port).is_empty()
        && eff.net_rules.iter().any(|r| {
            rule_applies(&r.value, host, port)
                && r.value
                    .websocket
                    .iter()
                    .any(|w| path_matches(w, path, false))
        })
}

/// The `body_deny` entries of the rules applying to `host:port`.
pub fn body_rules<'a>(eff: &'a Effective, host: &'a str, port: u16) -> Vec<&'a str> {
    eff.net_rules
        .iter()
        .filter(|r| rule_applies(&r.value, host, port))
        .flat_map(|r| r.value.body_deny.iter().map(String::as_str))
        .collect()
}

/// Do method/path rules (`allow` or `deny`) apply to `host:port`?
pub fn has_path_rules(eff: &Effective, host: &str, port: u16) -> bool {
    eff.net_rules.iter().any(|r| {
        rule_applies(&r.value, host, port)
            && (!r.value.allow.is_empty() || !r.value.deny.is_empty())
    })
}

/// Does `host` have a brokered credential?
pub fn has_credential(eff: &Effective, host: &str) -> bool {
    eff.credentials
        .iter()
        .any(|c| c.value.host.eq_ignore_ascii_case(host))
}

fn is_ip_literal(host: &str) -> bool {
    host.trim_matches(['[', ']'])
        .parse::<std::net::IpAddr>()
        .is_ok()
}

/// Decide a connection to `host:port`, and when `method`/`path` are given
/// (an inspected HTTP request), the request too. The host is put into its
/// canonical form first and the path too, so `explain` and the proxy judge
/// the same thing.
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
            Reason::NET_DOMAIN_NOT_ALLOWED.code(),
            "network.mode = none: the sandbox has no network but its own loopback".into(),
            Some(eff.network_mode.origin.clone()),
        );
    }
    let host = match canonical_host(host) {
        Ok(h) => h.to_string(),
        Err(why) => return deny(Reason::NET_BAD_HOST.code(), why, None),
    };
    let host = host.as_str();
    if let Some(d) = eff
        .net_deny
        .iter()
        .find(|d| pattern_matches(&d.value, host, port))
    {
        return deny(
            Reason::NET_DOMAIN_DENIED.code(),
            format!("network.deny contains `{}`", d.value),
            Some(d.origin.clone()),
        );
    }
    let allow = eff
        .net_allow
        .iter()
        .find(|a| pattern_matches(&a.value, host, port));
    if is_ip_literal(host) && allow.is_none_or(|a| split_pattern(&a.value).0 != host) {
        return deny(
            Reason::NET_IP_LITERAL.code(),
            "IP addresses are refused unless the policy names them".into(),
            None,
        );
    }
    let Some(allow) = allow else {
        return deny(
            Reason::NET_DOMAIN_NOT_ALLOWED.code(),
            format!("no network.allow pattern matches {host}:{port} (default deny)"),
            None,
        );
    };
    // A pattern without a port means 443 for a host whose traffic paddock
    // must read: a credential or rules sent in clear text would be for
    // anyone on the path to read and change.
    let sensitive = has_credential(eff, host) || has_path_rules(eff, host, port);
    if port != 443 && split_pattern(&allow.value).1.is_none() && sensitive {
        return deny(
            Reason::NET_DOMAIN_NOT_ALLOWED.code(),
            format!(
                "`{}` has no port, which means 443 only for a host with credentials or rules",
                allow.value
            ),
            Some(allow.origin.clone()),
        );
    }
    if let Some((method, raw_path)) = request {
        let path = match canonical_path(raw_path) {
            Ok(p) => p,
            Err(why) => {
                return deny(
                    Reason::NET_PATH_AMBIGUOUS.code(),
                    format!("the path has {why}; servers read such paths differently"),
                    None,
                )
            }
        };
        let readings = match path_readings(&path) {
            Ok(r) => r,
            Err(why) => {
                return deny(
                    Reason::NET_PATH_AMBIGUOUS.code(),
                    format!("the path has {why}; servers read such paths differently"),
                    None,
                )
            }
        };
        for rule in eff
            .net_rules
            .iter()
            .filter(|r| rule_applies(&r.value, host, port))
        {
            let on = |e: &String, p: &str, fold: bool| {
                e.split_once(' ').is_some_and(|(m, pat)| {
                    // HEAD runs GET's handler: a GET deny covers it.
                    let head_as_get = fold
                        && m.eq_ignore_ascii_case("GET")
                        && method.eq_ignore_ascii_case("HEAD");
                    (m == "*" || m.eq_ignore_ascii_case(method) || head_as_get)
                        && path_matches(pat, p, fold)
                })
            };
            // Deny: any reading; allow: every reading.
            let denied = |e: &String| readings.iter().any(|p| on(e, p, true));
            let hit = |e: &String, _fold: bool| readings.iter().all(|p| on(e, p, false));
            if let Some(d) = rule.value.deny.iter().find(|e| denied(e)) {
                return deny(
                    Reason::NET_PATH_DENIED.code(),
                    format!("network.rules for {} denies `{d}`", rule.value.host),
                    Some(rule.origin.clone()),
                );
            }
            if !rule.value.allow.is_empty() && !rule.value.allow.iter().any(|e| hit(e, false)) {
                return deny(
                    Reason::NET_PATH_NOT_ALLOWED.code(),
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
        code: Reason::NET_ALLOWED.code(),
        rule: format!("network.allow contains `{}`", allow.value),
        origin: Some(allow.origin.clone()),
    }
}

/// May the sandbox learn an address for the DNS name `name` (the
/// transparent path's resolver)? Yes when a connection to it would be
/// allowed on a port some `network.allow` pattern for it names (80 and 443
/// for a pattern without a port): the answer is [`decide`]'s for that
/// port. Otherwise [`decide`]'s refusal on 443 says why. An address
/// literal is no name (`NET_BAD_HOST`).
pub fn decide_name(eff: &Effective, name: &str) -> NetDecision {
    let host = match canonical_host(name) {
        Ok(CanonHost::Name(h)) => h,
        Ok(_) => {
            return NetDecision {
                allowed: false,
                code: Reason::NET_BAD_HOST.code(),
                rule: "an address is not a name to look up".into(),
                origin: None,
            }
        }
        Err(why) => {
            return NetDecision {
                allowed: false,
                code: Reason::NET_BAD_HOST.code(),
                rule: why,
                origin: None,
            }
        }
    };
    let ports = eff.net_allow.iter().flat_map(|a| {
        let (h, p) = split_pattern(&a.value);
        let ports = match p {
            Some(p) => vec![p],
            None => vec![443, 80],
        };
        if host_matches(h, &host) {
            ports
        } else {
            Vec::new()
        }
    });
    for port in ports {
        let d = decide(eff, &host, port, None);
        if d.allowed {
            return d;
        }
    }
    decide(eff, &host, 443, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_have_one_form() {
        let ok = |raw: &str, want: &str| {
            assert_eq!(canonical_host(raw).unwrap().to_string(), want, "{raw}")
        };
        ok("API.Example.COM", "api.example.com");
        ok("api.example.com.", "api.example.com");
        ok("2130706433", "127.0.0.1");
        ok("0x7f.1", "127.0.0.1");
        ok("0177.0.0.01", "127.0.0.1");
        ok("127.1", "127.0.0.1");
        ok("0x7F000001", "127.0.0.1");
        ok("[::1]", "::1");
        ok("[::ffff:127.0.0.1]", "127.0.0.1");
        ok("::ffff:a9fe:a9fe", "169.254.169.254");
        ok("under_score.example", "under_score.example");
        for bad in [
            "",
            ".",
            "a..b",
            "exa mple.com",
            "bücher.example",
            "host.example..",
            "1.2.3.4.5",
            "256.1.1.1",
            "08.1.1.1",
            "[fe80::1%eth0]",
            "-a.example",
            "a.example/x",
            "a.example\0",
        ] {
            assert!(canonical_host(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn paths_have_one_form_or_are_refused() {
        let ok = |raw: &str, want: &str| assert_eq!(canonical_path(raw).unwrap(), want, "{raw}");
        ok("", "/");
        ok("/", "/");
        ok("/v1/messages", "/v1/messages");
        ok("/v1//files", "/v1/files");
        ok("/v1/./files", "/v1/files");
        ok("/v1/messages/../files", "/v1/files");
        ok("/v1/%66iles", "/v1/files");
        ok("/v1/files/", "/v1/files/");
        ok("/a/b/..", "/a/");
        ok("/a%20b", "/a%20b");
        ok("/a%c3%a9", "/a%C3%A9");
        ok("/@scope%2fname", "/@scope%2Fname");
        assert_eq!(
            path_readings("/v1/messages/..%2Ffiles").unwrap(),
            ["/v1/messages/..%2Ffiles", "/v1/files"]
        );
        assert_eq!(path_readings("/a%40b%3Ac%C3%A9").unwrap(), ["/a@b:cé"]);
        assert!(path_readings("/..%2F..%2Fx").is_err());
        for bad in [
            "/v1/%2e%2e/files",
            "/api/;/admin",
            "/v1/%2566iles",
            "/v1/messages/..;/files",
            "/v1/messages/%2E./files",
            "/v1\\files",
            "/v1/%5cfiles",
            "/v1/%00",
            "/v1/%0a",
            "/v1/%zz",
            "/v1/%c3",
            "/..",
            "/a/../..",
            "v1/files",
            "*",
        ] {
            assert!(canonical_path(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn rule_paths_match_whole_segments() {
        assert!(path_matches("/v1/messages", "/v1/messages", false));
        assert!(path_matches(
            "/v1/messages",
            "/v1/messages/count_tokens",
            false
        ));
        assert!(!path_matches("/v1/messages", "/v1/messagesX", false));
        assert!(path_matches("/v1/files", "/v1/files;x=1", true));
        assert!(
            !path_matches("/v1/files", "/v1/files;x=1", false),
            "allow is exact"
        );
        assert!(path_matches("/v1/files", "/v1/files.json", true));
        assert!(path_matches("/v1/files", "/v1/FILES.", true));
        assert!(!path_matches("/v1/files", "/v1/filesystem", true));
        assert!(
            path_matches("/v1/files", "/v1/file\u{17f}", true),
            "long s folds to s"
        );
        assert!(path_matches("/v1/files", "/v1/files ", true));
        assert!(path_matches("/v1/files", "/V1/Files", true));
        assert!(!path_matches("/v1/files", "/V1/Files", false));
        assert!(path_matches("/", "/anything/at/all", false));
        assert!(path_matches(
            "/*/*/git-upload-pack",
            "/o/r.git/git-upload-pack",
            false
        ));
        assert!(!path_matches(
            "/*/*/git-upload-pack",
            "/o/git-upload-pack",
            false
        ));
        assert!(path_matches(
            "/**/git-receive-pack",
            "/o/r/git-receive-pack",
            true
        ));
        assert!(path_matches(
            "/**/git-receive-pack",
            "/git-receive-pack",
            true
        ));
    }
}
