//! `check_host`: what a destination's CPU, its KVM and the guest's CPU model
//! refuse, for the state and for the vCPU's registers.

use xstate::layout::catalog;
use xstate::migrate::{check_host, Guest, Incompatibility, Refuser};
use xstate::prelude::*;
use xstate::profile::{HostProfile, KvmOffer};
use xstate::xregs::Xreg;
use xstate::{ComponentId, RegisterFile, Xfeatures};

fn x(bits: u64) -> Xfeatures {
    Xfeatures::from_bits(bits)
}

fn host(name: &str, kvm: Option<KvmOffer>) -> HostProfile {
    HostProfile {
        layout: catalog::get(name).unwrap().clone(),
        kvm,
    }
}

fn vcpu(xcr0: u64, xss: u64, xfd: u64) -> Guest {
    Guest {
        xcr0: Some(x(xcr0)),
        model_xcr0: None,
        xss: Some(x(xss)),
        xfd: x(xfd),
    }
}

/// The register reasons of a report, as (register, unsupported, refuser).
fn registers(report: &xstate::migrate::CheckReport) -> Vec<(Xreg, u64, Refuser)> {
    report
        .incompatibilities
        .iter()
        .filter_map(|i| match i {
            Incompatibility::Register {
                register,
                unsupported,
                by,
                ..
            } => Some((*register, unsupported.bits(), *by)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_vcpu_xcr0_beyond_the_destination_cpu_is_refused_even_with_init_state() {
    // An Intel AVX-512 guest (XCR0 0xe7) to an AMD Zen 3 CPU (0x207): the
    // state is all init, yet XCR0 cannot be set there.
    let zen3 = host("amd-zen3", None);
    let report = check_host(&RegisterFile::new(), &zen3, &vcpu(0xe7, 0, 0));
    assert!(!report.is_compatible());
    assert_eq!(report.kvm, None);
    assert_eq!(
        registers(&report),
        [(
            Xreg::Xcr0,
            0xe0,
            Refuser::Cpu {
                supported: x(0x207)
            }
        )]
    );
    assert_eq!(
        report.incompatibilities[0].to_string(),
        "the vCPU's XCR0 0xe7 enables 0xe0, which the destination CPU does not support (it has 0x207)"
    );
    // The same vCPU with XCR0 0x7 goes.
    assert!(check_host(&RegisterFile::new(), &zen3, &vcpu(0x7, 0, 0)).is_compatible());
}

#[test]
fn kvm_and_the_cpu_model_limit_xcr0() {
    let spr = catalog::get("intel-sapphire-rapids").unwrap();
    let kvm = KvmOffer::new(x(0x2e7), 4096, 0xffff);
    let dest = host("intel-sapphire-rapids", Some(kvm));
    // AMX enabled in XCR0: the CPU has it, KVM does not offer it. The
    // area itself (all init) KVM_SET_XSAVE takes: its verdict is on the
    // area, KVM_SET_XCRS is what refuses.
    let report = check_host(&RegisterFile::new(), &dest, &vcpu(0x602e7, 0, 0));
    assert!(!report.is_compatible());
    assert_eq!(report.kvm, Some(true));
    assert_eq!(
        registers(&report),
        [(Xreg::Xcr0, 0x60000, Refuser::Kvm { offered: x(0x2e7) })]
    );
    // The guest's CPU model exposes no PKU, its XCR0 has PKRU.
    let guest = Guest {
        model_xcr0: Some(x(0xe7)),
        ..vcpu(0x2e7, 0, 0)
    };
    let report = check_host(&RegisterFile::new(), &dest, &guest);
    assert_eq!(
        registers(&report),
        [(Xreg::Xcr0, 0x200, Refuser::Model { exposed: x(0xe7) })]
    );
    assert!(spr.xcr0_supported().contains(ComponentId::PKRU));
}

#[test]
fn xss_and_xfd_are_judged_against_the_cpu_and_kvm() {
    // IA32_XSS with CET user state, to a KVM offering guests no supervisor
    // state; IA32_XFD on AMX tile data under a KVM without XFD.
    let kvm = KvmOffer::new(x(0x602e7), 12288, 0xffff);
    let spr = host("intel-sapphire-rapids", Some(kvm.clone()));
    let report = check_host(&RegisterFile::new(), &spr, &vcpu(0x602e7, 0x800, 0x40000));
    let found = registers(&report);
    assert!(
        found.contains(&(Xreg::Xss, 0x800, Refuser::Kvm { offered: x(0) })),
        "{found:?}"
    );
    assert!(
        found.contains(&(Xreg::Xfd, 0x40000, Refuser::Kvm { offered: x(0) })),
        "{found:?}"
    );
    assert!(report.incompatibilities.iter().any(|i| i
        .to_string()
        .ends_with("KVM on the destination cannot set: it offers guests no XFD")));
    // With XFD offered, disabling tile data is fine; disabling PKRU (not
    // XFD-capable anywhere) is not.
    let with_xfd = KvmOffer {
        guest_xfd: true,
        guest_xss: x(0x800),
        ..kvm
    };
    let spr = host("intel-sapphire-rapids", Some(with_xfd));
    let ok = check_host(&RegisterFile::new(), &spr, &vcpu(0x602e7, 0, 0x40000));
    assert!(ok.is_compatible(), "{:?}", ok.incompatibilities);
    let report = check_host(&RegisterFile::new(), &spr, &vcpu(0x602e7, 0, 0x200));
    assert_eq!(
        registers(&report),
        [
            (
                Xreg::Xfd,
                0x200,
                Refuser::Cpu {
                    supported: x(0x40000)
                }
            ),
            (
                Xreg::Xfd,
                0x200,
                Refuser::Kvm {
                    offered: x(0x40000)
                }
            ),
        ]
    );
}

#[test]
fn pkru_outside_the_vcpu_xcr0_is_kept_and_judged() {
    // CR4.PKE reaches PKRU without XCR0[9]: the state carries it, and a
    // destination without PKU is told so instead of it being dropped.
    let mut state = RegisterFile::new();
    state.set_pkru(0x5555_5554).unwrap();
    let zen3 = host("amd-zen3", None);
    let report = check_host(&state, &zen3, &vcpu(0x7, 0, 0));
    assert!(report.masked.is_empty());
    assert!(report.is_compatible(), "{:?}", report.incompatibilities);
    let no_pku = HostProfile::from(xstate::Layout::legacy_only(
        "no-pku",
        "GenuineIntel",
        "test",
    ));
    let report = check_host(&state, &no_pku, &vcpu(0x3, 0, 0));
    assert!(report.masked.is_empty());
    assert_eq!(
        report.incompatibilities,
        [Incompatibility::MissingComponent(ComponentId::PKRU)]
    );
}
