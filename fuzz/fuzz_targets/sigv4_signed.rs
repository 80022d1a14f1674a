#![no_main]
//! Fuzz target: a request signed by aws-sigv4 from arbitrary parts must verify
//! (kinedge::fuzzing::sigv4_signed, docs/fuzzing.md).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(request) = kinedge::fuzzing::SignedRequest::from_bytes(data) {
        if let Err(e) = kinedge::fuzzing::sigv4_signed(&request) {
            panic!("{e}: {request:?}");
        }
    }
});
