//! Credence storage: traits by role and their backends.
//!
//! Nothing here yet: the role traits, the embedded backend and the conformance suite come
//! with the "embedded platform" issue; the cluster backends (Kafka, MongoDB protocol, CQL,
//! InfluxDB, Dgraph) come behind cargo features.
