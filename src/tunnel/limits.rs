//! Tunnel limits: the count of open tunnels, capped per client IP and in total, as RAII permits.
//!
//! The pipeline takes a [`Permit`] after the whole policy ran and before the upgrade is
//! forwarded; one over a cap is refused (`429` per IP, `503` in total) and nothing reaches the
//! upstream. The permit lives as long as the tunnel (handshake included) and gives its place back
//! when dropped, however the tunnel ends. [`Tunnels`] outlives config reloads (it sits in
//! `config::Shared`) and carries the shutdown signal that closes every tunnel at once.

use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::watch;

use super::settings::TunnelSettings;
use crate::error::Reject;
use crate::server::conns::{Connections, Refused, Slot};

/// Open tunnels, total and per client IP (the same count the accept loop keeps of
/// connections), and the signal that closes them all.
#[derive(Debug)]
pub struct Tunnels {
    count: Arc<Connections>,
    close: watch::Sender<bool>,
}

impl Default for Tunnels {
    fn default() -> Self {
        Self {
            count: Arc::default(),
            close: watch::Sender::new(false),
        }
    }
}

/// One tunnel's place in the count; dropping it gives the place back.
#[derive(Debug)]
pub struct Permit {
    _slot: Slot,
}

impl Tunnels {
    /// Takes a place for a tunnel of `ip`, or the reject of the cap it would exceed.
    pub fn try_open(&self, ip: IpAddr, s: &TunnelSettings) -> Result<Permit, Reject> {
        match self.count.try_open(ip, s.max_total, s.max_per_ip) {
            Ok(slot) => Ok(Permit { _slot: slot }),
            Err(Refused::Total(_)) => {
                metrics::counter!("portcullis_tunnels_refused_total", "cap" => "total")
                    .increment(1);
                Err(Reject::TunnelsFull)
            }
            Err(Refused::PerIp(max_per_ip)) => {
                metrics::counter!("portcullis_tunnels_refused_total", "cap" => "per_ip")
                    .increment(1);
                Err(Reject::TooManyTunnels { max_per_ip })
            }
        }
    }

    /// Open tunnels now (handshakes included).
    pub fn open(&self) -> usize {
        self.count.open()
    }

    /// Resolves once no tunnel is open.
    pub async fn all_closed(&self) {
        self.count.all_closed().await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_ip_and_total_and_permits_give_back() {
        let t = Tunnels::default();
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
