//! Event time and durations in whole nanoseconds, so decay, cooldowns and caps are exact.
//!
//! In files both read and write as text: timestamps as RFC 3339 (`2026-01-01T10:00:00Z`),
//! durations in humantime form (`90days`, `1d 12h`, `500ms`).

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An instant in event time: nanoseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The instant `nanos` nanoseconds after the Unix epoch.
    pub const fn from_nanos(nanos: i64) -> Self {
        Self(nanos)
    }

    /// The instant `secs` seconds after the Unix epoch, saturating at the representable range.
    pub const fn from_unix_seconds(secs: i64) -> Self {
        Self(secs.saturating_mul(1_000_000_000))
    }

    /// Nanoseconds since the Unix epoch.
    pub const fn nanos(self) -> i64 {
        self.0
    }

    /// The wall-clock time now (servers stamp `received_at` and `updated_at` with it; the
    /// engine itself only ever reads event time).
    pub fn now() -> Self {
        Self(Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX))
    }

    /// Parses RFC 3339 text such as `2026-01-01T10:00:00Z` or `2026-01-01T12:00:00+02:00`.
    pub fn parse_rfc3339(text: &str) -> Result<Self, String> {
        let parsed = DateTime::parse_from_rfc3339(text)
            .map_err(|e| format!("{text:?} is not an RFC 3339 timestamp: {e}"))?;
        parsed
            .timestamp_nanos_opt()
            .map(Self)
            .ok_or_else(|| format!("{text:?} is outside the years 1678 to 2261"))
    }

    /// The RFC 3339 text of this instant in UTC, with as many fraction digits as needed.
    pub fn to_rfc3339(self) -> String {
        DateTime::<Utc>::from_timestamp_nanos(self.0).to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }

    /// This instant plus `d`, saturating at the end of the representable range.
    pub const fn saturating_add(self, d: Duration) -> Self {
        Self(self.0.saturating_add(d.0))
    }

    /// This instant minus `d`, saturating at the start of the representable range.
    pub const fn saturating_sub(self, d: Duration) -> Self {
        Self(self.0.saturating_sub(d.0))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }
}

/// A non-negative span of event time in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(i64);

impl Duration {
    /// No time at all.
    pub const ZERO: Self = Self(0);

    /// A span of `nanos` nanoseconds; negative values are taken as zero.
    pub const fn from_nanos(nanos: i64) -> Self {
        Self(if nanos < 0 { 0 } else { nanos })
    }

    /// A span of whole seconds, saturating.
    pub const fn from_secs(secs: i64) -> Self {
        Self::from_nanos(secs.saturating_mul(1_000_000_000))
    }

    /// A span of whole hours, saturating.
    pub const fn from_hours(hours: i64) -> Self {
        Self::from_secs(hours.saturating_mul(3600))
    }

    /// A span of whole days, saturating.
    pub const fn from_days(days: i64) -> Self {
        Self::from_secs(days.saturating_mul(86_400))
    }

    /// The span in nanoseconds.
    pub const fn nanos(self) -> i64 {
        self.0
    }

    /// True for the empty span.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Parses humantime text such as `90days`, `1d`, `12h 30m` or `250ms`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let std = humantime::parse_duration(text)
            .map_err(|e| format!("{text:?} is not a duration like \"1d\" or \"12h 30m\": {e}"))?;
        i64::try_from(std.as_nanos())
            .map(Self)
            .map_err(|_| format!("{text:?} is longer than 292 years"))
    }
}

/// Units of the text form, largest first. Days are the largest because months and years
/// have no fixed length (humantime's own formatter would print 90 days as "2months 29days
/// 2h 52m 48s").
const UNITS: [(&str, i64); 7] = [
    ("d", 86_400_000_000_000),
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
];

/// Prints the span as its non-zero units, largest first: `90d`, `1d 12h`, `250ms`, `0s`.
impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0s");
        }
        let mut rest = self.0;
        let mut first = true;
        for (unit, size) in UNITS {
            let count = rest / size;
            if count > 0 {
                write!(f, "{}{count}{unit}", if first { "" } else { " " })?;
                first = false;
                rest %= size;
            }
        }
        Ok(())
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_through_text_to_the_nanosecond() {
        for text in [
            "2026-01-01T10:00:00Z",
            "1970-01-01T00:00:00.000000001Z",
            "1969-12-31T23:59:59Z",
        ] {
            let t = Timestamp::parse_rfc3339(text).unwrap();
            assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()).unwrap(), t);
        }
        let offset = Timestamp::parse_rfc3339("2026-01-01T12:00:00+02:00").unwrap();
        assert_eq!(
            offset,
            Timestamp::parse_rfc3339("2026-01-01T10:00:00Z").unwrap()
        );
    }

    #[test]
    fn bad_timestamps_and_durations_say_what_is_wrong() {
        assert!(
            Timestamp::parse_rfc3339("yesterday")
                .unwrap_err()
                .contains("RFC 3339")
        );
        assert!(
            Timestamp::parse_rfc3339("3000-01-01T00:00:00Z")
                .unwrap_err()
                .contains("1678")
        );
        assert!(
            Duration::parse("soon")
                .unwrap_err()
                .contains("not a duration")
        );
    }

    #[test]
    fn durations_parse_humantime_and_print_back() {
        assert_eq!(Duration::parse("1d").unwrap(), Duration::from_days(1));
        assert_eq!(Duration::parse("90days").unwrap(), Duration::from_days(90));
        assert_eq!(
            Duration::parse("12h 30m").unwrap().nanos(),
            45_000 * 1_000_000_000
        );
        for (d, text) in [
            (Duration::from_days(90), "90d"),
            (Duration::from_hours(36), "1d 12h"),
            (Duration::from_nanos(1_500_000_001), "1s 500ms 1ns"),
            (Duration::ZERO, "0s"),
        ] {
            assert_eq!(d.to_string(), text);
            assert_eq!(Duration::parse(text).unwrap(), d);
        }
        assert_eq!(Duration::from_nanos(-5), Duration::ZERO);
    }
}
