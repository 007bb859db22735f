//! A Firecracker-shaped restore path: the snapshot's `VcpuState` holds a
//! kvm-bindings `Xsave` and `CpuId` of Firecracker's own kvm-bindings
//! version, taken on an AMD Zen 4 host; this host restores it through
//! `XstateBuffer::from_snapshot` and xstate's raw-descriptor entry point,
//! on a vCPU of Firecracker's kvm-ioctls version.

use kvm_bindings::{kvm_cpuid_entry2, CpuId, Xsave};
use kvm_ioctls::Kvm;
use xstate::cpuid::CpuidSet;
use xstate::kvm::{KvmCaps, SavedXsave, XstateBuffer};
use xstate::layout::catalog;
use xstate::prelude::*;
use xstate::{Format, RegisterFile};
use zerocopy::IntoBytes;

/// What Firecracker keeps of a vCPU's extended state in its snapshot.
struct VcpuState {
    cpuid: CpuId,
    xsave: Xsave,
}

/// The snapshot a Zen 4 host wrote: its CPUID's leaf 0 and leaf 0xD, and
/// KVM_GET_XSAVE2's 4096 bytes in its layout.
fn zen4_snapshot() -> VcpuState {
    let zen4 = catalog::get("amd-zen4").unwrap();
    let mut entries = vec![kvm_cpuid_entry2 {
        function: 0,
        eax: 0xd,
        ebx: u32::from_le_bytes(*b"Auth"),
        edx: u32::from_le_bytes(*b"enti"),
        ecx: u32::from_le_bytes(*b"cAMD"),
        ..Default::default()
    }];
    for (&sub, r) in &zen4.to_cpuid().subleaves {
        entries.push(kvm_cpuid_entry2 {
            function: 0xd,
            index: sub,
            flags: 1,
            eax: r.eax,
            ebx: r.ebx,
            ecx: r.ecx,
            edx: r.edx,
            ..Default::default()
        });
    }
    let mut state = RegisterFile::new();
    state.set_xmm(7, 0x7777).unwrap();
    state.set_ymm(8, [8, 0x88]).unwrap();
    let mut bytes = state.encode(zen4, Format::Standard).unwrap();
    bytes.resize(4096, 0);
    let mut xsave = Xsave::new(0).unwrap();
    // SAFETY: only the fixed 4096-byte region is written, never the FAM
    // length, so the wrapper's invariants hold.
    let fam = unsafe { xsave.as_mut_fam_struct() };
    fam.xsave.region.as_mut_bytes().copy_from_slice(&bytes);
    VcpuState {
        cpuid: CpuId::from_entries(&entries).unwrap(),
        xsave,
    }
}

fn main() {
    let kvm = match Kvm::new() {
        Ok(k) => k,
        Err(e) => {
            println!("SKIPPED Firecracker-shaped restore: /dev/kvm is unusable: {e}");
            return;
        }
    };
    let snapshot = zen4_snapshot();
    // The source layout from the snapshot's own CPUID, whatever the
    // kvm-bindings version its entries come from.
    let set = CpuidSet::from_entries(snapshot.cpuid.as_slice().iter().map(|e| {
        let regs = xstate::layout::CpuidRegs {
            eax: e.eax,
            ebx: e.ebx,
            ecx: e.ecx,
            edx: e.edx,
        };
        (e.function, e.index, e.flags, regs)
    }))
    .unwrap();
    let source = set.to_layout("snapshot", "the snapshot's CPUID").unwrap();
    let saved = snapshot.xsave.as_fam_struct_ref().xsave.region.as_bytes();
    let caps = KvmCaps::probe_system().unwrap();
    let buffer = XstateBuffer::from_snapshot(SavedXsave::Bytes(saved), &source, &caps).unwrap();
    assert_eq!(buffer.as_bytes().len(), caps.buffer_size());

    let vm = kvm.create_vm().unwrap();
    let vcpu = vm.create_vcpu(0).unwrap();
    let supported = kvm
        .get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
        .unwrap();
    vcpu.set_cpuid2(&supported).unwrap();
    buffer.restore_fd(&vcpu, &caps).unwrap();
    let mut back = XstateBuffer::new(&caps).unwrap();
    back.save_fd(&vcpu).unwrap();
    let got = RegisterFile::decode(back.as_bytes(), caps.layout()).unwrap();
    assert_eq!(got.xmm(7).unwrap(), 0x7777);
    assert_eq!(got.ymm(8).unwrap(), [8, 0x88]);
    println!(
        "Firecracker-shaped restore: a Zen 4 snapshot restored on {} ({} bytes, KVM_CAP_XSAVE2 {:?}) and read back",
        caps.layout().name(),
        caps.buffer_size(),
        caps.xsave2_size()
    );
}
