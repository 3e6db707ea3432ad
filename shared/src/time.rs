//! Times on the wire and in keys: RFC 3339 UTC with milliseconds and `Z`, fixed width, so byte
//! order is time order in sort keys.

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};

/// `2026-02-03T04:05:06.007Z`. Written digit by digit: chrono's formatter goes through
/// `fmt::Arguments`, and usage keys and answers format a time or two per event.
pub fn fmt(t: DateTime<Utc>) -> String {
    let mut out = String::with_capacity(24);
    push(&mut out, t);
    out
}

/// Appends `fmt(t)` to `out`.
pub fn push(out: &mut String, t: DateTime<Utc>) {
    let nanos = t.nanosecond();
    // Four-digit years and no leap second: the fixed-width form; anything else, chrono's.
    if !(0..=9999).contains(&t.year()) || nanos >= 1_000_000_000 {
        out.push_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true));
        return;
    }
    let digits = |out: &mut String, value: u32, width: u32| {
        for place in (0..width).rev() {
            out.push(char::from(b'0' + (value / 10u32.pow(place) % 10) as u8));
        }
    };
    digits(out, t.year() as u32, 4);
    out.push('-');
    digits(out, t.month(), 2);
    out.push('-');
    digits(out, t.day(), 2);
    out.push('T');
    digits(out, t.hour(), 2);
    out.push(':');
    digits(out, t.minute(), 2);
    out.push(':');
    digits(out, t.second(), 2);
    out.push('.');
    digits(out, nanos / 1_000_000, 3);
    out.push('Z');
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
    fn written_as_chrono_writes_it() {
        use chrono::TimeZone;
        let mut t = Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap();
        let end = Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap();
        // Steps of prime length, so every field takes many values.
        let step = chrono::Duration::milliseconds(86_399_993 * 7 + 1_009);
        while t < end {
            assert_eq!(fmt(t), t.to_rfc3339_opts(SecondsFormat::Millis, true));
            t += step;
        }
        let leap = parse("2016-12-31T23:59:60.250Z").unwrap();
        assert_eq!(fmt(leap), leap.to_rfc3339_opts(SecondsFormat::Millis, true));
        let far = Utc.with_ymd_and_hms(12345, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(fmt(far), far.to_rfc3339_opts(SecondsFormat::Millis, true));
    }

    #[test]
    fn fixed_width_utc_round_trips() {
        let t = parse("2026-02-03T04:05:06.007+02:00").unwrap();
        assert_eq!(fmt(t), "2026-02-03T02:05:06.007Z");
        assert_eq!(parse(&fmt(t)), Some(t));
    }
}
