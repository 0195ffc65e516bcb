//! Object uids as the caches hold them.
//!
//! The API server gives every object a UUID for uid, 36 bytes of text: as a `Box<str>`, 16
//! bytes inline and a 48-byte heap chunk. The Pod cache holds two per Pod (its own and its
//! owner's) and indexes Pods by the owner's, so as text they cost about 150 bytes a Pod, as
//! [`Uid::Uuid`] nothing on the heap. A uid that is not a UUID written the way the API server
//! writes it (lower-case, hyphenated) is kept as it came, so what is read back is always what
//! was shown.

use std::fmt;

use uuid::Uuid;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Uid {
    Uuid(Uuid),
    Text(Box<str>),
}

impl Uid {
    pub fn new(uid: &str) -> Self {
        match Uuid::try_parse(uid) {
            Ok(parsed) if Self::Uuid(parsed).is(uid) => Self::Uuid(parsed),
            _ => Self::Text(uid.into()),
        }
    }

    /// Whether this is the uid written `uid`.
    pub fn is(&self, uid: &str) -> bool {
        match self {
            Self::Uuid(u) => u.hyphenated().encode_lower(&mut Uuid::encode_buffer()) == uid,
            Self::Text(text) => &**text == uid,
        }
    }
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Uuid(u) => fmt::Display::fmt(&u.hyphenated(), f),
            Self::Text(text) => f.write_str(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_server_uids_are_held_as_uuids_and_read_back_the_same() {
        let text = "0f1e2d3c-0000-4000-8000-00000000000a";
        let uid = Uid::new(text);
        assert!(matches!(uid, Uid::Uuid(_)));
        assert_eq!(uid.to_string(), text);
        assert!(uid.is(text));
        assert!(!uid.is("0f1e2d3c-0000-4000-8000-00000000000b"));
        assert_eq!(uid, Uid::new(text));
    }

    #[test]
    fn anything_else_is_kept_as_it_came() {
        // Upper case, braces, no hyphens and URNs parse as UUIDs but are not written this way:
        // held as UUIDs they would read back otherwise.
        for text in [
            "0F1E2D3C-0000-4000-8000-00000000000A",
            "{0f1e2d3c-0000-4000-8000-00000000000a}",
            "0f1e2d3c000040008000000000000000",
            "urn:uuid:0f1e2d3c-0000-4000-8000-00000000000a",
            "uid-a",
            "",
        ] {
            let uid = Uid::new(text);
            assert_eq!(uid, Uid::Text(text.into()), "{text}");
            assert_eq!(uid.to_string(), text);
            assert!(uid.is(text));
        }
        assert!(!Uid::new("uid-a").is("uid-b"));
        // The same UUID written two ways is two uids, as the API server would compare them.
        assert_ne!(
            Uid::new("0F1E2D3C-0000-4000-8000-00000000000A"),
            Uid::new("0f1e2d3c-0000-4000-8000-00000000000a")
        );
    }

    #[test]
    fn holds_a_uuid_inline() {
        assert!(size_of::<Option<Uid>>() <= 24);
    }
}
