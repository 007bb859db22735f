//! Migration costs: stream encode and decode of typical states against
//! memcpy of their live bytes, relayout Zen 4 -> Sapphire Rapids, and the
//! encodings the VMMs use for the KVM buffer today (Firecracker: bitcode of
//! kvm-bindings' `Xsave`; Cloud Hypervisor: serde_json of its `XsaveState`,
//! as a string inside state.json; crosvm: CBOR of its `Xsave`), each for a
//! 4096-byte and an 11008-byte buffer, encode and decode.
//!
//! Run: `cargo bench --bench migrate`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use xstate::layout::catalog;
use xstate::migrate::stream::{self, Source, Vcpu, VcpuArea};
use xstate::migrate::{relayout, relayout_into, Guest, RelayoutOptions};
use xstate::prelude::*;
use xstate::xregs::XstateRegisters;
use xstate::{ComponentId, Format, Layout, RegisterFile, Xfeatures, XsaveView};

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
        // The allocation-free paths: into a reused stream buffer and
        // register file, and straight from and into a KVM-sized area.
        let mut reused = Vec::new();
        g.bench_function("encode_into a reused Vec", |b| {
            b.iter(|| {
                stream::encode_into(std::slice::from_ref(black_box(&vcpu)), &source, &mut reused)
                    .unwrap();
                black_box(&reused);
            })
        });
        let mut regs_out = RegisterFile::new();
        g.bench_function("parse + decode_into a reused RegisterFile", |b| {
            b.iter(|| {
                let parsed = stream::parse(black_box(&encoded)).unwrap();
                black_box(parsed.decode_into(0, &mut regs_out));
            })
        });
        let mut area = vec![0u8; (spr.standard_size() as usize).max(4096)];
        vcpu.state
            .encode_into(&mut area, spr, xstate::XcompBv::STANDARD)
            .unwrap();
        g.bench_function("encode_views_into from a KVM-sized area", |b| {
            let view = XsaveView::new(&area[..], spr).unwrap();
            let one = [VcpuArea {
                area: &view,
                registers: vcpu.registers.unwrap(),
            }];
            b.iter(|| {
                stream::encode_views_into(black_box(&one), &source, &mut reused).unwrap();
                black_box(&reused);
            })
        });
        let mut into = area.clone();
        g.bench_function("parse + decode_into_view a KVM-sized area", |b| {
            b.iter(|| {
                let parsed = stream::parse(black_box(&encoded)).unwrap();
                let mut view = XsaveView::new(&mut into[..], spr).unwrap();
                black_box(parsed.decode_into_view(0, &mut view).unwrap());
            })
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
    let mut dst = vec![0u8; spr.standard_size() as usize];
    g.bench_function(
        "Zen 4 -> Sapphire Rapids, relayout_into a reused buffer",
        |b| {
            b.iter(|| {
                black_box(
                    relayout_into(
                        black_box(&area),
                        zen4,
                        spr,
                        RelayoutOptions::default(),
                        &Guest::default(),
                        &mut dst,
                    )
                    .unwrap(),
                )
            })
        },
    );
    g.finish();

    peers(c, spr);
}

/// The VMMs' own encodings of one vCPU's XSAVE buffer, beside xstate's
/// stream of the same state and memcpy of the buffer: a 4096-byte
/// `KVM_GET_XSAVE` buffer with AVX-512 live and an 11008-byte
/// `KVM_GET_XSAVE2` buffer with AMX tiles live, both Sapphire Rapids.
fn peers(c: &mut Criterion, spr: &Layout) {
    for (size, mask, what) in [
        (4096usize, 0xE7u64, "AVX-512 live"),
        (11008, 0x600E7, "AMX tiles live"),
    ] {
        let regs = state(spr, mask);
        let mut area = regs.encode(spr, Format::Standard).unwrap();
        assert!(area.len() >= size);
        // KVM_GET_XSAVE fills 4096 bytes; the state above lives within them.
        area.truncate(size);
        assert_eq!(RegisterFile::decode(&area, spr).unwrap(), regs);
        let vcpu = Vcpu::new(regs, XstateRegisters::with_xcr0(spr.xcr0_supported()));
        let source = Source::of(spr);
        let stream_bytes = stream::encode(std::slice::from_ref(&vcpu), &source).unwrap();

        let ch = cloud_hypervisor::XsaveState::of(&area);
        let ch_bytes = cloud_hypervisor::encode(&ch);
        assert_eq!(cloud_hypervisor::decode(&ch_bytes), ch);
        let cros = crosvm::Xsave::of(&area);
        let cros_bytes = crosvm::encode(&cros);
        assert_eq!(crosvm::decode(&cros_bytes), cros);
        #[cfg(target_arch = "x86_64")]
        let fc = firecracker::VcpuState::of(&area);
        #[cfg(target_arch = "x86_64")]
        let fc_bytes = firecracker::encode(&fc);
        #[cfg(target_arch = "x86_64")]
        assert_eq!(firecracker::bytes(&firecracker::decode(&fc_bytes)), area);
        #[cfg(target_arch = "x86_64")]
        let fc_len = fc_bytes.len();
        #[cfg(not(target_arch = "x86_64"))]
        let fc_len = 0;
        eprintln!(
            "{size} bytes, {what}: xstate stream {}, Firecracker bitcode {}, \
             Cloud Hypervisor JSON {}, crosvm CBOR {} bytes",
            stream_bytes.len(),
            fc_len,
            ch_bytes.len(),
            cros_bytes.len(),
        );

        let mut g = c.benchmark_group(format!("peers {size} ({what})"));
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function("memcpy of the buffer (baseline)", |b| {
            let mut dst = vec![0u8; size];
            b.iter(|| {
                dst.copy_from_slice(black_box(&area));
                black_box(&dst);
            })
        });
        g.bench_function("xstate stream encode", |b| {
            b.iter(|| {
                black_box(stream::encode(std::slice::from_ref(black_box(&vcpu)), &source).unwrap())
            })
        });
        g.bench_function("xstate stream decode", |b| {
            b.iter(|| black_box(stream::decode(black_box(&stream_bytes)).unwrap()))
        });
        // From and to the KVM buffer itself, as a VMM would use the stream.
        g.bench_function("xstate buffer to stream", |b| {
            b.iter(|| {
                let state = RegisterFile::decode(black_box(&area), spr).unwrap();
                let vcpu = Vcpu::new(state, XstateRegisters::with_xcr0(spr.xcr0_supported()));
                black_box(stream::encode(std::slice::from_ref(&vcpu), &source).unwrap())
            })
        });
        g.bench_function("xstate stream to buffer", |b| {
            let mut buf = vec![0u8; size];
            b.iter(|| {
                let (_, vcpus) = stream::decode(black_box(&stream_bytes)).unwrap();
                vcpus[0]
                    .state
                    .encode_into(&mut buf, spr, xstate::XcompBv::STANDARD)
                    .unwrap();
                black_box(&buf);
            })
        });
        #[cfg(target_arch = "x86_64")]
        {
            g.bench_function("Firecracker bitcode encode", |b| {
                b.iter(|| black_box(firecracker::encode(black_box(&fc))))
            });
            g.bench_function("Firecracker bitcode decode", |b| {
                b.iter(|| black_box(firecracker::decode(black_box(&fc_bytes))))
            });
        }
        g.bench_function("Cloud Hypervisor JSON encode", |b| {
            b.iter(|| black_box(cloud_hypervisor::encode(black_box(&ch))))
        });
        g.bench_function("Cloud Hypervisor JSON decode", |b| {
            b.iter(|| black_box(cloud_hypervisor::decode(black_box(&ch_bytes))))
        });
        g.bench_function("crosvm CBOR encode", |b| {
            b.iter(|| black_box(crosvm::encode(black_box(&cros))))
        });
        g.bench_function("crosvm CBOR decode", |b| {
            b.iter(|| black_box(crosvm::decode(black_box(&cros_bytes))))
        });
        g.finish();
    }
}

fn words(area: &[u8]) -> impl Iterator<Item = u32> + '_ {
    area.chunks_exact(4)
        .map(|w| u32::from_le_bytes(w.try_into().unwrap()))
}

/// Firecracker: `VcpuState` holds `xsave: kvm_bindings::Xsave` (a
/// `FamStructWrapper<kvm_xsave2>`) and the snapshot is bitcode of it, through
/// serde (kvm-bindings' `serde` feature: the `kvm_xsave2` header as bytes,
/// then the `extra` entries as a sequence of u32).
#[cfg(target_arch = "x86_64")]
mod firecracker {
    use kvm_bindings::{kvm_xsave, kvm_xsave2, Xsave};
    use serde::{Deserialize, Serialize};

    /// The part of Firecracker's vCPU state this compares.
    #[derive(Serialize, Deserialize)]
    pub(crate) struct VcpuState {
        pub(crate) xsave: Xsave,
    }

    impl VcpuState {
        pub(crate) fn of(area: &[u8]) -> VcpuState {
            let mut words = super::words(area);
            let mut header = kvm_xsave2 {
                len: 0,
                xsave: kvm_xsave::default(),
            };
            for (w, v) in header.xsave.region.iter_mut().zip(&mut words) {
                *w = v;
            }
            let mut xsave = Xsave::from_header(header).unwrap();
            for v in words {
                xsave.push(v).unwrap();
            }
            VcpuState { xsave }
        }
    }

    pub(crate) fn bytes(state: &VcpuState) -> Vec<u8> {
        let region = state.xsave.as_fam_struct_ref().xsave.region;
        region
            .iter()
            .chain(state.xsave.as_slice())
            .flat_map(|w| w.to_le_bytes())
            .collect()
    }

    pub(crate) fn encode(state: &VcpuState) -> Vec<u8> {
        bitcode::serialize(state).unwrap()
    }

    pub(crate) fn decode(bytes: &[u8]) -> VcpuState {
        bitcode::deserialize(bytes).unwrap()
    }
}

/// Cloud Hypervisor: the vCPU state holds `XsaveState { region: [u32; 1024],
/// extra: Vec<u32> }` (`extra` left out when empty), serialized with
/// serde_json; the snapshot's state.json then carries that JSON as a string
/// inside the outer JSON object.
mod cloud_hypervisor {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    pub(crate) struct XsaveState {
        #[serde(with = "region")]
        pub(crate) region: [u32; 1024],
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub(crate) extra: Vec<u32>,
    }

    /// The outer object of state.json, with the vCPU state as a JSON string.
    #[derive(Serialize, Deserialize)]
    struct Snapshot {
        id: String,
        state: String,
    }

    impl XsaveState {
        pub(crate) fn of(area: &[u8]) -> XsaveState {
            let mut words = super::words(area);
            let mut region = [0u32; 1024];
            for (w, v) in region.iter_mut().zip(&mut words) {
                *w = v;
            }
            XsaveState {
                region,
                extra: words.collect(),
            }
        }
    }

    pub(crate) fn encode(state: &XsaveState) -> Vec<u8> {
        let inner = serde_json::to_string(state).unwrap();
        serde_json::to_vec(&Snapshot {
            id: "0".into(),
            state: inner,
        })
        .unwrap()
    }

    pub(crate) fn decode(bytes: &[u8]) -> XsaveState {
        let outer: Snapshot = serde_json::from_slice(bytes).unwrap();
        serde_json::from_str(&outer.state).unwrap()
    }

    /// A fixed array of 1024 u32 as a JSON array, filled in place.
    mod region {
        use serde::de::{Error, SeqAccess, Visitor};
        use serde::{Deserializer, Serializer};

        pub(crate) fn serialize<S: Serializer>(
            region: &[u32; 1024],
            s: S,
        ) -> Result<S::Ok, S::Error> {
            s.collect_seq(region)
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<[u32; 1024], D::Error> {
            struct Words;
            impl<'de> Visitor<'de> for Words {
                type Value = [u32; 1024];
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("1024 u32")
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<[u32; 1024], A::Error> {
                    let mut out = [0u32; 1024];
                    for (i, w) in out.iter_mut().enumerate() {
                        *w = seq
                            .next_element()?
                            .ok_or_else(|| A::Error::invalid_length(i, &self))?;
                    }
                    if seq.next_element::<u32>()?.is_some() {
                        return Err(A::Error::invalid_length(1025, &self));
                    }
                    Ok(out)
                }
            }
            d.deserialize_seq(Words)
        }
    }
}

/// crosvm: `Xsave { data: Vec<u32>, len: usize }` (`len` in bytes), in its
/// CBOR snapshot (ciborium).
mod crosvm {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    pub(crate) struct Xsave {
        data: Vec<u32>,
        len: usize,
    }

    impl Xsave {
        pub(crate) fn of(area: &[u8]) -> Xsave {
            Xsave {
                data: super::words(area).collect(),
                len: area.len(),
            }
        }
    }

    pub(crate) fn encode(x: &Xsave) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(x, &mut out).unwrap();
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Xsave {
        ciborium::from_reader(bytes).unwrap()
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(300))
        .measurement_time(std::time::Duration::from_secs(1));
    targets = migrate
}
criterion_main!(benches);
