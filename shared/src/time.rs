//! Times on the wire and in keys: RFC 3339 UTC with milliseconds and `Z`, fixed width, so byte
//! order is time order in sort keys.

use chrono::{DateTime, SecondsFormat, Utc};

pub fn fmt(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn parse(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Serde helpers for `DateTime<Utc>` fields in API bodies.
pub mod serde_rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::fmt(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        super::parse(&text).ok_or_else(|| serde::de::Error::custom("expected an RFC 3339 time"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_utc_round_trips() {
        let t = parse("2026-02-03T04:05:06.007+02:00").unwrap();
        assert_eq!(fmt(t), "2026-02-03T02:05:06.007Z");
        assert_eq!(parse(&fmt(t)), Some(t));
    }
}
