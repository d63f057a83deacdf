//! `credence._native`, the native module of the Credence Python SDK: the Rust SDK
//! (`credence` crate) behind a small surface the typed Python layer (`credence/*.py`)
//! wraps. Arguments and answers cross as JSON in the Rust SDK's `serde` shape, tables as
//! Arrow IPC streams; errors as one exception the Python layer maps to its hierarchy.

mod alerts;
mod bridge;
mod client;
mod dispatch;
mod errors;
mod events;
mod local;
mod options;
mod producer;
mod runtime;

use pyo3::prelude::*;

/// The module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("NativeError", m.py().get_type::<errors::NativeError>())?;
    m.add("METHODS", dispatch::METHODS.to_vec())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<client::NativeClient>()?;
    m.add_class::<client::Answer>()?;
    m.add_class::<producer::NativeProducer>()?;
    m.add_class::<alerts::AlertStream>()?;
    m.add_function(wrap_pyfunction!(local::simulate, m)?)?;
    m.add_function(wrap_pyfunction!(local::load_rule_file, m)?)?;
    Ok(())
}
