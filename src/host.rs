//! The host CPU: the XSAVE family of instructions, run in user mode.
//!
//! These wrappers are what the tests use as the oracle (the CPU itself
//! decides where state goes) and what `xstate report` uses for its live
//! self-check.

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
