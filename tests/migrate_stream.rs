//! The migration stream: round trips of versions 2 and 1, and every
//! corruption and truncation refused or harmless, with typed errors at
//! their offsets.

mod common;

use proptest::prelude::*;
use xstate::layout::catalog;
use xstate::migrate::stream::{
    self, crc32, decode, decode_vcpus, encode, encode_v1, Source, StreamError, Vcpu,
};
use xstate::prelude::*;
use xstate::xregs::{Xreg, XregsError, XstateRegisters};
use xstate::{ComponentId, Layout, RegisterFile, Xfeatures};

fn state(layout: &Layout, pick: Xfeatures, seed: u8) -> RegisterFile {
    let mut regs = RegisterFile::new();
    for c in layout.supported() & pick {
        let size = common::component_size(layout, c);
        let bytes: Vec<u8> = (0..size)
            .map(|b| (b as u8).wrapping_mul(31).wrapping_add(seed ^ c.index()))
            .collect();
        regs.set_component(c, &bytes).unwrap();
    }
    regs
}

fn registers(xcr0: u64, xss: u64, xfd: u64, xfd_err: u64) -> XstateRegisters {
    XstateRegisters {
        xcr0: Xfeatures::from_bits(xcr0),
        xss: Xfeatures::from_bits(xss),
        xfd: Xfeatures::from_bits(xfd),
        xfd_err: Xfeatures::from_bits(xfd_err),
    }
}

/// A sample version 2 stream: two vCPUs on Sapphire Rapids, the first with
/// AVX-512 and AMX live, the second with tile data disabled in IA32_XFD
/// (and not live) and CET in IA32_XSS.
fn sample() -> (Vec<u8>, Vec<Vcpu>) {
    let spr = catalog::get("intel-sapphire-rapids").unwrap();
    let vcpus = vec![
        Vcpu::new(
            state(spr, Xfeatures::from_bits(0x600E7), 1),
            registers(0x602e7, 0, 0, 0),
        ),
        Vcpu::new(
            state(spr, Xfeatures::from_bits(0x20207), 2),
            registers(0x602e7, 0x1800, 0x40000, 0x40000),
        ),
    ];
    (encode(&vcpus, &Source::of(spr)).unwrap(), vcpus)
}

/// The same two states as a version 1 stream.
fn sample_v1() -> (Vec<u8>, Vec<Vcpu>) {
    let (_, vcpus) = sample();
    let spr = catalog::get("intel-sapphire-rapids").unwrap();
    let states: Vec<RegisterFile> = vcpus.into_iter().map(|v| v.state).collect();
    let bytes = encode_v1(&states, &Source::of(spr)).unwrap();
    let vcpus = states
        .into_iter()
        .map(|state| Vcpu {
            state,
            registers: None,
        })
        .collect();
    (bytes, vcpus)
}

/// Re-seals `bytes` with a correct checksum, to reach the structural checks.
fn reseal(mut bytes: Vec<u8>) -> Vec<u8> {
    let body = bytes.len() - 4;
    let crc = crc32(&bytes[..body]);
    bytes[body..].copy_from_slice(&crc.to_le_bytes());
    bytes
}

fn put_u64(bytes: &mut [u8], at: usize, value: u64) {
    bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

/// Valid registers for `layout`: its user components in XCR0, a subset of
/// its supervisor ones in IA32_XSS, tile data (where it has it) disabled
/// when `disable` says so.
fn layout_registers(layout: &Layout, xss_pick: u64, disable: bool, err: bool) -> XstateRegisters {
    let tiles = layout.xcr0_supported() & ComponentId::TILEDATA.bit();
    XstateRegisters {
        xcr0: layout.xcr0_supported(),
        xss: layout.xss_supported() & Xfeatures::from_bits(xss_pick),
        xfd: if disable { tiles } else { Xfeatures::EMPTY },
        xfd_err: if err { tiles } else { Xfeatures::EMPTY },
    }
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
        picks in prop::collection::vec((any::<u64>(), any::<u8>(), any::<u64>(), any::<bool>(), any::<bool>()), 0..5),
    ) {
        let vcpus: Vec<Vcpu> = picks
            .iter()
            .map(|&(p, s, xss, disable, err)| {
                let registers = layout_registers(layout, xss, disable, err);
                // XSAVE saves what IA32_XFD disables as init.
                let live = Xfeatures::from_bits(p) - registers.xfd;
                Vcpu::new(state(layout, live, s), registers)
            })
            .collect();
        let bytes = encode(&vcpus, &Source::of(layout)).unwrap();
        let (header, back) = decode(&bytes).unwrap();
        prop_assert_eq!(header.version, 2);
        prop_assert_eq!(header.vcpus as usize, vcpus.len());
        prop_assert_eq!(header.source_xcr0, layout.xcr0_supported());
        prop_assert_eq!(header.source_fingerprint, layout.fingerprint());
        prop_assert_eq!(&back, &vcpus);
        // Sparse: no bigger than the live state plus fixed headers.
        let live: usize = vcpus.iter().map(|v| v.state.xstate_bv().iter().map(|c| stream::record_size(c).unwrap_or_else(|| v.state.component(c).unwrap().len()) + 8).sum::<usize>()).sum();
        prop_assert_eq!(bytes.len(), stream::HEADER_LEN + 4 + 48 * vcpus.len() + live);

        // The same states as version 1: no registers, 16-byte sections.
        let states: Vec<RegisterFile> = vcpus.iter().map(|v| v.state.clone()).collect();
        let v1 = encode_v1(&states, &Source::of(layout)).unwrap();
        let (header, back) = decode(&v1).unwrap();
        prop_assert_eq!(header.version, 1);
        prop_assert!(back.iter().all(|v| v.registers.is_none()));
        prop_assert_eq!(back.into_iter().map(|v| v.state).collect::<Vec<_>>(), states);
        prop_assert_eq!(v1.len(), bytes.len() - 32 * vcpus.len());
    }

    /// Any register values in an otherwise valid stream: the decoder's
    /// verdict is exactly `XstateRegisters::check_state`'s, and a refusal
    /// names the offset of the register at fault.
    #[test]
    fn any_registers_are_judged_by_the_rules(values in any::<[u64; 4]>(), small in any::<[u8; 4]>(), which in 0..3usize) {
        let (bytes, vcpus) = sample();
        // Mostly small values, so that valid ones come up too.
        let pick = |i: usize| if small[i] & 3 == 0 { values[i] } else { values[i] & 0x602ff & !((small[i] as u64) << 2) };
        let regs = registers(pick(0) | 1, pick(1) & 0x1d900, pick(2) & 0x40004, pick(3) & 0x40000);
        let regs = match which { 0 => regs, 1 => registers(pick(0), pick(1), pick(2), pick(3)), _ => registers(0x602e7, 0, pick(2) & 0x40000, 0) };
        let section = stream::HEADER_LEN;
        let mut v = bytes.clone();
        for (i, r) in Xreg::ALL.iter().enumerate() {
            put_u64(&mut v, section + 16 + 8 * i, regs.get(*r).bits());
        }
        match (decode(&reseal(v)), regs.check_state(vcpus[0].state.xstate_bv())) {
            (Ok((_, back)), Ok(())) => prop_assert_eq!(back[0].registers, Some(regs)),
            (Err(StreamError::Registers { offset, source }), Err(e)) => {
                prop_assert_eq!(source, e);
                prop_assert_eq!(offset, section + 16 + 8 * Xreg::ALL.iter().position(|&r| r == e.register()).unwrap());
            }
            (got, want) => prop_assert!(false, "decoded {:?}, rules say {:?}", got.map(|(_, v)| v[0].registers), want),
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096), magic in any::<bool>(), version in 1u16..=2) {
        let mut bytes = bytes;
        if magic && bytes.len() >= 10 {
            bytes[..8].copy_from_slice(&stream::MAGIC);
            bytes[8..10].copy_from_slice(&version.to_le_bytes());
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
    for (version, (bytes, vcpus)) in [(2, sample()), (1, sample_v1())] {
        let mut refused = 0;
        for at in 0..bytes.len() {
            for flip in [0x01u8, 0x80, 0xFF] {
                let mut bad = bytes.clone();
                bad[at] ^= flip;
                match decode(&bad) {
                    Err(_) => refused += 1,
                    Ok((_, got)) => {
                        assert_eq!(
                            got, vcpus,
                            "v{version}: byte {at} ^ {flip:#x} changed the state"
                        )
                    }
                }
            }
        }
        eprintln!(
            "version {version}: {refused} of {} single-byte corruptions refused",
            3 * bytes.len()
        );
    }
}

#[test]
fn every_truncation_is_refused() {
    for (bytes, _) in [sample(), sample_v1()] {
        for len in 0..bytes.len() {
            assert!(
                decode(&bytes[..len]).is_err(),
                "truncated to {len} bytes was accepted"
            );
        }
    }
}

#[test]
fn structural_faults_are_typed_with_their_offsets() {
    let (bytes, _) = sample();
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    // First record of vCPU 0 starts after the header and the vCPU header.
    let rec = stream::HEADER_LEN + stream::VCPU_HEADER_LEN;
    assert_eq!(bytes[rec], 0, "x87 first");

    for version in [0u16, 3, 0xFFFF] {
        let mut v = bytes.clone();
        v[8..10].copy_from_slice(&version.to_le_bytes());
        assert_eq!(
            decode(&v),
            Err(StreamError::UnknownVersion { offset: 8, version })
        );
    }

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

    // Non-zero flags.
    let mut v = bytes.clone();
    v[10] = 1;
    assert_eq!(
        decode(&reseal(v)),
        Err(StreamError::Reserved { offset: 10 })
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
    assert_eq!(
        decode(&reseal(v)),
        Err(StreamError::XstateBv {
            offset: stream::HEADER_LEN + 8,
            xstate_bv: Xfeatures::from_bits(0x600E3),
            records: Xfeatures::from_bits(0x600E7),
        })
    );

    // A vCPU index out of order.
    let mut v = bytes.clone();
    v[stream::HEADER_LEN] = 5;
    assert_eq!(
        decode(&reseal(v)),
        Err(StreamError::VcpuIndex {
            offset: stream::HEADER_LEN,
            expected: 0,
            found: 5,
        })
    );

    // Reserved bytes.
    let mut v = bytes.clone();
    v[rec + 2] = 1;
    assert_eq!(
        decode(&reseal(v)),
        Err(StreamError::Reserved { offset: rec + 1 })
    );

    // More vCPUs announced than present, and more than a stream may hold.
    let mut v = bytes.clone();
    v[12] = 3;
    assert!(matches!(
        decode(&reseal(v)),
        Err(StreamError::Truncated { .. })
    ));
    let mut v = bytes.clone();
    v[12..16].copy_from_slice(&4097u32.to_le_bytes());
    assert_eq!(decode(&reseal(v)), Err(StreamError::TooManyVcpus(4097)));

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
fn impossible_registers_are_refused_at_their_field() {
    let (bytes, vcpus) = sample();
    // The second section starts after the first one's records.
    let first = stream::HEADER_LEN;
    let live0: usize = vcpus[0]
        .state
        .xstate_bv()
        .iter()
        .map(|c| 8 + stream::record_size(c).unwrap())
        .sum();
    let second = first + stream::VCPU_HEADER_LEN + live0;
    assert_eq!(bytes[second..second + 4], 1u32.to_le_bytes(), "vCPU 1");
    assert_eq!(
        bytes[second + 32..second + 40],
        0x40000u64.to_le_bytes(),
        "its IA32_XFD"
    );
    let at = |section: usize, reg: Xreg| {
        section + 16 + 8 * Xreg::ALL.iter().position(|&r| r == reg).unwrap()
    };
    let cases: [(usize, Xreg, u64); 7] = [
        (first, Xreg::Xcr0, 0x5),      // AVX without SSE
        (first, Xreg::Xcr0, 0x602e6),  // no x87
        (second, Xreg::Xcr0, 0x802ff), // MPX with APX
        (first, Xreg::Xss, 0x200),     // PKRU is a user component
        (second, Xreg::Xfd, 0x40004),  // AVX cannot be disabled
        (second, Xreg::XfdErr, 0x8000_0000_0000_0000),
        (first, Xreg::Xfd, 0x40000), // tile data live on vCPU 0
    ];
    for (section, reg, value) in cases {
        let mut v = bytes.clone();
        put_u64(&mut v, at(section, reg), value);
        match decode(&reseal(v)) {
            Err(StreamError::Registers { offset, source }) => {
                assert_eq!(
                    (offset, source.register()),
                    (at(section, reg), reg),
                    "{source}"
                );
                eprintln!("refused at {offset}: {source}");
            }
            other => panic!("{reg} {value:#x}: {other:?}"),
        }
    }
    // A component in both XCR0 and IA32_XSS: blamed on IA32_XSS.
    let mut v = bytes.clone();
    put_u64(&mut v, at(second, Xreg::Xcr0), 0x1_0000_0000_0003);
    put_u64(&mut v, at(second, Xreg::Xss), 0x1_0000_0000_0000);
    assert_eq!(
        decode(&reseal(v)),
        Err(StreamError::Registers {
            offset: at(second, Xreg::Xss),
            source: XregsError::Both {
                both: Xfeatures::from_bits(0x1_0000_0000_0000)
            }
        })
    );
}

#[test]
fn the_encoder_writes_only_what_the_decoder_takes() {
    let spr = catalog::get("intel-sapphire-rapids").unwrap();
    let tiles = state(spr, Xfeatures::from_bits(0x60003), 3);
    // Tile data live while IA32_XFD disables it.
    let disabled = Vcpu::new(tiles.clone(), registers(0x602e7, 0, 0x40000, 0));
    assert_eq!(
        encode(
            &[
                Vcpu::new(RegisterFile::new(), registers(0x602e7, 0, 0, 0)),
                disabled
            ],
            &Source::of(spr)
        ),
        Err(StreamError::VcpuRegisters {
            vcpu: 1,
            source: XregsError::XfdDisabledLive {
                xfd: ComponentId::TILEDATA.bit(),
                live: ComponentId::TILEDATA.bit()
            }
        })
    );
    let bad_xcr0 = Vcpu::new(tiles.clone(), registers(0x20003, 0, 0, 0));
    assert!(matches!(
        encode(&[bad_xcr0], &Source::of(spr)),
        Err(StreamError::VcpuRegisters {
            vcpu: 0,
            source: XregsError::Xcr0 { .. }
        })
    ));
    // A vCPU from a version 1 stream has no registers to write.
    let (v1, _) = sample_v1();
    let (_, from_v1) = decode(&v1).unwrap();
    assert_eq!(
        encode(&from_v1, &Source::of(spr)),
        Err(StreamError::NoRegisters { vcpu: 0 })
    );
    // Given registers, it moves to version 2.
    let upgraded: Vec<Vcpu> = from_v1
        .into_iter()
        .map(|v| Vcpu::new(v.state, registers(0x602e7, 0, 0, 0)))
        .collect();
    let bytes = encode(&upgraded, &Source::of(spr)).unwrap();
    assert_eq!(decode(&bytes).unwrap().1, upgraded);
    // More vCPUs than a stream may hold.
    let many = vec![RegisterFile::new(); 4097];
    assert_eq!(
        encode_v1(&many, &Source::of(spr)),
        Err(StreamError::TooManyVcpus(4097))
    );
    let many: Vec<Vcpu> = many
        .into_iter()
        .map(|s| Vcpu::new(s, registers(1, 0, 0, 0)))
        .collect();
    assert_eq!(
        encode(&many, &Source::of(spr)),
        Err(StreamError::TooManyVcpus(4097))
    );
    assert!(encode(&many[..4096], &Source::of(spr)).is_ok());
}

#[test]
fn live_state_outside_xcr0_travels() {
    // A vCPU after reset has XCR0 = 1 and uses SSE through FXSAVE; PKRU is
    // reachable with CR4.PKE alone. Such state is the vCPU's, and moves.
    let zen4 = catalog::get("amd-zen4").unwrap();
    let mut s = RegisterFile::new();
    s.set_xmm(7, 0x77).unwrap();
    s.set_pkru(0x5555_5554).unwrap();
    let vcpus = [Vcpu::new(s, registers(0x1, 0, 0, 0))];
    let bytes = encode(&vcpus, &Source::of(zen4)).unwrap();
    assert_eq!(decode(&bytes).unwrap().1, vcpus);
}

/// A version 1 stream written by the version 1 encoder before version 2
/// existed: two vCPUs from amd-zen4, the first with xmm2 and PKRU live.
const GOLDEN_V1: &str = "5853544154454d530100000002000000e7020000000000009e33467eccaf06c7000000000200000002020000000000000100000004010000801f000000000000000000000000000000000000000000000000000000000000000000008877665544332211efcdab896745230100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000090000000800000054555555000000000100000000000000000000000000000075a40371";

#[test]
fn version_1_streams_still_decode() {
    let bytes: Vec<u8> = (0..GOLDEN_V1.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&GOLDEN_V1[i..i + 2], 16).unwrap())
        .collect();
    let zen4 = catalog::get("amd-zen4").unwrap();
    let (header, vcpus) = decode(&bytes).unwrap();
    assert_eq!(
        (
            header.version,
            header.vcpus,
            header.source_xcr0,
            header.source_fingerprint
        ),
        (1, 2, zen4.xcr0_supported(), zen4.fingerprint())
    );
    assert_eq!(vcpus[0].registers, None);
    assert_eq!(
        vcpus[0].state.xmm(2).unwrap(),
        0x0123_4567_89ab_cdef_1122_3344_5566_7788
    );
    assert_eq!(vcpus[0].state.pkru().unwrap(), 0x5555_5554);
    assert_eq!(vcpus[1].state, RegisterFile::new());
    // The version 1 writer still writes exactly those bytes.
    let states: Vec<RegisterFile> = vcpus.into_iter().map(|v| v.state).collect();
    assert_eq!(encode_v1(&states, &Source::of(zen4)).unwrap(), bytes);
}

#[test]
fn version_2_bytes_are_where_the_format_says() {
    let (bytes, vcpus) = sample();
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap());
    assert_eq!(&bytes[..8], b"XSTATEMS");
    assert_eq!(bytes[8..10], 2u16.to_le_bytes());
    let s = stream::HEADER_LEN;
    assert_eq!(u64_at(s + 8), vcpus[0].state.xstate_bv().bits());
    assert_eq!(
        [
            u64_at(s + 16),
            u64_at(s + 24),
            u64_at(s + 32),
            u64_at(s + 40)
        ],
        [0x602e7, 0, 0, 0]
    );
    assert_eq!(stream::VCPU_HEADER_LEN, 48);
    assert_eq!(stream::VCPU_HEADER_V1_LEN, 16);
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
        let vcpu = Vcpu::new(
            state(spr, Xfeatures::from_bits(pick), 9),
            XstateRegisters::with_xcr0(spr.xcr0_supported()),
        );
        let bytes = encode(&[vcpu], &Source::of(spr)).unwrap();
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
    let vcpu = Vcpu::new(regs, XstateRegisters::with_xcr0(spr.xcr0_supported()));
    let bytes = encode(&[vcpu], &Source::of(spr)).unwrap();
    let (_, back) = decode(&bytes).unwrap();
    assert_eq!(
        back[0].state.component(ComponentId::PKRU),
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
