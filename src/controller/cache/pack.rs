//! Cached objects packed: their JSON, LZ4-compressed against a dictionary.
//!
//! A kilobyte of JSON alone hardly compresses. Against the JSON of a typical object of its
//! kind (field names, usual values, the usual shape) an object's fields cost a few bytes
//! each, and only what is its own (names, digests, messages) costs its length. Unpacking is
//! microseconds; the caches unpack the objects one reconcile reads.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why an object could not be packed or unpacked (a bug: it is our own JSON).
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Lz4(#[from] lz4_flex::block::DecompressError),
}

/// `value`'s JSON, compressed against `dictionary`.
pub fn pack<T: Serialize>(value: &T, dictionary: &[u8]) -> Result<Box<[u8]>, PackError> {
    let json = serde_json::to_vec(value)?;
    Ok(lz4_flex::block::compress_prepend_size_with_dict(&json, dictionary).into_boxed_slice())
}

/// What [`pack`] packed with the same `dictionary`.
pub fn unpack<T: DeserializeOwned>(packed: &[u8], dictionary: &[u8]) -> Result<T, PackError> {
    let json = lz4_flex::block::decompress_size_prepended_with_dict(packed, dictionary)?;
    Ok(serde_json::from_slice(&json)?)
}

/// The dictionary of a kind: `typical`'s JSON.
pub fn dictionary<T: Serialize>(typical: &T) -> Vec<u8> {
    serde_json::to_vec(typical).expect("a typical object serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn packs_small_json_to_a_fraction_against_its_dictionary() {
        let typical = json!({"phase": "Succeeded", "conditions": [{"type": "Ready", "status": "True",
            "lastTransitionTime": "2026-01-01T00:00:00Z"}], "image": "registry.example.com/app:1"});
        let dictionary = dictionary(&typical);
        let mut value = typical.clone();
        value["image"] = json!("registry.example.com/other:2");
        let packed = pack(&value, &dictionary).unwrap();
        let alone = pack(&value, &[]).unwrap();
        assert!(
            packed.len() * 3 < alone.len(),
            "{} vs {}",
            packed.len(),
            alone.len()
        );
        assert_eq!(unpack::<Value>(&packed, &dictionary).unwrap(), value);
        // The dictionary is part of the format.
        assert!(unpack::<Value>(&packed, b"another dictionary").is_err());
    }
}
