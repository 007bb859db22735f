//! `xstate kvm`: KVM's XSAVE capabilities on this host, and pre-flight
//! checks of XSAVE buffers as `KVM_SET_XSAVE` would judge them.

use std::path::PathBuf;
use std::time::Instant;

use kvm_ioctls::Kvm;
use serde_json::json;
use xstate::kvm::guest::TestVm;
use xstate::kvm::{preflight, KvmCaps, XstateBuffer};
use xstate::RegisterFile;

use super::{fail, REJECTED, USAGE};

/// KVM subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum KvmCommand {
    /// KVM's XSAVE capabilities on this host.
    Info {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Judge XSAVE area files as KVM_SET_XSAVE on this host would, without
    /// issuing it.
    Check {
        /// Files holding raw kvm_xsave buffers.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn caps() -> Result<KvmCaps, u8> {
    let kvm = Kvm::new().map_err(|e| fail(USAGE, format_args!("/dev/kvm: {e}")))?;
    KvmCaps::probe(&kvm).map_err(|e| fail(USAGE, e))
}

pub fn run(cmd: &KvmCommand) -> u8 {
    let caps = match caps() {
        Ok(c) => c,
        Err(code) => return code,
    };
    match cmd {
        KvmCommand::Info { json } => {
            if *json {
                let out = json!({
                    "xsave2_size": caps.xsave2_size(),
                    "buffer_size": caps.buffer_size(),
                    "guest_xcr0": format!("{:#x}", caps.guest_xcr0()),
                    "mxcsr_mask": format!("{:#x}", caps.mxcsr_mask()),
                    "amx_permission": caps.amx().to_string(),
                    "host_layout": super::layout::to_json(caps.layout()),
                });
                println!("{}", serde_json::to_string_pretty(&out).expect("json"));
            } else {
                print!("{}", info_text(&caps));
                print!("{}", super::layout::table(caps.layout()));
            }
            0
        }
        KvmCommand::Check { files } => check(&caps, files),
    }
}

fn info_text(caps: &KvmCaps) -> String {
    format!(
        "KVM_CAP_XSAVE2: {}\nXCR0 bits KVM supports for guests: {:#x}\nMXCSR mask: {:#x}\nAMX guest permission: {}\n",
        caps.xsave2_size()
            .map_or("absent (KVM_GET_XSAVE, 4096 bytes)".into(), |s| format!("{s} bytes")),
        caps.guest_xcr0(),
        caps.mxcsr_mask(),
        caps.amx()
    )
}

fn check(caps: &KvmCaps, files: &[PathBuf]) -> u8 {
    let rules = caps.set_xsave_rules();
    let mut status = 0;
    for file in files {
        match std::fs::read(file) {
            Ok(bytes) => match preflight(&bytes, &rules) {
                Ok(()) => println!("{}: ok", file.display()),
                Err(e) => {
                    println!("{}: rejected: {e}", file.display());
                    status = status.max(REJECTED);
                }
            },
            Err(e) => {
                eprintln!("xstate: {}: {e}", file.display());
                status = USAGE;
            }
        }
    }
    status
}

/// The KVM part of `xstate report`: capabilities and a live vCPU save /
/// decode / write / restore round trip with its timing.
pub fn report() -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let mut vm = match TestVm::new() {
        Ok(vm) => vm,
        Err(e) => return format!("skipped: /dev/kvm is absent or unusable: {e}\n"),
    };
    let caps = vm.caps().clone();
    s.push_str(&info_text(&caps));
    let layout = caps.layout();
    let mut state = XstateBuffer::new(&caps);
    let mut run = || -> Result<String, String> {
        let t0 = Instant::now();
        state.save(vm.vcpu()).map_err(|e| e.to_string())?;
        let t1 = Instant::now();
        let regs = RegisterFile::from_view(&state.view(layout).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        let mut view = state.view_mut(layout).map_err(|e| e.to_string())?;
        view.set_xmm(0, 0xC0FFEE).map_err(|e| e.to_string())?;
        view.set_mxcsr(0x1FA0).map_err(|e| e.to_string())?;
        let t2 = Instant::now();
        state.restore(vm.vcpu(), &caps).map_err(|e| e.to_string())?;
        let t3 = Instant::now();
        let mut back = XstateBuffer::new(&caps);
        back.save(vm.vcpu()).map_err(|e| e.to_string())?;
        let view = back.view(layout).map_err(|e| e.to_string())?;
        let ok = view.xmm(0).map_err(|e| e.to_string())? == 0xC0FFEE
            && view.mxcsr().map_err(|e| e.to_string())? == 0x1FA0;
        if !ok {
            return Err("the vCPU did not hold the values written through the view".into());
        }
        // The guest itself sees the value: it stores xmm0 to memory.
        vm.load(&xstate::kvm::guest::program::store_xmm(
            xstate::kvm::guest::OUTPUT,
        ))
        .map_err(|e| e.to_string())?;
        let exit = vm.run().map_err(|e| e.to_string())?;
        let stored = vm.read(xstate::kvm::guest::OUTPUT, 16);
        let guest_ok = exit == xstate::kvm::guest::Exit::Hlt
            && u128::from_le_bytes(stored.try_into().expect("16 bytes")) == 0xC0FFEE;
        Ok(format!(
            "live vCPU: KVM_GET_XSAVE2 {:.1} us, decode + view write {:.2} us, pre-flight + KVM_SET_XSAVE {:.1} us; \
             {} live components; read back: ok; guest stored xmm0: {}\n",
            (t1 - t0).as_secs_f64() * 1e6,
            (t2 - t1).as_secs_f64() * 1e6,
            (t3 - t2).as_secs_f64() * 1e6,
            regs.xstate_bv().count_ones(),
            if guest_ok { "ok" } else { "MISMATCH" },
        ))
    };
    match run() {
        Ok(line) => s.push_str(&line),
        Err(e) => {
            let _ = writeln!(s, "live vCPU round trip FAILED: {e}");
        }
    }
    s
}
