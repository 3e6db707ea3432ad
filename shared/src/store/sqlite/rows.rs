//! Items as rows: reading, writing and deleting one, and queries (with the sort-key
//! conditions as SQL ranges).

use rusqlite::{params, Connection, OptionalExtension, ToSql};

use crate::store::{Index, Item, Key, Page, Position, Query, SortKeyCondition, StoreError};

/// Deletes items whose TTL is before `now` (the periodic purge and `purge_expired`).
pub(super) fn delete_expired_items(conn: &Connection, now: i64) -> Result<usize, StoreError> {
    conn.execute(
        "DELETE FROM items WHERE expires_at IS NOT NULL AND expires_at < ?1",
        params![now],
    )
    .map_err(sql_err)
}

pub(super) fn delete(conn: &Connection, key: &Key) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM items WHERE pk = ?1 AND sk = ?2")
        .and_then(|mut s| s.execute(params![key.pk, key.sk]))
        .map_err(sql_err)?;
    Ok(())
}

pub(super) fn store(conn: &Connection, item: &Item) -> Result<(), StoreError> {
    let attrs = serde_json::to_string(&item.attrs).map_err(|e| backend(e.to_string()))?;
    let gsi1 = item.gsi1();
    conn.prepare_cached(
        "INSERT INTO items (pk, sk, gsi1pk, gsi1sk, expires_at, attrs) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (pk, sk) DO UPDATE SET gsi1pk = excluded.gsi1pk, gsi1sk = excluded.gsi1sk,
             expires_at = excluded.expires_at, attrs = excluded.attrs",
    )
    .and_then(|mut s| {
        s.execute(params![
            item.key.pk,
            item.key.sk,
            gsi1.map(|g| g.0),
            gsi1.map(|g| g.1),
            item.ttl(),
            attrs
        ])
    })
    .map_err(sql_err)?;
    Ok(())
}

/// Rewrites a stored row's attributes (its index columns unchanged).
pub(super) fn store_attrs(conn: &Connection, item: &Item) -> Result<(), StoreError> {
    let attrs = serde_json::to_string(&item.attrs).map_err(|e| backend(e.to_string()))?;
    let updated = conn
        .prepare_cached("UPDATE items SET attrs = ?3 WHERE pk = ?1 AND sk = ?2")
        .and_then(|mut s| s.execute(params![item.key.pk, item.key.sk, attrs]))
        .map_err(sql_err)?;
    if updated == 1 {
        Ok(())
    } else {
        Err(backend(format!(
            "the writer's cache held a row that is not stored: {:?}",
            item.key
        )))
    }
}

pub(super) fn load(conn: &Connection, key: &Key) -> Result<Option<Item>, StoreError> {
    let attrs: Option<String> = conn
        .prepare_cached("SELECT attrs FROM items WHERE pk = ?1 AND sk = ?2")
        .and_then(|mut s| {
            s.query_row(params![key.pk, key.sk], |row| row.get(0))
                .optional()
        })
        .map_err(sql_err)?;
    attrs.map(|a| decode(key.clone(), &a)).transpose()
}

pub(super) fn decode(key: Key, attrs: &str) -> Result<Item, StoreError> {
    let attrs = serde_json::from_str(attrs).map_err(|e| backend(format!("corrupt item: {e}")))?;
    Ok(Item { key, attrs })
}

pub(super) fn run_query(conn: &Connection, query: &Query) -> Result<Page, StoreError> {
    let (pcol, scol) = match query.index {
        Index::Table => ("pk", "sk"),
        Index::Gsi1 => ("gsi1pk", "gsi1sk"),
    };
    let mut sql = format!("SELECT pk, sk, attrs FROM items WHERE {pcol} = ?");
    let mut args: Vec<Box<dyn ToSql>> = vec![Box::new(query.pk.clone())];
    if query.index == Index::Gsi1 {
        sql.push_str(" AND gsi1sk IS NOT NULL");
    }
    if let Some(condition) = &query.sk {
        push_sort_condition(&mut sql, &mut args, scol, condition);
    }
    let (op, dir) = if query.descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    if let Some(cursor) = &query.cursor {
        let position = Position::decode(cursor, query.index, &query.pk)?;
        match (query.index, position.gsi1) {
            (Index::Table, _) => {
                sql.push_str(&format!(" AND sk {op} ?"));
                args.push(Box::new(position.sk));
            }
            (Index::Gsi1, Some((_, gsk))) => {
                sql.push_str(&format!(" AND (gsi1sk, pk, sk) {op} (?, ?, ?)"));
                args.push(Box::new(gsk));
                args.push(Box::new(position.pk));
                args.push(Box::new(position.sk));
            }
            (Index::Gsi1, None) => return Err(StoreError::InvalidCursor),
        }
    }
    match query.index {
        Index::Table => sql.push_str(&format!(" ORDER BY sk {dir}")),
        Index::Gsi1 => sql.push_str(&format!(" ORDER BY gsi1sk {dir}, pk {dir}, sk {dir}")),
    }
    sql.push_str(" LIMIT ?");
    args.push(Box::new(i64::from(query.limit) + 1));

    let mut statement = conn.prepare_cached(&sql).map_err(sql_err)?;
    let params: Vec<&dyn ToSql> = args.iter().map(|a| a.as_ref()).collect();
    let rows = statement
        .query_map(params.as_slice(), |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
            ))
        })
        .map_err(sql_err)?;
    let mut items = Vec::new();
    for row in rows {
        let (pk, sk, attrs) = row.map_err(sql_err)?;
        items.push(decode(Key { pk, sk }, &attrs)?);
    }
    let limit = query.limit as usize;
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|i| Position::of(i, query.index).encode())
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

pub(super) fn push_sort_condition(
    sql: &mut String,
    args: &mut Vec<Box<dyn ToSql>>,
    col: &str,
    condition: &SortKeyCondition,
) {
    let mut bind = |sql: &mut String, clause: &str, value: &str| {
        sql.push_str(&format!(" AND {col} {clause} ?"));
        args.push(Box::new(value.to_owned()));
    };
    match condition {
        SortKeyCondition::Eq(v) => bind(sql, "=", v),
        SortKeyCondition::Lt(v) => bind(sql, "<", v),
        SortKeyCondition::Le(v) => bind(sql, "<=", v),
        SortKeyCondition::Gt(v) => bind(sql, ">", v),
        SortKeyCondition::Ge(v) => bind(sql, ">=", v),
        SortKeyCondition::Between(a, b) => {
            bind(sql, ">=", a);
            bind(sql, "<=", b);
        }
        SortKeyCondition::BeginsWith(prefix) => {
            // A range, so the index is used: [prefix, successor(prefix)).
            bind(sql, ">=", prefix);
            if let Some(upper) = prefix_successor(prefix) {
                bind(sql, "<", &upper);
            }
        }
    }
}

/// The smallest string greater than every string that starts with `prefix` (in code point
/// order, which is UTF-8 byte order); `None` when there is none.
pub(super) fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (last as u32 + 1..=char::MAX as u32).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

pub(super) fn sql_err(e: rusqlite::Error) -> StoreError {
    backend(e.to_string())
}

pub(super) fn backend(message: impl Into<String>) -> StoreError {
    StoreError::Backend(message.into())
}

#[cfg(test)]
mod tests {
    use super::prefix_successor;

    #[test]
    fn prefix_successor_bounds_the_prefix_range() {
        assert_eq!(prefix_successor("ab").as_deref(), Some("ac"));
        assert_eq!(prefix_successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_successor("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(prefix_successor(""), None);
        assert_eq!(prefix_successor("\u{10FFFF}"), None);
    }
}
