//! Component-by-component differences between two layouts.

use super::{ComponentGeometry, Layout};
use crate::component;

/// How one component differs between two layouts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComponentDiff {
    /// The component number.
    pub index: u8,
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
///
/// let zen4 = catalog::get("amd-zen4").unwrap();
/// let spr = catalog::get("intel-sapphire-rapids").unwrap();
/// let d = diff(zen4, spr);
/// let pkru = d.iter().find(|c| c.index == 9).unwrap();
/// assert!(pkru.offset_differs()); // 2432 on AMD, 2688 on Intel
/// assert!(d.iter().any(|c| c.index == 18 && c.is_missing())); // AMX tiles
/// ```
pub fn diff(a: &Layout, b: &Layout) -> Vec<ComponentDiff> {
    component::bits(a.supported() | b.supported())
        .filter_map(|i| {
            let (ga, gb) = (a.geometry(i).copied(), b.geometry(i).copied());
            (ga != gb).then_some(ComponentDiff {
                index: i,
                a: ga,
                b: gb,
            })
        })
        .collect()
}
