//! Component-by-component differences between two layouts.

use alloc::vec::Vec;

use super::{ComponentGeometry, Layout};
use crate::component::ComponentId;

/// How one component differs between two layouts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComponentDiff {
    /// The component.
    pub id: ComponentId,
    /// Its geometry in the first layout, if enumerated there.
    pub a: Option<ComponentGeometry>,
    /// Its geometry in the second layout, if enumerated there.
    pub b: Option<ComponentGeometry>,
}

impl ComponentDiff {
    /// Whether only one side enumerates the component.
    pub fn is_missing(&self) -> bool {
        self.a.is_none() != self.b.is_none()
    }

    /// Whether both enumerate it but at different standard offsets.
    pub fn offset_differs(&self) -> bool {
        matches!((self.a, self.b), (Some(a), Some(b)) if a.offset != b.offset)
    }
}

/// Every component whose presence, size, standard offset or flags differ
/// between `a` and `b`, in ascending order.
///
/// ```
/// use xstate::layout::{catalog, diff};
/// use xstate::ComponentId;
///
/// let zen4 = catalog::get("amd-zen4").unwrap();
/// let spr = catalog::get("intel-sapphire-rapids").unwrap();
/// let d = diff(zen4, spr);
/// let pkru = d.iter().find(|c| c.id == ComponentId::PKRU).unwrap();
/// assert!(pkru.offset_differs()); // 2432 on AMD, 2688 on Intel
/// assert!(d.iter().any(|c| c.id == ComponentId::TILEDATA && c.is_missing()));
/// ```
pub fn diff(a: &Layout, b: &Layout) -> Vec<ComponentDiff> {
    (a.supported() | b.supported())
        .iter()
        .filter_map(|id| {
            let (ga, gb) = (a.geometry(id).copied(), b.geometry(id).copied());
            (ga != gb).then_some(ComponentDiff { id, a: ga, b: gb })
        })
        .collect()
}
