//! Real guests on `/dev/kvm`: state moves between a running guest and the
//! views. Skipped, with the reason printed, only where `/dev/kvm` is absent
//! or unusable; parts the instruction emulator lacks are skipped likewise.

mod common;

use xstate::kvm::guest::{program, Exit, TestVm, INPUT, OUTPUT};
use xstate::kvm::{preflight, PkruOnClearBit, XstateBuffer};
use xstate::prelude::*;
use xstate::{ComponentId, RegisterFile};

fn vm(part: &str) -> Option<TestVm> {
    common::vm(part)
}

fn pattern(seed: u8) -> Vec<u8> {
    (0..256)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

fn xmm_of(bytes: &[u8], i: usize) -> u128 {
    u128::from_le_bytes(bytes[16 * i..16 * i + 16].try_into().unwrap())
}

#[test]
fn guest_xmm_registers_move_through_the_views() {
    let Some(mut vm) = vm("guest xmm0-15 through the views") else {
        return;
    };
    let layout = vm.caps().layout().clone();
    // 1. The guest loads known patterns into xmm0..xmm15 and halts.
    let input = pattern(0x31);
    vm.write(INPUT, &input);
    vm.load(&program::load_xmm(INPUT)).unwrap();
    assert_eq!(vm.run().unwrap(), Exit::Hlt);
    let mut state = XstateBuffer::new(vm.caps()).unwrap();
    state.save(vm.vcpu()).unwrap();
    let view = state.view(&layout).unwrap();
    for i in 0..16 {
        assert_eq!(
            view.xmm(i).unwrap(),
            xmm_of(&input, i),
            "xmm{i} as the guest loaded it"
        );
    }
    // 2. The VMM writes new values through the write view; the guest stores
    //    them to memory.
    let mut view = state.view_mut(&layout).unwrap();
    for i in 0..16 {
        view.set_xmm(i, 0x5EED_0000_0000_0000_0000_0000_0000_0000 | i as u128)
            .unwrap();
    }
    state.restore(vm.vcpu(), vm.caps()).unwrap();
    vm.load(&program::store_xmm(OUTPUT)).unwrap();
    assert_eq!(vm.run().unwrap(), Exit::Hlt);
    let out = vm.read(OUTPUT, 256);
    for i in 0..16 {
        assert_eq!(
            xmm_of(&out, i),
            0x5EED_0000_0000_0000_0000_0000_0000_0000 | i as u128,
            "xmm{i} in guest memory"
        );
    }
}

#[test]
fn avx_and_x87_guest_parts_run_where_the_cpu_or_emulator_can() {
    let Some(mut vm) = vm("AVX and x87 guest parts") else {
        return;
    };
    let layout = vm.caps().layout().clone();
    let input = pattern(0x44);
    vm.write(INPUT, &input);
    // AVX: a VEX load of ymm0.
    vm.load(&program::avx_probe(INPUT)).unwrap();
    match vm.run().unwrap() {
        Exit::Hlt => {
            let mut state = XstateBuffer::new(vm.caps()).unwrap();
            state.save(vm.vcpu()).unwrap();
            let view = state.view(&layout).unwrap();
            let ymm = view.ymm(0).unwrap();
            assert_eq!(
                ymm,
                [xmm_of(&input, 0), xmm_of(&input, 1)],
                "ymm0 as the guest loaded it"
            );
            assert!(view.is_live(ComponentId::AVX));
        }
        other => common::skip(
            "AVX guest part",
            &format!(
                "KVM cannot run a VEX instruction here ({other}); on this host KVM emulates guests"
            ),
        ),
    }
    // x87: FLD of an 80-bit value.
    let Some(mut vm) = self::vm("x87 guest part") else {
        return;
    };
    let one = [0, 0, 0, 0, 0, 0, 0, 0x80, 0xFF, 0x3F]; // 1.0
    vm.write(INPUT, &one);
    vm.load(&program::x87_probe(INPUT)).unwrap();
    match vm.run().unwrap() {
        Exit::Hlt => {
            let mut state = XstateBuffer::new(vm.caps()).unwrap();
            state.save(vm.vcpu()).unwrap();
            let view = state.view(&layout).unwrap();
            assert_eq!(view.st(0).unwrap(), one, "st0 as the guest loaded it");
        }
        other => common::skip(
            "x87 guest part",
            &format!("KVM cannot run an x87 load here ({other}); on this host KVM emulates guests"),
        ),
    }
}

/// The bytes of component `i` that hold architectural state (x87 and SSE:
/// the whole legacy image; PKRU: its 4 bytes, not the reserved 4..8).
fn architectural(regs: &RegisterFile, i: ComponentId) -> Option<Vec<u8>> {
    let bytes = regs.component(i)?;
    let reserved = i.reserved_bytes();
    Some(
        bytes
            .iter()
            .enumerate()
            .filter(|(n, _)| !reserved.contains(n))
            .map(|(_, b)| *b)
            .collect(),
    )
}

#[test]
fn every_supported_component_round_trips_through_kvm() {
    let Some(vm) = vm("component round trip through KVM") else {
        return;
    };
    let caps = vm.caps();
    let layout = caps.layout().clone();
    let guest = caps.guest_xcr0() & layout.xcr0_supported();
    let mut state = XstateBuffer::new(caps).unwrap();
    state.save(vm.vcpu()).unwrap();
    // Fill every component KVM supports for guests with a pattern; the
    // reserved bytes of PKRU get one too, and must not matter.
    let mut regs = RegisterFile::new();
    for i in guest {
        let size = if i.is_legacy() {
            512
        } else {
            layout.geometry(i).unwrap().size as usize
        };
        let mut bytes: Vec<u8> = (0..size)
            .map(|b| (b as u8).wrapping_mul(13).wrapping_add(i.index()) | 1)
            .collect();
        if i == ComponentId::PKRU {
            // Key 0 stays accessible.
            bytes[..4].copy_from_slice(&0x5555_5554u32.to_le_bytes());
        }
        regs.set_component(i, &bytes).unwrap();
    }
    regs.set_mxcsr(0x1F80 | 0x8000).unwrap();
    regs.set_fcw(0x037F).unwrap();
    {
        let mut view = state.view_mut(&layout).unwrap();
        regs.write_to(&mut view).unwrap();
    }
    preflight(state.as_bytes(), &caps.set_xsave_rules()).unwrap();
    state.restore(vm.vcpu(), caps).unwrap();
    let mut back = XstateBuffer::new(caps).unwrap();
    back.save(vm.vcpu()).unwrap();
    let got = RegisterFile::from_view(&back.view(&layout).unwrap()).unwrap();
    let mut compared = Vec::new();
    for i in guest.extended() {
        assert_eq!(
            architectural(&got, i),
            architectural(&regs, i),
            "{i} (component {}) after the KVM round trip",
            i.index()
        );
        compared.push(i.to_string());
    }
    for reg in xstate::Register::all() {
        if let Ok(v) = regs.read(reg) {
            if matches!(
                reg,
                xstate::Register::Fip | xstate::Register::Fdp | xstate::Register::Fop
            ) {
                continue;
            }
            let in_guest = layout
                .geometry(reg.pieces().0[0].component)
                .is_some_and(|g| guest.contains(g.id));
            if in_guest {
                assert_eq!(got.read(reg).unwrap(), v, "{reg} after KVM round trip");
            }
        }
    }
    common::note(&format!(
        "components round-tripped through KVM (guest XCR0 {guest:#x}): x87, SSE, {}",
        compared.join(", ")
    ));

    // Components set init come back init.
    {
        let mut view = state.view_mut(&layout).unwrap();
        for c in [
            ComponentId::AVX,
            ComponentId::ZMM_HI256,
            ComponentId::HI16_ZMM,
            ComponentId::OPMASK,
        ] {
            if guest.contains(c) {
                view.set_init(c);
            }
        }
    }
    state.restore(vm.vcpu(), caps).unwrap();
    back.save(vm.vcpu()).unwrap();
    let view = back.view(&layout).unwrap();
    for c in [
        ComponentId::AVX,
        ComponentId::ZMM_HI256,
        ComponentId::HI16_ZMM,
        ComponentId::OPMASK,
    ] {
        if guest.contains(c) {
            assert!(!view.is_live(c), "{c:?} came back live");
        }
    }
    if guest.contains(ComponentId::AVX) {
        assert_eq!(view.ymm(3).unwrap()[1], 0);
    }
}

#[test]
fn pkru_with_its_bit_clear_behaves_as_probed() {
    let Some(vm) = vm("PKRU with its XSTATE_BV bit clear") else {
        return;
    };
    let caps = vm.caps();
    let Some(probed) = caps.behaviour().pkru else {
        assert!(!caps.guest_xcr0().contains(ComponentId::PKRU));
        return common::skip(
            "PKRU with its XSTATE_BV bit clear",
            &format!(
                "KVM on this host offers guests no PKRU (guest XCR0 {:#x})",
                caps.guest_xcr0()
            ),
        );
    };
    let layout = caps.layout().clone();
    let at = layout.offset(ComponentId::PKRU).unwrap() as usize;
    let mut state = XstateBuffer::new(caps).unwrap();
    state.save(vm.vcpu()).unwrap();
    state
        .view_mut(&layout)
        .unwrap()
        .set_pkru(0x5555_5554)
        .unwrap();
    // Reserved bytes 4..8 with a pattern, written behind the view's back.
    state.as_bytes_mut()[at + 4..at + 8].copy_from_slice(&[1, 2, 3, 4]);
    state.restore(vm.vcpu(), caps).unwrap();
    let mut back = XstateBuffer::new(caps).unwrap();
    back.save(vm.vcpu()).unwrap();
    assert_eq!(back.view(&layout).unwrap().pkru().unwrap(), 0x5555_5554);
    assert_eq!(
        back.as_bytes()[at + 4..at + 8] == [1, 2, 3, 4],
        probed.keeps_reserved_bytes,
        "PKRU bytes 4..8 as the probe measured"
    );

    // Now a buffer with the PKRU bit clear and other bytes there.
    let mut view = state.view_mut(&layout).unwrap();
    view.set_pkru(0x1234_5670).unwrap();
    view.set_init(ComponentId::PKRU);
    state.restore(vm.vcpu(), caps).unwrap();
    back.save(vm.vcpu()).unwrap();
    let expected = match probed.on_clear_bit {
        PkruOnClearBit::Reset => 0,
        PkruOnClearBit::Kept => 0x5555_5554,
        PkruOnClearBit::Loaded => 0x1234_5670,
        PkruOnClearBit::Other(v) => v,
    };
    assert_eq!(
        back.view(&layout).unwrap().pkru().unwrap(),
        expected,
        "PKRU after KVM_SET_XSAVE with its bit clear: the probe said {}",
        probed.on_clear_bit
    );
    common::note(&format!(
        "PKRU with its bit clear on Linux {}: {} (probed and confirmed)",
        caps.kernel_release(),
        probed.on_clear_bit
    ));

    // A state loaded with `load` sends PKRU with its bit set: init PKRU
    // arrives as 0 whatever the kernel does with a clear bit.
    state
        .view_mut(&layout)
        .unwrap()
        .set_pkru(0x5555_5554)
        .unwrap();
    state.restore(vm.vcpu(), caps).unwrap();
    let init = RegisterFile::new();
    state.load(&init, caps).unwrap();
    assert!(state.view(&layout).unwrap().is_live(ComponentId::PKRU));
    state.restore(vm.vcpu(), caps).unwrap();
    back.save(vm.vcpu()).unwrap();
    assert_eq!(back.view(&layout).unwrap().pkru().unwrap(), 0);
}

#[test]
fn kvm_behaviour_is_measured_not_assumed() {
    let Some(vm) = vm("KVM behaviour probe") else {
        return;
    };
    let caps = vm.caps();
    let host = caps.layout();
    let b = caps.behaviour();
    // The MXCSR mask KVM enforces is the one the host CPU reports.
    assert_eq!(b.mxcsr_mask, host.mxcsr_mask(), "measured vs FXSAVE");
    assert_eq!(b.mxcsr_mask & 0xFFBF, 0xFFBF);
    assert!(host.xcr0_supported().contains_all(caps.guest_xcr0()));
    assert!(caps.guest_xcr0().contains_all(xstate::Xfeatures::LEGACY));
    assert!(caps.buffer_size() >= 4096);
    assert_eq!(
        b.pkru.is_some(),
        caps.guest_xcr0().contains(ComponentId::PKRU)
    );
    let amx = caps.amx();
    assert!(!amx.offered || (amx.host && amx.permitted), "{amx:?}");
    if amx.offered {
        assert!(caps.buffer_size() >= host.standard_size() as usize);
    }
    // Measured once per process: a second probe gives the same answers.
    let again = xstate::kvm::KvmCaps::probe(&kvm_ioctls::Kvm::new().unwrap()).unwrap();
    assert_eq!(again.behaviour(), b);
    common::note(&format!(
        "KVM on Linux {}: guest XCR0 {:#x}, buffer {} bytes (host layout {}), MXCSR mask {:#x}, AMX: {}, PKRU: {}",
        caps.kernel_release(),
        caps.guest_xcr0(),
        caps.buffer_size(),
        host.standard_size(),
        b.mxcsr_mask,
        amx,
        b.pkru.map_or("not offered".to_string(), |p| format!("clear bit -> {}", p.on_clear_bit)),
    ));
}
