//! SCAFFOLD: chat helper writes this crate.
