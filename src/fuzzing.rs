//! The bodies of the fuzz targets in `fuzz/`, shared with the stable smoke
//! test `tests/fuzz_smoke.rs`: each takes arbitrary bytes and must never
//! panic, whatever they hold.

use crate::access::XstateRead;
use crate::layout::catalog;
use crate::migrate::stream;
use alloc::vec::Vec;

use crate::{Register, RegisterFile, XsaveView};

/// Decodes `data` as a migration stream; accepted streams must re-encode
/// (in their version) and decode to the same vCPUs.
pub fn stream_decode(data: &[u8]) {
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

/// Reads `data` as every kind of text a layout source may hold: a CPUID
/// (`cpuid -r`, InstLatx64 or `kvm_cpuid2` JSON), then its consistency
/// check, its layout and a pool baseline applied back to it; a TOML layout
/// file; a host profile. A layout that loads must survive its own TOML
/// round trip.
pub fn text_sources(data: &[u8]) {
    use crate::migrate::pool::{baseline, BaselineOptions, PoolHost};
    use crate::profile::HostProfile;
    use crate::Layout;

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
