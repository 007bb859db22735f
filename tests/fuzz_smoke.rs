//! The fuzz targets' bodies (`xstate::fuzzing::TARGETS`) on stable: every
//! file of the committed, minimised AFL++ corpus (`fuzz/corpus/<target>/`)
//! replayed, and random mutations of it and of generated valid streams and
//! areas.
//!
//! `XSTATE_FUZZ_TARGETS` (names, separated by spaces or commas) picks the
//! targets, all by default; `XSTATE_FUZZ_SECONDS` runs the mutations for
//! that many seconds per target instead of a fixed count
//! (`fuzz/run-short.sh` sets both where cargo-afl is missing).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use xstate::fuzzing::{target, Target, TARGETS};
use xstate::layout::catalog;
use xstate::migrate::stream::{encode, encode_v1, Source, Vcpu};
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

/// Mutated inputs per target without `XSTATE_FUZZ_SECONDS`.
const INPUTS_PER_TARGET: usize = 10_000;

fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus")
}

/// The targets `XSTATE_FUZZ_TARGETS` names, or all of them.
fn selected() -> Vec<&'static Target> {
    match std::env::var("XSTATE_FUZZ_TARGETS") {
        Ok(names) if !names.trim().is_empty() => names
            .split([' ', ','])
            .filter(|n| !n.is_empty())
            .map(|n| target(n).unwrap_or_else(|| panic!("{n} is no fuzz target")))
            .collect(),
        _ => TARGETS.iter().collect(),
    }
}

/// The committed corpus of `t`: (file name, bytes), sorted by name.
fn corpus(t: &Target) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_root().join(t.name);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; every fuzz target has a committed corpus (fuzz/README.md)",
            dir.display()
        )
    });
    let mut files: Vec<_> = entries
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// Runs `t`'s body on `input`, naming `what` when it panics.
fn run(t: &Target, what: &str, input: &[u8]) {
    let body = t.body;
    if std::panic::catch_unwind(|| body(input)).is_err() {
        panic!("fuzz target {} panicked on {what}", t.name);
    }
}

#[test]
fn committed_corpus_replays() {
    for entry in std::fs::read_dir(corpus_root()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            target(&name).is_some(),
            "fuzz/corpus/{name} belongs to no fuzz target"
        );
    }
    for t in selected() {
        let files = corpus(t);
        assert!(!files.is_empty(), "fuzz/corpus/{} is empty", t.name);
        for (name, bytes) in &files {
            run(t, &format!("fuzz/corpus/{}/{name}", t.name), bytes);
        }
        eprintln!("{}: {} corpus files replayed", t.name, files.len());
    }
}

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

/// Valid inputs built here, beyond the corpus: for every catalog layout,
/// version 2 and version 1 streams (the second vCPU with CET in IA32_XSS
/// and tile data disabled in IA32_XFD where the layout has them), and
/// standard and compacted areas behind the layout-picking byte.
fn generated(t: &Target) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (pick, layout) in catalog::all().iter().enumerate() {
        let mut regs = RegisterFile::new();
        regs.set_xmm(3, 0x1234).unwrap();
        regs.set_fcw(0x27F).unwrap();
        if layout.has(ComponentId::HI16_ZMM) {
            regs.set_zmm(17, [1, 2, 3, 4]).unwrap();
        }
        match t.name {
            "stream_decode" => {
                let tiles = layout.xcr0_supported() & ComponentId::TILEDATA.bit();
                let registers = XstateRegisters::with_xcr0(layout.xcr0_supported());
                let second = XstateRegisters {
                    xss: layout.xss_supported()
                        & (ComponentId::CET_U.bit() | ComponentId::CET_S.bit()),
                    xfd: tiles,
                    xfd_err: tiles,
                    ..registers
                };
                let vcpus = [
                    Vcpu::new(regs.clone(), registers),
                    Vcpu::new(RegisterFile::new(), second),
                ];
                out.push(encode(&vcpus, &Source::of(layout)).unwrap());
                out.push(encode_v1(&[regs, RegisterFile::new()], &Source::of(layout)).unwrap());
            }
            "view_open" => {
                for format in [Format::Standard, Format::Compacted] {
                    let mut v = vec![pick as u8];
                    v.extend(regs.encode(layout, format).unwrap());
                    out.push(v);
                }
            }
            _ => {}
        }
    }
    out
}

#[test]
fn mutated_inputs_never_panic() {
    let budget = std::env::var("XSTATE_FUZZ_SECONDS")
        .ok()
        .map(|s| Duration::from_secs(s.parse().expect("XSTATE_FUZZ_SECONDS is whole seconds")));
    let mut rng = Rng(0x0DDB_1A5E_5BAD_5EED);
    for t in selected() {
        let mut seeds: Vec<_> = corpus(t).into_iter().map(|(_, bytes)| bytes).collect();
        seeds.extend(generated(t));
        let start = Instant::now();
        let mut n = 0;
        while budget.map_or(n < INPUTS_PER_TARGET, |b| start.elapsed() < b) {
            let input: Vec<u8> = if n % 4 == 0 {
                (0..rng.next() % 3000).map(|_| rng.next() as u8).collect()
            } else {
                mutate(&mut rng, &seeds[n % seeds.len()])
            };
            run(t, &format!("mutated input {input:02x?}"), &input);
            n += 1;
        }
        eprintln!("{}: {n} mutated inputs", t.name);
    }
}
