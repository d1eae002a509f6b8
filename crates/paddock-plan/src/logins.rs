//! The brokered credentials of a run, read where they are kept: an
//! environment variable, a file, a tool's login document (JSON, `.npmrc`,
//! `hosts.yml`, …) or a keyring item; their placeholders; the masked
//! copies of login documents the sandbox sees; and the OAuth logins whose
//! refresh the proxy carries out.

use std::path::PathBuf;
use std::sync::Arc;

use paddock_logins::{Document, Format, Store};
use paddock_policy::{Credential, Effective};
use paddock_proxy::refresh::Login;
use paddock_proxy::{Brokered, Secret};

use crate::error::CliError;
use crate::host::HostFacts;
use paddock_reasons::Reason;

/// What the credentials of a run come to.
#[derive(Default)]
pub struct Resolved {
    /// (the variable that holds the placeholder, if any; the credential).
    pub credentials: Vec<(Option<String>, Brokered)>,
    /// Logins whose refresh the proxy carries out.
    pub logins: Vec<Arc<Login>>,
    /// Masked login documents: (path, the same inside; text).
    pub files: Vec<(PathBuf, String)>,
    /// Every host file a secret is read from, as the kernel names it (no
    /// link in it): none may be shown to the sandbox by a mount.
    pub host_files: Vec<PathBuf>,
}

/// A document read once per run, shared by the credentials that name it.
struct Doc {
    store: Store,
    doc: Document,
    /// Where the sandbox sees it, if it does.
    shown: Option<PathBuf>,
    /// (secret, placeholder) of the credentials read from it.
    pairs: Vec<(String, String)>,
}

fn expand(p: &str, host: &HostFacts) -> PathBuf {
    p.strip_prefix("~/")
        .map(|r| host.home.join(r))
        .unwrap_or_else(|| PathBuf::from(p))
}

fn missing(what: String, fix: &str) -> CliError {
    CliError::new(Reason::NET_CREDENTIAL_SOURCE_MISSING.code(), what, fix)
}

/// The old-style placeholder of a secret the sandbox sees in a variable
/// only.
fn plain_placeholder() -> String {
    let mut b = [0u8; 16];
    paddock_logins::fill_random(&mut b);
    format!(
        "paddock-placeholder-{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

/// Read every credential of `eff`.
pub fn resolve(eff: &Effective, host: &HostFacts) -> Result<Resolved, CliError> {
    let mut out = Resolved::default();
    let mut docs: Vec<Doc> = Vec::new();
    // (credential, its document's index, its key, its index in `out`)
    // for the refresh pass.
    type Read<'a> = (&'a Credential, Option<usize>, Option<Vec<String>>, usize);
    let mut read: Vec<Read<'_>> = Vec::new();
    for c in &eff.credentials {
        let v = &c.value;
        let origin = c.origin.describe();
        let shown = v.file.as_deref().map(|f| expand(f, host));
        if let Some(p) = &shown {
            if !p.starts_with(&host.home) || p == &host.home {
                return Err(CliError::new(
                    Reason::NET_CREDENTIAL_FILE_SHOWN.code(),
                    format!(
                        "credential for {} ({origin}): the login file {} is outside the home {}, where paddock shows login files",
                        v.host,
                        p.display(),
                        host.home.display()
                    ),
                    "name the file under ~/ where the tool reads it",
                ));
            }
        }
        let source = v
            .source
            .clone()
            .or_else(|| v.file.as_ref().map(|f| format!("file:{f}")))
            .unwrap_or_default();
        let key = v
            .key
            .as_deref()
            .map(paddock_logins::parse_key)
            .transpose()
            .map_err(|why| CliError::new(Reason::POLICY_INVALID.code(), why, "fix the key"))?;
        let doc_name = v
            .file
            .clone()
            .or_else(|| source.strip_prefix("file:").map(str::to_string));
        let format = match (&v.format, &key) {
            (Some(f), _) => Format::parse(f).unwrap_or(Format::Raw),
            (None, Some(_)) => doc_name
                .as_deref()
                .and_then(Format::guess)
                .unwrap_or(Format::Json),
            (None, None) => Format::Raw,
        };
        let skip = |e: CliError| -> Result<(), CliError> {
            if v.optional == Some(true) {
                eprintln!(
                    "paddock: note: the credential for {} ({origin}) is skipped: {}",
                    v.host, e.message
                );
                Ok(())
            } else {
                Err(e)
            }
        };
        // The secret and, for documents, which one it came from.
        let (secret, doc_at) = if let Some(name) = source.strip_prefix("env:") {
            match host.env.iter().find(|(k, _)| k == name) {
                Some((_, val)) => (val.to_string_lossy().into_owned(), None),
                None => {
                    skip(missing(
                        format!(
                            "credential for {} ({origin}) reads ${name}, which is not set",
                            v.host
                        ),
                        &format!("export {name}=... before running paddock"),
                    ))?;
                    continue;
                }
            }
        } else {
            let store = if let Some(p) = source.strip_prefix("file:") {
                Store::File(expand(p, host))
            } else if let Some(a) = source.strip_prefix("keyring:") {
                Store::Keyring(paddock_logins::keyring::parse_attributes(a).map_err(|why| {
                    CliError::new(
                        Reason::POLICY_INVALID.code(),
                        why,
                        "write keyring:ATTR=VALUE,...",
                    )
                })?)
            } else {
                return Err(CliError::new(
                    Reason::POLICY_INVALID.code(),
                    format!(
                        "credential for {} ({origin}): `{source}` is not a source",
                        v.host
                    ),
                    "use env:NAME, file:PATH or keyring:ATTR=VALUE,...",
                ));
            };
            if let Store::File(p) = &store {
                // The file's real place: a folder on the way may be a link
                // into a folder the sandbox is shown, and a second name (a
                // hard link) may lie in one.
                if let Ok(real) = std::fs::canonicalize(p) {
                    if std::fs::metadata(&real)
                        .is_ok_and(|m| std::os::unix::fs::MetadataExt::nlink(&m) > 1)
                    {
                        return Err(CliError::new(
                            Reason::NET_CREDENTIAL_FILE_SHOWN.code(),
                            format!(
                                "credential for {} ({origin}): {} has another name (a hard link), which a folder the sandbox sees could show",
                                v.host,
                                p.display()
                            ),
                            "keep the login in a file with one name (copy it, remove the other name)",
                        ));
                    }
                    if !out.host_files.contains(&real) {
                        out.host_files.push(real);
                    }
                }
            }
            let at = match docs.iter().position(|d| d.store == store) {
                Some(i) => i,
                None => {
                    let text = match store.read() {
                        Ok(t) => t,
                        Err(why) => {
                            let code = if matches!(store, Store::Keyring(_)) {
                                Reason::NET_KEYRING_UNAVAILABLE.code()
                            } else {
                                Reason::NET_CREDENTIAL_SOURCE_MISSING.code()
                            };
                            skip(CliError::new(
                                code,
                                format!("credential for {} ({origin}): {why}", v.host),
                                "sign in with the tool on the host (or create the file), or mark the credential `optional = true`",
                            ))?;
                            continue;
                        }
                    };
                    docs.push(Doc {
                        store: store.clone(),
                        doc: Document { format, text },
                        shown: None,
                        pairs: Vec::new(),
                    });
                    docs.len() - 1
                }
            };
            let d = &docs[at];
            let secret = match &key {
                Some(k) => match d.doc.secret(k) {
                    Ok(s) => s,
                    Err(why) => {
                        skip(missing(
                            format!(
                                "credential for {} ({origin}): {} holds no secret at `{}`: {why}",
                                v.host,
                                d.store.describe(),
                                k.join(".")
                            ),
                            "sign in with the tool on the host, or fix `key`",
                        ))?;
                        continue;
                    }
                },
                None => d.doc.text.trim().to_string(),
            };
            (secret, Some(at))
        };
        if secret.is_empty() {
            skip(missing(
                format!("credential for {} ({origin}): the secret is empty", v.host),
                "sign in with the tool on the host, or fix the source",
            ))?;
            continue;
        }
        // One secret of one document has one placeholder, whichever hosts
        // it goes to (the document can show only one).
        let same = doc_at.and_then(|at| {
            docs[at]
                .pairs
                .iter()
                .find(|(s, _)| *s == secret)
                .map(|(_, p)| p.clone())
        });
        let placeholder = match same {
            Some(p) => p,
            None if v.file.is_some() || key.is_some() => {
                paddock_logins::placeholder(&secret, &mut paddock_logins::fill_random)
            }
            None => plain_placeholder(),
        };
        if let Some(at) = doc_at {
            let d = &mut docs[at];
            if let Some(p) = &shown {
                if d.shown.as_ref().is_some_and(|o| o != p) {
                    return Err(CliError::new(
                        Reason::POLICY_INVALID.code(),
                        format!(
                            "credential for {} ({origin}): one login is shown at two paths",
                            v.host
                        ),
                        "give every credential of one document the same `file`",
                    ));
                }
                d.shown = Some(p.clone());
            }
            if !d.pairs.iter().any(|(s, _)| *s == secret) {
                d.pairs.push((secret.clone(), placeholder.clone()));
            }
        }
        let name = v.name();
        // The same secret of the same document on another host shares its
        // cells: a refresh replaces the secret (and a JWT's placeholder)
        // on every host it goes to.
        let shared = read
            .iter()
            .filter(|(_, d, _, _)| doc_at.is_some() && *d == doc_at)
            .map(|(_, _, _, j)| &out.credentials[*j].1)
            .find(|b| b.placeholder.get() == placeholder)
            .map(|b| (b.placeholder.clone(), b.secret.clone()));
        let (placeholder, secret) =
            shared.unwrap_or_else(|| (Secret::new(placeholder), Secret::new(secret)));
        out.credentials.push((
            v.env.clone(),
            Brokered {
                host: v.host.to_ascii_lowercase(),
                env: name,
                placeholder,
                secret,
                refresh_only: v.refresh.is_some(),
            },
        ));
        read.push((v, doc_at, key, out.credentials.len() - 1));
    }
    // OAuth logins: each refresh token's access token is the credential
    // of the same document at `refresh.access`.
    for (v, doc_at, key, i) in &read {
        let Some(r) = &v.refresh else { continue };
        let (Some(at), Some(refresh_key)) = (doc_at, key) else {
            return Err(CliError::new(
                Reason::POLICY_INVALID.code(),
                format!("the refresh of {} needs its login document and key", v.host),
                "read the refresh token from a JSON file or keyring item, with `key`",
            ));
        };
        let access_key = paddock_logins::parse_key(&r.access).map_err(|why| {
            CliError::new(Reason::POLICY_INVALID.code(), why, "fix refresh.access")
        })?;
        let access = read
            .iter()
            .find(|(_, d, k, _)| d == &Some(*at) && k.as_ref() == Some(&access_key))
            .map(|(_, _, _, j)| &out.credentials[*j].1);
        let Some(access) = access else {
            return Err(CliError::new(
                Reason::POLICY_INVALID.code(),
                format!(
                    "the refresh of {} names the access token `{}`, which no credential of the same login brokers",
                    v.host, r.access
                ),
                "add a [[network.credentials]] with the same file and `key` = refresh.access, on the API's host",
            ));
        };
        let rest = r.url.strip_prefix("https://").unwrap_or(&r.url);
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], rest[i..].to_string()),
            None => (rest, "/".into()),
        };
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path
        };
        let port = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
                p.parse::<u16>().unwrap_or(443)
            }
            _ => 443,
        };
        let refresh = &out.credentials[*i].1;
        out.logins.push(Arc::new(Login {
            host: v.host.to_ascii_lowercase(),
            port,
            path,
            store: docs[*at].store.clone(),
            access_key,
            refresh_key: refresh_key.clone(),
            expires_key: r
                .expires_at
                .as_deref()
                .map(paddock_logins::parse_key)
                .transpose()
                .map_err(|why| {
                    CliError::new(Reason::POLICY_INVALID.code(), why, "fix refresh.expires_at")
                })?,
            expires_ms: r.expires_unit.as_deref() != Some("s"),
            id_token_key: r
                .id_token
                .as_deref()
                .map(paddock_logins::parse_key)
                .transpose()
                .map_err(|why| {
                    CliError::new(Reason::POLICY_INVALID.code(), why, "fix refresh.id_token")
                })?,
            extra_fields: r.fields.clone().unwrap_or_default(),
            access: (access.placeholder.clone(), access.secret.clone()),
            refresh: (refresh.placeholder.get(), refresh.secret.clone()),
            name: refresh.env.clone(),
            lock: Default::default(),
        }));
    }
    for d in &docs {
        let Some(p) = &d.shown else { continue };
        let text = d
            .doc
            .masked(&d.pairs, &mut paddock_logins::fill_random)
            .map_err(|why| {
                CliError::new(
                    Reason::NET_CREDENTIAL_SOURCE_MISSING.code(),
                    format!("{}: {why}", d.store.describe()),
                    "write the token without escapes (sign in with the tool again)",
                )
            })?;
        out.files.push((p.clone(), text));
    }
    Ok(out)
}
