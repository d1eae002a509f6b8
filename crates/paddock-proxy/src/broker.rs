//! Credentials on inspected requests: the placeholder paddock issued is
//! swapped for the real secret wherever the client put it (any header, any
//! auth scheme, Basic credentials, the path or query) — on its own host
//! only; anything else that would authenticate the request to the server
//! is refused, on every inspected host; and the secret is taken back out of
//! what the server answers.
//!
//! What counts as "would authenticate": `Authorization` and
//! `Proxy-Authorization` of any scheme, `Cookie`, the API-key headers in
//! [`CREDENTIAL_HEADERS`] and any header whose name says token, secret,
//! password, api key or auth; the query parameters in [`CREDENTIAL_QUERY`];
//! and, anywhere else in the query or in headers not on the short list of
//! plain metadata ([`is_metadata`]), a value that looks like a secret
//! (known token prefixes, or a long mixed-case high-entropy string). A
//! host's rule may name exceptions (`accept_credentials`).

use std::pin::Pin;
use std::task::{Context, Poll};

use base64::Engine;
use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http_body::{Body as HttpBody, Frame};

use crate::Brokered;
use paddock_reasons::Reason;

/// Headers that carry credentials whatever their value looks like.
pub const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
    "api-key",
    "apikey",
    "x-goog-api-key",
    "x-auth-token",
    "private-token",
    "job-token",
    "x-gitlab-token",
    "x-github-token",
    "x-access-token",
    "x-amz-security-token",
    "x-functions-key",
    "ocp-apim-subscription-key",
    "x-rapidapi-key",
    "x-vault-token",
    "x-figma-token",
    "x-npm-token",
];

/// Query parameters that carry credentials whatever their value looks like.
pub const CREDENTIAL_QUERY: &[&str] = &[
    "key",
    "api_key",
    "apikey",
    "api-key",
    "access_token",
    "accesstoken",
    "token",
    "auth",
    "auth_token",
    "private_token",
    "refresh_token",
    "id_token",
    "password",
    "passwd",
    "secret",
    "client_secret",
    "sig",
    "signature",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "x-goog-signature",
    "x-goog-credential",
];

/// Plain metadata headers: never screened for secret-looking values (a
/// server does not authenticate by them, and they legitimately carry long
/// random identifiers: trace ids, etags, request ids).
fn is_metadata(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "host",
        "user-agent",
        "accept",
        "connection",
        "te",
        "expect",
        "upgrade",
        "referer",
        "origin",
        "cache-control",
        "pragma",
        "range",
        "if-none-match",
        "if-match",
        "if-modified-since",
        "if-unmodified-since",
        "if-range",
        "etag",
        "traceparent",
        "tracestate",
        "baggage",
        "x-request-id",
        "request-id",
        "x-correlation-id",
        "idempotency-key",
        "git-protocol",
        "dnt",
        "priority",
    ];
    const PREFIX: &[&str] = &[
        "accept-",
        "content-",
        "sec-",
        "x-stainless-",
        "anthropic-",
        "openai-",
        "npm-",
        "x-b3-",
        "x-forwarded-",
        "pacote-",
    ];
    // Hashes and integrity values are long and random by nature.
    const SUFFIX: &[&str] = &[
        "digest",
        "integrity",
        "checksum",
        "-sha256",
        "-sha1",
        "-md5",
        "-hash",
    ];
    EXACT.contains(&name)
        || PREFIX.iter().any(|p| name.starts_with(p))
        || SUFFIX.iter().any(|s| name.ends_with(s))
}

/// Query names that say what they carry (`oauth_token`, `api_token`,
/// `client_secret`…), beyond the listed ones.
fn query_names_a_credential(k: &str) -> bool {
    [
        "token",
        "secret",
        "password",
        "apikey",
        "api_key",
        "api-key",
        "access_key",
    ]
    .iter()
    .any(|w| k.ends_with(w))
        || k.contains("oauth")
}

fn names_a_credential(name: &str) -> bool {
    // Names that mention auth but carry none (a registry's auth *type*).
    const NOT: &[&str] = &[
        "npm-auth-type",
        "www-authenticate",
        "x-stainless-auth-type",
        "idempotency-key",
        "sec-websocket-key",
    ];
    CREDENTIAL_HEADERS.contains(&name)
        || (!NOT.contains(&name) && (name.ends_with("-key") || name.ends_with("_key")))
        || (!NOT.contains(&name)
            && [
                "token",
                "secret",
                "password",
                "passwd",
                "apikey",
                "api-key",
                "api_key",
                "auth",
                "credential",
                "signature",
            ]
            .iter()
            .any(|w| name.contains(w)))
}

/// Does `t` look like a secret? (Known token prefixes, long mixed-case
/// high-entropy strings; see [`paddock_logins::secret_like`].)
pub fn secret_like(t: &str) -> bool {
    paddock_logins::secret_like(t)
}

fn tokens(v: &str) -> impl Iterator<Item = &str> {
    v.split(|c: char| !(c.is_ascii_alphanumeric() || "-_.+/=~".contains(c)))
        .filter(|t| !t.is_empty())
}

fn has_secret_like(v: &str) -> bool {
    tokens(v).any(secret_like)
}

/// Could `s` be a key rather than a user name? Key-shaped
/// ([`paddock_logins::key_shaped`]: long hex, a UUID, a token prefix), or
/// 16 characters or more with a digit or both cases (a random string), and
/// not an e-mail address.
fn key_like_name(s: &str) -> bool {
    if paddock_logins::key_shaped(s) || secret_like(s) {
        return true;
    }
    if let Some((local, domain)) = s.split_once('@') {
        return local.len() > 32 || !domain.contains('.');
    }
    let digit = s.bytes().any(|b| b.is_ascii_digit());
    let mixed =
        s.bytes().any(|b| b.is_ascii_uppercase()) && s.bytes().any(|b| b.is_ascii_lowercase());
    s.len() >= 16 && (digit || mixed)
}

/// Replace every occurrence of each placeholder in `v` with its secret.
/// Returns the new text and whether anything was replaced.
fn substitute(v: &str, mine: &[&Brokered]) -> (String, bool) {
    substitute_noting(v, mine, &mut Vec::new())
}

/// [`substitute`], noting in `scrub` each secret put in (and its encoded
/// forms), as it is now: a refresh meanwhile replaces the login's secret,
/// and the answer must still not hand back the one this request carried.
fn substitute_noting(
    v: &str,
    mine: &[&Brokered],
    scrub: &mut Vec<(Vec<u8>, Vec<u8>)>,
) -> (String, bool) {
    let mut out = v.to_string();
    let mut hit = false;
    for c in mine {
        let ph = c.placeholder.get();
        if out.contains(&ph) {
            let secret = c.secret.get();
            note_scrub(scrub, &secret, &ph);
            out = out.replace(&ph, &secret);
            hit = true;
        }
    }
    (out, hit)
}

/// The forms a server may echo a secret in, each with the placeholder's
/// same form: as sent, upper- and lower-cased, JSON-escaped (plain, with
/// `\/`, ASCII-only with `\uXXXX` as Python writes it, and every mark as
/// `\u00XX` as .NET and Go do), percent-encoded (upper- and lower-case
/// hex, `+` for a space, `/` kept, twice), HTML-escaped, and as hex and
/// base64 of its bytes.
pub fn scrub_forms(secret: &str, placeholder: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let json = |x: &str| {
        let q = serde_json::to_string(x).unwrap_or_default();
        q[1..q.len().saturating_sub(1).max(1)].to_string()
    };
    // Each character `which` picks written as `\uXXXX` (UTF-16 units).
    let u_escaped = |x: &str, which: &dyn Fn(char) -> bool, upper: bool| {
        let mut out = String::new();
        for c in x.chars() {
            if !which(c) {
                out.push(c);
                continue;
            }
            let mut b = [0u16; 2];
            for u in c.encode_utf16(&mut b).iter() {
                out.push_str(&if upper {
                    format!("\\u{u:04X}")
                } else {
                    format!("\\u{u:04x}")
                });
            }
        }
        out
    };
    let html = |x: &str| {
        x.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .replace('\'', "&#39;")
    };
    let hex = |x: &str| x.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    let b64 = |x: &str| base64::engine::general_purpose::STANDARD.encode(x);
    // HTML's numeric character references, of every character or of the
    // marks only.
    let entities = |x: &str, all: bool, hex: bool| {
        x.chars()
            .map(|c| {
                if !all && c.is_ascii_alphanumeric() {
                    c.to_string()
                } else if hex {
                    format!("&#x{:x};", u32::from(c))
                } else {
                    format!("&#{};", u32::from(c))
                }
            })
            .collect::<String>()
    };
    // The base64 of the secret inside a longer text, at each of the three
    // alignments: what lies on either side changes only the groups at the
    // ends, which are left out.
    let b64_inside = |x: &str, at: usize| {
        let mut padded = vec![0u8; at];
        padded.extend_from_slice(x.as_bytes());
        let e = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&padded);
        let start = if at == 0 { 0 } else { 4 };
        let end = e.len().saturating_sub(4);
        if end > start + 8 {
            e[start..end].to_string()
        } else {
            String::new()
        }
    };
    let forms: [&dyn Fn(&str) -> String; 30] = [
        &|x| x.to_string(),
        &|x| x.to_ascii_uppercase(),
        &|x| x.to_ascii_lowercase(),
        &json,
        &|x| json(x).replace('/', "\\/"),
        // Python's ASCII-only JSON; every mark escaped.
        &|x| u_escaped(&json(x), &|c| !c.is_ascii(), false),
        &|x| u_escaped(x, &|c| !c.is_ascii_alphanumeric(), false),
        &|x| u_escaped(x, &|c| !c.is_ascii_alphanumeric(), true),
        &pct_encode,
        &|x| pct_encode(x).to_ascii_lowercase_hex(),
        &|x| pct_encode(x).replace("%20", "+"),
        &|x| pct_encode(x).replace("%2F", "/"),
        &|x| pct_encode(&pct_encode(x)),
        &html,
        &|x| html(x).replace("&#39;", "&#x27;"),
        &hex,
        &|x| hex(x).to_ascii_uppercase(),
        &b64,
        &|x| b64(x).trim_end_matches('=').to_string(),
        &|x| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(x),
        // JavaScript's encodeURIComponent, Java's URLEncoder.
        &|x| pct_encode_keeping(x, b"-_.!~*'()", false),
        &|x| pct_encode_keeping(x, b".-*_", true),
        // Go's JSON (`<>&` escaped, lower-case hex), .NET's (`<>&'+` and
        // the backtick and quote, every non-ASCII character, upper-case).
        &|x| u_escaped(&json(x), &|c| "<>&".contains(c), false),
        &|x| u_escaped(&json(x), &|c| "<>&'+`\"".contains(c) || !c.is_ascii(), true),
        &|x| entities(x, true, false),
        &|x| entities(x, true, true),
        &|x| entities(x, false, false),
        &|x| b64_inside(x, 0),
        &|x| b64_inside(x, 1),
        &|x| b64_inside(x, 2),
    ];
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for f in forms {
        let (r, p) = (f(secret), f(placeholder));
        if !r.is_empty() && !out.iter().any(|(x, _)| *x == r.as_bytes()) {
            out.push((r.into_bytes(), p.into_bytes()));
        }
    }
    out
}

/// Lower-case the hex digits of percent escapes only.
trait LowerHex {
    fn to_ascii_lowercase_hex(&self) -> String;
}

impl LowerHex for String {
    fn to_ascii_lowercase_hex(&self) -> String {
        let mut out = String::with_capacity(self.len());
        let mut left = 0;
        for c in self.chars() {
            if c == '%' {
                left = 2;
                out.push(c);
            } else if left > 0 {
                left -= 1;
                out.push(c.to_ascii_lowercase());
            } else {
                out.push(c);
            }
        }
        out
    }
}

fn note_scrub(scrub: &mut Vec<(Vec<u8>, Vec<u8>)>, secret: &str, placeholder: &str) {
    for (r, p) in scrub_forms(secret, placeholder) {
        if !scrub.iter().any(|(x, _)| *x == r) {
            scrub.push((r, p));
        }
    }
}

fn contains_any(v: &[u8], others: &[&Brokered]) -> Option<String> {
    others.iter().find_map(|c| {
        let ph = c.placeholder.get();
        v.windows(ph.len())
            .any(|w| w == ph.as_bytes())
            .then(|| c.host.clone())
    })
}

fn basic(v: &str) -> Option<String> {
    let (scheme, rest) = v.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    String::from_utf8(raw).ok()
}

/// A refusal: reason code and why.
pub type Refusal = (&'static str, String);

fn foreign(host: &str, where_: &str) -> Refusal {
    (
        Reason::NET_FOREIGN_CREDENTIAL.code(),
        format!(
            "{host} only receives credentials paddock issued; this request carries another one in {where_} (a rule's accept_credentials can allow it)"
        ),
    )
}

/// What brokering did to one request.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Brokering {
    /// A real secret was put into the request (the answer must be
    /// scrubbed).
    pub injected: bool,
    /// Which credential (its name, never its value).
    pub used: Option<String>,
    /// Other forms of the secret paddock put in (Basic credentials'
    /// base64) and what the sandbox sent instead, for the answer's scrub.
    pub scrub: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Screen and broker one request to `host` in place: its headers and its
/// path-and-query. `accepted` are the rule's `accept_credentials`.
pub fn broker(
    creds: &[Brokered],
    host: &str,
    accepted: &[String],
    headers: &mut HeaderMap,
    path_and_query: &mut String,
    plaintext: bool,
) -> Result<Brokering, Refusal> {
    let (mine, others): (Vec<&Brokered>, Vec<&Brokered>) = creds
        .iter()
        .partition(|c| c.host.eq_ignore_ascii_case(host));
    // One login used on two hosts (a token for an API and its git host)
    // has one placeholder: on either host it is this host's.
    let others: Vec<&Brokered> = others
        .into_iter()
        .filter(|o| {
            let ph = o.placeholder.get();
            !mine.iter().any(|m| m.placeholder.get() == ph)
        })
        .collect();
    let accepts = |name: &str| accepted.iter().any(|a| a.eq_ignore_ascii_case(name));
    let misrouted = |owner: String| {
        (
            Reason::NET_PLACEHOLDER_MISROUTED.code(),
            format!("a credential placeholder for {owner} was sent to {host}; it may only go to {owner}"),
        )
    };
    // 1. Another host's placeholder, anywhere: refused, never forwarded.
    for v in headers.values() {
        let decoded = v.to_str().ok().and_then(basic).unwrap_or_default();
        if let Some(owner) = contains_any(v.as_bytes(), &others)
            .or_else(|| contains_any(decoded.as_bytes(), &others))
        {
            return Err(misrouted(owner));
        }
    }
    if let Some(owner) = contains_any(path_and_query.as_bytes(), &others) {
        return Err(misrouted(owner));
    }
    // 1b. A refresh token's placeholder goes into a refresh only (the
    //     token endpoint's body, see `refresh`), never a header or query.
    let refresh_ph = |v: &[u8]| {
        creds.iter().filter(|c| c.refresh_only).any(|c| {
            let ph = c.placeholder.get();
            v.windows(ph.len()).any(|w| w == ph.as_bytes())
        })
    };
    if headers.values().any(|v| {
        refresh_ph(v.as_bytes())
            || v.to_str()
                .ok()
                .and_then(basic)
                .is_some_and(|d| refresh_ph(d.as_bytes()))
    }) || refresh_ph(pct_decode(path_and_query).as_bytes())
        || refresh_ph(path_and_query.as_bytes())
    {
        return Err((
            Reason::NET_PLACEHOLDER_MISPLACED.code(),
            "a refresh token's placeholder may only be sent in a refresh to its token endpoint (paddock carries it out), not in a header or the URL".into(),
        ));
    }
    // 2. Never a secret in clear text.
    if plaintext && !mine.is_empty() {
        return Err((
            Reason::NET_CREDENTIAL_PLAINTEXT.code(),
            format!("{host} has a brokered credential, which paddock sends only over verified TLS; use https://"),
        ));
    }
    let mine: Vec<&Brokered> = mine.into_iter().filter(|c| !c.refresh_only).collect();
    let mut injected = false;
    let mut used: Option<String> = None;
    let mut scrub: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    // 3. Headers. The placeholder is swapped only where a credential goes
    //    (an auth header, a Basic password): anywhere else the host could
    //    be made to store or echo the real secret (a file name, a message,
    //    a tag), so it is refused there. Anything else that would
    //    authenticate is foreign.
    let misplaced = |where_: &str| {
        (
            Reason::NET_PLACEHOLDER_MISPLACED.code(),
            format!("the credential placeholder may only be sent as a credential (an auth or API-key header, a Basic password, a key query parameter), not in {where_}"),
        )
    };
    let has_ph = |v: &str| mine.iter().any(|c| v.contains(&c.placeholder.get()));
    let is_ph = |v: &str| mine.iter().any(|c| c.placeholder.get() == v);
    let old = std::mem::take(headers);
    let mut last: Option<HeaderName> = None;
    for (name, value) in old {
        let name = match name {
            Some(n) => {
                last = Some(n.clone());
                n
            }
            None => last.clone().expect("a header map yields a name first"),
        };
        let n = name.as_str();
        let cred = names_a_credential(n);
        // Where the placeholder may be swapped: the known credential
        // headers only (not a `*-meta-token` a storage API keeps, not a
        // cookie a server may reflect).
        let swap_here =
            CREDENTIAL_HEADERS.contains(&n) && !["cookie", "proxy-authorization"].contains(&n);
        let Ok(text) = value.to_str() else {
            // Opaque bytes: never a credential, screened as best read.
            let lossy = String::from_utf8_lossy(value.as_bytes()).into_owned();
            if (cred || has_ph(&lossy) || (!is_metadata(n) && has_secret_like(&lossy)))
                && !accepts(n)
            {
                return Err(foreign(host, &format!("`{n}`")));
            }
            headers.append(name.clone(), value);
            continue;
        };
        let text = text.to_string();
        let decoded = basic(&text);
        let ph_here = has_ph(&text) || decoded.as_deref().is_some_and(has_ph);
        if ph_here && !swap_here {
            return Err(misplaced(&format!("`{n}`")));
        }
        if n == "sec-websocket-protocol" {
            // Subprotocols carry credentials in some APIs
            // (`openai-insecure-api-key.KEY`, Kubernetes bearer tokens).
            let smuggles = text.split(',').map(str::trim).any(|p| {
                let l = p.to_ascii_lowercase();
                secret_like(p)
                    || ["key", "token", "bearer", "auth", "secret"]
                        .iter()
                        .any(|w| l.contains(w))
            });
            if smuggles && !accepts(n) {
                return Err(foreign(host, "`sec-websocket-protocol`"));
            }
        } else if cred && !accepts(n) {
            // Only the placeholder, alone or after a scheme word, or as one
            // half of Basic credentials whose other half is a plain name:
            // beside a placeholder password, a user name that could not be
            // a key (services that read the user name as the key exist);
            // beside a placeholder user name, only the fillers tools send
            // as the password (GitHub reads the password as the token).
            let plain = |s: &str| {
                s.len() <= 64
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._@+-".contains(&b))
                    && !key_like_name(s)
            };
            let filler =
                |s: &str| ["", "x", "x-oauth-basic"].contains(&s.to_ascii_lowercase().as_str());
            let ok = is_ph(text.trim())
                || text.trim().split_once(' ').is_some_and(|(scheme, v)| {
                    scheme
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                        && !scheme.eq_ignore_ascii_case("basic")
                        && is_ph(v.trim())
                })
                || decoded.as_deref().is_some_and(|up| {
                    let (user, pass) = up.split_once(':').unwrap_or((up, ""));
                    (is_ph(pass) && plain(user)) || (is_ph(user) && filler(pass))
                });
            if !ok {
                return Err(foreign(host, &format!("`{n}`")));
            }
        } else if !cred && !accepts(n) && !is_metadata(n) && has_secret_like(&text) {
            return Err(foreign(host, &format!("`{n}`")));
        }
        let mut new = text.clone();
        if ph_here {
            injected = true;
            if let Some(c) = mine.iter().find(|c| {
                let ph = c.placeholder.get();
                text.contains(&ph) || decoded.as_deref().is_some_and(|d| d.contains(&ph))
            }) {
                used.get_or_insert_with(|| c.env.clone());
            }
            new = match decoded {
                Some(up) if has_ph(&up) => {
                    let b64 = &base64::engine::general_purpose::STANDARD;
                    let real = b64.encode(substitute(&up, &mine).0);
                    // An answer that echoes the header must not hand the
                    // sandbox the real one's base64 (with or without
                    // padding, URL-safe too).
                    let sent = b64.encode(&up);
                    for (r, p) in [
                        (real.clone(), sent.clone()),
                        (
                            real.trim_end_matches('=').to_string(),
                            sent.trim_end_matches('=').to_string(),
                        ),
                        (
                            base64::engine::general_purpose::URL_SAFE_NO_PAD
                                .encode(substitute(&up, &mine).0),
                            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&up),
                        ),
                    ] {
                        note_scrub(&mut scrub, &r, &p);
                    }
                    substitute_noting(&up, &mine, &mut scrub);
                    format!("Basic {real}")
                }
                _ => substitute_noting(&text, &mine, &mut scrub).0,
            };
        }
        let v = HeaderValue::from_str(&new).map_err(|_| {
            (
                Reason::NET_CREDENTIAL_INVALID.code(),
                "the brokered secret is not a valid header value".to_string(),
            )
        })?;
        headers.append(name.clone(), v);
    }
    // 4. The path: never the placeholder; no secret-looking segment
    //    (`/bot<token>/`, webhook paths).
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (path_and_query.clone(), None),
    };
    if has_ph(&path) {
        return Err(misplaced("the path"));
    }
    if path.split('/').any(|seg| has_secret_like(&pct_decode(seg))) {
        return Err(foreign(host, "the path"));
    }
    // 5. The query (split on `&` and `;`, names as servers normalise
    //    them): named credential parameters must be the placeholder, which
    //    goes nowhere else; any other secret-looking value is foreign.
    if let Some(query) = &query {
        if query.contains(';') && has_ph(&pct_decode(query)) {
            // Servers that split only on `&` would read the swapped secret
            // as part of another parameter's value.
            return Err(misplaced("a query that also uses `;` as a separator"));
        }
        let mut swapped = Vec::new();
        for pair in query.split(['&', ';']) {
            if pair.is_empty() {
                swapped.push(pair.to_string());
                continue;
            }
            let (k_raw, v_raw) = pair.split_once('=').unwrap_or((pair, ""));
            let k = query_name(&pct_decode(k_raw));
            let v = pct_decode(v_raw);
            let named = CREDENTIAL_QUERY.contains(&k.as_str()) || query_names_a_credential(&k);
            // Swapped only under a name exactly as listed: a server that
            // reads `Key` or `api.key` literally would store it elsewhere.
            let exact = CREDENTIAL_QUERY.contains(&pct_decode(k_raw).as_str());
            if has_ph(&k) || (has_ph(&v) && !(exact && is_ph(&v))) {
                return Err(misplaced(&format!("the query parameter `{k}`")));
            }
            if !accepts(&format!("query:{k}")) {
                if named && !v.is_empty() && !is_ph(&v) {
                    return Err(foreign(host, &format!("the query parameter `{k}`")));
                }
                if !named && has_secret_like(&v) {
                    return Err(foreign(host, &format!("the query parameter `{k}`")));
                }
            }
            if is_ph(&v) {
                injected = true;
                let secret = mine
                    .iter()
                    .find(|c| c.placeholder.get() == v)
                    .map(|c| {
                        used.get_or_insert_with(|| c.env.clone());
                        let secret = c.secret.get();
                        note_scrub(&mut scrub, &secret, &v);
                        secret
                    })
                    .unwrap_or_default();
                swapped.push(format!("{k_raw}={}", pct_encode(&secret)));
            } else {
                swapped.push(pair.to_string());
            }
        }
        // The separators are kept as they were.
        let mut out = path;
        out.push('?');
        let mut seps = query.chars().filter(|c| *c == '&' || *c == ';');
        for (i, part) in swapped.iter().enumerate() {
            if i > 0 {
                out.push(seps.next().unwrap_or('&'));
            }
            out.push_str(part);
        }
        *path_and_query = out;
    }
    Ok(Brokering {
        injected,
        used,
        scrub,
    })
}

/// A raw query parameter name, decoded and normalised ([`query_name`]).
pub fn normalised_query_name(raw: &str) -> String {
    query_name(&pct_decode(raw))
}

/// A query parameter's name as PHP and friends read it: `api.key`,
/// `api key` and `api[key` are all `api_key`.
fn query_name(k: &str) -> String {
    k.trim_start()
        .to_ascii_lowercase()
        .chars()
        .map(|c| if matches!(c, '.' | ' ' | '[') { '_' } else { c })
        .filter(|c| *c != ']')
        .collect()
}

fn pct_encode(s: &str) -> String {
    pct_encode_keeping(s, b"-._~", false)
}

/// Percent-encoding (upper-case hex) that leaves letters, digits and
/// `keep` as they are, and writes a space as `+` when `plus`.
fn pct_encode_keeping(s: &str, keep: &[u8], plus: bool) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || keep.contains(&b) {
                char::from(b).to_string()
            } else if plus && b == b' ' {
                "+".to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let h = char::from(b[i + 1]).to_digit(16);
            let l = char::from(b[i + 2]).to_digit(16);
            if let (Some(h), Some(l)) = (h, l) {
                out.push(u8::try_from(h << 4 | l).unwrap_or(0));
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Replace each secret in response headers by its placeholder.
pub fn scrub_headers(headers: &mut HeaderMap, secrets: &[(Vec<u8>, Vec<u8>)]) {
    for v in headers.values_mut() {
        let b = v.as_bytes();
        if secrets.iter().any(|(s, _)| find(b, s).is_some()) {
            let mut out = b.to_vec();
            for (s, p) in secrets {
                out = replace_all(&out, s, p);
            }
            if let Ok(nv) = HeaderValue::from_bytes(&out) {
                *v = nv;
            }
        }
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    if n.is_empty() || h.len() < n.len() {
        return None;
    }
    h.windows(n.len()).position(|w| w == n)
}

/// Every occurrence of `n` in `h` replaced by `with`.
pub fn replace_all_bytes(h: &[u8], n: &[u8], with: &[u8]) -> Vec<u8> {
    replace_all(h, n, with)
}

fn replace_all(h: &[u8], n: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(h.len());
    let mut i = 0;
    while let Some(at) = find(&h[i..], n) {
        out.extend_from_slice(&h[i..i + at]);
        out.extend_from_slice(with);
        i += at + n.len();
    }
    out.extend_from_slice(&h[i..]);
    out
}

/// How many trailing bytes of `b` could be the start of a secret: those
/// are held back until the next chunk shows whether they are.
fn partial_tail(b: &[u8], secrets: &[(Vec<u8>, Vec<u8>)]) -> usize {
    let mut keep = 0;
    for (s, _) in secrets {
        for k in (1..s.len().min(b.len() + 1)).rev() {
            if b.ends_with(&s[..k]) {
                keep = keep.max(k);
                break;
            }
        }
    }
    keep
}

/// A response body with every secret replaced by its placeholder, across
/// chunk boundaries, without waiting for more than a secret's length of
/// bytes (streams such as server-sent events stay live).
pub struct Scrubbed<B> {
    inner: B,
    secrets: Vec<(Vec<u8>, Vec<u8>)>,
    carry: BytesMut,
    done: bool,
}

impl<B> Scrubbed<B> {
    /// Scrub `inner` of `secrets` (secret, placeholder).
    pub fn new(inner: B, secrets: Vec<(Vec<u8>, Vec<u8>)>) -> Self {
        Scrubbed {
            inner,
            secrets,
            carry: BytesMut::new(),
            done: false,
        }
    }

    fn process(&mut self, data: &[u8], last: bool) -> Bytes {
        self.carry.extend_from_slice(data);
        let mut buf = self.carry.split().to_vec();
        for (s, p) in &self.secrets {
            buf = replace_all(&buf, s, p);
        }
        let keep = if last {
            0
        } else {
            partial_tail(&buf, &self.secrets)
        };
        let out = buf.len() - keep;
        self.carry.extend_from_slice(&buf[out..]);
        buf.truncate(out);
        Bytes::from(buf)
    }
}

impl<B> HttpBody for Scrubbed<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    self.done = true;
                    if self.carry.is_empty() {
                        return Poll::Ready(None);
                    }
                    let out = self.process(&[], true);
                    return Poll::Ready(Some(Ok(Frame::data(out))));
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(d) => {
                        let out = self.process(&d, false);
                        if out.is_empty() {
                            continue;
                        }
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                    Err(frame) => {
                        let frame = match frame.into_trailers() {
                            Ok(mut t) => {
                                let secrets = self.secrets.clone();
                                scrub_headers(&mut t, &secrets);
                                Frame::trailers(t)
                            }
                            Err(f) => f,
                        };
                        return Poll::Ready(Some(Ok(frame)));
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(host: &str, ph: &str, secret: &str) -> Brokered {
        Brokered {
            host: host.into(),
            env: "KEY".into(),
            placeholder: crate::Secret::new(ph),
            secret: crate::Secret::new(secret),
            refresh_only: false,
        }
    }

    fn run(
        host: &str,
        hs: &[(&str, &str)],
        pq: &str,
        accepted: &[&str],
    ) -> (Result<Brokering, Refusal>, HeaderMap, String) {
        let creds = [
            cred(
                "api.example.com",
                "paddock-placeholder-aaaa",
                "sk-real-1234567890abcdefXYZ",
            ),
            cred(
                "other.example.com",
                "paddock-placeholder-bbbb",
                "other-secret",
            ),
        ];
        let mut h = HeaderMap::new();
        for (k, v) in hs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let mut pq = pq.to_string();
        let acc: Vec<String> = accepted.iter().map(|s| s.to_string()).collect();
        let r = broker(&creds, host, &acc, &mut h, &mut pq, false);
        (r, h, pq)
    }

    #[test]
    fn the_placeholder_is_swapped_in_every_credential_position() {
        for (name, value, want) in [
            (
                "x-api-key",
                "paddock-placeholder-aaaa",
                "sk-real-1234567890abcdefXYZ",
            ),
            (
                "authorization",
                "Bearer paddock-placeholder-aaaa",
                "Bearer sk-real-1234567890abcdefXYZ",
            ),
            (
                "x-goog-api-key",
                "paddock-placeholder-aaaa",
                "sk-real-1234567890abcdefXYZ",
            ),
        ] {
            let (r, h, _) = run("api.example.com", &[(name, value)], "/v1/messages", &[]);
            assert_eq!(r.map(|b| b.injected), Ok(true), "{name}");
            assert_eq!(h[name], want);
        }
        let b64 = base64::engine::general_purpose::STANDARD
            .encode("x-access-token:paddock-placeholder-aaaa");
        let (r, h, _) = run(
            "api.example.com",
            &[("authorization", &format!("Basic {b64}"))],
            "/",
            &[],
        );
        assert!(r.is_ok(), "{r:?}");
        let got = basic(h["authorization"].to_str().unwrap()).unwrap();
        assert_eq!(got, "x-access-token:sk-real-1234567890abcdefXYZ");
        let (r, _, pq) = run(
            "api.example.com",
            &[],
            "/v1/x?key=paddock-placeholder-aaaa&q=1",
            &[],
        );
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(pq, "/v1/x?key=sk-real-1234567890abcdefXYZ&q=1");
    }

    #[test]
    fn any_other_credential_is_foreign_on_every_host() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("x-api-key", "sk-attacker-0000")], "/"),
            (&[("authorization", "Bearer sk-attacker-0000")], "/"),
            (&[("authorization", "token abc")], "/"),
            (
                &[(
                    "authorization",
                    "Bearer paddock-placeholder-aaaa sk-attacker-0000",
                )],
                "/",
            ),
            (
                &[
                    ("x-api-key", "paddock-placeholder-aaaa"),
                    ("authorization", "Bearer x"),
                ],
                "/",
            ),
            (&[("cookie", "session=abc")], "/"),
            (&[("x-goog-api-key", "AIzaSyA-attacker-key-000000000")], "/"),
            (
                &[("x-weird-header", "ghp_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789")],
                "/",
            ),
            (
                &[("x-weird-header", "Zx9Kq2LmN8vB4tY7wR1pS6dF3gH5jK0")],
                "/",
            ),
            (&[], "/upload?key=attacker"),
            (&[], "/upload?api_key=attacker"),
            (&[], "/upload?x=sk-ant-api03-attackerattackerattacker"),
        ];
        for host in ["api.example.com", "registry.example.org"] {
            for (hs, pq) in cases {
                let (r, _, _) = run(host, hs, pq, &[]);
                let code = r.as_ref().err().map(|e| e.0);
                // Elsewhere, api.example.com's placeholder is refused first.
                let want = if host != "api.example.com"
                    && hs.iter().any(|h| h.1.contains("placeholder"))
                {
                    "NET_PLACEHOLDER_MISROUTED"
                } else {
                    "NET_FOREIGN_CREDENTIAL"
                };
                assert_eq!(code, Some(want), "{host} {hs:?} {pq}");
            }
        }
        let b64 = base64::engine::general_purpose::STANDARD
            .encode("attacker:ghp_secretsecretsecretsecret");
        let (r, _, _) = run(
            "github.example",
            &[("authorization", &format!("Basic {b64}"))],
            "/",
            &[],
        );
        assert_eq!(r.unwrap_err().0, "NET_FOREIGN_CREDENTIAL");
    }

    #[test]
    fn ordinary_requests_and_declared_exceptions_pass() {
        let (r, _, _) = run(
            "registry.example.org",
            &[
                ("user-agent", "npm/11.0.0 node/v20.0.0 linux x64"),
                ("npm-auth-type", "web"),
                (
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                ),
                ("x-request-id", "0b4c8e62-5f7d-4f3f-9d5c-3f0f6a8e9b11"),
                ("if-none-match", "W/\"5f3c9a1bE7d2K9qLm3Nx8Zp4Rt6\""),
                ("anthropic-version", "2023-06-01"),
            ],
            "/pkg/-/pkg-1.0.0.tgz?cache=0b4c8e625f7d4f3f",
            &[],
        );
        assert_eq!(r.map(|b| b.injected), Ok(false));
        let (r, _, _) = run(
            "app.example",
            &[("cookie", "session=abc")],
            "/?token=t",
            &["cookie", "query:token"],
        );
        assert!(r.is_ok(), "{r:?}");
    }

    /// Where the host could store or echo it, the placeholder is refused:
    /// otherwise the real secret would land in a message, a file name, a
    /// tag the sandbox can read back.
    #[test]
    fn the_placeholder_is_swapped_only_where_a_credential_goes() {
        for (hs, pq) in [
            (&[("x-note", "paddock-placeholder-aaaa")][..], "/"),
            (&[("user-agent", "x paddock-placeholder-aaaa")][..], "/"),
            (
                &[("authorization", "Bearer paddock-placeholder-aaaa extra")][..],
                "/",
            ),
            (&[][..], "/bot/paddock-placeholder-aaaa/send"),
            (&[][..], "/send?text=paddock-placeholder-aaaa"),
            (&[][..], "/send?key=x-paddock-placeholder-aaaa"),
            (
                &[][..],
                "/chat?channel=C1&text=hi;token=paddock-placeholder-aaaa",
            ),
            (&[][..], "/x?Key=paddock-placeholder-aaaa"),
            (&[][..], "/x?api.key=paddock-placeholder-aaaa"),
            (&[("x-amz-meta-token", "paddock-placeholder-aaaa")][..], "/"),
            (&[("cookie", "s=paddock-placeholder-aaaa")][..], "/"),
        ] {
            let (r, _, _) = run("api.example.com", hs, pq, &[]);
            let code = r.err().map(|e| e.0);
            assert!(
                matches!(
                    code,
                    Some("NET_PLACEHOLDER_MISPLACED" | "NET_FOREIGN_CREDENTIAL")
                ),
                "{hs:?} {pq}: {code:?}"
            );
        }
    }

    #[test]
    fn credentials_hidden_in_odd_places_are_found() {
        for (hs, pq) in [
            (
                &[(
                    "sec-websocket-protocol",
                    "realtime, openai-insecure-api-key.sk-proj-ATTACKER",
                )][..],
                "/",
            ),
            (&[("x-forwarded-authorization", "Bearer abc")][..], "/"),
            (&[("anthropic-api-key", "whatever")][..], "/"),
            (&[][..], "/x?a=1;private_token=abcdefghijklmnopqrstu"),
            (&[][..], "/x?api.key=abc"),
            (&[][..], "/x?api%5Bkey=abc"),
            (&[][..], "/x?oauth_token=abc"),
            (&[][..], "/x?api_token=0123456789abcdef"),
            (&[][..], "/x?+api_key=abc"),
            (&[("x-mashape-key", "abc")][..], "/"),
            (&[("dd-application-key", "abc")][..], "/"),
            (
                &[][..],
                "/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/sendMessage",
            ),
        ] {
            let (r, _, _) = run("registry.example.org", hs, pq, &[]);
            assert_eq!(
                r.err().map(|e| e.0),
                Some("NET_FOREIGN_CREDENTIAL"),
                "{hs:?} {pq}"
            );
        }
    }

    #[test]
    fn placeholders_never_reach_another_host_and_never_go_in_clear() {
        let (r, _, _) = run(
            "other.example.com",
            &[("x-api-key", "paddock-placeholder-aaaa")],
            "/",
            &[],
        );
        assert_eq!(r.unwrap_err().0, "NET_PLACEHOLDER_MISROUTED");
        let (r, _, _) = run("evil.example", &[], "/c?d=paddock-placeholder-aaaa", &[]);
        assert_eq!(r.unwrap_err().0, "NET_PLACEHOLDER_MISROUTED");
        let b64 = base64::engine::general_purpose::STANDARD.encode("u:paddock-placeholder-aaaa");
        let (r, _, _) = run(
            "evil.example",
            &[("authorization", &format!("Basic {b64}"))],
            "/",
            &[],
        );
        assert_eq!(r.unwrap_err().0, "NET_PLACEHOLDER_MISROUTED");
        let creds = [cred("api.example.com", "paddock-placeholder-aaaa", "s")];
        let mut h = HeaderMap::new();
        h.insert(
            "x-api-key",
            HeaderValue::from_static("paddock-placeholder-aaaa"),
        );
        let mut pq = "/".to_string();
        let r = broker(&creds, "api.example.com", &[], &mut h, &mut pq, true);
        assert_eq!(r.unwrap_err().0, "NET_CREDENTIAL_PLAINTEXT");
    }

    #[test]
    fn the_secret_is_scrubbed_from_answers_across_chunks() {
        let secrets = vec![(b"SECRET123".to_vec(), b"paddock-placeholder-x".to_vec())];
        let mut s = Scrubbed::new((), secrets.clone());
        let mut out = Vec::new();
        for chunk in [
            &b"echo: SEC"[..],
            b"RET",
            b"123 and SECRET123",
            b"\n\n",
            b"SE",
        ] {
            out.extend_from_slice(&s.process(chunk, false));
        }
        // "\n\n" was not held back: it cannot start a secret.
        assert!(
            out.ends_with(b"paddock-placeholder-x\n\n"),
            "{}",
            String::from_utf8_lossy(&out)
        );
        out.extend_from_slice(&s.process(&[], true));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "echo: paddock-placeholder-x and paddock-placeholder-x\n\nSE"
        );
        let mut h = HeaderMap::new();
        h.insert("x-echo", HeaderValue::from_static("key=SECRET123"));
        scrub_headers(&mut h, &secrets);
        assert_eq!(h["x-echo"], "key=paddock-placeholder-x");
    }

    #[test]
    fn the_answer_is_scrubbed_of_the_secret_this_request_carried_even_after_a_refresh() {
        let c = cred(
            "api.example.com",
            "paddock-placeholder-aaaa",
            "sk-real-OLD-1234567890abcdef",
        );
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            HeaderValue::from_static("Bearer paddock-placeholder-aaaa"),
        );
        let mut pq = "/".to_string();
        let b = broker(
            std::slice::from_ref(&c),
            "api.example.com",
            &[],
            &mut h,
            &mut pq,
            false,
        )
        .unwrap();
        // A refresh replaces the login's secret while the request waits.
        c.secret.set("sk-real-NEW-1234567890abcdef".into());
        assert!(
            b.scrub
                .iter()
                .any(|(r, p)| r == b"sk-real-OLD-1234567890abcdef"
                    && p == b"paddock-placeholder-aaaa")
        );
    }

    #[test]
    fn a_secret_is_scrubbed_in_the_forms_servers_echo_it_in() {
        let forms = scrub_forms("Tr0ub/4d\"or&3 x\u{e9}", "Pl4ce/ho\"ld&3 y\u{e8}");
        let reals: Vec<String> = forms
            .iter()
            .map(|(r, _)| String::from_utf8(r.clone()).unwrap())
            .collect();
        for want in [
            "Tr0ub/4d\"or&3 x\u{e9}",
            "Tr0ub/4d\\\"or&3 x\u{e9}",
            "Tr0ub\\/4d\\\"or&3 x\u{e9}",
            "Tr0ub/4d\\\"or&3 x\\u00e9",
            "Tr0ub%2F4d%22or%263%20x%C3%A9",
            "Tr0ub%2f4d%22or%263%20x%c3%a9",
            "Tr0ub%2F4d%22or%263+x%C3%A9",
        ] {
            assert!(reals.iter().any(|r| r == want), "{want} in {reals:?}");
        }
        // Each with the placeholder's same form.
        let (_, p) = &forms[reals.iter().position(|r| r.contains("%2F")).unwrap()];
        assert_eq!(
            std::str::from_utf8(p).unwrap(),
            "Pl4ce%2Fho%22ld%263%20y%C3%A8"
        );
        // A plain token: as sent, cased, as hex and base64.
        let forms: Vec<String> = scrub_forms("ghp_abc123", "ghp_xyz789")
            .into_iter()
            .map(|(r, _)| String::from_utf8(r).unwrap())
            .collect();
        for want in [
            "ghp_abc123",
            "GHP_ABC123",
            "6768705f616263313233",
            "Z2hwX2FiYzEyMw==",
            "Z2hwX2FiYzEyMw",
        ] {
            assert!(forms.iter().any(|f| f == want), "{want} in {forms:?}");
        }
        let forms: Vec<String> = scrub_forms("a&b/c+d", "x&y/z+w")
            .into_iter()
            .map(|(r, _)| String::from_utf8(r).unwrap())
            .collect();
        for want in [
            "a\\u0026b\\u002fc\\u002bd",
            "a\\u0026b\\u002Fc\\u002Bd",
            "a%26b/c%2Bd",
            "a%2526b%252Fc%252Bd",
            "a&amp;b/c+d",
        ] {
            assert!(forms.iter().any(|f| f == want), "{want} in {forms:?}");
        }
    }

    #[test]
    fn the_forms_of_common_encoders_and_of_base64_inside_a_longer_text_are_scrubbed() {
        let secret = "Zebra!Monkey&<9~*x-y";
        let forms: Vec<String> = scrub_forms(secret, "Pl4ce!Hold3r&<0~*a-b")
            .into_iter()
            .map(|(r, _)| String::from_utf8(r).unwrap())
            .collect();
        for want in [
            "Zebra!Monkey%26%3C9~*x-y",
            "Zebra%21Monkey%26%3C9%7E*x-y",
            "Zebra!Monkey\\u0026\\u003c9~*x-y",
            "&#90;&#101;&#98;",
        ] {
            assert!(
                forms.iter().any(|f| f.contains(want)),
                "{want} in {forms:?}"
            );
        }
        let b64 = &base64::engine::general_purpose::STANDARD;
        let token = "sk-ant-oat01-AbCdEfGh12345678IjKlMnOp";
        let forms = scrub_forms(token, "sk-ant-oat01-ZyXwVuTs98765432RqPoNmLk");
        for prefix in ["", "A", "Au", "Authorization: Bearer "] {
            let text = b64.encode(format!("{prefix}{token}\r\nmore"));
            assert!(
                forms
                    .iter()
                    .any(|(r, _)| text.contains(std::str::from_utf8(r).unwrap())),
                "base64 of {prefix:?} + the token: {text}"
            );
        }
    }

    #[test]
    fn beside_a_placeholder_in_basic_credentials_no_other_key_rides_along() {
        let b64 = |s: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(s)
            )
        };
        let ph = "paddock-placeholder-aaaa";
        for other in [
            "0123456789abcdef0123456789abcdef01234567",
            "3f2a9c1e-7b4d-4e8a-9f1c-2d3e4f5a6b7c",
            "attacker-account-password-2024",
            "hunter2",
        ] {
            let (r, _, _) = run(
                "api.example.com",
                &[("authorization", &b64(&format!("{ph}:{other}")))],
                "/",
                &[],
            );
            assert!(r.is_err(), "placeholder user, password {other}: {r:?}");
        }
        for other in [
            "0123456789abcdef0123456789abcdef01234567",
            "3f2a9c1e-7b4d-4e8a-9f1c-2d3e4f5a6b7c",
        ] {
            let (r, _, _) = run(
                "api.example.com",
                &[("authorization", &b64(&format!("{other}:{ph}")))],
                "/",
                &[],
            );
            assert!(r.is_err(), "user {other}, placeholder password: {r:?}");
        }
        for other in [
            "key-3ax6xnjp29jd6fds4gc373sgvjxteol0",
            "ABCDEFGHIJKLMNOPQRSTUVWX234567AB",
            "0123456789abcdef0123456789abcde",
            "lOvXMg8Dq0fzS1pMCs2Q9k",
            "rk_live_abc",
        ] {
            let (r, _, _) = run(
                "api.example.com",
                &[("authorization", &b64(&format!("{other}:{ph}")))],
                "/",
                &[],
            );
            assert!(r.is_err(), "user {other}, placeholder password: {r:?}");
        }
        for ok in [
            format!("alice@example.com:{ph}"),
            format!("deploy-bot:{ph}"),
            format!("{ph}:x-oauth-basic"),
            format!("{ph}:"),
            format!("alice:{ph}"),
            format!("__token__:{ph}"),
            format!("x-access-token:{ph}"),
        ] {
            let (r, _, _) = run("api.example.com", &[("authorization", &b64(&ok))], "/", &[]);
            assert!(r.is_ok(), "{ok}: {r:?}");
        }
    }
}
