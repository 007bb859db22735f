//! Snapshots other VMMs saved, restored on this host's KVM: the layout from
//! the snapshot's saved CPUID, the bytes in each VMM's shape, a buffer of
//! this host's size checked before `KVM_SET_XSAVE`, and the raw-fd entry
//! points beside xstate's own `VcpuFd` ones.
#![cfg(target_arch = "x86_64")]

mod common;

use kvm_bindings::kvm_cpuid_entry2;
use xstate::cpuid::CpuidSet;
use xstate::kvm::{SavedXsave, SnapshotError, XstateBuffer};
use xstate::layout::catalog;
use xstate::prelude::*;
use xstate::{ComponentId, Format, Layout, RegisterFile};

/// The `kvm_cpuid_entry2` entries of a dump, as a VMM saved them.
fn entries(dump: &str) -> Vec<kvm_cpuid_entry2> {
    let set = CpuidSet::parse(dump).unwrap();
    set.iter()
        .map(|(function, index, r)| kvm_cpuid_entry2 {
            function,
            index,
            flags: u32::from(set.is_indexed(function)),
            eax: r.eax,
            ebx: r.ebx,
            ecx: r.ecx,
            edx: r.edx,
            ..Default::default()
        })
        .collect()
}

/// A Zen 4 state with what this host can also hold live: x87, SSE, AVX
/// and AVX-512 where the host has it.
fn zen4_state(host: &Layout) -> RegisterFile {
    let mut regs = RegisterFile::new();
    regs.set_fcw(0x37f).unwrap();
    regs.set_xmm(2, 0x2222).unwrap();
    regs.set_ymm(3, [3, 0x33]).unwrap();
    if host.has(ComponentId::HI16_ZMM) {
        regs.set_zmm(17, [17, 0x1717, 0x171717, 0x17171717])
            .unwrap();
        regs.set_k(3, 0x3333).unwrap();
    }
    regs
}

#[test]
fn a_zen4_snapshot_restores_here_in_every_vmm_shape() {
    let Some(dir) = common::shared_cpuid_dir("snapshot layouts from saved CPUIDs") else {
        return;
    };
    let Some(mut vm) = common::vm("snapshot restore on a live vCPU") else {
        return;
    };
    let dump = std::fs::read_to_string(dir.join("AuthenticAMD0A10F11_K19_Genoa_01.txt")).unwrap();
    let source = Layout::from_kvm_cpuid(&entries(&dump)).unwrap();
    let zen4 = catalog::get("amd-zen4").unwrap();
    assert_eq!(
        source.fingerprint(),
        zen4.fingerprint(),
        "the saved CPUID's layout"
    );
    let caps = vm.caps().clone();
    let host = caps.layout().clone();
    let state = zen4_state(&host);
    // What KVM_GET_XSAVE gave on the Zen 4 host: its layout, 4096 bytes.
    let mut saved = state.encode(zen4, Format::Standard).unwrap();
    saved.resize(4096, 0);
    let words: Vec<u32> = saved
        .chunks(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let region: &[u32; 1024] = words[..1024].try_into().unwrap();
    for shape in [
        SavedXsave::Bytes(&saved),
        SavedXsave::Words(&words),
        SavedXsave::Split { region, extra: &[] },
    ] {
        let buffer = XstateBuffer::from_snapshot(shape, &source, &caps).unwrap();
        assert_eq!(buffer.as_bytes().len(), caps.buffer_size(), "{shape:?}");
        // Restored on a live vCPU through the raw descriptor, read back
        // through xstate's own VcpuFd path: the same registers.
        buffer.restore_fd(vm.vcpu(), &caps).unwrap();
        let mut back = XstateBuffer::new(&caps).unwrap();
        back.save(vm.vcpu()).unwrap();
        let got = RegisterFile::decode(back.as_bytes(), &host).unwrap();
        assert_eq!(got.xmm(2).unwrap(), 0x2222);
        assert_eq!(got.ymm(3).unwrap(), [3, 0x33]);
        assert_eq!(got.fcw().unwrap(), 0x37f);
        if host.has(ComponentId::HI16_ZMM) {
            assert_eq!(got.zmm(17).unwrap(), [17, 0x1717, 0x171717, 0x17171717]);
            assert_eq!(got.k(3).unwrap(), 0x3333);
        }
        // The raw-fd save reads the same bytes as the VcpuFd one.
        let mut raw = XstateBuffer::new(&caps).unwrap();
        raw.save_fd(vm.vcpu()).unwrap();
        assert_eq!(raw.as_bytes(), back.as_bytes());
        // And the caller-issued form: the caller's ioctl gets the bytes.
        let mut called = XstateBuffer::new(&caps).unwrap();
        called
            .save_with(|bytes| {
                bytes.copy_from_slice(raw.as_bytes());
                Ok(())
            })
            .unwrap();
        let mut seen = 0;
        called
            .restore_with(&caps, |bytes| {
                seen = bytes.len();
                Ok(())
            })
            .unwrap();
        assert_eq!(seen, caps.buffer_size());
    }
    let _ = vm.run();
}

#[test]
fn snapshots_this_host_cannot_take_are_refused_before_any_ioctl() {
    let Some(vm) = common::vm("snapshot refusals") else {
        return;
    };
    let caps = vm.caps().clone();
    let zen4 = catalog::get("amd-zen4").unwrap();
    let spr = catalog::get("intel-sapphire-rapids").unwrap();
    // A live component this host lacks (AMX tiles, where it has none).
    if !caps.layout().has(ComponentId::TILEDATA) {
        let mut regs = RegisterFile::new();
        regs.set_tmm(1, &[7; 1024]).unwrap();
        let saved = regs.encode(spr, Format::Standard).unwrap();
        let e = XstateBuffer::from_snapshot(SavedXsave::Bytes(&saved), spr, &caps).unwrap_err();
        assert!(
            matches!(e, SnapshotError::Incompatible(_) | SnapshotError::Kvm(_)),
            "{e:?}"
        );
    }
    // An MXCSR bit this host does not implement (bit 17, AMD's MM).
    if caps.mxcsr_mask() & (1 << 17) == 0 {
        let mut regs = RegisterFile::new();
        regs.set_mxcsr(0x21f80).unwrap();
        let saved = regs.encode(zen4, Format::Standard).unwrap();
        let e = XstateBuffer::from_snapshot(SavedXsave::Bytes(&saved), zen4, &caps).unwrap_err();
        assert!(e.to_string().contains("MXCSR 0x21f80"), "{e}");
    }
    // A header the source could not have written, and bytes cut short
    // inside a live component.
    let mut regs = RegisterFile::new();
    regs.set_ymm(1, [1, 2]).unwrap();
    let mut saved = regs.encode(zen4, Format::Standard).unwrap();
    saved[520] = 1;
    let e = XstateBuffer::from_snapshot(SavedXsave::Bytes(&saved), zen4, &caps).unwrap_err();
    assert!(matches!(e, SnapshotError::Header { .. }), "{e:?}");
    let saved = regs.encode(zen4, Format::Standard).unwrap();
    let e = XstateBuffer::from_snapshot(SavedXsave::Bytes(&saved[..700]), zen4, &caps).unwrap_err();
    assert!(
        e.to_string().contains("700") && e.to_string().contains("832"),
        "{e}"
    );
}

#[test]
fn sync_writes_back_only_what_may_have_changed() {
    let Some(vm) = common::vm("sync after a read-only exit") else {
        return;
    };
    let caps = vm.caps().clone();
    let layout = caps.layout().clone();
    let mut buffer = XstateBuffer::new(&caps).unwrap();
    assert!(buffer.is_changed(), "a new buffer is not the vCPU's");
    buffer.save(vm.vcpu()).unwrap();
    assert!(!buffer.is_changed());
    // Reading issues nothing.
    let x = buffer.view(&layout).unwrap().xmm(4).unwrap();
    assert!(!buffer.sync(vm.vcpu(), &caps).unwrap());
    // A write view counts as a change: written back once.
    buffer
        .view_mut(&layout)
        .unwrap()
        .set_xmm(4, x.wrapping_add(0x44))
        .unwrap();
    assert!(buffer.is_changed());
    assert!(buffer.sync(vm.vcpu(), &caps).unwrap());
    assert!(!buffer.sync(vm.vcpu(), &caps).unwrap());
    // A restore, on any descriptor, leaves nothing for sync to write.
    buffer.as_bytes_mut();
    buffer.restore(vm.vcpu(), &caps).unwrap();
    assert!(!buffer.is_changed());
    buffer.as_bytes_mut();
    assert!(buffer.sync_fd(vm.vcpu(), &caps).unwrap());
    assert!(!buffer.sync_fd(vm.vcpu(), &caps).unwrap());
    buffer.as_bytes_mut();
    let mut calls = 0;
    let mut set = |bytes: &[u8]| {
        calls += 1;
        assert_eq!(bytes.len(), caps.buffer_size());
        Ok(())
    };
    assert!(buffer.sync_with(&caps, &mut set).unwrap());
    assert!(!buffer.sync_with(&caps, &mut set).unwrap());
    assert_eq!(calls, 1);
    let mut back = XstateBuffer::new(&caps).unwrap();
    back.save(vm.vcpu()).unwrap();
    assert_eq!(
        back.view(&layout).unwrap().xmm(4).unwrap(),
        x.wrapping_add(0x44)
    );
}

/// A refused or failed write-back leaves the buffer changed, so the next
/// sync tries again; a buffer the pre-flight check refuses reaches no
/// ioctl, whichever way it is written back.
#[test]
fn failed_write_backs_leave_the_buffer_changed() {
    let Some(vm) = common::vm("sync after a failed restore") else {
        return;
    };
    let caps = vm.caps().clone();
    let mut buffer = XstateBuffer::new(&caps).unwrap();
    buffer.save(vm.vcpu()).unwrap();
    let good = buffer.as_bytes().to_vec();
    // A reserved header byte: KVM_SET_XSAVE would refuse it.
    buffer.as_bytes_mut()[530] = 1;
    let mut calls = 0;
    for _ in 0..2 {
        assert!(buffer.restore(vm.vcpu(), &caps).is_err());
        assert!(buffer.restore_fd(vm.vcpu(), &caps).is_err());
        assert!(buffer.sync(vm.vcpu(), &caps).is_err());
        assert!(buffer.sync_fd(vm.vcpu(), &caps).is_err());
        assert!(buffer
            .sync_with(&caps, |_| {
                calls += 1;
                Ok(())
            })
            .is_err());
        assert!(buffer.is_changed());
    }
    assert_eq!(calls, 0, "a refused buffer reached the caller's ioctl");
    // The caller's ioctl fails: still changed, and the next sync retries.
    buffer.as_bytes_mut().copy_from_slice(&good);
    let failing = |_: &[u8]| Err(std::io::Error::from_raw_os_error(4));
    assert!(buffer.restore_with(&caps, failing).is_err());
    assert!(buffer.sync_with(&caps, failing).is_err());
    assert!(buffer.is_changed());
    assert!(buffer.sync(vm.vcpu(), &caps).unwrap());
    assert!(!buffer.is_changed());
    // A write view, then a save: the vCPU's bytes again.
    buffer.view_mut(caps.layout()).unwrap();
    assert!(buffer.is_changed());
    buffer.save(vm.vcpu()).unwrap();
    assert!(!buffer.sync(vm.vcpu(), &caps).unwrap());
}
