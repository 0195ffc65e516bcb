//! Untrusted text from the build Pod (termination messages, Kaniko's log) made fit for status:
//! bounded, on character boundaries, without escape sequences.

/// At most this many lines of log go into a failure's log snippet.
pub const LOG_SNIPPET_MAX_LINES: usize = 20;
/// At most this many bytes of log go into a failure's log snippet.
pub const LOG_SNIPPET_MAX_BYTES: usize = 2048;

/// The last lines of `log`, at most [`LOG_SNIPPET_MAX_LINES`] lines and
/// [`LOG_SNIPPET_MAX_BYTES`] bytes; `None` when there is nothing to show.
pub(super) fn log_snippet(log: &str) -> Option<String> {
    let trimmed = log.trim_end();
    let lines: Vec<&str> = trimmed.lines().collect();
    let start = lines.len().saturating_sub(LOG_SNIPPET_MAX_LINES);
    let tail = lines[start..].join("\n");
    let bounded = bounded_tail(&tail, LOG_SNIPPET_MAX_BYTES);
    // Prefer starting at a line boundary when the byte bound cut a line in half.
    let bounded = if bounded.len() < tail.len() {
        bounded.split_once('\n').map_or(bounded, |(_, rest)| rest)
    } else {
        bounded
    };
    let bounded = bounded.trim_start_matches('\n');
    (!bounded.trim().is_empty()).then(|| bounded.to_string())
}

/// The last `max` bytes of `s`, on a character boundary.
pub(super) fn bounded_tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// The first `max` bytes of `s`, on a character boundary.
pub(super) fn bounded_head(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Removes ANSI escape sequences (Kaniko's default `color` log format forces colours) and
/// other control characters except newline and tab, so status text stays readable and inert.
pub(super) fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                // CSI: ESC [ parameters... final byte in @..~
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}
