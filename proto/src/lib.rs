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
}
