//! End-to-end tests of Credence. Not written yet: they start with the embedded-platform issue,
//! which gives them a server to drive over gRPC.
