//! The one id scheme: `<prefix>_<uuid v7, hex>` — unique, and ordered by creation time (so ids
//! in sort keys list in the order things happened); and the one check of an id a client sends
//! before it becomes part of a key.

pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// Whether a resource id a client sent can name a stored item: 1 to 64 characters, without
/// the key delimiter `#` (an id with one could reach into another item's sort key). An id
/// that fails this names nothing: callers answer as for a missing resource.
pub fn is_key_safe(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && !id.contains('#')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefixed_ordered_and_key_safe() {
        let (a, b) = (new_id("sub"), new_id("sub"));
        assert!(a.starts_with("sub_") && a < b, "{a} {b}");
        assert!(is_key_safe(&a));
    }

    #[test]
    fn ids_that_could_reach_into_other_keys_are_refused() {
        assert!(!is_key_safe(""));
        assert!(!is_key_safe("sub_1#P#x"));
        assert!(!is_key_safe(&"a".repeat(65)));
        assert!(is_key_safe(&"a".repeat(64)));
    }
}
