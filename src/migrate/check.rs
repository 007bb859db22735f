//! Whether a state can go to a destination, with every reason it cannot.
//!
//! Against a layout, [`check`] judges the destination CPU only: whether it
//! has every live component at the same size and accepts MXCSR. Against a
//! host profile with a KVM part, [`check_host`] also judges what KVM there
//! will take: a component KVM does not offer guests is incompatible even
//! where the CPU has it (an AMX host whose KVM offers guests no AMX), and
//! the state, laid out as KVM's buffer there, must pass the
//! `KVM_SET_XSAVE` rules ([`preflight`]). Without a KVM part the KVM
//! verdict is unknown (`None`), never a guess.

use alloc::vec;
use alloc::vec::Vec;

use super::guest::{Guest, Masking};
use zerocopy::FromBytes;

use crate::access::{AccessError, XstateRead};
use crate::area::{
    check_supervisor, SupervisorValueError, TileConfig, TileConfigError, CHECKED_SUPERVISOR,
    MXCSR_INIT,
};
use crate::component::{ComponentId, XcompBv, Xfeatures};
use crate::preflight::{preflight, PreflightError};
use crate::profile::{HostProfile, KvmOffer};
use crate::xregs::Xreg;
use crate::{Layout, RegisterFile};

/// One reason a state cannot be restored at a destination.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Incompatibility {
    /// A live component the destination lacks.
    MissingComponent(ComponentId),
    /// A live component whose size differs at the destination.
    SizeDiffers {
        /// The component.
        component: ComponentId,
        /// Its size in bytes in the state.
        state: usize,
        /// Its size in bytes at the destination.
        destination: u32,
    },
    /// MXCSR bits the destination does not implement (AMD's bit 17 on Intel).
    Mxcsr {
        /// MXCSR.
        mxcsr: u32,
        /// The bits outside the mask.
        bad: u32,
        /// The destination's MXCSR mask.
        mask: u32,
    },
    /// A live AMX tile configuration that LDTILECFG and XRSTOR refuse.
    TileConfig(TileConfigError),
    /// A live supervisor component value that XRSTORS refuses.
    SupervisorValue(SupervisorValueError),
    /// A live component KVM on the destination does not offer guests.
    NotOfferedByKvm {
        /// The component.
        component: ComponentId,
        /// KVM's guest XCR0 (or IA32_XSS, for supervisor components).
        offered: Xfeatures,
    },
    /// `KVM_SET_XSAVE` on the destination would reject the state.
    KvmRejects(PreflightError),
    /// The state does not fit the destination's area (a live component it
    /// lacks, or KVM's buffer too small for it).
    DoesNotFit(AccessError),
    /// Live supervisor state for a destination that takes the standard
    /// format only (KVM's buffers), which holds no supervisor component:
    /// only XSAVES's compacted format does (Intel SDM vol. 1, 13.11). A
    /// VMM moves such state through the MSRs that hold it
    /// (`KVM_SET_MSRS`).
    SupervisorInStandardFormat(ComponentId),
    /// A vCPU register value the destination cannot be given: XCR0 or
    /// IA32_XSS enabling, or IA32_XFD disabling, components it does not
    /// support (`KVM_SET_XCRS` and `KVM_SET_MSRS` fail with EINVAL, XSETBV
    /// and WRMSR fault).
    Register {
        /// The register.
        register: Xreg,
        /// Its value.
        value: Xfeatures,
        /// The bits the destination refuses.
        unsupported: Xfeatures,
        /// Who refuses them, and what they take.
        by: Refuser,
    },
}

/// Who refuses a vCPU register value ([`Incompatibility::Register`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refuser {
    /// The destination CPU: its layout's XCR0 or IA32_XSS bits, or its
    /// XFD-capable components.
    Cpu {
        /// What the CPU supports.
        supported: Xfeatures,
    },
    /// KVM on the destination: the XCR0 or IA32_XSS bits it offers guests,
    /// or no XFD at all.
    Kvm {
        /// What KVM offers.
        offered: Xfeatures,
    },
    /// The guest's CPU model: KVM limits a vCPU's XCR0 to what its CPUID
    /// exposes.
    Model {
        /// The CPU model's XCR0 bits.
        exposed: Xfeatures,
    },
}

impl core::fmt::Display for Incompatibility {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Incompatibility::MissingComponent(c) => write!(
                f,
                "{c} (component {}) is live but the destination lacks it",
                c.index()
            ),
            Incompatibility::SizeDiffers {
                component,
                state,
                destination,
            } => write!(
                f,
                "{component} (component {}) is {state} bytes in the state, {destination} at the destination",
                component.index()
            ),
            Incompatibility::Mxcsr { mxcsr, bad, mask } => write!(
                f,
                "MXCSR {mxcsr:#x} has bits {bad:#x} outside the destination's MXCSR mask {mask:#x}"
            ),
            Incompatibility::TileConfig(e) => write!(f, "XRSTOR would fault: {e}"),
            Incompatibility::SupervisorValue(e) => write!(f, "XRSTORS would fault: {e}"),
            Incompatibility::NotOfferedByKvm { component, offered } => write!(
                f,
                "{component} (component {}) is live but KVM on the destination does not offer it to guests (guest {} {offered})",
                component.index(),
                if component.info().is_some_and(|i| i.supervisor) { "IA32_XSS" } else { "XCR0" },
            ),
            Incompatibility::KvmRejects(e) => {
                write!(f, "KVM_SET_XSAVE on the destination would reject the state: {e}")
            }
            Incompatibility::DoesNotFit(e) => {
                write!(f, "the state does not fit the destination's area: {e}")
            }
            Incompatibility::SupervisorInStandardFormat(c) => write!(
                f,
                "{c} (component {}) is live supervisor state, which the destination's standard-format area (KVM_SET_XSAVE's) cannot hold: only the compacted format of XSAVES does (its MSRs carry it through KVM_SET_MSRS)",
                c.index()
            ),
            Incompatibility::Register {
                register,
                value,
                unsupported,
                by,
            } => {
                let verb = if *register == Xreg::Xfd { "disables" } else { "enables" };
                write!(f, "the vCPU's {register} {value} {verb} {unsupported}, which ")?;
                match by {
                    Refuser::Cpu { supported } => write!(
                        f,
                        "the destination CPU does not support (it has {supported})"
                    ),
                    Refuser::Kvm { offered } if *register == Xreg::Xfd && offered.is_empty() => {
                        write!(f, "KVM on the destination cannot set: it offers guests no XFD")
                    }
                    Refuser::Kvm { offered } => write!(
                        f,
                        "KVM on the destination does not offer guests (it offers {offered})"
                    ),
                    Refuser::Model { exposed } => write!(
                        f,
                        "the guest's CPU model does not expose (it exposes {exposed})"
                    ),
                }
            }
        }
    }
}

/// The verdict of [`check`] or [`check_host`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckReport {
    /// Every incompatibility found (empty when the state can go).
    pub incompatibilities: Vec<Incompatibility>,
    /// KVM's verdict on the area: whether `KVM_SET_XSAVE` on the
    /// destination takes the state (the bytes [`restore_area`] writes);
    /// `None` when only the destination CPU was judged (no KVM profile).
    /// The vCPU's registers are judged apart
    /// ([`Incompatibility::Register`]): a state can be `Some(true)` here
    /// and still not compatible.
    pub kvm: Option<bool>,
    /// The components the guest description masked out before judging.
    pub masked: Vec<Masking>,
}

impl CheckReport {
    /// Whether the state can be restored at the destination, as far as it
    /// was judged (see [`kvm`](Self::kvm)).
    pub fn is_compatible(&self) -> bool {
        self.incompatibilities.is_empty()
    }
}

/// Lists every reason `state` cannot be restored on a CPU with layout
/// `destination`, not just the first. Only the CPU is judged: the report's
/// KVM verdict is `None` ([`check_host`] judges KVM too). The verdict is the
/// same on every build target.
///
/// ```
/// use xstate::layout::catalog;
/// use xstate::migrate::check;
/// use xstate::prelude::*;
/// use xstate::RegisterFile;
///
/// let mut state = RegisterFile::new();
/// state.set_mxcsr(0x2_1F80).unwrap(); // AMD's misaligned-SSE mask bit
/// state.set_r(16, 1).unwrap();        // APX
/// let report = check(&state, catalog::get("intel-sapphire-rapids").unwrap());
/// assert_eq!(report.incompatibilities.len(), 2);
/// assert!(!report.is_compatible());
/// assert_eq!(report.kvm, None);
/// ```
pub fn check(state: &RegisterFile, destination: &Layout) -> CheckReport {
    CheckReport {
        incompatibilities: cpu_incompatibilities(state, destination, destination.mxcsr_mask()),
        kvm: None,
        masked: Vec::new(),
    }
}

/// Lists every reason `state`, masked for `guest` ([`Guest::mask`]), cannot
/// be restored on `destination`: its CPU, and, when the profile has a KVM
/// part, what KVM there offers guests and the `KVM_SET_XSAVE` rules for a
/// vCPU like `guest` on that kernel. The vCPU's registers, as far as
/// `guest` knows them, are judged too ([`Incompatibility::Register`]): an
/// XCR0 the destination CPU, its KVM or the guest's CPU model refuses, an
/// IA32_XSS beyond the CPU or KVM, an IA32_XFD on components that are not
/// XFD-capable there or under a KVM that offers guests no XFD.
///
/// ```
/// use xstate::layout::catalog;
/// use xstate::migrate::{check_host, Guest};
/// use xstate::prelude::*;
/// use xstate::profile::{HostProfile, KvmOffer};
/// use xstate::{RegisterFile, Xfeatures};
///
/// // AMX tile data, to a Sapphire Rapids host whose KVM offers guests no AMX.
/// let mut state = RegisterFile::new();
/// state.set_tmm(0, &[1; 1024]).unwrap();
/// let spr = catalog::get("intel-sapphire-rapids").unwrap().clone();
/// let cpu_only = HostProfile::from(spr.clone());
/// assert!(check_host(&state, &cpu_only, &Guest::default()).is_compatible());
/// let kvm = KvmOffer::new(Xfeatures::from_bits(0x2e7), 4096, 0xffff);
/// let host = HostProfile { layout: spr, kvm: Some(kvm) };
/// let report = check_host(&state, &host, &Guest::default());
/// assert_eq!(report.kvm, Some(false));
/// assert!(report.incompatibilities[0].to_string().contains("guest XCR0 0x2e7"));
///
/// // A vCPU whose XCR0 enables AMX cannot go there even with its tiles init.
/// let amx_vcpu = Guest { xcr0: Some(Xfeatures::from_bits(0x602e7)), ..Guest::default() };
/// let report = check_host(&RegisterFile::new(), &host, &amx_vcpu);
/// assert_eq!(
///     report.incompatibilities[0].to_string(),
///     "the vCPU's XCR0 0x602e7 enables 0x60000, which KVM on the destination does not offer guests (it offers 0x2e7)"
/// );
/// ```
pub fn check_host(state: &RegisterFile, destination: &HostProfile, guest: &Guest) -> CheckReport {
    let mut state = state.clone();
    let masked = guest.mask(&mut state);
    let layout = &destination.layout;
    let kvm = destination.kvm.as_ref();
    let mxcsr_mask = kvm.map_or(layout.mxcsr_mask(), |k| k.mxcsr_mask);
    let mut out = cpu_incompatibilities(&state, layout, mxcsr_mask);
    if let Some(kvm) = kvm {
        for c in state.xstate_bv().extended() {
            let supervisor = c.info().is_some_and(|i| i.supervisor);
            let offered = if supervisor {
                kvm.guest_xss
            } else {
                kvm.guest_xcr0
            };
            if layout.has(c) && !offered.contains(c) {
                out.push(Incompatibility::NotOfferedByKvm {
                    component: c,
                    offered,
                });
            }
        }
    }
    // The area [`restore_area`] writes must come out too. KVM's verdict is
    // on that area alone: the register reasons below (judged by
    // KVM_SET_XCRS and KVM_SET_MSRS) do not change what KVM_SET_XSAVE does.
    let area_ok = out.is_empty()
        && match restore_area(&state, destination, guest) {
            Ok(_) => true,
            Err(e) => {
                out.push(e);
                false
            }
        };
    out.extend(register_incompatibilities(guest, layout, kvm));
    CheckReport {
        incompatibilities: out,
        kvm: kvm.map(|_| area_ok),
        masked,
    }
}

/// `state`, already masked for `guest` ([`Guest::mask`]), as the area
/// `destination` restores: its layout's standard format, sized for KVM's
/// buffer where the profile has a KVM part (its layout's standard size
/// otherwise; the compacted format XRSTORS takes, holding the layout's user
/// components and the live supervisor ones, where supervisor state is live
/// and there is no KVM part). PKRU, and APX where that KVM offers it, are written with
/// their XSTATE_BV bits set even when init, where the layout has them and
/// the guest's CPU model has them (whatever the vCPU's XCR0 now: the guest
/// may enable them later), so a restore loads their init values on every
/// kernel (a clear PKRU bit resets PKRU on some kernels and leaves it on
/// others; a clear APX bit leaves r16-r31 unchanged); never where the
/// guest's CPU model lacks them (Linux 6.0-6.5 refuse such bits). With a
/// KVM part the bytes pass the `KVM_SET_XSAVE` rules for a vCPU like
/// `guest` on that kernel: [`check_host`] judges exactly these bytes.
///
/// # Errors
///
/// [`Incompatibility::SupervisorInStandardFormat`] for live supervisor
/// state with a KVM part, [`Incompatibility::DoesNotFit`] when the state
/// does not fit the area,
/// [`Incompatibility::KvmRejects`] when `KVM_SET_XSAVE` would refuse it.
pub fn restore_area(
    state: &RegisterFile,
    destination: &HostProfile,
    guest: &Guest,
) -> Result<Vec<u8>, Incompatibility> {
    let layout = &destination.layout;
    let wanted = destination
        .kvm
        .as_ref()
        .map_or(ComponentId::PKRU.bit(), KvmOffer::pinned);
    // Pinned whatever the vCPU's XCR0 now (the guest may enable them
    // later), but never beyond its CPU model.
    let pin: Xfeatures = wanted
        .iter()
        .filter(|&c| layout.has(c) && guest.model_xcr0.is_none_or(|m| m.contains(c)))
        .collect();
    // Supervisor state only the compacted format holds (XRSTORS restores
    // it); KVM's buffers are the standard format, always.
    let supervisor = state.xstate_bv() & layout.xss_supported();
    let (size, xcomp_bv) = match &destination.kvm {
        Some(_) if !supervisor.is_empty() => {
            let c = supervisor.first().expect("not empty");
            return Err(Incompatibility::SupervisorInStandardFormat(c));
        }
        Some(kvm) => (kvm.buffer_size, XcompBv::STANDARD),
        None if supervisor.is_empty() => (layout.standard_size() as usize, XcompBv::STANDARD),
        None => {
            let xcomp_bv = XcompBv::compacted(layout.xcr0_supported() | supervisor);
            (
                layout.compacted_size_for(xcomp_bv.components()) as usize,
                xcomp_bv,
            )
        }
    };
    let mut area = vec![0u8; size];
    state
        .encode_into_pinned(&mut area, layout, xcomp_bv, pin)
        .map_err(Incompatibility::DoesNotFit)?;
    if let Some(kvm) = &destination.kvm {
        let cpuid_xcr0 = guest.model_xcr0.unwrap_or(kvm.guest_xcr0);
        preflight(&area, &kvm.set_xsave_rules_for(cpuid_xcr0, guest.xfd))
            .map_err(Incompatibility::KvmRejects)?;
    }
    Ok(area)
}

/// What the destination cannot set in the vCPU's registers, as far as
/// `guest` knows them: XCR0 beyond the CPU, KVM's offer or the guest's CPU
/// model; IA32_XSS beyond the CPU or KVM's offer; IA32_XFD on components
/// that are not XFD-capable there, or where KVM offers guests no XFD.
fn register_incompatibilities(
    guest: &Guest,
    layout: &Layout,
    kvm: Option<&KvmOffer>,
) -> Vec<Incompatibility> {
    let xfd_capable: Xfeatures = layout
        .components()
        .filter(|g| g.xfd)
        .map(|g| g.id)
        .collect();
    let mut judged: Vec<(Xreg, Xfeatures, Refuser)> = Vec::new();
    if let Some(xcr0) = guest.xcr0 {
        judged.push((
            Xreg::Xcr0,
            xcr0,
            Refuser::Cpu {
                supported: layout.xcr0_supported(),
            },
        ));
        if let Some(kvm) = kvm {
            judged.push((
                Xreg::Xcr0,
                xcr0,
                Refuser::Kvm {
                    offered: kvm.guest_xcr0,
                },
            ));
        }
        if let Some(exposed) = guest.model_xcr0 {
            judged.push((Xreg::Xcr0, xcr0, Refuser::Model { exposed }));
        }
    }
    if let Some(xss) = guest.xss {
        judged.push((
            Xreg::Xss,
            xss,
            Refuser::Cpu {
                supported: layout.xss_supported(),
            },
        ));
        if let Some(kvm) = kvm {
            judged.push((
                Xreg::Xss,
                xss,
                Refuser::Kvm {
                    offered: kvm.guest_xss,
                },
            ));
        }
    }
    judged.push((
        Xreg::Xfd,
        guest.xfd,
        Refuser::Cpu {
            supported: xfd_capable,
        },
    ));
    if let Some(kvm) = kvm {
        let offered = if kvm.guest_xfd {
            xfd_capable
        } else {
            Xfeatures::EMPTY
        };
        judged.push((Xreg::Xfd, guest.xfd, Refuser::Kvm { offered }));
    }
    judged
        .into_iter()
        .filter_map(|(register, value, by)| {
            let allowed = match by {
                Refuser::Cpu { supported } => supported,
                Refuser::Kvm { offered } => offered,
                Refuser::Model { exposed } => exposed,
            };
            let unsupported = value - allowed;
            (!unsupported.is_empty()).then_some(Incompatibility::Register {
                register,
                value,
                unsupported,
                by,
            })
        })
        .collect()
}

/// What the destination CPU cannot take: components it lacks or holds at
/// another size, and MXCSR bits outside `mxcsr_mask`.
fn cpu_incompatibilities(
    state: &RegisterFile,
    destination: &Layout,
    mxcsr_mask: u32,
) -> Vec<Incompatibility> {
    let sizes = state
        .xstate_bv()
        .iter()
        .map(|c| (c, state.component(c).map_or(0, <[u8]>::len)));
    let mut out = Vec::new();
    component_incompatibilities(&mut out, sizes, destination);
    out.extend(faults(state, mxcsr_mask));
    out
}

/// Adds to `out` the live `components` (each with its size in bytes; x87
/// and SSE any) that `destination` lacks or holds at another size.
#[inline]
pub(crate) fn component_incompatibilities(
    out: &mut Vec<Incompatibility>,
    components: impl Iterator<Item = (ComponentId, usize)>,
    destination: &Layout,
) {
    for (c, size) in components {
        match destination.geometry(c) {
            None => out.push(Incompatibility::MissingComponent(c)),
            Some(g) if !c.is_legacy() && g.size as usize != size => {
                out.push(Incompatibility::SizeDiffers {
                    component: c,
                    state: size,
                    destination: g.size,
                })
            }
            Some(_) => {}
        }
    }
}

/// What XRSTOR of `state` would fault on at a CPU whose MXCSR mask is
/// `mxcsr_mask`: MXCSR bits outside it, a live TILECFG LDTILECFG refuses,
/// and supervisor values XRSTORS refuses ([`check_supervisor`]).
pub(crate) fn faults(state: &RegisterFile, mxcsr_mask: u32) -> Vec<Incompatibility> {
    faults_of(
        state.mxcsr().unwrap_or(MXCSR_INIT),
        state.xstate_bv(),
        |c| state.component(c),
        mxcsr_mask,
    )
}

/// [`faults`] of a state given by its parts, wherever its bytes are (a
/// register file, an area being relaid out): its MXCSR, its live
/// components, and the bytes of a live component (`None` passes). In the
/// same order: MXCSR, TILECFG, then supervisor components, lowest first.
/// Inlined, with the common case (no MXCSR bit outside the mask, no live
/// TILECFG, no live supervisor component with rules) answered before
/// anything else, so hot paths pay a few tests for it.
#[inline]
pub(crate) fn faults_of<'a>(
    mxcsr: u32,
    live: Xfeatures,
    bytes: impl Fn(ComponentId) -> Option<&'a [u8]>,
    mxcsr_mask: u32,
) -> Vec<Incompatibility> {
    let mut out = Vec::new();
    if mxcsr & !mxcsr_mask == 0
        && !live.contains(ComponentId::TILECFG)
        && !live.intersects(CHECKED_SUPERVISOR)
    {
        return out;
    }
    let bad = mxcsr & !mxcsr_mask;
    if bad != 0 {
        out.push(Incompatibility::Mxcsr {
            mxcsr,
            bad,
            mask: mxcsr_mask,
        });
    }
    if live.contains(ComponentId::TILECFG) {
        if let Some(cfg) =
            bytes(ComponentId::TILECFG).and_then(|b| TileConfig::ref_from_bytes(b).ok())
        {
            if let Err(e) = cfg.check() {
                out.push(Incompatibility::TileConfig(e));
            }
        }
    }
    // Only some supervisor components have values XRSTORS refuses.
    for c in live & CHECKED_SUPERVISOR {
        if let Some(b) = bytes(c) {
            if let Err(e) = check_supervisor(c, b) {
                out.push(Incompatibility::SupervisorValue(e));
            }
        }
    }
    out
}
