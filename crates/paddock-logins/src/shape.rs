//! Placeholders that keep a secret's shape, and what looks like a secret.
//!
//! A client often checks a token before it sends it: a prefix
//! (`sk-ant-oat01-`, `ghp_`, `npm_`), a length, a JWT it decodes for its
//! expiry or account id. The placeholder keeps all of that and nothing of
//! the secret's value: the prefix up to its last separator in the first 16
//! characters stays, every other letter or digit is drawn anew in its own
//! class (upper case, lower case, digit), other characters stay where they
//! are; a JWT keeps its header and claims and gets a new signature. At
//! least 20 drawn characters (about 110 bits) make it unguessable, so a
//! short secret's placeholder is longer.

/// A placeholder of `secret`'s shape; `fill` supplies randomness.
pub fn placeholder(secret: &str, fill: &mut dyn FnMut(&mut [u8])) -> String {
    let parts: Vec<&str> = secret.split('.').collect();
    if parts.len() == 3 && parts[0].starts_with("eyJ") && parts[2].len() >= 16 {
        let sig = drawn(parts[2], fill);
        return format!("{}.{}.{sig}", parts[0], parts[1]);
    }
    // A known token prefix (`sk-ant-oat01-`, `gho_`, `ya29.`) stays, and
    // the rest keeps its classes and marks: clients check them.
    let known = known_prefix(secret);
    if known > 0 {
        let (prefix, rest) = secret.split_at(known);
        return format!("{prefix}{}", drawn(rest, fill));
    }
    // Anything else (a password, a passphrase, a token of unknown shape):
    // letters and digits only, of its length; no word, case or mark of it
    // is kept (they would tell its words).
    let n = secret.chars().count().max(20);
    if !secret.is_empty() && secret.bytes().all(|b| b.is_ascii_digit()) {
        // Digits stay digits (a PIN, a number in a JSON document, which
        // may not begin with 0).
        let d = drawn(&"0".repeat(n), fill);
        return match d.strip_prefix('0') {
            Some(rest) => format!("1{rest}"),
            None => d,
        };
    }
    drawn_alnum(n, fill)
}

/// The length of the longest known token prefix `t` begins with (0: none).
pub fn known_prefix(t: &str) -> usize {
    let lower = t.to_ascii_lowercase();
    SECRET_PREFIXES
        .iter()
        .chain(SHAPE_PREFIXES)
        .filter(|p| lower.starts_with(*p) && t.is_char_boundary(p.len()) && t.len() > p.len())
        .map(|p| p.len())
        .max()
        .unwrap_or(0)
}

/// Shaped like a key even where [`secret_like`] is not sure: 32 or more
/// hex digits (GitHub's classic tokens were 40), a UUID, or a known
/// token prefix before anything.
pub fn key_shaped(s: &str) -> bool {
    let hex = s.bytes().filter(u8::is_ascii_hexdigit).count();
    is_uuid(s) || (hex >= 32 && hex * 10 >= s.len() * 9) || known_prefix(s) > 0
}

/// Whole prefixes of tokens whose clients check them, beyond the short
/// ones [`secret_like`] knows.
const SHAPE_PREFIXES: &[&str] = &[
    "sk-ant-oat01-",
    "sk-ant-ort01-",
    "sk-ant-api03-",
    "sk-ant-admin01-",
    "sk-proj-",
    "sk-svcacct-",
    "github_pat_",
    "glpat-",
];

/// `n` characters drawn from letters and digits.
fn drawn_alnum(n: usize, fill: &mut dyn FnMut(&mut [u8])) -> String {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rnd = vec![0u8; n];
    fill(&mut rnd);
    rnd.iter()
        .map(|r| char::from(ALNUM[usize::from(*r) % ALNUM.len()]))
        .collect()
}

/// `rest` with each letter and digit drawn anew in its class, padded to at
/// least 20 drawn characters.
fn drawn(rest: &str, fill: &mut dyn FnMut(&mut [u8])) -> String {
    const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
    const DIGIT: &[u8] = b"0123456789";
    let classes: Vec<Option<&[u8]>> = rest
        .bytes()
        .map(|c| {
            if c.is_ascii_uppercase() {
                Some(UPPER)
            } else if c.is_ascii_lowercase() {
                Some(LOWER)
            } else if c.is_ascii_digit() {
                Some(DIGIT)
            } else {
                None
            }
        })
        .collect();
    let count = classes.iter().filter(|c| c.is_some()).count();
    let pad = 20usize.saturating_sub(count);
    let mut rnd = vec![0u8; classes.len()];
    fill(&mut rnd);
    let mut out = String::with_capacity(rnd.len() + pad);
    for (i, (c, class)) in rest.chars().zip(&classes).enumerate() {
        match class {
            // Modulo bias is below 2% per character over ~110 bits.
            Some(set) => out.push(char::from(set[usize::from(rnd[i]) % set.len()])),
            None => out.push(c),
        }
    }
    out.push_str(&drawn_alnum(pad, fill));
    out
}

const SECRET_PREFIXES: &[&str] = &[
    "sk-",
    "sk_",
    "rk_",
    "pk_live",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "npm_",
    "pypi-",
    "xoxb-",
    "xoxp-",
    "xoxa-",
    "xoxr-",
    "akia",
    "asia",
    "aiza",
    "ya29.",
    "1//",
    "hf_",
    "eyj",
];

fn is_uuid(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn entropy(t: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in t.bytes() {
        counts[usize::from(b)] += 1;
    }
    let n = f64::from(u32::try_from(t.len()).unwrap_or(u32::MAX));
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// Does `t` look like a secret? Known token prefixes (20+ characters), or
/// 24+ characters mixing upper case, lower case and digits with high
/// entropy. UUIDs and pure hex do not count (ids, hashes).
pub fn secret_like(t: &str) -> bool {
    if t.len() < 20 {
        return false;
    }
    let lower = t.to_ascii_lowercase();
    if SECRET_PREFIXES.iter().any(|p| lower.starts_with(p)) {
        return true;
    }
    if t.len() < 24 || is_uuid(t) {
        return false;
    }
    let upper = t.bytes().any(|b| b.is_ascii_uppercase());
    let lowerc = t.bytes().any(|b| b.is_ascii_lowercase());
    let digit = t.bytes().any(|b| b.is_ascii_digit());
    upper && lowerc && digit && entropy(t) >= 4.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn real() -> impl FnMut(&mut [u8]) {
        crate::fill_random
    }

    #[test]
    fn placeholders_keep_prefix_length_and_classes() {
        for s in [
            "sk-ant-oat01-AbCdEfGh12345678IjKlMnOp_-QrStUvWx",
            "ghp_0123456789abcdefABCDEF0123456789abcd",
            "gho_16C7e42F292c6912E7710c838347Ae178B4a",
            "npm_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
            "pypi-AgEIcHlwaS5vcmcCJGFiYy1kZWYAAA+/==",
            "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456",
        ] {
            let p = placeholder(s, &mut real());
            assert_ne!(p, s);
            assert_eq!(p.len(), s.len(), "{s} -> {p}");
            let cut = s.chars().take(16).collect::<String>().rfind(['-', '_']).unwrap() + 1;
            assert_eq!(&p[..cut], &s[..cut]);
            for (a, b) in s.bytes().zip(p.bytes()).skip(cut) {
                assert_eq!(a.is_ascii_uppercase(), b.is_ascii_uppercase(), "{s} {p}");
                assert_eq!(a.is_ascii_digit(), b.is_ascii_digit(), "{s} {p}");
                if !a.is_ascii_alphanumeric() {
                    assert_eq!(a, b);
                }
            }
            assert!(secret_like(&p), "a shaped placeholder still reads as a token: {p}");
        }
        // Short: padded to 20 drawn characters.
        let p = placeholder("abc", &mut real());
        assert_eq!(p.len(), 20);
        let p = placeholder("ya29.a0AfH6SMBx", &mut real());
        assert!(p.starts_with("ya29."), "{p}");
        assert_eq!(p.len(), 5 + 20);
    }

    #[test]
    fn a_password_keeps_neither_its_words_nor_its_punctuation() {
        for pw in [
            "purple-monkey-dishwasher-sunset",
            "correct-horse-battery-staple-42",
            "Tr0ub4dor&3",
            "my db pass phrase 2024",
            "Correct-Horse-Battery-Staple-2024",
            "my-secret-Password-For-DB-2024!",
            "Purple-Monkey-Dishwasher-Lamp-77",
        ] {
            let p = placeholder(pw, &mut real());
            assert_eq!(p.len(), pw.len().max(20), "{pw} -> {p}");
            assert!(p.bytes().all(|b| b.is_ascii_alphanumeric()), "{pw} -> {p}");
            for w in pw
                .split(|c: char| !c.is_ascii_alphanumeric())
                .filter(|w| w.len() >= 4)
            {
                assert!(!p.contains(w), "{w} of {pw} kept in {p}");
            }
        }
    }

    #[test]
    fn a_jwt_keeps_its_claims_and_loses_its_signature() {
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjE3NjQwMDAwMDAsImFjY291bnQiOiJ4In0.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU";
        let p = placeholder(jwt, &mut real());
        let (a, b) = (jwt.rsplit_once('.').unwrap(), p.rsplit_once('.').unwrap());
        assert_eq!(a.0, b.0);
        assert_ne!(a.1, b.1);
        assert_eq!(a.1.len(), b.1.len());
    }

    #[test]
    fn what_looks_like_a_secret() {
        assert!(secret_like("sk-ant-api03-abcdefghijklmnop"));
        assert!(secret_like("Zk3mQ9xV2pL7rT4nW8sB6yH1"));
        assert!(!secret_like("0f4c2a9e-1b2c-4d3e-8f9a-0b1c2d3e4f5a"));
        assert!(!secret_like("user:inference"));
        assert!(!secret_like("https"));
    }
}
