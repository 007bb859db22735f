//! A register file through the binary serde formats the VMMs snapshot with:
//! bitcode (Firecracker) and CBOR (crosvm, through ciborium). The state
//! has AVX-512, AMX tiles and supervisor state (CET_U, PASID) live; it
//! round-trips unchanged, and truncated or corrupted input is an error,
//! never a panic.
#![cfg(feature = "serde")]

use xstate::area::TileConfig;
use xstate::prelude::*;
use xstate::{ComponentId, RegisterFile, Xfeatures};

fn state() -> RegisterFile {
    let mut regs = RegisterFile::new();
    regs.set_mxcsr(0x1F80).unwrap();
    for i in 0..32 {
        let v = i as u128 + 1;
        regs.set_zmm(i, [v, v << 8, v << 16, v << 24]).unwrap();
    }
    for i in 0..8 {
        regs.set_k(i, 0x0101_0101 << i).unwrap();
    }
    let cfg = TileConfig::palette1([16; 8], [64; 8]);
    regs.set_tilecfg(zerocopy::IntoBytes::as_bytes(&cfg).try_into().unwrap())
        .unwrap();
    for i in 0..8 {
        regs.set_tmm(i, &[i as u8 * 17 + 1; 1024]).unwrap();
    }
    // Supervisor state: IA32_U_CET with SH_STK_EN, a canonical, 8-byte
    // aligned IA32_PL3_SSP; IA32_PASID with a valid PASID.
    let mut cet = [0u8; 16];
    cet[..8].copy_from_slice(&1u64.to_le_bytes());
    cet[8..].copy_from_slice(&0x7fff_ffff_e000u64.to_le_bytes());
    regs.set_component(ComponentId::CET_U, &cet).unwrap();
    regs.set_component(ComponentId::PASID, &(0x8000_0042u64).to_le_bytes())
        .unwrap();
    regs
}

fn live() -> Xfeatures {
    [
        ComponentId::SSE,
        ComponentId::AVX,
        ComponentId::OPMASK,
        ComponentId::ZMM_HI256,
        ComponentId::HI16_ZMM,
        ComponentId::PASID,
        ComponentId::CET_U,
        ComponentId::TILECFG,
        ComponentId::TILEDATA,
    ]
    .into_iter()
    .fold(Xfeatures::EMPTY, Xfeatures::with)
}

fn cbor(regs: &RegisterFile) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(regs, &mut out).unwrap();
    out
}

fn from_cbor(bytes: &[u8]) -> Result<RegisterFile, ciborium::de::Error<std::io::Error>> {
    ciborium::from_reader(bytes)
}

#[test]
fn bitcode_round_trip() {
    let regs = state();
    assert_eq!(regs.xstate_bv(), live());
    let bytes = bitcode::serialize(&regs).unwrap();
    assert_eq!(bitcode::deserialize::<RegisterFile>(&bytes).unwrap(), regs);
}

#[test]
fn cbor_round_trip() {
    let regs = state();
    assert_eq!(regs.xstate_bv(), live());
    assert_eq!(from_cbor(&cbor(&regs)).unwrap(), regs);
}

#[test]
fn truncated_cbor_is_an_error() {
    let bytes = cbor(&state());
    // Every prefix, densely at the start and the end, sparsely in between.
    let cuts = (0..bytes.len()).filter(|&n| n < 256 || n + 256 > bytes.len() || n % 97 == 0);
    for n in cuts {
        assert!(
            from_cbor(&bytes[..n]).is_err(),
            "{n} of {} bytes decoded",
            bytes.len()
        );
    }
}

#[test]
fn corrupted_cbor_is_an_error_or_a_valid_state() {
    let regs = state();
    let bytes = cbor(&regs);
    // Each byte of the framing (the first 256 bytes: map, keys, lengths,
    // XSTATE_BV) flipped in turn: the result is an error, or a state that
    // decodes to a register file xstate accepts (a flipped payload byte).
    for i in 0..256.min(bytes.len()) {
        for flip in [0x01u8, 0x20, 0x80, 0xff] {
            let mut bad = bytes.clone();
            bad[i] ^= flip;
            if let Ok(back) = from_cbor(&bad) {
                // Whatever decodes went through the register file's checks:
                // it encodes back to CBOR that decodes to itself.
                assert_eq!(
                    from_cbor(&cbor(&back)).unwrap(),
                    back,
                    "byte {i} ^ {flip:#x}"
                );
            }
        }
    }
}

#[test]
fn cbor_with_wrong_contents_is_refused() {
    use ciborium::value::Value;
    let mut regs = RegisterFile::new();
    regs.set_xmm(0, 1).unwrap();
    let good = |xstate_bv: u64, components: Vec<(Value, Value)>| {
        Value::Map(vec![
            (
                Value::Text("xstate_bv".into()),
                Value::Integer(xstate_bv.into()),
            ),
            (Value::Text("components".into()), Value::Map(components)),
        ])
    };
    let encode = |v: &Value| {
        let mut out = Vec::new();
        ciborium::into_writer(v, &mut out).unwrap();
        out
    };
    let sse = (Value::Integer(1.into()), Value::Bytes(vec![0; 512]));
    assert!(from_cbor(&encode(&good(2, vec![sse.clone()]))).is_ok());
    // XSTATE_BV naming a component the map does not carry.
    assert!(from_cbor(&encode(&good(6, vec![sse.clone()]))).is_err());
    // A component of the wrong size (AVX is 256 bytes).
    let short_avx = (Value::Integer(2.into()), Value::Bytes(vec![0; 255]));
    assert!(from_cbor(&encode(&good(6, vec![sse.clone(), short_avx]))).is_err());
    // A component number past 63.
    let far = (Value::Integer(64.into()), Value::Bytes(vec![0; 8]));
    assert!(from_cbor(&encode(&good(2, vec![sse, far]))).is_err());
    // Not a map at all.
    assert!(from_cbor(&encode(&Value::Array(vec![]))).is_err());
}

#[test]
fn truncated_bitcode_is_an_error() {
    let bytes = bitcode::serialize(&state()).unwrap();
    let cuts = (0..bytes.len()).filter(|&n| n < 256 || n + 256 > bytes.len() || n % 97 == 0);
    for n in cuts {
        assert!(
            bitcode::deserialize::<RegisterFile>(&bytes[..n]).is_err(),
            "{n} of {} bytes decoded",
            bytes.len()
        );
    }
}

#[test]
fn cbor_claiming_a_huge_component_is_refused_unallocated() {
    // {"xstate_bv": 2, "components": {1: <byte string of 2^62 bytes>}},
    // with the string's bytes missing: an error, no 4 EiB allocation.
    let mut bytes = vec![0xa2];
    bytes.push(0x69);
    bytes.extend_from_slice(b"xstate_bv");
    bytes.push(0x02);
    bytes.push(0x6a);
    bytes.extend_from_slice(b"components");
    bytes.extend_from_slice(&[0xa1, 0x01, 0x5b]);
    bytes.extend_from_slice(&(1u64 << 62).to_be_bytes());
    bytes.extend_from_slice(&[0; 16]);
    assert!(from_cbor(&bytes).is_err());
}
