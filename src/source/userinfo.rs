//! The userinfo (`user:password@`) of a URL that may not parse, kept out of labels and messages.

/// `raw` without its userinfo, for the image's source-location label.
pub fn strip_userinfo(raw: &str) -> String {
    replace_userinfo(raw, "")
}

/// `raw` with its userinfo replaced by `***`, for error messages.
pub fn mask_userinfo(raw: &str) -> String {
    replace_userinfo(raw, "***@")
}

/// `raw` with the userinfo of its authority (between `://` and the first `/`, `?` or `#`, up to
/// the last `@`) and that `@` replaced by `replacement`; unchanged when it has none.
fn replace_userinfo(raw: &str, replacement: &str) -> String {
    let Some(scheme_end) = raw.find("://") else {
        return raw.to_string();
    };
    let authority_start = scheme_end + 3;
    let authority_end = raw[authority_start..]
        .find(['/', '?', '#'])
        .map_or(raw.len(), |i| authority_start + i);
    match raw[authority_start..authority_end].rfind('@') {
        Some(at) => format!(
            "{}{replacement}{}",
            &raw[..authority_start],
            &raw[authority_start + at + 1..]
        ),
        None => raw.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_masked_in_unparsed_urls() {
        assert_eq!(
            mask_userinfo("https://user:secret@example.com/a.git"),
            "https://***@example.com/a.git"
        );
        assert_eq!(
            mask_userinfo("https://example.com/a@b.git"),
            "https://example.com/a@b.git"
        );
        assert_eq!(mask_userinfo("not a url"), "not a url");
    }

    #[test]
    fn userinfo_is_stripped_up_to_the_last_at_of_the_authority() {
        assert_eq!(
            strip_userinfo("https://user:s3cret@example.com/a/b.git?x=@"),
            "https://example.com/a/b.git?x=@"
        );
        assert_eq!(
            strip_userinfo("https://u@x:p@example.com#a@b"),
            "https://example.com#a@b"
        );
        assert_eq!(
            strip_userinfo("https://example.com/a@b.git"),
            "https://example.com/a@b.git"
        );
        assert_eq!(strip_userinfo("not a url"), "not a url");
    }
}
