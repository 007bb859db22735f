//! The owned, typed snapshot of a whole XSAVE state.
//!
//! A [`RegisterFile`] holds every register of every component, AMX tiles
//! included, independent of any CPU's layout or format: it is filled from a
//! view of one layout and written to a view of another. Components are kept
//! in canonical form (their architectural byte images), so filling and
//! writing are one copy per live component; the typed accessors are the
//! views' own. MXCSR travels with SSE (the 512-byte legacy image of
//! component 1): a non-init MXCSR makes SSE live, as the CPU tracks it.
//!
//! ```
//! use xstate::{layout::catalog, Format, RegisterFile};
//!
//! let zen4 = catalog::get("amd-zen4").unwrap();
//! let spr = catalog::get("intel-sapphire-rapids").unwrap();
//! let mut regs = RegisterFile::new();
//! regs.set_zmm(20, [1, 2, 3, 4]).unwrap();
//! regs.set_k(3, 0xff).unwrap();
//!
//! // Zen 4 standard format, then Sapphire Rapids compacted: same registers.
//! let a = regs.encode(zen4, Format::Standard).unwrap();
//! let b = RegisterFile::decode(&a, zen4).unwrap().encode(spr, Format::Compacted).unwrap();
//! assert_eq!(RegisterFile::decode(&b, spr).unwrap(), regs);
//! ```

use std::collections::BTreeMap;

use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

use crate::area::{legacy, LegacyRegion, FCW_INIT, MXCSR_INIT};
use crate::component::{self, Component, EXTENDED_REGION_START, KNOWN_COMPONENTS};
use crate::error::ViewError;
use crate::layout::Layout;
use crate::register::{Piece, Register};
use crate::view::{
    check_register, check_width, index, init_area, typed_accessors, Format, XsaveView,
};

/// Canonical images of the fixed-size user components 2..=19 except tile data.
#[derive(Clone, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct Extended {
    avx: [u8; 256],
    bndregs: [u8; 64],
    bndcsr: [u8; 64],
    opmask: [u8; 64],
    zmm_hi256: [u8; 512],
    hi16_zmm: [u8; 1024],
    pkru: [u8; 8],
    tilecfg: [u8; 64],
    apx: [u8; 128],
}

/// An owned snapshot of a whole XSAVE state. See the [module docs](self).
#[derive(Clone, PartialEq, Eq)]
pub struct RegisterFile {
    xstate_bv: u64,
    legacy: LegacyRegion,
    ext: Box<Extended>,
    tiles: Box<[u8; 8192]>,
    /// Components this type has no typed slot for (supervisor and unknown
    /// ones), by number, as their raw bytes.
    other: BTreeMap<u8, Vec<u8>>,
}

impl core::fmt::Debug for RegisterFile {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RegisterFile")
            .field("xstate_bv", &format_args!("{:#x}", self.xstate_bv))
            .field("mxcsr", &format_args!("{:#x}", self.mxcsr().unwrap_or(0)))
            .field("other", &self.other.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Default for RegisterFile {
    fn default() -> Self {
        RegisterFile::new()
    }
}

/// Where a component's canonical image lives in a [`RegisterFile`].
fn slot(ext: &Extended, index: u8) -> Option<&[u8]> {
    Some(match Component::from_index(index)? {
        Component::Avx => &ext.avx,
        Component::MpxBndregs => &ext.bndregs,
        Component::MpxBndcsr => &ext.bndcsr,
        Component::Opmask => &ext.opmask,
        Component::ZmmHi256 => &ext.zmm_hi256,
        Component::Hi16Zmm => &ext.hi16_zmm,
        Component::Pkru => &ext.pkru,
        Component::TileCfg => &ext.tilecfg,
        Component::Apx => &ext.apx,
        _ => return None,
    })
}

fn slot_mut(ext: &mut Extended, index: u8) -> Option<&mut [u8]> {
    Some(match Component::from_index(index)? {
        Component::Avx => &mut ext.avx,
        Component::MpxBndregs => &mut ext.bndregs,
        Component::MpxBndcsr => &mut ext.bndcsr,
        Component::Opmask => &mut ext.opmask,
        Component::ZmmHi256 => &mut ext.zmm_hi256,
        Component::Hi16Zmm => &mut ext.hi16_zmm,
        Component::Pkru => &mut ext.pkru,
        Component::TileCfg => &mut ext.tilecfg,
        Component::Apx => &mut ext.apx,
        _ => return None,
    })
}

const MXCSR_COMPONENTS: u64 = Component::Sse.mask() | Component::Avx.mask();

impl RegisterFile {
    /// A register file with every component in its init configuration.
    pub fn new() -> RegisterFile {
        let mut legacy = LegacyRegion::new_zeroed();
        legacy.fcw.set(FCW_INIT);
        legacy.mxcsr.set(MXCSR_INIT);
        RegisterFile {
            xstate_bv: 0,
            legacy,
            ext: Box::new(Extended::new_zeroed()),
            tiles: Box::new([0; 8192]),
            other: BTreeMap::new(),
        }
    }

    /// The live components (XSTATE_BV).
    pub fn xstate_bv(&self) -> u64 {
        self.xstate_bv
    }

    /// Whether `component` is live.
    pub fn is_live(&self, component: Component) -> bool {
        self.xstate_bv & component.mask() != 0
    }

    /// The canonical bytes of live component `index`: for x87 and SSE the
    /// 512-byte legacy region, else the component's architectural image.
    /// `None` when it is init.
    pub fn component(&self, index: u8) -> Option<&[u8]> {
        if self.xstate_bv & component::bit(index) == 0 {
            return None;
        }
        match index {
            0 | 1 => Some(self.legacy.as_bytes()),
            18 => Some(&self.tiles[..]),
            _ => slot(&self.ext, index).or_else(|| self.other.get(&index).map(Vec::as_slice)),
        }
    }

    /// Sets component `index` live with canonical bytes `bytes` (for x87
    /// and SSE, the 512-byte legacy region: both are taken from it).
    /// Reserved bytes (PKRU's 4..8) are stored as zero, whatever `bytes`
    /// holds there.
    ///
    /// The size must be the component's architectural size (any size for a
    /// component without a typed slot).
    pub fn set_component(&mut self, index: u8, bytes: &[u8]) -> Result<(), ViewError> {
        if index >= 64 {
            return Err(ViewError::BadComponent { index });
        }
        let wrong = |expected: usize| ViewError::TooSmall {
            len: bytes.len(),
            needed: expected,
            format: "canonical",
        };
        match index {
            0 | 1 => {
                let src = LegacyRegion::ref_from_bytes(bytes).map_err(|_| wrong(512))?;
                self.copy_legacy(src, index);
            }
            18 => {
                if bytes.len() != 8192 {
                    return Err(wrong(8192));
                }
                self.tiles.copy_from_slice(bytes);
            }
            _ => match slot_mut(&mut self.ext, index) {
                Some(dst) if dst.len() == bytes.len() => {
                    dst.copy_from_slice(bytes);
                    // Canonical form: reserved bytes (PKRU's 4..8) are zero.
                    dst[component::reserved_bytes(index)].fill(0);
                }
                Some(dst) => return Err(wrong(dst.len())),
                None => {
                    self.other.insert(index, bytes.to_vec());
                }
            },
        }
        self.xstate_bv |= 1 << index;
        Ok(())
    }

    /// Returns component `index` to its init configuration.
    pub fn set_init(&mut self, index: u8) {
        self.xstate_bv &= !component::bit(index);
        match index {
            0 => self.init_x87(),
            1 => self.legacy.xmm = [[0; 16]; 16],
            18 => self.tiles.fill(0),
            _ => match slot_mut(&mut self.ext, index) {
                Some(s) => s.fill(0),
                None => {
                    self.other.remove(&index);
                }
            },
        }
        if self.xstate_bv & MXCSR_COMPONENTS == 0 {
            self.legacy.mxcsr.set(MXCSR_INIT);
        }
    }

    fn init_x87(&mut self) {
        let b = self.legacy.as_mut_bytes();
        for r in legacy::X87_RANGES {
            b[r].fill(0);
        }
        b[0..2].copy_from_slice(&FCW_INIT.to_le_bytes());
    }

    /// Copies component 0 or 1 out of a legacy region.
    fn copy_legacy(&mut self, src: &LegacyRegion, index: u8) {
        let (dst, src) = (self.legacy.as_mut_bytes(), src.as_bytes());
        if index == 0 {
            for r in legacy::X87_RANGES {
                dst[r.clone()].copy_from_slice(&src[r]);
            }
        } else {
            dst[legacy::SSE_RANGE].copy_from_slice(&src[legacy::SSE_RANGE]);
            let m = legacy::MXCSR as usize;
            dst[m..m + 4].copy_from_slice(&src[m..m + 4]);
        }
    }

    /// Fills this register file from `view`, reusing its allocations.
    pub fn read_from<B: AsRef<[u8]>>(&mut self, view: &XsaveView<'_, B>) -> Result<(), ViewError> {
        let bytes = view.as_bytes();
        let src = LegacyRegion::ref_from_bytes(&bytes[..512]).expect("views hold >= 576 bytes");
        let live = view.xstate_bv();
        for i in component::bits(self.xstate_bv & !live) {
            self.set_init(i);
        }
        for i in component::bits(live & 3) {
            self.copy_legacy(src, i);
        }
        self.legacy.mxcsr = if live & MXCSR_COMPONENTS != 0 {
            src.mxcsr
        } else {
            MXCSR_INIT.into()
        };
        self.xstate_bv = live & 3;
        // A non-init MXCSR with only AVX live: SSE carries it, live at its
        // init XMM values, so every component image holds the whole state.
        let sse = Component::Sse.mask();
        if live & MXCSR_COMPONENTS != 0 && live & sse == 0 && self.legacy.mxcsr.get() != MXCSR_INIT
        {
            self.legacy.xmm = [[0; 16]; 16];
            self.xstate_bv |= sse;
        }
        for i in component::bits(live & !3) {
            let bytes = view.component(i)?.expect("live components have bytes");
            self.set_component(i, bytes)?;
        }
        Ok(())
    }

    /// A register file with the state `view` holds.
    pub fn from_view<B: AsRef<[u8]>>(view: &XsaveView<'_, B>) -> Result<RegisterFile, ViewError> {
        let mut out = RegisterFile::new();
        out.read_from(view)?;
        Ok(out)
    }

    /// Decodes an XSAVE area (format from its XCOMP_BV) under `layout`.
    pub fn decode(bytes: &[u8], layout: &Layout) -> Result<RegisterFile, ViewError> {
        RegisterFile::from_view(&XsaveView::new(bytes, layout)?)
    }

    /// Checks that `view` can take every live component of this file.
    pub fn check_fits<B: AsRef<[u8]>>(&self, view: &XsaveView<'_, B>) -> Result<(), ViewError> {
        self.plan(view).map(|_| ())
    }

    /// Where each live extended component goes in `view` (by component
    /// number, for the known ones), after checking that every one fits.
    fn plan<B: AsRef<[u8]>>(
        &self,
        view: &XsaveView<'_, B>,
    ) -> Result<[u32; KNOWN_COMPONENTS], ViewError> {
        let mut starts = [0u32; KNOWN_COMPONENTS];
        for i in component::bits(self.xstate_bv & 3) {
            view.component_offset(i)?;
        }
        for i in component::bits(self.xstate_bv & !3) {
            let range = view.extent_of(i)?;
            let state_size = self.component(i).map_or(0, <[u8]>::len);
            if range.len() != state_size {
                return Err(ViewError::SizeMismatch {
                    index: i,
                    layout_size: range.len(),
                    state_size,
                });
            }
            if let Some(s) = starts.get_mut(i as usize) {
                *s = range.start as u32;
            }
        }
        Ok(starts)
    }

    /// Writes the whole state into `view`: live components are copied and
    /// marked live, the others marked init. Nothing is written if the view
    /// cannot take every live component.
    pub fn write_to<B: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        view: &mut XsaveView<'_, B>,
    ) -> Result<(), ViewError> {
        let starts = self.plan(view)?;
        for i in component::bits(self.xstate_bv & !3) {
            let src = self.component(i).expect("live");
            let start = match starts.get(i as usize) {
                Some(&s) => s as usize,
                None => view.extent_of(i)?.start,
            };
            view.as_bytes_mut()[start..start + src.len()].copy_from_slice(src);
        }
        let buf = view.as_bytes_mut();
        let src = self.legacy.as_bytes();
        if self.xstate_bv & 1 != 0 {
            for r in legacy::X87_RANGES {
                buf[r.clone()].copy_from_slice(&src[r]);
            }
        }
        if self.xstate_bv & 2 != 0 {
            buf[legacy::SSE_RANGE].copy_from_slice(&src[legacy::SSE_RANGE]);
        }
        // Always written: 0x1F80 while SSE and AVX are init, so that the
        // standard-format XRSTOR (which loads MXCSR regardless) agrees.
        let m = legacy::MXCSR as usize;
        buf[m..m + 4].copy_from_slice(self.legacy.mxcsr.as_bytes());
        view.set_xstate_bv(self.xstate_bv);
        Ok(())
    }

    /// Encodes the state as an XSAVE area for `layout` in `format`.
    ///
    /// The standard format is `layout.standard_size()` bytes; the compacted
    /// one holds every supported user component plus the live supervisor
    /// ones, as XSAVEC / XSAVES would lay them out.
    pub fn encode(&self, layout: &Layout, format: Format) -> Result<Vec<u8>, ViewError> {
        let (size, xcomp) = match format {
            Format::Standard => (layout.standard_size(), 0),
            Format::Compacted => {
                let held = layout.xcr0_supported() | (self.xstate_bv & layout.xss_supported());
                (layout.compacted_size_for(held), held)
            }
        };
        let mut buf = vec![0u8; (size as usize).max(EXTENDED_REGION_START as usize)];
        self.encode_into(&mut buf, layout, format, xcomp)?;
        Ok(buf)
    }

    /// Encodes into `buf` (which must be large enough), with XCOMP_BV
    /// `xcomp_bv` for the compacted format.
    pub fn encode_into(
        &self,
        buf: &mut [u8],
        layout: &Layout,
        format: Format,
        xcomp_bv: u64,
    ) -> Result<(), ViewError> {
        self.encode_into_pinned(buf, layout, format, xcomp_bv, 0)
    }

    /// As [`encode_into`](Self::encode_into), and the extended components
    /// in `pin` that this state holds in their init configuration are
    /// written too: at their init values, with their XSTATE_BV bits set.
    ///
    /// This keeps a restore deterministic where the consumer treats a clear
    /// bit its own way: KVM_SET_XSAVE with XSTATE_BV\[9\] clear resets
    /// PKRU on some kernels and leaves it unchanged on others, but with the
    /// bit set it always loads the value given. Components of `pin` the
    /// layout lacks are ignored; x87 and SSE cannot be pinned.
    pub fn encode_into_pinned(
        &self,
        buf: &mut [u8],
        layout: &Layout,
        format: Format,
        xcomp_bv: u64,
        pin: u64,
    ) -> Result<(), ViewError> {
        if buf.len() < EXTENDED_REGION_START as usize {
            return Err(ViewError::TooSmall {
                len: buf.len(),
                needed: EXTENDED_REGION_START as usize,
                format: format.as_str(),
            });
        }
        let saved: [u8; 64] = buf[512..576].try_into().expect("64 bytes");
        init_area(buf, format, xcomp_bv);
        let pin = pin & !self.xstate_bv & layout.supported() & !component::LEGACY_MASK;
        let result = XsaveView::new(&mut *buf, layout).and_then(|mut view| {
            for i in component::bits(pin) {
                view.extent_of(i)?;
            }
            self.write_to(&mut view)?;
            component::bits(pin).try_for_each(|i| view.make_live(i))
        });
        if result.is_err() {
            buf[512..576].copy_from_slice(&saved);
        }
        result
    }

    /// Copies `reg`'s value into `out` ([`Register::width`] bytes).
    pub fn read_into(&self, reg: Register, out: &mut [u8]) -> Result<(), ViewError> {
        check_register(reg)?;
        check_width(reg, out)?;
        let (pieces, n) = reg.pieces();
        let mut at = 0;
        for p in &pieces[..n] {
            let dst = &mut out[at..at + p.len as usize];
            dst.copy_from_slice(self.piece(p));
            at += p.len as usize;
        }
        Ok(())
    }

    fn piece(&self, p: &Piece) -> &[u8] {
        let (o, l) = (p.offset as usize, p.len as usize);
        match p.component {
            0 | 1 => &self.legacy.as_bytes()[o..o + l],
            18 => &self.tiles[o..o + l],
            i => &slot(&self.ext, i).expect("typed registers have slots")[o..o + l],
        }
    }

    /// Writes `reg` from little-endian bytes, making its components live.
    pub fn write(&mut self, reg: Register, value: &[u8]) -> Result<(), ViewError> {
        check_register(reg)?;
        check_width(reg, value)?;
        let (pieces, n) = reg.pieces();
        let mut at = 0;
        for p in &pieces[..n] {
            // MXCSR's piece belongs to SSE: writing it makes SSE live.
            self.xstate_bv |= 1 << p.component;
            let (o, l) = (p.offset as usize, p.len as usize);
            let dst = match p.component {
                0 | 1 => &mut self.legacy.as_mut_bytes()[o..o + l],
                18 => &mut self.tiles[o..o + l],
                i => &mut slot_mut(&mut self.ext, i).expect("typed registers have slots")[o..o + l],
            };
            dst.copy_from_slice(&value[at..at + l]);
            at += l;
        }
        Ok(())
    }
}

typed_accessors!(
    read: [impl RegisterFile],
    write: [impl RegisterFile]
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::catalog;

    #[test]
    fn new_is_all_init() {
        let r = RegisterFile::new();
        assert_eq!(r.xstate_bv(), 0);
        assert_eq!(r.fcw().unwrap(), FCW_INIT);
        assert_eq!(r.mxcsr().unwrap(), MXCSR_INIT);
        assert_eq!(r.zmm(31).unwrap(), [0; 4]);
    }

    #[test]
    fn out_of_range_component_numbers_are_errors() {
        let mut r = RegisterFile::new();
        assert_eq!(
            r.set_component(64, &[0; 8]),
            Err(ViewError::BadComponent { index: 64 })
        );
        assert_eq!(r.component(200), None);
        r.set_init(255);
        assert_eq!(r, RegisterFile::new());
    }

    #[test]
    fn pkru_reserved_bytes_are_kept_zero() {
        let mut r = RegisterFile::new();
        r.set_component(9, &[0x54, 0x55, 0x55, 0x55, 1, 2, 3, 4])
            .unwrap();
        assert_eq!(
            r.component(9),
            Some(&[0x54, 0x55, 0x55, 0x55, 0, 0, 0, 0][..])
        );
        assert_eq!(r.pkru().unwrap(), 0x5555_5554);
        // A view writing PKRU over garbage zeroes bytes 4..8 too.
        let spr = catalog::get("intel-sapphire-rapids").unwrap();
        let mut buf = r.encode(spr, Format::Standard).unwrap();
        buf[2688 + 4..2688 + 8].fill(0xEE);
        let mut view = XsaveView::new(&mut buf[..], spr).unwrap();
        view.set_pkru(7).unwrap();
        assert_eq!(&buf[2688..2696], &[7, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn pinned_components_go_with_their_bits_set() {
        let spr = catalog::get("intel-sapphire-rapids").unwrap();
        let mut r = RegisterFile::new();
        r.set_xmm(1, 5).unwrap();
        let mut buf = vec![0xAAu8; spr.standard_size() as usize];
        r.encode_into_pinned(
            &mut buf,
            spr,
            Format::Standard,
            0,
            Component::Pkru.mask() | 1 << 40,
        )
        .unwrap();
        let back = RegisterFile::decode(&buf, spr).unwrap();
        assert_eq!(
            back.xstate_bv(),
            Component::Sse.mask() | Component::Pkru.mask()
        );
        assert_eq!(back.pkru().unwrap(), 0);
        assert_eq!(&buf[2688..2696], &[0; 8]);
        // Pinning a component the compacted area has no room for changes nothing.
        let mut small = vec![0x11u8; spr.compacted_size_for(0x3) as usize];
        let before = small.clone();
        assert!(r
            .encode_into_pinned(
                &mut small,
                spr,
                Format::Compacted,
                0x3,
                Component::Pkru.mask()
            )
            .is_err());
        assert_eq!(small, before);
    }

    #[test]
    fn live_component_without_home_is_refused_and_nothing_changes() {
        let zen4 = catalog::get("amd-zen4").unwrap();
        let mut r = RegisterFile::new();
        r.set_r(16, 7).unwrap();
        let mut buf = vec![0x55u8; zen4.standard_size() as usize];
        buf[512..576].fill(0);
        let before = buf.clone();
        let err = r
            .encode_into(&mut buf, zen4, Format::Standard, 0)
            .unwrap_err();
        assert!(
            matches!(err, ViewError::NoComponent { index: 19, .. }),
            "{err}"
        );
        assert_eq!(buf, before);
    }
}
