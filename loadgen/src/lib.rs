//! Load generator for Credence. Not written yet: the synthetic population, social graph and
//! event streams come with the embedded-platform issue.
