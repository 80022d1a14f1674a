#![no_main]
//! Fuzz target: kinedge::fuzzing::block_decode (see docs/fuzzing.md).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kinedge::fuzzing::block_decode(data));
