//! What KVM on this host offers for guest XSAVE state.

use kvm_bindings::KVM_MAX_CPUID_ENTRIES;
use kvm_ioctls::{Cap, Kvm};

use super::{ioctl, KvmError, SetXsaveRules};
use crate::component::Component;
use crate::Layout;

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
    /// The kernel refused, with this errno.
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

/// Requests guest permission for AMX tile data (component 18) when the host
/// layout has it. Must run before the process creates its first vCPU.
pub fn request_amx_permission(host: &Layout) -> AmxPermission {
    if !host.has(Component::TileData) {
        return AmxPermission::NotNeeded;
    }
    // SAFETY: arch_prctl(ARCH_REQ_XCOMP_GUEST_PERM, 18) takes two integer
    // arguments and touches no memory of ours.
    let r = unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_GUEST_PERM,
            libc::c_ulong::from(Component::TileData.index()),
        )
    };
    if r == 0 {
        AmxPermission::Granted
    } else {
        AmxPermission::Denied(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

/// KVM's XSAVE capabilities on this host.
#[derive(Clone, Debug)]
pub struct KvmCaps {
    layout: Layout,
    xsave2_size: Option<usize>,
    guest_xcr0: u64,
    amx: AmxPermission,
}

impl KvmCaps {
    /// Requests AMX permission where the host has AMX, then reads
    /// `KVM_CAP_XSAVE2` and the XCR0 bits KVM supports for guests (CPUID
    /// leaf 0xD of `KVM_GET_SUPPORTED_CPUID`). Call it before creating the
    /// first vCPU.
    pub fn probe(kvm: &Kvm) -> Result<KvmCaps, KvmError> {
        let layout = Layout::host()?;
        let amx = request_amx_permission(&layout);
        let size = kvm.check_extension_int(Cap::Xsave2);
        let cpuid = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(ioctl("KVM_GET_SUPPORTED_CPUID"))?;
        let guest_xcr0 = cpuid
            .as_slice()
            .iter()
            .find(|e| e.function == 0xD && e.index == 0)
            .map_or(0x3, |e| u64::from(e.edx) << 32 | u64::from(e.eax));
        Ok(KvmCaps {
            layout,
            xsave2_size: (size > 0).then_some(size as usize),
            guest_xcr0,
            amx,
        })
    }

    /// The host's layout: where KVM's buffers keep each component.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// `KVM_CHECK_EXTENSION(KVM_CAP_XSAVE2)`, if the kernel has it.
    pub fn xsave2_size(&self) -> Option<usize> {
        self.xsave2_size
    }

    /// The size of the buffers `KVM_GET_XSAVE2` / `KVM_SET_XSAVE` use here.
    pub fn buffer_size(&self) -> usize {
        self.xsave2_size.unwrap_or(4096).max(4096)
    }

    /// XCR0 bits KVM supports for guests.
    pub fn guest_xcr0(&self) -> u64 {
        self.guest_xcr0
    }

    /// The MXCSR bits KVM accepts (the host's MXCSR mask).
    pub fn mxcsr_mask(&self) -> u32 {
        self.layout.mxcsr_mask()
    }

    /// The AMX permission outcome.
    pub fn amx(&self) -> &AmxPermission {
        &self.amx
    }

    /// The rules `KVM_SET_XSAVE` applies on this host.
    pub fn set_xsave_rules(&self) -> SetXsaveRules {
        SetXsaveRules {
            guest_xcr0: self.guest_xcr0,
            mxcsr_mask: self.mxcsr_mask(),
            size: self.buffer_size(),
        }
    }
}
