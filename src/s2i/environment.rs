//! The `.s2i/environment` file: one `NAME=VALUE` a line, applied before `spec.env`.

use super::is_valid_env_name;

/// A line of an environment file that is not `NAME=VALUE`. s2i drops such lines silently; we
/// refuse them so a typo does not turn into a variable that is quietly missing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvironmentError {
    /// The line has no `=`.
    #[error("{file}:{line}: expected NAME=VALUE, found no '='")]
    MissingEquals { file: String, line: usize },
    /// Nothing before the `=`.
    #[error("{file}:{line}: the variable name before '=' is empty")]
    EmptyName { file: String, line: usize },
    /// The name is not a shell variable name.
    #[error("{file}:{line}: invalid variable name {name:?}: must match [A-Za-z_][A-Za-z0-9_]*")]
    InvalidName {
        file: String,
        line: usize,
        name: String,
    },
    /// The value holds a carriage return (a lone CR, as in a file with old Mac line endings,
    /// since CRLF is already taken as a line end) or a NUL, which no Dockerfile word can carry.
    #[error(
        "{file}:{line}: the value of {name} contains a {what}, which cannot be written into a Dockerfile"
    )]
    UnsafeValue {
        file: String,
        line: usize,
        name: String,
        what: &'static str,
    },
}

/// Parses an s2i environment file. `file` only names the file in errors.
///
/// Pairs come back in file order, duplicates included: the Dockerfile generator applies
/// "later wins" across this file and `spec.env` in one place.
pub fn parse_environment(
    file: &str,
    content: &str,
) -> Result<Vec<(String, String)>, EnvironmentError> {
    let mut pairs = Vec::new();
    // `lines()` splits on `\n` and drops one trailing `\r`, which is the CRLF tolerance we want.
    for (index, raw) in content.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some((name, value)) = trimmed.split_once('=') else {
            return Err(EnvironmentError::MissingEquals {
                file: file.to_string(),
                line,
            });
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(EnvironmentError::EmptyName {
                file: file.to_string(),
                line,
            });
        }
        if !is_valid_env_name(name) {
            return Err(EnvironmentError::InvalidName {
                file: file.to_string(),
                line,
                name: name.to_string(),
            });
        }
        let value = value.trim();
        let unsafe_char = [('\r', "carriage return"), ('\0', "NUL character")]
            .into_iter()
            .find(|(c, _)| value.contains(*c));
        if let Some((_, what)) = unsafe_char {
            return Err(EnvironmentError::UnsafeValue {
                file: file.to_string(),
                line,
                name: name.to_string(),
                what,
            });
        }
        pairs.push((name.to_string(), value.to_string()));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_pairs_comments_blanks_and_crlf() {
        let content =
            "# comment\r\n\r\nAPP_FILE = service.py\r\n  # indented comment\nWEB=2\n\tX=a=b=c \n";
        assert_eq!(
            parse_environment(".s2i/environment", content).unwrap(),
            pairs(&[("APP_FILE", "service.py"), ("WEB", "2"), ("X", "a=b=c")])
        );
    }

    #[test]
    fn keeps_duplicates_in_order_and_empty_values() {
        assert_eq!(
            parse_environment("env", "A=1\nB=\nA=2").unwrap(),
            pairs(&[("A", "1"), ("B", ""), ("A", "2")])
        );
    }

    #[test]
    fn values_are_taken_verbatim() {
        let got = parse_environment("env", "HOME_DIR=$HOME \"q\" \\x `id`").unwrap();
        assert_eq!(got, pairs(&[("HOME_DIR", "$HOME \"q\" \\x `id`")]));
    }

    #[test]
    fn line_without_equals_names_file_and_line() {
        let err = parse_environment(".s2i/environment", "A=1\n\nJUSTANAME\n").unwrap_err();
        assert_eq!(
            err,
            EnvironmentError::MissingEquals {
                file: ".s2i/environment".into(),
                line: 3
            }
        );
        assert_eq!(
            err.to_string(),
            ".s2i/environment:3: expected NAME=VALUE, found no '='"
        );
    }

    #[test]
    fn empty_name_is_refused() {
        let err = parse_environment("env", "A=1\r\n = x\r\n").unwrap_err();
        assert_eq!(
            err,
            EnvironmentError::EmptyName {
                file: "env".into(),
                line: 2
            }
        );
    }

    #[test]
    fn hostile_names_are_refused() {
        for (content, name) in [
            ("1A=x", "1A"),
            ("A-B=x", "A-B"),
            ("$HOME=x", "$HOME"),
            ("A B=x", "A B"),
            ("A\"=x", "A\""),
            ("A\\=x", "A\\"),
        ] {
            let err = parse_environment("env", content).unwrap_err();
            assert_eq!(
                err,
                EnvironmentError::InvalidName {
                    file: "env".into(),
                    line: 1,
                    name: name.into()
                },
                "{content:?}"
            );
        }
    }

    #[test]
    fn lone_carriage_return_or_nul_in_a_value_names_file_and_line() {
        // Found by tests/hostile_input.rs: these values were accepted here and only refused
        // later by the Dockerfile generator, with the variable's name but not file and line.
        let err = parse_environment(".s2i/environment", "A=1\nB=x\rRUN evil\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            ".s2i/environment:2: the value of B contains a carriage return, which cannot be written into a Dockerfile"
        );
        let err = parse_environment("env", "A=a\0b").unwrap_err();
        assert_eq!(
            err,
            EnvironmentError::UnsafeValue {
                file: "env".into(),
                line: 1,
                name: "A".into(),
                what: "NUL character"
            }
        );
        // CRLF line ends stay fine.
        assert!(parse_environment("env", "A=1\r\nB=2\r\n").is_ok());
    }

    #[test]
    fn a_newline_cannot_smuggle_an_instruction_into_a_value() {
        // The newline ends the line; the next line must then stand on its own as NAME=VALUE.
        let err = parse_environment("env", "A=x\nRUN evil\n").unwrap_err();
        assert_eq!(
            err,
            EnvironmentError::MissingEquals {
                file: "env".into(),
                line: 2
            }
        );
    }
}
