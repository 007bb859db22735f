//! `serde` support for [`RegisterFile`] (the `serde` feature), for VMMs
//! that already serialize their vCPU state with serde.
//!
//! A register file serializes as its live components: `xstate_bv` and a map
//! from component number to the component's canonical bytes (for x87 and
//! SSE, the 512-byte legacy region). Deserializing validates every
//! component's number and size and refuses anything else.
//!
//! ```
//! use xstate::prelude::*;
//!
//! let mut regs = xstate::RegisterFile::new();
//! regs.set_xmm(1, 7).unwrap();
//! let json = serde_json::to_string(&regs).unwrap();
//! let back: xstate::RegisterFile = serde_json::from_str(&json).unwrap();
//! assert_eq!(back, regs);
//! ```

use alloc::collections::BTreeMap;
use alloc::format;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::RegisterFile;
use crate::access::XstateRead;
use crate::component::{ComponentId, Xfeatures};

#[derive(Serialize, Deserialize)]
struct Repr {
    xstate_bv: u64,
    components: BTreeMap<u8, serde_bytes::ByteBuf>,
}

impl Serialize for RegisterFile {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let components = self
            .xstate_bv()
            .iter()
            .map(|c| {
                (
                    c.index(),
                    serde_bytes::ByteBuf::from(self.component(c).expect("live").to_vec()),
                )
            })
            .collect();
        Repr {
            xstate_bv: self.xstate_bv().bits(),
            components,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RegisterFile {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let repr = Repr::deserialize(deserializer)?;
        let mut listed = Xfeatures::EMPTY;
        let mut regs = RegisterFile::new();
        for (&i, bytes) in &repr.components {
            let c = ComponentId::new(i).ok_or_else(|| {
                D::Error::custom(format!("{i} is not a component number (0..=63)"))
            })?;
            regs.set_component(c, bytes).map_err(D::Error::custom)?;
            listed = listed.with(c);
        }
        if listed.bits() != repr.xstate_bv {
            return Err(D::Error::custom(format!(
                "xstate_bv {:#x} does not match the components given ({listed})",
                repr.xstate_bv
            )));
        }
        Ok(regs)
    }
}

#[cfg(test)]
mod tests {
    use crate::access::XstateWrite;
    use crate::layout::catalog;
    use crate::RegisterFile;

    #[test]
    fn round_trips_and_refuses_bad_input() {
        let mut regs = RegisterFile::new();
        regs.set_tmm(3, &[9; 1024]).unwrap();
        regs.set_r(18, 5).unwrap();
        regs.set_st(0, [1; 10]).unwrap();
        let json = serde_json::to_string(&regs).unwrap();
        assert_eq!(serde_json::from_str::<RegisterFile>(&json).unwrap(), regs);
        assert!(serde_json::from_str::<RegisterFile>(
            r#"{"xstate_bv":4,"components":{"2":[1,2]}}"#
        )
        .is_err());
        assert!(
            serde_json::from_str::<RegisterFile>(r#"{"xstate_bv":1,"components":{}}"#).is_err()
        );
        assert!(
            serde_json::from_str::<RegisterFile>(r#"{"xstate_bv":0,"components":{"64":[1]}}"#)
                .is_err()
        );
        let spr = catalog::get("intel-sapphire-rapids").unwrap();
        assert!(
            regs.encode(spr, crate::Format::Standard).is_err(),
            "APX is not on SPR"
        );
    }
}
