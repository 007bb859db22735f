//! Moving a vCPU's XSAVE state in and out of KVM.

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use kvm_bindings::{kvm_xcrs, kvm_xsave, Xsave};
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
    /// Whether the bytes may differ from the vCPU's since the last save,
    /// restore or sync: set when anything could have written them. Atomic
    /// so that `restore(&self)` clears it and the buffer stays `Sync`.
    changed: AtomicBool,
}

impl core::fmt::Debug for XstateBuffer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("XstateBuffer")
            .field("len", &self.as_bytes().len())
            .field("xsave2", &self.xsave2)
            .field("changed", &self.is_changed())
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
            changed: AtomicBool::new(true),
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
            changed: AtomicBool::new(true),
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
        self.changed.store(true, Relaxed);
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
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        xsave2_bytes(&self.xsave)
    }

    /// The buffer's bytes, writable (the buffer counts as changed).
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        self.changed.store(true, Relaxed);
        xsave2_bytes_mut(&mut self.xsave)
    }

    /// Whether the bytes may differ from the vCPU's: true from creation,
    /// [`load`](Self::load), [`as_bytes_mut`](Self::as_bytes_mut) or
    /// [`view_mut`](Self::view_mut) (handing out a write view counts, written
    /// or not) until the next successful save, restore or
    /// [`sync`](Self::sync), on any descriptor. Read-only
    /// [`view`](Self::view)s leave it.
    pub fn is_changed(&self) -> bool {
        self.changed.load(Relaxed)
    }

    /// Writes the buffer back to the vCPU only if it may have changed since
    /// the last save, restore or sync ([`is_changed`](Self::is_changed)): an exit
    /// that only read the state issues no ioctl (each costs microseconds).
    /// Returns whether `KVM_SET_XSAVE` was issued. Use
    /// [`restore`](Self::restore) to write regardless (after the vCPU ran
    /// since the save, to roll it back, say).
    ///
    /// # Errors
    ///
    /// As [`restore`](Self::restore); the buffer then stays changed.
    pub fn sync(&self, vcpu: &VcpuFd, caps: &KvmCaps) -> Result<bool, KvmError> {
        self.sync_by(|| self.restore(vcpu, caps))
    }

    /// A read view with `layout` (the host's, for state from this host).
    ///
    /// # Errors
    ///
    /// [`HeaderError`] when the header does not fit the layout.
    #[inline]
    pub fn view<'a>(&'a self, layout: &'a Layout) -> Result<XsaveView<'a, &'a [u8]>, HeaderError> {
        XsaveView::new(self.as_bytes(), layout)
    }

    /// A write view with `layout`.
    ///
    /// # Errors
    ///
    /// [`HeaderError`] when the header does not fit the layout.
    #[inline]
    pub fn view_mut<'a>(
        &'a mut self,
        layout: &'a Layout,
    ) -> Result<XsaveView<'a, &'a mut [u8]>, HeaderError> {
        self.changed.store(true, Relaxed);
        XsaveView::new(xsave2_bytes_mut(&mut self.xsave), layout)
    }

    /// Reads the vCPU's state: `KVM_GET_XSAVE2`, or `KVM_GET_XSAVE` where
    /// the kernel lacks XSAVE2.
    ///
    /// # Errors
    ///
    /// [`KvmError::Ioctl`] when the ioctl fails.
    pub fn save(&mut self, vcpu: &VcpuFd) -> Result<(), KvmError> {
        self.save_fd(vcpu)
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
        self.restore_fd(vcpu, caps)
    }

    /// Records that the vCPU now holds the buffer's bytes (a restore
    /// succeeded), so the next [`sync`](Self::sync) issues no ioctl.
    fn restored(&self) -> Result<(), KvmError> {
        self.changed.store(false, Relaxed);
        Ok(())
    }

    /// `KVM_SET_XSAVE` without the pre-flight check (the kernel still
    /// validates; it answers EINVAL where [`preflight`] would have said why).
    ///
    /// # Errors
    ///
    /// [`KvmError::Ioctl`] when the ioctl fails.
    pub fn restore_unchecked(&self, vcpu: &VcpuFd) -> Result<(), KvmError> {
        self.set_fd(vcpu)
    }

    /// `KVM_SET_XSAVE` on a raw vCPU descriptor, and the change flag
    /// cleared: what every restore ends with.
    fn set_fd(&self, vcpu: &impl AsRawFd) -> Result<(), KvmError> {
        let buf = self.as_bytes();
        // SAFETY: KVM_SET_XSAVE reads KVM_CAP_XSAVE2 bytes (4096 without
        // it); the buffer holds that size and is valid for reads.
        let r = unsafe { libc::ioctl(vcpu.as_raw_fd(), request::KVM_SET_XSAVE as _, buf.as_ptr()) };
        if r != 0 {
            return Err(KvmError::Ioctl {
                op: "KVM_SET_XSAVE",
                source: kvm_ioctls::Error::last(),
            });
        }
        self.restored()
    }

    /// [`sync`](Self::sync)'s rule for every descriptor: `restore` only if
    /// the buffer may have changed; whether it ran.
    fn sync_by(&self, restore: impl FnOnce() -> Result<(), KvmError>) -> Result<bool, KvmError> {
        if !self.is_changed() {
            return Ok(false);
        }
        restore().map(|()| true)
    }
}

/// The `_IOR`/`_IOW` ioctl request numbers of `include/uapi/linux/kvm.h`
/// (KVMIO 0xAE, a `struct kvm_xsave` argument), for vCPU file descriptors
/// of any kvm-ioctls version, or none.
mod request {
    use super::kvm_xsave;

    const KVMIO: u64 = 0xAE;
    const SIZE: u64 = core::mem::size_of::<kvm_xsave>() as u64;
    const _: () = assert!(SIZE == 4096);

    const fn ior(nr: u64) -> u64 {
        (2 << 30) | (SIZE << 16) | (KVMIO << 8) | nr
    }

    const fn iow(nr: u64) -> u64 {
        (1 << 30) | (SIZE << 16) | (KVMIO << 8) | nr
    }

    /// `_IOR(KVMIO, 0xa4, struct kvm_xsave)`.
    pub(super) const KVM_GET_XSAVE: u64 = ior(0xa4);
    /// `_IOW(KVMIO, 0xa5, struct kvm_xsave)`.
    pub(super) const KVM_SET_XSAVE: u64 = iow(0xa5);
    /// `_IOR(KVMIO, 0xcf, struct kvm_xsave)`.
    pub(super) const KVM_GET_XSAVE2: u64 = ior(0xcf);
    const _: () = assert!(KVM_GET_XSAVE == 0x9000_aea4);
    const _: () = assert!(KVM_SET_XSAVE == 0x5000_aea5);
    const _: () = assert!(KVM_GET_XSAVE2 == 0x9000_aecf);
}

impl XstateBuffer {
    /// [`save`](Self::save) on any vCPU file descriptor: a `VcpuFd` of
    /// another kvm-ioctls version than xstate's (libkrun's 0.24, say), or
    /// a VMM's own. The ioctls are issued here, on the raw descriptor.
    ///
    /// # Errors
    ///
    /// [`KvmError::Ioctl`] when the ioctl fails.
    pub fn save_fd(&mut self, vcpu: &impl AsRawFd) -> Result<(), KvmError> {
        let fd = vcpu.as_raw_fd();
        if self.xsave2 {
            let buf = self.as_bytes_mut();
            // SAFETY: KVM_GET_XSAVE2 writes KVM_CAP_XSAVE2 bytes; the buffer
            // holds that size (`new` sized it from the capability, `From<Xsave>`
            // documents the requirement). The pointer is valid for writes of
            // `buf.len()` bytes for the call's duration.
            let r = unsafe { libc::ioctl(fd, request::KVM_GET_XSAVE2 as _, buf.as_mut_ptr()) };
            if r == 0 {
                self.changed.store(false, Relaxed);
                return Ok(());
            }
            let e = kvm_ioctls::Error::last();
            if !(buf.len() == 4096 && e.errno() == libc::EINVAL) {
                return Err(KvmError::Ioctl {
                    op: "KVM_GET_XSAVE2",
                    source: e,
                });
            }
            self.xsave2 = false;
        }
        let buf = &mut self.as_bytes_mut()[..4096];
        // SAFETY: KVM_GET_XSAVE writes exactly 4096 bytes (`struct
        // kvm_xsave`); `buf` is that long and valid for writes.
        let r = unsafe { libc::ioctl(fd, request::KVM_GET_XSAVE as _, buf.as_mut_ptr()) };
        if r != 0 {
            return Err(KvmError::Ioctl {
                op: "KVM_GET_XSAVE",
                source: kvm_ioctls::Error::last(),
            });
        }
        self.changed.store(false, Relaxed);
        Ok(())
    }

    /// [`restore`](Self::restore) on any vCPU file descriptor (see
    /// [`save_fd`](Self::save_fd)): the pre-flight check, then
    /// `KVM_SET_XSAVE` on the raw descriptor.
    ///
    /// # Errors
    ///
    /// [`KvmError::Preflight`] (no ioctl issued), or [`KvmError::Ioctl`].
    pub fn restore_fd(&self, vcpu: &impl AsRawFd, caps: &KvmCaps) -> Result<(), KvmError> {
        preflight(self.as_bytes(), &caps.set_xsave_rules())?;
        self.set_fd(vcpu)
    }

    /// [`sync`](Self::sync) on any vCPU file descriptor (see
    /// [`save_fd`](Self::save_fd)): [`restore_fd`](Self::restore_fd) only
    /// if the buffer may have changed. Returns whether `KVM_SET_XSAVE` was
    /// issued.
    ///
    /// # Errors
    ///
    /// As [`restore_fd`](Self::restore_fd); the buffer then stays changed.
    pub fn sync_fd(&self, vcpu: &impl AsRawFd, caps: &KvmCaps) -> Result<bool, KvmError> {
        self.sync_by(|| self.restore_fd(vcpu, caps))
    }

    /// [`save`](Self::save) where the caller issues the ioctl: `get` fills
    /// the buffer's bytes (`KVM_GET_XSAVE2` into all of them, or
    /// `KVM_GET_XSAVE` into the first 4096), as a VMM with its own ioctl
    /// layer (crosvm's) does.
    ///
    /// # Errors
    ///
    /// [`KvmError::Ioctl`] with `get`'s OS error.
    pub fn save_with(
        &mut self,
        get: impl FnOnce(&mut [u8]) -> std::io::Result<()>,
    ) -> Result<(), KvmError> {
        get(self.as_bytes_mut()).map_err(|e| caller_ioctl("KVM_GET_XSAVE2 (caller's)", &e))?;
        self.changed.store(false, Relaxed);
        Ok(())
    }

    /// [`restore`](Self::restore) where the caller issues the ioctl: the
    /// pre-flight check, then `set` with the bytes for `KVM_SET_XSAVE`.
    ///
    /// # Errors
    ///
    /// [`KvmError::Preflight`] (`set` is not called), or
    /// [`KvmError::Ioctl`] with `set`'s OS error.
    pub fn restore_with(
        &self,
        caps: &KvmCaps,
        set: impl FnOnce(&[u8]) -> std::io::Result<()>,
    ) -> Result<(), KvmError> {
        preflight(self.as_bytes(), &caps.set_xsave_rules())?;
        set(self.as_bytes()).map_err(|e| caller_ioctl("KVM_SET_XSAVE (caller's)", &e))?;
        self.restored()
    }

    /// [`sync`](Self::sync) where the caller issues the ioctl:
    /// [`restore_with`](Self::restore_with) only if the buffer may have
    /// changed. Returns whether `set` was called.
    ///
    /// # Errors
    ///
    /// As [`restore_with`](Self::restore_with); the buffer then stays
    /// changed.
    pub fn sync_with(
        &self,
        caps: &KvmCaps,
        set: impl FnOnce(&[u8]) -> std::io::Result<()>,
    ) -> Result<bool, KvmError> {
        self.sync_by(|| self.restore_with(caps, set))
    }
}

/// A caller's ioctl error as [`KvmError::Ioctl`] (EIO where it has no OS
/// error).
fn caller_ioctl(op: &'static str, e: &std::io::Error) -> KvmError {
    KvmError::Ioctl {
        op,
        source: kvm_ioctls::Error::new(e.raw_os_error().unwrap_or(libc::EIO)),
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
