//! Where a login document lives on the host: a file or a keyring item.

use std::path::{Path, PathBuf};

use crate::keyring;

/// A login document's home on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Store {
    /// A file, read and replaced whole ([`crate::replace_file`]).
    File(PathBuf),
    /// A Secret Service item found by these attributes.
    Keyring(Vec<(String, String)>),
}

impl Store {
    /// For messages: the file's path, or `keyring item ATTRS`.
    pub fn describe(&self) -> String {
        match self {
            Store::File(p) => p.display().to_string(),
            Store::Keyring(a) => format!(
                "keyring item {}",
                a.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }
    }

    /// The document's text now (a file is read through no link).
    pub fn read(&self) -> Result<String, String> {
        match self {
            Store::File(p) => read_file(p),
            Store::Keyring(a) => keyring::read(a).map_err(|e| e.to_string()),
        }
    }

    /// [`Store::read`] from async code.
    pub async fn read_async(&self) -> Result<String, String> {
        match self {
            Store::File(p) => read_file(p),
            Store::Keyring(a) => keyring::read_async(a).await.map_err(|e| e.to_string()),
        }
    }

    /// Replace the document as one step.
    pub async fn write_async(&self, text: &str) -> Result<(), String> {
        match self {
            Store::File(p) => {
                crate::replace_file(p, text.as_bytes()).map_err(|e| format!("{}: {e}", p.display()))
            }
            Store::Keyring(a) => keyring::write_async(a, text)
                .await
                .map_err(|e| e.to_string()),
        }
    }
}

/// A regular file's text, opened with no link followed at its name, at
/// most 1 MiB.
fn read_file(p: &Path) -> Result<String, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(p)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => format!(
                "{} is a symbolic link; name the file it points to",
                p.display()
            ),
            _ => format!("{}: {e}", p.display()),
        })?;
    let meta = f.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", p.display()));
    }
    if meta.len() > 1 << 20 {
        return Err(format!(
            "{} is {} bytes; a login file paddock reads is at most 1 MiB",
            p.display(),
            meta.len()
        ));
    }
    let mut s = String::new();
    f.take(1 << 20)
        .read_to_string(&mut s)
        .map_err(|e| format!("{}: {e}", p.display()))?;
    Ok(s)
}
