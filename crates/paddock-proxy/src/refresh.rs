//! OAuth refresh, carried out for the sandbox.
//!
//! A tool signed in on the host keeps an access token and a refresh token
//! in its login file; the sandbox sees placeholders for both. When the
//! tool refreshes (`POST` to its token endpoint, `grant_type=refresh_token`),
//! paddock:
//!
//! 1. refuses anything but a refresh with the refresh token's placeholder
//!    (a sign-in from inside, another account's refresh token);
//! 2. takes the login's lock, so concurrent refreshes go one after the
//!    other, and reads the host's document again: the host's own CLI may
//!    have refreshed (and rotated the refresh token) meanwhile;
//! 3. sends the request with the current real refresh token, the body
//!    rewritten from what was parsed (nothing the parser did not see
//!    reaches the server);
//! 4. on success writes the new tokens and expiry into the host's document
//!    in place, atomically, in the tool's own format (the host CLI keeps
//!    working), then updates the secrets the proxy swaps in;
//! 5. answers the sandbox with the same placeholders it already holds
//!    (and any other token in the answer replaced by one that stands for
//!    nothing), so its copy of the login never holds a real token.

use std::time::{SystemTime, UNIX_EPOCH};

use paddock_logins::Store;
use paddock_reasons::Reason;

use crate::Secret;

/// One OAuth login whose refresh paddock carries out.
pub struct Login {
    /// The token endpoint's host (canonical) and path.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// Its path (and query, if the URL has one), exactly.
    pub path: String,
    /// Where the login document is kept on the host.
    pub store: Store,
    /// The keys of the access token, the refresh token and the expiry in
    /// the document.
    pub access_key: Vec<String>,
    /// See `access_key`.
    pub refresh_key: Vec<String>,
    /// See `access_key`.
    pub expires_key: Option<Vec<String>>,
    /// The expiry is in milliseconds (else seconds).
    pub expires_ms: bool,
    /// Where the answer's id token is stored in the document, if anywhere.
    pub id_token_key: Option<Vec<String>>,
    /// Request fields beyond those of a refresh that the policy allows.
    pub extra_fields: Vec<String>,
    /// The access token: its placeholder (shared with its credentials: a
    /// JWT's is made anew from the claims of a refreshed one) and the real
    /// value.
    pub access: (Secret, Secret),
    /// The refresh token: its placeholder and the real value.
    pub refresh: (String, Secret),
    /// For messages and events: the login file and key.
    pub name: String,
    /// Refreshes go one at a time.
    pub lock: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// A refusal: reason code and why.
pub type Refusal = (&'static str, String);

/// The largest refresh request or answer read.
pub const MAX: usize = 256 << 10;

/// Is this request (to `host`:`port`, at the canonical `path` and
/// `query`) the refresh of one of `logins`? `Err` when it goes to a
/// login's token endpoint by another port or with another query: a
/// server may read a grant from the query over the body, and its answer
/// is not to be stored as the user's login, nor the real refresh token
/// sent anywhere but the URL declared.
pub fn matching<'a>(
    logins: &'a [std::sync::Arc<Login>],
    host: &str,
    port: u16,
    path: &str,
    query: Option<&str>,
) -> Result<Option<&'a std::sync::Arc<Login>>, Refusal> {
    let full = match query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    for l in logins.iter().filter(|l| l.host.eq_ignore_ascii_case(host)) {
        let declared = l.path.split('?').next().unwrap_or("");
        if l.path == full && l.port == port {
            return Ok(Some(l));
        }
        // The endpoint under another spelling a server may take for it (a
        // trailing slash, a path below it, another case, `;params`) is
        // refused too: a grant sent there would be a sign-in of the
        // sandbox's.
        let norm = |p: &str| p.to_ascii_lowercase().trim_end_matches('/').to_string();
        let (d, p) = (norm(declared), norm(path));
        let under = p == d
            || p.strip_prefix(&d)
                .is_some_and(|rest| rest.starts_with('/') || rest.starts_with(';'));
        if under {
            return Err((
                Reason::NET_TOKEN_GRANT_REFUSED.code(),
                format!(
                    "{} is refreshed at https://{}{}{} only; this request goes to its token endpoint by another port, spelling or query",
                    l.name,
                    l.host,
                    if l.port == 443 { String::new() } else { format!(":{}", l.port) },
                    l.path
                ),
            ));
        }
    }
    Ok(None)
}

enum Kind {
    Json,
    Form,
}

fn kind(content_type: Option<&str>) -> Option<Kind> {
    let ct = content_type?.to_ascii_lowercase();
    let mime = ct.split(';').next().unwrap_or("").trim().to_string();
    match mime.as_str() {
        "application/json" => Some(Kind::Json),
        "application/x-www-form-urlencoded" => Some(Kind::Form),
        _ => None,
    }
}

/// Check the sandbox's refresh request and return the body to send, with
/// the real refresh token `current`. Fails closed on anything it cannot
/// read in one way.
pub fn request_body(
    login: &Login,
    content_type: Option<&str>,
    body: &[u8],
    current: &str,
) -> Result<(Vec<u8>, &'static str), Refusal> {
    let unreadable = |why: &str| {
        (
            Reason::NET_BODY_UNREADABLE.code(),
            format!("the refresh request to {}: {why}", login.host),
        )
    };
    let grant = |g: &str| {
        (
            Reason::NET_TOKEN_GRANT_REFUSED.code(),
            format!(
                "{} is signed in on the host; a `{g}` request from inside the sandbox is refused (only `refresh_token` grants, which paddock carries out)",
                login.name
            ),
        )
    };
    let foreign = || {
        (
            Reason::NET_FOREIGN_CREDENTIAL.code(),
            format!(
                "{} only receives the refresh token paddock issued; this request carries another one",
                login.host
            ),
        )
    };
    let mut fields: Vec<(String, String)> = Vec::new();
    let k = kind(content_type).ok_or_else(|| unreadable("send it as JSON or a form"))?;
    match k {
        Kind::Json => {
            let v: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(body).map_err(|_| unreadable("not a JSON object"))?;
            for (name, val) in v {
                let serde_json::Value::String(s) = val else {
                    return Err(unreadable(&format!("`{name}` is not a string")));
                };
                fields.push((name, s));
            }
        }
        Kind::Form => {
            let text = std::str::from_utf8(body).map_err(|_| unreadable("not UTF-8"))?;
            for pair in text.split('&').filter(|p| !p.is_empty()) {
                let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
                let (n, v) = (
                    form_decode(n).ok_or_else(|| unreadable("bad escapes"))?,
                    form_decode(v).ok_or_else(|| unreadable("bad escapes"))?,
                );
                if fields.iter().any(|(o, _)| *o == n) {
                    return Err(unreadable("a field given twice"));
                }
                fields.push((n, v));
            }
        }
    }
    let get = |n: &str| fields.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    match get("grant_type") {
        Some("refresh_token") => {}
        Some(other) => return Err(grant(other)),
        None => return Err(unreadable("no grant_type")),
    }
    if get("refresh_token") != Some(login.refresh.0.as_str()) {
        return Err(foreign());
    }
    // The access token's placeholder, or the refresh token's anywhere
    // else, is no field of a refresh.
    for (n, v) in &fields {
        if n != "refresh_token"
            && (v.contains(&login.refresh.0) || v.contains(&login.access.0.get()))
        {
            return Err((
                Reason::NET_PLACEHOLDER_MISPLACED.code(),
                format!("a credential placeholder in the refresh request's `{n}`"),
            ));
        }
    }
    // Only the fields of a refresh (RFC 6749 6, and the audience and
    // resource of its extensions), with values no reader could take for
    // more fields: a server that reads the body as a form whatever its
    // type would otherwise find a grant of the sandbox's in a value.
    const FIELDS: [&str; 7] = [
        "grant_type",
        "refresh_token",
        "client_id",
        "client_secret",
        "scope",
        "audience",
        "resource",
    ];
    for (n, v) in &fields {
        let extra = login.extra_fields.iter().any(|f| f == n)
            && !paddock_types::GRANT_FIELDS
                .iter()
                .any(|g| g.eq_ignore_ascii_case(n));
        if !FIELDS.contains(&n.as_str()) && !extra {
            return Err(unreadable(&format!(
                "`{n}` is not a field of a refresh (paddock sends only {}{}; a policy may allow more with `refresh.fields`)",
                FIELDS.join(", "),
                login
                    .extra_fields
                    .iter()
                    .map(|f| format!(", {f}"))
                    .collect::<String>()
            )));
        }
        if v.contains(['&', '=', '"', '\\', '\r', '\n', '\0', ';']) {
            return Err(unreadable(&format!(
                "`{n}` holds a character a server could read as another field (& = \" \\ ; or a line break)"
            )));
        }
    }
    let fields: Vec<(String, String)> = fields
        .into_iter()
        .map(|(n, v)| {
            if n == "refresh_token" {
                (n, current.to_string())
            } else {
                (n, v)
            }
        })
        .collect();
    // Sent with exactly the type it is built as.
    Ok(match k {
        Kind::Json => {
            let mut m = serde_json::Map::new();
            for (n, v) in fields {
                m.insert(n, serde_json::Value::String(v));
            }
            (
                serde_json::to_vec(&m).unwrap_or_default(),
                "application/json",
            )
        }
        Kind::Form => (
            fields
                .iter()
                .map(|(n, v)| format!("{}={}", form_encode(n), form_encode(v)))
                .collect::<Vec<_>>()
                .join("&")
                .into_bytes(),
            "application/x-www-form-urlencoded",
        ),
    })
}

fn form_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What a successful refresh answer said.
pub struct Tokens {
    /// The new access token.
    pub access: String,
    /// The new refresh token, when the server rotated it.
    pub refresh: Option<String>,
    /// Seconds until the access token expires.
    pub expires_in: Option<u64>,
    /// A new id token, when the server sent one.
    pub id_token: Option<String>,
    /// The access token's placeholder from now on: the one the sandbox
    /// holds, or, for a JWT, one with the new token's header and claims
    /// (clients read its expiry and account from them).
    pub access_placeholder: String,
}

/// The placeholder the sandbox gets for a refreshed access token.
fn access_placeholder(login: &Login, access: &str) -> String {
    let held = login.access.0.get();
    let jwt = |t: &str| t.starts_with("eyJ") && t.split('.').count() == 3;
    if jwt(&held) && jwt(access) {
        paddock_logins::placeholder(access, &mut paddock_logins::fill_random)
    } else {
        held
    }
}

/// Read a refresh answer (a JSON object, or a form as some endpoints
/// answer): the new tokens, and the answer the sandbox gets in the same
/// form (placeholders in place of both, any other token replaced by one
/// that stands for nothing). None when it is not a token answer.
pub fn answer(login: &Login, body: &[u8]) -> Option<(Tokens, Vec<u8>)> {
    if let Ok(v) = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body) {
        return answer_json(login, v);
    }
    let text = std::str::from_utf8(body).ok()?;
    let mut fields: Vec<(String, String)> = Vec::new();
    for pair in text.trim().split('&').filter(|p| !p.is_empty()) {
        let (n, v) = pair.split_once('=')?;
        let (n, v) = (form_decode(n)?, form_decode(v)?);
        if fields.iter().any(|(o, _)| *o == n) {
            return None;
        }
        fields.push((n, v));
    }
    let get = |n: &str| fields.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let access = get("access_token").filter(|a| !a.is_empty())?;
    let refresh = get("refresh_token").filter(|r| !r.is_empty());
    let expires_in = get("expires_in").and_then(|e| e.parse().ok());
    let id_token = get("id_token").filter(|t| !t.is_empty());
    let access_ph = access_placeholder(login, &access);
    let keep = [access_ph.as_str(), login.refresh.0.as_str()];
    let out = fields
        .iter()
        .map(|(n, v)| {
            let v = match n.as_str() {
                "access_token" => access_ph.clone(),
                "refresh_token" if refresh.is_some() => login.refresh.0.clone(),
                _ => paddock_logins::mask_text(v, &keep, &mut paddock_logins::fill_random),
            };
            format!("{}={}", form_encode(n), form_encode(&v))
        })
        .collect::<Vec<_>>()
        .join("&");
    Some((
        Tokens {
            access,
            refresh,
            expires_in,
            id_token,
            access_placeholder: access_ph,
        },
        out.into_bytes(),
    ))
}

fn answer_json(
    login: &Login,
    mut v: serde_json::Map<String, serde_json::Value>,
) -> Option<(Tokens, Vec<u8>)> {
    let access = v.get("access_token")?.as_str()?.to_string();
    if access.is_empty() {
        return None;
    }
    let refresh = v
        .get("refresh_token")
        .and_then(|r| r.as_str())
        .filter(|r| !r.is_empty())
        .map(str::to_string);
    let expires_in = v.get("expires_in").and_then(|e| {
        e.as_u64()
            .or_else(|| e.as_str().and_then(|s| s.parse().ok()))
    });
    let id_token = v
        .get("id_token")
        .and_then(|r| r.as_str())
        .filter(|r| !r.is_empty())
        .map(str::to_string);
    let access_ph = access_placeholder(login, &access);
    v.insert("access_token".into(), access_ph.clone().into());
    if refresh.is_some() {
        v.insert("refresh_token".into(), login.refresh.0.clone().into());
    }
    let mut out = serde_json::Value::Object(v);
    let keep = [access_ph.as_str(), login.refresh.0.as_str()];
    mask_tokens(
        &mut out,
        &[&access, refresh.as_deref().unwrap_or("")],
        &keep,
    );
    Some((
        Tokens {
            access,
            refresh,
            expires_in,
            id_token,
            access_placeholder: access_ph,
        },
        serde_json::to_vec(&out).ok()?,
    ))
}

/// Any other string that looks like a token, or holds one of `real`,
/// becomes a placeholder of its shape.
fn mask_tokens(v: &mut serde_json::Value, real: &[&str], keep: &[&str]) {
    match v {
        serde_json::Value::String(s) if keep.contains(&s.as_str()) => {}
        serde_json::Value::String(s) => {
            let holds = real.iter().any(|r| !r.is_empty() && s.contains(r));
            if holds || paddock_logins::secret_like(s) {
                *s = paddock_logins::placeholder(s, &mut paddock_logins::fill_random);
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| mask_tokens(x, real, keep)),
        serde_json::Value::Object(o) => o.iter_mut().for_each(|(_, x)| mask_tokens(x, real, keep)),
        _ => {}
    }
}

/// The document with the new tokens and expiry set in place.
pub fn updated_document(login: &Login, doc: &str, t: &Tokens) -> Result<String, String> {
    let mut sets = vec![(
        login.access_key.clone(),
        serde_json::Value::from(t.access.clone()),
    )];
    if let Some(r) = &t.refresh {
        sets.push((login.refresh_key.clone(), r.clone().into()));
    }
    // The id token and the expiry are kept where the document has them: a
    // document without one must not make the rotated login unstorable
    // (the server has already retired the old refresh token).
    if let (Some(k), Some(id)) = (&login.id_token_key, &t.id_token) {
        if paddock_logins::json_has(doc, k) {
            sets.push((k.clone(), id.clone().into()));
        }
    }
    if let (Some(k), Some(secs)) = (&login.expires_key, t.expires_in) {
        if !paddock_logins::json_has(doc, k) {
            return paddock_logins::json_set(doc, &sets);
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let at = if login.expires_ms {
            u64::try_from(now.as_millis())
                .unwrap_or(u64::MAX)
                .saturating_add(secs.saturating_mul(1000))
        } else {
            now.as_secs().saturating_add(secs)
        };
        sets.push((k.clone(), at.into()));
    }
    paddock_logins::json_set(doc, &sets)
}

/// How long a refresh waits for another paddock's refresh of the same
/// login file before it goes ahead anyway.
const OTHER_REFRESH_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The login file's folder, locked (`flock`) against the refresh of the
/// same login by another paddock process (another session on the same
/// account): one refresh at a time across processes too, each reading
/// the document the one before stored. The folder, not the file: a
/// stored login is a new file renamed into place. None for a keyring
/// item, or when the folder cannot be locked within
/// [`OTHER_REFRESH_WAIT`] (the refresh goes ahead: the server then
/// decides, as it does for two host CLIs).
pub async fn lock_across_processes(login: &Login) -> Option<std::os::fd::OwnedFd> {
    let Store::File(path) = &login.store else {
        return None;
    };
    let dir = path.parent()?.to_path_buf();
    tokio::task::spawn_blocking(move || {
        use std::os::fd::AsFd;
        let fd = paddock_sys::open_dir_nofollow(&dir).ok()?;
        let until = std::time::Instant::now() + OTHER_REFRESH_WAIT;
        loop {
            if paddock_sys::flock_exclusive(fd.as_fd(), false).ok()? {
                return Some(fd);
            }
            if std::time::Instant::now() >= until {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    })
    .await
    .ok()
    .flatten()
}

/// The current refresh token, from the host's document as it is now.
pub async fn current_refresh(login: &Login) -> Result<(String, String), String> {
    let doc = login.store.read_async().await?;
    let d = paddock_logins::Document {
        format: paddock_logins::Format::Json,
        text: doc.clone(),
    };
    let r = d.secret(&login.refresh_key)?;
    if let Ok(a) = d.secret(&login.access_key) {
        // The host's CLI may have refreshed: use what it holds now.
        login.access.1.set(a);
    }
    login.refresh.1.set(r.clone());
    Ok((doc, r))
}

/// Store a successful refresh on the host and in memory.
pub async fn store(login: &Login, doc: &str, t: &Tokens) -> Result<(), String> {
    let new = updated_document(login, doc, t)?;
    login.store.write_async(&new).await?;
    login.access.1.set(t.access.clone());
    login.access.0.set(t.access_placeholder.clone());
    if let Some(r) = &t.refresh {
        login.refresh.1.set(r.clone());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login() -> Login {
        Login {
            port: 443,
            host: "platform.claude.com".into(),
            path: "/v1/oauth/token".into(),
            store: Store::File("/nonexistent".into()),
            access_key: vec!["o".into(), "a".into()],
            refresh_key: vec!["o".into(), "r".into()],
            expires_key: Some(vec!["o".into(), "e".into()]),
            expires_ms: true,
            id_token_key: None,
            extra_fields: Vec::new(),
            access: (
                Secret::new("sk-ant-oat01-PHaccessPHaccessPHaccess"),
                Secret::new("sk-ant-oat01-REALaccess"),
            ),
            refresh: (
                "sk-ant-ort01-PHrefreshPHrefreshPHref".into(),
                Secret::new("sk-ant-ort01-REALrefresh"),
            ),
            name: "~/.claude/.credentials.json".into(),
            lock: Default::default(),
        }
    }

    #[test]
    fn the_token_endpoint_under_another_spelling_is_refused() {
        let ls = vec![std::sync::Arc::new(login())];
        let m = |path: &str, q: Option<&str>| matching(&ls, "platform.claude.com", 443, path, q);
        assert!(m("/v1/oauth/token", None).unwrap().is_some());
        for p in [
            "/v1/oauth/token/",
            "/v1/oauth/token/x",
            "/V1/OAuth/Token",
            "/v1/oauth/token;x",
            "/v1/oauth/token//",
        ] {
            assert!(m(p, None).is_err(), "{p}");
        }
        assert!(m("/v1/oauth/token", Some("code=x")).is_err());
        assert!(
            m("/v1/oauth/tokens", None).unwrap().is_none(),
            "another endpoint"
        );
        assert!(m("/v1/messages", None).unwrap().is_none());
    }

    #[test]
    fn a_document_without_the_id_token_or_expiry_still_takes_the_rotated_login() {
        let mut l = login();
        l.id_token_key = Some(vec!["o".into(), "i".into()]);
        let (t, _) = answer(
            &l,
            br#"{"access_token":"sk-ant-oat01-NEW","refresh_token":"sk-ant-ort01-NEW","id_token":"x","expires_in":60}"#,
        )
        .unwrap();
        let doc = updated_document(&l, r#"{"o":{"a":"x","r":"y"}}"#, &t).unwrap();
        let d: serde_json::Value = serde_json::from_str(&doc).unwrap();
        assert_eq!(d["o"]["r"], "sk-ant-ort01-NEW");
        assert_eq!(d["o"]["a"], "sk-ant-oat01-NEW");
        assert!(d["o"].get("i").is_none() && d["o"].get("e").is_none());
    }

    #[test]
    fn only_the_extra_fields_a_policy_names_pass_and_never_another_grants() {
        let mut l = login();
        let body = |extra: &str| {
            format!(
                r#"{{"grant_type":"refresh_token","refresh_token":"{}","client_id":"abc",{extra}}}"#,
                l.refresh.0
            )
        };
        let send = |l: &Login, b: String| {
            request_body(l, Some("application/json"), b.as_bytes(), "REAL").map(|o| o.0)
        };
        let b = body(r#""refresh_reason":"proactive_expiry""#);
        assert!(send(&l, b.clone()).is_err(), "not named: refused");
        l.extra_fields = vec!["refresh_reason".into(), "code".into()];
        let out: serde_json::Value = serde_json::from_slice(&send(&l, b).unwrap()).unwrap();
        assert_eq!(out["refresh_reason"], "proactive_expiry");
        // A grant's field stays refused even if a policy names it, and a
        // named field's value still may not smuggle one.
        assert!(send(&l, body(r#""code":"attacker-code""#)).is_err());
        assert!(send(&l, body(r#""refresh_reason":"x&code=y""#)).is_err());
    }

    #[test]
    fn a_jwt_access_tokens_placeholder_follows_the_new_claims() {
        use base64::Engine;
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let t = |claims: &str| {
            format!(
                "{}.{}.{}",
                e.encode(r#"{"alg":"RS256"}"#),
                e.encode(claims),
                "S".repeat(43)
            )
        };
        let mut l = login();
        l.access.0 = Secret::new(t(r#"{"exp":1}"#));
        l.id_token_key = Some(vec!["o".into(), "i".into()]);
        let new = t(r#"{"exp":2000000000}"#);
        let body = format!(
            r#"{{"access_token":"{new}","id_token":"{}","expires_in":60}}"#,
            t("{}")
        );
        let (tokens, out) = answer(&l, body.as_bytes()).unwrap();
        let ph = tokens.access_placeholder.clone();
        assert_ne!(ph, new, "a placeholder, not the token");
        assert_eq!(
            ph.split('.').nth(1),
            new.split('.').nth(1),
            "with its claims"
        );
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["access_token"], ph.as_str());
        assert_ne!(v["id_token"], t("{}").as_str(), "the id token is masked");
        let doc =
            updated_document(&l, r#"{"o":{"a":"x","r":"y","i":"z","e":0}}"#, &tokens).unwrap();
        let d: serde_json::Value = serde_json::from_str(&doc).unwrap();
        assert_eq!(d["o"]["i"], t("{}").as_str(), "the real id token is stored");
        // A token that is no JWT keeps the placeholder the sandbox holds.
        let l = login();
        let (tokens, _) = answer(&l, br#"{"access_token":"sk-ant-oat01-NEW"}"#).unwrap();
        assert_eq!(tokens.access_placeholder, l.access.0.get());
    }

    #[test]
    fn a_refresh_request_gets_the_real_token_and_nothing_else_passes() {
        let l = login();
        let body = format!(
            r#"{{"grant_type":"refresh_token","refresh_token":"{}","client_id":"abc","scope":"user:inference"}}"#,
            l.refresh.0
        );
        let out = request_body(
            &l,
            Some("application/json"),
            body.as_bytes(),
            "sk-ant-ort01-REALrefresh",
        )
        .unwrap();
        assert_eq!(out.1, "application/json");
        let v: serde_json::Value = serde_json::from_slice(&out.0).unwrap();
        assert_eq!(v["refresh_token"], "sk-ant-ort01-REALrefresh");
        assert_eq!(v["client_id"], "abc");
        assert_eq!(v["scope"], "user:inference");
        // Form bodies too.
        let form = format!(
            "grant_type=refresh_token&refresh_token={}&client_id=x%20y",
            l.refresh.0
        );
        let out = request_body(
            &l,
            Some("application/x-www-form-urlencoded"),
            form.as_bytes(),
            "R+1",
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out.0).unwrap(),
            "grant_type=refresh_token&refresh_token=R%2B1&client_id=x%20y"
        );
        assert_eq!(out.1, "application/x-www-form-urlencoded");
        // Fields a server reading the body as a form would take for more
        // fields, fields no refresh has, values that are not strings.
        for b in [
            format!(
                r#"{{"grant_type":"refresh_token","refresh_token":"{}","client_id":"x&grant_type=authorization_code&code=c&"}}"#,
                l.refresh.0
            ),
            format!(
                r#"{{"grant_type":"refresh_token","refresh_token":"{}","x":"y"}}"#,
                l.refresh.0
            ),
            format!(
                r#"{{"grant_type":"refresh_token","refresh_token":"{}","client_id":1}}"#,
                l.refresh.0
            ),
        ] {
            let e = request_body(&l, Some("application/json"), b.as_bytes(), "R").unwrap_err();
            assert_eq!(e.0, "NET_BODY_UNREADABLE", "{b}: {}", e.1);
        }
        // Another account's refresh token, a sign-in, misplaced
        // placeholders, duplicates, unreadable bodies: refused.
        let cases = [
            (
                r#"{"grant_type":"refresh_token","refresh_token":"sk-ant-ort01-attacker"}"#
                    .to_string(),
                "NET_FOREIGN_CREDENTIAL",
            ),
            (
                format!(
                    r#"{{"grant_type":"authorization_code","code":"c","refresh_token":"{}"}}"#,
                    l.refresh.0
                ),
                "NET_TOKEN_GRANT_REFUSED",
            ),
            (
                format!(
                    r#"{{"grant_type":"refresh_token","refresh_token":"{0}","state":"{0}"}}"#,
                    l.refresh.0
                ),
                "NET_PLACEHOLDER_MISPLACED",
            ),
            (
                format!(
                    r#"{{"grant_type":"refresh_token","refresh_token":"{}","x":"{}"}}"#,
                    l.refresh.0,
                    l.access.0.get()
                ),
                "NET_PLACEHOLDER_MISPLACED",
            ),
            ("[1]".to_string(), "NET_BODY_UNREADABLE"),
        ];
        for (b, code) in cases {
            let e = request_body(&l, Some("application/json"), b.as_bytes(), "R").unwrap_err();
            assert_eq!(e.0, code, "{b}: {}", e.1);
        }
        let dup = format!(
            "grant_type=refresh_token&refresh_token={0}&refresh_token={0}",
            l.refresh.0
        );
        assert_eq!(
            request_body(
                &l,
                Some("application/x-www-form-urlencoded"),
                dup.as_bytes(),
                "R"
            )
            .unwrap_err()
            .0,
            "NET_BODY_UNREADABLE"
        );
        assert_eq!(
            request_body(&l, Some("text/plain"), b"x", "R")
                .unwrap_err()
                .0,
            "NET_BODY_UNREADABLE"
        );
    }

    #[test]
    fn the_answer_carries_placeholders_and_the_document_the_new_tokens() {
        let l = login();
        let body = br#"{"access_token":"sk-ant-oat01-NEWaccessNEWaccess","refresh_token":"sk-ant-ort01-NEWrefreshNEWrefresh","expires_in":28800,"scope":"user:inference","id_token":"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJlc2ln"}"#;
        let (t, out) = answer(&l, body).unwrap();
        assert_eq!(t.access, "sk-ant-oat01-NEWaccessNEWaccess");
        assert_eq!(
            t.refresh.as_deref(),
            Some("sk-ant-ort01-NEWrefreshNEWrefresh")
        );
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["access_token"], l.access.0.get().as_str());
        assert_eq!(v["refresh_token"], l.refresh.0.as_str());
        assert_eq!(v["scope"], "user:inference");
        let id = v["id_token"].as_str().unwrap();
        assert!(
            id.starts_with("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.")
                && !id.ends_with("c2lnbmF0dXJlc2lnbmF0dXJlc2ln")
        );
        let out = String::from_utf8(out).unwrap();
        assert!(
            !out.contains("NEWaccess") && !out.contains("NEWrefresh"),
            "{out}"
        );
        let doc = r#"{"o":{"a":"sk-ant-oat01-REALaccess","r":"sk-ant-ort01-REALrefresh","e":1,"s":["x"]},"keep":true}"#;
        let new = updated_document(&l, doc, &t).unwrap();
        let v: serde_json::Value = serde_json::from_str(&new).unwrap();
        assert_eq!(v["o"]["a"], "sk-ant-oat01-NEWaccessNEWaccess");
        assert_eq!(v["o"]["r"], "sk-ant-ort01-NEWrefreshNEWrefresh");
        assert!(v["o"]["e"].as_u64().unwrap() > 1_700_000_000_000);
        assert_eq!(v["keep"], true);
        // Not a token answer: nothing to store.
        assert!(answer(&l, br#"{"error":"invalid_grant"}"#).is_none());
        assert!(answer(&l, br#"{"access_token":7}"#).is_none());
        // A form answer (GitHub's endpoint answers so unless asked for JSON).
        let (t, out) = answer(&l, b"access_token=gho_NEWaccessNEWaccessNEW&refresh_token=ghr_NEWrefreshNEWrefreshNEW&expires_in=28800&token_type=bearer").unwrap();
        assert_eq!(t.access, "gho_NEWaccessNEWaccessNEW");
        assert_eq!(t.expires_in, Some(28800));
        let out = String::from_utf8(out).unwrap();
        assert!(
            !out.contains("NEWaccess") && !out.contains("NEWrefresh"),
            "{out}"
        );
        assert!(out.contains("token_type=bearer"), "{out}");
    }
}
