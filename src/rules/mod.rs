//! The rules file: its model, parser, validation profiles and other formats.

pub mod model;

pub use model::*;
