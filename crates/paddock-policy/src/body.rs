//! `body_deny`: checking a JSON request body against a host's rules while
//! it is parsed, without building it in memory (a 32 MiB body of tiny
//! objects would take gigabytes as a tree). Memory is the nesting depth
//! plus the keys of the objects currently open.
//!
//! What has two readings is refused: an object whose keys repeat (parsers
//! keep the first or the last), invalid JSON of any kind (serde_json is
//! strict: no comments, BOM, NaN or trailing data).

use std::cell::Cell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};

/// Why a body was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyVerdict<'r> {
    /// It contains what this rule denies.
    Denied(&'r str),
    /// It cannot be read in one way (the reason).
    Unreadable(String),
}

fn matches(pat: &str, s: &str) -> bool {
    match pat.strip_suffix('*') {
        Some(prefix) => s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix),
        None => s.eq_ignore_ascii_case(pat),
    }
}

struct Check<'a, 'r> {
    rules: &'a [&'r str],
    hit: &'a Cell<Option<&'r str>>,
}

const DENIED: &str = "\u{0}paddock-denied";

impl<'de, 'a, 'r> DeserializeSeed<'de> for Check<'a, 'r> {
    type Value = Option<String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, 'a, 'r> Visitor<'de> for Check<'a, 'r> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq
            .next_element_seed(Check {
                rules: self.rules,
                hit: self.hit,
            })?
            .is_some()
        {}
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seen: HashSet<String> = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(A::Error::custom(format!(
                    "the key `{key}` twice in one object"
                )));
            }
            if let Some(r) = self.rules.iter().find(|r| {
                r.strip_prefix("key:")
                    .is_some_and(|k| k.eq_ignore_ascii_case(&key))
            }) {
                self.hit.set(Some(r));
                return Err(A::Error::custom(DENIED));
            }
            let value = map.next_value_seed(Check {
                rules: self.rules,
                hit: self.hit,
            })?;
            // `url:NAME`: a string under NAME that is no `data:` URL is
            // one the server would fetch (an image by URL).
            if let Some(v) = &value {
                let fetched = !v.trim_start().to_ascii_lowercase().starts_with("data:");
                if let Some(r) = self.rules.iter().find(|r| {
                    fetched
                        && r.strip_prefix("url:")
                            .is_some_and(|k| k.eq_ignore_ascii_case(&key))
                }) {
                    self.hit.set(Some(r));
                    return Err(A::Error::custom(DENIED));
                }
            }
            if key.eq_ignore_ascii_case("type") {
                if let Some(ty) = value {
                    if let Some(r) = self
                        .rules
                        .iter()
                        .find(|r| r.strip_prefix("type:").is_some_and(|p| matches(p, &ty)))
                    {
                        self.hit.set(Some(r));
                        return Err(A::Error::custom(DENIED));
                    }
                }
            }
        }
        Ok(None)
    }
}

/// Check `body` (JSON) against `rules` (`key:NAME`, `type:GLOB`,
/// `url:NAME` for a string under NAME that is not a `data:` URL; names and
/// types compared without ASCII case). Ok when nothing is denied.
pub fn check_body<'r>(rules: &[&'r str], body: &[u8]) -> Result<(), BodyVerdict<'r>> {
    let hit = Cell::new(None);
    let mut de = serde_json::Deserializer::from_slice(body);
    let checked = Check { rules, hit: &hit }
        .deserialize(&mut de)
        .and_then(|_| de.end());
    match (checked, hit.get()) {
        (_, Some(r)) => Err(BodyVerdict::Denied(r)),
        (Ok(()), None) => Ok(()),
        (Err(e), None) => Err(BodyVerdict::Unreadable(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &[&str] = &["type:url", "type:web_fetch*", "key:mcp_servers"];

    #[test]
    fn what_servers_would_act_on_is_found() {
        let ok = br#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"see https://x"}]}]}"#;
        assert_eq!(check_body(RULES, ok), Ok(()));
        for (body, want) in [
            (&br#"{"messages":[{"content":[{"type":"image","source":{"type":"url","url":"https://attacker.example/"}}]}]}"#[..], "type:url"),
            (br#"{"tools":[{"type":"web_fetch_20250910","name":"web_fetch"}]}"#, "type:web_fetch*"),
            (br#"{"tools":[{"type":"WEB_FETCH"}]}"#, "type:web_fetch*"),
            (br#"{"x":{"\u0074ype":"URL"}}"#, "type:url"),
            (br#"{"MCP_Servers":[]}"#, "key:mcp_servers"),
        ] {
            assert_eq!(check_body(RULES, body), Err(BodyVerdict::Denied(want)), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn an_image_by_url_is_refused_and_one_by_value_passes() {
        let rules = &["url:image_url"];
        let inline = br#"{"input":[{"content":[{"type":"input_image","image_url":"data:image/png;base64,AAAA"}]}]}"#;
        assert_eq!(check_body(rules, inline), Ok(()));
        for body in [
            &br#"{"input":[{"content":[{"type":"input_image","image_url":"https://attacker.example/leak?d=x"}]}]}"#[..],
            br#"{"tools":[{"type":"image_generation","input_image_mask":{"IMAGE_URL":" http://x/"}}]}"#,
            br#"{"x":{"image_url":"//attacker.example/x"}}"#,
        ] {
            assert_eq!(check_body(rules, body), Err(BodyVerdict::Denied("url:image_url")), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn what_has_two_readings_is_unreadable() {
        for body in [
            &br#"{"source":{"media":"a","media":"b"}}"#[..],
            b"\xef\xbb\xbf{}",
            b"{} {}",
            b"{/*c*/}",
            b"[NaN]",
            b"type=url&url=x",
        ] {
            assert!(
                matches!(check_body(RULES, body), Err(BodyVerdict::Unreadable(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn a_repeated_type_is_refused_whichever_comes_first() {
        for body in [
            &br#"{"source":{"type":"url","type":"base64"}}"#[..],
            br#"{"source":{"type":"base64","type":"url"}}"#,
        ] {
            assert!(
                check_body(RULES, body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn many_tiny_objects_are_checked_without_a_tree() {
        let mut big = b"[".to_vec();
        for _ in 0..200_000 {
            big.extend_from_slice(br#"{"":0},"#);
        }
        big.extend_from_slice(b"{}]");
        assert_eq!(check_body(RULES, &big), Ok(()));
    }
}
