//! `Clients`: the registry of open connections behind CLIENT LIST and CLIENT KILL. Each session
//! registers when it is made and leaves when it is dropped (however its connection ends); it
//! publishes what CLIENT LIST shows (name, library, protocol, MULTI queue, last command) after
//! each batch of commands it runs, so a listing never waits for a running command.
//!
//! INVARIANT: a killed client's connection closes before it reads another command: the kill is
//! a stored permit its read loop waits on, so a kill that lands while the client runs a batch
//! is seen when the batch's replies are written.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::Notify;

/// The open connections of one server, by client id.
#[derive(Debug, Default)]
pub struct Clients {
    map: Mutex<BTreeMap<u64, Arc<Client>>>,
}

/// One open connection as other connections see it.
#[derive(Debug)]
pub struct Client {
    /// The client id (CLIENT ID).
    pub id: u64,
    /// The peer address, `ip:port`.
    pub peer: String,
    /// When the connection was accepted.
    pub connected: Instant,
    /// What the session last published.
    view: Mutex<View>,
    /// Set by CLIENT KILL.
    killed: AtomicBool,
    /// Wakes the connection's read loop when killed.
    kill: Notify,
}

/// What CLIENT LIST shows of a session besides its id and address.
#[derive(Clone, Debug)]
pub struct View {
    /// CLIENT SETNAME / HELLO SETNAME.
    pub name: Option<Vec<u8>>,
    /// CLIENT SETINFO lib-name.
    pub lib_name: Option<Vec<u8>>,
    /// CLIENT SETINFO lib-ver.
    pub lib_ver: Option<Vec<u8>>,
    /// RESP version.
    pub resp: u8,
    /// Commands queued in MULTI, or -1 outside MULTI.
    pub multi: i64,
    /// The last command run (lowercase), `NULL` before the first.
    pub last_command: String,
    /// When the last batch of commands finished.
    pub last_active: Instant,
}

/// A session's registration: leaves the registry when dropped.
#[derive(Debug)]
pub struct Registration {
    clients: Arc<Clients>,
    client: Arc<Client>,
}

/// Which clients CLIENT KILL closes (every given condition must hold).
#[derive(Debug, Default)]
pub struct KillFilter {
    /// `ID id`.
    pub id: Option<u64>,
    /// `ADDR ip:port` (or the old form's single argument).
    pub addr: Option<String>,
    /// `MAXAGE seconds`: connected for longer than this.
    pub max_age_seconds: Option<u64>,
    /// The calling client, left alone unless `SKIPME no`.
    pub skip: Option<u64>,
}

impl Clients {
    /// Register a new connection `id` from `peer`.
    pub fn register(self: &Arc<Self>, id: u64, peer: String) -> Registration {
        let now = Instant::now();
        let client = Arc::new(Client {
            id,
            peer,
            connected: now,
            view: Mutex::new(View {
                name: None,
                lib_name: None,
                lib_ver: None,
                resp: 2,
                multi: -1,
                last_command: "NULL".to_string(),
                last_active: now,
            }),
            killed: AtomicBool::new(false),
            kill: Notify::new(),
        });
        self.map.lock().insert(id, Arc::clone(&client));
        Registration { clients: Arc::clone(self), client }
    }

    /// The open connections, by id.
    pub fn list(&self) -> Vec<Arc<Client>> {
        self.map.lock().values().cloned().collect()
    }

    /// Kill the clients `filter` selects; how many.
    pub fn kill(&self, filter: &KillFilter) -> usize {
        let now = Instant::now();
        let chosen: Vec<Arc<Client>> = self
            .map
            .lock()
            .values()
            .filter(|c| filter.id.is_none_or(|id| c.id == id))
            .filter(|c| filter.addr.as_ref().is_none_or(|addr| c.peer == *addr))
            .filter(|c| {
                filter
                    .max_age_seconds
                    .is_none_or(|age| now.duration_since(c.connected).as_secs() > age)
            })
            .filter(|c| filter.skip != Some(c.id))
            .cloned()
            .collect();
        for client in &chosen {
            client.killed.store(true, Ordering::Release);
            client.kill.notify_one();
        }
        chosen.len()
    }
}

impl Client {
    /// What the session last published.
    pub fn view(&self) -> View {
        self.view.lock().clone()
    }

    /// Replace what CLIENT LIST shows of this client.
    pub fn publish(&self, view: View) {
        *self.view.lock() = view;
    }

    /// Change what CLIENT LIST shows of this client in place.
    pub fn update(&self, change: impl FnOnce(&mut View)) {
        change(&mut self.view.lock());
    }

    /// Whether CLIENT KILL chose this client.
    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    /// Resolves once the client is killed (at once if it already was).
    pub async fn killed(&self) {
        if !self.is_killed() {
            self.kill.notified().await;
        }
    }
}

impl Registration {
    /// The registered client.
    pub fn client(&self) -> &Arc<Client> {
        &self.client
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.clients.map.lock().remove(&self.client.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_lists_filters_kills_and_leaves() {
        let clients = Arc::new(Clients::default());
        let a = clients.register(1, "127.0.0.1:1000".into());
        let b = clients.register(2, "127.0.0.1:2000".into());
        let mut view = a.client().view();
        view.name = Some(b"alpha".to_vec());
        a.client().publish(view);
        let ids: Vec<u64> = clients.list().iter().map(|c| c.id).collect();
        assert_eq!(ids, vec![1, 2]);
        assert_eq!(clients.list()[0].view().name.as_deref(), Some(&b"alpha"[..]));
        let by_addr = KillFilter { addr: Some("127.0.0.1:2000".into()), ..KillFilter::default() };
        assert_eq!(clients.kill(&KillFilter { skip: Some(2), ..by_addr }), 0, "skipme");
        let by_addr = KillFilter { addr: Some("127.0.0.1:2000".into()), ..KillFilter::default() };
        assert_eq!(clients.kill(&by_addr), 1);
        assert!(b.client().is_killed() && !a.client().is_killed());
        let old = KillFilter { max_age_seconds: Some(3600), ..KillFilter::default() };
        assert_eq!(clients.kill(&old), 0, "no client is an hour old");
        drop(b);
        let ids: Vec<u64> = clients.list().iter().map(|c| c.id).collect();
        assert_eq!(ids, vec![1]);
        // A kill before the wait is not lost.
        assert_eq!(clients.kill(&KillFilter { id: Some(1), ..KillFilter::default() }), 1);
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(a.client().killed());
    }
}
