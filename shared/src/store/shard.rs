//! The one tenant → shard hash of the sharded platform indexes (renewals due, usage by
//! metric): stable across processes and releases, since stored index keys carry its result.

use super::TenantId;

/// The shard of `tenant` among `shards` (a Java-style string hash: cheap and stable).
pub fn of(tenant: &TenantId, shards: u32) -> u32 {
    let hash = tenant
        .as_str()
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    hash % shards
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_the_stored_one() {
        // Stored index keys depend on these values: changing the hash would strand them.
        let tenant = TenantId::parse("ten_0190aa").unwrap();
        let expected = "ten_0190aa"
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
        assert_eq!(of(&tenant, 16), expected % 16);
        assert!(of(&tenant, 16) < 16);
    }
}
