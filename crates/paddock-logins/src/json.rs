//! Where a value lies in a JSON document, as a byte range, so that a login
//! can be read and rewritten without re-serialising the document: the
//! tool's own formatting, key order and other fields stay byte for byte.

use std::ops::Range;

/// The byte range of the value at `path` (object keys only) in `doc`, or
/// why there is none. `doc` must be one valid JSON value.
pub fn span(doc: &str, path: &[String]) -> Result<Range<usize>, String> {
    serde_json::from_str::<serde_json::Value>(doc).map_err(|e| format!("not valid JSON: {e}"))?;
    let b = doc.as_bytes();
    let mut at = skip_ws(b, 0);
    let mut walked = Vec::new();
    for key in path {
        if b.get(at) != Some(&b'{') {
            return Err(format!("`{}` is not an object", shown(&walked)));
        }
        at = skip_ws(b, at + 1);
        let mut found = None;
        loop {
            if b.get(at) == Some(&b'}') {
                break;
            }
            let k = string_end(b, at).ok_or("a broken string")?;
            let name: String = serde_json::from_str(&doc[at..k]).map_err(|e| e.to_string())?;
            at = skip_ws(b, k);
            if b.get(at) != Some(&b':') {
                return Err("a key without a value".into());
            }
            at = skip_ws(b, at + 1);
            let end = value_end(b, at).ok_or("a broken value")?;
            if name == *key {
                // The last one wins, as in JavaScript's JSON.parse.
                found = Some(at..end);
            }
            at = skip_ws(b, end);
            match b.get(at) {
                Some(b',') => at = skip_ws(b, at + 1),
                Some(b'}') => break,
                _ => return Err("a broken object".into()),
            }
        }
        walked.push(key.clone());
        match found {
            Some(r) => at = r.start,
            None => return Err(format!("no `{}`", shown(&walked))),
        }
    }
    let end = value_end(b, at).ok_or("a broken value")?;
    Ok(at..end)
}

fn shown(path: &[String]) -> String {
    if path.is_empty() {
        "(the document)".into()
    } else {
        path.join(".")
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// The end (exclusive) of the string starting at `i`.
fn string_end(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
    None
}

/// The end (exclusive) of the value starting at `i`.
fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => string_end(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = string_end(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            {
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Vec<String> {
        s.split('.').map(String::from).collect()
    }

    #[test]
    fn finds_nested_values_and_keeps_the_rest() {
        let doc = r#"{"a": {"x": [1, {"y": "}"}], "tok": "sk-1", "n": 17}, "b": "q\"t"}"#;
        assert_eq!(&doc[span(doc, &p("a.tok")).unwrap()], "\"sk-1\"");
        assert_eq!(&doc[span(doc, &p("a.n")).unwrap()], "17");
        assert_eq!(&doc[span(doc, &p("b")).unwrap()], r#""q\"t""#);
        assert_eq!(&doc[span(doc, &p("a.x")).unwrap()], r#"[1, {"y": "}"}]"#);
        assert!(span(doc, &p("a.none")).unwrap_err().contains("a.none"));
        assert!(span(doc, &p("b.c")).unwrap_err().contains("not an object"));
        assert!(span("{\"a\": ", &p("a"))
            .unwrap_err()
            .contains("not valid JSON"));
    }

    #[test]
    fn the_last_of_repeated_keys_is_the_one() {
        let doc = r#"{"t": "old", "t": "new"}"#;
        assert_eq!(&doc[span(doc, &p("t")).unwrap()], "\"new\"");
    }
}
