//! Real guests on `/dev/kvm`: state moves between a running guest and the
//! views. Skipped, with the reason printed, only where `/dev/kvm` is absent
//! or unusable; parts the instruction emulator lacks are skipped likewise.

use xstate::kvm::guest::{program, Exit, TestVm, INPUT, OUTPUT};
use xstate::kvm::{preflight, XstateBuffer};
use xstate::{Component, RegisterFile};

fn vm() -> Option<TestVm> {
    if !std::path::Path::new("/dev/kvm").exists() {
        eprintln!("skipped: /dev/kvm is absent");
        return None;
    }
    match TestVm::new() {
        Ok(vm) => Some(vm),
        Err(e) => {
            eprintln!("skipped: /dev/kvm is unusable: {e}");
            None
        }
    }
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
    let Some(mut vm) = vm() else { return };
    let layout = vm.caps().layout().clone();
    // 1. The guest loads known patterns into xmm0..xmm15 and halts.
    let input = pattern(0x31);
    vm.write(INPUT, &input);
    vm.load(&program::load_xmm(INPUT)).unwrap();
    assert_eq!(vm.run().unwrap(), Exit::Hlt);
    let mut state = XstateBuffer::new(vm.caps());
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
    let Some(mut vm) = vm() else { return };
    let layout = vm.caps().layout().clone();
    let input = pattern(0x44);
    vm.write(INPUT, &input);
    // AVX: a VEX load of ymm0.
    vm.load(&program::avx_probe(INPUT)).unwrap();
    match vm.run().unwrap() {
        Exit::Hlt => {
            let mut state = XstateBuffer::new(vm.caps());
            state.save(vm.vcpu()).unwrap();
            let view = state.view(&layout).unwrap();
            let ymm = view.ymm(0).unwrap();
            assert_eq!(ymm, [xmm_of(&input, 0), xmm_of(&input, 1)], "ymm0 as the guest loaded it");
            assert!(view.is_live(Component::Avx));
        }
        other => eprintln!("skipped: AVX guest part: KVM cannot run a VEX instruction here ({other:?}); on this host KVM emulates guests"),
    }
    // x87: FLD of an 80-bit value.
    let Some(mut vm) = self::vm() else { return };
    let one = [0, 0, 0, 0, 0, 0, 0, 0x80, 0xFF, 0x3F]; // 1.0
    vm.write(INPUT, &one);
    vm.load(&program::x87_probe(INPUT)).unwrap();
    match vm.run().unwrap() {
        Exit::Hlt => {
            let mut state = XstateBuffer::new(vm.caps());
            state.save(vm.vcpu()).unwrap();
            let view = state.view(&layout).unwrap();
            assert_eq!(view.st(0).unwrap(), one, "st0 as the guest loaded it");
        }
        other => eprintln!("skipped: x87 guest part: KVM cannot run an x87 load here ({other:?}); on this host KVM emulates guests"),
    }
}

#[test]
fn every_supported_component_round_trips_through_kvm() {
    let Some(vm) = vm() else { return };
    let caps = vm.caps();
    let layout = caps.layout().clone();
    let guest = caps.guest_xcr0() & layout.xcr0_supported();
    let mut state = XstateBuffer::new(caps);
    state.save(vm.vcpu()).unwrap();
    // Fill every component KVM supports for guests with a pattern.
    let mut regs = RegisterFile::new();
    for i in xstate::component::bits(guest) {
        let size = match i {
            0 | 1 => 512,
            _ => layout.geometry(i).unwrap().size as usize,
        };
        let mut bytes: Vec<u8> = (0..size)
            .map(|b| (b as u8).wrapping_mul(13).wrapping_add(i))
            .collect();
        if i == Component::Pkru.index() {
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
    let mut back = XstateBuffer::new(caps);
    back.save(vm.vcpu()).unwrap();
    let got = RegisterFile::from_view(&back.view(&layout).unwrap()).unwrap();
    for i in xstate::component::bits(guest) {
        if i < 2 {
            continue;
        }
        assert_eq!(
            got.component(i),
            regs.component(i),
            "component {i} after KVM round trip"
        );
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
                .is_some_and(|g| guest & 1 << g.index != 0);
            if in_guest {
                assert_eq!(got.read(reg).unwrap(), v, "{reg} after KVM round trip");
            }
        }
    }
    eprintln!("components round-tripped through KVM: {guest:#x}");

    // Components set init come back init.
    {
        let mut view = state.view_mut(&layout).unwrap();
        for c in [
            Component::Avx,
            Component::ZmmHi256,
            Component::Hi16Zmm,
            Component::Opmask,
        ] {
            if guest & c.mask() != 0 {
                view.set_init(c);
            }
        }
    }
    state.restore(vm.vcpu(), caps).unwrap();
    back.save(vm.vcpu()).unwrap();
    let view = back.view(&layout).unwrap();
    for c in [
        Component::Avx,
        Component::ZmmHi256,
        Component::Hi16Zmm,
        Component::Opmask,
    ] {
        if guest & c.mask() != 0 {
            assert!(!view.is_live(c), "{c:?} came back live");
        }
    }
    if guest & Component::Avx.mask() != 0 {
        assert_eq!(view.ymm(3).unwrap()[1], 0);
    }
}

#[test]
fn pkru_is_left_alone_when_its_bit_is_clear() {
    let Some(vm) = vm() else { return };
    let caps = vm.caps();
    if caps.guest_xcr0() & Component::Pkru.mask() == 0 {
        return eprintln!("skipped: PKRU rule: KVM on this host does not support PKRU for guests");
    }
    let layout = caps.layout().clone();
    let mut state = XstateBuffer::new(caps);
    state.save(vm.vcpu()).unwrap();
    state
        .view_mut(&layout)
        .unwrap()
        .set_pkru(0x5555_5554)
        .unwrap();
    state.restore(vm.vcpu(), caps).unwrap();
    // Now a buffer with the PKRU bit clear and other bytes there.
    let mut view = state.view_mut(&layout).unwrap();
    view.set_pkru(0x1234_5678).unwrap();
    view.set_init(Component::Pkru);
    state.restore(vm.vcpu(), caps).unwrap();
    let mut back = XstateBuffer::new(caps);
    back.save(vm.vcpu()).unwrap();
    assert_eq!(back.view(&layout).unwrap().pkru().unwrap(), 0x5555_5554);
}
