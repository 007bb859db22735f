//! The pre-flight check against the real kernel: for every generated buffer,
//! `preflight` and `KVM_SET_XSAVE` on a live vCPU must give the same verdict.

mod common;

use xstate::kvm::{preflight, KvmError, XstateBuffer};

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

#[test]
fn preflight_agrees_with_kvm_set_xsave_on_every_buffer() {
    let Some(vm) = common::vm("pre-flight against KVM_SET_XSAVE") else {
        return;
    };
    let caps = vm.caps();
    let rules = caps.set_xsave_rules();
    let mut base = XstateBuffer::new(caps).unwrap();
    base.save(vm.vcpu()).unwrap();
    let mut state = XstateBuffer::new(caps).unwrap();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut accepted, mut rejected) = (0usize, 0usize);
    for case in 0..CASES {
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
            (Ok(()), Ok(())) => accepted += 1,
            (Err(_), Err(KvmError::Ioctl { source, .. })) if source.errno() == libc::EINVAL => {
                rejected += 1
            }
            _ => panic!(
                "case {case}: pre-flight said {predicted:?}, KVM_SET_XSAVE said {actual:?}; \
                 XSTATE_BV {:#x} XCOMP_BV {:#x} MXCSR {:#x}",
                u64::from_le_bytes(state.as_bytes()[512..520].try_into().unwrap()),
                u64::from_le_bytes(state.as_bytes()[520..528].try_into().unwrap()),
                u32::from_le_bytes(state.as_bytes()[24..28].try_into().unwrap()),
            ),
        }
    }
    let agreed = accepted + rejected;
    common::note(&format!(
        "{agreed} of {CASES} KVM_SET_XSAVE verdicts agreed with the pre-flight check \
         ({accepted} accepted, {rejected} rejected; guest XCR0 {:#x}, MXCSR mask {:#x}, buffer {} bytes)",
        rules.guest_xcr0, rules.mxcsr_mask, rules.size
    ));
    assert_eq!(agreed, CASES);
    assert!(
        accepted > 1000 && rejected > 1000,
        "both verdicts exercised"
    );
}
