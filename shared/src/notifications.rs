//! In-app notifications to a tenant's members, written as values and composed into the
//! transaction of the change they report (a limit warning with its marker, a cancellation by
//! dunning with the subscription's end), so a notification is never lost nor sent for a
//! change that did not happen.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::store::{AttrValue, Condition, Item, TenantStore, WriteOp};
use crate::time;

/// The writes of one notification: its record (listed newest first under `N#<at>#<id>`) and
/// its id index (for marking it read). Returns the new id beside them; an object `data` gets
/// it as `notification_id` too.
pub fn ops(
    t: &TenantStore,
    kind: &str,
    message: &str,
    data: &Value,
    now: DateTime<Utc>,
) -> (String, [WriteOp; 2]) {
    let id = crate::ids::new_id("ntf");
    let at = time::fmt(now);
    let sk = format!("N#{at}#{id}");
    let mut data = data.clone();
    if let Some(object) = data.as_object_mut() {
        object.insert("notification_id".into(), Value::from(id.as_str()));
    }
    let index = WriteOp::Put {
        item: Item::new(t.key("NOTIFICATIONS", format!("ID#{id}"))).with("sk", sk.as_str()),
        condition: Some(Condition::ItemNotExists),
    };
    let record = WriteOp::Put {
        item: Item::new(t.key("NOTIFICATIONS", sk))
            .with("notification_id", id.as_str())
            .with("kind", kind)
            .with("message", message)
            .with(
                "data",
                AttrValue::from_json(&data).unwrap_or(AttrValue::Null),
            )
            .with("read", false)
            .with("created_at", at.as_str()),
        condition: Some(Condition::ItemNotExists),
    };
    (id, [index, record])
}
