//! The owned, typed snapshot of a whole XSAVE state.
//!
//! A [`RegisterFile`] holds every register of every component, AMX tiles
//! included, independent of any CPU's layout or format: it is filled from a
//! view of one layout and written to a view of another. Components are kept
//! in canonical form (their architectural byte images, reserved bytes
//! zero), so filling and writing are one copy per live component; the typed
//! accessors are the views' own ([`XstateRead`], [`XstateWrite`]). MXCSR
//! travels with SSE (the 512-byte legacy image of component 1): a non-init
//! MXCSR makes SSE live, as the CPU tracks it.
//!
//! Storage is derived from the component table: a slot per fixed-size user
//! component, placed by [`COMPONENTS`] alone, in one buffer allocated when
//! the first of them goes live (AMX tile data, 8 KiB, in a buffer of its
//! own, allocated only when it goes live), and a map for supervisor and
//! unknown components, whose sizes only CPUID knows. A register file with
//! x87 and SSE alone allocates nothing.
//!
//! ```
//! use xstate::prelude::*;
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

#[cfg(feature = "serde")]
mod serde;

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

use zerocopy::{FromBytes, FromZeros, IntoBytes};

use crate::access::{check_register, check_width, AccessError, XstateRead, XstateWrite};
use crate::area::{
    legacy, AreaHeader, Format, LegacyRegion, XsaveHeader, EXTENDED_START, FCW_INIT, MXCSR_INIT,
};
use crate::component::{
    ComponentId, XcompBv, Xfeatures, CANONICAL_SLOTS, COMPONENTS, MXCSR_COMPONENTS, WITH_RESERVED,
};
use crate::layout::Layout;
use crate::register::{Piece, Register};
use crate::view::XsaveView;

/// Bytes of the canonical images of every fixed-size user component.
const EXTENDED_BYTES: usize = CANONICAL_SLOTS.1;

/// AMX tile data's slot among them, kept in a buffer of its own.
const TILE_SLOT: core::ops::Range<usize> = {
    let i = ComponentId::TILEDATA.index() as usize;
    let start = match CANONICAL_SLOTS.0[i] {
        Some(s) => s as usize,
        None => panic!("TILEDATA has a slot"),
    };
    start..start + COMPONENTS[i].size as usize
};

/// Bytes of the main buffer: every slot but tile data's.
const MAIN_BYTES: usize = EXTENDED_BYTES - (TILE_SLOT.end - TILE_SLOT.start);

/// Zeros, as read from a slot whose buffer is not allocated (every byte
/// of an init component is 0 in canonical form).
static ZEROS: [u8; TILE_SLOT.end - TILE_SLOT.start] = [0; TILE_SLOT.end - TILE_SLOT.start];

/// The most bytes a component without a fixed size (arch LBR, numbers
/// 20..=63) may hold: no CPU's component comes near.
pub const MAX_VARIABLE_SIZE: usize = 1 << 20;

/// Why a component's bytes were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegfileError {
    /// Bytes for a component without a fixed size that are empty or
    /// larger than [`MAX_VARIABLE_SIZE`].
    #[error("{component} (component {n}) has no fixed size but {got} bytes were given: 1 to {max} are taken", n = .component.index(), max = MAX_VARIABLE_SIZE)]
    VariableSize {
        /// The component.
        component: ComponentId,
        /// The length given.
        got: usize,
    },
    /// Bytes whose length is not the component's canonical size.
    #[error("{component} (component {n}) is {expected} bytes, {got} were given", n = .component.index())]
    WrongSize {
        /// The component.
        component: ComponentId,
        /// Its canonical size in bytes (512 for x87 and SSE: the legacy region).
        expected: usize,
        /// The length given.
        got: usize,
    },
}

/// An owned snapshot of a whole XSAVE state. See the [module docs](self).
#[derive(Clone)]
pub struct RegisterFile {
    xstate_bv: Xfeatures,
    legacy: LegacyRegion,
    /// The slots of every fixed-size user component but tile data: empty
    /// until one is written, then [`MAIN_BYTES`] long.
    extended: Vec<u8>,
    /// Tile data's slot: empty until written, then 8 KiB.
    tiles: Vec<u8>,
    /// Components without a fixed-size slot (supervisor and unknown ones),
    /// as their raw bytes.
    other: BTreeMap<ComponentId, Vec<u8>>,
}

impl core::fmt::Debug for RegisterFile {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RegisterFile")
            .field("xstate_bv", &self.xstate_bv)
            .field("mxcsr", &format_args!("{:#x}", self.legacy.mxcsr.get()))
            .field("other", &self.other.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl PartialEq for RegisterFile {
    /// The same state: the same live components with the same bytes (init
    /// slots hold zeros whether or not their buffer is allocated).
    fn eq(&self, other: &RegisterFile) -> bool {
        self.xstate_bv == other.xstate_bv
            && self.legacy.as_bytes() == other.legacy.as_bytes()
            && self.other == other.other
            && self
                .xstate_bv
                .extended()
                .iter()
                .filter(|&c| slot(c).is_some())
                .all(|c| self.slot_bytes(c) == other.slot_bytes(c))
    }
}

impl Eq for RegisterFile {}

impl Default for RegisterFile {
    fn default() -> Self {
        RegisterFile::new()
    }
}

/// Where each fixed-size user component's canonical image lives, by
/// component number: whether in the tile buffer, and its byte range there;
/// `None` for supervisor, legacy and unknown components. Computed at
/// compile time from the canonical slots.
const SLOTS: [Option<(bool, u32, u32)>; 64] = {
    let mut out = [None; 64];
    let gap = (TILE_SLOT.end - TILE_SLOT.start) as u32;
    let (tile_start, tile_end) = (TILE_SLOT.start as u32, TILE_SLOT.end as u32);
    let mut i = 0;
    while i < CANONICAL_SLOTS.0.len() {
        if let Some(start) = CANONICAL_SLOTS.0[i] {
            let end = start + COMPONENTS[i].size;
            out[i] = Some(if start >= tile_end {
                (false, start - gap, end - gap)
            } else if start >= tile_start {
                (true, start - tile_start, end - tile_start)
            } else {
                (false, start, end)
            });
        }
        i += 1;
    }
    out
};

/// The components whose slots are in the main buffer.
const MAIN_SLOTTED: Xfeatures = {
    let mut bits = 0u64;
    let mut i = 0;
    while i < 64 {
        if let Some((false, _, _)) = SLOTS[i] {
            bits |= 1 << i;
        }
        i += 1;
    }
    Xfeatures::from_bits(bits)
};

/// Where a fixed-size user component's canonical image lives: whether in
/// the tile buffer, and its range there; `None` for supervisor, legacy and
/// unknown components.
#[inline(always)]
fn slot(component: ComponentId) -> Option<(bool, core::ops::Range<usize>)> {
    let (tiles, start, end) = SLOTS[component.index() as usize & 63]?;
    Some((tiles, start as usize..end as usize))
}

impl RegisterFile {
    /// A register file with every component in its init configuration.
    pub fn new() -> RegisterFile {
        let mut legacy = LegacyRegion::new_zeroed();
        legacy.fcw.set(FCW_INIT);
        legacy.mxcsr.set(MXCSR_INIT);
        RegisterFile {
            xstate_bv: Xfeatures::EMPTY,
            legacy,
            extended: Vec::new(),
            tiles: Vec::new(),
            other: BTreeMap::new(),
        }
    }

    /// A slotted component's bytes (zeros where its buffer is not
    /// allocated, as for every init component).
    #[inline]
    fn slot_bytes(&self, component: ComponentId) -> &[u8] {
        let (tiles, range) = slot(component).expect("a slotted component");
        let buf = if tiles { &self.tiles } else { &self.extended };
        match buf.get(range.clone()) {
            Some(b) => b,
            None => &ZEROS[..range.len()],
        }
    }

    /// A slotted component's bytes, writable: its buffer allocated first.
    #[inline]
    fn slot_bytes_mut(&mut self, component: ComponentId) -> &mut [u8] {
        let (tiles, range) = slot(component).expect("a slotted component");
        self.reserve_slots(component.bit());
        let buf = if tiles {
            &mut self.tiles
        } else {
            &mut self.extended
        };
        &mut buf[range]
    }

    /// The canonical bytes of live `component`: for x87 and SSE the
    /// 512-byte legacy region, else the component's architectural image.
    /// `None` when it is init.
    pub fn component(&self, component: ComponentId) -> Option<&[u8]> {
        if !self.xstate_bv.contains(component) {
            return None;
        }
        if component.is_legacy() {
            return Some(self.legacy.as_bytes());
        }
        match slot(component) {
            Some(_) => Some(self.slot_bytes(component)),
            None => self.other.get(&component).map(Vec::as_slice),
        }
    }

    /// Sets `component` live with canonical bytes `bytes` (for x87 and
    /// SSE, the 512-byte legacy region: each takes its own bytes from it).
    /// Reserved bytes (PKRU's 4..8) are stored as zero, whatever `bytes`
    /// holds there.
    ///
    /// # Errors
    ///
    /// [`RegfileError::WrongSize`] when `bytes` is not the component's
    /// architectural size; [`RegfileError::VariableSize`] for a component
    /// without a fixed size (arch LBR, unknown numbers) given no bytes or
    /// more than [`MAX_VARIABLE_SIZE`]. Nothing changes then.
    pub fn set_component(
        &mut self,
        component: ComponentId,
        bytes: &[u8],
    ) -> Result<(), RegfileError> {
        let wrong = |expected: usize| RegfileError::WrongSize {
            component,
            expected,
            got: bytes.len(),
        };
        if component.is_legacy() {
            let src = LegacyRegion::ref_from_bytes(bytes).map_err(|_| wrong(512))?;
            self.copy_legacy(src, component);
        } else if let Some((_, range)) = slot(component) {
            if range.len() != bytes.len() {
                return Err(wrong(range.len()));
            }
            let dst = self.slot_bytes_mut(component);
            dst.copy_from_slice(bytes);
            dst[component.reserved_bytes()].fill(0);
        } else {
            match component.fixed_size() {
                Some(size) if size as usize != bytes.len() => return Err(wrong(size as usize)),
                None if bytes.is_empty() || bytes.len() > MAX_VARIABLE_SIZE => {
                    return Err(RegfileError::VariableSize {
                        component,
                        got: bytes.len(),
                    })
                }
                _ => {}
            }
            self.other.insert(component, bytes.to_vec());
        }
        self.xstate_bv = self.xstate_bv.with(component);
        Ok(())
    }

    /// Returns `component` to its init configuration.
    pub fn set_init(&mut self, component: ComponentId) {
        self.xstate_bv = self.xstate_bv.without(component);
        match component {
            ComponentId::X87 => self.init_x87(),
            ComponentId::SSE => self.legacy.xmm = [[0; 16]; 16],
            c => match slot(c) {
                Some((tiles, range)) => {
                    let buf = if tiles {
                        &mut self.tiles
                    } else {
                        &mut self.extended
                    };
                    if let Some(b) = buf.get_mut(range) {
                        b.fill(0);
                    }
                }
                None => {
                    self.other.remove(&c);
                }
            },
        }
        if !self.xstate_bv.intersects(MXCSR_COMPONENTS) {
            self.legacy.mxcsr.set(MXCSR_INIT);
        }
    }

    /// Returns every component to its init configuration, reusing the
    /// allocations: the same state as [`RegisterFile::new`].
    pub fn clear(&mut self) {
        for c in self.xstate_bv {
            self.set_init(c);
        }
        self.legacy.mxcsr.set(MXCSR_INIT);
    }

    /// Returns every component outside `keep` to its init configuration,
    /// and MXCSR to 0x1F80, reusing the allocations: for a decoder that then
    /// writes every component of `keep` whole (an SSE image brings MXCSR).
    pub(crate) fn retain(&mut self, keep: Xfeatures) {
        for c in self.xstate_bv - keep {
            self.set_init(c);
        }
        self.legacy.mxcsr.set(MXCSR_INIT);
    }

    /// The legacy region, writable, with `component` (x87 or SSE) marked
    /// live: for a decoder that writes that component's bytes in place.
    pub(crate) fn legacy_live_mut(&mut self, component: ComponentId) -> &mut [u8] {
        debug_assert!(component.is_legacy());
        self.xstate_bv = self.xstate_bv.with(component);
        self.legacy.as_mut_bytes()
    }

    fn init_x87(&mut self) {
        let b = self.legacy.as_mut_bytes();
        for r in legacy::X87_RANGES {
            b[r].fill(0);
        }
        self.legacy.fcw.set(FCW_INIT);
    }

    /// Copies x87's or SSE's bytes out of a legacy region.
    fn copy_legacy(&mut self, src: &LegacyRegion, component: ComponentId) {
        let (dst, src) = (self.legacy.as_mut_bytes(), src.as_bytes());
        if component == ComponentId::X87 {
            for r in legacy::X87_RANGES {
                dst[r.clone()].copy_from_slice(&src[r]);
            }
        } else {
            dst[legacy::SSE_RANGE].copy_from_slice(&src[legacy::SSE_RANGE]);
            let m = legacy::MXCSR;
            dst[m..m + 4].copy_from_slice(&src[m..m + 4]);
        }
    }

    /// Fills this register file from `view`, reusing its allocations.
    ///
    /// # Errors
    ///
    /// [`AccessError::BufferTooSmall`] when the buffer ends inside a live
    /// component (the file is then partly filled).
    pub fn read_from<B: AsRef<[u8]>>(
        &mut self,
        view: &XsaveView<'_, B>,
    ) -> Result<(), AccessError> {
        let src = LegacyRegion::of(view.as_bytes());
        let live = view.xstate_bv();
        for c in self.xstate_bv - live {
            self.set_init(c);
        }
        if live.contains_all(Xfeatures::LEGACY) {
            // Both: the x87 and XMM bytes in one copy, MXCSR and
            // MXCSR_MASK (set below, and kept 0) among them.
            let end = legacy::SSE_RANGE.end;
            let dst = self.legacy.as_mut_bytes();
            dst[..end].copy_from_slice(&src.as_bytes()[..end]);
            self.legacy.mxcsr_mask.set(0);
        } else {
            for c in live & Xfeatures::LEGACY {
                self.copy_legacy(src, c);
            }
        }
        // MXCSR as the view's format counts it (in a compacted area, only
        // while SSE is live).
        let mxcsr_counts = view.mxcsr_counts();
        self.legacy.mxcsr = if mxcsr_counts {
            src.mxcsr
        } else {
            MXCSR_INIT.into()
        };
        self.xstate_bv = live & Xfeatures::LEGACY;
        // A non-init MXCSR with only AVX live: SSE carries it, live at its
        // init XMM values, so every component image holds the whole state.
        if mxcsr_counts && !live.contains(ComponentId::SSE) && self.legacy.mxcsr.get() != MXCSR_INIT
        {
            self.legacy.xmm = [[0; 16]; 16];
            self.xstate_bv = self.xstate_bv.with(ComponentId::SSE);
        }
        // One walk over the live components: each copied from its place in
        // the area (compacted offsets accumulated, not recomputed) straight
        // into its slot, the slots' buffers allocated once beforehand.
        let extended = live.extended();
        self.reserve_slots(extended);
        let bytes = view.as_bytes();
        let walk = view
            .layout()
            .extents(view.xcomp_bv(), extended, bytes.len());
        for (c, placed) in walk {
            let (at, size) = placed?;
            let src = &bytes[at..at + size];
            match slot(c) {
                Some((tiles, range)) if range.len() == size => {
                    let buf = if tiles {
                        &mut self.tiles
                    } else {
                        &mut self.extended
                    };
                    let dst = &mut buf[range];
                    dst.copy_from_slice(src);
                    if WITH_RESERVED.contains(c) {
                        dst[c.reserved_bytes()].fill(0);
                    }
                    self.xstate_bv = self.xstate_bv.with(c);
                }
                _ => self
                    .set_component(c, src)
                    .map_err(|_| AccessError::SizeMismatch {
                        component: c,
                        layout_size: size,
                        state_size: c.fixed_size().map_or(size, |s| s as usize),
                    })?,
            }
        }
        Ok(())
    }

    /// Allocates the slot buffers `components` need (a no-op once they are).
    #[inline]
    fn reserve_slots(&mut self, components: Xfeatures) {
        if self.extended.is_empty() && components.intersects(MAIN_SLOTTED) {
            self.extended.resize(MAIN_BYTES, 0);
        }
        if self.tiles.is_empty() && components.contains(ComponentId::TILEDATA) {
            self.tiles.resize(TILE_SLOT.end - TILE_SLOT.start, 0);
        }
    }

    /// A register file with the state `view` holds.
    ///
    /// # Errors
    ///
    /// As [`read_from`](Self::read_from).
    pub fn from_view<B: AsRef<[u8]>>(view: &XsaveView<'_, B>) -> Result<RegisterFile, AccessError> {
        let mut out = RegisterFile::new();
        out.read_from(view)?;
        Ok(out)
    }

    /// Decodes an XSAVE area (format from its XCOMP_BV) under `layout`.
    ///
    /// # Errors
    ///
    /// [`AccessError::Header`] when the header does not fit the layout, or
    /// an error of [`read_from`](Self::read_from).
    pub fn decode(bytes: &[u8], layout: &Layout) -> Result<RegisterFile, AccessError> {
        RegisterFile::from_view(&XsaveView::new(bytes, layout)?)
    }

    /// Checks that `view` can take every live component of this file.
    ///
    /// # Errors
    ///
    /// The first live component it cannot take: missing from the layout,
    /// not in the area, past the buffer's end, or of another size.
    pub fn check_fits<B: AsRef<[u8]>>(&self, view: &XsaveView<'_, B>) -> Result<(), AccessError> {
        for c in self.xstate_bv & Xfeatures::LEGACY {
            view.component_offset(c)?;
        }
        for c in self.xstate_bv.extended() {
            let range = view.extent_of(c)?;
            let state_size = self.component(c).map_or(0, <[u8]>::len);
            if range.len() != state_size {
                return Err(AccessError::SizeMismatch {
                    component: c,
                    layout_size: range.len(),
                    state_size,
                });
            }
        }
        Ok(())
    }

    /// Writes the whole state into `view`: live components are copied and
    /// marked live, the others marked init.
    ///
    /// # Errors
    ///
    /// As [`check_fits`](Self::check_fits); nothing is written then.
    pub fn write_to<B: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        view: &mut XsaveView<'_, B>,
    ) -> Result<(), AccessError> {
        self.check_fits(view)?;
        for c in self.xstate_bv.extended() {
            let src = self.component(c).expect("live");
            let start = view.extent_of(c)?.start;
            view.bytes_mut()[start..start + src.len()].copy_from_slice(src);
        }
        self.write_legacy(view.bytes_mut());
        view.set_xstate_bv(self.xstate_bv);
        Ok(())
    }

    /// Writes the live legacy components' bytes into the area `buf` (at
    /// least 512 bytes), and MXCSR always: 0x1F80 while SSE and AVX are
    /// init, so that the standard-format XRSTOR (which loads MXCSR
    /// regardless) agrees.
    #[inline]
    fn write_legacy(&self, buf: &mut [u8]) {
        let src = self.legacy.as_bytes();
        if self.xstate_bv.contains(ComponentId::X87) {
            for r in legacy::X87_RANGES {
                buf[r.clone()].copy_from_slice(&src[r]);
            }
        }
        if self.xstate_bv.contains(ComponentId::SSE) {
            buf[legacy::SSE_RANGE].copy_from_slice(&src[legacy::SSE_RANGE]);
        }
        buf[legacy::MXCSR..legacy::MXCSR + 4].copy_from_slice(self.legacy.mxcsr.as_bytes());
    }

    /// Encodes the state as an XSAVE area for `layout` in `format`.
    ///
    /// The standard format is `layout.standard_size()` bytes; the compacted
    /// one holds every supported user component plus the live supervisor
    /// ones, as XSAVEC / XSAVES would lay them out.
    ///
    /// # Errors
    ///
    /// As [`write_to`](Self::write_to): a live component the layout cannot
    /// take.
    pub fn encode(&self, layout: &Layout, format: Format) -> Result<Vec<u8>, AccessError> {
        let (size, xcomp_bv) = match format {
            Format::Standard => (layout.standard_size(), XcompBv::STANDARD),
            Format::Compacted => {
                let held = layout.xcr0_supported() | (self.xstate_bv & layout.xss_supported());
                (layout.compacted_size_for(held), XcompBv::compacted(held))
            }
        };
        let mut buf = vec![0u8; (size as usize).max(EXTENDED_START)];
        self.encode_into(&mut buf, layout, xcomp_bv)?;
        Ok(buf)
    }

    /// Encodes into `buf`, in the format `xcomp_bv` names (its components,
    /// for the compacted format).
    ///
    /// Written: the header, MXCSR and MXCSR_MASK (the layout's), the live
    /// components' bytes, and bytes 416..512 as zero (no software bytes).
    /// The bytes of init components are left as `buf` held them, as
    /// XSAVEOPT leaves them: XRSTOR and `KVM_SET_XSAVE` read only what
    /// XSTATE_BV marks live (and MXCSR).
    ///
    /// # Errors
    ///
    /// [`AccessError::Header`] when `buf` or `xcomp_bv` does not fit the
    /// layout, or a live component that cannot go there; `buf` is then
    /// unchanged.
    pub fn encode_into(
        &self,
        buf: &mut [u8],
        layout: &Layout,
        xcomp_bv: XcompBv,
    ) -> Result<(), AccessError> {
        self.encode_into_pinned(buf, layout, xcomp_bv, Xfeatures::EMPTY)
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
    ///
    /// # Errors
    ///
    /// As [`encode_into`](Self::encode_into), and for a pinned component
    /// the area has no room for; `buf` is then unchanged.
    pub fn encode_into_pinned(
        &self,
        buf: &mut [u8],
        layout: &Layout,
        xcomp_bv: XcompBv,
        pin: Xfeatures,
    ) -> Result<(), AccessError> {
        if buf.len() < EXTENDED_START {
            return Err(AccessError::Header(crate::area::HeaderError::TooSmall {
                len: buf.len(),
                needed: EXTENDED_START,
                format: if xcomp_bv.is_compacted() {
                    Format::Compacted
                } else {
                    Format::Standard
                },
            }));
        }
        let pin = (pin & layout.supported()).extended() - self.xstate_bv;
        // Everything is checked before the first byte is written: the
        // header as it will stand (the checks a view makes when opened, but
        // for the destination's stale software bytes), then where each live
        // or pinned component goes, in one ascending walk.
        let header = AreaHeader::check(buf.len(), layout, Xfeatures::EMPTY, xcomp_bv, None)?;
        // The compacted-format XRSTOR loads MXCSR only with SSE live (Intel
        // SDM vol. 1, 13.8.2): a non-init MXCSR with SSE init (AVX live)
        // goes with SSE live, at its init XMM values.
        let sse_for_mxcsr = header.format == Format::Compacted
            && !self.xstate_bv.contains(ComponentId::SSE)
            && self.legacy.mxcsr.get() != MXCSR_INIT;
        let mut xstate_bv = self.xstate_bv | pin;
        if sse_for_mxcsr {
            xstate_bv = xstate_bv.with(ComponentId::SSE);
        }
        if header.format == Format::Compacted {
            if let Some(c) = (xstate_bv & (Xfeatures::LEGACY - xcomp_bv.components())).first() {
                return Err(AccessError::NotInArea(c));
            }
        }
        let len = buf.len();
        let mut placed = [0u32; 64];
        for (c, at) in layout.extents(xcomp_bv, xstate_bv, len) {
            let (start, size) = at?;
            let state_size = self.component(c).map_or(size, <[u8]>::len);
            if state_size != size {
                return Err(AccessError::SizeMismatch {
                    component: c,
                    layout_size: size,
                    state_size,
                });
            }
            placed[c.index() as usize & 63] = start as u32;
        }
        // The header, the legacy region, then each component in place.
        let h = XsaveHeader::of_mut(buf);
        h.xstate_bv.set(xstate_bv.bits());
        h.xcomp_bv.set(xcomp_bv.bits());
        h.reserved = [0; 48];
        self.write_legacy(buf);
        if sse_for_mxcsr {
            buf[legacy::SSE_RANGE].fill(0);
        }
        // MXCSR_MASK as the destination CPU's FXSAVE / XSAVE write it; the
        // reserved and software bytes (416..512) zero, as relayout writes
        // them: a reused buffer's stale ones (another layout's ptrace or
        // KVM copy) would make the area one no view opens.
        buf[legacy::MXCSR_MASK..legacy::MXCSR_MASK + 4]
            .copy_from_slice(&layout.mxcsr_mask().to_le_bytes());
        buf[legacy::SSE_RANGE.end..crate::area::HEADER_OFFSET].fill(0);
        for c in self.xstate_bv.extended() {
            let bytes = self.component(c).expect("live");
            let start = placed[c.index() as usize & 63] as usize;
            buf[start..start + bytes.len()].copy_from_slice(bytes);
        }
        // Pinned components at their init values: zeros, for every
        // extended component.
        for c in pin {
            let start = placed[c.index() as usize & 63] as usize;
            let size = layout.size(c).unwrap_or(0) as usize;
            buf[start..start + size].fill(0);
        }
        Ok(())
    }

    fn piece(&self, p: &Piece) -> &[u8] {
        let (o, l) = (p.offset as usize, p.len as usize);
        if p.component.is_legacy() {
            return &self.legacy.as_bytes()[o..o + l];
        }
        &self.slot_bytes(p.component)[o..o + l]
    }
}

impl XstateRead for RegisterFile {
    #[inline]
    fn xstate_bv(&self) -> Xfeatures {
        self.xstate_bv
    }

    fn read_into(&self, reg: Register, out: &mut [u8]) -> Result<(), AccessError> {
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
}

impl XstateWrite for RegisterFile {
    fn write(&mut self, reg: Register, value: &[u8]) -> Result<(), AccessError> {
        check_register(reg)?;
        check_width(reg, value)?;
        let (pieces, n) = reg.pieces();
        let mut at = 0;
        for p in &pieces[..n] {
            // MXCSR's piece belongs to SSE: writing it makes SSE live.
            self.xstate_bv = self.xstate_bv.with(p.component);
            let (o, l) = (p.offset as usize, p.len as usize);
            let dst = if p.component.is_legacy() {
                &mut self.legacy.as_mut_bytes()[o..o + l]
            } else {
                &mut self.slot_bytes_mut(p.component)[o..o + l]
            };
            dst.copy_from_slice(&value[at..at + l]);
            at += l;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::catalog;

    #[test]
    fn new_is_all_init() {
        let r = RegisterFile::new();
        assert_eq!(r.xstate_bv(), Xfeatures::EMPTY);
        assert_eq!(r.fcw().unwrap(), FCW_INIT);
        assert_eq!(r.mxcsr().unwrap(), MXCSR_INIT);
        assert_eq!(r.zmm(31).unwrap(), [0; 4]);
    }

    #[test]
    fn unknown_components_are_kept_and_sizes_checked() {
        let mut r = RegisterFile::new();
        let c40 = ComponentId::new(40).unwrap();
        r.set_component(c40, &[1, 2, 3]).unwrap();
        assert_eq!(r.component(c40), Some(&[1, 2, 3][..]));
        assert_eq!(
            r.set_component(ComponentId::AVX, &[0; 255]),
            Err(RegfileError::WrongSize {
                component: ComponentId::AVX,
                expected: 256,
                got: 255
            })
        );
        assert_eq!(
            r.set_component(ComponentId::AVX, &[0; 257])
                .unwrap_err()
                .to_string(),
            "AVX (component 2) is 256 bytes, 257 were given"
        );
        assert!(!r.is_live(ComponentId::AVX));
        // Supervisor components of fixed size take exactly that size; arch
        // LBR and unknown numbers any size from 1 byte to 1 MiB.
        assert_eq!(
            r.set_component(ComponentId::CET_U, &[0; 17]),
            Err(RegfileError::WrongSize {
                component: ComponentId::CET_U,
                expected: 16,
                got: 17
            })
        );
        assert_eq!(
            r.set_component(c40, &[]),
            Err(RegfileError::VariableSize {
                component: c40,
                got: 0
            })
        );
        assert!(matches!(
            r.set_component(ComponentId::LBR, &vec![0; MAX_VARIABLE_SIZE + 1]),
            Err(RegfileError::VariableSize { .. })
        ));
        r.set_component(ComponentId::LBR, &[7; 900]).unwrap();
        r.set_init(ComponentId::LBR);
        assert_eq!(
            r.component(c40),
            Some(&[1, 2, 3][..]),
            "refusals changed nothing"
        );
        r.set_init(c40);
        assert_eq!(r, RegisterFile::new());
    }

    #[test]
    fn pkru_reserved_bytes_are_kept_zero() {
        let mut r = RegisterFile::new();
        r.set_component(ComponentId::PKRU, &[0x54, 0x55, 0x55, 0x55, 1, 2, 3, 4])
            .unwrap();
        assert_eq!(
            r.component(ComponentId::PKRU),
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
        let pin = ComponentId::PKRU.bit() | ComponentId::new(40).unwrap().bit();
        r.encode_into_pinned(&mut buf, spr, XcompBv::STANDARD, pin)
            .unwrap();
        let back = RegisterFile::decode(&buf, spr).unwrap();
        assert_eq!(
            back.xstate_bv(),
            ComponentId::SSE.bit() | ComponentId::PKRU.bit()
        );
        assert_eq!(back.pkru().unwrap(), 0);
        assert_eq!(&buf[2688..2696], &[0; 8]);
        // Pinning a component the compacted area has no room for changes nothing.
        let mut small = vec![0x11u8; spr.compacted_size_for(Xfeatures::LEGACY) as usize];
        let before = small.clone();
        assert!(r
            .encode_into_pinned(
                &mut small,
                spr,
                XcompBv::compacted(Xfeatures::LEGACY),
                ComponentId::PKRU.bit()
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
            .encode_into(&mut buf, zen4, XcompBv::STANDARD)
            .unwrap_err();
        assert!(
            matches!(
                err,
                AccessError::NoComponent {
                    component: ComponentId::APX,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(buf, before);
    }
}
