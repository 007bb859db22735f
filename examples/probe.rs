use std::hint::black_box;
use xstate::layout::catalog;
use xstate::migrate::{relayout_into, Guest, RelayoutOptions};
use xstate::prelude::*;
use xstate::{ComponentId, Format, RegisterFile, XcompBv, XsaveView};
fn live(layout: &xstate::Layout) -> RegisterFile {
    let mut regs = RegisterFile::new();
    regs.set_xmm(3, 5).unwrap();
    regs.set_fcw(0x37f).unwrap();
    for c in layout.xcr0_supported().extended() {
        let size = layout.geometry(c).unwrap().size as usize;
        let mut bytes: Vec<u8> = (0..size).map(|b| (b * 7) as u8).collect();
        if c == ComponentId::TILECFG {
            bytes.fill(0);
            bytes[0] = 1;
            for t in 0..8 {
                bytes[16 + 2 * t] = 64;
                bytes[48 + t] = 16;
            }
        }
        if c == ComponentId::PKRU {
            bytes[4..].fill(0);
        }
        regs.set_component(c, &bytes).unwrap();
    }
    regs
}
fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let name = std::env::args()
        .nth(2)
        .unwrap_or("intel-sapphire-rapids".into());
    let layout = catalog::get(&name).unwrap();
    let regs = live(layout);
    let mut buf = vec![0u8; (layout.standard_size() as usize).max(4096)];
    regs.encode_into(&mut buf, layout, XcompBv::STANDARD)
        .unwrap();
    let mut out = RegisterFile::new();
    let zen4 = catalog::get("amd-zen4").unwrap();
    let spr = catalog::get("intel-sapphire-rapids").unwrap();
    let mut zs = live(zen4);
    for c in zs.xstate_bv() - spr.supported() {
        zs.set_init(c);
    }
    let za = zs.encode(zen4, Format::Standard).unwrap();
    let mut zdst = vec![0u8; spr.standard_size() as usize];
    let g = Guest::default();
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000_000);
    for _ in 0..n {
        match mode.as_str() {
            "enc" => regs
                .encode_into(black_box(&mut buf), layout, XcompBv::STANDARD)
                .unwrap(),
            "rel" => {
                black_box(
                    relayout_into(
                        black_box(&za),
                        zen4,
                        spr,
                        RelayoutOptions::default(),
                        &g,
                        &mut zdst,
                    )
                    .unwrap(),
                );
            }
            _ => {
                let v = XsaveView::new(black_box(&buf[..]), layout).unwrap();
                out.read_from(&v).unwrap();
                black_box(&out);
            }
        }
    }
}
