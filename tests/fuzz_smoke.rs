//! The fuzz targets' bodies on stable, over a deterministic corpus: random
//! bytes, and valid streams and areas with random mutations.

use xstate::fuzzing::{stream_decode, view_open};
use xstate::layout::catalog;
use xstate::migrate::stream::{encode, Source};
use xstate::prelude::*;
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
        out.push(encode(
            &[regs.clone(), RegisterFile::new()],
            &Source::of(layout),
        ));
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
            mutate(&mut rng, &seeds[n % seeds.len()])
        };
        stream_decode(&input);
        // The view target takes a layout-picking byte first.
        let mut with_pick = vec![rng.next() as u8];
        with_pick.extend_from_slice(&input);
        view_open(&with_pick);
    }
    eprintln!("{INPUTS} inputs through both fuzz target bodies");
}
