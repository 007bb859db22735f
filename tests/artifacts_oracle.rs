//! Kernel and debugger artifacts made on this host, from a child process
//! holding known values in every register the host has
//! (`xstate::host::child`): its own saves, `PTRACE_GETREGSET` and
//! `PTRACE_SETREGSET`, a signal frame, a core written by gdb's `gcore`
//! (and gdb's own reading of it), and a core the kernel writes. xstate's
//! decoding of each must equal the values loaded, register by register.
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

mod cli_common;
mod common;

use cli_common::xstate;

use common::elf_note as note;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use xstate::artifact::core::{Core, NT_PRFPREG, NT_X86_XSTATE};
use xstate::artifact::{fxsave, swbytes};
use xstate::host::child::{ChildOptions, Tracer, XstateChild};
use xstate::host::{Host, KnownValues, SaveInstr};
use xstate::prelude::*;
use xstate::{ComponentId, Layout, Register, XsaveView};

const WAIT: Duration = Duration::from_secs(20);

fn host() -> Host {
    Host::detect().expect("XSAVE host")
}

/// The host's standard-format area with `KnownValues::pattern(seed)` in
/// every x87, SSE, AVX and AVX-512 register it has, and a distinct PKRU
/// where it has one (key 0 left open, so the child still runs).
fn known_area(host: &Host, seed: u8) -> Vec<u8> {
    let saved = host
        .load_then_save(&KnownValues::pattern(seed), SaveInstr::Xsave, false)
        .unwrap();
    let mut area = saved.as_bytes().to_vec();
    swbytes::clear(&mut area);
    if host.enabled(ComponentId::PKRU) {
        let mut view = XsaveView::new(&mut area[..], host.layout()).unwrap();
        view.set_pkru(0x1555_5554 ^ (u32::from(seed) << 28) & 0x3000_0000)
            .unwrap();
    }
    // Every register the host has holds a known, non-init value.
    let view = XsaveView::new(&area[..], host.layout()).unwrap();
    assert_ne!(view.xmm(15).unwrap(), 0);
    if host.enabled(ComponentId::HI16_ZMM) {
        assert_ne!(view.zmm(31).unwrap(), [0; 4]);
        assert_ne!(view.k(7).unwrap(), 0);
    }
    area
}

/// x87's last-instruction pointers: AMD saves them only while an x87
/// exception is pending (AMD APM, FXSAVE), so they are not compared there.
fn compared(reg: Register, layout: &Layout) -> bool {
    let name = reg.to_string();
    !(layout.vendor() == "AuthenticAMD" && matches!(name.as_str(), "fip" | "fdp" | "fop"))
}

fn registers(area: &[u8], layout: &Layout) -> BTreeMap<String, Vec<u8>> {
    let view = XsaveView::new(area, layout).unwrap_or_else(|e| panic!("{e}"));
    Register::all()
        .filter(|&r| compared(r, layout))
        .filter_map(|r| view.read(r).ok().map(|v| (r.to_string(), v)))
        .collect()
}

fn assert_same(what: &str, got: &BTreeMap<String, Vec<u8>>, want: &BTreeMap<String, Vec<u8>>) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{what}: registers"
    );
    for (name, w) in want {
        assert_eq!(&got[name], w, "{what}: {name}");
    }
}

/// `decode --json` of a file: the layout chosen and every register, as
/// bytes.
fn cli_decode(file: &Path, extra: &[&str]) -> (String, BTreeMap<String, Vec<u8>>) {
    let mut args = vec!["decode", file.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    let out = xstate(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let regs = v["registers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, hex)| {
            let hex = hex.as_str().unwrap().trim_start_matches("0x");
            let mut bytes: Vec<u8> = (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            // Printed as one number, most significant byte first, except
            // memory-order registers; both are compared as the view reads.
            let reg = Register::all().find(|r| r.to_string() == *k).unwrap();
            if !reg.is_memory_order() {
                bytes.reverse();
            }
            (k.clone(), bytes)
        })
        .collect();
    (v["layout"].as_str().unwrap().to_string(), regs)
}

fn filter(regs: BTreeMap<String, Vec<u8>>, layout: &Layout) -> BTreeMap<String, Vec<u8>> {
    regs.into_iter()
        .filter(|(k, _)| {
            let reg = Register::all().find(|r| r.to_string() == *k).unwrap();
            compared(reg, layout)
        })
        .collect()
}

#[test]
fn the_child_holds_what_it_restored() {
    let host = host();
    let area = known_area(&host, 1);
    let child = XstateChild::spawn(&host, &area, &ChildOptions::default()).unwrap();
    let own = child
        .own_state(WAIT)
        .expect("the child saves its registers");
    assert_same(
        "the child's own XSAVE",
        &registers(&own, host.layout()),
        &registers(&area, host.layout()),
    );
}

#[test]
fn ptrace_getregset_and_setregset_round_trip() {
    let host = host();
    let layout = host.layout();
    let area = known_area(&host, 1);
    let child = XstateChild::spawn(&host, &area, &ChildOptions::default()).unwrap();
    child.own_state(WAIT).expect("the child runs");
    let tracer = Tracer::seize(child.pid()).unwrap();
    let buf = tracer.get_regset(NT_X86_XSTATE, 1 << 16).unwrap();
    // The kernel's user size of its XCR0, that XCR0 at 464.
    assert_eq!(buf.len(), layout.standard_size_for(host.xcr0()) as usize);
    assert_eq!(
        swbytes::SoftwareBytes::read(&buf),
        Some(swbytes::SoftwareBytes::Xcr0(host.xcr0()))
    );
    let want = registers(&area, layout);
    assert_same("PTRACE_GETREGSET", &registers(&buf, layout), &want);
    // NT_PRFPREG: the FXSAVE image, as x87 and SSE.
    let fp = tracer.get_regset(NT_PRFPREG, 4096).unwrap();
    assert_eq!(fp.len(), 512);
    let fp_regs = registers(&fxsave::to_area(fp[..].try_into().unwrap()), layout);
    for (name, v) in &fp_regs {
        if want.contains_key(name)
            && (name.starts_with("xmm")
                || name.starts_with("st")
                || name == "fcw"
                || name == "mxcsr")
        {
            assert_eq!(v, &want[name], "NT_PRFPREG {name}");
        }
    }
    // The CLI reads the buffer in the host's layout, chosen from its XCR0.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("xstate.bin");
    std::fs::write(&file, &buf).unwrap();
    let (name, cli) = cli_decode(&file, &[]);
    assert_eq!(name, layout.name());
    assert_same("decode of PTRACE_GETREGSET", &filter(cli, layout), &want);

    // SETREGSET with other values, built by the library: the child's own
    // registers after resuming are those.
    let other = known_area(&host, 2);
    let set =
        xstate::artifact::ptrace::setregset_buffer(&other, layout, layout, host.xcr0()).unwrap();
    assert_eq!(set.len(), buf.len(), "the size the kernel expects");
    tracer.set_regset(NT_X86_XSTATE, &set).unwrap();
    // A compacted buffer is refused by the kernel: only the standard format goes.
    if host.supports(SaveInstr::Xsavec) {
        let compacted = xstate::RegisterFile::decode(&other, layout)
            .unwrap()
            .encode(layout, xstate::Format::Compacted)
            .unwrap();
        let mut sized = compacted.clone();
        sized.resize(buf.len(), 0);
        assert!(tracer.set_regset(NT_X86_XSTATE, &sized).is_err());
    }
    tracer.resume().unwrap();
    let own = child
        .own_state(WAIT)
        .expect("the child runs after SETREGSET");
    assert_same(
        "the child's own registers after PTRACE_SETREGSET",
        &registers(&own, layout),
        &registers(&other, layout),
    );
}

#[test]
fn a_signal_frame_decodes_as_loaded_and_a_written_one_is_restored() {
    let host = host();
    let layout = host.layout();
    let area = known_area(&host, 1);
    let other = known_area(&host, 2);
    // What the handler hands back: a frame xstate builds from `other`.
    let replacement =
        xstate::artifact::sigframe::frame(&other, layout, layout, host.xcr0()).unwrap();
    let child = XstateChild::spawn(
        &host,
        &area,
        &ChildOptions {
            signal: true,
            replacement_frame: Some(replacement.clone()),
            abort_in: None,
        },
    )
    .unwrap();
    let frame = child.signal_frame(WAIT).expect("the handler ran");
    let sw = swbytes::SoftwareBytes::read(&frame).expect("_fpx_sw_bytes");
    let swbytes::SoftwareBytes::SignalFrame(f) = sw else {
        panic!("{sw:?}")
    };
    assert_eq!(f.extended_size, f.xstate_size + 4);
    assert_eq!(frame.len(), f.extended_size as usize);
    assert_eq!(
        replacement.len(),
        frame.len(),
        "xstate's frame has the kernel's size"
    );
    assert_eq!(swbytes::check(&frame, layout), Ok(Some(sw)));
    assert_same(
        "the signal frame",
        &registers(&frame, layout),
        &registers(&area, layout),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("frame.bin");
    std::fs::write(&file, &frame).unwrap();
    let (name, cli) = cli_decode(&file, &[]);
    assert_eq!(name, layout.name());
    assert_same(
        "decode of the signal frame",
        &filter(cli, layout),
        &registers(&area, layout),
    );
    // The kernel took the frame xstate wrote: the child's registers after
    // sigreturn are its values.
    let own = child
        .own_state(WAIT)
        .expect("the child runs after the handler");
    assert_same(
        "the child's registers after sigreturn",
        &registers(&own, layout),
        &registers(&other, layout),
    );
    // In a layout that cannot produce it, the frame is refused.
    for wrong in ["amd-zen4", "amd-zen3", "intel-sapphire-rapids"] {
        let l = xstate::layout::catalog::get(wrong).unwrap();
        if swbytes::check(&frame, l).is_err() {
            let out = xstate(&["decode", file.to_str().unwrap(), "--layout", wrong]);
            assert_eq!(out.status.code(), Some(1), "{wrong}");
            let e = String::from_utf8_lossy(&out.stderr);
            assert!(
                e.contains(&format!("layout {wrong} cannot produce that")),
                "{e}"
            );
        }
    }
}

/// gdb, when it is installed and can read this host's cores: gdb before
/// 15 ignores NT_X86_XSAVE_LAYOUT and places components at Intel's
/// standard offsets, so on a CPU that places its enabled components
/// elsewhere (AMD Zen 4's AVX-512, Zen's PKRU) it cannot be the oracle.
fn gdb(host: &Host) -> Option<()> {
    let out = match Command::new("gdb").arg("--version").output() {
        Ok(o) if o.status.success() => o,
        _ => {
            common::skip(
                "gdb oracle",
                "gdb is not installed (.ci/run installs it: apt-get install -y gdb)",
            );
            return None;
        }
    };
    let version = String::from_utf8_lossy(&out.stdout).into_owned();
    let major: u32 = version
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    let intel = xstate::layout::catalog::get("intel-sapphire-rapids").unwrap();
    let intel_places = host
        .xcr0()
        .extended()
        .iter()
        .all(|c| host.layout().offset(c) == intel.offset(c));
    if major < 15 && !intel_places {
        common::skip(
            "gdb oracle",
            &format!(
                "gdb {major} reads components at Intel's offsets; this CPU places them elsewhere"
            ),
        );
        return None;
    }
    Some(())
}

/// gdb's reading of `core`, register by register, in xstate's names and
/// byte order.
fn gdb_registers(core: &Path, layout: &Layout) -> BTreeMap<String, Vec<u8>> {
    let mut exprs: Vec<(String, String)> = Vec::new();
    let (vec_name, lanes) = if layout.has(ComponentId::HI16_ZMM) {
        ("zmm", 8)
    } else if layout.has(ComponentId::AVX) {
        ("ymm", 4)
    } else {
        ("xmm", 2)
    };
    let count = if vec_name == "zmm" { 32 } else { 16 };
    for i in 0..count {
        exprs.push((
            format!("{vec_name}{i}"),
            format!("p/x ${vec_name}{i}.v{lanes}_int64"),
        ));
    }
    if layout.has(ComponentId::OPMASK) {
        for i in 0..8 {
            exprs.push((format!("k{i}"), format!("p/x $k{i}")));
        }
    }
    if layout.has(ComponentId::PKRU) {
        exprs.push(("pkru".into(), "p/x $pkru".into()));
    }
    exprs.push(("mxcsr".into(), "p/x $mxcsr".into()));
    exprs.push(("fcw".into(), "p/x $fctrl".into()));
    exprs.push(("fsw".into(), "p/x $fstat".into()));
    let mut cmd = Command::new("gdb");
    cmd.args(["-q", "-batch", "-nx", "-c", core.to_str().unwrap()]);
    for (_, e) in &exprs {
        cmd.args(["-ex", e]);
    }
    for i in 0..8 {
        cmd.args(["-ex", &format!("info registers st{i}")]);
    }
    let out = cmd.output().expect("run gdb");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let values: Vec<&str> = text.lines().filter(|l| l.starts_with('$')).collect();
    assert_eq!(
        values.len(),
        exprs.len(),
        "gdb printed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut regs = BTreeMap::new();
    for ((name, _), line) in exprs.iter().zip(values) {
        let value = line.split_once(" = ").unwrap().1.trim();
        let words: Vec<u64> = value
            .trim_matches(|c| c == '{' || c == '}')
            .split(',')
            .map(|w| u64::from_str_radix(w.trim().trim_start_matches("0x"), 16).unwrap())
            .collect();
        let width = Register::all()
            .find(|r| r.to_string() == *name)
            .unwrap()
            .width();
        let bytes: Vec<u8> = words
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .take(width)
            .collect();
        regs.insert(name.clone(), bytes);
    }
    for line in text.lines().filter(|l| l.starts_with("st")) {
        let name = line.split_whitespace().next().unwrap().to_string();
        let raw = line.split("raw 0x").nth(1).unwrap().trim_end_matches(')');
        let mut bytes: Vec<u8> = (0..10)
            .map(|i| u8::from_str_radix(&raw[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        bytes.reverse();
        regs.insert(name, bytes);
    }
    regs
}

#[test]
fn a_gcore_core_decodes_as_loaded_and_as_gdb_reads_it() {
    let host = host();
    if gdb(&host).is_none() {
        return;
    }
    let layout = host.layout();
    let area = known_area(&host, 3);
    let child = XstateChild::spawn(&host, &area, &ChildOptions::default()).unwrap();
    child.own_state(WAIT).expect("the child runs");
    let dir = tempfile::tempdir().unwrap();
    let core = dir.path().join("gcore.core");
    let out = Command::new("gdb")
        .args(["-q", "-batch", "-nx", "-p", &child.pid().to_string()])
        .args(["-ex", &format!("gcore {}", core.display())])
        .output()
        .expect("run gdb");
    let gdb_said = String::from_utf8_lossy(&out.stderr).into_owned();
    if !core.exists() && gdb_said.contains("ptrace: Operation not permitted") {
        common::skip(
            "gcore core",
            "gdb may not attach here (ptrace_scope or capabilities; tests do not change them)",
        );
        return;
    }
    assert!(core.exists(), "gcore wrote no core: {gdb_said}");
    let want = registers(&area, layout);
    // The library: the thread's NT_X86_XSTATE, identified by its XCR0 and
    // size when gdb writes no NT_X86_XSAVE_LAYOUT.
    let parsed = Core::open(&core).unwrap();
    assert_eq!(parsed.threads().len(), 1);
    let note = parsed.threads()[0].xstate.clone().unwrap();
    let chosen = parsed
        .layout_of("gcore", 0, [layout])
        .unwrap()
        .expect("a layout for the core");
    assert_same("gcore NT_X86_XSTATE", &registers(&note, &chosen), &want);
    // The CLI, with its default layout.
    let (_, cli) = cli_decode(&core, &[]);
    let cli = filter(cli, layout);
    assert_same("decode of the gcore core", &cli, &want);
    // gdb's own reading of the same core, register by register.
    let from_gdb = gdb_registers(&core, layout);
    assert!(
        from_gdb.len() >= 16 + 8 + 3,
        "gdb read {} registers",
        from_gdb.len()
    );
    common::note(&format!(
        "gcore: gdb and xstate agree on {} registers ({})",
        from_gdb.len(),
        from_gdb.keys().cloned().collect::<Vec<_>>().join(" ")
    ));
    for (name, value) in &from_gdb {
        assert_eq!(
            Some(value),
            cli.get(name),
            "gdb and xstate disagree on {name}"
        );
    }
    if parsed.layout_note().is_none() {
        common::note("gcore wrote no NT_X86_XSAVE_LAYOUT note (gdb before 15 does not)");
    }
}

/// The kernel's core_pattern when cores land in the dumping process's
/// working directory (a relative pattern), else `None` with the skip said.
fn relative_core_pattern(part: &str) -> Option<String> {
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default();
    let pattern = pattern.trim().to_string();
    if pattern.is_empty() || pattern.starts_with('|') || pattern.starts_with('/') {
        common::skip(
            part,
            &format!("core_pattern {pattern:?} does not write cores into the working directory (tests do not change it)"),
        );
        return None;
    }
    Some(pattern)
}

#[test]
fn a_kernel_core_carries_the_layout_note_xstate_reads() {
    let part = "kernel core with NT_X86_XSAVE_LAYOUT";
    if relative_core_pattern(part).is_none() {
        return;
    }
    let host = host();
    let layout = host.layout();
    let area = known_area(&host, 4);
    let dir = tempfile::tempdir().unwrap();
    let mut child = XstateChild::spawn(
        &host,
        &area,
        &ChildOptions {
            abort_in: Some(dir.path().to_path_buf()),
            ..ChildOptions::default()
        },
    )
    .unwrap();
    let status = child.wait().unwrap();
    let core_file = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("core"));
    let Some(core_file) = core_file else {
        common::skip(
            part,
            &format!("the kernel wrote no core (wait status {status:#x}: a core limit or filter outside this process)"),
        );
        return;
    };
    let parsed = Core::open(&core_file).unwrap();
    let Some(records) = parsed.layout_note() else {
        common::skip(
            part,
            "the kernel wrote no NT_X86_XSAVE_LAYOUT (Linux before 6.12)",
        );
        return;
    };
    // The note is the layout of the host's user components.
    let user: Vec<_> = layout
        .components()
        .filter(|g| !g.supervisor && !g.id.is_legacy() && host.xcr0().contains(g.id))
        .map(|g| (g.id, g.size, g.offset))
        .collect();
    let noted: Vec<_> = records
        .iter()
        .map(|r| (r.component, r.size, r.offset))
        .collect();
    assert_eq!(noted, user);
    let want = registers(&area, layout);
    let (name, cli) = cli_decode(&core_file, &[]);
    assert_ne!(name, layout.name(), "the note's layout, not the host's");
    let cli = filter(cli, layout);
    assert_same("decode of the kernel's core", &cli, &want);
    // gdb reads the kernel's core as xstate does.
    if gdb(&host).is_some() {
        let from_gdb = gdb_registers(&core_file, layout);
        for (name, value) in &from_gdb {
            assert_eq!(
                Some(value),
                cli.get(name),
                "gdb and xstate disagree on {name}"
            );
        }
    }
    // `layout --layout CORE --json` matches the host's user components.
    let out = xstate(&["layout", "--layout", core_file.to_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let host_json: serde_json::Value =
        serde_json::from_slice(&xstate(&["layout", "--json"]).stdout).unwrap();
    let user_components = |v: &serde_json::Value| -> Vec<(u64, u64, u64)> {
        v["components"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["supervisor"] == false)
            .filter(|c| host.xcr0().bits() >> c["id"].as_u64().unwrap() & 1 == 1)
            .map(|c| {
                (
                    c["id"].as_u64().unwrap(),
                    c["size"].as_u64().unwrap(),
                    c["offset"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(user_components(&v), user_components(&host_json));
}

/// A minimal x86_64 ELF core: one PT_NOTE with one thread's NT_PRSTATUS
/// (pid 4242, registers zero) and the notes given.
fn wrap_in_core(notes: &[Vec<u8>]) -> Vec<u8> {
    let mut prstatus = vec![0u8; 336];
    prstatus[32..36].copy_from_slice(&4242u32.to_le_bytes());
    let mut body = note("CORE", 1, &prstatus);
    for n in notes {
        body.extend_from_slice(n);
    }
    common::elf_core(&body)
}

#[test]
fn a_compacted_area_as_core_notes_is_read_by_gdb() {
    let host = host();
    if !host.supports(SaveInstr::Xsavec) {
        common::skip("compacted area to core notes", "this CPU has no XSAVEC");
        return;
    }
    let layout = host.layout();
    // A compacted area as a hypervisor's XSAVEC/XSAVES buffer holds it.
    let compacted = host
        .load_then_save(&KnownValues::pattern(5), SaveInstr::Xsavec, false)
        .unwrap();
    let compacted = compacted.as_bytes().to_vec();
    let want = registers(&compacted, layout);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("compacted.bin");
    std::fs::write(&input, &compacted).unwrap();
    let prefix = dir.path().join("notes");
    let out = xstate(&[
        "convert",
        input.to_str().unwrap(),
        "--from",
        "host",
        "--to-core-notes",
        prefix.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let xstate_note = std::fs::read(dir.path().join("notes.xstate")).unwrap();
    let layout_note = std::fs::read(dir.path().join("notes.layout")).unwrap();
    assert_eq!(
        xstate_note.len(),
        layout.standard_size_for(host.xcr0()) as usize,
        "the size the kernel gives NT_X86_XSTATE"
    );
    assert_same(
        "the NT_X86_XSTATE descriptor",
        &registers(&xstate_note, layout),
        &want,
    );
    let core = dir.path().join("wrapped.core");
    std::fs::write(
        &core,
        wrap_in_core(&[
            note("LINUX", NT_X86_XSTATE, &xstate_note),
            note(
                "LINUX",
                xstate::artifact::core::NT_X86_XSAVE_LAYOUT,
                &layout_note,
            ),
        ]),
    )
    .unwrap();
    // xstate reads the core back in the note's layout.
    let (_, cli) = cli_decode(&core, &[]);
    assert_same("decode of the wrapped core", &filter(cli, layout), &want);
    let note_layout = Core::open(&core)
        .unwrap()
        .layout("wrapped")
        .unwrap()
        .unwrap();
    for g in layout
        .components()
        .filter(|g| !g.supervisor && host.xcr0().contains(g.id))
    {
        assert_eq!(note_layout.offset(g.id), Some(g.offset), "{}", g.id);
    }
    // And so does gdb, register by register.
    if gdb(&host).is_none() {
        return;
    }
    let from_gdb = gdb_registers(&core, layout);
    assert!(
        from_gdb.len() >= 16 + 8 + 3,
        "gdb read {} registers",
        from_gdb.len()
    );
    for (name, value) in &from_gdb {
        assert_eq!(Some(value), want.get(name), "gdb reads {name} otherwise");
    }
}
