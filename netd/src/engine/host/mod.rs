//! What the engine asks of the machine, one small interface per concern: a driver per network
//! kind, links and namespaces, datapath rules, DNS serving, telemetry and host facts. The
//! engine only talks to these, so that its planning and rollback are tested with fakes.

mod dns;
mod driver;
mod facts;
mod links;
mod rules;
mod specs;
mod telemetry;

use std::sync::Arc;

pub use dns::DnsServing;
pub use driver::{NetworkDriver, Unplug};
pub use facts::HostFacts;
pub use links::Links;
pub use rules::DatapathRules;
pub use specs::*;
pub use telemetry::Telemetry;

use crate::state::model::Driver;

/// The engine's view of the machine.
#[derive(Clone)]
pub struct Host {
    pub links: Arc<dyn Links>,
    pub rules: Arc<dyn DatapathRules>,
    pub dns: Arc<dyn DnsServing>,
    pub telemetry: Arc<dyn Telemetry>,
    pub facts: Arc<dyn HostFacts>,
    pub drivers: Drivers,
}

/// One driver per network kind that gives containers interfaces.
#[derive(Clone)]
pub struct Drivers {
    pub bridge: Arc<dyn NetworkDriver>,
    pub macvlan: Arc<dyn NetworkDriver>,
}

impl Host {
    /// The driver of a network kind; `host` and `none` have none.
    pub fn driver(&self, kind: Driver) -> Option<Arc<dyn NetworkDriver>> {
        match kind {
            Driver::Bridge => Some(self.drivers.bridge.clone()),
            Driver::Macvlan => Some(self.drivers.macvlan.clone()),
            Driver::Host | Driver::Null => None,
        }
    }
}
