//! The host CPU: its XCR0, MXCSR mask and XSAVE layout, read with CPUID,
//! XGETBV and FXSAVE in user mode; with the `testing` feature, also the
//! oracle the tests hold the layout engine and the views to
//! ([`Host`]: the XSAVE family, XRSTOR and AMX run in user mode).
//!
//! ```
//! let layout = xstate::host::layout().unwrap();
//! assert!(layout.standard_size() >= 576);
//! assert_eq!(xstate::host::xcr0().unwrap().bits() & 3, 3);
//! ```

#[cfg(feature = "testing")]
pub mod amx;
#[cfg(all(feature = "testing", target_os = "linux"))]
pub mod child;
#[cfg(feature = "testing")]
mod oracle;

#[cfg(feature = "testing")]
pub use oracle::{Host, HostArea, HostError, KnownValues, SaveInstr, VectorWidth};

use crate::component::Xfeatures;
use crate::layout::{CpuidRegs, Layout, LayoutError};

/// CPUID on this CPU.
pub fn cpuid(leaf: u32, subleaf: u32) -> CpuidRegs {
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    CpuidRegs {
        eax: r.eax,
        ebx: r.ebx,
        ecx: r.ecx,
        edx: r.edx,
    }
}

/// This CPU's XSAVE layout, named `host`: CPUID leaf 0xD, with the MXCSR
/// mask measured by FXSAVE.
///
/// # Errors
///
/// [`LayoutError`] when the CPU has no leaf 0xD or describes an invalid
/// geometry.
pub fn layout() -> Result<Layout, LayoutError> {
    Ok(
        Layout::from_cpuid("host", "CPUID instruction on this host", cpuid)?
            .with_mxcsr_mask(mxcsr_mask()),
    )
}

/// A 512-byte, 16-byte aligned FXSAVE area.
#[repr(C, align(16))]
struct FxArea([u8; 512]);

/// The MXCSR bits this CPU lets software set, from FXSAVE's MXCSR_MASK
/// field (0 there means the architectural default 0xFFBF).
pub fn mxcsr_mask() -> u32 {
    let mut area = FxArea([0; 512]);
    // SAFETY: FXSAVE64 writes exactly 512 bytes to a 16-byte aligned address;
    // `area` is 512 bytes with that alignment and lives across the call.
    unsafe {
        core::arch::asm!("fxsave64 [{}]", in(reg) area.0.as_mut_ptr(), options(nostack, preserves_flags));
    }
    let mask = u32::from_le_bytes(area.0[28..32].try_into().expect("4 bytes"));
    if mask == 0 {
        0xFFBF
    } else {
        mask
    }
}

/// XCR0 as the OS enabled it (XGETBV with ECX = 0), or `None` when the OS
/// has not enabled XSAVE.
pub fn xcr0() -> Option<Xfeatures> {
    let leaf1 = core::arch::x86_64::__cpuid(1);
    if leaf1.ecx & (1 << 27) == 0 {
        return None;
    }
    let (lo, hi): (u32, u32);
    // SAFETY: XGETBV with ECX = 0 is valid whenever CPUID.1:ECX.OSXSAVE is
    // set, checked above; it only writes EDX:EAX.
    unsafe {
        core::arch::asm!("xgetbv", in("ecx") 0u32, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags));
    }
    Some(Xfeatures::from_halves(hi, lo))
}
