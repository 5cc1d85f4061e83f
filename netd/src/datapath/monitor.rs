//! Typed handle for `netd monitor`: the switch that makes the programs write events, and the
//! ring buffer they write them to.

use aya::maps::{Array, MapData, RingBuf};
use netd_common::{maps, monitor::Event};

use super::{Datapath, DatapathError};

/// The event ring, read by one task of the daemon.
pub struct Events(pub RingBuf<MapData>);

impl Events {
    /// The next event the programs wrote, if any is waiting.
    pub fn next_event(&mut self) -> Option<Event> {
        let item = self.0.next()?;
        (item.len() == std::mem::size_of::<Event>()).then(|| *bytemuck::from_bytes(&item))
    }
}

impl Datapath {
    /// Hands over the event ring (once: a ring has one reader).
    pub fn take_events(&mut self) -> Option<Events> {
        self.events.take().map(Events)
    }

    /// Turns event writing on (someone watches) or off.
    pub fn set_monitor(&mut self, on: bool) -> Result<(), DatapathError> {
        self.monitor
            .set(0, u32::from(on), 0)
            .map_err(|source| DatapathError::Map {
                name: maps::MONITOR,
                source,
            })
    }
}

/// The switch map's type, for the loader.
pub type MonitorSwitch = Array<MapData, u32>;
