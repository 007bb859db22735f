//! The bodies of the fuzz targets in `fuzz/`, shared with the stable replay
//! and smoke test `tests/fuzz_smoke.rs`: each takes arbitrary bytes and must
//! never panic, whatever they hold.
//!
//! [`TARGETS`] lists them: the AFL++ binary in `fuzz/` (`xstate-fuzz
//! TARGET`), `fuzz/run-short.sh` and the corpus replay test all take their
//! targets from it, so adding a target is adding its body here and its entry
//! to the list.

use crate::access::XstateRead;
use crate::layout::catalog;
use crate::migrate::stream;
use alloc::vec::Vec;

use crate::{Register, RegisterFile, XsaveView};

/// A fuzz target: the name that picks it (the fuzz binary's argument, and
/// its committed corpus `fuzz/corpus/<name>/`), its body and what it covers.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// The target's name.
    pub name: &'static str,
    /// Its body: runs one input; panics only on a bug.
    pub body: fn(&[u8]),
    /// What the body runs, in a line.
    pub covers: &'static str,
}

/// Every fuzz target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "stream_decode",
        body: stream_decode,
        covers: "migration stream decoder (v1 and v2), then re-encode and decode again",
    },
    Target {
        name: "view_open",
        body: view_open,
        covers: "XSAVE area view opener under a catalog layout, every register read, register file round trip",
    },
    Target {
        name: "cpuid_dump",
        body: cpuid_dump,
        covers: "CPUID dumps (cpuid -r, InstLatx64, kvm_cpuid2 JSON), their consistency check, layout and a pool baseline applied back",
    },
    Target {
        name: "layout_file",
        body: layout_file,
        covers: "TOML layout files and JSON host profiles, each with its round trip",
    },
    Target {
        name: "core_file",
        body: core_file,
        covers: "ELF core files: the note reader (NT_X86_XSTATE, NT_PRFPREG, NT_X86_XSAVE_LAYOUT per thread), the layout from the note or from the software bytes, and every thread's state decoded in it",
    },
];

/// The target named `name`, if there is one.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// Decodes `data` as a migration stream, and, when it starts like one, a
/// copy with its trailing CRC-32 recomputed, so that the structural checks
/// behind the checksum see every mutation; accepted streams must re-encode
/// (in their version) and decode to the same vCPUs.
pub fn stream_decode(data: &[u8]) {
    decode_and_reencode(data);
    if stream::is_stream(data) && data.len() >= 4 {
        let mut sealed = data.to_vec();
        let body = sealed.len() - 4;
        let crc = stream::crc32(&sealed[..body]);
        sealed[body..].copy_from_slice(&crc.to_le_bytes());
        decode_and_reencode(&sealed);
    }
}

fn decode_and_reencode(data: &[u8]) {
    if let Ok((header, vcpus)) = stream::decode(data) {
        let source = stream::Source {
            xcr0: header.source_xcr0,
            fingerprint: header.source_fingerprint,
        };
        let again = if header.version == stream::VERSION_1 {
            let states: Vec<_> = vcpus.iter().map(|v| v.state.clone()).collect();
            stream::encode_v1(&states, &source)
        } else {
            stream::encode(&vcpus, &source)
        }
        .expect("an accepted stream re-encodes");
        let (back_header, back) = stream::decode(&again).expect("a re-encoded stream decodes");
        assert_eq!(back_header, header, "stream re-encoding changed the header");
        assert_eq!(back, vcpus, "stream re-encoding changed the vCPUs");
    }
}

/// Opens `data` as an XSAVE area under a catalog layout its first byte
/// picks, and reads every register and the whole state from it.
pub fn view_open(data: &[u8]) {
    let Some((&pick, area)) = data.split_first() else {
        return;
    };
    let layouts = catalog::all();
    let layout = &layouts[pick as usize % layouts.len()];
    if let Ok(view) = XsaveView::new(area, layout) {
        for reg in Register::all() {
            let _ = view.read(reg);
        }
        if let Ok(regs) = RegisterFile::from_view(&view) {
            let _ = regs.encode(layout, view.format());
        }
    }
}

/// Reads `data` as a CPUID (`cpuid -r`, InstLatx64 or `kvm_cpuid2` JSON),
/// then runs its consistency check, builds its layout and applies a pool
/// baseline of that layout back to it.
pub fn cpuid_dump(data: &[u8]) {
    use crate::migrate::pool::{baseline, BaselineOptions, PoolHost};

    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    if let Ok(set) = crate::cpuid::CpuidSet::parse(text) {
        let _ = crate::cpuid::check(&set);
        if let Ok(layout) = set.to_layout("fuzz", "fuzz") {
            let host = PoolHost::from(layout);
            if let Ok(b) = baseline(&[host], &BaselineOptions::default()) {
                let mut guest = set.clone();
                let _ = b.apply(&mut guest);
            }
        }
    }
}

/// Reads `data` as a TOML layout file and as a JSON host profile; a layout
/// or profile that loads must survive its own round trip.
pub fn layout_file(data: &[u8]) {
    use crate::profile::HostProfile;
    use crate::Layout;

    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    if let Ok(layout) = Layout::from_toml(text) {
        let again = Layout::from_toml(&layout.to_toml()).expect("a loaded layout reloads");
        assert_eq!(
            again.fingerprint(),
            layout.fingerprint(),
            "TOML round trip changed the layout"
        );
    }
    if let Ok(profile) = HostProfile::from_json(text) {
        let again = HostProfile::from_json(&profile.to_json()).expect("a loaded profile reloads");
        assert_eq!(again, profile, "JSON round trip changed the profile");
    }
}

/// Reads `data` as an ELF core file: its notes, the layout its
/// `NT_X86_XSAVE_LAYOUT` note gives (or, without one, the catalog layout
/// its software bytes name), and every thread's `NT_X86_XSTATE` and
/// `NT_PRFPREG` decoded in it.
pub fn core_file(data: &[u8]) {
    use crate::artifact::core::Core;
    let Ok(core) = Core::parse(data) else {
        return;
    };
    for (n, thread) in core.threads().iter().enumerate() {
        if let Ok(Some(layout)) = core.layout_of("fuzz", n, catalog::all()) {
            if let Some(area) = &thread.xstate {
                if let Ok(view) = XsaveView::new(&area[..], &layout) {
                    for reg in Register::all() {
                        let _ = view.read(reg);
                    }
                    let _ = RegisterFile::from_view(&view);
                }
            }
        }
        if let Some(image) = thread.fpregs.as_deref().and_then(|f| f.try_into().ok()) {
            let area = crate::artifact::fxsave::to_area(image);
            let _ = RegisterFile::decode(&area, &crate::Layout::legacy_only("fx", "", ""));
        }
    }
}
