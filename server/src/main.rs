//! The `credence` command line (being written).

fn main() {}
