//! Rust SDK for Credence. Not written yet: the typed client, batching producer and typed
//! errors come with the embedded-platform issue, once there is a server to talk to.
