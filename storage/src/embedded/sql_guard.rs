//! The gate in front of analytics: exactly one read-only statement.
//!
//! It has to be decided before DuckDB sees the text: `Connection::prepare` runs every
//! statement but the last of a multi-statement string. So a small lexer finds the words
//! outside string literals, quoted identifiers and comments, and the statement separators.
//! This is not the only guard: the statement runs in a transaction that is always rolled
//! back, external access is off, and the configuration is locked.

use crate::error::{Result, StorageError};

/// Statements that only read.
const READ_ONLY_STARTS: &[&str] = &[
    "SELECT",
    "WITH",
    "FROM",
    "VALUES",
    "TABLE",
    "SUMMARIZE",
    "DESCRIBE",
    "DESC",
    "SHOW",
    "EXPLAIN",
    "PIVOT",
    "UNPIVOT",
    "PIVOT_WIDER",
    "PIVOT_LONGER",
];

/// Words that only appear in statements that write or reach outside (a `WITH` can lead
/// into an `INSERT`); refused anywhere outside quotes.
const WRITING_WORDS: &[&str] = &[
    "INSERT",
    "UPDATE",
    "DELETE",
    "MERGE",
    "CREATE",
    "DROP",
    "ALTER",
    "TRUNCATE",
    "COPY",
    "ATTACH",
    "DETACH",
    "INSTALL",
    "LOAD",
    "PRAGMA",
    "CALL",
    "CHECKPOINT",
    "VACUUM",
    "EXPORT",
    "IMPORT",
    "COMMIT",
    "ROLLBACK",
];

const HINT: &str = "analytics runs exactly one read-only statement (SELECT, WITH, FROM, \
    VALUES, TABLE, SUMMARIZE, DESCRIBE, SHOW, EXPLAIN, PIVOT, UNPIVOT)";

/// A lexical unit that matters here.
#[derive(Debug, PartialEq)]
enum Token {
    /// An unquoted word, upper-cased.
    Word(String),
    /// `;`
    Separator,
}

/// Refuses anything but one read-only statement, saying why.
pub(super) fn check_read_only(sql: &str) -> Result<()> {
    // Whether `E'...'` takes backslash escapes decides where such a string ends; the text
    // must pass read both ways, so a disagreement with DuckDB's lexer cannot hide a `;`.
    check_tokens(&tokens(sql, true)?)?;
    check_tokens(&tokens(sql, false)?)
}

fn check_tokens(tokens: &[Token]) -> Result<()> {
    let mut statements = tokens
        .split(|t| *t == Token::Separator)
        .filter(|s| !s.is_empty());
    let Some(statement) = statements.next() else {
        return Err(StorageError::Invalid(format!("{HINT}; the query is empty")));
    };
    if statements.next().is_some() {
        return Err(StorageError::Invalid(format!(
            "{HINT}; the query holds more than one statement"
        )));
    }
    let words: Vec<&str> = statement
        .iter()
        .filter_map(|t| match t {
            Token::Word(w) => Some(w.as_str()),
            Token::Separator => None,
        })
        .collect();
    // EXPLAIN [ANALYZE] runs the statement it explains, so that one must be read-only too.
    let mut first = words.first().copied().unwrap_or_default();
    if first == "EXPLAIN" {
        let rest = &words[1..];
        first = match rest.first() {
            Some(&("ANALYZE" | "ANALYSE")) => rest.get(1).copied().unwrap_or_default(),
            Some(w) => w,
            None => "",
        };
    }
    if !READ_ONLY_STARTS.contains(&first) || first == "EXPLAIN" {
        return Err(StorageError::Invalid(format!(
            "{HINT}; this one starts with {first:?}"
        )));
    }
    if let Some(word) = words.iter().find(|w| WRITING_WORDS.contains(w)) {
        return Err(StorageError::Invalid(format!(
            "{HINT}; {word} is not allowed (quote it as \"{}\" if it is a name)",
            word.to_ascii_lowercase()
        )));
    }
    Ok(())
}

fn tokens(sql: &str, escape_strings: bool) -> Result<Vec<Token>> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let unterminated =
        |what: &str| StorageError::Invalid(format!("the query has an unterminated {what}"));
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            ';' => {
                out.push(Token::Separator);
                i += 1;
            }
            '-' if next == Some('-') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if next == Some('*') => {
                // Block comments nest, as in PostgreSQL and DuckDB.
                let mut depth = 0;
                loop {
                    match (chars.get(i), chars.get(i + 1)) {
                        (Some('/'), Some('*')) => {
                            depth += 1;
                            i += 2;
                        }
                        (Some('*'), Some('/')) => {
                            depth -= 1;
                            i += 2;
                            if depth == 0 {
                                break;
                            }
                        }
                        (Some(_), _) => i += 1,
                        (None, _) => return Err(unterminated("comment")),
                    }
                }
            }
            '\'' => {
                i = skip_quoted(&chars, i, '\'', false).ok_or_else(|| unterminated("string"))?;
            }
            '"' => {
                i = skip_quoted(&chars, i, '"', false)
                    .ok_or_else(|| unterminated("quoted name"))?;
            }
            '$' if next.is_some_and(|n| n == '$' || n.is_alphabetic() || n == '_') => {
                i = skip_dollar_quoted(&chars, i).ok_or_else(|| unterminated("$$ string"))?;
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect::<String>().to_uppercase();
                // E'...' strings take backslash escapes.
                if escape_strings && word == "E" && chars.get(i) == Some(&'\'') {
                    i = skip_quoted(&chars, i, '\'', true).ok_or_else(|| unterminated("string"))?;
                } else {
                    out.push(Token::Word(word));
                }
            }
            _ => i += 1,
        }
    }
    Ok(out)
}

/// The index after a quoted run starting at `start` (doubled quotes stay inside).
fn skip_quoted(chars: &[char], start: usize, quote: char, backslash: bool) -> Option<usize> {
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => return None,
            Some('\\') if backslash => i += 2,
            Some(&c) if c == quote => {
                if chars.get(i + 1) == Some(&quote) {
                    i += 2;
                } else {
                    return Some(i + 1);
                }
            }
            Some(_) => i += 1,
        }
    }
}

/// The index after a `$tag$ ... $tag$` string starting at `start`. `None` when it does not
/// close; a `$` that does not open a tag (a `$name` parameter) is stepped over.
fn skip_dollar_quoted(chars: &[char], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
        i += 1;
    }
    if chars.get(i) != Some(&'$') {
        return Some(i); // `$name`: a named parameter, not a string
    }
    let tag = &chars[start..=i];
    let mut j = i + 1;
    while j + tag.len() <= chars.len() {
        if chars[j..j + tag.len()] == *tag {
            return Some(j + tag.len());
        }
        j += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_read_only_statement_passes() {
        for sql in [
            "SELECT 1",
            "  select 1; ",
            "SELECT 1; -- trailing comment",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "FROM events LIMIT 3",
            "(SELECT 1) UNION ALL (SELECT 2)",
            "SELECT 'a;b', \"we;ird\" FROM t /* ; */",
            "SELECT $$ ; DROP $$",
            "SELECT E'it''s fine'",
            "DESCRIBE events",
            "SUMMARIZE score_points",
            "EXPLAIN SELECT 1",
            "EXPLAIN ANALYZE SELECT 1",
            "SHOW TABLES",
            "SELECT created_at, updated_at FROM profiles",
        ] {
            check_read_only(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for sql in [
            "",
            " -- only a comment",
            "SELECT 1; SELECT 2",
            "SELECT 1; DROP TABLE x",
            "INSERT INTO t VALUES (1)",
            "WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x",
            "EXPLAIN ANALYZE DELETE FROM t",
            "SET memory_limit = '10GB'",
            "ATTACH 'x.db'",
            "COPY t TO 'x.csv'",
            "CALL pragma_version()",
            "SELECT 'unterminated",
            "SELECT 1 /* unterminated",
            "SELECT E'\\'; DROP TABLE x; --'",
        ] {
            let err = check_read_only(sql).expect_err(sql);
            assert!(matches!(err, StorageError::Invalid(_)), "{sql}: {err}");
        }
    }
}
