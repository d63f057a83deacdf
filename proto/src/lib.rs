//! The `credence.v1` contracts, generated from `proto/credence/v1/*.proto`.
//!
//! Generated types stay at the edge of the system: the server and the SDKs convert them into
//! the domain types of `credence-scorer` and `credence-storage` and back. The `.proto` files
//! are the documentation of every message and field.

/// Package `credence.v1`: messages, enums, clients and servers of the four services.
#[allow(
    missing_docs,
    unreachable_pub,
    clippy::pedantic,
    clippy::all,
    reason = "generated code"
)]
pub mod v1 {
    tonic::include_proto!("credence.v1");
}

pub mod client;
pub mod codec;
pub mod json;

/// The encoded `FileDescriptorSet` of the contracts (with imports), for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/credence_descriptor.bin"));

/// The fully qualified names of the four services, as reflection and health checks name them.
pub const SERVICE_NAMES: [&str; 4] = [
    "credence.v1.IngestionService",
    "credence.v1.ScoringService",
    "credence.v1.QueryService",
    "credence.v1.GraphService",
];

/// The bus partition of a subject: the XXH3-64 of its id's UTF-8 bytes modulo `partitions`.
///
/// Every producer uses this one function: the server's ingestion, the Kafka producer, and
/// the SDKs when they write straight to the bus. Events of one subject must land in one
/// partition (the pipeline scores a subject's events in bus order), so the function is part
/// of the contract: it never changes, and its results are pinned by a test. XXH3 is a fixed
/// algorithm with implementations in every language the SDKs are written in.
///
/// # Panics
/// Never for `partitions >= 1`; `partitions == 0` divides by zero (a bus has at least one
/// partition).
#[must_use]
pub fn partition_of(subject_id: &str, partitions: u32) -> u32 {
    let hash = xxhash_rust::xxh3::xxh3_64(subject_id.as_bytes());
    #[allow(
        clippy::cast_possible_truncation,
        reason = "the remainder is below a u32"
    )]
    let p = (hash % u64::from(partitions)) as u32;
    p
}

#[cfg(test)]
mod tests {
    use prost::Message as _;
    use prost_types::FileDescriptorSet;

    use super::*;

    #[test]
    fn descriptor_set_holds_the_four_services_and_their_rpcs() {
        let set = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("valid descriptor set");
        let services: Vec<(String, Vec<String>)> = set
            .file
            .iter()
            .filter(|f| f.package() == "credence.v1")
            .flat_map(|f| f.service.iter())
            .map(|s| {
                let methods = s.method.iter().map(|m| m.name().to_owned()).collect();
                (format!("credence.v1.{}", s.name()), methods)
            })
            .collect();
        let names: Vec<&str> = services.iter().map(|(n, _)| n.as_str()).collect();
        for expected in SERVICE_NAMES {
            assert!(
                names.contains(&expected),
                "{expected} missing from {names:?}"
            );
        }
        let rpcs = |service: &str| -> Vec<String> {
            services
                .iter()
                .find(|(n, _)| n == service)
                .map(|(_, m)| m.clone())
                .unwrap_or_default()
        };
        assert_eq!(
            rpcs("credence.v1.IngestionService"),
            ["PublishEvents", "StreamEvents", "UpsertProfiles"]
        );
        assert_eq!(rpcs("credence.v1.ScoringService").len(), 14);
        assert_eq!(rpcs("credence.v1.QueryService").len(), 7);
        assert_eq!(rpcs("credence.v1.GraphService").len(), 5);
    }

    #[test]
    fn every_enum_starts_with_unspecified_and_every_rpc_has_its_own_messages() {
        let set = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("valid descriptor set");
        let ours = set.file.iter().filter(|f| f.package() == "credence.v1");
        for file in ours {
            let enums = file.enum_type.iter();
            for e in enums {
                let first = e.value.first().expect("enum has values");
                assert_eq!(first.number(), 0, "{}", e.name());
                assert!(
                    first.name().ends_with("_UNSPECIFIED"),
                    "{}: {}",
                    e.name(),
                    first.name()
                );
            }
            for service in &file.service {
                for m in &service.method {
                    assert_eq!(m.input_type(), format!(".credence.v1.{}Request", m.name()));
                    assert_eq!(
                        m.output_type(),
                        format!(".credence.v1.{}Response", m.name())
                    );
                }
            }
        }
    }

    #[test]
    fn generated_event_round_trips_through_the_wire_format() {
        let event = v1::Event {
            event_id: "e-1".into(),
            subject_id: "SUBJ-000001".into(),
            event_type: "financial".into(),
            event_subtype: "late_payment".into(),
            occurred_at: Some(prost_types::Timestamp {
                seconds: 1_767_261_600,
                nanos: 0,
            }),
            ..Default::default()
        };
        let bytes = event.encode_to_vec();
        assert_eq!(v1::Event::decode(bytes.as_slice()).expect("decodes"), event);
    }

    /// The partitioner is a published contract: producers outside this repository compute
    /// it too, so its results may never change. The values come from the Python `xxhash`
    /// package (`xxh3_64_intdigest(id.encode()) % n`), an implementation independent of ours.
    #[test]
    fn the_partitioner_never_changes() {
        for (subject, partitions, expected) in [
            ("subject-1", 4, 3),
            ("SUBJ-000001", 8, 5),
            ("s0", 16, 6),
            ("", 3, 1),
            ("\u{e9}l\u{e8}ve-42", 12, 0),
            ("SUBJ-000001", 1, 0),
        ] {
            assert_eq!(
                partition_of(subject, partitions),
                expected,
                "{subject:?} over {partitions}"
            );
        }
    }

    #[test]
    fn the_partitioner_spreads_subjects() {
        let mut counts = [0u32; 4];
        for i in 0..4_000 {
            counts[partition_of(&format!("s{i}"), 4) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
    }
}
