//! Bytes of KVM's XSAVE buffers, without copying.

use kvm_bindings::{kvm_xsave, Xsave};
use zerocopy::IntoBytes;

use super::KvmError;

/// The 4096 bytes of a `kvm_xsave` (its `region`).
///
/// ```
/// let x = kvm_bindings::kvm_xsave::default();
/// assert_eq!(xstate::kvm::kvm_xsave_bytes(&x).len(), 4096);
/// ```
pub fn kvm_xsave_bytes(xsave: &kvm_xsave) -> &[u8] {
    xsave.region.as_bytes()
}

/// The 4096 bytes of a `kvm_xsave`, writable.
pub fn kvm_xsave_bytes_mut(xsave: &mut kvm_xsave) -> &mut [u8] {
    xsave.region.as_mut_bytes()
}

/// Bytes of one entry of the `extra` flexible array after the 4096-byte region.
const ENTRY: usize = core::mem::size_of::<u32>();

/// A zeroed XSAVE2 buffer of `size` bytes (the `KVM_CAP_XSAVE2` value;
/// at least 4096).
///
/// ```
/// let x = xstate::kvm::new_xsave2(11008).unwrap();
/// assert_eq!(xstate::kvm::xsave2_bytes(&x).len(), 11008);
/// ```
///
/// # Errors
///
/// [`KvmError::Alloc`] when a buffer of that size cannot be made.
pub fn new_xsave2(size: usize) -> Result<Xsave, KvmError> {
    let extra = size.saturating_sub(core::mem::size_of::<kvm_xsave>());
    Xsave::new(extra.div_ceil(ENTRY)).map_err(|_| KvmError::Alloc { size })
}

/// Every byte of an XSAVE2 buffer: the 4096-byte region and the `extra`
/// entries after it, as one slice.
#[inline]
pub fn xsave2_bytes(xsave: &Xsave) -> &[u8] {
    let len = size_of_xsave2(xsave);
    let fam = xsave.as_fam_struct_ptr();
    // SAFETY: `as_fam_struct_ptr` points into the wrapper's allocation,
    // which holds the `kvm_xsave2` header followed by `as_slice().len()`
    // FAM entries; `region` and `extra` are contiguous u32 arrays inside it
    // (repr(C)), so the `4096 + 4 * len` bytes from `region` are
    // initialized and within that allocation, and are borrowed no longer
    // than `xsave`.
    unsafe {
        let region = core::ptr::addr_of!((*fam).xsave.region).cast::<u8>();
        core::slice::from_raw_parts(region, len)
    }
}

/// Every byte of an XSAVE2 buffer, writable.
#[inline]
pub fn xsave2_bytes_mut(xsave: &mut Xsave) -> &mut [u8] {
    let len = size_of_xsave2(xsave);
    let fam = xsave.as_mut_fam_struct_ptr();
    // SAFETY: as in `xsave2_bytes`; the exclusive borrow of `xsave` is held
    // for the slice's lifetime, so no other access aliases it.
    unsafe {
        let region = core::ptr::addr_of_mut!((*fam).xsave.region).cast::<u8>();
        core::slice::from_raw_parts_mut(region, len)
    }
}

#[inline]
fn size_of_xsave2(xsave: &Xsave) -> usize {
    core::mem::size_of::<kvm_xsave>() + ENTRY * xsave.as_slice().len()
}
