//! Moving a vCPU's XSAVE state in and out of KVM.

use kvm_bindings::{kvm_xcrs, Xsave};
use kvm_ioctls::VcpuFd;

use super::{ioctl, new_xsave2, preflight, xsave2_bytes, xsave2_bytes_mut, KvmCaps, KvmError};
use crate::component::{XcompBv, Xfeatures};
use crate::{HeaderError, Layout, RegisterFile, XsaveView};

/// A vCPU's XSAVE state buffer, sized from `KVM_CAP_XSAVE2`, reused across
/// exits. [`save`](Self::save) and [`restore`](Self::restore) move it in
/// and out of KVM; the views read and write it in place. It converts from
/// and to kvm-bindings' [`Xsave`], for VMMs that hold one already.
pub struct XstateBuffer {
    xsave: Xsave,
    /// Whether to read with KVM_GET_XSAVE2 (false: KVM_GET_XSAVE).
    xsave2: bool,
}

impl core::fmt::Debug for XstateBuffer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("XstateBuffer")
            .field("len", &self.as_bytes().len())
            .field("xsave2", &self.xsave2)
            .finish()
    }
}

impl From<Xsave> for XstateBuffer {
    /// Wraps an `Xsave` the VMM already has (its size must be the one
    /// `KVM_CAP_XSAVE2` gives, or 4096 without XSAVE2, for
    /// [`save`](Self::save) and [`restore`](Self::restore) to be safe).
    fn from(xsave: Xsave) -> XstateBuffer {
        XstateBuffer {
            xsave,
            xsave2: true,
        }
    }
}

impl XstateBuffer {
    /// A zeroed buffer of the size KVM uses on this host
    /// ([`KvmCaps::buffer_size`]).
    ///
    /// # Errors
    ///
    /// [`KvmError::Alloc`] when the buffer cannot be allocated.
    pub fn new(caps: &KvmCaps) -> Result<XstateBuffer, KvmError> {
        Ok(XstateBuffer {
            xsave: new_xsave2(caps.buffer_size())?,
            xsave2: caps.xsave2_size().is_some(),
        })
    }

    /// Writes `state` into the buffer in the standard format at the host's
    /// offsets, ready for [`restore`](Self::restore), with the components
    /// whose clear XSTATE_BV bit does not reliably mean "init" sent with
    /// their bits set ([`KvmCaps::pinned`]: PKRU and APX where KVM offers
    /// them), so the vCPU ends up with exactly `state` on every kernel: with
    /// XSTATE_BV\[19\] clear, KVM would leave r16..r31 as they were.
    ///
    /// # Errors
    ///
    /// [`KvmError::Access`] when a live component of `state` has no place in
    /// this host's buffer (the buffer is then unchanged).
    pub fn load(&mut self, state: &RegisterFile, caps: &KvmCaps) -> Result<(), KvmError> {
        let layout = caps.layout();
        state.encode_into_pinned(
            self.as_bytes_mut(),
            layout,
            XcompBv::STANDARD,
            caps.pinned(),
        )?;
        Ok(())
    }

    /// The kvm-bindings buffer.
    pub fn as_xsave(&self) -> &Xsave {
        &self.xsave
    }

    /// Gives the kvm-bindings buffer back.
    pub fn into_inner(self) -> Xsave {
        self.xsave
    }

    /// The buffer's bytes (standard format, host offsets).
    pub fn as_bytes(&self) -> &[u8] {
        xsave2_bytes(&self.xsave)
    }

    /// The buffer's bytes, writable.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        xsave2_bytes_mut(&mut self.xsave)
    }

    /// A read view with `layout` (the host's, for state from this host).
    ///
    /// # Errors
    ///
    /// [`HeaderError`] when the header does not fit the layout.
    pub fn view<'a>(&'a self, layout: &'a Layout) -> Result<XsaveView<'a, &'a [u8]>, HeaderError> {
        XsaveView::new(self.as_bytes(), layout)
    }

    /// A write view with `layout`.
    ///
    /// # Errors
    ///
    /// [`HeaderError`] when the header does not fit the layout.
    pub fn view_mut<'a>(
        &'a mut self,
        layout: &'a Layout,
    ) -> Result<XsaveView<'a, &'a mut [u8]>, HeaderError> {
        XsaveView::new(xsave2_bytes_mut(&mut self.xsave), layout)
    }

    /// Reads the vCPU's state: `KVM_GET_XSAVE2`, or `KVM_GET_XSAVE` where
    /// the kernel lacks XSAVE2.
    ///
    /// # Errors
    ///
    /// [`KvmError::Ioctl`] when the ioctl fails.
    pub fn save(&mut self, vcpu: &VcpuFd) -> Result<(), KvmError> {
        if self.xsave2 {
            // SAFETY: the buffer holds the KVM_CAP_XSAVE2 size (`new` sized
            // it from the capability; `From<Xsave>` documents the same
            // requirement), so the kernel writes only memory of the buffer.
            match unsafe { vcpu.get_xsave2(&mut self.xsave) } {
                Ok(()) => return Ok(()),
                // A kernel without XSAVE2 (before 5.17): KVM_GET_XSAVE.
                Err(e) if self.as_bytes().len() == 4096 && e.errno() == libc::EINVAL => {
                    self.xsave2 = false;
                }
                Err(source) => {
                    return Err(KvmError::Ioctl {
                        op: "KVM_GET_XSAVE2",
                        source,
                    })
                }
            }
        }
        let x = vcpu.get_xsave().map_err(ioctl("KVM_GET_XSAVE"))?;
        xsave2_bytes_mut(&mut self.xsave)[..4096].copy_from_slice(super::kvm_xsave_bytes(&x));
        Ok(())
    }

    /// Checks the buffer with [`preflight`] and, if KVM would take it,
    /// writes it to the vCPU with `KVM_SET_XSAVE`. A rejected buffer
    /// issues no ioctl.
    ///
    /// A component whose XSTATE_BV bit is clear is put in its init state,
    /// except where kernels differ: with the PKRU bit clear, Linux 6.18
    /// resets PKRU to 0 while older kernels leave the vCPU's PKRU as it
    /// was ([`KvmCaps::behaviour`] says which this kernel does); with the
    /// APX bit clear, a KVM with APX leaves r16..r31 unchanged. To keep
    /// them deterministic, send them with their bits set, their values (0
    /// when init) in the buffer: [`load`](Self::load) does that.
    ///
    /// # Errors
    ///
    /// [`KvmError::Preflight`] naming the field KVM would reject (no ioctl
    /// is issued), or [`KvmError::Ioctl`] when `KVM_SET_XSAVE` fails.
    pub fn restore(&self, vcpu: &VcpuFd, caps: &KvmCaps) -> Result<(), KvmError> {
        preflight(self.as_bytes(), &caps.set_xsave_rules())?;
        self.restore_unchecked(vcpu)
    }

    /// `KVM_SET_XSAVE` without the pre-flight check (the kernel still
    /// validates; it answers EINVAL where [`preflight`] would have said why).
    ///
    /// # Errors
    ///
    /// [`KvmError::Ioctl`] when the ioctl fails.
    pub fn restore_unchecked(&self, vcpu: &VcpuFd) -> Result<(), KvmError> {
        // SAFETY: the buffer holds the full size KVM copies on this host
        // (KVM_CAP_XSAVE2, or 4096 without it), so the kernel reads only
        // memory of the buffer.
        unsafe { vcpu.set_xsave2(&self.xsave) }.map_err(ioctl("KVM_SET_XSAVE"))
    }
}

/// The vCPU's XCR0 (`KVM_GET_XCRS`).
///
/// # Errors
///
/// [`KvmError::Ioctl`] when the ioctl fails.
pub fn get_xcr0(vcpu: &VcpuFd) -> Result<Xfeatures, KvmError> {
    let xcrs = vcpu.get_xcrs().map_err(ioctl("KVM_GET_XCRS"))?;
    let n = (xcrs.nr_xcrs as usize).min(xcrs.xcrs.len());
    Ok(Xfeatures::from_bits(
        xcrs.xcrs[..n]
            .iter()
            .find(|x| x.xcr == 0)
            .map_or(1, |x| x.value),
    ))
}

/// Sets the vCPU's XCR0 (`KVM_SET_XCRS`).
///
/// # Errors
///
/// [`KvmError::Ioctl`] when the kernel refuses the value (an XCR0 breaking
/// an XSETBV rule, or with components the vCPU's CPUID lacks).
pub fn set_xcr0(vcpu: &VcpuFd, xcr0: Xfeatures) -> Result<(), KvmError> {
    let mut xcrs = kvm_xcrs {
        nr_xcrs: 1,
        ..Default::default()
    };
    xcrs.xcrs[0].xcr = 0;
    xcrs.xcrs[0].value = xcr0.bits();
    vcpu.set_xcrs(&xcrs).map_err(ioctl("KVM_SET_XCRS"))
}
