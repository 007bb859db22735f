use std::hint::black_box;
use xstate::layout::catalog;
use xstate::prelude::*;
use xstate::{ComponentId, RegisterFile, XcompBv, XsaveView};
fn main() {
    let layout = catalog::get("intel-sapphire-rapids").unwrap();
    let mut regs = RegisterFile::new();
    regs.set_xmm(3, 5).unwrap();
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
    let mut buf = vec![0u8; 12288];
    regs.encode_into(&mut buf, layout, XcompBv::STANDARD)
        .unwrap();
    let mut out = RegisterFile::new();
    let mode = std::env::args().nth(1).unwrap_or_default();
    for _ in 0..3_000_000 {
        if mode == "enc" {
            regs.encode_into(black_box(&mut buf), layout, XcompBv::STANDARD)
                .unwrap();
        } else {
            let v = XsaveView::new(black_box(&buf[..]), layout).unwrap();
            out.read_from(&v).unwrap();
            black_box(&out);
        }
    }
}
