//! APX's r16..r31 as KVM exposes them: `Gprs`, the pinning of component 19
//! and the encode path.
//!
//! Two kinds of test, named for what they run against:
//!
//! - `simulated_kvm_*`: no released kernel offers guests APX and no APX
//!   silicon is public, so these run against [`simulated`], a small model
//!   of KVM's APX semantics built from the APX section of the project's
//!   facts page (`../shared/reference/xsave-facts.md`, summarizing the
//!   posted KVM APX series). They test xstate against that description,
//!   not against a kernel; when a kernel with the series can be run, the
//!   `real_kvm_*` test exercises the same rules for real.
//! - `real_kvm_*`: the real `/dev/kvm` of the machine running the tests.
//!   Where KVM offers no APX (every host so far), it checks that and that
//!   `Gprs` over a real vCPU refuses r16 with the typed error; where a host
//!   ever offers APX, it runs the rules on it. Skipped, visibly, only where
//!   `/dev/kvm` is absent or unusable.
//!
//! Geometry: the catalog layout `intel-diamond-rapids` (APX at 960).

mod common;

use kvm_bindings::kvm_regs;
use xstate::apx::{ApxError, Egprs};
use xstate::layout::catalog;
use xstate::migrate::stream::{self, Source};
use xstate::preflight::preflight;
use xstate::prelude::*;
use xstate::profile::{HostProfile, KvmOffer};
use xstate::{ComponentId, Layout, RegisterFile, XcompBv, Xfeatures, XsaveView};

/// A simulation of KVM's APX semantics, built from the facts page's APX
/// section, not measured:
///
/// - r16..r31 travel only as component 19 of the XSAVE buffers, at the
///   host layout's standard offset; `kvm_regs` stays rax..r15;
/// - GET sets XSTATE_BV\[19\] whenever the guest's CPUID has APX, even when
///   every EGPR is 0 ("present", not "in use");
/// - SET with XSTATE_BV\[19\] clear leaves r16..r31 unchanged;
/// - SET with XSTATE_BV\[19\] on a KVM without APX is EINVAL (as is any
///   XSTATE_BV bit KVM does not offer guests);
/// - `KVM_SET_XCRS` refuses an XCR0 with MPX and APX;
/// - on a kernel without the series, KVM's guest XCR0 lacks bit 19 even on
///   an APX host.
///
/// Other components follow the rules measured on real KVM (a clear bit
/// means init); the MXCSR and PKRU details are left out.
mod simulated {
    use super::*;

    /// A simulated ioctl's EINVAL, with the rule that fired.
    #[derive(Debug, PartialEq, Eq)]
    pub struct Einval(pub &'static str);

    /// KVM on one host.
    pub struct Kvm {
        layout: Layout,
        guest_xcr0: Xfeatures,
    }

    impl Kvm {
        /// KVM with the APX series on an APX host: it offers guests every
        /// XCR0 bit the host layout has.
        pub fn with_apx(layout: &Layout) -> Kvm {
            assert!(layout.has(ComponentId::APX));
            Kvm {
                layout: layout.clone(),
                guest_xcr0: layout.xcr0_supported(),
            }
        }

        /// KVM without the series on the same host: its guest XCR0 lacks
        /// bit 19.
        pub fn without_apx(layout: &Layout) -> Kvm {
            Kvm {
                layout: layout.clone(),
                guest_xcr0: layout.xcr0_supported().without(ComponentId::APX),
            }
        }

        pub fn guest_xcr0(&self) -> Xfeatures {
            self.guest_xcr0
        }

        pub fn buffer_size(&self) -> usize {
            self.layout.standard_size() as usize
        }

        /// What a host profile of this KVM says.
        pub fn offer(&self) -> KvmOffer {
            KvmOffer::new(
                self.guest_xcr0,
                self.buffer_size(),
                self.layout.mxcsr_mask(),
            )
        }

        /// A vCPU whose CPU model exposes `cpuid_xcr0` (leaf 0xD.0),
        /// limited to what KVM offers, with XCR0 1 and every register init.
        pub fn create_vcpu(&self, cpuid_xcr0: Xfeatures) -> Vcpu<'_> {
            Vcpu {
                kvm: self,
                cpuid_xcr0: cpuid_xcr0 & self.guest_xcr0,
                xcr0: Xfeatures::from_bits(1),
                egprs: [0; 16],
                rest: RegisterFile::new(),
            }
        }
    }

    /// One vCPU.
    pub struct Vcpu<'k> {
        kvm: &'k Kvm,
        cpuid_xcr0: Xfeatures,
        xcr0: Xfeatures,
        /// r16..r31 as the (simulated) CPU holds them.
        egprs: [u64; 16],
        /// Every other component.
        rest: RegisterFile,
    }

    impl Vcpu<'_> {
        pub fn xcr0(&self) -> Xfeatures {
            self.xcr0
        }

        /// `KVM_SET_XCRS` with XCR0.
        pub fn set_xcr0(&mut self, xcr0: Xfeatures) -> Result<(), Einval> {
            let mpx = ComponentId::MPX_BNDREGS.bit() | ComponentId::MPX_BNDCSR.bit();
            if !xcr0.contains(ComponentId::X87) {
                return Err(Einval("XCR0 without x87"));
            }
            if xcr0.contains(ComponentId::APX) && xcr0.intersects(mpx) {
                return Err(Einval("XCR0 with MPX and APX"));
            }
            if !self.cpuid_xcr0.contains_all(xcr0) {
                return Err(Einval("XCR0 bits the guest CPUID lacks"));
            }
            self.xcr0 = xcr0;
            Ok(())
        }

        /// r`i` (16..32) as the CPU holds it.
        pub fn egpr(&self, i: usize) -> u64 {
            self.egprs[i - 16]
        }

        /// The guest sets r`i` while it runs (it must have enabled APX).
        pub fn guest_writes(&mut self, i: usize, v: u64) {
            assert!(self.xcr0.contains(ComponentId::APX), "#UD in the guest");
            self.egprs[i - 16] = v;
        }

        /// `KVM_GET_XSAVE2`.
        pub fn get_xsave(&self) -> Vec<u8> {
            let layout = &self.kvm.layout;
            let mut buf = vec![0u8; self.kvm.buffer_size()];
            self.rest
                .encode_into(&mut buf, layout, XcompBv::STANDARD)
                .unwrap();
            if self.cpuid_xcr0.contains(ComponentId::APX) {
                // The bit is set whenever the guest has APX, zeros or not.
                let mut view = XsaveView::new(&mut buf[..], layout).unwrap();
                view.make_live(ComponentId::APX).unwrap();
                for (i, v) in self.egprs.iter().enumerate() {
                    view.set_r(16 + i, *v).unwrap();
                }
            }
            buf
        }

        /// `KVM_SET_XSAVE`.
        pub fn set_xsave(&mut self, buf: &[u8]) -> Result<(), Einval> {
            if buf.len() != self.kvm.buffer_size() {
                return Err(Einval("buffer size"));
            }
            let u64_at = |o: usize| u64::from_le_bytes(buf[o..o + 8].try_into().unwrap());
            let xstate_bv = Xfeatures::from_bits(u64_at(512));
            if u64_at(520) != 0 {
                return Err(Einval("XCOMP_BV is not 0"));
            }
            if buf[528..576].iter().any(|&b| b != 0) {
                return Err(Einval("reserved header bytes"));
            }
            if !self.kvm.guest_xcr0.contains_all(xstate_bv) {
                return Err(Einval("XSTATE_BV bits KVM does not offer guests"));
            }
            let view = XsaveView::new(buf, &self.kvm.layout).unwrap();
            if xstate_bv.contains(ComponentId::APX) {
                for (i, v) in self.egprs.iter_mut().enumerate() {
                    *v = view.r(16 + i).unwrap();
                }
            }
            // With bit 19 clear, r16..r31 stay as they were.
            let mut rest = RegisterFile::from_view(&view).unwrap();
            rest.set_init(ComponentId::APX);
            self.rest = rest;
            Ok(())
        }
    }
}

fn dmr() -> &'static Layout {
    catalog::get("intel-diamond-rapids").unwrap()
}

/// x87, SSE, AVX and APX.
const XCR0_APX: Xfeatures = Xfeatures::from_bits(0x80007);
const XCR0_NO_APX: Xfeatures = Xfeatures::from_bits(0x7);

fn egprs_of(area: &[u8], layout: &Layout) -> Vec<u64> {
    let view = XsaveView::new(area, layout).unwrap();
    (16..32).map(|i| view.r(i).unwrap()).collect()
}

#[test]
fn simulated_kvm_get_marks_apx_present_with_every_egpr_zero() {
    let kvm = simulated::Kvm::with_apx(dmr());
    let mut vcpu = kvm.create_vcpu(dmr().xcr0_supported());
    // The guest has APX in its CPUID but has not enabled it yet: GET says
    // "present" already, and Gprs says r16..r31 do not exist for it.
    let mut area = vcpu.get_xsave();
    let view = XsaveView::new(&area[..], dmr()).unwrap();
    assert!(view.is_live(ComponentId::APX), "GET sets XSTATE_BV[19]");
    let early = Egprs::for_kvm(dmr(), kvm.guest_xcr0(), vcpu.xcr0());
    assert_eq!(
        early.check(),
        Err(ApxError::NotEnabled {
            xcr0: Xfeatures::from_bits(1)
        })
    );
    // Once enabled, reading them from a "present" state with zeros is fine.
    vcpu.set_xcr0(XCR0_APX).unwrap();
    area = vcpu.get_xsave();
    let mut view = XsaveView::new(&mut area[..], dmr()).unwrap();
    let egprs = Egprs::for_kvm(dmr(), kvm.guest_xcr0(), vcpu.xcr0());
    assert!(egprs.is_present());
    let mut regs = kvm_regs::default();
    let gprs = xstate::kvm::Gprs::new(&mut regs, &mut view, egprs);
    for i in 16..32 {
        assert_eq!(gprs.get(i).unwrap(), 0);
    }
    // A guest CPU model without APX: GET leaves the bit clear.
    let plain = kvm.create_vcpu(dmr().xcr0_supported().without(ComponentId::APX));
    let area = plain.get_xsave();
    assert!(!XsaveView::new(&area[..], dmr())
        .unwrap()
        .is_live(ComponentId::APX));
}

#[test]
fn simulated_kvm_set_with_bit_19_clear_leaves_egprs_unchanged_so_pinned_encodes_send_it() {
    let kvm = simulated::Kvm::with_apx(dmr());
    let offer = kvm.offer();
    assert_eq!(
        offer.pinned(),
        ComponentId::PKRU.bit() | ComponentId::APX.bit()
    );
    let mut vcpu = kvm.create_vcpu(dmr().xcr0_supported());
    vcpu.set_xcr0(XCR0_APX).unwrap();
    // A snapshot taken before the guest used APX: its APX is init.
    let mut snapshot = RegisterFile::new();
    snapshot.set_xmm(0, 0x5a5a).unwrap();
    vcpu.guest_writes(20, 0xdead);

    // Encoded without pinning, XSTATE_BV[19] is clear, and the simulated
    // KVM keeps r20: the restored vCPU is not the snapshot.
    let mut area = vec![0u8; kvm.buffer_size()];
    snapshot
        .encode_into(&mut area, dmr(), XcompBv::STANDARD)
        .unwrap();
    vcpu.set_xsave(&area).unwrap();
    assert_eq!(vcpu.egpr(20), 0xdead, "a clear bit left r20 as it was");

    // Encoded with the offer's pinned components, component 19 goes with
    // its bit set and zero bytes, and the zeros take effect.
    snapshot
        .encode_into_pinned(&mut area, dmr(), XcompBv::STANDARD, offer.pinned())
        .unwrap();
    let view = XsaveView::new(&area[..], dmr()).unwrap();
    assert!(view.is_live(ComponentId::APX) && view.is_live(ComponentId::PKRU));
    assert_eq!(egprs_of(&area, dmr()), [0; 16]);
    vcpu.set_xsave(&area).unwrap();
    assert!((16..32).all(|i| vcpu.egpr(i) == 0));
    let back = RegisterFile::decode(&vcpu.get_xsave(), dmr()).unwrap();
    assert_eq!(back.xmm(0).unwrap(), 0x5a5a);
}

#[test]
fn simulated_kvm_gprs_writes_reach_the_vcpu() {
    let kvm = simulated::Kvm::with_apx(dmr());
    let mut vcpu = kvm.create_vcpu(dmr().xcr0_supported());
    vcpu.set_xcr0(XCR0_APX).unwrap();
    vcpu.guest_writes(17, 17);
    let egprs = Egprs::for_kvm(dmr(), kvm.guest_xcr0(), vcpu.xcr0());
    // An emulated instruction: r31 = r17 + rbx.
    let mut area = vcpu.get_xsave();
    let mut regs = kvm_regs {
        rbx: 25,
        ..Default::default()
    };
    {
        let mut view = XsaveView::new(&mut area[..], dmr()).unwrap();
        let mut gprs = xstate::kvm::Gprs::new(&mut regs, &mut view, egprs);
        let v = gprs.get(17).unwrap() + gprs.get_by_name("rbx").unwrap();
        gprs.set_by_name("r31", v).unwrap();
    }
    vcpu.set_xsave(&area).unwrap();
    assert_eq!(vcpu.egpr(31), 42);
    assert_eq!(vcpu.egpr(17), 17);
    assert_eq!(egprs_of(&vcpu.get_xsave(), dmr())[15], 42);
}

#[test]
fn simulated_kvm_without_apx_on_an_apx_host_has_no_egprs() {
    let kvm = simulated::Kvm::without_apx(dmr());
    let guest_xcr0 = kvm.guest_xcr0();
    assert_eq!(guest_xcr0, Xfeatures::from_bits(0x602e7));
    let mut vcpu = kvm.create_vcpu(dmr().xcr0_supported());
    assert_eq!(
        vcpu.set_xcr0(XCR0_APX),
        Err(simulated::Einval("XCR0 bits the guest CPUID lacks"))
    );
    vcpu.set_xcr0(XCR0_NO_APX).unwrap();
    let mut area = vcpu.get_xsave();
    assert!(!XsaveView::new(&area[..], dmr())
        .unwrap()
        .is_live(ComponentId::APX));

    // Gprs over this vCPU: the host layout has APX, KVM does not.
    let egprs = Egprs::for_kvm(dmr(), guest_xcr0, XCR0_APX);
    let profile = HostProfile {
        layout: dmr().clone(),
        kvm: Some(kvm.offer()),
    };
    let offer = profile.kvm.as_ref().unwrap();
    assert_eq!(
        Egprs::for_kvm(&profile.layout, offer.guest_xcr0, XCR0_APX),
        egprs
    );
    let mut regs = kvm_regs::default();
    {
        let mut view = XsaveView::new(&mut area[..], dmr()).unwrap();
        let mut gprs = xstate::kvm::Gprs::new(&mut regs, &mut view, egprs);
        let e = gprs.get(16).unwrap_err();
        assert_eq!(
            e,
            xstate::kvm::GprError::Egprs(ApxError::NotOfferedByKvm { guest_xcr0 })
        );
        assert!(
            e.to_string().contains("KVM offers guests XCR0 0x602e7"),
            "{e}"
        );
        assert_eq!(gprs.set(16, 1).unwrap_err(), e);
    }

    // Pinning follows the offer: no APX, so an APX-init state restores.
    assert_eq!(offer.pinned(), ComponentId::PKRU.bit());
    let mut state = RegisterFile::new();
    state.set_xmm(1, 1).unwrap();
    let mut out = vec![0u8; kvm.buffer_size()];
    state
        .encode_into_pinned(&mut out, dmr(), XcompBv::STANDARD, offer.pinned())
        .unwrap();
    vcpu.set_xsave(&out).unwrap();
    // A state with APX live is refused by the simulated KVM, and by the
    // pre-flight check with this offer's rules.
    state.set_r(16, 1).unwrap();
    state
        .encode_into(&mut out, dmr(), XcompBv::STANDARD)
        .unwrap();
    assert_eq!(
        vcpu.set_xsave(&out),
        Err(simulated::Einval(
            "XSTATE_BV bits KVM does not offer guests"
        ))
    );
    assert!(preflight(&out, &offer.set_xsave_rules()).is_err());
}

#[test]
fn simulated_kvm_refuses_xcr0_with_mpx_and_apx_and_so_does_egprs() {
    let kvm = simulated::Kvm::with_apx(dmr());
    let mut vcpu = kvm.create_vcpu(Xfeatures::ALL);
    for mpx in [1u64 << 3, 1 << 4, 3 << 3] {
        let xcr0 = Xfeatures::from_bits(XCR0_APX.bits() | mpx);
        assert_eq!(
            vcpu.set_xcr0(xcr0),
            Err(simulated::Einval("XCR0 with MPX and APX"))
        );
        assert_eq!(
            Egprs::for_state(dmr(), xcr0).check(),
            Err(ApxError::MpxAndApx { xcr0 })
        );
    }
    assert_eq!(vcpu.xcr0(), Xfeatures::from_bits(1), "XCR0 unchanged");
}

#[test]
fn simulated_kvm_stream_decode_for_an_apx_profile_zeroes_egprs() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    // A vCPU from a host without APX.
    let spr = catalog::get("intel-sapphire-rapids").unwrap();
    let mut state = RegisterFile::new();
    state.set_xmm(2, 0x1234).unwrap();
    let vcpu = stream::Vcpu::new(
        state,
        xstate::xregs::XstateRegisters::with_xcr0(spr.xcr0_supported()),
    );
    std::fs::write(
        p("s.xst"),
        stream::encode(&[vcpu], &Source::of(spr)).unwrap(),
    )
    .unwrap();

    let with = simulated::Kvm::with_apx(dmr());
    let without = simulated::Kvm::without_apx(dmr());
    for (name, kvm) in [("apx.json", &with), ("no-apx.json", &without)] {
        let profile = HostProfile {
            layout: dmr().clone(),
            kvm: Some(kvm.offer()),
        };
        std::fs::write(p(name), profile.to_json()).unwrap();
    }
    let decode = |to: &str, out: &str| {
        let r = std::process::Command::new(env!("CARGO_BIN_EXE_xstate"))
            .args(["stream", "decode", &p("s.xst"), &p(out), "--layout", to])
            .output()
            .unwrap();
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        std::fs::read(p(out)).unwrap()
    };

    // For a KVM with APX: component 19 with its bit set and zeros, so a
    // vCPU whose guest had dirtied r16..r31 ends with zeros.
    let area = decode(&p("apx.json"), "apx.bin");
    let view = XsaveView::new(&area[..], dmr()).unwrap();
    assert!(view.is_live(ComponentId::APX) && view.is_live(ComponentId::PKRU));
    assert_eq!(egprs_of(&area, dmr()), [0; 16]);
    let mut vcpu = with.create_vcpu(dmr().xcr0_supported());
    vcpu.set_xcr0(XCR0_APX).unwrap();
    for i in 16..32 {
        vcpu.guest_writes(i, 0xff00 + i as u64);
    }
    vcpu.set_xsave(&area).unwrap();
    assert!((16..32).all(|i| vcpu.egpr(i) == 0));
    let back = RegisterFile::decode(&vcpu.get_xsave(), dmr()).unwrap();
    assert_eq!(back.xmm(2).unwrap(), 0x1234);

    // For a KVM without APX, and for a bare layout (no KVM known), APX is
    // not pinned: its bit would make KVM_SET_XSAVE fail with EINVAL.
    for to in [p("no-apx.json"), "intel-diamond-rapids".to_string()] {
        let area = decode(&to, "plain.bin");
        let view = XsaveView::new(&area[..], dmr()).unwrap();
        assert!(!view.is_live(ComponentId::APX), "{to}");
        assert!(view.is_live(ComponentId::PKRU), "{to}");
        let mut vcpu = without.create_vcpu(dmr().xcr0_supported());
        vcpu.set_xsave(&area).unwrap();
    }
}

#[cfg(target_arch = "x86_64")]
mod real {
    use super::*;
    use xstate::kvm::apx::{egprs, in_64bit_mode, may_use_egprs};
    use xstate::kvm::guest::TestVm;
    use xstate::kvm::{get_xcr0, set_xcr0, GprError, Gprs, XstateBuffer};

    #[test]
    fn real_kvm_here_offers_no_apx_and_gprs_refuse_r16() {
        let Some(vm) = common::vm("real KVM: APX offered or refused") else {
            return;
        };
        let caps = vm.caps();
        assert_eq!(caps.pinned(), caps.offer().pinned());
        assert_eq!(
            caps.offer().guest_apx(),
            caps.guest_xcr0().contains(ComponentId::APX)
        );
        if caps.guest_xcr0().contains(ComponentId::APX) {
            common::note(&format!(
                "KVM here offers guests APX (guest XCR0 {:#x}): testing it for real",
                caps.guest_xcr0()
            ));
            return real_kvm_with_apx(vm);
        }
        let guest_xcr0 = caps.guest_xcr0();
        common::note(&format!(
            "KVM here offers guests XCR0 {guest_xcr0:#x}, without APX (host layout {:#x})",
            caps.layout().xcr0_supported()
        ));
        assert!(!caps.pinned().contains(ComponentId::APX));
        let vcpu = vm.vcpu();
        let xcr0 = get_xcr0(vcpu).unwrap();
        let decided = egprs(vcpu, caps).unwrap();
        assert_eq!(decided, caps.egprs(xcr0));
        let want = ApxError::NotOfferedByKvm { guest_xcr0 };
        assert_eq!(decided.check(), Err(want));
        // Even a vCPU XCR0 asking for APX gives the same answer: KVM decides.
        assert_eq!(caps.egprs(xcr0.with(ComponentId::APX)).check(), Err(want));

        let mut state = XstateBuffer::new(caps).unwrap();
        state.save(vcpu).unwrap();
        let before = state.as_bytes().to_vec();
        let mut regs = vcpu.get_regs().unwrap();
        let rbx = regs.rbx;
        {
            let mut view = state.view_mut(caps.layout()).unwrap();
            let mut gprs = Gprs::new(&mut regs, &mut view, decided);
            let e = gprs.get(16).unwrap_err();
            assert_eq!(e, GprError::Egprs(want));
            assert!(
                e.to_string()
                    .contains(&format!("KVM offers guests XCR0 {guest_xcr0:#x}")),
                "{e}"
            );
            assert_eq!(gprs.set_by_name("r31", 1).unwrap_err(), e);
            assert_eq!(gprs.get(3).unwrap(), rbx);
        }
        assert_eq!(
            state.as_bytes(),
            &before[..],
            "a refused write changes nothing"
        );

        // The emulator's rule on the real vCPU: the test VM runs 64-bit
        // code, and still no instruction may name r16..r31 here.
        let sregs = vcpu.get_sregs().unwrap();
        assert!(in_64bit_mode(&sregs));
        assert_eq!(may_use_egprs(&sregs, decided), Err(want));
        // And KVM_SET_XCRS refuses XCR0[19] here.
        assert!(set_xcr0(vcpu, xcr0.with(ComponentId::APX)).is_err());
        assert_eq!(get_xcr0(vcpu).unwrap(), xcr0);
    }

    /// The rules on a host whose KVM offers guests APX (none so far).
    fn real_kvm_with_apx(vm: TestVm) {
        let (caps, vcpu) = (vm.caps(), vm.vcpu());
        assert!(caps.pinned().contains(ComponentId::APX));
        let xcr0 = get_xcr0(vcpu).unwrap().with(ComponentId::APX);
        set_xcr0(vcpu, xcr0).unwrap();
        let decided = egprs(vcpu, caps).unwrap();
        assert!(decided.is_present());
        assert_eq!(may_use_egprs(&vcpu.get_sregs().unwrap(), decided), Ok(()));
        let mut state = XstateBuffer::new(caps).unwrap();
        state.save(vcpu).unwrap();
        let mut regs = vcpu.get_regs().unwrap();
        {
            let mut view = state.view_mut(caps.layout()).unwrap();
            assert!(view.is_live(ComponentId::APX), "GET sets XSTATE_BV[19]");
            let mut gprs = Gprs::new(&mut regs, &mut view, decided);
            assert_eq!(gprs.get(20).unwrap(), 0);
            gprs.set(20, 0x1234).unwrap();
        }
        state.restore(vcpu, caps).unwrap();
        state.save(vcpu).unwrap();
        assert_eq!(state.view(caps.layout()).unwrap().r(20).unwrap(), 0x1234);
        // A pinned load of an APX-init state zeroes r16..r31.
        state.load(&RegisterFile::new(), caps).unwrap();
        assert!(state.view(caps.layout()).unwrap().is_live(ComponentId::APX));
        state.restore(vcpu, caps).unwrap();
        state.save(vcpu).unwrap();
        assert_eq!(state.view(caps.layout()).unwrap().r(20).unwrap(), 0);
    }
}
