//! `xstate kvm`: KVM's XSAVE capabilities on this host, and pre-flight
//! checks of XSAVE buffers as `KVM_SET_XSAVE` would judge them.

use std::path::PathBuf;
use std::time::Instant;

use kvm_ioctls::Kvm;
use serde_json::json;
use xstate::kvm::guest::TestVm;
use xstate::kvm::{preflight, request_amx_permission, AmxPermission, KvmCaps, XstateBuffer};
use xstate::prelude::*;
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
    /// Judge XSAVE area files as KVM_SET_XSAVE on this host (or the host
    /// a profile describes) would, without issuing it.
    Check {
        /// Files holding raw kvm_xsave buffers.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Judge for another host: its profile (`xstate kvm info --json`
        /// there); /dev/kvm is then not needed here.
        #[arg(long, value_name = "PROFILE")]
        to: Option<String>,
    },
}

/// Opens `/dev/kvm`, requests AMX guest permission where the host has AMX
/// (so the answer is what KVM can offer this process's guests), and probes.
fn caps() -> Result<(KvmCaps, AmxPermission), u8> {
    let kvm = Kvm::new().map_err(|e| fail(USAGE, format_args!("/dev/kvm: {e}")))?;
    let host = xstate::host::layout().map_err(|e| fail(USAGE, e))?;
    let permission = request_amx_permission(&host);
    let caps = KvmCaps::probe(&kvm).map_err(|e| fail(USAGE, e))?;
    Ok((caps, permission))
}

pub fn run(cmd: &KvmCommand) -> u8 {
    if let KvmCommand::Check {
        files,
        to: Some(spec),
    } = cmd
    {
        let profile = match super::load_stored_profile(spec) {
            Ok(p) => p,
            Err(code) => return code,
        };
        let Some(kvm) = profile.kvm else {
            return fail(
                USAGE,
                format_args!(
                    "{spec}: no KVM part (a profile from `xstate kvm info --json` on that host has one)"
                ),
            );
        };
        let rules = kvm.set_xsave_rules_for(kvm.guest_xcr0, xstate::Xfeatures::EMPTY);
        if rules.vcpu_cpuid_xcr0.is_some() {
            super::warn(format_args!(
                "{spec}: Linux {} checks XSTATE_BV against the vCPU's CPUID, which a buffer does not say: judged as for a vCPU offered everything KVM offers ({})",
                kvm.kernel_release, kvm.guest_xcr0
            ));
        }
        return check(&rules, files);
    }
    let (caps, permission) = match caps() {
        Ok(c) => c,
        Err(code) => return code,
    };
    match cmd {
        KvmCommand::Info { json } => {
            if *json {
                let out = info_json(&caps, &permission);
                println!("{}", serde_json::to_string_pretty(&out).expect("json"));
            } else {
                print!("{}", info_text(&caps, &permission));
                print!("{}", super::layout::table(caps.layout()));
            }
            0
        }
        KvmCommand::Check { files, .. } => check(&caps.set_xsave_rules(), files),
    }
}

/// The probed and measured facts as JSON: this host's profile (which
/// `--to`, `--from`, `--layout` and `pool baseline` read back), and
/// informational fields beside it.
fn info_json(caps: &KvmCaps, permission: &AmxPermission) -> serde_json::Value {
    let amx = caps.amx();
    let mut out: serde_json::Value =
        serde_json::from_str(&caps.profile().to_json()).expect("profiles are JSON");
    let msrs = caps.xstate_msrs();
    let names = |it: &mut dyn Iterator<Item = xstate::xregs::Xreg>| -> Vec<&'static str> {
        it.map(xstate::xregs::Xreg::name).collect()
    };
    let extra = json!({
        "xstate_msrs": {
            "present": names(&mut msrs.present()),
            "absent": names(&mut msrs.absent()),
        },
        "host_layout_standard_size": caps.layout().standard_size(),
        "host_mxcsr_mask": format!("{:#x}", caps.layout().mxcsr_mask()),
        "amx": {
            "host": amx.host,
            "permission_request": permission.to_string(),
            "permitted": amx.permitted,
            "offered": amx.offered,
            "summary": amx.to_string(),
        },
    });
    if let (Some(out), serde_json::Value::Object(extra)) = (out.as_object_mut(), extra) {
        out.extend(extra);
    }
    out
}

/// This host's profile with its KVM part, when `/dev/kvm` is usable
/// (requesting AMX guest permission first, as `kvm info` does).
pub fn host_profile() -> Option<xstate::profile::HostProfile> {
    let kvm = Kvm::new().ok()?;
    let host = xstate::host::layout().ok()?;
    request_amx_permission(&host);
    KvmCaps::probe(&kvm).ok().map(|caps| caps.profile())
}

/// The probed and measured facts, one per line.
fn info_text(caps: &KvmCaps, permission: &AmxPermission) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let host_size = caps.layout().standard_size() as usize;
    let _ = writeln!(s, "kernel: {}", caps.kernel_release());
    let msrs = caps.xstate_msrs();
    let list = |it: &mut dyn Iterator<Item = xstate::xregs::Xreg>| {
        let v: Vec<&str> = it.map(xstate::xregs::Xreg::name).collect();
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    let _ = writeln!(
        s,
        "extended-state MSRs (KVM_GET_MSR_INDEX_LIST): saved {}; absent {}",
        list(&mut msrs.present()),
        list(&mut msrs.absent())
    );
    let _ = writeln!(
        s,
        "KVM_CAP_XSAVE2: {}",
        caps.xsave2_size()
            .map_or("absent (KVM_GET_XSAVE, 4096 bytes)".into(), |n| format!(
                "{n} bytes"
            ))
    );
    let _ = writeln!(
        s,
        "KVM buffer size: {} bytes for KVM_GET_XSAVE2 and KVM_SET_XSAVE; the host layout's standard size is {host_size} bytes{}",
        caps.buffer_size(),
        if caps.buffer_size() == host_size {
            ""
        } else {
            " (`--kvm` on convert and stream decode writes KVM's size)"
        }
    );
    let _ = writeln!(
        s,
        "XCR0 bits KVM supports for guests: {:#x}",
        caps.guest_xcr0()
    );
    let _ = writeln!(
        s,
        "IA32_XSS bits KVM supports for guests: {:#x}",
        caps.guest_xss()
    );
    let _ = writeln!(
        s,
        "XFD for guests: {}",
        if caps.guest_xfd() { "yes" } else { "no" }
    );
    let _ = writeln!(
        s,
        "MXCSR mask: {:#x} (measured with KVM_SET_XSAVE; the host's FXSAVE reports {:#x})",
        caps.mxcsr_mask(),
        caps.layout().mxcsr_mask()
    );
    let _ = writeln!(s, "AMX guest permission request: {permission}");
    let _ = writeln!(s, "AMX for guests: {}", caps.amx());
    match caps.behaviour().pkru {
        None => {
            let _ = writeln!(s, "PKRU: KVM offers guests no PKRU");
        }
        Some(p) => {
            let _ = writeln!(
                s,
                "PKRU: KVM_SET_XSAVE with its XSTATE_BV bit clear: {} (measured); bytes 4..8: {}",
                p.on_clear_bit,
                if p.keeps_reserved_bytes {
                    "kept as written"
                } else {
                    "read back as 0 (KVM keeps only the 32-bit PKRU)"
                }
            );
        }
    }
    s
}

fn check(rules: &xstate::kvm::SetXsaveRules, files: &[PathBuf]) -> u8 {
    let mut status = 0;
    for file in files {
        match super::input::read(file, super::input::Expect::Area) {
            Ok(bytes) => match preflight(&bytes, rules) {
                Ok(_) => println!("{}: ok", file.display()),
                Err(e) => {
                    println!("{}: rejected: {e}", file.display());
                    status = status.max(REJECTED);
                }
            },
            Err(code) => status = status.max(code),
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
    let permission = vm.amx_permission().clone();
    s.push_str(&info_text(&caps, &permission));
    let layout = caps.layout();
    let mut run = || -> Result<String, String> {
        let mut state = XstateBuffer::new(&caps).map_err(|e| e.to_string())?;
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
        let mut back = XstateBuffer::new(&caps).map_err(|e| e.to_string())?;
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
             a fresh vCPU, {} live components when saved; xmm0 written through the view and read back: ok; guest stored xmm0: {}\n",
            (t1 - t0).as_secs_f64() * 1e6,
            (t2 - t1).as_secs_f64() * 1e6,
            (t3 - t2).as_secs_f64() * 1e6,
            regs.xstate_bv().len(),
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
