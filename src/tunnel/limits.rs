//! Tunnel limits: the count of open tunnels, capped per client IP and in total, as RAII permits.
//!
//! The pipeline takes a [`Permit`] after the whole policy ran and before the upgrade is
//! forwarded; one over a cap is refused (`429` per IP, `503` in total) and nothing reaches the
//! upstream. The permit lives as long as the tunnel (handshake included) and gives its place back
//! when dropped, however the tunnel ends. [`Tunnels`] outlives config reloads (it sits in
//! `config::Shared`) and carries the shutdown signal that closes every tunnel at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, watch};

use super::settings::TunnelSettings;
use crate::error::Reject;

/// Open tunnels, total and per client IP, and the signal that closes them all.
#[derive(Debug)]
pub struct Tunnels {
    open: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    closed: Notify,
    close: watch::Sender<bool>,
}

impl Default for Tunnels {
    fn default() -> Self {
        Self {
            open: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
            closed: Notify::new(),
            close: watch::Sender::new(false),
        }
    }
}

/// One tunnel's place in the count.
#[derive(Debug)]
pub struct Permit {
    tunnels: Arc<Tunnels>,
    ip: IpAddr,
}

impl Tunnels {
    /// Takes a place for a tunnel of `ip`, or the reject of the cap it would exceed.
    pub fn try_open(self: &Arc<Self>, ip: IpAddr, s: &TunnelSettings) -> Result<Permit, Reject> {
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if self.open.load(Ordering::Relaxed) >= s.max_total {
            metrics::counter!("portcullis_tunnels_refused_total", "cap" => "total").increment(1);
            return Err(Reject::TunnelsFull);
        }
        let n = per_ip.entry(ip).or_insert(0);
        if *n >= s.max_per_ip {
            metrics::counter!("portcullis_tunnels_refused_total", "cap" => "per_ip").increment(1);
            return Err(Reject::TooManyTunnels {
                max_per_ip: s.max_per_ip,
            });
        }
        *n += 1;
        self.open.fetch_add(1, Ordering::Relaxed);
        Ok(Permit {
            tunnels: self.clone(),
            ip,
        })
    }

    /// Open tunnels now (handshakes included).
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Resolves once no tunnel is open.
    pub async fn all_closed(&self) {
        loop {
            let closed = self.closed.notified();
            if self.open() == 0 {
                return;
            }
            closed.await;
        }
    }

    /// Tells every tunnel, open or opening, to close now (shutdown, after the grace period).
    pub fn close_all(&self) {
        self.close.send_replace(true);
    }

    /// The close signal, for a tunnel to watch.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.close.subscribe()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut per_ip = self
            .tunnels
            .per_ip
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
        drop(per_ip);
        self.tunnels.open.fetch_sub(1, Ordering::Relaxed);
        self.tunnels.closed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_ip_and_total_and_permits_give_back() {
        let t = Arc::new(Tunnels::default());
        let s = TunnelSettings {
            max_per_ip: 1,
            max_total: 2,
            ..TunnelSettings::default()
        };
        let (a, b) = ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
        let first = t.try_open(a, &s).unwrap();
        assert!(matches!(
            t.try_open(a, &s),
            Err(Reject::TooManyTunnels { max_per_ip: 1 })
        ));
        let second = t.try_open(b, &s).unwrap();
        let c = "127.0.0.3".parse().unwrap();
        assert_eq!(t.try_open(c, &s).unwrap_err(), Reject::TunnelsFull);
        drop(first);
        assert_eq!(t.open(), 1);
        let _again = t.try_open(a, &s).unwrap();
        drop(second);
        assert_eq!(t.open(), 1);
    }
}
