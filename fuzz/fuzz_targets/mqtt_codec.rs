#![no_main]
//! Fuzz target: kinedge::fuzzing::mqtt_codec (see docs/fuzzing.md).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kinedge::fuzzing::mqtt_codec(data));
