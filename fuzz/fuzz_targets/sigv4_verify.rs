#![no_main]
//! Fuzz target: kinedge::fuzzing::sigv4_verify (see docs/fuzzing.md).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kinedge::fuzzing::sigv4_verify(data));
