//! What KVM on this host offers for guest XSAVE state.

use kvm_bindings::KVM_MAX_CPUID_ENTRIES;
use kvm_ioctls::{Cap, Kvm};

use std::format;
use std::string::String;
use std::vec::Vec;

use super::{ioctl, leaf_0xd, KvmBehaviour, KvmError, SetXsaveRules, XstateMsrs};
use crate::apx::Egprs;
use crate::component::{ComponentId, Xfeatures};
use crate::profile::{HostProfile, KvmOffer};
use crate::Layout;

/// `arch_prctl` code to read the XSAVE features the process may give guests.
const ARCH_GET_XCOMP_GUEST_PERM: libc::c_int = 0x1024;
/// `arch_prctl` code to request permission for a dynamic XSAVE feature
/// for guests.
const ARCH_REQ_XCOMP_GUEST_PERM: libc::c_int = 0x1025;

/// The outcome of requesting AMX permission for guests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AmxPermission {
    /// The host has no AMX tile data: nothing to request.
    NotNeeded,
    /// Permission was granted (or already held).
    Granted,
    /// The kernel refused, with this errno (EBUSY once the process has
    /// created a vCPU: guest permissions are settled by then).
    Denied(i32),
}

impl core::fmt::Display for AmxPermission {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AmxPermission::NotNeeded => f.write_str("not needed (no AMX on this host)"),
            AmxPermission::Granted => f.write_str("granted"),
            AmxPermission::Denied(e) => {
                write!(f, "denied ({})", std::io::Error::from_raw_os_error(*e))
            }
        }
    }
}

/// Requests guest permission for AMX tile data (component 18) with
/// `arch_prctl(ARCH_REQ_XCOMP_GUEST_PERM, 18)` when the host layout has it.
///
/// This is the one call with a side effect on the process: it must run
/// before the process creates its first vCPU (and before
/// [`KvmCaps::probe`], which creates a scratch one), because the kernel
/// settles a process's guest XSAVE permissions at its first vCPU.
pub fn request_amx_permission(host: &Layout) -> AmxPermission {
    if !host.has(ComponentId::TILEDATA) {
        return AmxPermission::NotNeeded;
    }
    // SAFETY: arch_prctl(ARCH_REQ_XCOMP_GUEST_PERM, 18) takes two integer
    // arguments and touches no memory of ours.
    let r = unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_GUEST_PERM,
            libc::c_ulong::from(ComponentId::TILEDATA.index()),
        )
    };
    if r == 0 {
        AmxPermission::Granted
    } else {
        AmxPermission::Denied(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

/// The XSAVE features this process may give its guests
/// (`arch_prctl(ARCH_GET_XCOMP_GUEST_PERM)`), or `None` on kernels without it.
pub fn guest_permitted_xfeatures() -> Option<Xfeatures> {
    let mut mask = 0u64;
    // SAFETY: ARCH_GET_XCOMP_GUEST_PERM writes one u64 to the address given,
    // which is `mask`, live across the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_GET_XCOMP_GUEST_PERM,
            &mut mask as *mut u64,
        )
    };
    (r == 0).then_some(Xfeatures::from_bits(mask))
}

/// AMX for guests, in three facts: whether the host CPU has it, whether
/// this process holds guest permission for it, and whether KVM then
/// actually offers it (its supported guest XCR0 has bits 17 and 18).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AmxStatus {
    /// The host layout has AMX tile data (component 18).
    pub host: bool,
    /// The process holds guest permission for component 18.
    pub permitted: bool,
    /// KVM's supported guest XCR0 has AMX TILECFG and TILEDATA.
    pub offered: bool,
}

impl core::fmt::Display for AmxStatus {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match (self.host, self.permitted, self.offered) {
            (false, _, _) => f.write_str("no AMX on this host"),
            (true, false, _) => f.write_str(
                "the host has AMX, but this process holds no guest permission for it",
            ),
            (true, true, false) => f.write_str(
                "guest permission granted, but KVM offers guests no AMX (its guest XCR0 lacks bits 17-18)",
            ),
            (true, true, true) => f.write_str("offered to guests"),
        }
    }
}

/// KVM's XSAVE capabilities on this host, probed and measured.
#[derive(Clone, Debug)]
pub struct KvmCaps {
    layout: Layout,
    xsave2_size: Option<usize>,
    guest_xcr0: Xfeatures,
    guest_xss: Xfeatures,
    guest_xfd: bool,
    amx: AmxStatus,
    kernel_release: String,
    behaviour: KvmBehaviour,
    msrs: XstateMsrs,
}

impl KvmCaps {
    /// Reads `KVM_CAP_XSAVE2`, the XCR0 and IA32_XSS bits KVM supports for
    /// guests (CPUID leaf 0xD of `KVM_GET_SUPPORTED_CPUID`), the
    /// extended-state MSRs it has (`KVM_GET_MSR_INDEX_LIST`) and the guest
    /// AMX permission, and measures the kernel's behaviour
    /// ([`KvmBehaviour`], once per process, on a scratch vCPU).
    ///
    /// It requests nothing: where AMX is wanted, call
    /// [`request_amx_permission`] first, before any vCPU exists.
    ///
    /// # Errors
    ///
    /// [`KvmError::Layout`] when the host layout cannot be read,
    /// [`KvmError::Ioctl`] when a KVM call fails.
    pub fn probe(kvm: &Kvm) -> Result<KvmCaps, KvmError> {
        let layout = crate::host::layout()?;
        let size = kvm.check_extension_int(Cap::Xsave2);
        let cpuid = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(ioctl("KVM_GET_SUPPORTED_CPUID"))?;
        let guest_xcr0 =
            leaf_0xd(&cpuid, 0).map_or(Xfeatures::LEGACY, |e| Xfeatures::from_halves(e.edx, e.eax));
        let sub1 = leaf_0xd(&cpuid, 1);
        let guest_xss = sub1.map_or(Xfeatures::EMPTY, |e| Xfeatures::from_halves(e.edx, e.ecx));
        let guest_xfd = sub1.is_some_and(|e| e.eax & (1 << 4) != 0);
        let xsave2_size = (size > 0).then_some(size as usize);
        let amx = AmxStatus {
            host: layout.has(ComponentId::TILEDATA),
            permitted: guest_permitted_xfeatures()
                .is_some_and(|m| m.contains(ComponentId::TILEDATA)),
            offered: guest_xcr0
                .contains_all(ComponentId::TILECFG.bit() | ComponentId::TILEDATA.bit()),
        };
        let buffer_size = xsave2_size.unwrap_or(4096).max(4096);
        let behaviour = KvmBehaviour::measure(kvm, &layout, guest_xcr0, buffer_size)?;
        let msrs = XstateMsrs::probe(kvm)?;
        Ok(KvmCaps {
            layout,
            xsave2_size,
            guest_xcr0,
            guest_xss,
            guest_xfd,
            amx,
            kernel_release: kernel_release(),
            behaviour,
            msrs,
        })
    }

    /// [`probe`](Self::probe) on a `/dev/kvm` descriptor of its own: for
    /// VMMs built on another kvm-ioctls version (KVM's capabilities are the
    /// system's, whichever descriptor asks).
    ///
    /// # Errors
    ///
    /// [`KvmError::Ioctl`] when `/dev/kvm` cannot be opened, or as
    /// [`probe`](Self::probe).
    pub fn probe_system() -> Result<KvmCaps, KvmError> {
        let kvm = Kvm::new().map_err(ioctl("open /dev/kvm"))?;
        KvmCaps::probe(&kvm)
    }

    /// The host's layout: where KVM's buffers keep each component.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// `KVM_CHECK_EXTENSION(KVM_CAP_XSAVE2)`, if the kernel has it.
    pub fn xsave2_size(&self) -> Option<usize> {
        self.xsave2_size
    }

    /// The size in bytes of the buffers `KVM_GET_XSAVE2` / `KVM_SET_XSAVE`
    /// use here: the `KVM_CAP_XSAVE2` size, at least 4096. It can be smaller
    /// than the host layout's standard size (4096 against 11008 where the
    /// host has AMX but KVM offers guests none).
    pub fn buffer_size(&self) -> usize {
        self.xsave2_size.unwrap_or(4096).max(4096)
    }

    /// XCR0 bits KVM supports for guests.
    pub fn guest_xcr0(&self) -> Xfeatures {
        self.guest_xcr0
    }

    /// IA32_XSS bits KVM supports for guests (`KVM_GET_SUPPORTED_CPUID`
    /// leaf 0xD sub-leaf 1 EDX:ECX).
    pub fn guest_xss(&self) -> Xfeatures {
        self.guest_xss
    }

    /// Whether KVM offers guests extended feature disable (IA32_XFD; leaf
    /// 0xD sub-leaf 1 EAX bit 4 of `KVM_GET_SUPPORTED_CPUID`).
    pub fn guest_xfd(&self) -> bool {
        self.guest_xfd
    }

    /// Which of IA32_XSS, IA32_XFD and IA32_XFD_ERR KVM saves and restores
    /// here (`KVM_GET_MSR_INDEX_LIST`).
    pub fn xstate_msrs(&self) -> XstateMsrs {
        self.msrs
    }

    /// The MXCSR bits `KVM_SET_XSAVE` accepts, as measured on a scratch vCPU.
    pub fn mxcsr_mask(&self) -> u32 {
        self.behaviour.mxcsr_mask
    }

    /// AMX for guests: host, permission, and what KVM offers.
    pub fn amx(&self) -> AmxStatus {
        self.amx
    }

    /// The running kernel's release (`uname -r`).
    pub fn kernel_release(&self) -> &str {
        &self.kernel_release
    }

    /// The kernel behaviour measured on a scratch vCPU.
    pub fn behaviour(&self) -> &KvmBehaviour {
        &self.behaviour
    }

    /// Components a restore always sends with their XSTATE_BV bit set, so
    /// that init values take effect: PKRU and APX, where KVM offers them to
    /// guests ([`KvmOffer::pinned`] gives the reasons).
    pub fn pinned(&self) -> Xfeatures {
        crate::profile::pinned_by(self.guest_xcr0)
    }

    /// Whether r16..r31 exist for a vCPU whose XCR0 is `vcpu_xcr0`
    /// ([`get_xcr0`](super::get_xcr0)): KVM here must offer guests APX and
    /// the vCPU must enable it ([`Egprs::for_kvm`] with this host's layout
    /// and guest XCR0). The host CPU's own APX does not count.
    pub fn egprs(&self, vcpu_xcr0: Xfeatures) -> Egprs {
        Egprs::for_kvm(&self.layout, self.guest_xcr0, vcpu_xcr0)
    }

    /// What KVM here offers guests, as a host profile carries it.
    pub fn offer(&self) -> KvmOffer {
        KvmOffer {
            kernel_release: self.kernel_release.clone(),
            guest_xcr0: self.guest_xcr0,
            guest_xss: self.guest_xss,
            guest_xfd: self.guest_xfd,
            xsave2_size: self.xsave2_size,
            buffer_size: self.buffer_size(),
            mxcsr_mask: self.mxcsr_mask(),
            pkru: self.behaviour.pkru,
        }
    }

    /// This host's profile: its layout and what its KVM offers guests
    /// (what `xstate kvm info --json` writes). The layout is named after
    /// the machine (its node name, `uname -n`; `host` when there is none)
    /// and its source says so: `CPUID of <node> (xstate kvm info, Linux
    /// <release>)`, so that profiles of two hosts are told apart.
    pub fn profile(&self) -> HostProfile {
        let node = node_name();
        let name = if node.is_empty() { "host" } else { &node };
        let source = format!(
            "CPUID of {name} (xstate kvm info, Linux {})",
            if self.kernel_release.is_empty() {
                "release unknown"
            } else {
                &self.kernel_release
            }
        );
        HostProfile {
            layout: self.layout.renamed(name).with_source(&source),
            kvm: Some(self.offer()),
        }
    }

    /// The rules `KVM_SET_XSAVE` applies on this host, for a vCPU with
    /// KVM's supported CPUID and no XFD-disabled component.
    pub fn set_xsave_rules(&self) -> SetXsaveRules {
        self.offer().set_xsave_rules()
    }
}

/// `uname -r`, or an empty string when the call fails.
fn kernel_release() -> String {
    uname_field(|uts| &uts.release)
}

/// `uname -n`, the node name, or an empty string when the call fails.
fn node_name() -> String {
    uname_field(|uts| &uts.nodename)
}

/// One field of `uname(2)`, or an empty string when the call fails.
fn uname_field(field: impl Fn(&libc::utsname) -> &[libc::c_char]) -> String {
    // SAFETY: `utsname` is plain old data; all-zero bytes are a valid value.
    let mut uts: libc::utsname = unsafe { core::mem::zeroed() };
    // SAFETY: uname writes only into the struct it is given.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return String::new();
    }
    let bytes: Vec<u8> = field(&uts)
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}
