//! View and register-file costs on KVM-sized buffers, with memcpy of the
//! same bytes as the in-run baseline.
//!
//! Run: `cargo bench --bench view`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use xstate::layout::catalog;
use xstate::prelude::*;
use xstate::{ComponentId, Layout, RegisterFile, XcompBv, XsaveView};

/// A KVM-sized standard buffer (4096, or the layout's size when larger)
/// with every user component live and filled with a pattern.
fn live_buffer(layout: &Layout) -> Vec<u8> {
    let mut regs = RegisterFile::new();
    for i in 0..16 {
        regs.set_xmm(
            i,
            0x1111_1111_1111_1111_2222_2222_2222_2222u128.wrapping_mul(i as u128 + 1),
        )
        .unwrap();
    }
    regs.set_mxcsr(0x1f80).unwrap();
    regs.set_fcw(0x037f).unwrap();
    for c in layout.xcr0_supported().extended() {
        if regs.component(c).is_none() {
            let size = layout.geometry(c).unwrap().size as usize;
            let bytes: Vec<u8> = (0..size)
                .map(|b| (b * 7 + c.index() as usize) as u8)
                .collect();
            regs.set_component(c, &bytes).unwrap();
        }
    }
    let size = (layout.standard_size() as usize).max(4096);
    let mut buf = vec![0u8; size];
    regs.encode_into(&mut buf, layout, XcompBv::STANDARD)
        .unwrap();
    buf
}

fn bench_layout(c: &mut Criterion, name: &str) {
    let layout = catalog::get(name).unwrap();
    let buf = live_buffer(layout);
    let mut g = c.benchmark_group(name);

    g.bench_function("memcpy (baseline)", |b| {
        let mut dst = vec![0u8; buf.len()];
        b.iter(|| {
            dst.copy_from_slice(black_box(&buf));
            black_box(&dst);
        })
    });
    g.bench_function("open view", |b| {
        b.iter(|| black_box(XsaveView::new(black_box(&buf[..]), layout).unwrap()))
    });
    // The hand-written ideal: XMM5 straight from its legacy-region bytes,
    // with the one check a correct accessor needs (SSE live in XSTATE_BV).
    g.bench_function("read xmm, hand-written (baseline)", |b| {
        b.iter(|| {
            let buf = black_box(&buf[..]);
            let i = black_box(5usize);
            let live = u64::from_le_bytes(buf[512..520].try_into().unwrap()) & 2 != 0;
            black_box(if live {
                u128::from_le_bytes(buf[160 + 16 * i..176 + 16 * i].try_into().unwrap())
            } else {
                0
            })
        })
    });
    let view = XsaveView::new(&buf[..], layout).unwrap();
    g.bench_function("read xmm", |b| {
        b.iter(|| black_box(view.xmm(black_box(5)).unwrap()))
    });
    g.bench_function("read ymm", |b| {
        b.iter(|| black_box(view.ymm(black_box(5)).unwrap()))
    });
    if layout.has(ComponentId::ZMM_HI256) {
        g.bench_function("read zmm", |b| {
            b.iter(|| black_box(view.zmm(black_box(5)).unwrap()))
        });
    }
    if layout.has(ComponentId::APX) {
        g.bench_function("read r16", |b| {
            b.iter(|| black_box(view.r(black_box(16)).unwrap()))
        });
    }
    g.bench_function("write xmm", |b| {
        let mut wbuf = buf.clone();
        let mut view = XsaveView::new(&mut wbuf[..], layout).unwrap();
        let mut v = 0u128;
        b.iter(|| {
            v = v.wrapping_add(1);
            view.set_xmm(black_box(7), v).unwrap();
        })
    });
    g.bench_function("decode to RegisterFile", |b| {
        let mut regs = RegisterFile::new();
        b.iter(|| {
            let view = XsaveView::new(black_box(&buf[..]), layout).unwrap();
            regs.read_from(&view).unwrap();
            black_box(&regs);
        })
    });
    g.bench_function("encode from RegisterFile", |b| {
        let regs = RegisterFile::decode(&buf, layout).unwrap();
        let mut out = vec![0u8; buf.len()];
        b.iter(|| {
            regs.encode_into(black_box(&mut out), layout, XcompBv::STANDARD)
                .unwrap();
            black_box(&out);
        })
    });
    g.finish();
}

fn views(c: &mut Criterion) {
    for name in ["amd-zen4", "intel-sapphire-rapids", "intel-diamond-rapids"] {
        bench_layout(c, name);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(300))
        .measurement_time(std::time::Duration::from_secs(1));
    targets = views
}
criterion_main!(benches);
