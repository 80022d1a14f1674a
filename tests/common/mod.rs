//! Helpers shared by the Rust integration tests (each test crate uses a part of them).
#![allow(dead_code)]

pub mod moto;
