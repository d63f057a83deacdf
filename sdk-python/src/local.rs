//! The scoring engine in this process (the Rust SDK's `local` feature): `simulate` and
//! `load_rule_file`, JSON in and out like the rest of the module.

use credence::{Error, Simulation};
use pyo3::prelude::*;

use crate::errors::to_py;

/// Runs a simulation given as JSON (a `Simulation`); answers a `SimulationResult` as JSON.
#[pyfunction]
pub(crate) fn simulate(py: Python<'_>, simulation: &str) -> PyResult<String> {
    py.detach(|| {
        let simulation: Simulation =
            serde_json::from_str(simulation).map_err(|e| Error::Input(format!("simulate: {e}")))?;
        let result = credence::simulate_locally(&simulation)?;
        serde_json::to_string(&result)
            .map_err(|e| Error::Protocol(format!("a result does not serialise: {e}")))
    })
    .map_err(|e| to_py(&e))
}

/// Reads a YAML rule file; answers `{"rules": [...], "config": ... | null}` as JSON.
#[pyfunction]
pub(crate) fn load_rule_file(py: Python<'_>, path: &str) -> PyResult<String> {
    py.detach(|| {
        let file = credence::load_rule_file(path)?;
        serde_json::to_string(&serde_json::json!({"rules": file.rules, "config": file.config}))
            .map_err(|e| Error::Protocol(format!("rules do not serialise: {e}")))
    })
    .map_err(|e| to_py(&e))
}
