//! The short version of each fuzz target, run by `cargo test`: proptest over arbitrary bytes
//! and over mutations of valid inputs (the seeds), so that the decoders are exercised past
//! their first length check. Long, coverage-guided runs: docs/fuzzing.md.

use proptest::prelude::*;
use proptest::test_runner::Config;

use super::*;

/// A valid input with a few bytes replaced, inserted or cut off.
fn mutated(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let n = seeds.len();
    (
        0..n,
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 0..8),
        any::<Option<prop::sample::Index>>(),
    )
        .prop_map(move |(i, edits, cut)| {
            let mut bytes = seeds[i].clone();
            for (at, byte, kind) in edits {
                if bytes.is_empty() {
                    bytes.push(byte);
                    continue;
                }
                let at = at.index(bytes.len());
                match kind {
                    0 => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    _ => {
                        bytes.remove(at);
                    }
                }
            }
            if let Some(cut) = cut {
                let len = cut.index(bytes.len() + 1);
                bytes.truncate(len);
            }
            bytes
        })
}

fn inputs(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        mutated(seeds.clone()),
        mutated(seeds).prop_map(|mut b| {
            // Random bytes after a valid start.
            b.extend(b.clone().iter().rev().map(|x| x.wrapping_mul(31)));
            b
        }),
    ]
}

proptest! {
    #![proptest_config(Config { cases: 3000, failure_persistence: None, ..Config::default() })]

    #[test]
    fn mqtt_codec_never_panics(data in inputs(seeds::mqtt())) {
        mqtt_codec(&data);
    }

    #[test]
    fn block_decoder_never_panics(data in inputs(seeds::blocks())) {
        block_decode(&data);
    }

    #[test]
    fn sigv4_verification_never_panics(data in inputs(seeds::sigv4())) {
        sigv4_verify(&data);
    }

    #[test]
    fn request_decoder_never_panics(data in inputs(seeds::api())) {
        api_request(&data);
    }
}

proptest! {
    #![proptest_config(Config { cases: 500, failure_persistence: None, ..Config::default() })]

    /// Whatever the path, query, headers, body, region and time, a request signed by
    /// aws-sigv4 verifies (and an altered body does not).
    #[test]
    fn aws_signed_requests_verify(data in inputs(seeds::sigv4_signed())) {
        if let Some(request) = SignedRequest::from_bytes(&data) {
            prop_assert_eq!(sigv4_signed(&request), Ok(()), "{:?}", request);
        }
    }

    /// Records written to a block read back as written, from any start position.
    #[test]
    fn blocks_round_trip(
        first in 0u64..u64::MAX / 2,
        records in prop::collection::vec(
            (0u64..1000, "\\PC{0,8}", prop::collection::vec(any::<u8>(), 0..64)),
            1..50,
        ),
        skip in 0usize..50,
    ) {
        let mut position = first;
        let pending: Vec<block::PendingRecord> = records
            .iter()
            .enumerate()
            .map(|(i, (delta, key, data))| {
                // The block's key is its first record's position.
                if i > 0 {
                    position += delta;
                }
                block::PendingRecord {
                    position: Position(position),
                    partition_key: key.clone(),
                    data: bytes::Bytes::copy_from_slice(data),
                }
            })
            .collect();
        let encoded = block::encode_records(&pending);
        let summary = block::summarize(first, &encoded).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(summary.records, pending.len() as u64);
        prop_assert_eq!(summary.last, pending[pending.len() - 1].position);
        let from = pending[skip.min(pending.len() - 1)].position;
        let Ok(Decoded::Records(back)) = block::decode(first, &encoded, from) else {
            return Err(TestCaseError::fail("records block expected"));
        };
        let expected: Vec<_> = pending.iter().filter(|r| r.position >= from).collect();
        prop_assert_eq!(back.len(), expected.len());
        for (got, want) in back.iter().zip(expected) {
            prop_assert_eq!(got.position, want.position);
            prop_assert_eq!(&got.partition_key, &want.partition_key);
            prop_assert_eq!(&got.data, &want.data);
        }
    }
}

#[test]
fn seeds_are_valid_inputs() {
    // The seeds reach past the first checks: each decodes (or verifies) as it should.
    for stream in seeds::mqtt() {
        let mut buf = BytesMut::from(&stream[2..]);
        match stream[0] {
            0 => assert!(matches!(
                codec::read_connect(&mut buf, 1 << 14),
                Ok(Some(_))
            )),
            m => {
                let version = if m == 1 { Version::V311 } else { Version::V5 };
                let frame = Codec::new(version).read(&mut buf, 1 << 14);
                assert!(
                    matches!(frame, Ok(Some(_))),
                    "{stream:?}: {:?}",
                    frame.err()
                );
            }
        }
        // The whole stream reads to its end.
        while let Ok(Some(_)) = Codec::new(Version::V5).read(&mut buf, 1 << 14) {}
    }
    for b in seeds::blocks() {
        assert!(block::decode(1 << 40, &b[9..], Position(0)).is_ok());
    }
    let signed = seeds::sigv4();
    assert_eq!(signed.len(), 2);
    for text in signed {
        let (parts, body) = request_from_bytes(&text).expect("a request");
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            fuzz_verifier().verify(&parts, body, now).ok().as_deref(),
            Some(FUZZ_KEY_ID)
        );
    }
    for data in seeds::sigv4_signed() {
        let request = SignedRequest::from_bytes(&data).expect("parts");
        assert_eq!(sigv4_signed(&request), Ok(()));
    }
    for body in seeds::api() {
        let wire = if body[0] == 0 { Wire::Json } else { Wire::Cbor };
        assert!(wire.decode::<kt::PutRecordsInput>(&body[1..]).is_ok());
    }
}

/// Writes the seeds to `$KINEDGE_FUZZ_SEEDS` (fuzz/seeds): the fuzzers' starting corpus.
#[test]
#[ignore = "writes files; run by hand when the seeds change (docs/fuzzing.md)"]
fn write_fuzz_seeds() {
    let Ok(dir) = std::env::var("KINEDGE_FUZZ_SEEDS") else {
        panic!("set KINEDGE_FUZZ_SEEDS to the seeds directory (fuzz/seeds)");
    };
    let targets = [
        ("mqtt_codec", seeds::mqtt()),
        ("block_decode", seeds::blocks()),
        ("sigv4_verify", seeds::sigv4()),
        ("sigv4_signed", seeds::sigv4_signed()),
        ("api_request", seeds::api()),
    ];
    for (target, inputs) in targets {
        let path = std::path::Path::new(&dir).join(target);
        std::fs::create_dir_all(&path).expect("seeds directory");
        for (i, input) in inputs.iter().enumerate() {
            std::fs::write(path.join(format!("seed-{i:02}")), input).expect("seed file");
        }
    }
}

/// Found by the block_decode fuzzer (docs/fuzzing.md): a records block whose header puts its
/// last position past u64::MAX decoded (0 records) although summarize refused it.
#[test]
fn regression_block_with_overflowing_last_position() {
    let mut input = 0xffff_ffff_ffff_ff00u64.to_le_bytes().to_vec();
    input.extend_from_slice(&[0x03, 0x01, 0x00, 0xac, 0x05, 0xff, 0xff, 0xff, 0xff, 0xff]);
    input.extend_from_slice(&[0xff, 0xff, 0x03, 0x02, 0x00]);
    block_decode(&input);
    let key = 0xffff_ffff_ffff_ff00;
    assert!(block::summarize(key, &input[9..]).is_err());
    assert!(block::decode(key, &input[9..], Position(0)).is_err());
}

/// A large-record head claiming u64::MAX data bytes: the payload sum overflowed (a panic in
/// debug builds, a wrapped count in release) instead of refusing the block.
#[test]
fn regression_large_head_with_overflowing_length() {
    let mut head = vec![2u8, 1, b'k'];
    head.extend_from_slice(&[0xff; 9]);
    head.extend_from_slice(&[0x01, 0x01]);
    assert!(block::payload_bytes(7, &head).is_err());
    assert!(block::decode(7, &head, Position(0)).is_err());
    let mut input = 7u64.to_le_bytes().to_vec();
    input.push(0);
    input.extend_from_slice(&head);
    block_decode(&input);
}
