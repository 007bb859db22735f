//! The migration stream: round trips, and every corruption and truncation
//! refused or harmless.

use proptest::prelude::*;
use xstate::layout::catalog;
use xstate::migrate::stream::{self, crc32, decode, decode_vcpus, encode, Source, StreamError};
use xstate::prelude::*;
use xstate::{ComponentId, Layout, RegisterFile, Xfeatures};

fn state(layout: &Layout, pick: Xfeatures, seed: u8) -> RegisterFile {
    let mut regs = RegisterFile::new();
    for c in layout.supported() & pick {
        let size = if c.is_legacy() {
            512
        } else {
            layout.geometry(c).unwrap().size as usize
        };
        let bytes: Vec<u8> = (0..size)
            .map(|b| (b as u8).wrapping_mul(31).wrapping_add(seed ^ c.index()))
            .collect();
        regs.set_component(c, &bytes).unwrap();
    }
    regs
}

/// A sample stream: two vCPUs on Sapphire Rapids, AVX-512 and AMX live.
fn sample() -> (Vec<u8>, Vec<RegisterFile>) {
    let spr = catalog::get("intel-sapphire-rapids").unwrap();
    let vcpus = vec![
        state(spr, Xfeatures::from_bits(0x600E7 | 1 << 8), 1),
        state(spr, Xfeatures::from_bits(0x207), 2),
    ];
    (encode(&vcpus, &Source::of(spr)), vcpus)
}

/// Re-seals `bytes` with a correct checksum, to reach the structural checks.
fn reseal(mut bytes: Vec<u8>) -> Vec<u8> {
    let body = bytes.len() - 4;
    let crc = crc32(&bytes[..body]);
    bytes[body..].copy_from_slice(&crc.to_le_bytes());
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig {
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x57_8EA4),
        failure_persistence: None,
        ..ProptestConfig::with_cases(128)
    })]

    #[test]
    fn encode_then_decode_is_the_identity(
        layout in prop::sample::select(catalog::all().iter().collect::<Vec<_>>()),
        picks in prop::collection::vec((any::<u64>(), any::<u8>()), 0..5),
    ) {
        let vcpus: Vec<RegisterFile> = picks
            .iter()
            .map(|&(p, s)| state(layout, Xfeatures::from_bits(p), s))
            .collect();
        let bytes = encode(&vcpus, &Source::of(layout));
        let (header, back) = decode(&bytes).unwrap();
        prop_assert_eq!(header.vcpus as usize, vcpus.len());
        prop_assert_eq!(header.source_xcr0, layout.xcr0_supported());
        prop_assert_eq!(header.source_fingerprint, layout.fingerprint());
        prop_assert_eq!(&back, &vcpus);
        // Sparse: no bigger than the live state plus fixed headers.
        let live: usize = vcpus.iter().map(|v| v.xstate_bv().iter().map(|c| stream::record_size(c).unwrap_or(0) + 8).sum::<usize>()).sum();
        prop_assert_eq!(bytes.len(), stream::HEADER_LEN + 4 + 16 * vcpus.len() + live);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096), magic in any::<bool>()) {
        let mut bytes = bytes;
        if magic && bytes.len() >= 10 {
            bytes[..8].copy_from_slice(&stream::MAGIC);
            bytes[8..10].copy_from_slice(&1u16.to_le_bytes());
            let len = bytes.len();
            if len >= 36 {
                bytes = reseal(bytes);
            }
        }
        let _ = decode(&bytes);
    }
}

#[test]
fn every_single_byte_corruption_is_refused_or_harmless() {
    let (bytes, vcpus) = sample();
    let mut refused = 0;
    for at in 0..bytes.len() {
        for flip in [0x01u8, 0x80, 0xFF] {
            let mut bad = bytes.clone();
            bad[at] ^= flip;
            match decode(&bad) {
                Err(_) => refused += 1,
                Ok((_, got)) => assert_eq!(got, vcpus, "byte {at} ^ {flip:#x} changed the state"),
            }
        }
    }
    eprintln!(
        "{refused} of {} single-byte corruptions refused",
        3 * bytes.len()
    );
}

#[test]
fn every_truncation_is_refused() {
    let (bytes, _) = sample();
    for len in 0..bytes.len() {
        assert!(
            decode(&bytes[..len]).is_err(),
            "truncated to {len} bytes was accepted"
        );
    }
}

#[test]
fn structural_faults_are_typed_with_their_offsets() {
    let (bytes, _) = sample();
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    // First record of vCPU 0 starts after the header and the vCPU header.
    let rec = stream::HEADER_LEN + stream::VCPU_HEADER_LEN;
    assert_eq!(bytes[rec], 0, "x87 first");

    let mut v = bytes.clone();
    v[8] = 2;
    assert_eq!(
        decode(&v),
        Err(StreamError::UnknownVersion {
            offset: 8,
            version: 2
        })
    );

    let mut v = bytes.clone();
    v[0] = b'Y';
    assert_eq!(decode(&v), Err(StreamError::BadMagic));

    let mut v = bytes.clone();
    let n = v.len();
    v[n - 1] ^= 1;
    assert!(matches!(decode(&v), Err(StreamError::Checksum { .. })));

    // Trailing garbage, sealed.
    let mut v = bytes[..bytes.len() - 4].to_vec();
    v.extend_from_slice(&[0xAB; 5]);
    v.extend_from_slice(&[0; 4]);
    let end = bytes.len() - 4;
    assert_eq!(
        decode(&reseal(v)),
        Err(StreamError::Trailing {
            offset: end,
            count: 5
        })
    );

    // Unknown component number.
    let mut v = bytes.clone();
    v[rec] = 70;
    assert_eq!(
        decode(&reseal(v)),
        Err(StreamError::UnknownComponent {
            offset: rec,
            component: 70
        })
    );

    // Wrong record size for x87.
    let mut v = bytes.clone();
    v[rec + 4..rec + 8].copy_from_slice(&151u32.to_le_bytes());
    assert!(
        matches!(decode(&reseal(v)), Err(StreamError::RecordSize { offset, component: ComponentId::X87, .. }) if offset == rec)
    );

    // Duplicate: the second record (SSE) renumbered as x87.
    let second = rec + 8 + u32_at(&bytes, rec + 4) as usize;
    let mut v = bytes.clone();
    v[second] = 0;
    assert_eq!(
        decode(&reseal(v)),
        Err(StreamError::Duplicate {
            offset: second,
            component: ComponentId::X87
        })
    );

    // XSTATE_BV that does not match the records.
    let mut v = bytes.clone();
    v[stream::HEADER_LEN + 8] ^= 0x04;
    assert!(matches!(
        decode(&reseal(v)),
        Err(StreamError::XstateBv { .. })
    ));

    // A vCPU index out of order.
    let mut v = bytes.clone();
    v[stream::HEADER_LEN] = 5;
    assert!(matches!(
        decode(&reseal(v)),
        Err(StreamError::VcpuIndex {
            expected: 0,
            found: 5,
            ..
        })
    ));

    // Reserved bytes.
    let mut v = bytes.clone();
    v[rec + 2] = 1;
    assert_eq!(
        decode(&reseal(v)),
        Err(StreamError::Reserved { offset: rec + 1 })
    );

    // More vCPUs announced than present.
    let mut v = bytes.clone();
    v[12] = 3;
    assert!(matches!(
        decode(&reseal(v)),
        Err(StreamError::Truncated { .. })
    ));

    // The caller expects another count.
    assert_eq!(
        decode_vcpus(&bytes, 3),
        Err(StreamError::VcpuCount {
            expected: 3,
            found: 2
        })
    );
    assert_eq!(decode_vcpus(&bytes, 2).unwrap().len(), 2);
}

#[test]
fn stream_size_next_to_raw_buffers() {
    let spr = catalog::get("intel-sapphire-rapids").unwrap();
    for (name, pick) in [
        ("SSE only", 0x3u64),
        ("AVX", 0x7),
        ("AVX-512", 0xE7),
        ("AMX tiles live", 0x600E7),
    ] {
        let bytes = encode(
            &[state(spr, Xfeatures::from_bits(pick), 9)],
            &Source::of(spr),
        );
        eprintln!("{name}: stream {} bytes, raw KVM buffer 11008", bytes.len());
        assert!(bytes.len() < 11008);
    }
}

#[test]
fn pkru_travels_as_its_32_bits_and_reserved_bytes_are_refused() {
    let spr = catalog::get("intel-sapphire-rapids").unwrap();
    let mut regs = RegisterFile::new();
    // Bytes 4..8 given non-zero are stored as zero.
    regs.set_component(ComponentId::PKRU, &[0x54, 0x55, 0x55, 0x55, 9, 9, 9, 9])
        .unwrap();
    let bytes = encode(std::slice::from_ref(&regs), &Source::of(spr));
    let (_, back) = decode(&bytes).unwrap();
    assert_eq!(
        back[0].component(ComponentId::PKRU),
        Some(&[0x54, 0x55, 0x55, 0x55, 0, 0, 0, 0][..])
    );
    // A stream whose PKRU record has a non-zero reserved byte is refused
    // with the offset of that byte, even with a correct checksum.
    let rec = stream::HEADER_LEN + stream::VCPU_HEADER_LEN;
    assert_eq!(
        bytes[rec],
        ComponentId::PKRU.index(),
        "the PKRU record comes first"
    );
    let data = rec + stream::RECORD_HEADER_LEN;
    let mut v = bytes.clone();
    v[data + 6] = 1;
    assert_eq!(
        decode(&reseal(v)),
        Err(StreamError::Reserved { offset: data + 6 })
    );
}
