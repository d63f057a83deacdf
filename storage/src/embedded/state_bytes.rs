//! Engine state as bytes in snapshot rows: the duplicate window's floor and the rule
//! histories. Binary, not JSON: both are written with every changed snapshot, and as JSON
//! text (a time as RFC 3339 text each) they cost a large part of the node's rate
//! (`docs/BENCHMARKS.md`). Little-endian throughout.

use std::sync::Arc;

use credence_scorer::{DedupWindow, RuleHistory, Timestamp};

use crate::error::{Result, StorageError};

/// Bytes of a window's floor and of each entry (time, then digest).
const FLOOR_BYTES: usize = 8;
const ENTRY_BYTES: usize = 24;

/// A duplicate window as bytes: the floor (`i64::MIN` for none), then per entry its time and
/// its digest, little-endian. Binary, not JSON: a window is written with every changed
/// snapshot, up to 256 entries of 128-bit digests, and as JSON text it more than halved the
/// rate the node scored and stored at (`docs/BENCHMARKS.md`).
pub(super) fn encode_window(window: &DedupWindow) -> Vec<u8> {
    let mut out = Vec::with_capacity(FLOOR_BYTES + window.len() * ENTRY_BYTES);
    let floor = window.floor().map_or(i64::MIN, Timestamp::nanos);
    out.extend_from_slice(&floor.to_le_bytes());
    for (at, digest) in window.entries() {
        out.extend_from_slice(&at.nanos().to_le_bytes());
        out.extend_from_slice(&digest.to_le_bytes());
    }
    out
}

/// The window [`encode_window`] wrote.
pub(super) fn decode_window(bytes: &[u8]) -> Result<DedupWindow> {
    let malformed = || {
        crate::error::StorageError::Backend(format!(
            "a stored duplicate window of {} bytes is not {FLOOR_BYTES} + {ENTRY_BYTES} per entry",
            bytes.len()
        ))
    };
    let (floor, entries) = bytes.split_at_checked(FLOOR_BYTES).ok_or_else(malformed)?;
    if entries.len() % ENTRY_BYTES != 0 {
        return Err(malformed());
    }
    let floor = i64::from_le_bytes(floor.try_into().map_err(|_| malformed())?);
    let floor = (floor != i64::MIN).then(|| Timestamp::from_nanos(floor));
    let mut recent = Vec::with_capacity(entries.len() / ENTRY_BYTES);
    for entry in entries.chunks_exact(ENTRY_BYTES) {
        let (at, digest) = entry.split_at(8);
        recent.push((
            Timestamp::from_nanos(i64::from_le_bytes(at.try_into().map_err(|_| malformed())?)),
            u128::from_le_bytes(digest.try_into().map_err(|_| malformed())?),
        ));
    }
    Ok(DedupWindow::new(floor, recent))
}

/// Rule histories as bytes: per history the rule id's length (u32) and UTF-8 bytes, the
/// number of applications (u32), then each application time (i64 nanoseconds).
pub(super) fn encode_rules(rules: &[RuleHistory]) -> Vec<u8> {
    let size = rules
        .iter()
        .map(|h| 8 + h.rule_id.len() + 8 * h.applications().len())
        .sum();
    let mut out = Vec::with_capacity(size);
    for h in rules {
        out.extend_from_slice(&length(h.rule_id.len()).to_le_bytes());
        out.extend_from_slice(h.rule_id.as_bytes());
        out.extend_from_slice(&length(h.applications().len()).to_le_bytes());
        for t in h.applications() {
            out.extend_from_slice(&t.nanos().to_le_bytes());
        }
    }
    out
}

/// A length as its stored `u32`; ids and histories are far below 4 GiB.
#[allow(
    clippy::cast_possible_truncation,
    reason = "bounded by rule validation and pruning"
)]
fn length(n: usize) -> u32 {
    n as u32
}

/// The histories [`encode_rules`] wrote.
pub(super) fn decode_rules(bytes: &[u8]) -> Result<Vec<RuleHistory>> {
    let malformed = |what: &str| {
        StorageError::Backend(format!(
            "a stored rule history of {} bytes is malformed ({what}); the snapshots table was \
             written by something else: restore it from a backup",
            bytes.len()
        ))
    };
    let mut r = Reader(bytes);
    let mut out = Vec::new();
    while !r.0.is_empty() {
        let id_len = r.length().ok_or_else(|| malformed("rule id length"))?;
        let id = r.take(id_len).ok_or_else(|| malformed("rule id"))?;
        let id = std::str::from_utf8(id).map_err(|_| malformed("rule id is not UTF-8"))?;
        let count = r.length().ok_or_else(|| malformed("application count"))?;
        let times = count
            .checked_mul(8)
            .and_then(|n| r.take(n))
            .ok_or_else(|| malformed("application times"))?;
        let applications = times
            .chunks_exact(8)
            .map(|c| Timestamp::from_nanos(<[u8; 8]>::try_from(c).map_or(0, i64::from_le_bytes)))
            .collect();
        out.push(RuleHistory::new(Arc::from(id), applications));
    }
    Ok(out)
}

/// The unread rest of a byte string.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = self.0.split_at_checked(n)?;
        self.0 = tail;
        Some(head)
    }

    fn length(&mut self) -> Option<usize> {
        let b = <[u8; 4]>::try_from(self.take(4)?).ok()?;
        usize::try_from(u32::from_le_bytes(b)).ok()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn duplicate_windows_round_trip_as_bytes_and_damage_is_refused() {
        let t = Timestamp::from_nanos;
        for window in [
            DedupWindow::default(),
            DedupWindow::new(Some(t(-5)), []),
            DedupWindow::new(Some(t(10)), [(t(11), u128::MAX), (t(12), 7)]),
        ] {
            let bytes = encode_window(&window);
            assert_eq!(bytes.len(), FLOOR_BYTES + ENTRY_BYTES * window.len());
            assert_eq!(decode_window(&bytes).unwrap(), window);
        }
        let bytes = encode_window(&DedupWindow::new(None, [(t(1), 2)]));
        assert!(decode_window(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode_window(&bytes[..3]).is_err());
    }

    #[test]
    fn rule_histories_round_trip_as_bytes_and_damage_is_refused() {
        let t = Timestamp::from_nanos;
        let rules = vec![
            RuleHistory::new(Arc::from("late"), vec![t(-1), t(5), t(i64::MAX)]),
            RuleHistory::new(Arc::from("ünï"), vec![]),
            RuleHistory::new(Arc::from(""), vec![t(0)]),
        ];
        let bytes = encode_rules(&rules);
        assert_eq!(bytes.len(), 3 * 8 + 4 + 5 + 8 * 4);
        assert_eq!(decode_rules(&bytes).unwrap(), rules);
        assert_eq!(decode_rules(&[]).unwrap(), vec![]);
        for cut in [1, 4, 8, bytes.len() - 1] {
            assert!(decode_rules(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = encode_rules(&rules[..1]);
        bad[4] = 0xff;
        assert!(decode_rules(&bad).is_err(), "not UTF-8");
    }
}
