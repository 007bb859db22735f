//! A minimal VMM loop: the guest exits on port I/O; on each exit the VMM
//! reads and changes XMM0 through the view, the way an emulator of a vector
//! MMIO access would, and the guest stores XMM0 to memory before its next
//! exit, so the VMM sees its change arrive.
//!
//! Run: `cargo run --release --example vmm_exit`

use xstate::kvm::guest::{program, Exit, TestVm, OUTPUT};
use xstate::kvm::XstateBuffer;
use xstate::prelude::*;

const PORT: u8 = 0x10;
const EXITS: u32 = 1000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut vm = TestVm::new()?;
    let caps = vm.caps().clone();
    let layout = caps.layout();
    // Guest: 1: movdqu [OUTPUT], xmm0; out PORT, al; jmp 1b
    vm.load(&program::exit_loop(OUTPUT, PORT))?;
    // One buffer, sized from KVM_CAP_XSAVE2, reused on every exit.
    let mut state = XstateBuffer::new(&caps)?;
    let mut expected = None;
    for n in 0..EXITS {
        match vm.run()? {
            Exit::IoOut(port) if port == u16::from(PORT) => {}
            other => return Err(format!("unexpected exit {other:?}").into()),
        }
        // The guest stored XMM0 just before exiting: our last write arrived.
        let stored = u128::from_le_bytes(vm.read(OUTPUT, 16).try_into().expect("16 bytes"));
        if let Some(want) = expected {
            assert_eq!(
                stored, want,
                "exit {n}: the guest did not see the VMM's XMM0"
            );
        }
        state.save(vm.vcpu())?; // KVM_GET_XSAVE2
        let mut view = state.view_mut(layout)?; // O(1), no copy
        let xmm0 = view.xmm(0)?;
        let next = xmm0.wrapping_add(0x0001_0000_0000_0000_0000_0000_0000_0001);
        view.set_xmm(0, next)?;
        state.restore(vm.vcpu(), &caps)?; // pre-flight, then KVM_SET_XSAVE
        expected = Some(next);
    }
    println!(
        "{EXITS} port-I/O exits; XMM0 read and changed through the view on each; guest now holds {:#034x}",
        expected.unwrap_or_default()
    );
    Ok(())
}
