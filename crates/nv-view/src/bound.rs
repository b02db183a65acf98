//! User data bound to the view it was defined in (zones, calibration, homographies).
//!
//! A zone drawn on a PTZ camera's image is only meaningful in that view. Binding records
//! the epoch and version at definition time; `validity` then says whether the view has
//! since been revised (same epoch: maybe re-map, maybe still fine) or replaced (different
//! epoch: the data no longer applies and must be redefined or re-derived).

use crate::state::{ViewEpoch, ViewSnapshot, ViewVersion};

/// How bound data relates to the current view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BoundContextValidity {
    /// Bound to exactly this view.
    Current,
    /// Same epoch, but the view has been revised `versions_behind` times since binding
    /// (motion, compensation, stability changes).
    StaleWithinEpoch { versions_behind: u64 },
    /// The view moved to another epoch: the data does not apply.
    InvalidAcrossEpoch { epochs_behind: u64 },
}

impl BoundContextValidity {
    /// Whether the data may be used as-is.
    pub fn is_current(self) -> bool {
        matches!(self, Self::Current)
    }
    /// Whether the data may be used at all (possibly after re-mapping).
    pub fn is_usable(self) -> bool {
        !matches!(self, Self::InvalidAcrossEpoch { .. })
    }
}

/// `data` together with the view it was defined in.
#[derive(Clone, Debug, PartialEq)]
pub struct ViewBoundContext<T> {
    pub data: T,
    pub bound_epoch: ViewEpoch,
    pub bound_version: ViewVersion,
}

impl<T> ViewBoundContext<T> {
    /// Binds `data` to `view`.
    pub fn bind(data: T, view: &ViewSnapshot) -> Self {
        Self {
            data,
            bound_epoch: view.epoch(),
            bound_version: view.version(),
        }
    }

    /// How the binding relates to `view`.
    ///
    /// Epochs and versions only grow within one tracker. A view *older* than the binding
    /// (e.g. a snapshot from another feed) in a different epoch is reported as invalid with
    /// `epochs_behind: 0`; in the same epoch it counts as current.
    pub fn validity(&self, view: &ViewSnapshot) -> BoundContextValidity {
        if view.epoch() != self.bound_epoch {
            return BoundContextValidity::InvalidAcrossEpoch {
                epochs_behind: view
                    .epoch()
                    .as_u64()
                    .saturating_sub(self.bound_epoch.as_u64()),
            };
        }
        match view.version().versions_since(self.bound_version) {
            0 => BoundContextValidity::Current,
            versions_behind => BoundContextValidity::StaleWithinEpoch { versions_behind },
        }
    }

    /// Re-binds the same data to `view` (after the user confirmed or re-mapped it).
    pub fn rebind(&mut self, view: &ViewSnapshot) {
        self.bound_epoch = view.epoch();
        self.bound_version = view.version();
    }

    /// Replaces the data and binds it to `view`, returning the old data.
    pub fn replace(&mut self, data: T, view: &ViewSnapshot) -> T {
        self.rebind(view);
        std::mem::replace(&mut self.data, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::ViewState;

    fn view(epoch: u64, version: u64) -> ViewSnapshot {
        let mut state = ViewState::observed_initial();
        state.epoch = ViewEpoch::new(epoch);
        state.version = ViewVersion::new(version);
        ViewSnapshot::new(state)
    }

    #[test]
    fn current_stale_and_invalid() {
        let zone = ViewBoundContext::bind("dock zone", &view(2, 10));
        assert_eq!(zone.validity(&view(2, 10)), BoundContextValidity::Current);
        assert_eq!(
            zone.validity(&view(2, 13)),
            BoundContextValidity::StaleWithinEpoch { versions_behind: 3 }
        );
        assert_eq!(
            zone.validity(&view(4, 20)),
            BoundContextValidity::InvalidAcrossEpoch { epochs_behind: 2 }
        );
        assert!(zone.validity(&view(2, 13)).is_usable());
        assert!(!zone.validity(&view(3, 11)).is_usable());
    }

    #[test]
    fn older_views() {
        let zone = ViewBoundContext::bind((), &view(2, 10));
        assert_eq!(zone.validity(&view(2, 9)), BoundContextValidity::Current);
        assert_eq!(
            zone.validity(&view(1, 9)),
            BoundContextValidity::InvalidAcrossEpoch { epochs_behind: 0 }
        );
    }

    #[test]
    fn rebind_and_replace() {
        let mut zone = ViewBoundContext::bind(1u32, &view(0, 1));
        zone.rebind(&view(1, 5));
        assert!(zone.validity(&view(1, 5)).is_current());
        assert_eq!(zone.replace(2, &view(2, 8)), 1);
        assert_eq!(
            (
                zone.data,
                zone.bound_epoch.as_u64(),
                zone.bound_version.as_u64()
            ),
            (2, 2, 8)
        );
    }
}
