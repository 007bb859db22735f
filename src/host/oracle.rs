//! The oracle: the XSAVE family of instructions, run in user mode (the
//! `testing` feature).
//!
//! These wrappers are what the tests hold the layout engine and the views
//! to (the CPU itself decides where state goes), and what `xstate report`
//! runs as its live self-check.
//!
//! Every operation that loads register state runs in one `asm!` block that
//! first saves the thread's own state, then does its work, then restores
//! the thread's state: the safe API never leaves foreign values (an
//! unmasked MXCSR, say) in the registers the compiled code uses.
//!
//! ```
//! use xstate::host::{Host, SaveInstr};
//! use xstate::prelude::*;
//! use xstate::XsaveView;
//!
//! let host = Host::detect().unwrap();
//! let values = xstate::host::KnownValues::pattern(1);
//! let area = host.load_then_save(&values, SaveInstr::Xsave, false).unwrap();
//! let view = XsaveView::new(area.as_bytes(), host.layout()).unwrap();
//! assert_eq!(view.xmm(3).unwrap(), u128::from_le_bytes(values.vec[3][..16].try_into().unwrap()));
//! ```

use core::mem::offset_of;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::area::{AreaHeader, Format, HeaderError, LegacyRegion};
use crate::component::{ComponentId, Xfeatures};
use crate::layout::{Layout, LayoutError};

/// Why a host operation could not run.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostError {
    /// The OS has not enabled XSAVE (CPUID.1:ECX.OSXSAVE clear).
    #[error("XSAVE is not enabled by the OS (CPUID.1:ECX.OSXSAVE is clear)")]
    NoXsave,
    /// The CPU lacks the instruction.
    #[error("this CPU does not support {0}")]
    Unsupported(&'static str),
    /// The host layout could not be read.
    #[error("host layout: {0}")]
    Layout(#[from] LayoutError),
    /// An area XRSTOR would fault on.
    #[error("XRSTOR would fault on this area: {0}")]
    BadArea(#[from] HeaderError),
    /// An area with components XCR0 does not enable.
    #[error("area holds components {0} that XCR0 does not enable")]
    NotEnabled(Xfeatures),
    /// MXCSR bits outside the CPU's MXCSR mask (XRSTOR raises #GP).
    #[error("MXCSR {mxcsr:#x} has bits outside the MXCSR mask {mask:#x}")]
    Mxcsr {
        /// The MXCSR in the area.
        mxcsr: u32,
        /// The CPU's mask.
        mask: u32,
    },
    /// The process has no AMX permission (or the request was refused).
    #[error("AMX tile data is not permitted for this process (arch_prctl errno {0})")]
    AmxPermission(i32),
    /// A live TILECFG that LDTILECFG / XRSTOR would fault on.
    #[error("XRSTOR would fault on this area's TILECFG: {0}")]
    TileConfig(#[from] crate::area::TileConfigError),
    /// A system call the oracle needs failed.
    #[error("{what} failed: errno {errno}")]
    Os {
        /// The call.
        what: &'static str,
        /// Its errno.
        errno: i32,
    },
}

/// An XSAVE area buffer aligned to 64 bytes, as the instructions require.
#[derive(Clone)]
pub struct HostArea {
    blocks: Vec<Block>,
    len: usize,
}

#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C, align(64))]
struct Block([u8; 64]);

impl core::fmt::Debug for HostArea {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HostArea").field("len", &self.len).finish()
    }
}

impl HostArea {
    /// `len` bytes, each set to `fill`.
    pub fn new(len: usize, fill: u8) -> HostArea {
        HostArea {
            blocks: vec![Block([fill; 64]); len.div_ceil(64)],
            len,
        }
    }

    /// A copy of `bytes` in aligned memory.
    pub fn from_bytes(bytes: &[u8]) -> HostArea {
        let mut area = HostArea::new(bytes.len(), 0);
        area.as_bytes_mut().copy_from_slice(bytes);
        area
    }

    /// The area's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.blocks.as_bytes()[..self.len]
    }

    /// The area's bytes, writable.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        let len = self.len;
        &mut self.blocks.as_mut_bytes()[..len]
    }

    pub(super) fn as_mut_ptr(&mut self) -> *mut u8 {
        self.blocks.as_mut_ptr().cast()
    }
}

/// The asm lines that save to `{out}` with the instruction `{kind}` names
/// ([`SaveInstr`] code: 0 XSAVE, 1 XSAVEOPT, 2 XSAVEC), RFBM in EDX:EAX.
macro_rules! save_selected {
    () => {
        concat!(
            "cmp {kind}, 1\n",
            "je 2f\n",
            "cmp {kind}, 2\n",
            "je 3f\n",
            "xsave64 [{out}]\n",
            "jmp 4f\n",
            "2:\n",
            "xsaveopt64 [{out}]\n",
            "jmp 4f\n",
            "3:\n",
            "xsavec64 [{out}]\n",
            "4:\n",
        )
    };
}
pub(super) use save_selected;

/// The save instructions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveInstr {
    /// XSAVE: standard format.
    Xsave,
    /// XSAVEOPT: standard format, may skip unmodified components.
    Xsaveopt,
    /// XSAVEC: compacted format, init components not written.
    Xsavec,
}

impl SaveInstr {
    /// The instruction's name.
    pub fn name(self) -> &'static str {
        match self {
            SaveInstr::Xsave => "XSAVE",
            SaveInstr::Xsaveopt => "XSAVEOPT",
            SaveInstr::Xsavec => "XSAVEC",
        }
    }

    /// The format it writes.
    pub fn format(self) -> Format {
        match self {
            SaveInstr::Xsavec => Format::Compacted,
            _ => Format::Standard,
        }
    }

    pub(super) fn code(self) -> u64 {
        self as u64
    }
}

/// The widest vector registers the host can load and store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum VectorWidth {
    /// XMM0-15 (SSE).
    Xmm,
    /// YMM0-15 (AVX).
    Ymm,
    /// ZMM0-31 and k0-7 (AVX-512 F and BW).
    Zmm,
}

/// Register values to load with plain instructions (or what was stored
/// from the registers), laid out for the `asm!` blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct KnownValues {
    /// ZMM0-31 (only the low 16 or 32 bytes of the first 16 are used below AVX-512).
    pub vec: [[u8; 64]; 32],
    /// k0-k7.
    pub k: [u64; 8],
    /// ST0-ST7 as 80-bit values (ST0 first).
    pub st: [[u8; 10]; 8],
    /// FCW.
    pub fcw: u16,
    /// MXCSR.
    pub mxcsr: u32,
}

impl KnownValues {
    /// A distinctive pattern derived from `seed`: every vector byte
    /// differs, x87 values are normal numbers, FCW and MXCSR are valid and
    /// differ from their init values.
    pub fn pattern(seed: u8) -> KnownValues {
        let mut vec = [[0u8; 64]; 32];
        for (r, reg) in vec.iter_mut().enumerate() {
            for (b, byte) in reg.iter_mut().enumerate() {
                *byte = (r as u8)
                    .wrapping_mul(64)
                    .wrapping_add(b as u8)
                    .wrapping_add(seed)
                    | 1;
            }
        }
        let k = core::array::from_fn(|i| {
            0x0101_0101_0101_0101u64.wrapping_mul(i as u64 + 1) ^ u64::from(seed)
        });
        let st = core::array::from_fn(|i| {
            // 1.xxx * 2^i: exponent 0x3FFF + i, explicit integer bit set.
            let mantissa = 0x8000_0000_0000_0000u64 | (u64::from(seed) << 32) | i as u64;
            let exp = 0x3FFFu16 + i as u16;
            let mut v = [0u8; 10];
            v[..8].copy_from_slice(&mantissa.to_le_bytes());
            v[8..].copy_from_slice(&exp.to_le_bytes());
            v
        });
        KnownValues {
            vec,
            k,
            st,
            // Precision control 53 bits, all exceptions masked.
            fcw: 0x027F,
            // All exceptions masked, flush-to-zero and denormals-are-zero.
            mxcsr: 0x9FC0,
        }
    }
}

/// The host: its layout, the enabled XCR0 and the instructions it has.
#[derive(Clone, Debug)]
pub struct Host {
    layout: Layout,
    xcr0: Xfeatures,
    xsaveopt: bool,
    xsavec: bool,
    width: VectorWidth,
}

impl Host {
    /// Reads the host's layout, XCR0 and features.
    ///
    /// # Errors
    ///
    /// [`HostError::NoXsave`] when the OS has not enabled XSAVE,
    /// [`HostError::Layout`] when the host's leaf 0xD is unusable.
    pub fn detect() -> Result<Host, HostError> {
        let xcr0 = super::xcr0().ok_or(HostError::NoXsave)?;
        let layout = super::layout()?;
        let sub1 = core::arch::x86_64::__cpuid_count(0xD, 1);
        let width = if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
        {
            VectorWidth::Zmm
        } else if std::arch::is_x86_feature_detected!("avx") {
            VectorWidth::Ymm
        } else {
            VectorWidth::Xmm
        };
        Ok(Host {
            layout,
            // User components only: XSAVE/XSAVEC never touch supervisor state.
            xcr0,
            xsaveopt: sub1.eax & 1 != 0,
            xsavec: sub1.eax & 2 != 0,
            width,
        })
    }

    /// The host's layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// XCR0 as the OS enabled it.
    pub fn xcr0(&self) -> Xfeatures {
        self.xcr0
    }

    /// The widest vector registers loaded and stored.
    pub fn vector_width(&self) -> VectorWidth {
        self.width
    }

    /// Whether the CPU has `instr`.
    pub fn supports(&self, instr: SaveInstr) -> bool {
        match instr {
            SaveInstr::Xsave => true,
            SaveInstr::Xsaveopt => self.xsaveopt,
            SaveInstr::Xsavec => self.xsavec,
        }
    }

    /// Whether XCR0 enables `component`.
    pub fn enabled(&self, component: ComponentId) -> bool {
        self.xcr0.contains(component)
    }

    pub(super) fn area_for(&self, instr: SaveInstr, fill: u8, rfbm: Xfeatures) -> HostArea {
        let len = match instr.format() {
            Format::Standard => self.layout.standard_size_for(self.xcr0),
            Format::Compacted => self.layout.compacted_size_for(rfbm),
        };
        let mut area = HostArea::new(len as usize, fill);
        // XSAVE writes only XSTATE_BV (and XSAVEC also XCOMP_BV): the rest
        // of the header must be zero already, as software keeps it.
        area.as_bytes_mut()[crate::area::HEADER_OFFSET..crate::area::EXTENDED_START].fill(0);
        area
    }

    pub(super) fn check(&self, instr: SaveInstr) -> Result<(), HostError> {
        if self.supports(instr) {
            Ok(())
        } else {
            Err(HostError::Unsupported(instr.name()))
        }
    }

    /// Saves the thread's current state with `instr` (RFBM = XCR0) into a
    /// new area whose bytes are all `fill` beforehand, but for a zeroed
    /// XSAVE header.
    ///
    /// # Errors
    ///
    /// [`HostError::Unsupported`] when the CPU lacks `instr`.
    pub fn save(&self, instr: SaveInstr, fill: u8) -> Result<HostArea, HostError> {
        self.check(instr)?;
        let mut out = self.area_for(instr, fill, self.xcr0);
        let (lo, hi) = halves(self.xcr0);
        // SAFETY: `out` is 64-byte aligned and sized for RFBM = XCR0 in the
        // instruction's format; the instruction is supported (checked); it
        // only writes the area and reads register state.
        unsafe {
            core::arch::asm!(
                save_selected!(),
                out = in(reg) out.as_mut_ptr(),
                kind = in(reg) instr.code(),
                in("eax") lo,
                in("edx") hi,
                options(nostack),
            );
        }
        Ok(out)
    }

    /// Loads `values` into the vector, opmask, x87 and MXCSR registers with
    /// plain instructions (as wide as [`vector_width`](Self::vector_width)),
    /// optionally runs VZEROUPPER, saves with `instr` into an area
    /// pre-filled with 0xAA, and restores the thread's own state.
    ///
    /// # Errors
    ///
    /// [`HostError::Unsupported`] when the CPU lacks `instr`.
    pub fn load_then_save(
        &self,
        values: &KnownValues,
        instr: SaveInstr,
        vzeroupper: bool,
    ) -> Result<HostArea, HostError> {
        self.load_then_save_masked(values, instr, vzeroupper, self.xcr0)
    }

    /// [`load_then_save`](Self::load_then_save) with the save's RFBM
    /// (requested-feature bitmap) given: XSAVEC then holds exactly the
    /// components `rfbm & XCR0`.
    ///
    /// # Errors
    ///
    /// [`HostError::Unsupported`] when the CPU lacks `instr`.
    pub fn load_then_save_masked(
        &self,
        values: &KnownValues,
        instr: SaveInstr,
        vzeroupper: bool,
        rfbm: Xfeatures,
    ) -> Result<HostArea, HostError> {
        self.check(instr)?;
        let mut orig = HostArea::new(self.layout.standard_size_for(self.xcr0) as usize, 0);
        let rfbm = rfbm & self.xcr0;
        let mut out = self.area_for(instr, 0xAA, rfbm);
        let (lo, hi) = halves(self.xcr0);
        let (rlo, rhi) = halves(rfbm);
        let (vals, orig_p, out_p) = (
            values as *const KnownValues,
            orig.as_mut_ptr(),
            out.as_mut_ptr(),
        );
        let (kind, vzu) = (
            instr.code(),
            u64::from(vzeroupper && self.width >= VectorWidth::Ymm),
        );
        macro_rules! run {
            ($($load:literal,)*) => {
                // SAFETY: both areas are 64-byte aligned and sized for
                // RFBM = XCR0 in their formats; every instruction used is
                // supported (the vector width and `check` say so); the
                // thread's state is saved to `orig` first and restored from
                // it last, so no register the compiler relies on changes.
                unsafe {
                    core::arch::asm!(
                        "xsave64 [{orig}]",
                        "# opmask values at offset {k}",
                        "fninit",
                        "fldcw word ptr [{vals} + {fcw}]",
                        "ldmxcsr dword ptr [{vals} + {mxcsr}]",
                        $($load,)*
                        "test {vzu}, {vzu}",
                        "jz 5f",
                        "vzeroupper",
                        "5:",
                        "mov eax, {rlo:e}",
                        "mov edx, {rhi:e}",
                        save_selected!(),
                        "mov eax, {lo:e}",
                        "mov edx, {hi:e}",
                        "xrstor64 [{orig}]",
                        orig = in(reg) orig_p,
                        out = in(reg) out_p,
                        vals = in(reg) vals,
                        rlo = in(reg) rlo,
                        rhi = in(reg) rhi,
                        lo = in(reg) lo,
                        hi = in(reg) hi,
                        kind = in(reg) kind,
                        vzu = in(reg) vzu,
                        fcw = const offset_of!(KnownValues, fcw),
                        mxcsr = const offset_of!(KnownValues, mxcsr),
                        st = const offset_of!(KnownValues, st),
                        k = const offset_of!(KnownValues, k),
                        inout("eax") lo => _,
                        inout("edx") hi => _,
                        options(nostack),
                    );
                }
            };
        }
        match self.width {
            VectorWidth::Zmm => run!(
                "fld tbyte ptr [{vals} + {st} + 70]",
                "fld tbyte ptr [{vals} + {st} + 60]",
                "fld tbyte ptr [{vals} + {st} + 50]",
                "fld tbyte ptr [{vals} + {st} + 40]",
                "fld tbyte ptr [{vals} + {st} + 30]",
                "fld tbyte ptr [{vals} + {st} + 20]",
                "fld tbyte ptr [{vals} + {st} + 10]",
                "fld tbyte ptr [{vals} + {st} + 0]",
                "vmovdqu64 zmm0, [{vals} + 0]",
                "vmovdqu64 zmm1, [{vals} + 64]",
                "vmovdqu64 zmm2, [{vals} + 128]",
                "vmovdqu64 zmm3, [{vals} + 192]",
                "vmovdqu64 zmm4, [{vals} + 256]",
                "vmovdqu64 zmm5, [{vals} + 320]",
                "vmovdqu64 zmm6, [{vals} + 384]",
                "vmovdqu64 zmm7, [{vals} + 448]",
                "vmovdqu64 zmm8, [{vals} + 512]",
                "vmovdqu64 zmm9, [{vals} + 576]",
                "vmovdqu64 zmm10, [{vals} + 640]",
                "vmovdqu64 zmm11, [{vals} + 704]",
                "vmovdqu64 zmm12, [{vals} + 768]",
                "vmovdqu64 zmm13, [{vals} + 832]",
                "vmovdqu64 zmm14, [{vals} + 896]",
                "vmovdqu64 zmm15, [{vals} + 960]",
                "vmovdqu64 zmm16, [{vals} + 1024]",
                "vmovdqu64 zmm17, [{vals} + 1088]",
                "vmovdqu64 zmm18, [{vals} + 1152]",
                "vmovdqu64 zmm19, [{vals} + 1216]",
                "vmovdqu64 zmm20, [{vals} + 1280]",
                "vmovdqu64 zmm21, [{vals} + 1344]",
                "vmovdqu64 zmm22, [{vals} + 1408]",
                "vmovdqu64 zmm23, [{vals} + 1472]",
                "vmovdqu64 zmm24, [{vals} + 1536]",
                "vmovdqu64 zmm25, [{vals} + 1600]",
                "vmovdqu64 zmm26, [{vals} + 1664]",
                "vmovdqu64 zmm27, [{vals} + 1728]",
                "vmovdqu64 zmm28, [{vals} + 1792]",
                "vmovdqu64 zmm29, [{vals} + 1856]",
                "vmovdqu64 zmm30, [{vals} + 1920]",
                "vmovdqu64 zmm31, [{vals} + 1984]",
                "kmovq k0, [{vals} + {k} + 0]",
                "kmovq k1, [{vals} + {k} + 8]",
                "kmovq k2, [{vals} + {k} + 16]",
                "kmovq k3, [{vals} + {k} + 24]",
                "kmovq k4, [{vals} + {k} + 32]",
                "kmovq k5, [{vals} + {k} + 40]",
                "kmovq k6, [{vals} + {k} + 48]",
                "kmovq k7, [{vals} + {k} + 56]",
            ),
            VectorWidth::Ymm => run!(
                "fld tbyte ptr [{vals} + {st} + 70]",
                "fld tbyte ptr [{vals} + {st} + 60]",
                "fld tbyte ptr [{vals} + {st} + 50]",
                "fld tbyte ptr [{vals} + {st} + 40]",
                "fld tbyte ptr [{vals} + {st} + 30]",
                "fld tbyte ptr [{vals} + {st} + 20]",
                "fld tbyte ptr [{vals} + {st} + 10]",
                "fld tbyte ptr [{vals} + {st} + 0]",
                "vmovdqu ymm0, [{vals} + 0]",
                "vmovdqu ymm1, [{vals} + 64]",
                "vmovdqu ymm2, [{vals} + 128]",
                "vmovdqu ymm3, [{vals} + 192]",
                "vmovdqu ymm4, [{vals} + 256]",
                "vmovdqu ymm5, [{vals} + 320]",
                "vmovdqu ymm6, [{vals} + 384]",
                "vmovdqu ymm7, [{vals} + 448]",
                "vmovdqu ymm8, [{vals} + 512]",
                "vmovdqu ymm9, [{vals} + 576]",
                "vmovdqu ymm10, [{vals} + 640]",
                "vmovdqu ymm11, [{vals} + 704]",
                "vmovdqu ymm12, [{vals} + 768]",
                "vmovdqu ymm13, [{vals} + 832]",
                "vmovdqu ymm14, [{vals} + 896]",
                "vmovdqu ymm15, [{vals} + 960]",
            ),
            VectorWidth::Xmm => run!(
                "fld tbyte ptr [{vals} + {st} + 70]",
                "fld tbyte ptr [{vals} + {st} + 60]",
                "fld tbyte ptr [{vals} + {st} + 50]",
                "fld tbyte ptr [{vals} + {st} + 40]",
                "fld tbyte ptr [{vals} + {st} + 30]",
                "fld tbyte ptr [{vals} + {st} + 20]",
                "fld tbyte ptr [{vals} + {st} + 10]",
                "fld tbyte ptr [{vals} + {st} + 0]",
                "movdqu xmm0, [{vals} + 0]",
                "movdqu xmm1, [{vals} + 64]",
                "movdqu xmm2, [{vals} + 128]",
                "movdqu xmm3, [{vals} + 192]",
                "movdqu xmm4, [{vals} + 256]",
                "movdqu xmm5, [{vals} + 320]",
                "movdqu xmm6, [{vals} + 384]",
                "movdqu xmm7, [{vals} + 448]",
                "movdqu xmm8, [{vals} + 512]",
                "movdqu xmm9, [{vals} + 576]",
                "movdqu xmm10, [{vals} + 640]",
                "movdqu xmm11, [{vals} + 704]",
                "movdqu xmm12, [{vals} + 768]",
                "movdqu xmm13, [{vals} + 832]",
                "movdqu xmm14, [{vals} + 896]",
                "movdqu xmm15, [{vals} + 960]",
            ),
        }
        Ok(out)
    }

    /// Checks what XRSTOR would fault on: the header, components XCR0 does
    /// not enable, MXCSR bits outside the mask, live AMX tile data without
    /// the process's AMX permission, and a live TILECFG LDTILECFG would
    /// refuse.
    ///
    /// # Errors
    ///
    /// The first fault found: a [`HostError::BadArea`] header, [`HostError::NotEnabled`],
    /// [`HostError::Mxcsr`], [`HostError::AmxPermission`] or [`HostError::TileConfig`].
    pub fn check_restorable(&self, area: &[u8]) -> Result<(), HostError> {
        let header = AreaHeader::parse(area, &self.layout)?;
        let held = match header.format {
            Format::Standard => header.xstate_bv,
            Format::Compacted => {
                self.check(SaveInstr::Xsavec)?;
                header.xcomp_bv.components()
            }
        };
        let not_enabled = (held | header.xstate_bv) - self.xcr0;
        if !not_enabled.is_empty() {
            return Err(HostError::NotEnabled(not_enabled));
        }
        let mxcsr = LegacyRegion::of(area).mxcsr.get();
        let mask = self.layout.mxcsr_mask();
        if mxcsr & !mask != 0 {
            return Err(HostError::Mxcsr { mxcsr, mask });
        }
        // Live tile data needs the process's AMX permission: without it
        // XFD is armed and XRSTOR raises #NM (SIGILL from the kernel).
        if header.xstate_bv.contains(ComponentId::TILEDATA) && !super::amx::permitted() {
            return Err(HostError::AmxPermission(libc::EPERM));
        }
        self.check_tilecfg(area, &header)
    }

    /// Restores `area` with XRSTOR (RFBM = XCR0; either format), stores the
    /// vector, opmask, MXCSR and FCW registers directly to memory, saves
    /// with `instr` into an area pre-filled with 0xAA, and restores the
    /// thread's own state. Returns the saved area and the direct stores.
    ///
    /// # Errors
    ///
    /// As [`check_restorable`](Self::check_restorable), and
    /// [`HostError::Unsupported`] when the CPU lacks `instr`.
    pub fn restore_then_save(
        &self,
        area: &[u8],
        instr: SaveInstr,
    ) -> Result<(HostArea, KnownValues), HostError> {
        self.check(instr)?;
        self.check_restorable(area)?;
        let mut input = HostArea::from_bytes(area);
        let mut orig = HostArea::new(self.layout.standard_size_for(self.xcr0) as usize, 0);
        let mut out = self.area_for(instr, 0xAA, self.xcr0);
        let mut dump = KnownValues {
            vec: [[0; 64]; 32],
            k: [0; 8],
            st: [[0; 10]; 8],
            fcw: 0,
            mxcsr: 0,
        };
        let (lo, hi) = halves(self.xcr0);
        let (in_p, orig_p, out_p, dump_p) = (
            input.as_mut_ptr(),
            orig.as_mut_ptr(),
            out.as_mut_ptr(),
            &mut dump as *mut KnownValues,
        );
        let kind = instr.code();
        macro_rules! run {
            ($($store:literal,)*) => {
                // SAFETY: the areas are 64-byte aligned and sized for
                // RFBM = XCR0; `input` passed `check_restorable`, so XRSTOR
                // does not fault; the stores write only into `dump`; the
                // thread's state is saved to `orig` first and restored last.
                unsafe {
                    core::arch::asm!(
                        "xsave64 [{orig}]",
                        "# opmask stores at offset {k}",
                        "xrstor64 [{input}]",
                        $($store,)*
                        "stmxcsr dword ptr [{dump} + {mxcsr}]",
                        "fnstcw word ptr [{dump} + {fcw}]",
                        save_selected!(),
                        "xrstor64 [{orig}]",
                        orig = in(reg) orig_p,
                        input = in(reg) in_p,
                        out = in(reg) out_p,
                        dump = in(reg) dump_p,
                        kind = in(reg) kind,
                        fcw = const offset_of!(KnownValues, fcw),
                        mxcsr = const offset_of!(KnownValues, mxcsr),
                        k = const offset_of!(KnownValues, k),
                        in("eax") lo,
                        in("edx") hi,
                        options(nostack),
                    );
                }
            };
        }
        match self.width {
            VectorWidth::Zmm => run!(
                "vmovdqu64 [{dump} + 0], zmm0",
                "vmovdqu64 [{dump} + 64], zmm1",
                "vmovdqu64 [{dump} + 128], zmm2",
                "vmovdqu64 [{dump} + 192], zmm3",
                "vmovdqu64 [{dump} + 256], zmm4",
                "vmovdqu64 [{dump} + 320], zmm5",
                "vmovdqu64 [{dump} + 384], zmm6",
                "vmovdqu64 [{dump} + 448], zmm7",
                "vmovdqu64 [{dump} + 512], zmm8",
                "vmovdqu64 [{dump} + 576], zmm9",
                "vmovdqu64 [{dump} + 640], zmm10",
                "vmovdqu64 [{dump} + 704], zmm11",
                "vmovdqu64 [{dump} + 768], zmm12",
                "vmovdqu64 [{dump} + 832], zmm13",
                "vmovdqu64 [{dump} + 896], zmm14",
                "vmovdqu64 [{dump} + 960], zmm15",
                "vmovdqu64 [{dump} + 1024], zmm16",
                "vmovdqu64 [{dump} + 1088], zmm17",
                "vmovdqu64 [{dump} + 1152], zmm18",
                "vmovdqu64 [{dump} + 1216], zmm19",
                "vmovdqu64 [{dump} + 1280], zmm20",
                "vmovdqu64 [{dump} + 1344], zmm21",
                "vmovdqu64 [{dump} + 1408], zmm22",
                "vmovdqu64 [{dump} + 1472], zmm23",
                "vmovdqu64 [{dump} + 1536], zmm24",
                "vmovdqu64 [{dump} + 1600], zmm25",
                "vmovdqu64 [{dump} + 1664], zmm26",
                "vmovdqu64 [{dump} + 1728], zmm27",
                "vmovdqu64 [{dump} + 1792], zmm28",
                "vmovdqu64 [{dump} + 1856], zmm29",
                "vmovdqu64 [{dump} + 1920], zmm30",
                "vmovdqu64 [{dump} + 1984], zmm31",
                "kmovq [{dump} + {k} + 0], k0",
                "kmovq [{dump} + {k} + 8], k1",
                "kmovq [{dump} + {k} + 16], k2",
                "kmovq [{dump} + {k} + 24], k3",
                "kmovq [{dump} + {k} + 32], k4",
                "kmovq [{dump} + {k} + 40], k5",
                "kmovq [{dump} + {k} + 48], k6",
                "kmovq [{dump} + {k} + 56], k7",
            ),
            VectorWidth::Ymm => run!(
                "vmovdqu [{dump} + 0], ymm0",
                "vmovdqu [{dump} + 64], ymm1",
                "vmovdqu [{dump} + 128], ymm2",
                "vmovdqu [{dump} + 192], ymm3",
                "vmovdqu [{dump} + 256], ymm4",
                "vmovdqu [{dump} + 320], ymm5",
                "vmovdqu [{dump} + 384], ymm6",
                "vmovdqu [{dump} + 448], ymm7",
                "vmovdqu [{dump} + 512], ymm8",
                "vmovdqu [{dump} + 576], ymm9",
                "vmovdqu [{dump} + 640], ymm10",
                "vmovdqu [{dump} + 704], ymm11",
                "vmovdqu [{dump} + 768], ymm12",
                "vmovdqu [{dump} + 832], ymm13",
                "vmovdqu [{dump} + 896], ymm14",
                "vmovdqu [{dump} + 960], ymm15",
            ),
            VectorWidth::Xmm => run!(
                "movdqu [{dump} + 0], xmm0",
                "movdqu [{dump} + 64], xmm1",
                "movdqu [{dump} + 128], xmm2",
                "movdqu [{dump} + 192], xmm3",
                "movdqu [{dump} + 256], xmm4",
                "movdqu [{dump} + 320], xmm5",
                "movdqu [{dump} + 384], xmm6",
                "movdqu [{dump} + 448], xmm7",
                "movdqu [{dump} + 512], xmm8",
                "movdqu [{dump} + 576], xmm9",
                "movdqu [{dump} + 640], xmm10",
                "movdqu [{dump} + 704], xmm11",
                "movdqu [{dump} + 768], xmm12",
                "movdqu [{dump} + 832], xmm13",
                "movdqu [{dump} + 896], xmm14",
                "movdqu [{dump} + 960], xmm15",
            ),
        }
        Ok((out, dump))
    }
}

/// EDX:EAX for the XSAVE family: the high and low halves of `rfbm`.
pub(super) fn halves(rfbm: Xfeatures) -> (u32, u32) {
    (rfbm.bits() as u32, (rfbm.bits() >> 32) as u32)
}
