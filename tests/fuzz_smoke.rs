//! The fuzz targets' bodies on stable, over a deterministic corpus: random
//! bytes, and valid streams and areas with random mutations.

use xstate::fuzzing::{cpuid_dump, layout_file, stream_decode, view_open};
use xstate::layout::catalog;
use xstate::migrate::stream::{crc32, encode, encode_v1, is_stream, Source, Vcpu};
use xstate::prelude::*;
use xstate::xregs::XstateRegisters;
use xstate::{ComponentId, Format, RegisterFile};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const INPUTS: usize = 50_000;

/// `seed` mutated: a few random bytes flipped, sometimes truncated or extended.
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.next() % 4 {
        if v.is_empty() {
            break;
        }
        let at = (rng.next() as usize) % v.len();
        v[at] ^= rng.next() as u8 | 1;
    }
    match rng.next() % 8 {
        0 => v.truncate((rng.next() as usize) % (v.len() + 1)),
        1 => v.extend((0..rng.next() % 64).map(|_| rng.next() as u8)),
        _ => {}
    }
    v
}

fn seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for layout in catalog::all() {
        let mut regs = RegisterFile::new();
        regs.set_xmm(3, 0x1234).unwrap();
        regs.set_fcw(0x27F).unwrap();
        if layout.has(ComponentId::HI16_ZMM) {
            regs.set_zmm(17, [1, 2, 3, 4]).unwrap();
        }
        // Version 2, the second vCPU with CET in IA32_XSS and tile data
        // disabled in IA32_XFD where the layout has them; and version 1.
        let tiles = layout.xcr0_supported() & ComponentId::TILEDATA.bit();
        let registers = XstateRegisters::with_xcr0(layout.xcr0_supported());
        let second = XstateRegisters {
            xss: layout.xss_supported() & (ComponentId::CET_U.bit() | ComponentId::CET_S.bit()),
            xfd: tiles,
            xfd_err: tiles,
            ..registers
        };
        out.push(
            encode(
                &[
                    Vcpu::new(regs.clone(), registers),
                    Vcpu::new(RegisterFile::new(), second),
                ],
                &Source::of(layout),
            )
            .unwrap(),
        );
        out.push(encode_v1(&[regs.clone(), RegisterFile::new()], &Source::of(layout)).unwrap());
        for format in [Format::Standard, Format::Compacted] {
            out.push(regs.encode(layout, format).unwrap());
        }
    }
    out
}

#[test]
fn fuzz_target_bodies_never_panic() {
    let seeds = seeds();
    let mut rng = Rng(0x0DDB_1A5E_5BAD_5EED);
    for n in 0..INPUTS {
        let input = if n % 4 == 0 {
            (0..rng.next() % 3000).map(|_| rng.next() as u8).collect()
        } else {
            let mut v = mutate(&mut rng, &seeds[n % seeds.len()]);
            // Half the mutated streams get a correct checksum again, so the
            // structural checks behind it see the mutation.
            if is_stream(&v) && v.len() >= 4 && rng.next() % 2 == 0 {
                let body = v.len() - 4;
                let crc = crc32(&v[..body]);
                v[body..].copy_from_slice(&crc.to_le_bytes());
            }
            v
        };
        stream_decode(&input);
        // The view target takes a layout-picking byte first.
        let mut with_pick = vec![rng.next() as u8];
        with_pick.extend_from_slice(&input);
        view_open(&with_pick);
    }
    eprintln!("{INPUTS} inputs through both fuzz target bodies");
}

/// Text seeds: every layout file, the fixture CPUIDs and profiles, and a
/// catalog layout as TOML.
fn text_seeds() -> Vec<Vec<u8>> {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut out = Vec::new();
    for dir in ["layouts", "tests/fixtures"] {
        for entry in std::fs::read_dir(format!("{root}/{dir}")).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            if bytes.len() < 64 * 1024 {
                out.push(bytes);
            }
        }
    }
    out.push(
        catalog::get("intel-sapphire-rapids")
            .unwrap()
            .to_toml()
            .into_bytes(),
    );
    out
}

#[test]
fn text_source_bodies_never_panic() {
    let seeds = text_seeds();
    let mut rng = Rng(0x007E_475E_ED0F_D0D0);
    const TEXT_INPUTS: usize = 5_000;
    for n in 0..TEXT_INPUTS {
        let input = mutate(&mut rng, &seeds[n % seeds.len()]);
        cpuid_dump(&input);
        layout_file(&input);
    }
    for seed in &seeds {
        cpuid_dump(seed);
        layout_file(seed);
    }
    eprintln!("{TEXT_INPUTS} mutated texts through the CPUID dump and layout file bodies");
}
