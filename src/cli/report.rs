//! `xstate report`: the host's layout, a live XSAVE/XRSTOR self-check, KVM.

pub fn run() -> u8 {
    let layout = match super::load_layout("host") {
        Ok(l) => l,
        Err(code) => return code,
    };
    println!("== host XSAVE layout ==");
    print!("{}", super::layout::table(&layout));
    0
}
