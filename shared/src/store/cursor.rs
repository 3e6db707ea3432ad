//! Opaque query cursors: the position of the last item of a page.
//!
//! A cursor names the partition it belongs to and is refused for any other query, so a client
//! cannot use one to step into another partition (another tenant's, above all).

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::error::StoreError;
use super::expr::Index;
use super::item::Item;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub pk: String,
    pub sk: String,
    /// GSI1 keys, for GSI1 queries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi1: Option<(String, String)>,
}

impl Position {
    pub fn of(item: &Item, index: Index) -> Self {
        Self {
            pk: item.key.pk.clone(),
            sk: item.key.sk.clone(),
            gsi1: match index {
                Index::Table => None,
                Index::Gsi1 => item.gsi1().map(|(p, s)| (p.to_owned(), s.to_owned())),
            },
        }
    }

    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).expect("a position always serializes");
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    /// Decodes a cursor and checks it belongs to a query of `index` on partition `pk`.
    pub fn decode(cursor: &str, index: Index, pk: &str) -> Result<Self, StoreError> {
        let invalid = || StoreError::InvalidCursor;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(cursor)
            .map_err(|_| invalid())?;
        let position: Position = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        let partition = match (index, &position.gsi1) {
            (Index::Table, None) => &position.pk,
            (Index::Gsi1, Some((gpk, _))) => gpk,
            _ => return Err(invalid()),
        };
        if partition != pk {
            return Err(invalid());
        }
        Ok(position)
    }
}
