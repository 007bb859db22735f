//! The software bytes (464..512) end to end: an area in the wrong layout is
//! refused by every command that opens one, the default layout is chosen
//! from them, and a 512-byte FXSAVE image decodes as x87 and SSE.

mod cli_common;
mod common;

use cli_common::{json, stderr, xstate};

use std::path::Path;

use xstate::artifact::swbytes;
use xstate::prelude::*;
use xstate::{layout::catalog, Layout, Xfeatures, XsaveView};

/// A register as `decode --json` prints it: little-endian bytes as one hex
/// number.
fn hex(bytes: &[u8]) -> String {
    let mut s = String::from("0x");
    for b in bytes.iter().rev() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn zmm_bytes(v: [u128; 4]) -> Vec<u8> {
    v.iter().flat_map(|q| q.to_le_bytes()).collect()
}

/// A standard-format area of `layout` for the user components `xcr0`
/// (the standard size of that XCR0), with zmm17, xmm1 and k3 set.
fn area(layout: &Layout, xcr0: u64) -> Vec<u8> {
    let xcr0 = Xfeatures::from_bits(xcr0);
    let mut buf = vec![0u8; layout.standard_size_for(xcr0) as usize];
    let mut view = XsaveView::new(&mut buf[..], layout).unwrap();
    view.set_xmm(1, 0x1111_2222_3333_4444_5555_6666_7777_8888)
        .unwrap();
    if layout.has(xstate::ComponentId::HI16_ZMM) && xcr0.contains(xstate::ComponentId::HI16_ZMM) {
        view.set_zmm(17, [1, 2, 3, 0xfeed_0000_0000_0000_0000_0000_0000_0017])
            .unwrap();
        view.set_k(3, 0x5a5a).unwrap();
    }
    buf
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.display().to_string()
}

/// An Intel signal frame (Sapphire Rapids without AMX permission:
/// xfeatures 0x202e7, xstate_size 2816, magic2 after it).
fn intel_signal_frame() -> Vec<u8> {
    let spr = catalog::get("intel-sapphire-rapids").unwrap();
    let mut f = area(spr, 0x202e7);
    assert_eq!(f.len(), 2816);
    f.extend_from_slice(&[0; 4]);
    swbytes::write_signal_frame(&mut f, Xfeatures::from_bits(0x202e7), 2816);
    f
}

#[test]
fn an_intel_signal_frame_in_the_zen4_layout_is_refused_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let frame = write(dir.path(), "frame.bin", &intel_signal_frame());
    let want = "area written with XCR0 0x202e7, 2816 bytes; layout amd-zen4 cannot produce that";
    let out = xstate(&["decode", &frame, "--layout", "amd-zen4"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains(want), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "nothing printed for a refused area");
    let converted = dir.path().join("out.bin").display().to_string();
    let out = xstate(&[
        "convert", &frame, &converted, "--from", "amd-zen4", "--to", "amd-zen4",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains(want), "{}", stderr(&out));
    assert!(!Path::new(&converted).exists());
    let stream = dir.path().join("s.xst").display().to_string();
    let out = xstate(&["stream", "encode", &frame, &stream, "--layout", "amd-zen4"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains(want), "{}", stderr(&out));
    assert!(!Path::new(&stream).exists());
    // The right layout reads it; --ignore-software-bytes overrides.
    let v = json(&xstate(&[
        "decode",
        &frame,
        "--layout",
        "intel-sapphire-rapids",
        "--json",
    ]));
    assert_eq!(
        v["registers"]["zmm17"],
        hex(&zmm_bytes([
            1,
            2,
            3,
            0xfeed_0000_0000_0000_0000_0000_0000_0017
        ]))
    );
    let out = xstate(&[
        "decode",
        &frame,
        "--layout",
        "amd-zen4",
        "--ignore-software-bytes",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn the_default_layout_comes_from_the_software_bytes() {
    let dir = tempfile::tempdir().unwrap();
    // A Zen 4 ptrace/core buffer: XCR0 0x2e7, 2440 bytes.
    let zen4 = catalog::get("amd-zen4").unwrap();
    let mut a = area(zen4, 0x2e7);
    assert_eq!(a.len(), 2440);
    swbytes::write_xcr0(&mut a, Xfeatures::from_bits(0x2e7));
    let file = write(dir.path(), "zen4.bin", &a);
    let host = xstate::host::layout().unwrap();
    let host_fits = swbytes::check(&a, &host).is_ok();
    let v = json(&xstate(&["decode", &file, "--json"]));
    if host_fits {
        common::skip(
            "default layout from software bytes",
            "this host's layout can produce a Zen 4 buffer: the host is chosen",
        );
        assert_eq!(v["layout"], host.name());
    } else {
        assert_eq!(v["layout"], "amd-zen4");
        assert_eq!(
            v["registers"]["zmm17"],
            hex(&zmm_bytes([
                1,
                2,
                3,
                0xfeed_0000_0000_0000_0000_0000_0000_0017
            ]))
        );
        assert_eq!(v["registers"]["k3"], "0x0000000000005a5a");
        // Named explicitly, the host's layout is refused, naming both.
        let out = xstate(&["decode", &file, "--layout", "host"]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let e = stderr(&out);
        assert!(
            e.contains("area written with XCR0 0x2e7, 2440 bytes; layout")
                && e.contains("cannot produce that")
                && e.contains("--ignore-software-bytes"),
            "{e}"
        );
    }
    // No known layout produces XCR0 0x2e7 in 2441 bytes: refused.
    let mut odd = a.clone();
    odd.push(0);
    let file = write(dir.path(), "odd.bin", &odd);
    let out = xstate(&["decode", &file]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("XCR0 0x2e7, 2441 bytes"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_area_without_software_bytes_defaults_to_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let host = xstate::host::layout().unwrap();
    let a = area(&host, host.xcr0_supported().bits());
    let file = write(dir.path(), "host.bin", &a);
    let v = json(&xstate(&["decode", &file, "--json"]));
    assert_eq!(v["layout"], host.name());
}

#[test]
fn a_512_byte_fxsave_image_decodes_as_x87_and_sse() {
    let dir = tempfile::tempdir().unwrap();
    let mut image = [0u8; 512];
    image[0..2].copy_from_slice(&0x027fu16.to_le_bytes()); // FCW
    image[24..28].copy_from_slice(&0x9fc0u32.to_le_bytes()); // MXCSR
    image[32..42].copy_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0x80, 0xff, 0x3f]); // ST0 = 1.0
    image[160 + 3 * 16..160 + 4 * 16].copy_from_slice(&0xabcdu128.to_le_bytes());
    // A kernel's software bytes describe the area the image was cut from.
    image[464..472].copy_from_slice(&0xe7u64.to_le_bytes());
    let file = write(dir.path(), "prfpreg.bin", &image);
    for layout in ["host", "amd-zen3", "intel-sapphire-rapids"] {
        let v = json(&xstate(&["decode", &file, "--layout", layout, "--json"]));
        assert_eq!(v["xstate_bv"], "0x3", "{layout}");
        let r = &v["registers"];
        assert_eq!(r["fcw"], "0x027f");
        assert_eq!(r["mxcsr"], "0x00009fc0");
        assert_eq!(r["st0"], "0x3fff8000000000000000");
        assert_eq!(r["xmm3"], format!("0x{:032x}", 0xabcd));
    }
    let v = json(&xstate(&["decode", &file, "--json"]));
    assert_eq!(v["registers"]["xmm3"], format!("0x{:032x}", 0xabcd));
    // convert takes it too.
    let out_file = dir.path().join("zen3.bin").display().to_string();
    let out = xstate(&[
        "convert",
        &file,
        &out_file,
        "--from",
        "host",
        "--to",
        "amd-zen3",
        "--drop-init",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let converted = std::fs::read(&out_file).unwrap();
    let view = XsaveView::new(&converted[..], catalog::get("amd-zen3").unwrap()).unwrap();
    assert_eq!(view.xmm(3).unwrap(), 0xabcd);
}

#[test]
fn convert_writes_signal_frames_ptrace_buffers_and_core_notes() {
    let dir = tempfile::tempdir().unwrap();
    let frame = write(dir.path(), "frame.bin", &intel_signal_frame());
    let zen4 = catalog::get("amd-zen4").unwrap();
    let spr = "intel-sapphire-rapids";
    // An Intel frame as a Zen 4 thread's frame.
    let out_frame = dir.path().join("zen4-frame.bin");
    let out = xstate(&[
        "convert",
        &frame,
        "--from",
        spr,
        "--to",
        "amd-zen4",
        "--to-sigframe",
        out_frame.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let f = std::fs::read(&out_frame).unwrap();
    assert_eq!(f.len(), 2440 + 4);
    assert!(matches!(
        swbytes::check(&f, zen4),
        Ok(Some(swbytes::SoftwareBytes::SignalFrame(_)))
    ));
    let v = json(&xstate(&[
        "decode",
        out_frame.to_str().unwrap(),
        "--layout",
        "amd-zen4",
        "--json",
    ]));
    assert_eq!(v["registers"]["k3"], "0x0000000000005a5a");
    // A ptrace buffer for an XCR0 without AVX-512 cannot hold live zmm17.
    let out_ptrace = dir.path().join("ptrace.bin");
    let out = xstate(&[
        "convert",
        &frame,
        "--from",
        spr,
        "--to",
        "amd-zen4",
        "--guest-xcr0",
        "0x7",
        "--to-ptrace",
        out_ptrace.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("does not enable them"),
        "{}",
        stderr(&out)
    );
    assert!(!out_ptrace.exists());
    let out = xstate(&[
        "convert",
        &frame,
        "--from",
        spr,
        "--to",
        "amd-zen4",
        "--to-ptrace",
        out_ptrace.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let p = std::fs::read(&out_ptrace).unwrap();
    assert_eq!(p.len(), 2440);
    assert_eq!(
        swbytes::SoftwareBytes::read(&p),
        Some(swbytes::SoftwareBytes::Xcr0(zen4.xcr0_supported()))
    );
    // Core notes: the descriptor and the layout records.
    let prefix = dir.path().join("n");
    let out = xstate(&[
        "convert",
        &frame,
        "--from",
        spr,
        "--to",
        "amd-zen4",
        "--to-core-notes",
        prefix.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(dir.path().join("n.xstate")).unwrap(), p);
    assert_eq!(
        std::fs::read(dir.path().join("n.layout")).unwrap(),
        xstate::artifact::notes::layout_descriptor(zen4, zen4.xcr0_supported())
    );
    // The artifacts are written instead of an area: no OUTPUT with them.
    let out = xstate(&["convert", &frame, "--from", spr, "--to", "amd-zen4"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn a_guessed_layout_holds_every_component_the_writer_had() {
    // A Zen 4 KVM buffer: 4096 bytes, XCR0 0x2e7 (with PKRU) at 464,
    // AVX-512 live. No layout lacking PKRU may be guessed for it, this
    // host's included, whatever the KVM size rule allows a named one.
    let dir = tempfile::tempdir().unwrap();
    let zen4 = catalog::get("amd-zen4").unwrap();
    let mut buf = area(zen4, 0xe7);
    buf.resize(4096, 0);
    swbytes::write_xcr0(&mut buf, Xfeatures::from_bits(0x2e7));
    let path = dir.path().join("zen4-kvm.bin");
    std::fs::write(&path, &buf).unwrap();
    let out = xstate(&["decode", path.to_str().unwrap(), "--json"]);
    let xcr0 = Xfeatures::from_bits(0x2e7);
    let host = xstate::host::layout().unwrap();
    if host.xcr0_supported().contains_all(xcr0) {
        // A host with PKRU could have written it (its own KVM buffer): the
        // host's layout is the default then.
        assert_eq!(json(&out)["layout"], host.name(), "{}", stderr(&out));
    } else if out.status.success() {
        let v = json(&out);
        let name = v["layout"].as_str().unwrap_or_default().to_string();
        let layout = catalog::get(&name).expect("a catalog layout, never the host's");
        assert!(layout.xcr0_supported().contains_all(xcr0), "{name}");
        assert_eq!(v["registers"]["k3"], "0x0000000000005a5a", "{v}");
    } else {
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    }
}
