//! Container records and files: written all or nothing with the kernel's state, and what
//! was observed (an exit, an interface gone) kept in memory and written again until the
//! disk takes it.

use super::{Engine, EngineError};
use crate::{
    process::files,
    state::{model::Container, prepared},
};

impl Engine {
    /// Writes hosts, resolv.conf and hostname for the container's processes (running ones
    /// see the change).
    pub(super) fn write_files(&self, c: &Container) -> Result<(), EngineError> {
        Ok(self.prepare_files(c)?.commit()?)
    }

    /// Renders hosts, resolv.conf and hostname and takes the space they need: nothing of
    /// them changes until the commit (see [`prepared`]).
    fn prepare_files(&self, c: &Container) -> Result<prepared::Prepared, EngineError> {
        let dir = self.store.container_dir(&c.id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| crate::state::StoreError::io("create", &dir, e))?;
        let ips: Vec<_> = c.endpoints.iter().map(|e| e.ip).collect();
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let resolv = match self.dns_server_of(c) {
            Some(gateway) => files::embedded_resolv_conf(gateway, &host_resolv),
            None => files::resolv_conf(&host_resolv),
        };
        let hosts = files::hosts(&c.hostname, &ips, &self.link_entries(c));
        Ok(prepared::prepare(vec![
            (dir.join("hosts"), hosts.into_bytes()),
            (dir.join("resolv.conf"), resolv.into_bytes()),
            (
                dir.join("hostname"),
                format!("{}\n", c.hostname).into_bytes(),
            ),
        ])?)
    }

    /// Persists a changed container and refreshes its files: the files' space is taken
    /// first, then the record is written, then the files (into that space). Once the record
    /// is written the change stands, as the kernel has it: files that still fail to write are
    /// logged, and written again at the container's next change.
    pub(super) fn commit_container(&mut self, c: Container) -> Result<(), EngineError> {
        let files = self.prepare_files(&c)?;
        self.store.save_container(&c)?;
        let name = c.name.clone();
        self.containers.insert(c.id.clone(), c);
        self.refresh_names();
        if let Err(e) = files.commit() {
            log::warn!("container {name}: writing its hosts, resolv.conf and hostname: {e}");
        }
        Ok(())
    }

    /// Records a change the kernel has made already (an interface gone): the engine knows it
    /// at once, and a write that fails is tried again (see [`Engine::save_unsaved`]).
    pub(super) fn record_done(&mut self, c: Container) {
        let id = c.id.clone();
        if let Err(e) = self.write_files(&c) {
            log::warn!("container {}: its files: {e}", c.name);
        }
        self.containers.insert(id.clone(), c);
        self.refresh_names();
        self.unsaved.insert(id);
        self.save_unsaved();
    }

    /// Records the exit of a container process, if it is still the one recorded. What was
    /// observed is never lost: the engine knows it at once, and a write that fails (a full
    /// disk, no descriptor left) is tried again by [`Engine::save_unsaved`].
    pub fn process_exited(&mut self, id: &str, pid: i32, code: i32) {
        let Some(c) = self.containers.get_mut(id) else {
            return;
        };
        match &mut c.process {
            Some(p) if p.pid == pid && p.exit_code.is_none() => {
                p.exit_code = Some(code);
                p.finished = Some(chrono::Utc::now());
            }
            _ => return,
        }
        self.unsaved.insert(id.to_string());
        self.save_unsaved();
        // Running containers alone have names and VIP backends.
        self.refresh_names();
    }

    /// Writes the containers whose record changed in memory but could not be written yet;
    /// the ones that fail again stay for the next try.
    pub fn save_unsaved(&mut self) {
        let ids: Vec<String> = self.unsaved.iter().cloned().collect();
        for id in ids {
            let result = match self.containers.get(&id) {
                Some(c) => self.store.save_container(c),
                None => Ok(()),
            };
            match result {
                Ok(()) => {
                    self.unsaved.remove(&id);
                }
                Err(e) => log::warn!("recording container {id} (tried again later): {e}"),
            }
        }
    }
}
