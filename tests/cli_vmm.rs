//! `xstate vmm`: Cloud Hypervisor and crosvm snapshots made on an AMD Zen 4
//! host (fixtures built here from the structs' documented shapes), decoded,
//! checked and converted for this host, and the converted XSAVE state
//! restored on a live vCPU with KVM_SET_XSAVE.

mod cli_common;
mod common;

use cli_common::xstate;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Value};
use xstate::layout::catalog;
use xstate::prelude::*;
use xstate::{ComponentId, Format, Layout, RegisterFile};

fn status(out: &Output, code: i32, says: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert!(err.contains(says), "expected {says:?} in: {err}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The layout of the host the converted snapshot goes to.
fn host() -> Layout {
    xstate::host::layout().unwrap()
}

/// A Zen 4 vCPU's state with what this host also holds.
fn zen4_state(n: u128) -> RegisterFile {
    let mut regs = RegisterFile::new();
    regs.set_fcw(0x37f).unwrap();
    regs.set_xmm(1, 0x1000 + n).unwrap();
    regs.set_ymm(2, [2, 0x2000 + n]).unwrap();
    if host().has(ComponentId::HI16_ZMM) {
        regs.set_zmm(20, [20, 0, 0, 0x2020 + n]).unwrap();
    }
    regs
}

/// `kvm_cpuid_entry2` objects of a Zen 4 vCPU: the whole CPUID of a Genoa
/// part (the shared dumps), as Cloud Hypervisor saves it.
fn zen4_cpuid() -> Value {
    let dir = common::cpuid_dir();
    let text = std::fs::read_to_string(dir.join("AuthenticAMD0A10F11_K19_Genoa_01.txt"))
        .expect("the shared Genoa dump (XSTATE_CPUID_DIR)");
    let set = xstate::cpuid::CpuidSet::parse(&text).unwrap();
    Value::Array(
        set.iter()
            .map(|(function, index, r)| {
                json!({
                    "function": function, "index": index,
                    "flags": u32::from(set.is_indexed(function)),
                    "eax": r.eax, "ebx": r.ebx, "ecx": r.ecx, "edx": r.edx,
                    "padding": [0, 0, 0],
                })
            })
            .collect(),
    )
}

fn words(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn fpu_of(area: &[u8]) -> Value {
    let regs = |start: usize, n: usize| -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| area[start + 16 * i..start + 16 * (i + 1)].to_vec())
            .collect()
    };
    json!({
        "fpr": regs(32, 8),
        "fcw": u16::from_le_bytes([area[0], area[1]]),
        "fsw": 0, "ftwx": area[4], "last_opcode": 0, "last_ip": 0, "last_dp": 0,
        "xmm": regs(160, 16),
        "mxcsr": u32::from_le_bytes(area[24..28].try_into().unwrap()),
    })
}

/// A Cloud Hypervisor snapshot directory of two Zen 4 vCPUs.
fn ch_snapshot(dir: &Path, states: &[RegisterFile]) {
    let zen4 = catalog::get("amd-zen4").unwrap();
    let mut vcpus = serde_json::Map::new();
    for (n, state) in states.iter().enumerate() {
        let mut area = state.encode(zen4, Format::Standard).unwrap();
        area.resize(4096, 0);
        let vcpu = json!({"Kvm": {
            "cpuid": zen4_cpuid(),
            "msrs": [{"index": 0x10, "data": 12345}],
            "fpu": fpu_of(&area),
            "xsave": {"region": words(&area)},
            "tsc_khz": 2_400_000,
        }});
        vcpus.insert(
            n.to_string(),
            json!({"snapshots": {}, "snapshot_data": {"state": vcpu.to_string()}}),
        );
    }
    let root = json!({
        "snapshots": {
            "cpu-manager": {"snapshots": vcpus, "snapshot_data": {"state": "{}"}},
            "memory-manager": {"snapshots": {}, "snapshot_data": {"state": "{\"memory\":1}"}},
        },
        "snapshot_data": {"state": "{\"version\":1}"},
    });
    std::fs::write(dir.join("state.json"), root.to_string()).unwrap();
}

/// vCPU `n`'s state object in a CH `state.json`.
fn ch_vcpu(path: &Path, n: usize) -> Value {
    let root: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let text = root["snapshots"]["cpu-manager"]["snapshots"][n.to_string()]["snapshot_data"]
        ["state"]
        .as_str()
        .unwrap()
        .to_string();
    serde_json::from_str(&text).unwrap()
}

fn ch_xsave_bytes(vcpu: &Value) -> Vec<u8> {
    let xsave = &vcpu["Kvm"]["xsave"];
    let mut out = Vec::new();
    let extra = xsave["extra"].as_array().cloned().unwrap_or_default();
    for w in xsave["region"].as_array().unwrap().iter().chain(&extra) {
        out.extend_from_slice(&(w.as_u64().unwrap() as u32).to_le_bytes());
    }
    out
}

#[test]
fn a_zen4_cloud_hypervisor_snapshot_converts_to_this_host_and_restores() {
    if common::shared_cpuid_dir("Cloud Hypervisor snapshot of a Genoa vCPU").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("snap");
    std::fs::create_dir(&snap).unwrap();
    ch_snapshot(&snap, &[zen4_state(0), zen4_state(1)]);
    let s = |p: &Path| p.to_str().unwrap().to_string();

    let out = status(
        &xstate(&["vmm", "ch", "decode", &s(&snap), "--vcpu", "1"]),
        0,
        "",
    );
    assert!(
        out.contains("vCPU 1 (id 1) of 2, in layout saved-cpuid"),
        "{out}"
    );
    assert!(out.contains(&format!("xmm1 0x{:032x}", 0x1001)), "{out}");
    let out = status(
        &xstate(&["vmm", "ch", "check", &s(&snap), "--to", "host"]),
        0,
        "",
    );
    assert!(out.contains("vCPU 1: compatible with"), "{out}");

    let converted = dir.path().join("state.json");
    status(
        &xstate(&[
            "vmm",
            "ch",
            "convert",
            &s(&snap),
            &s(&converted),
            "--to",
            "host",
        ]),
        0,
        "",
    );
    // Only the XSAVE state changed: the rest of each vCPU, and of the VM,
    // is as it was.
    let before = ch_vcpu(&snap.join("state.json"), 0);
    let after = ch_vcpu(&converted, 0);
    for key in ["msrs", "tsc_khz", "fpu"] {
        assert_eq!(before["Kvm"][key], after["Kvm"][key], "{key}");
    }
    // The saved CPUID's leaf 0xD now says where this host keeps each
    // component, so the converted snapshot reads back as written.
    let host_layout = host();
    for e in after["Kvm"]["cpuid"].as_array().unwrap() {
        let sub = e["index"].as_u64().unwrap() as u8;
        if e["function"] == 0xd && sub >= 2 {
            if let Some(g) = ComponentId::new(sub).and_then(|c| host_layout.geometry(c)) {
                assert_eq!(e["eax"], g.size, "sub-leaf {sub}");
                assert_eq!(e["ebx"], g.offset, "sub-leaf {sub}");
            }
        }
    }
    let dir2 = dir.path().join("snap2");
    std::fs::create_dir(&dir2).unwrap();
    std::fs::copy(&converted, dir2.join("state.json")).unwrap();
    let out = status(&xstate(&["vmm", "ch", "decode", &s(&dir2)]), 0, "");
    assert!(out.contains(&format!("xmm1 0x{:032x}", 0x1000)), "{out}");
    if host_layout.has(ComponentId::HI16_ZMM) {
        assert!(
            out.contains(&format!("zmm20 0x{:032x}{:0>96}", 0x2020, "14")),
            "{out}"
        );
    }
    let root: Value = serde_json::from_slice(&std::fs::read(&converted).unwrap()).unwrap();
    assert_eq!(
        root["snapshots"]["memory-manager"]["snapshot_data"]["state"],
        "{\"memory\":1}"
    );
    let area = ch_xsave_bytes(&after);
    let host = host();
    let back = RegisterFile::decode(&area, &host).unwrap();
    assert_eq!(back.xmm(1).unwrap(), 0x1000);
    assert_eq!(back, {
        let mut want = zen4_state(0);
        // What the host pins (PKRU) travels init.
        for c in back.xstate_bv() - want.xstate_bv() {
            want.set_component(c, back.component(c).unwrap()).unwrap();
        }
        want
    });

    // KVM_SET_XSAVE takes the converted bytes on a live vCPU.
    let Some(vm) = common::vm("converted CH snapshot restored") else {
        return;
    };
    let caps = vm.caps();
    assert_eq!(area.len(), caps.buffer_size(), "KVM's buffer size");
    let mut buffer = xstate::kvm::XstateBuffer::new(caps).unwrap();
    buffer.as_bytes_mut().copy_from_slice(&area);
    buffer.restore(vm.vcpu(), caps).unwrap();
    let mut read = xstate::kvm::XstateBuffer::new(caps).unwrap();
    read.save(vm.vcpu()).unwrap();
    let got = RegisterFile::decode(read.as_bytes(), caps.layout()).unwrap();
    assert_eq!(got.xmm(1).unwrap(), 0x1000);
    assert_eq!(got.ymm(2).unwrap(), [2, 0x2000]);
}

#[test]
fn cloud_hypervisor_refusals_write_nothing_and_mxcsr_masking_updates_fpu() {
    if common::shared_cpuid_dir("Cloud Hypervisor snapshot of a Genoa vCPU").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("snap");
    std::fs::create_dir(&snap).unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    // MXCSR bit 17 (AMD's MM): Intel's mask 0xffff lacks it.
    let mut state = zen4_state(0);
    state.set_mxcsr(0x21f80).unwrap();
    ch_snapshot(&snap, &[state]);
    let out = dir.path().join("state.json");
    let to = "intel-sapphire-rapids";
    let says = "MXCSR 0x21f80 has bits 0x20000 outside the destination's MXCSR mask 0xffff";
    status(
        &xstate(&["vmm", "ch", "check", &s(&snap), "--to", to]),
        1,
        "",
    );
    status(
        &xstate(&["vmm", "ch", "convert", &s(&snap), &s(&out), "--to", to]),
        1,
        says,
    );
    assert!(!out.exists());
    status(
        &xstate(&[
            "vmm",
            "ch",
            "convert",
            &s(&snap),
            &s(&out),
            "--to",
            to,
            "--mask-mxcsr",
        ]),
        0,
        "masked to 0x1f80",
    );
    let vcpu = ch_vcpu(&out, 0);
    assert_eq!(vcpu["Kvm"]["fpu"]["mxcsr"], 0x1f80);
    assert_eq!(vcpu["Kvm"]["fpu"]["fcw"], 0x37f);
    // The input itself is never the output.
    status(
        &xstate(&[
            "vmm",
            "ch",
            "convert",
            &s(&snap),
            &s(&snap.join("state.json")),
            "--to",
            to,
        ]),
        2,
        "the output is the input",
    );
    // Not a CH snapshot, not JSON.
    let bad = dir.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(bad.join("state.json"), "{\"snapshots\": {}}").unwrap();
    status(
        &xstate(&["vmm", "ch", "decode", &s(&bad)]),
        1,
        "no cpu-manager snapshot",
    );
    std::fs::write(bad.join("state.json"), [0xff, 0, 1]).unwrap();
    status(&xstate(&["vmm", "ch", "decode", &s(&bad)]), 1, "");
    status(
        &xstate(&["vmm", "ch", "decode", &s(&dir.path().join("none"))]),
        2,
        "",
    );
}

#[test]
fn a_crosvm_fragment_needs_its_layout_and_converts() {
    let dir = tempfile::tempdir().unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let zen4 = catalog::get("amd-zen4").unwrap();
    let mut area = zen4_state(3).encode(zen4, Format::Standard).unwrap();
    area.resize(4096, 0);
    let data: Vec<ciborium::Value> = words(&area)
        .into_iter()
        .map(|w| ciborium::Value::Integer(w.into()))
        .collect();
    let fragment = ciborium::Value::Map(vec![
        (
            ciborium::Value::Text("vcpu_id".into()),
            ciborium::Value::Integer(0.into()),
        ),
        (
            ciborium::Value::Text("xsave".into()),
            ciborium::Value::Map(vec![
                (
                    ciborium::Value::Text("data".into()),
                    ciborium::Value::Array(data),
                ),
                (
                    ciborium::Value::Text("len".into()),
                    ciborium::Value::Integer(4096.into()),
                ),
            ]),
        ),
    ]);
    let file = dir.path().join("vcpu0.cbor");
    let mut bytes = Vec::new();
    ciborium::into_writer(&fragment, &mut bytes).unwrap();
    std::fs::write(&file, bytes).unwrap();

    status(
        &xstate(&["vmm", "crosvm", "decode", &s(&file)]),
        2,
        "crosvm saves no CPUID",
    );
    let out = status(
        &xstate(&["vmm", "crosvm", "decode", &s(&file), "--layout", "amd-zen4"]),
        0,
        "",
    );
    assert!(out.contains(&format!("xmm1 0x{:032x}", 0x1003)), "{out}");
    let converted = dir.path().join("out.cbor");
    status(
        &xstate(&[
            "vmm",
            "crosvm",
            "convert",
            &s(&file),
            &s(&converted),
            "--layout",
            "amd-zen4",
            "--to",
            "host",
        ]),
        0,
        "",
    );
    let back: ciborium::Value =
        ciborium::from_reader(&std::fs::read(&converted).unwrap()[..]).unwrap();
    let ciborium::Value::Map(m) = back else {
        panic!("a map")
    };
    assert!(m.iter().any(|(k, _)| k.as_text() == Some("vcpu_id")));
    let out = status(
        &xstate(&[
            "vmm",
            "crosvm",
            "decode",
            &s(&converted),
            "--layout",
            "host",
        ]),
        0,
        "",
    );
    assert!(out.contains(&format!("xmm1 0x{:032x}", 0x1003)), "{out}");
    // Hostile CBOR: truncated; trailing bytes; a key given twice.
    let good = std::fs::read(&converted).unwrap();
    std::fs::write(&file, [0xa1, 0x65]).unwrap();
    status(
        &xstate(&["vmm", "crosvm", "decode", &s(&file), "--layout", "amd-zen4"]),
        1,
        "CBOR cut short",
    );
    std::fs::write(&file, [&good[..], &[0u8]].concat()).unwrap();
    status(
        &xstate(&["vmm", "crosvm", "decode", &s(&file), "--layout", "host"]),
        1,
        "1 bytes after the CBOR value",
    );
    let dup = ciborium::Value::Map(vec![
        (
            ciborium::Value::Text("xsave".into()),
            ciborium::Value::Integer(1.into()),
        ),
        (
            ciborium::Value::Text("xsave".into()),
            ciborium::Value::Integer(2.into()),
        ),
    ]);
    let mut bytes = Vec::new();
    ciborium::into_writer(&dup, &mut bytes).unwrap();
    std::fs::write(&file, bytes).unwrap();
    status(
        &xstate(&["vmm", "crosvm", "decode", &s(&file), "--layout", "host"]),
        1,
        "gives the key \"xsave\" twice",
    );
    // Standard input, as `-`.
    let out = Command::new(env!("CARGO_BIN_EXE_xstate"))
        .args(["vmm", "crosvm", "decode", "-", "--layout", "host"])
        .stdin(std::fs::File::open(&converted).unwrap())
        .output()
        .unwrap();
    assert!(status(&out, 0, "").contains(&format!("xmm1 0x{:032x}", 0x1003)));
}
