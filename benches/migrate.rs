//! Migration costs: stream encode and decode of typical states against
//! memcpy of their live bytes, relayout Zen 4 -> Sapphire Rapids, and the
//! peers' approach of serializing the raw KVM buffer (bincode, serde_json).
//!
//! Run: `cargo bench --bench migrate`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use xstate::layout::catalog;
use xstate::migrate::stream::{self, Source, Vcpu};
use xstate::migrate::{relayout, RelayoutOptions};
use xstate::prelude::*;
use xstate::xregs::XstateRegisters;
use xstate::{ComponentId, Format, Layout, RegisterFile, Xfeatures};

fn state(layout: &Layout, mask: u64) -> RegisterFile {
    let mut regs = RegisterFile::new();
    for i in layout.xcr0_supported() & Xfeatures::from_bits(mask) {
        let size = if i.is_legacy() {
            512
        } else {
            layout.geometry(i).unwrap().size as usize
        };
        let bytes: Vec<u8> = (0..size)
            .map(|b| (b as u8).wrapping_mul(29) ^ i.index())
            .collect();
        regs.set_component(i, &bytes).unwrap();
    }
    // A state a CPU can hold: MXCSR within every mask (the pattern above
    // sets reserved bits). A live TILECFG gets a configuration LDTILECFG
    // takes.
    if regs.is_live(ComponentId::SSE) {
        regs.set_mxcsr(0x1F80).unwrap();
    }
    if regs.is_live(ComponentId::TILECFG) {
        let cfg = xstate::area::TileConfig::palette1([16; 8], [64; 8]);
        regs.set_component(ComponentId::TILECFG, zerocopy::IntoBytes::as_bytes(&cfg))
            .unwrap();
    }
    regs
}

fn live_bytes(regs: &RegisterFile) -> usize {
    regs.xstate_bv()
        .iter()
        .map(|i| stream::record_size(i).unwrap_or_else(|| regs.component(i).map_or(0, <[u8]>::len)))
        .sum()
}

fn migrate(c: &mut Criterion) {
    let spr = catalog::get("intel-sapphire-rapids").unwrap();
    let zen4 = catalog::get("amd-zen4").unwrap();
    for (name, mask) in [
        ("SSE only", 0x3u64),
        ("AVX", 0x7),
        ("AVX-512", 0xE7),
        ("AMX tiles live", 0x600E7),
    ] {
        let regs = state(spr, mask);
        let live = live_bytes(&regs);
        let source = Source::of(spr);
        // Version 2: the vCPU's XCR0, IA32_XSS, IA32_XFD and IA32_XFD_ERR
        // travel beside the records (32 bytes more than version 1).
        let vcpu = Vcpu::new(regs, XstateRegisters::with_xcr0(spr.xcr0_supported()));
        let encoded = stream::encode(std::slice::from_ref(&vcpu), &source).unwrap();
        eprintln!(
            "{name}: stream {} bytes for {live} live bytes (raw KVM buffer 4096 / XSAVE2 11008)",
            encoded.len()
        );
        let mut g = c.benchmark_group(format!("stream {name}"));
        g.throughput(Throughput::Bytes(live as u64));
        g.bench_function("memcpy of the live bytes (baseline)", |b| {
            let src = vec![7u8; live];
            let mut dst = vec![0u8; live];
            b.iter(|| {
                dst.copy_from_slice(black_box(&src));
                black_box(&dst);
            })
        });
        g.bench_function("encode", |b| {
            b.iter(|| {
                black_box(
                    stream::encode(std::slice::from_ref(black_box(&vcpu)), &Source::of(spr))
                        .unwrap(),
                )
            })
        });
        g.bench_function("decode", |b| {
            b.iter(|| black_box(stream::decode(black_box(&encoded)).unwrap()))
        });
        g.finish();
    }

    let regs = state(zen4, 0x2E7);
    let area = regs.encode(zen4, Format::Standard).unwrap();
    let mut g = c.benchmark_group("relayout");
    g.bench_function("Zen 4 -> Sapphire Rapids, standard", |b| {
        b.iter(|| {
            black_box(relayout(black_box(&area), zen4, spr, RelayoutOptions::default()).unwrap())
        })
    });
    g.finish();

    let mut g = c.benchmark_group("raw buffer, as peers do");
    for size in [4096usize, 11008] {
        let raw: Vec<u8> = (0..size).map(|b| b as u8).collect();
        g.bench_function(format!("memcpy {size} (baseline)"), |b| {
            let mut dst = vec![0u8; size];
            b.iter(|| {
                dst.copy_from_slice(black_box(&raw));
                black_box(&dst);
            })
        });
        g.bench_function(format!("bincode {size}"), |b| {
            b.iter(|| black_box(bincode::serialize(black_box(&raw)).unwrap()))
        });
        g.bench_function(format!("serde_json {size}"), |b| {
            b.iter(|| black_box(serde_json::to_vec(black_box(&raw)).unwrap()))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(300))
        .measurement_time(std::time::Duration::from_secs(1));
    targets = migrate
}
criterion_main!(benches);
