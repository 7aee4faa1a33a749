//! Connections: the count of open client connections, capped in total and per client IP.
//!
//! The accept loop asks for a [`Slot`] before it spawns a connection; a connection over either cap
//! is closed at once (with a rate-limited log line). The slot gives its place back when dropped,
//! so the count is exact however the connection ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Open client connections, total and per IP.
#[derive(Debug, Default)]
pub struct Connections {
    open: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    closed: Notify,
}

/// Why a connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// `max_connections` open already.
    #[error("the gateway holds max_connections ({0}) open connections")]
    Total(usize),
    /// `max_connections_per_ip` open already from this address.
    #[error("this client IP holds max_connections_per_ip ({0}) open connections")]
    PerIp(usize),
}

/// One open connection's place in the count; dropping it closes the place.
#[derive(Debug)]
pub struct Slot {
    conns: Arc<Connections>,
    ip: IpAddr,
}

impl Connections {
    /// Takes a place for a connection from `ip`, or says which cap refuses it.
    pub fn try_open(
        self: &Arc<Self>,
        ip: IpAddr,
        max_total: usize,
        max_per_ip: usize,
    ) -> Result<Slot, Refused> {
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if self.open.load(Ordering::Relaxed) >= max_total {
            return Err(Refused::Total(max_total));
        }
        let n = per_ip.entry(ip).or_insert(0);
        if *n >= max_per_ip {
            return Err(Refused::PerIp(max_per_ip));
        }
        *n += 1;
        self.open.fetch_add(1, Ordering::Relaxed);
        Ok(Slot {
            conns: self.clone(),
            ip,
        })
    }

    /// Open client connections now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Open client connections from `ip` now.
    pub fn open_from(&self, ip: IpAddr) -> usize {
        let per_ip = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        per_ip.get(&ip).copied().unwrap_or(0)
    }

    /// Resolves once no connection is open.
    pub async fn all_closed(&self) {
        loop {
            let closed = self.closed.notified();
            if self.open() == 0 {
                return;
            }
            closed.await;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut per_ip = self.conns.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
        drop(per_ip);
        self.conns.open.fetch_sub(1, Ordering::Relaxed);
        self.conns.closed.notify_waiters();
    }
}
