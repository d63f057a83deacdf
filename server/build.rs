//! Lets the `credence` binary find the prebuilt DuckDB library it links (see
//! `deploy/local/duckdb.sh`) without `LD_LIBRARY_PATH`: the library's folder goes into the
//! binary's run-time search path. A `bundled` DuckDB build sets no `DUCKDB_LIB_DIR` and
//! needs nothing.

fn main() {
    println!("cargo:rerun-if-env-changed=DUCKDB_LIB_DIR");
    if let Ok(dir) = std::env::var("DUCKDB_LIB_DIR") {
        if !dir.is_empty() {
            println!("cargo:rustc-link-arg-bins=-Wl,-rpath,{dir}");
        }
    }
}
