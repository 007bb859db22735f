//! The stream straight from and into XSAVE areas, with no
//! [`RegisterFile`] between: [`encode_views`] records each vCPU's state
//! from a view over its area (a `KVM_GET_XSAVE2` buffer, say), and
//! [`Parsed::decode_into_view`] writes one vCPU into a view over the area
//! a restore loads (`KVM_SET_XSAVE`'s buffer). Both give the bytes of the
//! register-file paths: a stream byte for byte as [`encode`] writes it from
//! [`RegisterFile::from_view`], an area as [`RegisterFile::write_to`]
//! leaves it after [`Parsed::decode_into`] (tests/stream_views.rs).

use alloc::vec::Vec;

use super::{
    check_count, legacy_parts, record_size, write, Canonical, Parsed, Source, StreamError,
    MAX_UNKNOWN_RECORD, VERSION, ZEROS,
};
use crate::access::{AccessError, XstateRead};
use crate::area::{legacy, Format, MXCSR_INIT};
use crate::component::{ComponentId, Xfeatures};
use crate::migrate::check::{component_incompatibilities, faults_of};
use crate::migrate::Incompatibility;
use crate::view::XsaveView;
use crate::xregs::XstateRegisters;
#[cfg(doc)]
use crate::{migrate::stream::encode, RegisterFile};

/// One vCPU as [`encode_views`] reads it: a view over its XSAVE area and
/// its XCR0, IA32_XSS, IA32_XFD and IA32_XFD_ERR.
pub struct VcpuArea<'v, 'a, B> {
    /// The view over the vCPU's XSAVE area, in either format.
    pub area: &'v XsaveView<'a, B>,
    /// The vCPU's extended-state control registers.
    pub registers: XstateRegisters,
}

impl<B> Clone for VcpuArea<'_, '_, B> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B> Copy for VcpuArea<'_, '_, B> {}

impl<B: AsRef<[u8]>> core::fmt::Debug for VcpuArea<'_, '_, B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VcpuArea")
            .field("area", self.area)
            .field("registers", &self.registers)
            .finish()
    }
}

/// MXCSR's bytes in a legacy region.
fn mxcsr_bytes(area: &[u8]) -> &[u8] {
    &area[legacy::MXCSR..legacy::MXCSR + 4]
}

/// A view's state as a stream records it, its components checked and
/// placed once (one walk over the area's components, whatever its format).
struct AreaState<'v, 'a, B> {
    view: &'v XsaveView<'a, B>,
    recorded: Xfeatures,
    /// Where each live extended component's bytes are in the area, by
    /// component number: start and end in bytes.
    extents: [(u32, u32); 64],
}

impl<'v, 'a, B: AsRef<[u8]>> AreaState<'v, 'a, B> {
    /// The components recorded are the view's live ones, and SSE where
    /// only AVX is live with a non-init MXCSR: SSE carries MXCSR, as in
    /// [`RegisterFile::read_from`].
    fn new(view: &'v XsaveView<'a, B>) -> Result<Self, AccessError> {
        let live = view.xstate_bv();
        let mut recorded = live;
        if view.mxcsr_counts()
            && !live.contains(ComponentId::SSE)
            && mxcsr_bytes(view.as_bytes()) != MXCSR_INIT.to_le_bytes()
        {
            recorded = recorded.with(ComponentId::SSE);
        }
        let mut extents = [(0, 0); 64];
        let len = view.as_bytes().len();
        for (c, placed) in view.layout().extents(view.xcomp_bv(), live, len) {
            let (start, size) = placed?;
            let expected = record_size(c);
            let fits = match expected {
                Some(record) => size == record,
                None => (1..=MAX_UNKNOWN_RECORD).contains(&size),
            };
            if !fits {
                return Err(AccessError::SizeMismatch {
                    component: c,
                    layout_size: size,
                    state_size: expected.unwrap_or(MAX_UNKNOWN_RECORD),
                });
            }
            // Within an area of at most MAX_AREA_SIZE bytes: u32 holds them.
            extents[c.index() as usize & 63] = (start as u32, (start + size) as u32);
        }
        Ok(AreaState {
            view,
            recorded,
            extents,
        })
    }
}

impl<B: AsRef<[u8]>> Canonical for AreaState<'_, '_, B> {
    fn recorded(&self) -> Xfeatures {
        self.recorded
    }

    fn parts(&self, c: ComponentId) -> [&[u8]; 3] {
        let bytes = self.view.as_bytes();
        match c {
            // SSE recorded for MXCSR alone: its XMM registers are init.
            ComponentId::SSE if !self.view.xstate_bv().contains(c) => {
                [mxcsr_bytes(bytes), &ZEROS[..], &[]]
            }
            ComponentId::X87 | ComponentId::SSE => legacy_parts(bytes, c),
            _ => {
                let (start, end) = self.extents[c.index() as usize & 63];
                legacy_parts(&bytes[start as usize..end as usize], c)
            }
        }
    }
}

/// Encodes `vcpus` (in order) as a version 2 stream from `source`, read
/// straight from views over their XSAVE areas: the bytes [`encode`] writes
/// for the same vCPUs read into register files
/// ([`RegisterFile::from_view`]), with the same checks, and no register
/// file between.
///
/// ```
/// use xstate::layout::catalog;
/// use xstate::migrate::stream::{self, encode_views, Source, VcpuArea};
/// use xstate::prelude::*;
/// use xstate::xregs::XstateRegisters;
/// use xstate::XsaveView;
///
/// let spr = catalog::get("intel-sapphire-rapids").unwrap();
/// let mut buf = vec![0u8; 4096]; // KVM_GET_XSAVE2's buffer, say
/// let mut view = XsaveView::new(&mut buf[..], spr).unwrap();
/// view.set_xmm(3, 7).unwrap();
/// let view = XsaveView::new(&buf[..], spr).unwrap();
/// let registers = XstateRegisters::with_xcr0(spr.xcr0_supported());
/// let vcpu = VcpuArea { area: &view, registers };
/// let bytes = encode_views(&[vcpu], &Source::of(spr)).unwrap();
/// let parsed = stream::parse(&bytes).unwrap();
/// assert_eq!(parsed.vcpu(0).unwrap().state.xmm(3).unwrap(), 7);
/// ```
///
/// # Errors
///
/// [`StreamError::TooManyVcpus`] for more than [`MAX_VCPUS`](super::MAX_VCPUS),
/// [`StreamError::VcpuArea`] for a live component the area does not hold
/// whole or at its canonical size, [`StreamError::VcpuRegisters`] for
/// impossible registers or state that IA32_XFD disables.
pub fn encode_views<B: AsRef<[u8]>>(
    vcpus: &[VcpuArea<'_, '_, B>],
    source: &Source,
) -> Result<Vec<u8>, StreamError> {
    let mut out = Vec::new();
    encode_views_into(vcpus, source, &mut out)?;
    Ok(out)
}

/// [`encode_views`] into `out`, replacing what it held and reusing its
/// allocation, as [`encode_into`](super::encode_into) does.
///
/// # Errors
///
/// As [`encode_views`]; `out` is unchanged then.
pub fn encode_views_into<B: AsRef<[u8]>>(
    vcpus: &[VcpuArea<'_, '_, B>],
    source: &Source,
    out: &mut Vec<u8>,
) -> Result<(), StreamError> {
    check_count(vcpus.len())?;
    let mut sections = Vec::with_capacity(vcpus.len());
    for (n, v) in vcpus.iter().enumerate() {
        let state =
            AreaState::new(v.area).map_err(|source| StreamError::VcpuArea { vcpu: n, source })?;
        v.registers
            .check_state(state.recorded)
            .map_err(|source| StreamError::VcpuRegisters { vcpu: n, source })?;
        sections.push((state, Some(v.registers)));
    }
    write(&sections, source, VERSION, out);
    Ok(())
}

impl Parsed<'_> {
    /// Writes vCPU `n` straight into `view` (a view over the buffer
    /// `KVM_SET_XSAVE` takes, say), with no register file between, and
    /// returns its registers (`None` from a version 1 stream).
    ///
    /// The state is judged first by the rules of
    /// [`check`](crate::migrate::check()) against the view's layout, with the
    /// layout's MXCSR mask: a live component the layout lacks or holds at
    /// another size, MXCSR bits outside the mask, a TILECFG that LDTILECFG
    /// refuses, supervisor values XRSTORS refuses (every one of these is
    /// reported); then, only when none is found, whether the area has room
    /// for every live component (supervisor state in the standard format,
    /// a compacted area without it, a buffer that ends inside it: the
    /// first such component is reported).
    /// Only a state with none of these is written, as
    /// [`RegisterFile::write_to`] writes it: live components copied and
    /// marked live in XSTATE_BV, the others marked init, MXCSR written
    /// (0x1F80 while SSE is not recorded), XCOMP_BV and the bytes of init
    /// components left as they were. The vCPU's registers are not judged
    /// here: what `KVM_SET_XCRS` and `KVM_SET_MSRS` take is
    /// [`check_host`](crate::migrate::check_host)'s part.
    ///
    /// ```
    /// use xstate::layout::catalog;
    /// use xstate::migrate::stream::{self, encode, Source, StreamError, Vcpu};
    /// use xstate::prelude::*;
    /// use xstate::xregs::XstateRegisters;
    /// use xstate::{RegisterFile, XsaveView};
    ///
    /// let spr = catalog::get("intel-sapphire-rapids").unwrap();
    /// let mut state = RegisterFile::new();
    /// state.set_zmm(20, [1, 2, 3, 4]).unwrap();
    /// let vcpu = Vcpu::new(state, XstateRegisters::with_xcr0(spr.xcr0_supported()));
    /// let bytes = encode(&[vcpu], &Source::of(spr)).unwrap();
    /// let parsed = stream::parse(&bytes).unwrap();
    ///
    /// let mut buf = vec![0u8; 4096];
    /// let mut view = XsaveView::new(&mut buf[..], spr).unwrap();
    /// parsed.decode_into_view(0, &mut view).unwrap();
    /// assert_eq!(view.zmm(20).unwrap(), [1, 2, 3, 4]);
    ///
    /// // Zen 3 has no AVX-512: refused, and nothing written.
    /// let zen3 = catalog::get("amd-zen3").unwrap();
    /// let mut buf = vec![0u8; 4096];
    /// let mut view = XsaveView::new(&mut buf[..], zen3).unwrap();
    /// let err = parsed.decode_into_view(0, &mut view).unwrap_err();
    /// assert!(matches!(err, StreamError::Incompatible { vcpu: 0, .. }), "{err}");
    /// assert_eq!(buf, vec![0u8; 4096]);
    /// ```
    ///
    /// # Errors
    ///
    /// [`StreamError::NoSuchVcpu`] past the last vCPU,
    /// [`StreamError::Incompatible`] with every reason found; `view` is
    /// unchanged then.
    pub fn decode_into_view<B: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        n: usize,
        view: &mut XsaveView<'_, B>,
    ) -> Result<Option<XstateRegisters>, StreamError> {
        let section = self.section(n).ok_or(StreamError::NoSuchVcpu {
            vcpu: n,
            vcpus: self.len(),
        })?;
        let records = section.records;
        let mxcsr = records
            .clone()
            .find(|&(c, _)| c == ComponentId::SSE)
            .map_or(MXCSR_INIT, |(_, d)| {
                u32::from_le_bytes(d[..4].try_into().expect("4 bytes"))
            });
        let layout = view.layout();
        let mut reasons = Vec::new();
        let sizes = records.clone().map(|(c, d)| (c, d.len()));
        component_incompatibilities(&mut reasons, sizes, layout);
        let bytes = |c| records.clone().find(|&(r, _)| r == c).map(|(_, d)| d);
        reasons.extend(faults_of(
            mxcsr,
            section.xstate_bv,
            bytes,
            layout.mxcsr_mask(),
        ));
        if reasons.is_empty() {
            for (c, _) in records.clone() {
                let supervisor = c.info().is_some_and(|i| i.supervisor);
                let room = if supervisor && view.format() == Format::Standard {
                    Err(Incompatibility::SupervisorInStandardFormat(c))
                } else if c.is_legacy() {
                    view.component_offset(c)
                        .map(drop)
                        .map_err(Incompatibility::DoesNotFit)
                } else {
                    view.extent_of(c)
                        .map(drop)
                        .map_err(Incompatibility::DoesNotFit)
                };
                if let Err(e) = room {
                    reasons.push(e);
                    break;
                }
            }
        }
        if !reasons.is_empty() {
            return Err(StreamError::Incompatible {
                vcpu: n,
                incompatibilities: reasons,
            });
        }
        for (c, data) in records {
            match c {
                ComponentId::X87 => {
                    let dst = view.bytes_mut();
                    let [a, b] = legacy::X87_RANGES;
                    let split = a.len();
                    dst[a].copy_from_slice(&data[..split]);
                    dst[b].copy_from_slice(&data[split..]);
                }
                ComponentId::SSE => {
                    view.bytes_mut()[legacy::SSE_RANGE].copy_from_slice(&data[4..]);
                }
                _ => {
                    let start = view.extent_of(c).expect("checked").start;
                    view.bytes_mut()[start..start + data.len()].copy_from_slice(data);
                }
            }
        }
        // Always written: 0x1F80 while SSE is not recorded, so that the
        // standard-format XRSTOR (which loads MXCSR regardless) agrees.
        view.bytes_mut()[legacy::MXCSR..legacy::MXCSR + 4].copy_from_slice(&mxcsr.to_le_bytes());
        view.set_xstate_bv(section.xstate_bv);
        Ok(section.registers)
    }
}
