//! Converting an XSAVE area from one layout and format to another.

use alloc::borrow::Cow;
use alloc::vec;
use alloc::vec::Vec;

use arrayvec::ArrayVec;

use super::check::{faults_of, Incompatibility};
use super::guest::{Guest, Masking};

use crate::access::{AccessError, XstateRead};
use crate::area::{legacy, HeaderError, EXTENDED_START, HEADER_OFFSET, MXCSR_INIT};
use crate::component::{ComponentId, XcompBv, Xfeatures, MXCSR_COMPONENTS};
use crate::layout::{text, Text};
use crate::{Format, Layout, XsaveView};

/// How [`relayout`] writes its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayoutOptions {
    /// The destination format.
    pub format: Format,
    /// Drop components the destination lacks when their state is init.
    /// Live state is never dropped.
    pub drop_init: bool,
    /// Clear the MXCSR bits the destination does not implement (outside
    /// its MXCSR mask) instead of refusing the state: XRSTOR and FXRSTOR
    /// fault (#GP) on them (Intel SDM vol. 1, 11.6.6).
    pub mask_mxcsr: bool,
}

impl Default for RelayoutOptions {
    fn default() -> Self {
        RelayoutOptions {
            format: Format::Standard,
            drop_init: false,
            mask_mxcsr: false,
        }
    }
}

/// Why state cannot move.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MigrateError {
    /// The source area does not open under the source layout.
    #[error("source area: {0}")]
    Source(#[source] HeaderError),
    /// The source area's bytes cannot be read (a component past its end).
    #[error("source area: {0}")]
    SourceAccess(#[source] AccessError),
    /// A live component the destination has no place for.
    #[error("{component} (component {n}) is live but {layout} has no place for it", n = .component.index())]
    LiveWithoutHome {
        /// The component.
        component: ComponentId,
        /// The destination layout's name.
        layout: Text<64>,
    },
    /// A component the destination lacks, init in the source: dropped
    /// only when asked to.
    #[error("{component} (component {n}) is init but {layout} has no place for it; drop init components to convert", n = .component.index())]
    InitWithoutHome {
        /// The component.
        component: ComponentId,
        /// The destination layout's name.
        layout: Text<64>,
    },
    /// The destination cannot take the state (sizes differ, say).
    #[error("destination: {0}")]
    Destination(#[source] AccessError),
    /// The state would make XRSTOR fault at the destination: an MXCSR bit
    /// it does not implement, or a TILECFG it refuses.
    #[error("{0}")]
    WouldFault(Incompatibility),
    /// The buffer [`relayout_into`] was given is shorter than the area it
    /// must hold.
    #[error("the destination buffer of {len} bytes is too small: the area needs {needed}")]
    DestinationTooSmall {
        /// The buffer's length in bytes.
        len: usize,
        /// The fewest bytes that hold the area: in the standard format
        /// the end of its last live component (at least 576), in the
        /// compacted format its size.
        needed: usize,
    },
}

/// What [`relayout_into`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayoutReport {
    /// The area's length in bytes: it is `dst[..len]` (the destination
    /// layout's standard size, or the whole of a shorter buffer that holds
    /// every live component, as a 4096-byte `kvm_xsave` does; in the
    /// compacted format its size for XCOMP_BV's components).
    pub len: usize,
    /// XSTATE_BV written: the live components.
    pub xstate_bv: Xfeatures,
    /// XCOMP_BV written ([`XcompBv::STANDARD`] in the standard format).
    pub xcomp_bv: XcompBv,
    /// The live components the guest could not hold, put in their init
    /// configuration ([`Guest::mask`]); [`maskings`](Self::maskings) says
    /// why.
    pub masked: Xfeatures,
    /// Whether MXCSR bits outside the destination's MXCSR mask were
    /// cleared ([`RelayoutOptions::mask_mxcsr`]).
    pub masked_mxcsr: bool,
}

impl RelayoutReport {
    /// Each masked component and why, lowest first, as [`Guest::mask`]
    /// and [`relayout_for`] give them; `guest` is the one relaid out for.
    pub fn maskings(&self, guest: &Guest) -> Vec<Masking> {
        maskings(self.masked, guest)
    }
}

/// Each of `masked` and why `guest` excludes it.
fn maskings(masked: Xfeatures, guest: &Guest) -> Vec<Masking> {
    masked
        .iter()
        .filter_map(|component| {
            guest
                .excludes(component)
                .map(|reason| Masking { component, reason })
        })
        .collect()
}

/// Converts the XSAVE area `src` (in `from`'s layout, either format) to
/// `to`'s layout in `options.format`.
///
/// Init components stay init. A live component `to` lacks is an error
/// naming it; so is an init one unless `options.drop_init`. Where the
/// layouts and formats agree the input is returned as it is, uncopied.
/// Otherwise the area is [`relayout_into`] a zeroed buffer of its size.
///
/// # Errors
///
/// A [`MigrateError`] naming the component or field at fault.
pub fn relayout<'a>(
    src: &'a [u8],
    from: &Layout,
    to: &Layout,
    options: RelayoutOptions,
) -> Result<Cow<'a, [u8]>, MigrateError> {
    relayout_for(src, from, to, options, &Guest::default()).map(|(area, _)| area)
}

/// [`relayout`] for a guest: the components `guest` cannot hold are masked
/// out first ([`Guest::mask`]), and returned, so a caller reports them;
/// those the destination lacks are dropped without `options.drop_init`.
///
/// # Errors
///
/// As [`relayout`], judged after masking.
pub fn relayout_for<'a>(
    src: &'a [u8],
    from: &Layout,
    to: &Layout,
    options: RelayoutOptions,
    guest: &Guest,
) -> Result<(Cow<'a, [u8]>, Vec<Masking>), MigrateError> {
    let mut copies = Copies::new();
    let plan = Plan::new(src, from, to, options, guest, &mut copies)?;
    // The input itself, where nothing changes: no masking, the same
    // geometry and the standard format at its full size, canonical bytes
    // (PKRU's reserved bytes zero, MXCSR's the state's: 0x1F80 while SSE
    // and AVX are init, as the standard-format XRSTOR loads it whatever
    // XSTATE_BV says) and the destination's MXCSR_MASK.
    let canonical = !plan.live.contains(ComponentId::PKRU)
        || plan
            .view
            .component(ComponentId::PKRU)
            .ok()
            .flatten()
            .is_some_and(|b| {
                b.get(ComponentId::PKRU.reserved_bytes())
                    .is_some_and(|r| r.iter().all(|&x| x == 0))
            });
    if plan.masked.is_empty()
        && !plan.masked_mxcsr
        && canonical
        && src.get(legacy::MXCSR..legacy::MXCSR + 4) == Some(&plan.mxcsr.to_le_bytes()[..])
        && src.get(legacy::MXCSR_MASK..legacy::MXCSR_MASK + 4)
            == Some(&to.mxcsr_mask().to_le_bytes()[..])
        && from.fingerprint() == to.fingerprint()
        && plan.view.format() == options.format
        && options.format == Format::Standard
        && src.len() == to.standard_size() as usize
    {
        return Ok((Cow::Borrowed(src), maskings(plan.masked, guest)));
    }
    let mut area = vec![0u8; plan.len];
    plan.write(src, &mut area, &copies);
    Ok((Cow::Owned(area), maskings(plan.masked, guest)))
}

/// [`relayout_for`] into a buffer the caller owns (a `kvm_xsave`, say),
/// without allocating: `dst[..len]` becomes the area, `len` (in the
/// [`RelayoutReport`]) the destination layout's standard size, or the
/// whole of a shorter buffer that holds every live component (a 4096-byte
/// `kvm_xsave` where the layout's standard size is larger), or its
/// compacted size; `guest` may be `&Guest::default()`, which masks
/// nothing.
///
/// Each live component is copied straight from `src` to its place in
/// `dst`. Written in full: the 512-byte legacy region (x87's and SSE's
/// bytes where live, zero where init; MXCSR; MXCSR_MASK as `to`'s; bytes
/// 416..512 zero), the 64-byte XSAVE header (XSTATE_BV, XCOMP_BV, reserved
/// bytes zero) and every live component (PKRU's reserved bytes 4..8 zero).
/// The bytes of init components, and `dst` past the area, are left as
/// they were, as XSAVEOPT leaves them: XRSTOR and `KVM_SET_XSAVE` ignore a
/// component whose XSTATE_BV bit is clear. Into a zeroed buffer the bytes
/// are those of [`relayout_for`]'s copy.
///
/// ```
/// use xstate::layout::catalog;
/// use xstate::migrate::{relayout_into, Guest, RelayoutOptions};
/// use xstate::prelude::*;
/// use xstate::{Format, RegisterFile};
///
/// let zen4 = catalog::get("amd-zen4").unwrap();
/// let spr = catalog::get("intel-sapphire-rapids").unwrap();
/// let mut regs = RegisterFile::new();
/// regs.set_zmm(3, [1, 2, 3, 4]).unwrap();
/// let area = regs.encode(zen4, Format::Standard).unwrap();
/// // A 4096-byte kvm_xsave, reused from vCPU to vCPU: it holds every
/// // live component, though Sapphire Rapids' standard size is 11008.
/// let mut kvm_buffer = vec![0u8; 4096];
/// let done = relayout_into(&area, zen4, spr, RelayoutOptions::default(), &Guest::default(), &mut kvm_buffer).unwrap();
/// assert_eq!(done.len, 4096);
/// assert_eq!(RegisterFile::decode(&kvm_buffer[..done.len], spr).unwrap(), regs);
/// ```
///
/// # Errors
///
/// As [`relayout_for`], and [`MigrateError::DestinationTooSmall`] when
/// `dst` cannot hold the area: in the standard format, when it ends before
/// the last live component does. Every check is made before any byte is
/// written: on error `dst` is unchanged.
pub fn relayout_into(
    src: &[u8],
    from: &Layout,
    to: &Layout,
    options: RelayoutOptions,
    guest: &Guest,
    dst: &mut [u8],
) -> Result<RelayoutReport, MigrateError> {
    let mut copies = Copies::new();
    let plan = Plan::new(src, from, to, options, guest, &mut copies)?;
    if dst.len() < plan.needed {
        return Err(MigrateError::DestinationTooSmall {
            len: dst.len(),
            needed: plan.needed,
        });
    }
    plan.write(src, dst, &copies);
    Ok(RelayoutReport {
        // A standard-format buffer shorter than the standard size (KVM's
        // 4096 bytes, say) is the area whole: it holds every live component.
        len: plan.len.min(dst.len()),
        xstate_bv: plan.live,
        xcomp_bv: plan.xcomp_bv,
        masked: plan.masked,
        masked_mxcsr: plan.masked_mxcsr,
    })
}

/// One live extended component's copy: from `src..src + len` of the source
/// area to `dst..` of the destination, where its bytes `reserved.0 ..
/// reserved.1` (relative to its start) are then zeroed. In bytes; an area
/// is at most [`MAX_AREA_SIZE`](crate::layout::MAX_AREA_SIZE) long.
#[derive(Clone, Copy, Debug)]
struct Move {
    src: u32,
    dst: u32,
    len: u32,
    reserved: (u16, u16),
}

/// Every live extended component's copy, lowest first: on the stack, one
/// per component number at most.
type Copies = ArrayVec<Move, 64>;

/// A relayout, checked: what goes where. Building one makes every check,
/// in the order the register-file path made them (decode, mask, homes,
/// MXCSR, faults, the destination's room); writing one cannot fail.
struct Plan<'s, 'l> {
    /// The source area.
    view: XsaveView<'l, &'s [u8]>,
    /// The destination layout.
    to: &'l Layout,
    /// The components live at the destination (XSTATE_BV).
    live: Xfeatures,
    /// Whether SSE's XMM bytes come from the source (else they are zero:
    /// SSE made live by a non-init MXCSR with only AVX live).
    sse_from_source: bool,
    /// MXCSR as written.
    mxcsr: u32,
    /// The live components the guest could not hold.
    masked: Xfeatures,
    masked_mxcsr: bool,
    /// XCOMP_BV written.
    xcomp_bv: XcompBv,
    /// The area's length in bytes.
    len: usize,
    /// The fewest bytes that hold it (see
    /// [`MigrateError::DestinationTooSmall`]).
    needed: usize,
}

impl<'s, 'l> Plan<'s, 'l> {
    /// Checks the relayout and fills `copies` with each live extended
    /// component's copy.
    #[inline(always)]
    fn new(
        src: &'s [u8],
        from: &'l Layout,
        to: &'l Layout,
        options: RelayoutOptions,
        guest: &Guest,
        copies: &mut Copies,
    ) -> Result<Plan<'s, 'l>, MigrateError> {
        let view = XsaveView::new(src, from).map_err(MigrateError::Source)?;
        let src_live = view.xstate_bv();
        // MXCSR counts as the source's format counts it
        // (`XsaveView::mxcsr_counts`); a non-init one with only AVX live
        // makes SSE live, at its init XMM values, as a register file holds
        // it.
        let mxcsr_counts = view.mxcsr_counts();
        let mut mxcsr = if mxcsr_counts {
            let m = legacy::MXCSR;
            u32::from_le_bytes(src[m..m + 4].try_into().expect("4 bytes"))
        } else {
            MXCSR_INIT
        };
        let mut live = src_live;
        if mxcsr_counts && !src_live.contains(ComponentId::SSE) && mxcsr != MXCSR_INIT {
            live = live.with(ComponentId::SSE);
        }
        let mut masked = Xfeatures::EMPTY;
        let known_guest = !guest.is_unknown();
        if known_guest {
            masked = live
                .iter()
                .filter(|&c| guest.excludes(c).is_some())
                .collect();
            live -= masked;
            if !live.intersects(MXCSR_COMPONENTS) {
                mxcsr = MXCSR_INIT;
            }
        }
        // What the source area holds: its XCOMP_BV, or every component its
        // layout enables in the standard format; less what the guest cannot
        // hold (masked above when live), which goes without --drop-init. Live
        // components without a home are named before init ones: they are what
        // blocks the move.
        let held = view.held() | live;
        let mut homeless = held - to.supported();
        if known_guest {
            homeless = homeless
                .iter()
                .filter(|&c| guest.excludes(c).is_none())
                .collect();
        }
        if let Some(component) = (homeless & live).first() {
            let layout = text(to.name());
            return Err(MigrateError::LiveWithoutHome { component, layout });
        }
        if let Some(component) = homeless.first().filter(|_| !options.drop_init) {
            let layout = text(to.name());
            return Err(MigrateError::InitWithoutHome { component, layout });
        }
        let mut masked_mxcsr = false;
        if options.mask_mxcsr && mxcsr & !to.mxcsr_mask() != 0 {
            mxcsr &= to.mxcsr_mask();
            masked_mxcsr = true;
        }
        let bytes = |c| view.component(c).ok().flatten();
        if let Some(fault) = faults_of(mxcsr, live, bytes, to.mxcsr_mask())
            .into_iter()
            .next()
        {
            return Err(MigrateError::WouldFault(fault));
        }
        let (xcomp_bv, len) = match options.format {
            Format::Standard => (XcompBv::STANDARD, to.standard_size()),
            Format::Compacted => {
                let held = to.xcr0_supported() | (live & to.xss_supported());
                (XcompBv::compacted(held), to.compacted_size_for(held))
            }
        };
        let plan = Plan {
            view,
            to,
            live,
            sse_from_source: src_live.contains(ComponentId::SSE),
            mxcsr,
            masked,
            masked_mxcsr,
            xcomp_bv,
            len: (len as usize).max(EXTENDED_START),
            needed: match options.format {
                Format::Standard => to.standard_size_for(live) as usize,
                Format::Compacted => len as usize,
            }
            .max(EXTENDED_START),
        };
        plan.place(copies)?;
        Ok(plan)
    }

    /// Fills `copies` with each live extended component's copy, lowest
    /// first, checking that the destination has room for it at the same
    /// size. Compacted offsets come from one walk over each area's
    /// components.
    ///
    /// # Errors
    ///
    /// [`MigrateError::Destination`] for a component the destination
    /// format has no room for or holds at another size;
    /// [`MigrateError::SourceAccess`] for one past the source's end.
    #[inline(always)]
    fn place(&self, copies: &mut Copies) -> Result<(), MigrateError> {
        let (from, to) = (self.view.layout(), self.to);
        let wanted = self.live.extended();
        let src_len = self.view.as_bytes().len();
        copies.clear();
        // Both areas walked once, in step: the same components, ascending.
        // The destination's room is judged later, against the buffer.
        let mut places = to.extents(self.xcomp_bv, wanted, usize::MAX);
        for (c, source) in from.extents(self.view.xcomp_bv(), wanted, src_len) {
            let Some((_, place)) = places.next() else {
                break;
            };
            let (start, len) = source.map_err(|e| {
                MigrateError::SourceAccess(match e {
                    AccessError::BufferTooSmall { .. } => e,
                    _ => AccessError::NotInArea(c),
                })
            })?;
            let (at, there) = place.map_err(MigrateError::Destination)?;
            if there != len {
                return Err(MigrateError::Destination(AccessError::SizeMismatch {
                    component: c,
                    layout_size: there,
                    state_size: len,
                }));
            }
            let reserved = if crate::component::WITH_RESERVED.contains(c) {
                let r = c.reserved_bytes();
                (r.start as u16, r.end as u16)
            } else {
                (0, 0)
            };
            // Offsets and sizes within MAX_AREA_SIZE: u32 holds them.
            copies.push(Move {
                src: start as u32,
                dst: at as u32,
                len: len as u32,
                reserved,
            });
        }
        Ok(())
    }

    /// Writes the area into `dst` (at least `self.len` bytes): the legacy
    /// region, the header and each live component's `copies`.
    #[inline(always)]
    fn write(&self, src: &[u8], dst: &mut [u8], copies: &Copies) {
        let x87 = self.live.contains(ComponentId::X87);
        let sse = self.live.contains(ComponentId::SSE) && self.sse_from_source;
        let (x87_a, x87_b) = (legacy::X87_RANGES[0].clone(), legacy::X87_RANGES[1].clone());
        if x87 && sse {
            // The common case: x87 and SSE in one copy.
            dst[..legacy::SSE_RANGE.end].copy_from_slice(&src[..legacy::SSE_RANGE.end]);
        } else {
            for r in [x87_a, x87_b] {
                if x87 {
                    dst[r.clone()].copy_from_slice(&src[r]);
                } else {
                    dst[r].fill(0);
                }
            }
            if sse {
                dst[legacy::SSE_RANGE].copy_from_slice(&src[legacy::SSE_RANGE]);
            } else {
                dst[legacy::SSE_RANGE].fill(0);
            }
        }
        dst[legacy::MXCSR..legacy::MXCSR + 4].copy_from_slice(&self.mxcsr.to_le_bytes());
        dst[legacy::MXCSR_MASK..legacy::MXCSR_MASK + 4]
            .copy_from_slice(&self.to.mxcsr_mask().to_le_bytes());
        // The reserved and software bytes (416..512), and the header.
        let mut tail = [0u8; EXTENDED_START - legacy::SSE_RANGE.end];
        let header = HEADER_OFFSET - legacy::SSE_RANGE.end;
        tail[header..header + 8].copy_from_slice(&self.live.bits().to_le_bytes());
        tail[header + 8..header + 16].copy_from_slice(&self.xcomp_bv.bits().to_le_bytes());
        dst[legacy::SSE_RANGE.end..EXTENDED_START].copy_from_slice(&tail);
        for c in copies {
            let (from, at, len) = (c.src as usize, c.dst as usize, c.len as usize);
            let to = &mut dst[at..at + len];
            to.copy_from_slice(&src[from..from + len]);
            if c.reserved.0 < c.reserved.1 {
                to[c.reserved.0 as usize..c.reserved.1 as usize].fill(0);
            }
        }
    }
}
