//! The document formats tools keep their logins in, read just far enough
//! to find a value at a key and to list every value.

/// A login document's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON (`~/.claude/.credentials.json`, `~/.codex/auth.json`,
    /// `~/.gemini/oauth_creds.json`). Keys are object members.
    Json,
    /// TOML. Keys are table members.
    Toml,
    /// INI (`~/.pypirc`): `section.key`, or `key` before any section. Also
    /// npm's `.npmrc`: `"//registry.npmjs.org/:_authToken"`.
    Ini,
    /// `~/.netrc`: `"MACHINE".password` (or `login`, `account`).
    Netrc,
    /// The block-mapping YAML of `gh`'s `hosts.yml`: `"github.com".oauth_token`.
    Yaml,
    /// The whole file (trimmed) is the secret; no key.
    Raw,
}

impl Format {
    /// Every name a policy may write.
    pub const NAMES: &'static [&'static str] =
        &["json", "toml", "ini", "npmrc", "netrc", "yaml", "raw"];

    /// The format a policy names.
    pub fn parse(name: &str) -> Option<Format> {
        Some(match name {
            "json" => Format::Json,
            "toml" => Format::Toml,
            "ini" | "npmrc" => Format::Ini,
            "netrc" => Format::Netrc,
            "yaml" | "yml" => Format::Yaml,
            "raw" => Format::Raw,
            _ => return None,
        })
    }

    /// The format of a file by its name, when the policy does not say.
    pub fn guess(file: &str) -> Option<Format> {
        let name = file.rsplit('/').next().unwrap_or(file);
        let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
        match (name, ext) {
            (".npmrc" | "npmrc" | ".pypirc" | ".gitconfig", _) => Some(Format::Ini),
            (".netrc" | "_netrc", _) => Some(Format::Netrc),
            (_, "json") => Some(Format::Json),
            (_, "toml") => Some(Format::Toml),
            (_, "ini" | "cfg" | "conf") => Some(Format::Ini),
            (_, "yml" | "yaml") => Some(Format::Yaml),
            _ => None,
        }
    }
}

/// The string at `key` in `doc`.
pub fn lookup(format: Format, doc: &str, key: &[String]) -> Result<String, String> {
    let dotted = key.join(".");
    let missing = || format!("no `{dotted}` in it");
    match format {
        Format::Raw => {
            if !key.is_empty() {
                return Err("a raw file has no keys; leave `key` out".into());
            }
            Ok(doc.trim().to_string())
        }
        Format::Json => {
            let r = crate::json::span(doc, key)?;
            serde_json::from_str::<String>(&doc[r])
                .map_err(|_| format!("`{dotted}` is not a string"))
        }
        Format::Toml => {
            let v: toml::Value =
                toml::from_str(doc).map_err(|e| format!("not valid TOML: {}", e.message()))?;
            let mut cur = &v;
            for k in key {
                cur = cur.get(k).ok_or_else(missing)?;
            }
            cur.as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("`{dotted}` is not a string"))
        }
        Format::Ini | Format::Netrc | Format::Yaml => entries(format, doc)?
            .into_iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .ok_or_else(missing),
    }
}

/// Every scalar value in `doc` with the name of the key it is under (to
/// find secrets nothing brokers).
pub fn values(format: Format, doc: &str) -> Result<Vec<(Option<String>, String)>, String> {
    match format {
        Format::Raw => Ok(vec![(None, doc.trim().to_string())]),
        Format::Json => {
            let v: serde_json::Value =
                serde_json::from_str(doc).map_err(|e| format!("not valid JSON: {e}"))?;
            let mut out = Vec::new();
            walk_json(None, &v, &mut out);
            Ok(out)
        }
        Format::Toml => {
            let v: toml::Value =
                toml::from_str(doc).map_err(|e| format!("not valid TOML: {}", e.message()))?;
            let mut out = Vec::new();
            walk_toml(None, &v, &mut out);
            Ok(out)
        }
        // Every value any INI reader would see: npm's splits a line at
        // its first `=`, Python's configparser at its first `=` or `:` and
        // reads indented lines as the value going on.
        Format::Ini => Ok(ini(doc)
            .into_iter()
            .chain(ini_as_configparser(doc))
            .map(|(k, v)| (k.last().cloned(), v))
            .collect()),
        Format::Netrc | Format::Yaml => Ok(entries(format, doc)?
            .into_iter()
            .map(|(k, v)| (k.last().cloned(), v))
            .collect()),
    }
}

fn walk_json(key: Option<&str>, v: &serde_json::Value, out: &mut Vec<(Option<String>, String)>) {
    match v {
        serde_json::Value::String(s) => out.push((key.map(str::to_string), s.clone())),
        serde_json::Value::Array(a) => a.iter().for_each(|x| walk_json(key, x, out)),
        serde_json::Value::Object(o) => o.iter().for_each(|(k, x)| {
            out.push((None, k.clone()));
            walk_json(Some(k), x, out)
        }),
        _ => {}
    }
}

fn walk_toml(key: Option<&str>, v: &toml::Value, out: &mut Vec<(Option<String>, String)>) {
    match v {
        toml::Value::String(s) => out.push((key.map(str::to_string), s.clone())),
        toml::Value::Array(a) => a.iter().for_each(|x| walk_toml(key, x, out)),
        toml::Value::Table(t) => t.iter().for_each(|(k, x)| {
            out.push((None, k.clone()));
            walk_toml(Some(k), x, out)
        }),
        _ => {}
    }
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return v[1..v.len() - 1].to_string();
        }
    }
    v.to_string()
}

/// (key, value) pairs of the line formats, in order.
fn entries(format: Format, doc: &str) -> Result<Vec<(Vec<String>, String)>, String> {
    match format {
        Format::Ini => Ok(ini(doc)),
        Format::Netrc => netrc(doc),
        Format::Yaml => yaml(doc),
        _ => unreachable!("only line formats have entries"),
    }
}

fn ini(doc: &str) -> Vec<(Vec<String>, String)> {
    ini_read(doc, false)
}

/// [`ini`] as Python's configparser reads it (`.pypirc`): a line split at
/// its first `=` or `:`, whichever comes first, and each indented line
/// after a key another piece of its value.
fn ini_as_configparser(doc: &str) -> Vec<(Vec<String>, String)> {
    ini_read(doc, true)
}

/// The (section, key) and value of each INI line: split at the first `=`
/// (else `:`) as npm reads it, or as configparser does when
/// `configparser`.
fn ini_read(doc: &str, configparser: bool) -> Vec<(Vec<String>, String)> {
    let mut section: Option<String> = None;
    let mut last: Option<Vec<String>> = None;
    let mut out = Vec::new();
    for line in doc.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with(';') || t.starts_with('#') {
            continue;
        }
        if configparser && line.starts_with([' ', '\t']) {
            if let Some(k) = &last {
                out.push((k.clone(), unquote(t)));
            }
            continue;
        }
        if t.starts_with('[') && t.ends_with(']') {
            section = Some(t[1..t.len() - 1].trim().to_string());
            last = None;
            continue;
        }
        let at = if configparser {
            t.find(['=', ':'])
        } else {
            t.find('=').or_else(|| t.find(':'))
        };
        let Some(i) = at else {
            last = None;
            continue;
        };
        let mut key: Vec<String> = section.iter().cloned().collect();
        key.push(t[..i].trim().to_string());
        out.push((key.clone(), unquote(&t[i + 1..])));
        last = Some(key);
    }
    out
}

/// The words of a `.netrc`, as curl and Python read them: a word in
/// double quotes may hold spaces, and `\"` and `\\` inside it.
fn netrc_words(doc: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for line in doc.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let mut chars = line.chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            let Some(&c) = chars.peek() else { break };
            let mut w = String::new();
            if c == '"' {
                chars.next();
                let mut closed = false;
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => w.extend(chars.next()),
                        '"' => {
                            closed = true;
                            break;
                        }
                        c => w.push(c),
                    }
                }
                if !closed {
                    return Err("a quoted word is not closed".into());
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() {
                        break;
                    }
                    w.push(c);
                    chars.next();
                }
            }
            out.push(w);
        }
    }
    Ok(out)
}

fn netrc(doc: &str) -> Result<Vec<(Vec<String>, String)>, String> {
    let mut out = Vec::new();
    let mut machine: Option<String> = None;
    let all = netrc_words(doc)?;
    let mut words = all.iter().map(String::as_str);
    while let Some(w) = words.next() {
        match w {
            "machine" => {
                machine = Some(words.next().ok_or("`machine` without a name")?.to_string())
            }
            "default" => machine = Some("default".into()),
            "login" | "password" | "account" => {
                let v = words
                    .next()
                    .ok_or_else(|| format!("`{w}` without a value"))?;
                let m = machine
                    .clone()
                    .ok_or_else(|| format!("`{w}` before any `machine`"))?;
                out.push((vec![m, w.to_string()], v.to_string()));
            }
            "macdef" => return Err("macdef is not read; keep macros in another file".into()),
            _ => {}
        }
    }
    Ok(out)
}

/// Block mappings of scalars, as `gh` writes them; anything else (flow
/// collections, anchors, multi-line scalars) fails closed.
fn yaml(doc: &str) -> Result<Vec<(Vec<String>, String)>, String> {
    let mut out = Vec::new();
    let mut stack: Vec<(usize, String)> = Vec::new();
    for (n, line) in doc.lines().enumerate() {
        let t = line.trim_end();
        let body = t.trim_start();
        if body.is_empty() || body.starts_with('#') || body == "---" {
            continue;
        }
        let indent = t.len() - body.len();
        if line[..indent].contains('\t') {
            return Err(format!("line {}: a tab in the indentation", n + 1));
        }
        if body.starts_with("- ") || body == "-" {
            // A list item: its values are listed but never a key's.
            let v = unquote(body.trim_start_matches('-'));
            if !v.is_empty() {
                out.push((Vec::new(), v));
            }
            continue;
        }
        let Some((k, v)) = body.split_once(':') else {
            return Err(format!("line {}: not `key: value`", n + 1));
        };
        let v = v.trim();
        if ["&", "*", "|", ">", "{", "["]
            .iter()
            .any(|c| v.starts_with(c))
            || k.starts_with(['{', '[', '?'])
        {
            return Err(format!(
                "line {}: YAML paddock does not read (flow, anchors, block scalars)",
                n + 1
            ));
        }
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        let key = unquote(k);
        let v = v.split(" #").next().unwrap_or("").trim();
        if v.is_empty() {
            stack.push((indent, key));
        } else {
            let mut path: Vec<String> = stack.iter().map(|(_, k)| k.clone()).collect();
            path.push(key);
            out.push((path, unquote(v)));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> Vec<String> {
        crate::parse_key(s).unwrap()
    }

    #[test]
    fn npmrc_pypirc_netrc_hosts_yml_and_toml() {
        let npmrc = "registry=https://registry.npmjs.org/\n//registry.npmjs.org/:_authToken=npm_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789\n";
        assert_eq!(
            lookup(
                Format::Ini,
                npmrc,
                &k("\"//registry.npmjs.org/:_authToken\"")
            )
            .unwrap(),
            "npm_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
        );
        let pypirc = "[distutils]\nindex-servers = pypi\n\n[pypi]\nusername = __token__\npassword = pypi-AgEIcHlwaS5vcmcCJGFiYy1kZWYAAA\n";
        assert_eq!(
            lookup(Format::Ini, pypirc, &k("pypi.password")).unwrap(),
            "pypi-AgEIcHlwaS5vcmcCJGFiYy1kZWYAAA"
        );
        let netrc = "machine api.github.com\n  login alice\n  password ghp_0123456789abcdefABCDEF0123456789abcd\nmachine other login bob password x\n";
        assert_eq!(
            lookup(Format::Netrc, netrc, &k("\"api.github.com\".password")).unwrap(),
            "ghp_0123456789abcdefABCDEF0123456789abcd"
        );
        assert_eq!(
            lookup(Format::Netrc, netrc, &k("other.login")).unwrap(),
            "bob"
        );
        let hosts = "github.com:\n    users:\n        alice:\n            oauth_token: gho_old\n    oauth_token: gho_16C7e42F292c6912E7710c838347Ae178B4a\n    user: alice\n    git_protocol: https\n";
        assert_eq!(
            lookup(Format::Yaml, hosts, &k("\"github.com\".oauth_token")).unwrap(),
            "gho_16C7e42F292c6912E7710c838347Ae178B4a"
        );
        assert_eq!(
            lookup(
                Format::Yaml,
                hosts,
                &k("\"github.com\".users.alice.oauth_token")
            )
            .unwrap(),
            "gho_old"
        );
        assert!(lookup(Format::Yaml, "a: {b: c}\n", &k("a.b")).is_err());
        let t = "[registry]\ntoken = \"cio_AbCdEfGhIjKlMnOpQrSt\"\n";
        assert_eq!(
            lookup(Format::Toml, t, &k("registry.token")).unwrap(),
            "cio_AbCdEfGhIjKlMnOpQrSt"
        );
        assert!(lookup(Format::Toml, t, &k("registry.none"))
            .unwrap_err()
            .contains("registry.none"));
        assert_eq!(lookup(Format::Raw, " tok\n", &[]).unwrap(), "tok");
    }

    #[test]
    fn every_value_an_ini_or_netrc_reader_sees_is_a_value() {
        let vals = |f, d| {
            values(f, d)
                .unwrap()
                .into_iter()
                .map(|(_, v)| v)
                .collect::<Vec<_>>()
        };
        // configparser: the first of `=` and `:`; indented lines go on.
        let v = vals(
            Format::Ini,
            "[pypi]\npassword: hunter2hunter2hunter2=\nusername =\n  continuedsecretvalue\n",
        );
        assert!(v.contains(&"hunter2hunter2hunter2=".to_string()), "{v:?}");
        assert!(v.contains(&"continuedsecretvalue".to_string()), "{v:?}");
        // npm: the first `=` (keys hold `:`).
        let v = vals(Format::Ini, "//registry.npmjs.org/:_authToken=npm_abc\n");
        assert!(v.contains(&"npm_abc".to_string()), "{v:?}");
        // netrc: a quoted word holds spaces.
        let v = vals(
            Format::Netrc,
            "machine h login bob password \"my db pass phrase 2024\"\n",
        );
        assert!(v.contains(&"my db pass phrase 2024".to_string()), "{v:?}");
        assert!(values(Format::Netrc, "machine h password \"open\n").is_err());
    }

    #[test]
    fn formats_by_name() {
        assert_eq!(Format::guess("~/.npmrc"), Some(Format::Ini));
        assert_eq!(
            Format::guess("/h/.claude/.credentials.json"),
            Some(Format::Json)
        );
        assert_eq!(Format::guess("~/.config/gh/hosts.yml"), Some(Format::Yaml));
        assert_eq!(Format::guess("~/.netrc"), Some(Format::Netrc));
        assert_eq!(Format::guess("~/token"), None);
        for n in Format::NAMES {
            assert!(Format::parse(n).is_some());
        }
    }
}
