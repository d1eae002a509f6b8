//! Generate the `Reason` enum from docs/reason-codes.md, the one list of
//! reason codes: each table row `| `CODE` | ... |` becomes a variant with
//! its kind (error with exit code, answer, warning, decision), meaning and
//! fix. A row that does not parse stops the build with its line number.

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let doc = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap())
        .join("../../docs/reason-codes.md");
    println!("cargo:rerun-if-changed={}", doc.display());
    let text = std::fs::read_to_string(&doc)
        .unwrap_or_else(|e| panic!("{}: {e} (the reason codes' source)", doc.display()));
    let mut header: Vec<String> = Vec::new();
    // The sentence above a table says what its two-column rows are.
    let mut above = String::new();
    let mut plain_kind = "Kind::Notice";
    let mut rows: Vec<(String, String, String, String)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if !line.starts_with('|') {
            // A blank line may split one table; text ends it.
            if !line.is_empty() {
                header.clear();
                above = line.to_string();
            }
            continue;
        }
        assert!(
            !header.is_empty() || line.starts_with("| code"),
            "{}:{}: a table row outside a table (no `| code | ...` header above it)",
            doc.display(),
            n + 1
        );
        let cells: Vec<String> = line
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect();
        if cells.first().map(String::as_str) == Some("code") {
            header = cells;
            plain_kind = if above.starts_with("Warnings") {
                "Kind::Warning"
            } else {
                "Kind::Notice"
            };
            continue;
        }
        if cells.iter().all(|c| c.chars().all(|ch| ch == '-')) {
            continue;
        }
        // One row may name several codes of one meaning: `A`, `B`.
        let codes: Vec<&str> = cells[0]
            .split(',')
            .map(|c| c.trim())
            .map(|c| {
                c.strip_prefix('`')
                    .and_then(|c| c.strip_suffix('`'))
                    .unwrap_or_else(|| {
                        panic!(
                            "{}:{}: a reason-code row must start with `CODE`",
                            doc.display(),
                            n + 1
                        )
                    })
            })
            .collect();
        for code in &codes {
            assert!(
                !code.is_empty()
                    && code
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
                "{}:{}: `{code}` is not a reason code (A-Z, 0-9, _)",
                doc.display(),
                n + 1
            );
        }
        let col = |name: &str| {
            header
                .iter()
                .position(|h| h == name)
                .and_then(|i| cells.get(i))
                .cloned()
                .unwrap_or_default()
        };
        let kind = match (col("exit").as_str(), col("allowed").as_str(), header.len()) {
            (_, "yes", _) => "Kind::Decision { allowed: true }".to_string(),
            (_, "no", _) => "Kind::Decision { allowed: false }".to_string(),
            ("—" | "-", _, _) => "Kind::Warning".to_string(),
            (e, _, _) if !e.is_empty() => match e.parse::<i32>() {
                Ok(x) => format!("Kind::Error {{ exit: {x} }}"),
                Err(_) => panic!("{}:{}: exit `{e}` is not a number", doc.display(), n + 1),
            },
            _ => plain_kind.to_string(),
        };
        for code in codes {
            rows.push((
                code.to_string(),
                kind.clone(),
                col("meaning"),
                col("what to do"),
            ));
        }
    }
    // The kind of the 2-column tables comes from the heading above them.
    let mut out = String::new();
    let mut seen = std::collections::HashSet::new();
    out.push_str("/// Every reason code paddock uses (docs/reason-codes.md).\n");
    out.push_str("#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]\n");
    out.push_str("#[allow(non_camel_case_types, clippy::upper_case_acronyms, missing_docs)]\n");
    out.push_str("pub enum Reason {\n");
    // A code may be listed in two tables (AUDIT_OTLP_CONFIG is a warning,
    // and an error when the policy demands the export): the first row is
    // the variant's.
    rows.retain(|(code, ..)| seen.insert(code.clone()));
    for (code, _, meaning, _) in &rows {
        writeln!(out, "    #[doc = {:?}]\n    {code},", meaning).unwrap();
    }
    out.push_str("}\n\nimpl Reason {\n");
    out.push_str("    /// Every code, in the order of the documentation.\n    pub const ALL: &'static [Reason] = &[\n");
    for (code, ..) in &rows {
        writeln!(out, "        Reason::{code},").unwrap();
    }
    out.push_str("    ];\n\n    /// The code as it is printed and matched on.\n    pub const fn code(self) -> &'static str {\n        match self {\n");
    for (code, ..) in &rows {
        writeln!(out, "            Reason::{code} => {code:?},").unwrap();
    }
    out.push_str("        }\n    }\n\n    /// What the code means (the documentation's words).\n    pub const fn meaning(self) -> &'static str {\n        match self {\n");
    for (code, _, meaning, _) in &rows {
        writeln!(out, "            Reason::{code} => {meaning:?},").unwrap();
    }
    out.push_str("        }\n    }\n\n    /// What to do about it (errors; empty for the others).\n    pub const fn fix(self) -> &'static str {\n        match self {\n");
    for (code, _, _, fix) in &rows {
        writeln!(out, "            Reason::{code} => {fix:?},").unwrap();
    }
    out.push_str("        }\n    }\n\n    /// Which table it is in.\n    pub const fn kind(self) -> Kind {\n        match self {\n");
    for (code, kind, ..) in &rows {
        writeln!(out, "            Reason::{code} => {kind},").unwrap();
    }
    out.push_str("        }\n    }\n}\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("reasons.rs");
    std::fs::write(dest, out).unwrap();
}
