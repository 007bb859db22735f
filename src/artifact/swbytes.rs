//! The software bytes of a standard-format area (legacy bytes 464..512),
//! which say which CPU and kernel wrote it.
//!
//! The CPU never writes them; Linux does, in two shapes:
//!
//! - **ptrace, core dumps, KVM** (`NT_X86_XSTATE`, `PTRACE_GETREGSET`,
//!   `KVM_GET_XSAVE`): the u64 at 464 is the kernel's user XCR0 and the other
//!   40 bytes are zero (`struct user_xstateregs`'s `sw_usable_bytes`,
//!   `arch/x86/include/asm/user.h`; `xstate_fx_sw_bytes` in
//!   `arch/x86/kernel/ptrace.c`, written by `__copy_xstate_to_uabi_buf` in
//!   `arch/x86/kernel/fpu/xstate.c` for ptrace, cores and KVM alike, so a
//!   KVM buffer holds its host's XCR0, not the guest's). The area is then
//!   the kernel's user xstate size (ptrace, cores: the standard size of that
//!   XCR0), or KVM's buffer size (4096 bytes, or `KVM_CAP_XSAVE2`'s size).
//!   Measured here: `PTRACE_GETREGSET` gives 2688 bytes with 0xe7 at 464.
//! - **a signal frame** (`fpstate` of `struct sigcontext`): `struct
//!   _fpx_sw_bytes` (`arch/x86/include/uapi/asm/sigcontext.h`): magic1
//!   [`FP_XSTATE_MAGIC1`] (u32 at 464), extended_size (u32 at 468),
//!   xfeatures (u64 at 472), xstate_size (u32 at 480), then padding; the
//!   u32 [`FP_XSTATE_MAGIC2`] follows the area, at xstate_size, and
//!   extended_size is xstate_size + 4 on x86_64. Measured here: magic1,
//!   2692, 0xe7, 2688, magic2 at 2688.
//!
//! A layout that cannot produce the XCR0 and size these bytes give is the
//! wrong layout for the area: [`check`] refuses it
//! ([`SwBytesError::WrongLayout`]). An area whose bytes 464..512 hold
//! anything else (an XSAVE instruction's stale memory, zeros) has no
//! software bytes, and nothing is checked.
//!
//! ```
//! use xstate::artifact::swbytes::{self, SoftwareBytes, SwBytesError};
//! use xstate::{layout::catalog, Xfeatures};
//!
//! // An Intel Sapphire Rapids ptrace buffer: XCR0 0x2e7, 2696 bytes.
//! let spr = catalog::get("intel-sapphire-rapids").unwrap();
//! let mut area = vec![0u8; 2696];
//! area[464..472].copy_from_slice(&0x2e7u64.to_le_bytes());
//! assert_eq!(
//!     swbytes::check(&area, spr),
//!     Ok(Some(SoftwareBytes::Xcr0(Xfeatures::from_bits(0x2e7))))
//! );
//! // Zen 4 places AVX-512 elsewhere; its area with that XCR0 is 2440 bytes.
//! let zen4 = catalog::get("amd-zen4").unwrap();
//! let err = swbytes::check(&area, zen4).unwrap_err();
//! assert_eq!(
//!     err.naming(zen4.name()).to_string(),
//!     "area written with XCR0 0x2e7, 2696 bytes; layout amd-zen4 cannot produce that"
//! );
//! ```

use core::ops::Range;

use crate::component::Xfeatures;
use crate::layout::Layout;

/// `_fpx_sw_bytes.magic1`: "SXPF" (`FP_XSTATE_MAGIC1`,
/// `arch/x86/include/uapi/asm/sigcontext.h`).
pub const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;
/// The u32 after a signal frame's XSAVE area: "EXPF" (`FP_XSTATE_MAGIC2`).
pub const FP_XSTATE_MAGIC2: u32 = 0x4650_5845;
/// Size in bytes of magic2 (`FP_XSTATE_MAGIC2_SIZE`).
pub const FP_XSTATE_MAGIC2_SIZE: u32 = 4;
/// The software bytes' place in an area.
pub const SOFTWARE_BYTES: Range<usize> = 464..512;
/// The size in bytes of `struct kvm_xsave` (`KVM_GET_XSAVE`): the smallest
/// buffer KVM hands out, whatever the XCR0.
pub const KVM_XSAVE_SIZE: usize = 4096;

/// A signal frame's `struct _fpx_sw_bytes` (the fields past magic1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FpxSwBytes {
    /// Bytes from the area's start to the end of magic2 (xstate_size + 4 on
    /// x86_64).
    pub extended_size: u32,
    /// The components the frame holds: the thread's user XCR0 (its
    /// permitted dynamic components included).
    pub xfeatures: Xfeatures,
    /// The area's size in bytes (the standard size of `xfeatures`).
    pub xstate_size: u32,
}

/// What an area's software bytes say of its writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SoftwareBytes {
    /// A ptrace, core-dump or KVM copy: the kernel's user XCR0.
    Xcr0(Xfeatures),
    /// A signal frame's `_fpx_sw_bytes`.
    SignalFrame(FpxSwBytes),
}

/// Why an area's software bytes refuse it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SwBytesError {
    /// The layout cannot have written an area with this XCR0 and size.
    /// (The error stays small, so it does not carry the layout's name:
    /// [`SwBytesError::naming`] gives the message with it.)
    #[error("area written with XCR0 {xcr0}, {size} bytes; the layout cannot produce that")]
    WrongLayout {
        /// The writer's XCR0 (a signal frame's xfeatures).
        xcr0: Xfeatures,
        /// The area's size in bytes (a signal frame's xstate_size).
        size: usize,
    },
    /// A signal frame's sizes contradict each other.
    #[error("signal frame's xstate_size {xstate_size} is below 576 or above its extended_size {extended_size}")]
    FrameSizes {
        /// xstate_size.
        xstate_size: u32,
        /// extended_size.
        extended_size: u32,
    },
    /// A signal frame area shorter than its xstate_size.
    #[error("signal frame area of {len} bytes is shorter than its xstate_size {xstate_size}")]
    FrameTruncated {
        /// The area's length in bytes.
        len: usize,
        /// xstate_size.
        xstate_size: u32,
    },
    /// A signal frame area that goes past xstate_size without magic2 there.
    #[error("signal frame has no magic2 (0x46505845) at its xstate_size {xstate_size}: found {found:#x}")]
    NoMagic2 {
        /// xstate_size, where magic2 belongs.
        xstate_size: u32,
        /// The u32 found there.
        found: u32,
    },
}

impl SwBytesError {
    /// The message naming the layout refused: "area written with XCR0
    /// 0x202e7, 2816 bytes; layout amd-zen4 cannot produce that".
    pub fn naming<'a>(&'a self, layout: &'a str) -> impl core::fmt::Display + 'a {
        Naming {
            error: self,
            layout,
        }
    }
}

struct Naming<'a> {
    error: &'a SwBytesError,
    layout: &'a str,
}

impl core::fmt::Display for Naming<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.error {
            SwBytesError::WrongLayout { xcr0, size } => write!(
                f,
                "area written with XCR0 {xcr0}, {size} bytes; layout {} cannot produce that",
                self.layout
            ),
            e => write!(f, "{e}"),
        }
    }
}

fn u32_at(area: &[u8], at: usize) -> Option<u32> {
    let b = area.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(b.try_into().ok()?))
}

fn u64_at(area: &[u8], at: usize) -> Option<u64> {
    let b = area.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(b.try_into().ok()?))
}

impl SoftwareBytes {
    /// Reads the software bytes of `area` (a standard-format area): a
    /// signal frame's when the u32 at 464 is magic1; Linux's XCR0 when the
    /// u64 at 464 is an XCR0 (x87 and SSE set, bit 63 clear) and bytes
    /// 472..512 are zero; else `None` (no software bytes, or bytes no
    /// kernel wrote: XSAVE leaves these bytes as memory held them).
    #[inline]
    pub fn read(area: &[u8]) -> Option<SoftwareBytes> {
        let sw = area.get(SOFTWARE_BYTES)?;
        if u32_at(sw, 0) == Some(FP_XSTATE_MAGIC1) {
            return Some(SoftwareBytes::SignalFrame(FpxSwBytes {
                extended_size: u32_at(sw, 4)?,
                xfeatures: Xfeatures::from_bits(u64_at(sw, 8)?),
                xstate_size: u32_at(sw, 16)?,
            }));
        }
        let xcr0 = u64_at(sw, 0)?;
        let plausible = xcr0 & 0b11 == 0b11 && xcr0 >> 63 == 0;
        // Bytes 472..512 zero, tested a word at a time.
        let rest = sw[8..].chunks_exact(8).fold(0u64, |acc, w| {
            acc | u64::from_ne_bytes(w.try_into().expect("8 bytes"))
        });
        (plausible && rest == 0).then_some(SoftwareBytes::Xcr0(Xfeatures::from_bits(xcr0)))
    }

    /// The writer's XCR0 (a signal frame's xfeatures).
    pub fn xcr0(&self) -> Xfeatures {
        match self {
            SoftwareBytes::Xcr0(x) => *x,
            SoftwareBytes::SignalFrame(f) => f.xfeatures,
        }
    }

    /// The size in bytes these bytes say the writer gave the area: a signal
    /// frame's xstate_size, else `len`, the area's length.
    pub fn size(&self, len: usize) -> usize {
        match self {
            SoftwareBytes::Xcr0(_) => len,
            SoftwareBytes::SignalFrame(f) => f.xstate_size as usize,
        }
    }

    /// Whether `layout` can have written an area of `len` bytes with these
    /// software bytes. Its user components must hold the XCR0, and the size
    /// must be one it gives for that XCR0: a signal frame's xstate_size the
    /// standard size of its xfeatures; a ptrace or core buffer the
    /// standard size of its XCR0; a KVM buffer 4096 bytes
    /// ([`KVM_XSAVE_SIZE`]) or, above that, the end of one of the XCR0's
    /// components (`KVM_CAP_XSAVE2` sizes a buffer for what the guest may
    /// enable).
    ///
    /// KVM writes its host's XCR0 at 464, not the guest's, so a KVM-sized
    /// buffer (4096 bytes or more) also fits a layout whose user components
    /// are a subset of that XCR0 and fit the buffer: a guest CPU model with
    /// fewer components than its host (`XstateBuffer::from_snapshot` reads
    /// such buffers in the layout of the guest's CPUID).
    #[inline]
    pub fn producible_by(&self, len: usize, layout: &Layout) -> bool {
        let xcr0 = self.xcr0();
        if !layout.xcr0_supported().contains_all(xcr0) {
            let own = layout.xcr0_supported();
            return matches!(self, SoftwareBytes::Xcr0(_))
                && len >= KVM_XSAVE_SIZE
                && xcr0.contains_all(own)
                && layout.standard_size_for(own) as usize <= len;
        }
        let size = self.size(len);
        let standard = layout.standard_size_for(xcr0) as usize;
        match self {
            SoftwareBytes::SignalFrame(_) => size == standard,
            SoftwareBytes::Xcr0(_) => {
                size == standard
                    || size == KVM_XSAVE_SIZE
                    || (size > KVM_XSAVE_SIZE
                        && xcr0
                            .extended()
                            .iter()
                            .filter_map(|c| layout.geometry(c))
                            .any(|g| g.end() as usize == size))
            }
        }
    }

    /// Checks the bytes against `layout` for an area of `len` bytes whose
    /// first bytes are `area` (see [`check`]).
    fn check(&self, area: &[u8], layout: &Layout) -> Result<(), SwBytesError> {
        let len = area.len();
        if let SoftwareBytes::SignalFrame(f) = self {
            if f.xstate_size < 576 || f.xstate_size > f.extended_size {
                return Err(SwBytesError::FrameSizes {
                    xstate_size: f.xstate_size,
                    extended_size: f.extended_size,
                });
            }
            if len < f.xstate_size as usize {
                return Err(SwBytesError::FrameTruncated {
                    len,
                    xstate_size: f.xstate_size,
                });
            }
            if let Some(found) = u32_at(area, f.xstate_size as usize) {
                if found != FP_XSTATE_MAGIC2 {
                    return Err(SwBytesError::NoMagic2 {
                        xstate_size: f.xstate_size,
                        found,
                    });
                }
            }
        }
        if self.producible_by(len, layout) {
            Ok(())
        } else {
            Err(SwBytesError::WrongLayout {
                xcr0: self.xcr0(),
                size: self.size(len),
            })
        }
    }
}

/// Checks the software bytes of the standard-format area `area` against
/// `layout`: `Ok(None)` when it has none, `Ok(Some(..))` when `layout` can
/// have written them ([`SoftwareBytes::producible_by`]). A signal frame's
/// area may stop at xstate_size or go on; when it goes on, magic2 must
/// follow at xstate_size.
///
/// # Errors
///
/// [`SwBytesError::WrongLayout`] when the layout cannot have written the
/// area; for a signal frame, [`SwBytesError::FrameSizes`],
/// [`SwBytesError::FrameTruncated`] or [`SwBytesError::NoMagic2`] when its
/// bytes contradict each other or the area.
#[inline]
pub fn check(area: &[u8], layout: &Layout) -> Result<Option<SoftwareBytes>, SwBytesError> {
    match SoftwareBytes::read(area) {
        None => Ok(None),
        Some(sw) => sw.check(area, layout).map(|()| Some(sw)),
    }
}

/// Clears bytes 464..512 of `area` (at least 512 bytes; shorter buffers
/// are left alone): the area then has no software bytes, as
/// `--ignore-software-bytes` and a debugger that sets registers through
/// ptrace want (`asm/user.h`: "they must ensure that the sw_usable_bytes[]
/// of this structure are initialized to zero").
pub fn clear(area: &mut [u8]) {
    if let Some(sw) = area.get_mut(SOFTWARE_BYTES) {
        sw.fill(0);
    }
}

/// Writes Linux's ptrace/core software bytes into `area` (at least 512
/// bytes; shorter buffers are left alone): `xcr0` at 464, zeros to 512.
pub fn write_xcr0(area: &mut [u8], xcr0: Xfeatures) {
    if let Some(sw) = area.get_mut(SOFTWARE_BYTES) {
        sw.fill(0);
        sw[..8].copy_from_slice(&xcr0.bits().to_le_bytes());
    }
}

/// Writes a signal frame's software bytes into `area` (at least 512
/// bytes): magic1, extended_size = `xstate_size` + 4, `xfeatures`,
/// `xstate_size`, zero padding; and magic2 at `xstate_size` when `area`
/// has room for it. Shorter buffers are left alone.
pub fn write_signal_frame(area: &mut [u8], xfeatures: Xfeatures, xstate_size: u32) {
    let Some(sw) = area.get_mut(SOFTWARE_BYTES) else {
        return;
    };
    sw.fill(0);
    sw[0..4].copy_from_slice(&FP_XSTATE_MAGIC1.to_le_bytes());
    sw[4..8].copy_from_slice(&(xstate_size + FP_XSTATE_MAGIC2_SIZE).to_le_bytes());
    sw[8..16].copy_from_slice(&xfeatures.bits().to_le_bytes());
    sw[16..20].copy_from_slice(&xstate_size.to_le_bytes());
    let at = xstate_size as usize;
    if let Some(m) = area.get_mut(at..at + 4) {
        m.copy_from_slice(&FP_XSTATE_MAGIC2.to_le_bytes());
    }
}

/// The layout among `candidates` (in order) that can have written `area`,
/// by its software bytes: `Ok(None)` when the area has none (the caller's
/// default applies), the first that fits when it has.
///
/// # Errors
///
/// The first candidate's [`SwBytesError`] when none fits (for a signal
/// frame whose bytes contradict themselves, that error).
pub fn choose<'a>(
    area: &[u8],
    candidates: impl IntoIterator<Item = &'a Layout>,
) -> Result<Option<&'a Layout>, SwBytesError> {
    let Some(sw) = SoftwareBytes::read(area) else {
        return Ok(None);
    };
    let mut first_error = None;
    for layout in candidates {
        // A choice needs a layout holding every component the writer's
        // XCR0 names: the looser rule for KVM buffers (a guest CPU model
        // with fewer components, at its host's offsets) holds only for a
        // layout the caller names, never for one guessed (a Zen 4 KVM
        // buffer, XCR0 0x2e7, is not this Intel host's 0xe7 layout).
        if !layout.xcr0_supported().contains_all(sw.xcr0()) {
            first_error.get_or_insert(SwBytesError::WrongLayout {
                xcr0: sw.xcr0(),
                size: sw.size(area.len()),
            });
            continue;
        }
        match sw.check(area, layout) {
            Ok(()) => return Ok(Some(layout)),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or(SwBytesError::WrongLayout {
        xcr0: sw.xcr0(),
        size: sw.size(area.len()),
    }))
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::layout::catalog;

    fn vec_of(len: usize) -> Vec<u8> {
        vec![0u8; len]
    }

    fn ptrace_area(xcr0: u64, len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        write_xcr0(&mut b, Xfeatures::from_bits(xcr0));
        b
    }

    #[test]
    fn ptrace_buffers_fit_their_layouts_only() {
        let spr = catalog::get("intel-sapphire-rapids").unwrap();
        let zen4 = catalog::get("amd-zen4").unwrap();
        let intel = ptrace_area(0x2e7, 2696);
        assert!(check(&intel, spr).is_ok());
        assert!(matches!(
            check(&intel, zen4),
            Err(SwBytesError::WrongLayout { .. })
        ));
        let amd = ptrace_area(0x2e7, 2440);
        assert!(check(&amd, zen4).is_ok());
        assert!(check(&amd, spr).is_err());
        // KVM's 4096-byte buffer fits either.
        let kvm = ptrace_area(0x2e7, 4096);
        assert!(check(&kvm, zen4).is_ok() && check(&kvm, spr).is_ok());
        // AMX's XCR0 with KVM_CAP_XSAVE2's size: a layout with AMX.
        let amx = ptrace_area(0x602e7, 11008);
        assert!(check(&amx, spr).is_ok());
        // KVM writes the host's XCR0: a guest CPU model with fewer
        // components reads its buffer, a ptrace buffer of fewer does not.
        let lunar = catalog::get("intel-lunar-lake").unwrap();
        assert!(check(&ptrace_area(0x602e7, 4096), lunar).is_ok());
        assert!(check(&ptrace_area(0x602e7, 2696), lunar).is_err());
        assert!(check(&ptrace_area(0x2e7, 2696), catalog::get("amd-zen3").unwrap()).is_err());
    }

    #[test]
    fn signal_frames_are_checked_whole() {
        let spr = catalog::get("intel-sapphire-rapids").unwrap();
        let zen4 = catalog::get("amd-zen4").unwrap();
        let mut f = vec_of(2820);
        write_signal_frame(&mut f, Xfeatures::from_bits(0x202e7), 2816);
        assert!(check(&f, spr).is_ok());
        assert_eq!(
            check(&f, zen4).unwrap_err().naming("amd-zen4").to_string(),
            "area written with XCR0 0x202e7, 2816 bytes; layout amd-zen4 cannot produce that"
        );
        // Without magic2 where the area goes on.
        f[2816] = 0;
        assert!(matches!(check(&f, spr), Err(SwBytesError::NoMagic2 { .. })));
        // Stopping at xstate_size is a whole area too.
        let mut g = vec_of(2816);
        write_signal_frame(&mut g, Xfeatures::from_bits(0x202e7), 2816);
        assert!(check(&g, spr).is_ok());
        let mut short = vec_of(2700);
        write_signal_frame(&mut short, Xfeatures::from_bits(0x202e7), 2816);
        assert!(matches!(
            check(&short, spr),
            Err(SwBytesError::FrameTruncated { .. })
        ));
    }

    #[test]
    fn stale_bytes_are_no_software_bytes() {
        let mut a = vec_of(2696);
        a[SOFTWARE_BYTES].fill(0xAA);
        assert_eq!(SoftwareBytes::read(&a), None);
        a[SOFTWARE_BYTES].fill(0);
        assert_eq!(SoftwareBytes::read(&a), None);
        // An XCR0 without x87 and SSE is no XCR0.
        a[464] = 0x4;
        assert_eq!(SoftwareBytes::read(&a), None);
        assert_eq!(SoftwareBytes::read(&[0u8; 100]), None);
    }

    #[test]
    fn choose_takes_the_first_that_fits() {
        let spr = catalog::get("intel-sapphire-rapids").unwrap();
        let zen4 = catalog::get("amd-zen4").unwrap();
        let amd = ptrace_area(0x2e7, 2440);
        assert_eq!(
            choose(&amd, [spr, zen4]).unwrap().map(Layout::name),
            Some("amd-zen4")
        );
        assert!(choose(&[0u8; 600], [spr]).unwrap().is_none());
        assert!(choose(&ptrace_area(0x2e7, 2441), [spr, zen4]).is_err());
    }
}
