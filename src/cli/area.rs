//! Area files as every command opens them: a 512-byte FXSAVE image as the
//! x87 and SSE state it holds, the software bytes (464..512) checked or
//! ignored, and the default layout chosen from them.

use xstate::artifact::{fxsave, swbytes};
use xstate::layout::catalog;
use xstate::{HeaderError, Layout};

use super::{fail, REJECTED};

/// `--ignore-software-bytes`, shared by the commands that open areas.
#[derive(Debug, Default, clap::Args)]
pub struct SwArgs {
    /// Do not check the area's software bytes (464..512: the XCR0 of a
    /// ptrace, core or KVM copy, a signal frame's _fpx_sw_bytes) against
    /// the layout, nor choose the default layout from them.
    #[arg(long)]
    pub ignore_software_bytes: bool,
}

/// The area in `bytes` as the commands read it: a 512-byte FXSAVE image
/// (`NT_PRFPREG`, `KVM_GET_FPU`) becomes a 576-byte standard area with x87
/// and SSE live; with `--ignore-software-bytes`, bytes 464..512 are
/// cleared, so nothing reads them.
pub fn prepare(mut bytes: Vec<u8>, sw: &SwArgs) -> Vec<u8> {
    if let Ok(image) = <&[u8; fxsave::FXSAVE_SIZE]>::try_from(&bytes[..]) {
        bytes = fxsave::to_area(image).to_vec();
    }
    if sw.ignore_software_bytes {
        swbytes::clear(&mut bytes);
    }
    bytes
}

/// The layout of an area no `--layout` names: the host's when it can have
/// written the area's software bytes (or the area has none), else the one
/// catalog layout that can (several that place the area's components
/// alike count as one). Exit 1 when no known layout, or several placing
/// them differently, can have written it.
pub fn default_layout(what: &str, area: &[u8]) -> Result<Layout, u8> {
    let host = super::load_layout("host")?;
    let Some(sw) = swbytes::SoftwareBytes::read(area) else {
        return Ok(host);
    };
    let xcr0 = sw.xcr0();
    // A guessed layout must hold every component the writer's XCR0 names:
    // the looser rule for KVM buffers (a guest CPU model with fewer
    // components, at its host's offsets) is for a layout a user names.
    let fits_area =
        |l: &Layout| l.xcr0_supported().contains_all(xcr0) && swbytes::check(area, l).is_ok();
    if fits_area(&host) {
        return Ok(host);
    }
    let fits: Vec<&Layout> = catalog::all().iter().filter(|l| fits_area(l)).collect();
    let size = sw.size(area.len());
    let Some(first) = fits.first() else {
        return Err(fail(
            REJECTED,
            format_args!(
                "{what}: area written with XCR0 {xcr0}, {size} bytes; neither this host's layout nor any catalog layout can produce that (--layout names one; --ignore-software-bytes reads it with the host's)"
            ),
        ));
    };
    let placed = |l: &Layout| {
        xcr0.extended()
            .iter()
            .map(|c| l.offset(c))
            .collect::<Vec<_>>()
    };
    if let Some(other) = fits.iter().find(|l| placed(l) != placed(first)) {
        return Err(fail(
            REJECTED,
            format_args!(
                "{what}: area written with XCR0 {xcr0}, {size} bytes: layouts {} and {} can both produce that and place its components differently; --layout names the right one",
                first.name(),
                other.name()
            ),
        ));
    }
    Ok((*first).clone())
}

/// The message for an area `layout` refuses, naming the layout and the
/// override when its software bytes are at fault.
pub fn refusal(what: &str, layout: &str, e: &HeaderError) -> String {
    match e {
        HeaderError::SoftwareBytes(sw) => {
            format!(
                "{what}: {} (--ignore-software-bytes overrides)",
                sw.naming(layout)
            )
        }
        _ => format!("{what}: {e}"),
    }
}
