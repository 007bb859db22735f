//! AMX on the host CPU: tile configuration and tile data loaded with
//! LDTILECFG and TILELOADD, saved with the XSAVE family, restored with
//! XRSTOR and read back with STTILECFG and TILESTORED.
//!
//! Linux gives a process AMX tile data only after
//! `arch_prctl(ARCH_REQ_XCOMP_PERM, 18)` ([`request_permission`]); until
//! then IA32_XFD\[18\] is armed and the first tile instruction raises #NM,
//! which the kernel turns into SIGILL. Every operation here saves the
//! thread's own state first and restores it last, so the thread's AMX
//! state is left as it was found.

use core::mem::offset_of;

use zerocopy::IntoBytes;

use crate::component::Xfeatures;

use super::oracle::{halves, save_selected};
use super::{Host, HostArea, HostError, SaveInstr};
use crate::area::{palette1, AreaHeader, Format, TileConfig};
use crate::component::ComponentId;

/// `arch_prctl` code to request permission for a dynamic XSAVE feature.
const ARCH_REQ_XCOMP_PERM: libc::c_int = 0x1023;

/// `arch_prctl` code to read the dynamic XSAVE features this process may use.
const ARCH_GET_XCOMP_PERM: libc::c_int = 0x1022;

/// Whether this process may use AMX tile data
/// (`arch_prctl(ARCH_GET_XCOMP_PERM)` has bit 18).
pub fn permitted() -> bool {
    let mut mask = 0u64;
    // SAFETY: ARCH_GET_XCOMP_PERM writes one u64 to the address given,
    // which is `mask`, live across the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_GET_XCOMP_PERM,
            &mut mask as *mut u64,
        )
    };
    r == 0 && Xfeatures::from_bits(mask).contains(ComponentId::TILEDATA)
}

/// Bytes between the rows of a tile in memory: one full row, so a tile's
/// 1024 bytes in memory are laid out as in the XSAVE area.
pub const STRIDE: usize = 64;

/// Requests this process's permission to use AMX tile data (component
/// 18), as Linux requires before the first tile instruction.
///
/// # Errors
///
/// [`HostError::AmxPermission`] with the kernel's errno.
pub fn request_permission() -> Result<(), HostError> {
    // SAFETY: arch_prctl(ARCH_REQ_XCOMP_PERM, 18) takes two integer
    // arguments and touches no memory of ours.
    let r = unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            libc::c_ulong::from(ComponentId::TILEDATA.index()),
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(HostError::AmxPermission(
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        ))
    }
}

/// A tile configuration and the eight tiles, laid out for the `asm!`
/// blocks: each tile is 16 rows of 64 bytes, as in the XSAVE area, with the
/// bytes outside its configured rows and columns zero (as the tile
/// register holds them after TILELOADD).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct TileState {
    /// The 64-byte tile configuration.
    pub cfg: [u8; 64],
    /// TMM0-7.
    pub tmm: [[u8; 1024]; 8],
}

impl TileState {
    /// Palette 1 with rows and bytes per row that differ per tile (tile
    /// `i`: 16 - `i` rows of 64 - 4`i` bytes) and distinctive data derived
    /// from `seed`.
    pub fn pattern(seed: u8) -> TileState {
        let rows: [u8; 8] = core::array::from_fn(|i| palette1::MAX_ROWS - i as u8);
        let colsb: [u16; 8] = core::array::from_fn(|i| palette1::BYTES_PER_ROW - 4 * i as u16);
        let cfg = TileConfig::palette1(rows, colsb);
        let tmm = core::array::from_fn(|t| {
            let mut tile = [0u8; 1024];
            for r in 0..usize::from(rows[t]) {
                for c in 0..usize::from(colsb[t]) {
                    tile[r * STRIDE + c] =
                        (t as u8).wrapping_mul(37) ^ (r as u8).wrapping_mul(11) ^ (c as u8) ^ seed
                            | 1;
                }
            }
            tile
        });
        let mut out = TileState { cfg: [0; 64], tmm };
        out.cfg.copy_from_slice(cfg.as_bytes());
        out
    }

    /// All zero: an init configuration and empty tiles.
    pub fn zeroed() -> TileState {
        TileState {
            cfg: [0; 64],
            tmm: [[0; 1024]; 8],
        }
    }

    /// The tiles the configuration defines (rows and bytes per row both
    /// non-zero), one bit each; 0 unless the palette is 1.
    pub fn configured(&self) -> u8 {
        let cfg = <TileConfig as zerocopy::FromBytes>::ref_from_bytes(&self.cfg[..])
            .expect("64 bytes, unaligned type");
        if cfg.palette != 1 {
            return 0;
        }
        (0..palette1::TILES).fold(0, |m, t| {
            if cfg.rows[t] != 0 && cfg.colsb[t].get() != 0 {
                m | 1 << t
            } else {
                m
            }
        })
    }
}

impl Host {
    /// Whether the CPU has AMX-TILE (CPUID.(7,0):EDX\[24\]) and XCR0 enables
    /// TILECFG and TILEDATA.
    pub fn has_amx(&self) -> bool {
        let leaf7 = super::cpuid(7, 0);
        let both = ComponentId::TILECFG.bit() | ComponentId::TILEDATA.bit();
        leaf7.edx & (1 << 24) != 0 && self.xcr0().contains_all(both)
    }

    fn check_amx(&self) -> Result<(), HostError> {
        if self.has_amx() {
            Ok(())
        } else {
            Err(HostError::Unsupported("AMX"))
        }
    }

    /// Loads `tiles` with LDTILECFG and TILELOADD (stride [`STRIDE`]),
    /// optionally runs TILERELEASE, saves with `instr` (RFBM = XCR0) into an
    /// area pre-filled with 0xAA, and restores the thread's own state.
    ///
    /// # Errors
    ///
    /// [`HostError::Unsupported`] without AMX or `instr`;
    /// [`HostError::TileConfig`] for a configuration LDTILECFG would fault on.
    /// Call [`request_permission`] first.
    pub fn load_tiles_then_save(
        &self,
        tiles: &TileState,
        instr: SaveInstr,
        release: bool,
    ) -> Result<HostArea, HostError> {
        self.check(instr)?;
        self.check_amx()?;
        config_of(&tiles.cfg).check()?;
        let configured = tiles.configured();
        let mut orig = HostArea::new(self.layout().standard_size_for(self.xcr0()) as usize, 0);
        let mut out = self.area_for(instr, 0xAA, self.xcr0());
        let (lo, hi) = halves(self.xcr0());
        let (tiles_p, orig_p, out_p) = (
            tiles as *const TileState,
            orig.as_mut_ptr(),
            out.as_mut_ptr(),
        );
        // SAFETY: both areas are 64-byte aligned and sized for RFBM = XCR0
        // in their formats; AMX and `instr` are supported (checked) and the
        // configuration passed LDTILECFG's checks; TILELOADD reads at most
        // 16 rows of 64 bytes from each 1024-byte tile of `tiles` and only
        // for configured tiles (unconfigured ones are skipped, as a load
        // into them would fault); the thread's state, AMX included, is
        // saved to `orig` first and restored from it last.
        unsafe {
            core::arch::asm!(
                "xsave64 [{orig}]",
                "ldtilecfg [{tiles} + {cfg}]",
                "mov {stride}, 64",
                "test {cfgd}, 1",
                "jz 20f",
                "tileloadd tmm0, [{tiles} + {stride} * 1 + {tmm} + 0]",
                "20:",
                "test {cfgd}, 2",
                "jz 21f",
                "tileloadd tmm1, [{tiles} + {stride} * 1 + {tmm} + 1024]",
                "21:",
                "test {cfgd}, 4",
                "jz 22f",
                "tileloadd tmm2, [{tiles} + {stride} * 1 + {tmm} + 2048]",
                "22:",
                "test {cfgd}, 8",
                "jz 23f",
                "tileloadd tmm3, [{tiles} + {stride} * 1 + {tmm} + 3072]",
                "23:",
                "test {cfgd}, 16",
                "jz 24f",
                "tileloadd tmm4, [{tiles} + {stride} * 1 + {tmm} + 4096]",
                "24:",
                "test {cfgd}, 32",
                "jz 25f",
                "tileloadd tmm5, [{tiles} + {stride} * 1 + {tmm} + 5120]",
                "25:",
                "test {cfgd}, 64",
                "jz 26f",
                "tileloadd tmm6, [{tiles} + {stride} * 1 + {tmm} + 6144]",
                "26:",
                "test {cfgd}, 128",
                "jz 27f",
                "tileloadd tmm7, [{tiles} + {stride} * 1 + {tmm} + 7168]",
                "27:",
                "test {rel}, {rel}",
                "jz 28f",
                "tilerelease",
                "28:",
                save_selected!(),
                "xrstor64 [{orig}]",
                orig = in(reg) orig_p,
                out = in(reg) out_p,
                tiles = in(reg) tiles_p,
                kind = in(reg) instr.code(),
                cfgd = in(reg) u64::from(configured),
                rel = in(reg) u64::from(release),
                stride = out(reg) _,
                cfg = const offset_of!(TileState, cfg),
                tmm = const offset_of!(TileState, tmm),
                in("eax") lo,
                in("edx") hi,
                options(nostack),
            );
        }
        Ok(out)
    }

    /// Restores `area` with XRSTOR (RFBM = XCR0; either format), reads the
    /// tiles back with STTILECFG and TILESTORED (stride [`STRIDE`]; only
    /// configured tiles are stored, the others read as zero), saves with
    /// XSAVE into an area pre-filled with 0xAA, and restores the thread's
    /// own state.
    ///
    /// # Errors
    ///
    /// As [`Host::check_restorable`], and [`HostError::Unsupported`]
    /// without AMX. Call [`request_permission`] first.
    pub fn restore_then_store_tiles(
        &self,
        area: &[u8],
    ) -> Result<(HostArea, TileState), HostError> {
        self.check_amx()?;
        self.check_restorable(area)?;
        let mut input = HostArea::from_bytes(area);
        let mut orig = HostArea::new(self.layout().standard_size_for(self.xcr0()) as usize, 0);
        let mut out = self.area_for(SaveInstr::Xsave, 0xAA, self.xcr0());
        let mut dump = TileState::zeroed();
        let (lo, hi) = halves(self.xcr0());
        let (in_p, orig_p, out_p, dump_p) = (
            input.as_mut_ptr(),
            orig.as_mut_ptr(),
            out.as_mut_ptr(),
            &mut dump as *mut TileState,
        );
        // SAFETY: the areas are 64-byte aligned and sized for RFBM = XCR0;
        // `input` passed `check_restorable` (header, enabled components,
        // MXCSR and a valid TILECFG), so XRSTOR does not fault; STTILECFG
        // writes 64 bytes into `dump.cfg`; TILESTORED writes at most 16
        // rows of 64 bytes into each 1024-byte tile of `dump`, and runs only
        // for tiles the restored configuration defines (read from `dump.cfg`
        // after STTILECFG), as a store of another tile would fault; the
        // thread's state is saved to `orig` first and restored from it last.
        unsafe {
            core::arch::asm!(
                "xsave64 [{orig}]",
                "xrstor64 [{input}]",
                "sttilecfg [{dump} + {cfg}]",
                // Palette 0: no tile is configured, none may be stored.
                "cmp byte ptr [{dump} + {cfg}], 1",
                "jne 28f",
                "mov {stride}, 64",
                // Tile i is configured when its row count (byte 48 + i) is
                // non-zero (checked configurations set rows and colsb together).
                "cmp byte ptr [{dump} + {cfg} + 48], 0",
                "je 20f",
                "tilestored [{dump} + {stride} * 1 + {tmm} + 0], tmm0",
                "20:",
                "cmp byte ptr [{dump} + {cfg} + 49], 0",
                "je 21f",
                "tilestored [{dump} + {stride} * 1 + {tmm} + 1024], tmm1",
                "21:",
                "cmp byte ptr [{dump} + {cfg} + 50], 0",
                "je 22f",
                "tilestored [{dump} + {stride} * 1 + {tmm} + 2048], tmm2",
                "22:",
                "cmp byte ptr [{dump} + {cfg} + 51], 0",
                "je 23f",
                "tilestored [{dump} + {stride} * 1 + {tmm} + 3072], tmm3",
                "23:",
                "cmp byte ptr [{dump} + {cfg} + 52], 0",
                "je 24f",
                "tilestored [{dump} + {stride} * 1 + {tmm} + 4096], tmm4",
                "24:",
                "cmp byte ptr [{dump} + {cfg} + 53], 0",
                "je 25f",
                "tilestored [{dump} + {stride} * 1 + {tmm} + 5120], tmm5",
                "25:",
                "cmp byte ptr [{dump} + {cfg} + 54], 0",
                "je 26f",
                "tilestored [{dump} + {stride} * 1 + {tmm} + 6144], tmm6",
                "26:",
                "cmp byte ptr [{dump} + {cfg} + 55], 0",
                "je 27f",
                "tilestored [{dump} + {stride} * 1 + {tmm} + 7168], tmm7",
                "27:",
                "28:",
                "xsave64 [{out}]",
                "xrstor64 [{orig}]",
                orig = in(reg) orig_p,
                input = in(reg) in_p,
                out = in(reg) out_p,
                dump = in(reg) dump_p,
                stride = out(reg) _,
                cfg = const offset_of!(TileState, cfg),
                tmm = const offset_of!(TileState, tmm),
                in("eax") lo,
                in("edx") hi,
                options(nostack),
            );
        }
        Ok((out, dump))
    }

    /// The TILECFG of a live AMX configuration in `area` (either format),
    /// checked as XRSTOR would load it; `Ok` when TILECFG is init or absent.
    pub(super) fn check_tilecfg(&self, area: &[u8], header: &AreaHeader) -> Result<(), HostError> {
        if !header.xstate_bv.contains(ComponentId::TILECFG) {
            return Ok(());
        }
        let offset = match header.format {
            Format::Standard => self.layout().offset(ComponentId::TILECFG),
            Format::Compacted => self
                .layout()
                .compacted_offset(header.xcomp_bv.components(), ComponentId::TILECFG),
        };
        let Some(at) = offset.map(|o| o as usize) else {
            return Ok(());
        };
        // The header check guarantees the area holds TILECFG.
        config_of(&area[at..at + 64]).check()?;
        Ok(())
    }
}

fn config_of(bytes: &[u8]) -> &TileConfig {
    <TileConfig as zerocopy::FromBytes>::ref_from_bytes(bytes).expect("64 bytes, unaligned type")
}
