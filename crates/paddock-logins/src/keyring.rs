//! `keyring:` sources: an item of the freedesktop Secret Service (GNOME
//! Keyring, KeePassXC, KWallet's bridge) on the user's D-Bus session bus,
//! found by its attributes, as `secret-tool lookup` finds it.

use std::collections::HashMap;

use secret_service::{EncryptionType, SecretService};

/// Why a keyring item could not be read or written, with what to do.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// No session bus, or no Secret Service on it.
    #[error("no Secret Service is reachable ({0}); start your desktop session's keyring (gnome-keyring-daemon, KeePassXC's Secret Service integration), or use an env: or file: source")]
    Unavailable(String),
    /// No item has these attributes.
    #[error("no keyring item has the attributes {0}; store it first (e.g. `secret-tool store --label=... {1}`)")]
    NotFound(String, String),
    /// More than one item has them.
    #[error("{0} keyring items have the attributes {1}; add attributes until one matches")]
    Ambiguous(usize, String),
    /// The item is locked and unlocking needs a prompt paddock cannot show.
    #[error("the keyring item {0} is locked; unlock the keyring (log in to the desktop, or run `secret-tool lookup {1}` once)")]
    Locked(String, String),
    /// The secret is not UTF-8 text.
    #[error("the keyring item {0} does not hold text")]
    NotText(String),
    /// Any other failure of the service.
    #[error("the Secret Service failed: {0}")]
    Service(String),
}

/// `ATTR=VALUE,ATTR=VALUE` (values may hold `:` and `=`, not `,`).
pub fn parse_attributes(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for part in s.split(',') {
        let Some((k, v)) = part.split_once('=') else {
            return Err(format!("keyring attribute `{part}` is not ATTR=VALUE"));
        };
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() || v.is_empty() {
            return Err(format!(
                "keyring attribute `{part}` has an empty name or value"
            ));
        }
        if out.iter().any(|(o, _)| o == k) {
            return Err(format!("keyring attribute `{k}` is given twice"));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

fn shown(attrs: &[(String, String)]) -> String {
    attrs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn tool_args(attrs: &[(String, String)]) -> String {
    attrs
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn service_error(e: secret_service::Error) -> KeyringError {
    match e {
        secret_service::Error::Unavailable => {
            KeyringError::Unavailable("no Secret Service or session bus".into())
        }
        secret_service::Error::Zbus(z) => KeyringError::Unavailable(z.to_string()),
        other => KeyringError::Service(other.to_string()),
    }
}

async fn connect() -> Result<SecretService<'static>, KeyringError> {
    if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none()
        && std::env::var_os("XDG_RUNTIME_DIR").is_none()
    {
        return Err(KeyringError::Unavailable(
            "DBUS_SESSION_BUS_ADDRESS and XDG_RUNTIME_DIR are unset".into(),
        ));
    }
    SecretService::connect(EncryptionType::Dh)
        .await
        .map_err(service_error)
}

/// The items with these attributes, unlocked and locked.
async fn search<'a>(
    ss: &'a SecretService<'a>,
    attrs: &[(String, String)],
) -> Result<secret_service::SearchItemsResult<secret_service::Item<'a>>, KeyringError> {
    let q: HashMap<&str, &str> = attrs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    ss.search_items(q).await.map_err(service_error)
}

/// The item's secret, as text.
pub async fn read_async(attrs: &[(String, String)]) -> Result<String, KeyringError> {
    let ss = connect().await?;
    let found = search(&ss, attrs).await?;
    let n = found.unlocked.len() + found.locked.len();
    if n == 0 {
        return Err(KeyringError::NotFound(shown(attrs), tool_args(attrs)));
    }
    if n > 1 {
        return Err(KeyringError::Ambiguous(n, shown(attrs)));
    }
    let Some(item) = found.unlocked.first() else {
        return Err(KeyringError::Locked(shown(attrs), tool_args(attrs)));
    };
    let bytes = item.get_secret().await.map_err(service_error)?;
    String::from_utf8(bytes).map_err(|_| KeyringError::NotText(shown(attrs)))
}

/// Replace the item's secret (one call: the service stores it whole).
pub async fn write_async(attrs: &[(String, String)], secret: &str) -> Result<(), KeyringError> {
    let ss = connect().await?;
    let found = search(&ss, attrs).await?;
    match (found.unlocked.as_slice(), found.locked.len()) {
        ([item], 0) => {
            let ct = item
                .get_secret_content_type()
                .await
                .unwrap_or_else(|_| "text/plain".into());
            item.set_secret(secret.as_bytes(), &ct)
                .await
                .map_err(service_error)
        }
        ([], 0) => Err(KeyringError::NotFound(shown(attrs), tool_args(attrs))),
        ([], _) => Err(KeyringError::Locked(shown(attrs), tool_args(attrs))),
        (u, l) => Err(KeyringError::Ambiguous(u.len() + l, shown(attrs))),
    }
}

/// [`read_async`] from synchronous code: on a thread of its own with its
/// own small runtime, so that it may be called from anywhere.
pub fn read(attrs: &[(String, String)]) -> Result<String, KeyringError> {
    let attrs = attrs.to_vec();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| KeyringError::Service(e.to_string()))?;
        rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(10), read_async(&attrs))
                .await
                .unwrap_or_else(|_| {
                    Err(KeyringError::Unavailable(
                        "it did not answer in 10 s".into(),
                    ))
                })
        })
    })
    .join()
    .unwrap_or_else(|_| Err(KeyringError::Service("the keyring thread failed".into())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes() {
        assert_eq!(
            parse_attributes("service=gh:github.com,username=alice").unwrap(),
            vec![
                ("service".into(), "gh:github.com".into()),
                ("username".into(), "alice".into())
            ]
        );
        assert_eq!(parse_attributes("service=a=b").unwrap()[0].1, "a=b");
        for bad in ["", "service", "=x", "a=", "a=1,a=2"] {
            assert!(parse_attributes(bad).is_err(), "{bad}");
        }
    }
}
