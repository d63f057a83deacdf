//! External tools the tests drive (grpcurl, a Python interpreter), and the repository paths
//! they need.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The tool named by the environment variable `env_var` when set, else the path that
/// `deploy/local/<script>` prints (the scripts install the tool once, cached).
///
/// # Panics
/// When the script cannot run or fails: the test cannot go on without the tool.
pub fn tool(env_var: &str, script: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env_var) {
        return PathBuf::from(path);
    }
    let script = repo_root().join("deploy/local").join(script);
    let out = Command::new(&script)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}
