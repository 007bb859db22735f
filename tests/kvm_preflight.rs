//! The pre-flight check against the real kernel: for every generated buffer,
//! `preflight` and `KVM_SET_XSAVE` on a live vCPU must give the same verdict.

mod common;

use xstate::kvm::{preflight, KvmError, XstateBuffer};
use xstate::Xfeatures;

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

const CASES: usize = 12_000;

fn put_u64(buf: &mut [u8], at: usize, v: u64) {
    buf[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn put_u32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Applies one mutation of the given class to a valid buffer.
fn mutate(rng: &mut Rng, buf: &mut [u8], class: u64, guest_xcr0: u64, mask: u32) {
    let interesting_bits = [0u64, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 17, 18, 19, 62, 63];
    match class {
        // A fully random XSTATE_BV.
        0 => put_u64(buf, 512, rng.next()),
        // A subset of the supported bits, sometimes with one more.
        1 => {
            let mut bv = rng.next() & guest_xcr0;
            if rng.below(3) == 0 {
                bv |= 1 << rng.pick(&interesting_bits);
            }
            put_u64(buf, 512, bv);
        }
        // XCOMP_BV: bit 63, a low bit, or random.
        2 => {
            let v = match rng.below(4) {
                0 => 1 << 63,
                1 => 1 << rng.pick(&interesting_bits),
                2 => (1 << 63) | guest_xcr0,
                _ => rng.next(),
            };
            put_u64(buf, 520, v);
        }
        // One reserved header byte, zero or not.
        3 => {
            let at = 528 + rng.below(48) as usize;
            buf[at] = if rng.below(5) == 0 {
                0
            } else {
                rng.next() as u8 | 1
            };
        }
        // MXCSR, inside or outside the mask, with XSTATE_BV having or not
        // having x87 / SSE / AVX.
        4 => {
            let mxcsr = match rng.below(4) {
                0 => rng.next() as u32,
                1 => (rng.next() as u32) & mask,
                2 => 0x1F80 | 1 << rng.below(32),
                _ => 0x1F80 | 0x2_0000,
            };
            put_u32(buf, 24, mxcsr);
            let bv = rng.pick(&[0u64, 1, 2, 4, 3, 7, 0x20, 0x40, 0xE0, 0x200, 0xE7])
                & (guest_xcr0 | 0x200);
            put_u64(buf, 512, bv);
        }
        // Bytes KVM ignores: software bytes, reserved legacy bytes, MXCSR_MASK.
        5 => {
            let at = match rng.below(3) {
                0 => 464 + rng.below(48) as usize,
                1 => 416 + rng.below(48) as usize,
                _ => 28 + rng.below(4) as usize,
            };
            buf[at] = rng.next() as u8;
        }
        // Register contents anywhere past the header.
        _ => {
            let at = 576 + rng.below((buf.len() - 576) as u64) as usize;
            buf[at] = rng.next() as u8;
        }
    }
}

/// A vCPU CPUID configuration: KVM's supported CPUID with some XSAVE
/// features hidden from the guest.
struct Config {
    name: &'static str,
    /// Components hidden from the guest's leaf 0xD sub-leaf 0.
    hidden: u64,
    /// (leaf, sub-leaf, register index 0..4 for EAX..EDX, bit) flags cleared.
    flags: &'static [(u32, u32, usize, u32)],
}

const CONFIGS: [Config; 4] = [
    Config {
        name: "KVM's supported CPUID",
        hidden: 0,
        flags: &[],
    },
    Config {
        name: "AVX-512 hidden",
        hidden: 0xE0,
        // Leaf 7.0 EBX AVX512F (16), AVX512DQ (17), AVX512CD (28), BW (30), VL (31).
        flags: &[
            (7, 0, 1, 16),
            (7, 0, 1, 17),
            (7, 0, 1, 28),
            (7, 0, 1, 30),
            (7, 0, 1, 31),
        ],
    },
    Config {
        name: "PKU hidden",
        hidden: 0x200,
        // Leaf 7.0 ECX PKU (3) and OSPKE (4).
        flags: &[(7, 0, 2, 3), (7, 0, 2, 4)],
    },
    Config {
        name: "AVX-512 and PKU hidden",
        hidden: 0x2E0,
        flags: &[
            (7, 0, 1, 16),
            (7, 0, 1, 17),
            (7, 0, 1, 28),
            (7, 0, 1, 30),
            (7, 0, 1, 31),
            (7, 0, 2, 3),
            (7, 0, 2, 4),
        ],
    },
];

/// Cases per vCPU configuration: 4 configurations make 16,000 buffers.
const CASES_PER_CONFIG: usize = CASES / 3;

fn hide(entries: &mut [kvm_bindings::kvm_cpuid_entry2], config: &Config) -> u64 {
    let mut xcr0 = 0;
    for e in entries.iter_mut() {
        if e.function == 0xD && e.index == 0 {
            e.eax &= !(config.hidden as u32);
            e.edx &= !((config.hidden >> 32) as u32);
            xcr0 = u64::from(e.edx) << 32 | u64::from(e.eax);
        }
        for &(leaf, sub, reg, bit) in config.flags {
            if e.function == leaf && e.index == sub {
                let r = [&mut e.eax, &mut e.ebx, &mut e.ecx, &mut e.edx];
                let [a, b, c, d] = r;
                let r = match reg {
                    0 => a,
                    1 => b,
                    2 => c,
                    _ => d,
                };
                *r &= !(1 << bit);
            }
        }
    }
    xcr0
}

#[test]
fn preflight_agrees_with_kvm_set_xsave_on_every_buffer() {
    const PART: &str = "pre-flight against KVM_SET_XSAVE";
    let Some(_) = common::vm(PART) else {
        return;
    };
    let kvm = kvm_ioctls::Kvm::new().unwrap();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut total = 0;
    for config in &CONFIGS {
        let mut cpuid_xcr0 = 0;
        let vm =
            xstate::kvm::guest::TestVm::with_cpuid(&kvm, |e| cpuid_xcr0 = hide(e, config)).unwrap();
        let caps = vm.caps();
        // The rules for this vCPU on this kernel: from 6.6 on XSTATE_BV is
        // checked against KVM's guest XCR0; on 6.0-6.5 against the vCPU's CPUID.
        let rules = caps
            .offer()
            .set_xsave_rules_for(Xfeatures::from_bits(cpuid_xcr0), Xfeatures::EMPTY);
        let mut base = XstateBuffer::new(caps).unwrap();
        base.save(vm.vcpu()).unwrap();
        let mut state = XstateBuffer::new(caps).unwrap();
        let (mut accepted, mut rejected) = (0usize, 0usize);
        for case in 0..CASES_PER_CONFIG {
            state.as_bytes_mut().copy_from_slice(base.as_bytes());
            let buf = state.as_bytes_mut();
            // One to three mutations; every eighth buffer is left valid.
            if case % 8 != 0 {
                for _ in 0..1 + rng.below(3) {
                    let class = rng.below(7);
                    mutate(
                        &mut rng,
                        buf,
                        class,
                        rules.guest_xcr0.bits(),
                        rules.mxcsr_mask,
                    );
                }
            }
            let predicted = preflight(state.as_bytes(), &rules);
            let actual = state.restore_unchecked(vm.vcpu());
            match (&predicted, &actual) {
                (Ok(_), Ok(())) => accepted += 1,
                (Err(_), Err(KvmError::Ioctl { source, .. })) if source.errno() == libc::EINVAL => {
                    rejected += 1
                }
                _ => panic!(
                    "{}, case {case}: pre-flight said {predicted:?}, KVM_SET_XSAVE said {actual:?}; \
                     XSTATE_BV {:#x} XCOMP_BV {:#x} MXCSR {:#x}",
                    config.name,
                    u64::from_le_bytes(state.as_bytes()[512..520].try_into().unwrap()),
                    u64::from_le_bytes(state.as_bytes()[520..528].try_into().unwrap()),
                    u32::from_le_bytes(state.as_bytes()[24..28].try_into().unwrap()),
                ),
            }
        }
        let agreed = accepted + rejected;
        common::note(&format!(
            "{}: {agreed} of {CASES_PER_CONFIG} KVM_SET_XSAVE verdicts agreed with the pre-flight check \
             ({accepted} accepted, {rejected} rejected; guest XCR0 {}, vCPU CPUID XCR0 {cpuid_xcr0:#x}, \
             MXCSR mask {:#x}, buffer {} bytes, Linux {})",
            config.name,
            rules.guest_xcr0,
            rules.mxcsr_mask,
            rules.size,
            caps.kernel_release(),
        ));
        assert_eq!(agreed, CASES_PER_CONFIG);
        assert!(
            accepted > 300 && rejected > 300,
            "{}: both verdicts exercised",
            config.name
        );
        total += agreed;
    }
    common::note(&format!(
        "{total} KVM_SET_XSAVE verdicts agreed with the pre-flight check over {} vCPU CPUID configurations",
        CONFIGS.len()
    ));
    assert!(total >= 10_000);
}

#[test]
fn kernel_releases_choose_the_cpuid_rule() {
    use xstate::profile::KvmOffer;
    let mut offer = KvmOffer::new(Xfeatures::from_bits(0x2e7), 4096, 0xffff);
    let cpuid = Xfeatures::from_bits(0x7);
    let mut buf = vec![0u8; 4096];
    // A host's PKRU leaked into a guest whose CPU model has no PKU.
    buf[512..520].copy_from_slice(&0x203u64.to_le_bytes());
    buf[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
    for (release, refused) in [
        ("5.15.0-91-generic", false),
        ("6.0.0", true),
        ("6.5.13-1-pve", true),
        ("6.6.0", false),
        ("6.18.44-fc-v857", false),
        ("", false),
    ] {
        offer.kernel_release = release.into();
        let rules = offer.set_xsave_rules_for(cpuid, Xfeatures::EMPTY);
        assert_eq!(
            matches!(
                preflight(&buf, &rules),
                Err(xstate::preflight::PreflightError::NotInVcpuCpuid { .. })
            ),
            refused,
            "Linux {release}"
        );
    }
    // XFD-disabled components are dropped, reported, not refused.
    offer.guest_xcr0 = Xfeatures::from_bits(0x602e7);
    buf[512..520].copy_from_slice(&0x60003u64.to_le_bytes());
    let rules =
        offer.set_xsave_rules_for(Xfeatures::from_bits(0x602e7), Xfeatures::from_bits(0x40000));
    assert_eq!(
        preflight(&buf, &rules).unwrap().dropped,
        Xfeatures::from_bits(0x40000)
    );
}
