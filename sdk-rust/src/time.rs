//! Times and durations between `chrono` / `std::time` and their protobuf forms.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::{Error, Result};

/// A time as a protobuf timestamp.
pub(crate) fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        // Below 2e9 (a leap second is 1e9 + n), so it fits.
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

/// An optional time as an optional protobuf timestamp.
pub(crate) fn timestamp_opt(t: Option<DateTime<Utc>>) -> Option<prost_types::Timestamp> {
    t.map(timestamp)
}

/// A protobuf timestamp from the server as a time; a value chrono cannot hold is a protocol
/// error (the server never sends one).
pub(crate) fn time(t: &prost_types::Timestamp) -> Result<DateTime<Utc>> {
    u32::try_from(t.nanos)
        .ok()
        .and_then(|nanos| DateTime::from_timestamp(t.seconds, nanos))
        .ok_or_else(|| Error::Protocol(format!("timestamp {t} is out of range")))
}

/// An optional protobuf timestamp as an optional time.
pub(crate) fn time_opt(t: Option<&prost_types::Timestamp>) -> Result<Option<DateTime<Utc>>> {
    t.map(time).transpose()
}

/// A duration as a protobuf duration (saturating at `i64::MAX` seconds).
pub(crate) fn duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: d.subsec_nanos() as i32,
    }
}

/// An optional duration as an optional protobuf duration.
pub(crate) fn duration_opt(d: Option<Duration>) -> Option<prost_types::Duration> {
    d.map(duration)
}

/// A protobuf duration from the server; negative ones are a protocol error.
pub(crate) fn std_duration(d: &prost_types::Duration) -> Result<Duration> {
    let seconds = u64::try_from(d.seconds).ok();
    let nanos = u32::try_from(d.nanos).ok();
    match (seconds, nanos) {
        (Some(s), Some(n)) if n < 1_000_000_000 => Ok(Duration::new(s, n)),
        _ => Err(Error::Protocol(format!(
            "duration {d} is negative or malformed"
        ))),
    }
}

/// An optional protobuf duration; a zero duration counts as none (proto3 cannot tell them
/// apart for a message field the server fills with zero).
pub(crate) fn std_duration_opt(d: Option<&prost_types::Duration>) -> Result<Option<Duration>> {
    Ok(d.map(std_duration).transpose()?.filter(|d| !d.is_zero()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations_round_trip_to_the_nanosecond() {
        let t = DateTime::from_timestamp(1_767_261_600, 123_456_789).expect("in range");
        assert_eq!(time(&timestamp(t)).expect("in range"), t);
        let before_epoch = DateTime::from_timestamp(-5, 1).expect("in range");
        assert_eq!(
            time(&timestamp(before_epoch)).expect("in range"),
            before_epoch
        );
        let d = Duration::new(86_400 * 90, 7);
        assert_eq!(std_duration(&duration(d)).expect("valid"), d);
        assert!(
            std_duration(&prost_types::Duration {
                seconds: -1,
                nanos: 0
            })
            .is_err()
        );
        assert_eq!(
            std_duration_opt(Some(&duration(Duration::ZERO))).expect("valid"),
            None
        );
        let bad = prost_types::Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        };
        assert!(matches!(time(&bad), Err(Error::Protocol(_))));
    }
}
