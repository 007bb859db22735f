//! A libkrun-shaped restore path: a vCPU of kvm-ioctls 0.24, whose
//! `VcpuFd` is not xstate's (0.25), restores a snapshot taken on an AMD
//! Zen 4 host through `XstateBuffer::from_snapshot` and the
//! raw-descriptor entry points, and reads it back.

use kvm_ioctls::Kvm;
use xstate::kvm::{KvmCaps, SavedXsave, XstateBuffer};
use xstate::layout::catalog;
use xstate::prelude::*;
use xstate::{Format, RegisterFile};

fn main() {
    let kvm = match Kvm::new() {
        Ok(k) => k,
        Err(e) => {
            println!("SKIPPED libkrun-shaped restore: /dev/kvm is unusable: {e}");
            return;
        }
    };
    // A Zen 4 vCPU's XSAVE bytes, as its KVM_GET_XSAVE gave them.
    let zen4 = catalog::get("amd-zen4").unwrap();
    let mut state = RegisterFile::new();
    state.set_xmm(9, 0x9999).unwrap();
    state.set_ymm(10, [10, 0xaa]).unwrap();
    let mut saved = state.encode(zen4, Format::Standard).unwrap();
    saved.resize(4096, 0);

    let caps = KvmCaps::probe_system().unwrap();
    let buffer = XstateBuffer::from_snapshot(SavedXsave::Bytes(&saved), zen4, &caps).unwrap();
    let vm = kvm.create_vm().unwrap();
    let vcpu = vm.create_vcpu(0).unwrap();
    let supported = kvm.get_supported_cpuid(80).unwrap();
    vcpu.set_cpuid2(&supported).unwrap();
    buffer.restore_fd(&vcpu, &caps).unwrap();
    let mut back = XstateBuffer::new(&caps).unwrap();
    back.save_fd(&vcpu).unwrap();
    let got = RegisterFile::decode(back.as_bytes(), caps.layout()).unwrap();
    assert_eq!(got.xmm(9).unwrap(), 0x9999);
    assert_eq!(got.ymm(10).unwrap(), [10, 0xaa]);
    println!(
        "libkrun-shaped restore (kvm-ioctls 0.24): a Zen 4 snapshot restored on {} ({} bytes) and read back",
        caps.layout().name(),
        caps.buffer_size()
    );
}
