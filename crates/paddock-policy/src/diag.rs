//! Policy diagnostics: what is wrong, where (file:line:column, with the
//! line itself and a caret under the culprit), and what to write instead.

use std::fmt;
use std::ops::Range;

/// One policy problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyError {
    /// Stable reason code (docs/reason-codes.md).
    pub code: &'static str,
    /// The file (or `command line`, `built-in`).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// The text of that line, for display.
    pub snippet: Option<String>,
    /// Length of the culprit on that line (for the caret).
    pub len: usize,
    /// What is wrong.
    pub message: String,
    /// What to write instead.
    pub help: String,
}

impl PolicyError {
    /// An error at `span` of `text`.
    pub fn at(
        code: &'static str,
        source: &str,
        text: &str,
        span: Option<Range<usize>>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> Self {
        let (line, column, snippet, len) = match span {
            Some(s) if s.start <= text.len() => {
                let before = &text[..s.start];
                let line = before.matches('\n').count() + 1;
                let line_start = before.rfind('\n').map_or(0, |i| i + 1);
                let col = before[line_start..].chars().count() + 1;
                let line_text = text[line_start..].lines().next().unwrap_or("").to_string();
                let end = s.end.min(line_start + line_text.len()).max(s.start);
                let len = text[s.start..end].chars().count().max(1);
                (Some(line), Some(col), Some(line_text), len)
            }
            _ => (None, None, None, 1),
        };
        PolicyError {
            code,
            file: source.to_string(),
            line,
            column,
            snippet,
            len,
            message: message.into(),
            help: help.into(),
        }
    }

    /// An error with no position.
    pub fn plain(
        code: &'static str,
        source: &str,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> Self {
        PolicyError::at(code, source, "", None, message, help)
    }

    /// `file:line:column` (or just the file).
    pub fn location(&self) -> String {
        match (self.line, self.column) {
            (Some(l), Some(c)) => format!("{}:{l}:{c}", self.file),
            _ => self.file.clone(),
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error[{}]: {}", self.code, self.message)?;
        write!(f, "  --> {}", self.location())?;
        if let (Some(line), Some(col), Some(snip)) = (self.line, self.column, &self.snippet) {
            let w = line.to_string().len();
            write!(f, "\n{:w$} |", "")?;
            write!(f, "\n{line} | {snip}")?;
            write!(
                f,
                "\n{:w$} | {}{}",
                "",
                " ".repeat(col.saturating_sub(1)),
                "^".repeat(self.len)
            )?;
        }
        if !self.help.is_empty() {
            write!(f, "\n  = help: {}", self.help)?;
        }
        Ok(())
    }
}

/// Several problems, shown one after the other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyErrors {}

impl From<PolicyError> for PolicyErrors {
    fn from(e: PolicyError) -> Self {
        PolicyErrors(vec![e])
    }
}
