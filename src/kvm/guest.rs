//! A minimal 64-bit guest for tests, examples, benches and `xstate report`:
//! 2 MiB of memory at GPA 0 identity-mapped with one large page, a flat
//! 64-bit code segment, SSE and XSAVE enabled, and small hand-encoded
//! programs.
//!
//! Memory map: page tables at 0x1000..0x4000, code at [`CODE`], input data
//! at [`INPUT`], output data at [`OUTPUT`], stack below 2 MiB.
//!
//! ```no_run
//! use xstate::kvm::guest::{program, TestVm, Exit, CODE};
//!
//! let mut vm = TestVm::new()?;
//! vm.write(CODE, &program::store_xmm(xstate::kvm::guest::OUTPUT));
//! vm.set_rip(CODE)?;
//! assert_eq!(vm.run()?, Exit::Hlt);
//! # Ok::<(), xstate::kvm::KvmError>(())
//! ```

use kvm_bindings::{kvm_regs, kvm_segment, kvm_userspace_memory_region, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::{Kvm, VcpuExit, VcpuFd, VmFd};

use super::{ioctl, request_amx_permission, set_xcr0, AmxPermission, KvmCaps, KvmError};
use crate::component::{ComponentId, Xfeatures};

/// Guest memory size.
pub const MEM_SIZE: usize = 2 << 20;
/// Where programs are loaded.
pub const CODE: u64 = 0x4000;
/// Where input data goes.
pub const INPUT: u64 = 0x8000;
/// Where programs store their output.
pub const OUTPUT: u64 = 0x9000;

/// Hand-encoded guest programs (the assembly is in each function's doc).
pub mod program {
    /// `mov eax, imm32`
    fn mov_eax(imm: u32) -> Vec<u8> {
        let mut v = vec![0xB8];
        v.extend_from_slice(&imm.to_le_bytes());
        v
    }

    /// `movdqu xmmN, [rax + disp32]` (load) or `movdqu [rax + disp32], xmmN` (store).
    fn movdqu(store: bool, reg: u8, disp: u32) -> Vec<u8> {
        let mut v = vec![0xF3];
        if reg >= 8 {
            v.push(0x44); // REX.R
        }
        v.extend_from_slice(&[0x0F, if store { 0x7F } else { 0x6F }, 0x80 | (reg & 7) << 3]);
        v.extend_from_slice(&disp.to_le_bytes());
        v
    }

    /// `hlt`
    pub const HLT: u8 = 0xF4;

    /// `mov eax, src; movdqu xmm0..15, [rax + 16 * i]; hlt`
    pub fn load_xmm(src: u64) -> Vec<u8> {
        let mut v = mov_eax(src as u32);
        (0..16).for_each(|i| v.extend(movdqu(false, i, 16 * u32::from(i))));
        v.push(HLT);
        v
    }

    /// `mov eax, dst; movdqu [rax + 16 * i], xmm0..15; hlt`
    pub fn store_xmm(dst: u64) -> Vec<u8> {
        let mut v = mov_eax(dst as u32);
        (0..16).for_each(|i| v.extend(movdqu(true, i, 16 * u32::from(i))));
        v.push(HLT);
        v
    }

    /// `mov eax, src; vmovdqu ymm0, [rax]; hlt` (a VEX-encoded AVX load)
    pub fn avx_probe(src: u64) -> Vec<u8> {
        let mut v = mov_eax(src as u32);
        v.extend_from_slice(&[0xC5, 0xFE, 0x6F, 0x00, HLT]);
        v
    }

    /// `mov eax, src; fld tbyte ptr [rax]; hlt` (an x87 load)
    pub fn x87_probe(src: u64) -> Vec<u8> {
        let mut v = mov_eax(src as u32);
        v.extend_from_slice(&[0xDB, 0x28, HLT]);
        v
    }

    /// `1: movdqu [dst], xmm0; out port, al; jmp 1b`: exits on port I/O
    /// forever, storing xmm0 before each exit.
    pub fn exit_loop(dst: u64, port: u8) -> Vec<u8> {
        let mut v = vec![0xF3, 0x0F, 0x7F, 0x04, 0x25];
        v.extend_from_slice(&(dst as u32).to_le_bytes());
        v.extend_from_slice(&[0xE6, port, 0xEB, 0xF3]);
        v
    }
}

/// How a run of the guest ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    /// HLT.
    Hlt,
    /// An OUT to `port`.
    IoOut(u16),
    /// Anything else, described (an emulation failure, say).
    Other(String),
}

impl core::fmt::Display for Exit {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Exit::Hlt => f.write_str("HLT"),
            Exit::IoOut(port) => write!(f, "an OUT to port {port:#x}"),
            Exit::Other(what) => f.write_str(what),
        }
    }
}

/// A VM with one vCPU set up for 64-bit code.
pub struct TestVm {
    // Dropped in this order: the vCPU and VM before their memory.
    vcpu: VcpuFd,
    vm: VmFd,
    caps: KvmCaps,
    amx_permission: AmxPermission,
    mem: Mapping,
}

impl core::fmt::Debug for TestVm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TestVm")
            .field("guest_xcr0", &self.caps.guest_xcr0())
            .field("memory", &MEM_SIZE)
            .finish_non_exhaustive()
    }
}

/// The guest memory mapping, unmapped on drop.
struct Mapping(*mut u8);

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the pointer is a MEM_SIZE-byte mapping made in
        // `TestVm::with_kvm`, dropped after the vCPU and VM that used it.
        unsafe {
            libc::munmap(self.0.cast(), MEM_SIZE);
        }
    }
}

impl TestVm {
    /// Opens `/dev/kvm` and builds the VM, its memory and its vCPU.
    ///
    /// # Errors
    ///
    /// [`KvmError`] when `/dev/kvm` cannot be opened or the VM not built.
    pub fn new() -> Result<TestVm, KvmError> {
        let kvm = Kvm::new().map_err(ioctl("open /dev/kvm"))?;
        TestVm::with_kvm(&kvm)
    }

    /// As [`new`](Self::new), on an open `/dev/kvm`. Requests AMX guest
    /// permission first where the host has AMX (a no-op after the
    /// process's first vCPU), so guests get every component KVM can offer.
    ///
    /// # Errors
    ///
    /// [`KvmError`] when the VM, its memory or its vCPU cannot be set up.
    pub fn with_kvm(kvm: &Kvm) -> Result<TestVm, KvmError> {
        TestVm::with_cpuid(kvm, |_| {})
    }

    /// As [`with_kvm`](Self::with_kvm), with the vCPU's CPUID (KVM's
    /// supported CPUID) changed by `edit` before `KVM_SET_CPUID2`: to hide
    /// a feature from the guest, say.
    ///
    /// # Errors
    ///
    /// As [`with_kvm`](Self::with_kvm); a CPUID KVM refuses is
    /// [`KvmError::Ioctl`] for `KVM_SET_CPUID2`.
    pub fn with_cpuid(
        kvm: &Kvm,
        edit: impl FnOnce(&mut [kvm_bindings::kvm_cpuid_entry2]),
    ) -> Result<TestVm, KvmError> {
        let amx_permission = request_amx_permission(&crate::host::layout()?);
        let caps = KvmCaps::probe(kvm)?;
        let vm = kvm.create_vm().map_err(ioctl("KVM_CREATE_VM"))?;
        // SAFETY: an anonymous private mapping; no existing memory is affected.
        let mem = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                MEM_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if mem == libc::MAP_FAILED {
            return Err(KvmError::Ioctl {
                op: "mmap guest memory",
                source: kvm_ioctls::Error::last(),
            });
        }
        let region = kvm_userspace_memory_region {
            slot: 0,
            guest_phys_addr: 0,
            memory_size: MEM_SIZE as u64,
            userspace_addr: mem as u64,
            flags: 0,
        };
        // SAFETY: `mem` is a live mapping of MEM_SIZE bytes owned by the
        // returned TestVm, which unmaps it only after the VM is dropped.
        let set = unsafe { vm.set_user_memory_region(region) };
        let mut this = TestVm {
            caps,
            amx_permission,
            vcpu: vm.create_vcpu(0).map_err(ioctl("KVM_CREATE_VCPU"))?,
            vm,
            mem: Mapping(mem.cast()),
        };
        set.map_err(ioctl("KVM_SET_USER_MEMORY_REGION"))?;
        this.setup(kvm, edit)?;
        Ok(this)
    }

    fn setup(
        &mut self,
        kvm: &Kvm,
        edit: impl FnOnce(&mut [kvm_bindings::kvm_cpuid_entry2]),
    ) -> Result<(), KvmError> {
        // Identity paging: PML4 -> PDPT -> PD with one 2 MiB page at 0.
        self.write(0x1000, &(0x2000u64 | 3).to_le_bytes());
        self.write(0x2000, &(0x3000u64 | 3).to_le_bytes());
        self.write(0x3000, &0x83u64.to_le_bytes());
        let mut cpuid = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(ioctl("KVM_GET_SUPPORTED_CPUID"))?;
        edit(cpuid.as_mut_slice());
        self.vcpu
            .set_cpuid2(&cpuid)
            .map_err(ioctl("KVM_SET_CPUID2"))?;
        let mut sregs = self.vcpu.get_sregs().map_err(ioctl("KVM_GET_SREGS"))?;
        let code = kvm_segment {
            base: 0,
            limit: 0xFFFF_FFFF,
            selector: 0x8,
            type_: 11,
            present: 1,
            dpl: 0,
            db: 0,
            s: 1,
            l: 1,
            g: 1,
            ..Default::default()
        };
        let data = kvm_segment {
            selector: 0x10,
            type_: 3,
            db: 1,
            l: 0,
            ..code
        };
        sregs.cs = code;
        (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss) = (data, data, data, data, data);
        sregs.cr3 = 0x1000;
        sregs.cr4 = 1 << 5 | 1 << 9 | 1 << 10 | 1 << 18; // PAE, OSFXSR, OSXMMEXCPT, OSXSAVE
        sregs.cr0 = 0x8005_0033; // PE, MP, ET, NE, WP, PG
        sregs.efer = 0x500; // LME, LMA
        self.vcpu
            .set_sregs(&sregs)
            .map_err(ioctl("KVM_SET_SREGS"))?;
        let avx = self.caps.guest_xcr0() & ComponentId::AVX.bit();
        set_xcr0(&self.vcpu, Xfeatures::LEGACY | avx)?;
        self.set_rip(CODE)
    }

    /// KVM's capabilities, as probed when the VM was built.
    pub fn caps(&self) -> &KvmCaps {
        &self.caps
    }

    /// What the AMX guest permission request made before the VM answered.
    pub fn amx_permission(&self) -> &AmxPermission {
        &self.amx_permission
    }

    /// The vCPU.
    pub fn vcpu(&self) -> &VcpuFd {
        &self.vcpu
    }

    /// The VM.
    pub fn vm(&self) -> &VmFd {
        &self.vm
    }

    fn memory(&mut self) -> &mut [u8] {
        // SAFETY: `mem` is a live MEM_SIZE-byte mapping owned by self; the
        // vCPU only touches it while `run` holds `&mut self`.
        unsafe { core::slice::from_raw_parts_mut(self.mem.0, MEM_SIZE) }
    }

    /// Writes guest memory at `gpa`.
    pub fn write(&mut self, gpa: u64, bytes: &[u8]) {
        let at = gpa as usize;
        self.memory()[at..at + bytes.len()].copy_from_slice(bytes);
    }

    /// Reads `len` bytes of guest memory at `gpa`.
    pub fn read(&mut self, gpa: u64, len: usize) -> Vec<u8> {
        let at = gpa as usize;
        self.memory()[at..at + len].to_vec()
    }

    /// Points the vCPU at `rip` (64-bit mode, RFLAGS 2, stack below 2 MiB).
    ///
    /// # Errors
    ///
    /// [`KvmError::Ioctl`] when `KVM_SET_REGS` fails.
    pub fn set_rip(&mut self, rip: u64) -> Result<(), KvmError> {
        let regs = kvm_regs {
            rip,
            rflags: 2,
            rsp: MEM_SIZE as u64 - 0x1000,
            ..Default::default()
        };
        self.vcpu.set_regs(&regs).map_err(ioctl("KVM_SET_REGS"))
    }

    /// Loads `code` at [`CODE`] and points the vCPU at it.
    ///
    /// # Errors
    ///
    /// [`KvmError::Ioctl`] when `KVM_SET_REGS` fails.
    pub fn load(&mut self, code: &[u8]) -> Result<(), KvmError> {
        self.write(CODE, code);
        self.set_rip(CODE)
    }

    /// Runs the vCPU until it exits to userspace.
    ///
    /// # Errors
    ///
    /// None today: a failing `KVM_RUN` is reported as [`Exit::Other`].
    pub fn run(&mut self) -> Result<Exit, KvmError> {
        match self.vcpu.run() {
            Ok(VcpuExit::Hlt) => Ok(Exit::Hlt),
            Ok(VcpuExit::IoOut(port, _)) => Ok(Exit::IoOut(port)),
            Ok(VcpuExit::InternalError) => Ok(Exit::Other(
                "KVM_EXIT_INTERNAL_ERROR (typically KVM's instruction emulator meeting an instruction it cannot run)".into(),
            )),
            Ok(other) => Ok(Exit::Other(format!("exit {other:?}"))),
            Err(e) => Ok(Exit::Other(format!("KVM_RUN failed: {e}"))),
        }
    }
}
