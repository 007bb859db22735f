//! The floor bench: each library path beside its floor (a hand-written
//! ideal accessor, the same per-component copies done bare, memcpy of the
//! same bytes), interleaved in the same process and round, so that a
//! shared, noisy machine slows both alike. Each measure prints the median
//! of its per-round ratios (library / floor) and the goal it is held to.
//!
//! Run: `cargo bench --bench floor` (21 rounds; `-- --rounds N` for
//! another number). It prints the host's CPU and load average first; the
//! criterion benches keep the per-operation tables. For "per vCPU, 256 /
//! 8" the time is the whole 256-vCPU decode.

use std::hint::black_box;
use std::time::Instant;

use xstate::layout::catalog;
use xstate::migrate::stream::{self, Source, Vcpu};
use xstate::migrate::{relayout_into, Guest, RelayoutOptions};
use xstate::prelude::*;
use xstate::xregs::XstateRegisters;
use xstate::{ComponentId, Format, Layout, RegisterFile, XcompBv, XsaveView};

/// Nanoseconds per call of `f`, over `iters` calls.
fn time(iters: u32, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    start.elapsed().as_nanos() as f64 / f64::from(iters)
}

/// One measure: the library path against its floor, round after round.
struct Measure {
    name: String,
    goal: f64,
    ratios: Vec<f64>,
    lib_ns: Vec<f64>,
}

impl Measure {
    fn new(name: impl Into<String>, goal: f64) -> Measure {
        Measure {
            name: name.into(),
            goal,
            ratios: Vec::new(),
            lib_ns: Vec::new(),
        }
    }

    /// One round: floor, library, floor again (their mean is the floor),
    /// so drift within the round cancels.
    fn round(&mut self, iters: u32, mut floor: impl FnMut(), mut lib: impl FnMut()) {
        let a = time(iters, &mut floor);
        let l = time(iters, &mut lib);
        let b = time(iters, &mut floor);
        self.ratios.push(l / ((a + b) / 2.0));
        self.lib_ns.push(l);
    }

    fn report(&mut self) {
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let r = median(&mut self.ratios);
        let ns = median(&mut self.lib_ns);
        println!(
            "{:<58} {:>9.1} ns  {:>6.2}x  goal <= {:.2}x  {}",
            self.name,
            ns,
            r,
            self.goal,
            if r <= self.goal { "met" } else { "NOT MET" }
        );
    }
}

/// A standard-format area with every user component of `layout` live.
fn live_state(layout: &Layout) -> RegisterFile {
    let mut regs = RegisterFile::new();
    for i in 0..16 {
        regs.set_xmm(
            i,
            0x0101_0101_0101_0101_0202_0202_0202_0202 * (i as u128 + 1),
        )
        .unwrap();
    }
    regs.set_fcw(0x037f).unwrap();
    for c in layout.xcr0_supported().extended() {
        let size = layout.geometry(c).unwrap().size as usize;
        let mut bytes: Vec<u8> = (0..size)
            .map(|b| (b * 7 + c.index() as usize) as u8)
            .collect();
        if c == ComponentId::TILECFG {
            // A TILECFG LDTILECFG takes: palette 1, eight 16x64 tiles.
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

/// The live components' bytes, as the floor copies them.
fn live_extents(layout: &Layout, regs: &RegisterFile) -> Vec<(usize, usize)> {
    regs.xstate_bv()
        .extended()
        .iter()
        .map(|c| {
            let g = layout.geometry(c).unwrap();
            (g.offset as usize, g.size as usize)
        })
        .collect()
}

fn main() {
    let rounds: usize = std::env::args()
        .skip_while(|a| a != "--rounds")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(21);
    // `cargo test --benches` runs this once with --test (or --bench with
    // filters): a single short round then.
    let quick = std::env::args().any(|a| a == "--test");
    let rounds = if quick { 1 } else { rounds };
    let iters = |n: u32| if quick { 1 } else { n };
    let mut all: Vec<Measure> = Vec::new();

    for name in ["amd-zen4", "intel-sapphire-rapids", "intel-diamond-rapids"] {
        let layout = catalog::get(name).unwrap();
        let regs = live_state(layout);
        let size = (layout.standard_size() as usize).max(4096);
        let mut buf = vec![0u8; size];
        regs.encode_into(&mut buf, layout, XcompBv::STANDARD)
            .unwrap();
        let view = XsaveView::new(&buf[..], layout).unwrap();
        let extents = live_extents(layout, &regs);

        let mut open = Measure::new(format!("{name}: open a view / header read"), 1.25);
        let mut xmm = Measure::new(format!("{name}: read xmm / ideal"), 1.25);
        let mut ymm = Measure::new(format!("{name}: read ymm / ideal"), 1.25);
        let mut zmm = Measure::new(format!("{name}: read zmm / ideal"), 1.25);
        let mut r16 = Measure::new(format!("{name}: read r16 / ideal"), 1.25);
        let mut dec = Measure::new(format!("{name}: decode / same copies"), 1.15);
        let mut dec_m = Measure::new(format!("{name}: decode / memcpy"), 1.5);
        let mut enc = Measure::new(format!("{name}: encode / same copies"), 1.15);
        let mut enc_m = Measure::new(format!("{name}: encode / memcpy"), 1.5);
        let avx = layout.geometry(ComponentId::AVX).unwrap().offset as usize;
        let hi256 = layout
            .geometry(ComponentId::ZMM_HI256)
            .map(|g| g.offset as usize);
        let apx = layout.geometry(ComponentId::APX).map(|g| g.offset as usize);
        let mut regs_out = RegisterFile::new();
        let mut out = vec![0u8; size];
        let mut out_lib = vec![0u8; size];
        let mut scratch = vec![0u8; 16 << 10];
        for _ in 0..rounds {
            // The floor's header read: XSTATE_BV and XCOMP_BV, and the
            // reserved bytes a correct opener must see zero.
            open.round(
                iters(200_000),
                || {
                    let b = black_box(&buf[..]);
                    let h = &b[512..576];
                    let bv = u64::from_le_bytes(h[..8].try_into().unwrap());
                    let comp = u64::from_le_bytes(h[8..16].try_into().unwrap());
                    let ok = h[16..].iter().all(|&x| x == 0) && comp == 0 && b.len() >= 576;
                    black_box((bv, ok));
                },
                || {
                    black_box(XsaveView::new(black_box(&buf[..]), layout).unwrap());
                },
            );
            let live = |b: &[u8], bit: u32| {
                u64::from_le_bytes(b[512..520].try_into().unwrap()) & (1 << bit) != 0
            };
            xmm.round(
                iters(200_000),
                || {
                    let b = black_box(&buf[..]);
                    let i = black_box(5usize);
                    black_box(if live(b, 1) {
                        u128::from_le_bytes(b[160 + 16 * i..176 + 16 * i].try_into().unwrap())
                    } else {
                        0
                    });
                },
                || {
                    black_box(view.xmm(black_box(5)).unwrap());
                },
            );
            ymm.round(
                iters(200_000),
                || {
                    let b = black_box(&buf[..]);
                    let i = black_box(5usize);
                    let lo = if live(b, 1) {
                        u128::from_le_bytes(b[160 + 16 * i..176 + 16 * i].try_into().unwrap())
                    } else {
                        0
                    };
                    let hi = if live(b, 2) {
                        u128::from_le_bytes(b[avx + 16 * i..avx + 16 + 16 * i].try_into().unwrap())
                    } else {
                        0
                    };
                    black_box([lo, hi]);
                },
                || {
                    black_box(view.ymm(black_box(5)).unwrap());
                },
            );
            if let Some(hi256) = hi256 {
                zmm.round(
                    iters(200_000),
                    || {
                        let b = black_box(&buf[..]);
                        let i = black_box(5usize);
                        let lane = |bit, at: usize| {
                            if live(b, bit) {
                                u128::from_le_bytes(b[at..at + 16].try_into().unwrap())
                            } else {
                                0
                            }
                        };
                        black_box([
                            lane(1, 160 + 16 * i),
                            lane(2, avx + 16 * i),
                            lane(6, hi256 + 32 * i),
                            lane(6, hi256 + 32 * i + 16),
                        ]);
                    },
                    || {
                        black_box(view.zmm(black_box(5)).unwrap());
                    },
                );
            }
            if let Some(apx) = apx {
                r16.round(
                    iters(200_000),
                    || {
                        let b = black_box(&buf[..]);
                        let i = black_box(16usize) - 16;
                        black_box(if live(b, 19) {
                            u64::from_le_bytes(b[apx + 8 * i..apx + 8 + 8 * i].try_into().unwrap())
                        } else {
                            0
                        });
                    },
                    || {
                        black_box(view.r(black_box(16)).unwrap());
                    },
                );
            }
            // Decode: the same per-component copies, bare, into a buffer
            // shaped as the register file's.
            let copies = |src: &[u8], dst: &mut [u8]| {
                dst[..512].copy_from_slice(&src[..512]);
                let mut at = 512;
                for &(o, l) in &extents {
                    dst[at..at + l].copy_from_slice(&src[o..o + l]);
                    at += l;
                }
            };
            dec.round(
                iters(20_000),
                || copies(black_box(&buf), &mut scratch),
                || {
                    let v = XsaveView::new(black_box(&buf[..]), layout).unwrap();
                    regs_out.read_from(&v).unwrap();
                    black_box(&regs_out);
                },
            );
            dec_m.round(
                iters(20_000),
                || {
                    out.copy_from_slice(black_box(&buf));
                    black_box(&out);
                },
                || {
                    let v = XsaveView::new(black_box(&buf[..]), layout).unwrap();
                    regs_out.read_from(&v).unwrap();
                    black_box(&regs_out);
                },
            );
            enc.round(
                iters(20_000),
                || {
                    let (s, d) = (black_box(&scratch), &mut out);
                    d[..512].copy_from_slice(&s[..512]);
                    d[512..576].fill(0);
                    let mut at = 512;
                    for &(o, l) in &extents {
                        d[o..o + l].copy_from_slice(&s[at..at + l]);
                        at += l;
                    }
                    black_box(&out);
                },
                || {
                    regs.encode_into(black_box(&mut out_lib), layout, XcompBv::STANDARD)
                        .unwrap();
                    black_box(&out_lib);
                },
            );
            enc_m.round(
                iters(20_000),
                || {
                    out.copy_from_slice(black_box(&buf));
                    black_box(&out);
                },
                || {
                    regs.encode_into(black_box(&mut out_lib), layout, XcompBv::STANDARD)
                        .unwrap();
                    black_box(&out_lib);
                },
            );
        }
        all.extend([open, xmm, ymm]);
        if hi256.is_some() {
            all.push(zmm);
        }
        if apx.is_some() {
            all.push(r16);
        }
        all.extend([dec, dec_m, enc, enc_m]);
    }

    // Streams: one SSE-only vCPU; 8 and 256 vCPUs with AMX live.
    let spr = catalog::get("intel-sapphire-rapids").unwrap();
    let source = Source::of(spr);
    let registers = XstateRegisters::with_xcr0(spr.xcr0_supported());
    let mut sse = RegisterFile::new();
    sse.set_xmm(1, 7).unwrap();
    let one = stream::encode(&[Vcpu::new(sse.clone(), registers)], &source).unwrap();
    let mut s1 = Measure::new("stream decode, 1 vCPU SSE only / (memcpy + CRC-32)", 2.0);
    let amx = live_state(spr);
    // The live state's bytes: each component's canonical image (x87 and
    // SSE their parts of the legacy region).
    let canonical = |r: &RegisterFile| -> usize {
        r.xstate_bv()
            .iter()
            .map(|c| stream::record_size(c).unwrap_or_else(|| r.component(c).unwrap().len()))
            .sum()
    };
    let live_bytes = canonical(&amx);
    let many = |n: usize| vec![Vcpu::new(amx.clone(), registers); n];
    let v8 = many(8);
    let v256 = many(256);
    let s256 = stream::encode(&v256, &source).unwrap();
    let s8 = stream::encode(&v8, &source).unwrap();
    let mut enc256 = Measure::new(
        "stream encode, 256 vCPUs AMX live / memcpy of live bytes",
        1.3,
    );
    let mut dec256 = Measure::new(
        "stream decode, 256 vCPUs AMX live / memcpy of live bytes",
        1.3,
    );
    let mut per = Measure::new("stream decode per vCPU, 256 / 8 vCPUs", 1.2);
    let mut copy_dst = vec![0u8; s256.len()];
    let parsed_into = |bytes: &[u8], regs: &mut RegisterFile| {
        let p = stream::parse(bytes).unwrap();
        for n in 0..p.len() {
            p.decode_into(n, regs).unwrap();
        }
        black_box(&regs);
    };
    let mut regs_out = RegisterFile::new();
    let mut regs_floor = RegisterFile::new();
    // The same streams from and into views over KVM-sized areas.
    // 256 areas, as 256 vCPUs' KVM buffers are.
    let amx_areas = vec![amx.encode(spr, Format::Standard).unwrap(); 256];
    let amx_views: Vec<_> = amx_areas
        .iter()
        .map(|a| XsaveView::new(&a[..], spr).unwrap())
        .collect();
    let areas256: Vec<_> = amx_views
        .iter()
        .map(|area| stream::VcpuArea { area, registers })
        .collect();
    let mut reused = Vec::new();
    let mut enc256r = Measure::new(
        "stream encode_into a reused Vec, 256 vCPUs / memcpy of live",
        1.3,
    );
    let mut view_out = RegisterFile::new().encode(spr, Format::Standard).unwrap();
    let parsed_into_view = |bytes: &[u8], out: &mut [u8]| {
        let p = stream::parse(bytes).unwrap();
        let mut view = XsaveView::new(out, spr).unwrap();
        for n in 0..p.len() {
            p.decode_into_view(n, &mut view).unwrap();
        }
        black_box(&view);
    };
    let mut s1v = Measure::new(
        "stream decode into a view, 1 vCPU SSE only / (memcpy + CRC-32)",
        2.0,
    );
    let mut enc256v = Measure::new(
        "stream encode_views_into a reused Vec, 256 / memcpy of live",
        1.3,
    );
    let mut dec256v = Measure::new(
        "stream decode into views, 256 vCPUs AMX live / memcpy of live",
        1.3,
    );
    let zen4 = catalog::get("amd-zen4").unwrap();
    let zen_state = {
        let mut r = live_state(zen4);
        // Components Sapphire Rapids lacks stay init.
        for c in r.xstate_bv() - spr.supported() {
            r.set_init(c);
        }
        r
    };
    let zen_area = zen_state.encode(zen4, Format::Standard).unwrap();
    let zen_live = canonical(&zen_state);
    let mut rel = Measure::new(
        "relayout Zen 4 -> Sapphire Rapids / memcpy of live bytes",
        1.5,
    );
    let mut spr_area = vec![0u8; spr.standard_size() as usize];
    for _ in 0..rounds {
        let mut dst = vec![0u8; one.len()];
        s1.round(
            iters(20_000),
            || {
                dst.copy_from_slice(black_box(&one));
                black_box(stream::crc32(&dst));
            },
            || parsed_into(black_box(&one), &mut regs_out),
        );
        s1v.round(
            iters(20_000),
            || {
                dst.copy_from_slice(black_box(&one));
                black_box(stream::crc32(&dst));
            },
            || parsed_into_view(black_box(&one), &mut view_out),
        );
        let live_total = live_bytes * 256;
        enc256r.round(
            iters(20),
            || {
                copy_dst[..live_total].copy_from_slice(black_box(&s256[..live_total]));
                black_box(&copy_dst);
            },
            || {
                stream::encode_into(black_box(&v256), &source, &mut reused).unwrap();
                black_box(&reused);
            },
        );
        enc256v.round(
            iters(20),
            || {
                copy_dst[..live_total].copy_from_slice(black_box(&s256[..live_total]));
                black_box(&copy_dst);
            },
            || {
                stream::encode_views_into(black_box(&areas256), &source, &mut reused).unwrap();
                black_box(&reused);
            },
        );
        dec256v.round(
            iters(20),
            || {
                copy_dst[..live_total].copy_from_slice(black_box(&s256[..live_total]));
                black_box(&copy_dst);
            },
            || parsed_into_view(black_box(&s256), &mut view_out),
        );
        enc256.round(
            iters(20),
            || {
                copy_dst[..live_total].copy_from_slice(black_box(&s256[..live_total]));
                black_box(&copy_dst);
            },
            || {
                black_box(stream::encode(black_box(&v256), &source).unwrap());
            },
        );
        dec256.round(
            iters(20),
            || {
                copy_dst[..live_total].copy_from_slice(black_box(&s256[..live_total]));
                black_box(&copy_dst);
            },
            || parsed_into(black_box(&s256), &mut regs_out),
        );
        // Per-vCPU cost at 256 against 8: the floor here is 8 vCPUs' cost
        // scaled to 256 (32 streams of 8).
        per.round(
            iters(20),
            || {
                for _ in 0..32 {
                    parsed_into(black_box(&s8), &mut regs_floor);
                }
            },
            || parsed_into(black_box(&s256), &mut regs_out),
        );
        let mut zdst = vec![0u8; zen_area.len()];
        rel.round(
            iters(5_000),
            || {
                zdst[..zen_live].copy_from_slice(black_box(&zen_area[..zen_live]));
                black_box(&zdst);
            },
            || {
                // Into a reused buffer, as a VMM relays out into its KVM buffer.
                let done = relayout_into(
                    black_box(&zen_area),
                    zen4,
                    spr,
                    RelayoutOptions::default(),
                    &Guest::default(),
                    &mut spr_area,
                )
                .unwrap();
                black_box((&spr_area, done));
            },
        );
    }
    all.extend([s1, enc256, dec256, per, enc256r, s1v, enc256v, dec256v, rel]);
    // Where the figures come from: the CPU and how busy the machine was.
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "host: {cpu}; load average {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("median of {rounds} rounds (library path, its ratio to the floor, the goal):");
    for m in &mut all {
        m.report();
    }
}
