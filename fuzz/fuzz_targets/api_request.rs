#![no_main]
//! Fuzz target: kinedge::fuzzing::api_request (see docs/fuzzing.md).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kinedge::fuzzing::api_request(data));
