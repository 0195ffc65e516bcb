//! `.s2iignore`: which paths of the source stay out of `upload/src`.
//!
//! s2i's rules (`pkg/ignore` in openshift/source-to-image), which we follow:
//! - one pattern a line; the line is trimmed of spaces; blank lines and lines starting with `#`
//!   are skipped; a leading `!` makes the pattern an exception that keeps what it matches;
//! - every path of the tree, relative to the source root (after `contextDir`) and spelled with
//!   `/`, is matched against every pattern with Go's `filepath.Match`, in file order; the last
//!   pattern that matches decides (so `*.md` after `!README.md` wins over it);
//! - an ignored directory goes with everything under it, whatever later exceptions say about its
//!   contents (s2i removes it as a whole);
//! - `filepath.Match` is not recursive: `*` and `?` never cross `/`, `**` is just two stars,
//!   `[...]`/`[^...]` are classes, `\` escapes, and a pattern matches the whole path (`*.pyc`
//!   matches `a.pyc`, not `dir/a.pyc`; `*/a.pyc` matches one level down).
//!
//! Deliberate difference: s2i skips a malformed pattern (for example an unclosed `[`) silently;
//! we refuse it with the file and line, as we do for `.s2i/environment`.
//!
//! `globset` is not used: its syntax differs from `filepath.Match` (`**` recursion, `{a,b}`
//! alternates, `[!...]`), so the patterns are translated to anchored `regex`es instead.

use regex::Regex;

/// A pattern `filepath.Match` would refuse, or an unreadable ignore file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgnoreError {
    /// A malformed pattern.
    #[error("{file}:{line}: invalid pattern {pattern:?}: {reason}")]
    InvalidPattern {
        file: String,
        line: usize,
        pattern: String,
        reason: &'static str,
    },
}

#[derive(Debug, Clone)]
struct Rule {
    regex: Regex,
    keep: bool,
}

/// The parsed patterns of an ignore file.
#[derive(Debug, Clone, Default)]
pub struct IgnoreRules {
    rules: Vec<Rule>,
}

impl IgnoreRules {
    /// Parses `.s2iignore` content. `file` only names the file in errors.
    pub fn parse(file: &str, content: &str) -> Result<Self, IgnoreError> {
        let mut rules = Vec::new();
        for (index, raw) in content.lines().enumerate() {
            // Go's `strings.Trim(line, " ")`: spaces only, not tabs.
            let spec = raw.trim_matches(' ');
            if spec.is_empty() || spec.starts_with('#') {
                continue;
            }
            let (pattern, keep) = match spec.strip_prefix('!') {
                Some(rest) => (rest, true),
                None => (spec, false),
            };
            let regex = glob_to_regex(pattern)
                .and_then(|re| Regex::new(&re).map_err(|_| "pattern too complex"))
                .map_err(|reason| IgnoreError::InvalidPattern {
                    file: file.to_string(),
                    line: index + 1,
                    pattern: spec.to_string(),
                    reason,
                })?;
            rules.push(Rule { regex, keep });
        }
        Ok(Self { rules })
    }

    /// Whether no pattern was given.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether `relative` (a path under the source root, `/`-separated, no leading `/`) is
    /// ignored by itself. Callers skip the whole subtree of an ignored directory.
    pub fn is_ignored(&self, relative: &str) -> bool {
        let mut ignored = false;
        for rule in &self.rules {
            if rule.regex.is_match(relative) {
                ignored = !rule.keep;
            }
        }
        ignored
    }
}

/// Translates a Go `filepath.Match` pattern (Unix flavour) into an anchored regex, refusing
/// what Go would answer with `ErrBadPattern`.
pub fn glob_to_regex(pattern: &str) -> Result<String, &'static str> {
    let mut re = String::from("^");
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '\\' => match chars.next() {
                Some(escaped) => push_literal(&mut re, escaped),
                None => return Err("trailing backslash"),
            },
            '[' => {
                let negated = chars.next_if_eq(&'^').is_some();
                let mut ranges = Vec::new();
                loop {
                    if !ranges.is_empty() && chars.next_if_eq(&']').is_some() {
                        break;
                    }
                    let lo = class_char(&mut chars)?;
                    let hi = if chars.next_if_eq(&'-').is_some() {
                        class_char(&mut chars)?
                    } else {
                        lo
                    };
                    ranges.push((lo, hi));
                }
                // Go compares `lo <= r && r <= hi`: an inverted range matches nothing.
                let valid: Vec<_> = ranges.into_iter().filter(|(lo, hi)| lo <= hi).collect();
                match (valid.is_empty(), negated) {
                    (true, false) => re.push_str("(?:$.)"),
                    (true, true) => re.push_str("(?s:.)"),
                    (false, _) => {
                        re.push('[');
                        if negated {
                            re.push('^');
                        }
                        for (lo, hi) in valid {
                            re.push_str(&format!("\\x{{{:X}}}-\\x{{{:X}}}", lo as u32, hi as u32));
                        }
                        re.push(']');
                    }
                }
            }
            other => push_literal(&mut re, other),
        }
    }
    re.push('$');
    Ok(re)
}

/// One character of a class, as Go's `getEsc` reads it.
fn class_char(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<char, &'static str> {
    let c = match chars.next() {
        None => return Err("unterminated character class"),
        Some('-') | Some(']') => return Err("'-' or ']' where a class character is expected"),
        Some('\\') => chars.next().ok_or("unterminated character class")?,
        Some(c) => c,
    };
    if chars.peek().is_none() {
        return Err("unterminated character class");
    }
    Ok(c)
}

fn push_literal(re: &mut String, c: char) {
    let mut buf = [0; 4];
    re.push_str(&regex::escape(c.encode_utf8(&mut buf)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(content: &str) -> IgnoreRules {
        IgnoreRules::parse(".s2iignore", content).unwrap()
    }

    // The cases of s2i's own pkg/ignore tests.
    #[test]
    fn s2i_single_and_wildcard() {
        let r = rules("foo.bar\n");
        assert!(r.is_ignored("foo.bar"));
        assert!(!r.is_ignored("bar.foo"));
        let r = rules("foo.*\n");
        assert!(r.is_ignored("foo.a") && r.is_ignored("foo.b"));
    }

    #[test]
    fn s2i_exclusion_and_override_order() {
        let r = rules("foo.*\n!foo.a");
        assert!(r.is_ignored("foo.b"));
        assert!(!r.is_ignored("foo.a"));
        let r = rules("LICENCSE.*\n!LICENCSE.md\n*.md");
        assert!(r.is_ignored("LICENCSE.foo") && r.is_ignored("LICENCSE.md"));
        assert!(!r.is_ignored("foo.bar"));
        let r = rules("*.bar\n!foo.*");
        assert!(r.is_ignored("boo.bar") && r.is_ignored("bar.bar"));
        assert!(!r.is_ignored("foo.bar"));
        // An exception before the pattern it would except is hopeless.
        let r = rules("!LICENSE.md\nLICENSE.*");
        assert!(r.is_ignored("LICENSE.md"));
    }

    #[test]
    fn s2i_patterns_are_not_recursive() {
        let r = rules("*/foo.a\n");
        assert!(r.is_ignored("asdf/foo.a"));
        assert!(!r.is_ignored("foo.a"));
        assert!(!r.is_ignored("a/b/foo.a"));
        let r = rules("*.pyc");
        assert!(r.is_ignored("x.pyc"));
        assert!(!r.is_ignored("dir/x.pyc"));
        // `**` is two stars: one segment.
        let r = rules("**/x");
        assert!(r.is_ignored("a/x"));
        assert!(!r.is_ignored("a/b/x"));
    }

    #[test]
    fn comments_blanks_and_spaces() {
        let r = rules("  # comment\n\n   \n  build  \r\n\tnode_modules\n");
        assert!(r.is_ignored("build"));
        // Only spaces are trimmed, as in s2i: a tab stays part of the pattern.
        assert!(!r.is_ignored("node_modules"));
        assert!(r.is_ignored("\tnode_modules"));
        assert!(rules("# only\n\n").is_empty());
    }

    #[test]
    fn go_match_syntax() {
        let r = rules("[a-c].txt\n[^x]y\n\\*star\nq?\n.env\na{b,c}");
        assert!(r.is_ignored("b.txt") && !r.is_ignored("d.txt"));
        assert!(r.is_ignored("zy") && !r.is_ignored("xy"));
        assert!(r.is_ignored("*star") && !r.is_ignored("astar"));
        assert!(r.is_ignored("q1") && !r.is_ignored("q/"));
        // `*` matches dot files, and `.` is literal.
        assert!(r.is_ignored(".env") && !r.is_ignored("xenv"));
        assert!(rules("*").is_ignored(".git"));
        // Braces are literal in filepath.Match.
        assert!(r.is_ignored("a{b,c}") && !r.is_ignored("ab"));
        // Regex metacharacters are literal.
        let r = rules("a+b(c)|d^$");
        assert!(r.is_ignored("a+b(c)|d^$") && !r.is_ignored("aab(c)|d^$"));
    }

    #[test]
    fn whole_path_must_match() {
        let r = rules("src");
        assert!(r.is_ignored("src"));
        assert!(!r.is_ignored("src/main.py") && !r.is_ignored("mysrc"));
        // Like s2i, paths are not cleaned: these never match anything.
        let r = rules("./src\n/src\nsrc/");
        assert!(!r.is_ignored("src"));
    }

    #[test]
    fn malformed_patterns_name_file_and_line() {
        for pattern in ["[abc", "a\\", "[]a]", "[-a]", "[a-]", "[^"] {
            let err = IgnoreRules::parse(".s2iignore", &format!("ok\n{pattern}\n")).unwrap_err();
            let IgnoreError::InvalidPattern { file, line, .. } = &err;
            assert_eq!((file.as_str(), *line), (".s2iignore", 2), "{pattern:?}");
            assert!(err.to_string().starts_with(".s2iignore:2: invalid pattern"));
        }
    }

    #[test]
    fn inverted_ranges_match_nothing() {
        let r = rules("[z-a]x");
        assert!(!r.is_ignored("mx") && !r.is_ignored("ax"));
        let r = rules("[^z-a]x");
        assert!(r.is_ignored("mx"));
    }
}
