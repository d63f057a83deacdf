//! The pure request checks of ingestion, for the fuzz targets (`fuzz/`, docs/SECURITY.md
//! "Fuzzing"). Each is the function the handlers call, not a copy: the targets exercise the
//! same code as a request does. Not an API for anything else.

use credence_proto::v1 as pb;
use credence_scorer::Timestamp;

use crate::config::IngestSection;

/// What `PublishEvents` and `StreamEvents` reject an event for before appending it (all but
/// the subject's existence, which needs the stores); see `Ingest::publish`.
pub fn check_event(
    e: &pb::Event,
    limits: &IngestSection,
    min_time: Timestamp,
    latest: Timestamp,
) -> Result<(), String> {
    crate::ingest::check_event(e, limits, min_time, latest)
}

/// What `UpsertProfiles` rejects a profile for, naming the field.
pub fn profile_problem(p: &pb::Profile) -> Option<String> {
    crate::services::ingestion::profile_problem(p)
}
