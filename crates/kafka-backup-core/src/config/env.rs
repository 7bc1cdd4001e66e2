//! `${VAR}` substitution in config text (`$${` stays a literal `${`), and reading the file it is
//! applied to, naming the file when it cannot be read.

use super::{invalid, ConfigError};

/// Replaces `${NAME}` with the environment variable's value; `$${` stays a literal `${`.
pub fn substitute_env(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        if rest[..at].ends_with('$') {
            out.push_str(&rest[..at - 1]);
            out.push_str("${");
            rest = &rest[at + 2..];
            continue;
        }
        out.push_str(&rest[..at]);
        let line = text[..text.len() - rest.len() + at].matches('\n').count() + 1;
        let close = rest[at..].find('}').ok_or_else(|| invalid(".", format!("line {line}: unterminated ${{")))?;
        let name = &rest[at + 2..at + close];
        let value = lookup(name).ok_or_else(|| ConfigError::MissingVariable { name: name.to_string(), line })?;
        out.push_str(&value);
        rest = &rest[at + close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

pub(super) fn read_config(path: &std::path::Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })
}
