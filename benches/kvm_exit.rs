//! Exit latency on a real vCPU: what syncing XSAVE state costs on a hot VM
//! exit path, and xstate's own share of it.
//!
//! Run: `cargo bench --bench kvm_exit` (skipped where /dev/kvm is absent).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use xstate::kvm::guest::{program, Exit, TestVm, OUTPUT};
use xstate::kvm::{preflight, XstateBuffer};
use xstate::prelude::*;

fn exit_once(vm: &mut TestVm) {
    match vm.run().expect("KVM_RUN") {
        Exit::IoOut(_) => {}
        other => panic!("unexpected exit {other:?}"),
    }
}

fn kvm_exit(c: &mut Criterion) {
    let mut vm = match TestVm::new() {
        Ok(vm) => vm,
        Err(e) => return eprintln!("skipped: /dev/kvm is absent or unusable: {e}"),
    };
    vm.load(&program::exit_loop(OUTPUT, 0x10)).unwrap();
    let caps = vm.caps().clone();
    let layout = caps.layout().clone();
    let rules = caps.set_xsave_rules();
    let mut state = XstateBuffer::new(&caps).unwrap();
    state.save(vm.vcpu()).unwrap();

    let mut g = c.benchmark_group("kvm exit");
    g.bench_function("exit only (KVM_RUN -> PIO exit -> resume)", |b| {
        b.iter(|| exit_once(&mut vm))
    });
    g.bench_function("exit + KVM_GET_XSAVE2", |b| {
        b.iter(|| {
            exit_once(&mut vm);
            state.save(vm.vcpu()).unwrap();
        })
    });
    // An exit that only reads: sync issues no KVM_SET_XSAVE.
    g.bench_function("exit + GET + view read + sync (no SET)", |b| {
        b.iter(|| {
            exit_once(&mut vm);
            state.save(vm.vcpu()).unwrap();
            let view = state.view(&layout).unwrap();
            black_box(view.xmm(0).unwrap());
            assert!(!state.sync(vm.vcpu(), &caps).unwrap());
        })
    });
    g.bench_function(
        "exit + GET + view read/write + sync (pre-flight + SET)",
        |b| {
            b.iter(|| {
                exit_once(&mut vm);
                state.save(vm.vcpu()).unwrap();
                let mut view = state.view_mut(&layout).unwrap();
                let x = view.xmm(0).unwrap();
                view.set_xmm(0, x.wrapping_add(1)).unwrap();
                assert!(state.sync(vm.vcpu(), &caps).unwrap());
            })
        },
    );
    g.bench_function("exit + GET + view read/write + pre-flight + SET", |b| {
        b.iter(|| {
            exit_once(&mut vm);
            state.save(vm.vcpu()).unwrap();
            let mut view = state.view_mut(&layout).unwrap();
            let x = view.xmm(0).unwrap();
            view.set_xmm(0, x.wrapping_add(1)).unwrap();
            state.restore(vm.vcpu(), &caps).unwrap();
        })
    });
    g.bench_function("xstate only: view open + read + write + pre-flight", |b| {
        b.iter(|| {
            let mut view = state.view_mut(&layout).unwrap();
            let x = view.xmm(0).unwrap();
            view.set_xmm(0, x.wrapping_add(1)).unwrap();
            black_box(preflight(state.as_bytes(), &rules)).unwrap();
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(300))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = kvm_exit
}
criterion_main!(benches);
