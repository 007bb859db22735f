//! `decode CORE` and `--layout CORE` on cores built here: several threads,
//! a thread with only NT_PRFPREG, with and without NT_X86_XSAVE_LAYOUT,
//! and cores no known layout fits.

mod cli_common;
mod common;

use cli_common::{json, stderr, xstate};

use std::path::Path;
use std::process::Command;

use common::elf_note as note;
use xstate::artifact::core::{NT_PRFPREG, NT_X86_XSAVE_LAYOUT, NT_X86_XSTATE};
use xstate::artifact::notes;
use xstate::prelude::*;
use xstate::{layout::catalog, Layout, XsaveView};

fn prstatus(pid: u32) -> Vec<u8> {
    let mut p = vec![0u8; 336];
    p[32..36].copy_from_slice(&pid.to_le_bytes());
    note("CORE", 1, &p)
}

/// An x86_64 ELF core whose one PT_NOTE holds `notes`.
fn core(notes: &[Vec<u8>]) -> Vec<u8> {
    common::elf_core(&notes.concat())
}

/// A Zen 4 thread's NT_X86_XSTATE with xmm1 = `v` and k3 = `v`.
fn zen4_xstate(v: u64) -> Vec<u8> {
    let zen4 = catalog::get("amd-zen4").unwrap();
    let mut area = vec![0u8; zen4.standard_size() as usize];
    let mut view = XsaveView::new(&mut area[..], zen4).unwrap();
    view.set_xmm(1, u128::from(v)).unwrap();
    view.set_k(3, v).unwrap();
    notes::xstate_descriptor(&area, zen4, zen4, zen4.xcr0_supported()).unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.display().to_string()
}

#[test]
fn threads_are_chosen_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let zen4: &Layout = catalog::get("amd-zen4").unwrap();
    let mut fx = [0u8; 512];
    fx[160 + 16..160 + 24].copy_from_slice(&0x77u64.to_le_bytes()); // xmm1
    let file = write(
        dir.path(),
        "zen4.core",
        &core(&[
            prstatus(100),
            note("LINUX", NT_X86_XSTATE, &zen4_xstate(0x11)),
            note(
                "LINUX",
                NT_X86_XSAVE_LAYOUT,
                &notes::layout_descriptor(zen4, zen4.xcr0_supported()),
            ),
            prstatus(101),
            note("LINUX", NT_X86_XSTATE, &zen4_xstate(0x22)),
            prstatus(102),
            note("CORE", NT_PRFPREG, &fx),
        ]),
    );
    let v = json(&xstate(&["decode", &file, "--json"]));
    assert_eq!(v["core"]["threads"], 3);
    assert_eq!(v["core"]["thread"], 0);
    assert_eq!(v["core"]["pid"], 100);
    assert_eq!(v["core"]["layout_note"], true);
    assert_eq!(v["registers"]["k3"], "0x0000000000000011");
    let v = json(&xstate(&["decode", &file, "--thread", "1", "--json"]));
    assert_eq!(v["core"]["pid"], 101);
    assert_eq!(v["registers"]["k3"], "0x0000000000000022");
    // A thread with NT_PRFPREG only: x87 and SSE.
    let v = json(&xstate(&["decode", &file, "--thread", "2", "--json"]));
    assert_eq!(v["core"]["note"], "NT_PRFPREG");
    assert_eq!(v["xstate_bv"], "0x3");
    assert_eq!(v["registers"]["xmm1"], format!("0x{:032x}", 0x77));
    let out = xstate(&["decode", &file, "--thread", "3"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no thread 3 (the core holds 3"),
        "{}",
        stderr(&out)
    );
    // The text output says which thread of how many.
    let out = xstate(&["decode", &file]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("core: NT_X86_XSTATE of thread 0 of 3 (pid 100)"),
        "{text}"
    );
    // --layout CORE gives the note's layout to any command.
    let v = json(&xstate(&["layout", "--layout", &file, "--json"]));
    let comps = v["components"].as_array().unwrap();
    let offset = |id: u64| comps.iter().find(|c| c["id"] == id).unwrap()["offset"].clone();
    assert_eq!(offset(5), 832);
    assert_eq!(offset(9), 2432);
    // Against Zen 4 it differs only where the note cannot say: supervisor
    // components.
    let out = xstate(&["diff", &file, "amd-zen4"]);
    let diff = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        diff.lines()
            .filter(|l| l.contains("absent"))
            .all(|l| l.contains("supervisor")),
        "{diff}"
    );
    // The wrong layout named explicitly is refused.
    let out = xstate(&["decode", &file, "--layout", "intel-sapphire-rapids"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("layout intel-sapphire-rapids cannot produce that"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn without_the_layout_note_the_xcr0_and_size_choose() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "plain.core",
        &core(&[
            prstatus(7),
            note("LINUX", NT_X86_XSTATE, &zen4_xstate(0x33)),
        ]),
    );
    let host = xstate::host::layout().unwrap();
    let v = json(&xstate(&["decode", &file, "--json"]));
    assert_eq!(v["core"]["layout_note"], false);
    if xstate::artifact::swbytes::check(&zen4_xstate(0x33), &host).is_err() {
        assert_eq!(v["layout"], "amd-zen4");
    }
    assert_eq!(v["registers"]["k3"], "0x0000000000000033");
    // An XCR0 and size no known layout produces: refused.
    let mut odd = zen4_xstate(0x33);
    odd.extend_from_slice(&[0; 8]);
    let file = write(
        dir.path(),
        "odd.core",
        &core(&[prstatus(7), note("LINUX", NT_X86_XSTATE, &odd)]),
    );
    let out = xstate(&["decode", &file]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("XCR0 0x2e7, 2448 bytes"),
        "{}",
        stderr(&out)
    );
    let out = xstate(&["layout", "--layout", &file]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no known layout produces"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn other_elf_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut exe = core(&[prstatus(1)]);
    exe[16] = 2; // ET_EXEC
    let file = write(dir.path(), "exe", &exe);
    let out = xstate(&["decode", &file]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is not a core file"),
        "{}",
        stderr(&out)
    );
    let file = write(dir.path(), "empty.core", &core(&[prstatus(1)]));
    let out = xstate(&["decode", &file]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no thread has"), "{}", stderr(&out));
}

#[test]
fn hostile_cores_and_cores_given_as_areas_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let zen4 = zen4_xstate(7);
    let layout_note = note("LINUX", 0x205, &[0u8; 16]);
    // Two layout notes; an NT_PRFPREG that is no FXSAVE image; an
    // NT_X86_XSTATE larger than any area.
    for (name, notes, says) in [
        (
            "two-notes.core",
            vec![
                prstatus(1),
                note("LINUX", 0x202, &zen4),
                layout_note.clone(),
                layout_note.clone(),
            ],
            "two NT_X86_XSAVE_LAYOUT notes",
        ),
        (
            "fp4096.core",
            vec![prstatus(1), note("CORE", 2, &[0u8; 4096])],
            "NT_PRFPREG note of 4096 bytes",
        ),
        (
            "huge.core",
            vec![
                prstatus(1),
                note("LINUX", 0x202, &vec![0u8; (1 << 20) + 64]),
            ],
            "NT_X86_XSTATE note of 1048640 bytes",
        ),
    ] {
        let path = write(d, name, &core(&notes));
        let out = xstate(&["decode", &path]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{name}: {}", stderr(&out));
    }
    // A core given where an area is read: refused as what it is, never
    // read as an XSAVE area.
    let path = write(
        d,
        "good.core",
        &core(&[prstatus(1), note("LINUX", 0x202, &zen4)]),
    );
    let out_file = d.join("o.bin");
    for args in [
        vec![
            "convert",
            &path,
            out_file.to_str().unwrap(),
            "--from",
            "amd-zen4",
            "--to",
            "amd-zen4",
        ],
        vec![
            "stream",
            "encode",
            &path,
            out_file.to_str().unwrap(),
            "--layout",
            "amd-zen4",
        ],
    ] {
        let out = xstate(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("an ELF file"), "{}", stderr(&out));
        assert!(!out_file.exists());
    }
    let out = Command::new(env!("CARGO_BIN_EXE_xstate"))
        .args(["decode", "-"])
        .stdin(std::fs::File::open(&path).unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

#[test]
fn a_failed_core_notes_write_keeps_what_was_there() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let zen4 = catalog::get("amd-zen4").unwrap();
    let area = write(d, "a.bin", &vec![0u8; zen4.standard_size() as usize]);
    let prefix = d.join("K");
    std::fs::write(d.join("K.layout"), b"precious").unwrap();
    std::fs::create_dir(d.join("K.xstate")).unwrap();
    let out = xstate(&[
        "convert",
        &area,
        "--from",
        "amd-zen4",
        "--to-core-notes",
        prefix.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(std::fs::read(d.join("K.layout")).unwrap(), b"precious");
}
