//! The one id scheme: `<prefix>_<uuid v7, hex>` — unique, and ordered by creation time (so ids
//! in sort keys list in the order things happened).

pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}
