//! Compiles `credence/v1/*.proto` with protox (pure Rust, no `protoc` needed), generates the
//! tonic/prost code from the resulting descriptor set, and writes that set to `OUT_DIR` so
//! the crate can expose it for server reflection.

use std::path::PathBuf;

use prost::Message as _;

const PROTO_ROOT: &str = ".";
const PROTO_FILES: &[&str] = &[
    "credence/v1/common.proto",
    "credence/v1/ingestion.proto",
    "credence/v1/scoring.proto",
    "credence/v1/query.proto",
    "credence/v1/graph.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for file in PROTO_FILES {
        println!("cargo:rerun-if-changed={PROTO_ROOT}/{file}");
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptors = protox::compile(PROTO_FILES, [PROTO_ROOT])?;
    std::fs::write(
        out_dir.join("credence_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // INVALID_ARGUMENT for bytes that do not decode, event batches judged per event.
        .codec_path("crate::codec::Codec")
        .compile_fds(descriptors)?;
    Ok(())
}
