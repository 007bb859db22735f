//! xstate's raw-descriptor entry points with a `VcpuFd` of kvm-ioctls
//! 0.24 (libkrun's), beside the 0.25 xstate builds with: the
//! `&VcpuFd` methods would not compile with it (two kvm-ioctls versions),
//! `save_fd` and `restore_fd` take any `AsRawFd`.
#![cfg(target_arch = "x86_64")]

mod common;

use kvm_ioctls_024 as kvm024;
use xstate::kvm::{KvmCaps, XstateBuffer};
use xstate::prelude::*;
use xstate::RegisterFile;

#[test]
fn a_kvm_ioctls_0_24_vcpu_saves_and_restores_through_its_descriptor() {
    if !std::path::Path::new("/dev/kvm").exists() {
        common::skip("kvm-ioctls 0.24 vCPU", "/dev/kvm is absent");
        return;
    }
    let kvm = match kvm024::Kvm::new() {
        Ok(k) => k,
        Err(e) => {
            common::skip(
                "kvm-ioctls 0.24 vCPU",
                &format!("/dev/kvm is unusable: {e}"),
            );
            return;
        }
    };
    let vm = kvm.create_vm().unwrap();
    let vcpu = vm.create_vcpu(0).unwrap();
    let cpuid = kvm
        .get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
        .unwrap();
    // kvm-ioctls 0.24 has its own kvm-bindings: its CpuId is passed as is.
    vcpu.set_cpuid2(&cpuid).unwrap();
    let caps = KvmCaps::probe_system().unwrap();
    let layout = caps.layout().clone();
    let mut regs = RegisterFile::new();
    regs.set_xmm(5, 0x5555_0000_5555).unwrap();
    regs.set_ymm(6, [6, 0x66]).unwrap();
    let mut buffer = XstateBuffer::new(&caps).unwrap();
    buffer.load(&regs, &caps).unwrap();
    buffer.restore_fd(&vcpu, &caps).unwrap();
    let mut back = XstateBuffer::new(&caps).unwrap();
    back.save_fd(&vcpu).unwrap();
    let got = RegisterFile::decode(back.as_bytes(), &layout).unwrap();
    assert_eq!(got.xmm(5).unwrap(), 0x5555_0000_5555);
    assert_eq!(got.ymm(6).unwrap(), [6, 0x66]);
}
