//! `xstate report`: the host's layout, a live XSAVE/XRSTOR self-check on
//! this CPU, and KVM where `/dev/kvm` is usable. Off x86_64 there is no
//! XSAVE state to report on, and the report says so.

#[cfg(not(target_arch = "x86_64"))]
pub fn run() -> u8 {
    println!(
        "this host is not x86_64: it has no XSAVE state to report on \
         (layout, diff, decode, convert, stream and pool work on layouts, dumps and files)"
    );
    0
}

#[cfg(target_arch = "x86_64")]
pub use x86::run;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::time::Instant;

    use xstate::host::{Host, KnownValues, SaveInstr, VectorWidth};
    use xstate::prelude::*;
    use xstate::{Format, Register, RegisterFile, XsaveView};

    use super::super as cli;

    pub fn run() -> u8 {
        let layout = match cli::load_layout("host") {
            Ok(l) => l,
            Err(code) => return code,
        };
        println!("== host XSAVE layout ==");
        print!("{}", cli::layout::table(&layout));
        println!();
        println!("== live XSAVE/XRSTOR self-check ==");
        let mut status = 0;
        match self_check() {
            Ok(lines) => lines.iter().for_each(|l| println!("{l}")),
            Err(e) => {
                println!("FAILED: {e}");
                status = cli::REJECTED;
            }
        }
        {
            println!();
            println!("== KVM ==");
            print!("{}", cli::kvm::report());
            println!();
            println!("== live migration round trip ==");
            match migration_round_trip() {
                Ok(lines) => lines.iter().for_each(|l| println!("{l}")),
                Err(e) => {
                    println!("FAILED: {e}");
                    status = cli::REJECTED;
                }
            }
        }
        status
    }

    /// A vCPU's whole extended state (the XSAVE area with XCR0, IA32_XSS,
    /// IA32_XFD and IA32_XFD_ERR) is saved, encoded as a version 2 stream,
    /// checked (the state and the vCPU's registers) against every catalog
    /// CPU, decoded and restored into a second vCPU, and compared register
    /// by register.
    fn migration_round_trip() -> Result<Vec<String>, String> {
        use xstate::kvm::guest::{program, Exit, TestVm, INPUT};
        use xstate::kvm::{get_registers, set_xcr0, VcpuXstate};
        use xstate::migrate::{check_host, stream, Guest};
        use xstate::profile::HostProfile;
        use xstate::xregs::{Xreg, XstateRegisters};

        let err = |e: &dyn std::fmt::Display| e.to_string();
        let show = |r: &XstateRegisters| {
            Xreg::ALL
                .iter()
                .map(|x| format!("{x} {:#x}", r.get(*x)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut source = match TestVm::new() {
            Ok(vm) => vm,
            Err(e) => {
                return Ok(vec![format!(
                    "skipped: /dev/kvm is absent or unusable: {e}"
                )])
            }
        };
        let caps = source.caps().clone();
        let layout = caps.layout().clone();
        // The source vCPU enables every component KVM offers its guests,
        // then its guest loads patterns into xmm0-15.
        set_xcr0(source.vcpu(), caps.guest_xcr0()).map_err(|e| err(&e))?;
        let pattern: Vec<u8> = (0..=255u8).map(|b| b.wrapping_mul(11) ^ 0x5A).collect();
        source.write(INPUT, &pattern);
        source
            .load(&program::load_xmm(INPUT))
            .map_err(|e| err(&e))?;
        if source.run().map_err(|e| err(&e))? != Exit::Hlt {
            return Err("the source guest did not halt".into());
        }
        // KVM_GET_XSAVE2, KVM_GET_XCRS, KVM_GET_MSRS.
        let mut whole = VcpuXstate::new(&caps).map_err(|e| err(&e))?;
        whole.save(source.vcpu(), &caps).map_err(|e| err(&e))?;
        let vcpu = whole.to_stream(&layout).map_err(|e| err(&e))?;
        let bytes = stream::encode(std::slice::from_ref(&vcpu), &stream::Source::of(&layout))
            .map_err(|e| err(&e))?;
        let msrs = caps.xstate_msrs();
        let names = |it: &mut dyn Iterator<Item = Xreg>| {
            let v: Vec<String> = it.map(|r| r.to_string()).collect();
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        let mut out = vec![
            format!(
                "source vCPU: XSTATE_BV {:#x}; {}",
                vcpu.state.xstate_bv(),
                show(&whole.registers)
            ),
            format!(
                "extended-state MSRs KVM saves here: {}; absent from KVM_GET_MSR_INDEX_LIST (0 for every vCPU here, neither read nor written): {}",
                names(&mut msrs.present()),
                names(&mut msrs.absent())
            ),
            format!(
                "stream version 2: {} bytes (KVM buffer {} bytes)",
                bytes.len(),
                whole.area.as_bytes().len()
            ),
        ];
        // Each catalog CPU judges the state and the vCPU's registers (its
        // XCR0 must be settable there too).
        let guest = Guest::from_registers(&whole.registers);
        for target in xstate::layout::catalog::all() {
            let report = check_host(&vcpu.state, &HostProfile::from(target.clone()), &guest);
            out.push(format!(
                "  to {:<22} {}",
                target.name(),
                if report.is_compatible() {
                    "compatible".to_string()
                } else {
                    report
                        .incompatibilities
                        .iter()
                        .map(|i| i.to_string())
                        .collect::<Vec<_>>()
                        .join("; ")
                }
            ));
        }
        let decoded = stream::decode_vcpus(&bytes, 1)
            .map_err(|e| err(&e))?
            .remove(0);
        let destination = TestVm::new().map_err(|e| err(&e))?;
        let dcaps = destination.caps().clone();
        let before = get_registers(destination.vcpu(), &dcaps).map_err(|e| err(&e))?;
        // KVM_SET_XCRS, then KVM_SET_MSRS, then (after pre-flight)
        // KVM_SET_XSAVE; PKRU goes with its bit set.
        let mut arriving = VcpuXstate::new(&dcaps).map_err(|e| err(&e))?;
        arriving.load(&decoded, &dcaps).map_err(|e| err(&e))?;
        arriving
            .restore(destination.vcpu(), &dcaps)
            .map_err(|e| err(&e))?;
        let mut back = VcpuXstate::new(&dcaps).map_err(|e| err(&e))?;
        back.save(destination.vcpu(), &dcaps).map_err(|e| err(&e))?;
        if back.registers != whole.registers {
            return Err(format!(
                "the registers differ after the move: sent {}, arrived {}",
                show(&whole.registers),
                show(&back.registers)
            ));
        }
        let sent = whole.area.view(&layout).map_err(|e| err(&e))?;
        let arrived = back.area.view(dcaps.layout()).map_err(|e| err(&e))?;
        let mut compared = 0;
        for reg in Register::all() {
            match (sent.read(reg), arrived.read(reg)) {
                (Ok(a), Ok(b)) if a == b => compared += 1,
                (Err(_), Err(_)) => {}
                _ => return Err(format!("{reg} differs after the move")),
            }
        }
        out.push(format!(
            "restored into a second vCPU (XCR0, then the MSRs KVM has, then the area): XCR0 {:#x} -> {:#x}; {} identical; all {compared} registers of the area identical",
            before.xcr0,
            back.registers.xcr0,
            show(&back.registers),
        ));
        Ok(out)
    }

    /// Loads known values, saves them with every save instruction the CPU has,
    /// reads them through the views, writes new values through the write view,
    /// restores them with XRSTOR and checks the CPU holds exactly those.
    fn self_check() -> Result<Vec<String>, String> {
        let host = Host::detect().map_err(|e| e.to_string())?;
        let layout = host.layout();
        let mut out = vec![format!(
            "XCR0 enabled {:#x}; vector registers checked: {}",
            host.xcr0(),
            match host.vector_width() {
                VectorWidth::Zmm => "zmm0-31 and k0-7",
                VectorWidth::Ymm => "ymm0-15",
                VectorWidth::Xmm => "xmm0-15",
            }
        )];
        let values = KnownValues::pattern(0x42);
        let expected = |view: &XsaveView<&[u8]>| -> Result<(), String> {
            for i in 0..16 {
                let want = u128::from_le_bytes(values.vec[i][..16].try_into().expect("16"));
                let got = view.xmm(i).map_err(|e| e.to_string())?;
                if got != want {
                    return Err(format!("xmm{i}: read {got:#x}, loaded {want:#x}"));
                }
            }
            for i in 0..8 {
                if view.st(i).map_err(|e| e.to_string())? != values.st[i] {
                    return Err(format!("st{i} differs from the value loaded"));
                }
            }
            if view.mxcsr().map_err(|e| e.to_string())? != values.mxcsr {
                return Err("mxcsr differs from the value loaded".into());
            }
            Ok(())
        };
        for instr in [SaveInstr::Xsave, SaveInstr::Xsaveopt, SaveInstr::Xsavec] {
            if !host.supports(instr) {
                out.push(format!(
                    "{}: not supported by this CPU, skipped",
                    instr.name()
                ));
                continue;
            }
            let area = host
                .load_then_save(&values, instr, false)
                .map_err(|e| e.to_string())?;
            let view = XsaveView::new(area.as_bytes(), layout)
                .map_err(|e| format!("{}: {e}", instr.name()))?;
            expected(&view).map_err(|e| format!("{}: {e}", instr.name()))?;
            let regs = RegisterFile::from_view(&view).map_err(|e| e.to_string())?;
            out.push(format!(
                "{}: {} format, XSTATE_BV {:#x}; views read every loaded register: ok",
                instr.name(),
                view.format().as_str(),
                view.xstate_bv()
            ));
            if instr == SaveInstr::Xsavec {
                let standard = regs
                    .encode(layout, Format::Standard)
                    .map_err(|e| e.to_string())?;
                let again = RegisterFile::decode(&standard, layout).map_err(|e| e.to_string())?;
                if again != regs {
                    return Err("compacted -> standard conversion changed the state".into());
                }
                out.push(
                    "XSAVEC area converted to the standard format: identical registers".into(),
                );
            }
        }
        // Write through the view, restore with XRSTOR, read the CPU back.
        let area = host
            .load_then_save(&values, SaveInstr::Xsave, false)
            .map_err(|e| e.to_string())?;
        let mut buf = area.as_bytes().to_vec();
        let mut view = XsaveView::new(&mut buf[..], layout).map_err(|e| e.to_string())?;
        for i in 0..16 {
            view.set_xmm(i, 0xC0DE_0000 + i as u128)
                .map_err(|e| e.to_string())?;
        }
        view.set_mxcsr(0x1FA0).map_err(|e| e.to_string())?;
        let start = Instant::now();
        let (saved, direct) = host
            .restore_then_save(&buf, SaveInstr::Xsave)
            .map_err(|e| e.to_string())?;
        let elapsed = start.elapsed();
        let back = XsaveView::new(saved.as_bytes(), layout).map_err(|e| e.to_string())?;
        let written = XsaveView::new(&buf[..], layout).map_err(|e| e.to_string())?;
        for reg in
            Register::all().filter(|r| !matches!(r, Register::Fip | Register::Fdp | Register::Fop))
        {
            if let Ok(want) = written.read(reg) {
                if back.read(reg).map_err(|e| e.to_string())? != want {
                    return Err(format!(
                        "{reg}: XRSTOR did not restore what the write view wrote"
                    ));
                }
            }
        }
        for i in 0..16 {
            let got = u128::from_le_bytes(direct.vec[i][..16].try_into().expect("16"));
            if got != 0xC0DE_0000 + i as u128 {
                return Err(format!("xmm{i} in the register is {got:#x} after XRSTOR"));
            }
        }
        if direct.mxcsr != 0x1FA0 {
            return Err(format!(
                "MXCSR in the register is {:#x} after XRSTOR",
                direct.mxcsr
            ));
        }
        out.push(format!(
        "write view -> XRSTOR -> XSAVE: every register restored exactly (save, restore, save and put back in {:.1} us)",
        elapsed.as_secs_f64() * 1e6
    ));
        out.push(amx_check(&host)?);
        Ok(out)
    }

    /// AMX against the CPU: tiles loaded with TILELOADD read back through the
    /// views, and an area built by the write view restores to the same tiles.
    fn amx_check(host: &Host) -> Result<String, String> {
        use xstate::host::amx::{self, TileState};
        if !host.has_amx() {
            return Ok("AMX: not on this CPU (or not enabled in XCR0), skipped".into());
        }
        if let Err(e) = amx::request_permission() {
            return Ok(format!("AMX: {e}, skipped"));
        }
        let layout = host.layout();
        let tiles = TileState::pattern(0x5D);
        let area = host
            .load_tiles_then_save(&tiles, SaveInstr::Xsave, false)
            .map_err(|e| e.to_string())?;
        let view = XsaveView::new(area.as_bytes(), layout).map_err(|e| e.to_string())?;
        if view.tilecfg().map_err(|e| e.to_string())? != tiles.cfg {
            return Err("AMX: TILECFG read through the view differs from the one loaded".into());
        }
        for i in 0..8 {
            if view.tmm(i).map_err(|e| e.to_string())? != tiles.tmm[i] {
                return Err(format!(
                    "AMX: tmm{i} read through the view differs from the tile loaded"
                ));
            }
        }
        let (_, stored) = host
            .restore_then_store_tiles(area.as_bytes())
            .map_err(|e| e.to_string())?;
        if stored != tiles {
            return Err("AMX: XRSTOR then TILESTORED did not give the tiles back".into());
        }
        Ok("AMX: TILECFG and tmm0-7 loaded with TILELOADD read back through the views, and XRSTOR + TILESTORED give them back: ok".into())
    }
}
