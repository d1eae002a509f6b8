//! The host's logins, in their tools' own formats.
//!
//! A tool keeps its login where it always has: Claude Code in
//! `~/.claude/.credentials.json`, `gh` in `~/.config/gh/hosts.yml`, npm in
//! `~/.npmrc`, twine in `~/.pypirc`, curl and git in `~/.netrc`. This crate
//! reads a secret at a key of such a document ([`Document::secret`]), shows
//! the same document with every secret replaced by a placeholder that keeps
//! the secret's shape ([`Document::masked`], [`placeholder`]) so that the
//! tool's own format checks pass, and writes a refreshed login back into
//! the tool's file in place, atomically ([`json_set`], [`replace_file`]).
//!
//! Nothing here talks to the network or to the sandbox: the egress proxy
//! and the planner call it.

#![forbid(unsafe_code)]

mod formats;
mod json;
pub mod keyring;
mod shape;
mod store;

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

pub use formats::Format;
pub use json::span as json_span;
pub use shape::{key_shaped, known_prefix, placeholder, secret_like};
pub use store::Store;

/// A key inside a document: `a.b.c`, where a part holding dots is quoted
/// (`"//registry.npmjs.org/:_authToken"`, `"github.com".oauth_token`).
pub fn parse_key(key: &str) -> Result<Vec<String>, String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut was_quoted = false;
    for c in key.chars() {
        match c {
            '"' => {
                if !quoted && !cur.is_empty() {
                    return Err(format!("`{key}`: a quote inside a part"));
                }
                quoted = !quoted;
                was_quoted = true;
            }
            '.' if !quoted => {
                if cur.is_empty() && !was_quoted {
                    return Err(format!("`{key}`: an empty part"));
                }
                parts.push(std::mem::take(&mut cur));
                was_quoted = false;
            }
            c => cur.push(c),
        }
    }
    if quoted {
        return Err(format!("`{key}`: an unclosed quote"));
    }
    if cur.is_empty() && !was_quoted {
        return Err(format!("`{key}`: an empty part"));
    }
    parts.push(cur);
    Ok(parts)
}

/// One login document as read from the host.
#[derive(Clone)]
pub struct Document {
    /// Its format.
    pub format: Format,
    /// Its text.
    pub text: String,
}

impl std::fmt::Debug for Document {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Document")
            .field("format", &self.format)
            .field("text", &"<redacted>")
            .finish()
    }
}

impl Document {
    /// The secret at `key` (a string value; `raw`: the whole document,
    /// trimmed, and `key` empty).
    pub fn secret(&self, key: &[String]) -> Result<String, String> {
        let v = formats::lookup(self.format, &self.text, key)?;
        if v.is_empty() {
            return Err(format!("`{}` is empty", key.join(".")));
        }
        Ok(v)
    }

    /// The document as the sandbox sees it: each `(secret, placeholder)`
    /// in `brokered` swapped, and every other value that looks like a
    /// secret replaced by a placeholder of its shape that stands for
    /// nothing (a token no rule brokers never enters the sandbox either).
    /// `fill` supplies randomness. Fails closed: a secret that does not
    /// appear verbatim in the text (escaped) cannot be masked.
    pub fn masked(
        &self,
        brokered: &[(String, String)],
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> Result<String, String> {
        let mut pairs: Vec<(String, String)> = brokered.to_vec();
        for (key, v) in formats::values(self.format, &self.text)? {
            // Not secrets: flags, numbers, and the password fillers tools
            // write beside a token (the broker accepts only these there).
            let plain = ["true", "false", "yes", "no", "null", "x", "x-oauth-basic"]
                .contains(&v.to_ascii_lowercase().as_str())
                // A number is plain unless its name says secret (a PIN).
                || (v.bytes().all(|b| b.is_ascii_digit())
                    && !key.as_deref().is_some_and(names_a_secret));
            // A .netrc `account` is a second password; a login that is
            // shaped like a key is one (a token as the user name).
            let netrc_account = self.format == Format::Netrc && key.as_deref() == Some("account");
            let named = (key.as_deref().is_some_and(names_a_secret) || netrc_account) && !plain;
            // A value that holds a brokered secret (one reader's value is
            // `_authToken=` and the token) keeps that secret's placeholder.
            let holds_brokered = brokered
                .iter()
                .any(|(b, _)| !b.is_empty() && v.contains(b.as_str()));
            // In a .netrc any key-shaped value is a credential (a token as
            // the login); elsewhere ids (UUIDs, hashes) are left as they are.
            let netrc_key = self.format == Format::Netrc && key_shaped(&v);
            if (named || secret_like(&v) || netrc_key)
                && !v.is_empty()
                && !holds_brokered
                && !pairs.iter().any(|(s, _)| *s == v)
            {
                let dead = placeholder(&v, fill);
                pairs.push((v, dead));
            }
        }
        // Longer secrets first: one that contains another is swapped whole.
        pairs.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
        let mut out = self.text.clone();
        for (i, (secret, ph)) in pairs.iter().enumerate() {
            let (next, n) = replace_whole(&out, secret, ph);
            if n == 0 {
                // Gone with a longer one that held it: masked already.
                let within = pairs[..i]
                    .iter()
                    .any(|(longer, _)| longer.contains(secret.as_str()));
                if within && self.text.contains(secret.as_str()) {
                    continue;
                }
                return Err(
                    "a secret in it is written in an escaped form paddock cannot replace".into(),
                );
            }
            out = next;
        }
        // Comments and what the parser did not read as a value.
        let out = mask_comments(self.format, &out, fill);
        let keep: Vec<&str> = pairs.iter().map(|(_, p)| p.as_str()).collect();
        Ok(mask_text(&out, &keep, fill))
    }
}

/// `text` with each whole occurrence of `secret` (not inside a longer word:
/// a value `x` is not the x of `x-oauth-basic` or `example`) replaced by
/// `with`, and how many there were.
fn replace_whole(text: &str, secret: &str, with: &str) -> (String, usize) {
    if secret.is_empty() {
        return (text.to_string(), 0);
    }
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    let mut out = String::with_capacity(text.len());
    let mut n = 0;
    let mut at = 0;
    while let Some(i) = text[at..].find(secret) {
        let start = at + i;
        let end = start + secret.len();
        let before = text[..start].chars().next_back();
        let after = text[end..].chars().next();
        // A secret that begins or ends with a word character must not
        // continue one.
        let open = !secret.starts_with(|c: char| word(Some(c))) || !word(before);
        let close = !secret.ends_with(|c: char| word(Some(c))) || !word(after);
        out.push_str(&text[at..start]);
        if open && close {
            out.push_str(with);
            n += 1;
        } else {
            out.push_str(secret);
        }
        at = end;
    }
    out.push_str(&text[at..]);
    (out, n)
}

/// Every token in `text` that looks like a secret (split where a token
/// cannot go on: quotes, spaces, `:`, `,`, ...) and is none of `keep` nor
/// part of one, replaced by a placeholder of its shape that stands for
/// nothing. What a parser might miss (a comment, an odd syntax, an error
/// message that echoes a token) is masked all the same.
pub fn mask_text(text: &str, keep: &[&str], fill: &mut dyn FnMut(&mut [u8])) -> String {
    let is_token = |c: char| c.is_ascii_alphanumeric() || "-_.+/=~".contains(c);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let start = rest.find(is_token).unwrap_or(rest.len());
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest.find(|c: char| !is_token(c)).unwrap_or(rest.len());
        let tok = &rest[..end];
        let kept = keep
            .iter()
            .any(|k| !k.is_empty() && (k.contains(tok) || tok.contains(k)));
        if !tok.is_empty() && !kept && secret_like(tok) {
            out.push_str(&placeholder(tok, fill));
        } else {
            out.push_str(tok);
        }
        rest = &rest[end..];
    }
    out
}

/// Does a key by this name hold a secret whatever its value looks like
/// (`password`, `_authToken`, `clientSecret`, `_auth`, `apiKey`)? Names
/// of kinds, modes, addresses and times do not (`token_type`,
/// `auth_mode`, `token_url`, `expires_at`).
pub fn names_a_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    let benign = [
        "type", "mode", "url", "uri", "endpoint", "method", "scope", "expir", "provider",
        "protocol", "helper", "host", "user", "name", "_id", "kind", "file", "path",
    ];
    if benign.iter().any(|b| k.contains(b)) {
        return false;
    }
    // Separators dropped: `pass_word`, `pass-phrase`.
    let joined: String = k.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    [
        "token",
        "secret",
        "password",
        "passwd",
        "passphrase",
        "auth",
        "credential",
        "cookie",
        "session",
        "signature",
        "recovery",
        "backup",
        "passcode",
        "otp",
    ]
    .iter()
    .any(|w| k.contains(w) || joined.contains(w))
        || k == "pass"
        || k == "pin"
        || k.ends_with("key")
}

/// The text of a line format's comments (`#`, and `;` in INI) with every
/// word after one that names a secret (`# password: hunter2`, `;
/// token = …`) masked: a tool never reads a comment, and a secret left in
/// one is a secret shown.
fn mask_comments(format: Format, text: &str, fill: &mut dyn FnMut(&mut [u8])) -> String {
    if !matches!(format, Format::Ini | Format::Netrc | Format::Yaml) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        let comment = t.starts_with('#') || (format == Format::Ini && t.starts_with(';'));
        let Some(at) = comment
            .then(|| {
                let lower = line.to_ascii_lowercase();
                line.split(|c: char| !c.is_ascii_alphanumeric() && c != '_' && c != '-')
                    .filter(|w| names_a_secret(w))
                    .filter_map(|w| lower.find(&w.to_ascii_lowercase()).map(|i| i + w.len()))
                    .min()
            })
            .flatten()
        else {
            out.push_str(line);
            continue;
        };
        let (head, tail) = line.split_at(at);
        out.push_str(head);
        let mut word = String::new();
        for c in tail.chars() {
            if c.is_whitespace() || ":=\"'".contains(c) {
                if !word.is_empty() {
                    out.push_str(&placeholder(&word, fill));
                    word.clear();
                }
                out.push(c);
            } else {
                word.push(c);
            }
        }
        if !word.is_empty() {
            out.push_str(&placeholder(&word, fill));
        }
    }
    out
}

/// Set values in a JSON document in place: each `(key, value)` replaces
/// the value at that key (it must exist), everything else stays byte for
/// byte (the tool's formatting, its key order, fields paddock does not
/// know).
pub fn json_set(doc: &str, sets: &[(Vec<String>, serde_json::Value)]) -> Result<String, String> {
    let mut out = doc.to_string();
    for (key, value) in sets {
        let r = json::span(&out, key)?;
        out.replace_range(r, &value.to_string());
    }
    serde_json::from_str::<serde_json::Value>(&out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// Does the JSON document have a value at `key`?
pub fn json_has(doc: &str, key: &[String]) -> bool {
    json::span(doc, key).is_ok()
}

/// Replace the host file at `path` with `content` as one step: a new file
/// beside it (same mode, created exclusively, never through a link),
/// written and synced, renamed over the old name (which replaces a link
/// rather than writing through it), the folder synced. A reader sees the
/// old document or the new one, never part of one.
pub fn replace_file(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("no file name"))?;
    let old = std::fs::symlink_metadata(path)?;
    if !old.file_type().is_file() {
        return Err(std::io::Error::other(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    let mode = old.permissions().mode() & 0o7777;
    let mut rnd = [0u8; 6];
    fill_random(&mut rnd);
    let tmp = dir.join(format!(
        ".{}.paddock-{}",
        name.to_string_lossy(),
        rnd.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    let done = (|| {
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(content)?;
        f.sync_all()?;
        if old.uid() != f.metadata()?.uid() {
            return Err(std::io::Error::other(format!(
                "{} belongs to another user",
                path.display()
            )));
        }
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if done.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    done
}

/// Fill `buf` from the kernel's random source (`getrandom`, which does not
/// fail once the pool is ready, as it is long before paddock runs).
pub fn fill_random(buf: &mut [u8]) {
    let ok = paddock_sys::random_bytes(buf);
    assert!(ok.is_ok(), "getrandom works on Linux 3.17 and later");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_on_dots_outside_quotes() {
        assert_eq!(parse_key("a.b").unwrap(), ["a", "b"]);
        assert_eq!(
            parse_key("\"//registry.npmjs.org/:_authToken\"").unwrap(),
            ["//registry.npmjs.org/:_authToken"]
        );
        assert_eq!(
            parse_key("\"github.com\".oauth_token").unwrap(),
            ["github.com", "oauth_token"]
        );
        for bad in ["", "a..b", "a.", "\"a", "a\"b\""] {
            assert!(parse_key(bad).is_err(), "{bad}");
        }
    }

    fn counter() -> impl FnMut(&mut [u8]) {
        let mut n = 0u8;
        move |b: &mut [u8]| {
            for x in b {
                n = n.wrapping_mul(31).wrapping_add(7);
                *x = n;
            }
        }
    }

    #[test]
    fn a_claude_login_is_masked_with_shaped_placeholders() {
        let doc = Document {
            format: Format::Json,
            text: r#"{"claudeAiOauth":{"accessToken":"sk-ant-oat01-AAAAbbbbCCCCdddd1111eeeeFFFF2222gggg","refreshToken":"sk-ant-ort01-ZZZZyyyyXXXXwwww9999vvvvUUUU8888tttt","expiresAt":1764000000000,"scopes":["user:inference"],"subscriptionType":"max"},"other":"ghp_aaaaBBBBccccDDDDeeee1111ffff"}"#.into(),
        };
        let at = parse_key("claudeAiOauth.accessToken").unwrap();
        let access = doc.secret(&at).unwrap();
        assert!(access.starts_with("sk-ant-oat01-"));
        let mut fill = counter();
        let ph = placeholder(&access, &mut fill);
        let out = doc
            .masked(&[(access.clone(), ph.clone())], &mut fill)
            .unwrap();
        assert!(out.contains(&ph), "{out}");
        assert!(!out.contains(&access));
        assert!(!out.contains("sk-ant-ort01-ZZZZ"), "{out}");
        assert!(
            !out.contains("ghp_aaaa"),
            "an unbrokered token stays out too: {out}"
        );
        assert!(out.contains("\"expiresAt\":1764000000000"));
        assert!(out.contains("\"subscriptionType\":\"max\""));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert!(v["claudeAiOauth"]["refreshToken"]
            .as_str()
            .unwrap()
            .starts_with("sk-ant-ort01-"));
    }

    #[test]
    fn secrets_under_secret_names_in_comments_and_odd_syntax_are_masked_too() {
        let mut fill = counter();
        let cases: &[(Format, &str, &[&str], &[&str])] = &[
            (
                Format::Json,
                r#"{"mcpOAuth":{"srv":{"refreshToken":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","clientSecret":"4c1f2e3d:7a8b9c","clientId":"abc"}},"password":"correcthorsebatterystaple","tokenType":"Bearer","alwaysAuth":true}"#,
                &["9f86d081884c", "4c1f2e3d:7a8b9c", "correcthorse"],
                &[r#""clientId":"abc""#, r#""tokenType":"Bearer""#, "true"],
            ),
            (
                Format::Ini,
                "[pypi]
username = __token__
password = pypi-AgEIcHlwaS5vcmcCJGFiYy1kZWYAAA
[testpypi]
password = correcthorsebatterystaple
[x]
password: colonsyntaxSECRET
; password = pypi-COMMENTEDoutAgEIcHlwaS5vcmcCJG
",
                &[
                    "correcthorse",
                    "colonsyntaxSECRET",
                    "pypi-COMMENTEDoutAgEIcHlwaS5vcmcCJG",
                    "pypi-AgEIcHlwaS5vcmcCJGFiYy1kZWYAAA",
                ],
                &["username = __token__", "[testpypi]"],
            ),
            (
                Format::Ini,
                "registry=https://registry.npmjs.org/
always-auth=true
//npm.corp.example/:_authToken=0f4c2a9e-1b2c-4d3e-8f9a-0b1c2d3e4f5a
//other/:_auth=Ym9iOmh1bnRlcjI=
",
                &["0f4c2a9e-1b2c", "Ym9iOmh1bnRlcjI="],
                &["registry=https://registry.npmjs.org/", "always-auth=true"],
            ),
            (
                Format::Ini,
                "[pypi]
password: hunter2hunter2hunter2hunter2=
[other]
password =
  continuedsecretvalue
",
                &["hunter2hunter2", "continuedsecretvalue"],
                &["[pypi]", "[other]"],
            ),
            (
                Format::Netrc,
                "machine ftp.corp.example login 0123456789abcdef0123456789abcdef01234567 password x-oauth-basic account Secret-Account-Word-9
machine b.example login carol password x
",
                &["0123456789abcdef", "Secret-Account-Word-9"],
                &["machine ftp.corp.example", "password x-oauth-basic", "login carol", "password x\n"],
            ),
            (
                Format::Netrc,
                "# db password: Tr0ub4dor-Horse-88
#machine old.example login a password Sup3rSecretPw!
machine c.example login carol password sesame99
",
                &["Tr0ub4dor-Horse-88", "Sup3rSecretPw!"],
                &["machine c.example login carol", "# db password: "],
            ),
            (
                Format::Ini,
                "[pypi]
; password = MyOldPassw0rd
pass_word = Zebra!Monkey#9
",
                &["MyOldPassw0rd", "Zebra!Monkey"],
                &["[pypi]", "; password = "],
            ),
            (
                Format::Json,
                r#"{"pin":"4821","backup_codes":"aaaa-bbbb-cccc","recovery":"x1y2z3w4","name":"bob"}"#,
                &["4821", "aaaa-bbbb", "x1y2z3w4"],
                &[r#""name":"bob""#],
            ),
            (
                Format::Netrc,
                "machine h login bob password \"my db pass phrase 2024\"
",
                &["my db pass phrase", "pass phrase 2024"],
                &["login bob"],
            ),
            (
                Format::Netrc,
                "machine a.example login alice password hunter2x
default login bob password sesame99
",
                &["hunter2x", "sesame99"],
                &["login alice", "login bob"],
            ),
            (
                Format::Yaml,
                "github.com:
    user: alice
    password: plainpassword
    # old: gho_16C7e42F292c6912E7710c838347Ae178B4a
    git_protocol: https
",
                &["plainpassword", "gho_16C7e42F292c"],
                &["user: alice", "git_protocol: https"],
            ),
        ];
        for (format, text, hidden, kept) in cases {
            let doc = Document {
                format: *format,
                text: text.to_string(),
            };
            let out = doc
                .masked(&[], &mut fill)
                .unwrap_or_else(|e| panic!("{format:?} {text}: {e}"));
            for h in *hidden {
                assert!(!out.contains(h), "{h} is shown: {out}");
            }
            for k in *kept {
                assert!(out.contains(k), "{k} was changed: {out}");
            }
        }
    }

    #[test]
    fn an_escaped_secret_fails_closed() {
        let doc = Document {
            format: Format::Json,
            text: r#"{"t":"sk-ant-\u0041AAAbbbbCCCCdddd1111eeee"}"#.into(),
        };
        let s = doc.secret(&parse_key("t").unwrap()).unwrap();
        let e = doc.masked(&[(s, "x".into())], &mut counter()).unwrap_err();
        assert!(e.contains("escaped"), "{e}");
    }

    #[test]
    fn json_set_keeps_everything_else() {
        let doc = "{\n  \"o\": {\"a\": \"old\", \"n\": 1},\n  \"z\": [1, 2]\n}\n";
        let out = json_set(
            doc,
            &[
                (parse_key("o.a").unwrap(), serde_json::json!("new")),
                (parse_key("o.n").unwrap(), serde_json::json!(99)),
            ],
        )
        .unwrap();
        assert_eq!(
            out,
            "{\n  \"o\": {\"a\": \"new\", \"n\": 99},\n  \"z\": [1, 2]\n}\n"
        );
        assert!(json_set(doc, &[(parse_key("o.b").unwrap(), serde_json::json!(1))]).is_err());
    }

    #[test]
    fn replace_file_is_atomic_keeps_the_mode_and_never_follows_a_link() {
        let d = std::env::temp_dir().join(format!("paddock-logins-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let f = d.join("creds.json");
        std::fs::write(&f, "{}").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        replace_file(&f, b"{\"a\":1}").unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "{\"a\":1}");
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // A link at the name: refused, its target untouched.
        let target = d.join("bashrc");
        std::fs::write(&target, "keep").unwrap();
        let l = d.join("link.json");
        std::os::unix::fs::symlink(&target, &l).unwrap();
        assert!(replace_file(&l, b"x").is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        assert_eq!(
            std::fs::read_dir(&d).unwrap().count(),
            3,
            "no temporary file left"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
