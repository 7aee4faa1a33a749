//! RedisLimiter: the rolling-window check of `window`, as one Lua script on Redis, shared by every instance.
//!
//! One hash per (class, client) key holds the window: field `g` (bucket width in ms) and one
//! field per bucket index `b` (absolute, `floor(t / g)`) with its admitted count. The script is
//! the algorithm of `window` line for line: sum the 21 buckets `[now_b - 20, now_b]` (the oldest
//! partial bucket counted in full), admit when the sum is below N, count only admitted requests,
//! compute the exact wait by walking the buckets oldest first, delete buckets that left the
//! window, and set the key's TTL to W + W/20 after an admission (the last moment its counts
//! matter), so idle keys disappear by themselves. A changed bucket width (a reloaded limit) keeps
//! every held admission in the current bucket, as `Window::regeometry` does. Counters are not
//! capped at 65,535 as in memory: Redis integers are 64-bit.
//!
//! **Time comes from the Redis server** (`TIME` inside the script), not from each gateway: every
//! instance then decides on one clock, so Safety holds for the sum of all instances even when
//! their clocks disagree; skew between gateways could otherwise admit a few extra requests at a
//! bucket boundary. (Scripts are replicated by effects, the default since Redis 5, so `TIME` in a
//! writing script is allowed.) The price is that the injected clock does not drive this backend;
//! the in-memory limiter, which implements the same arithmetic, is the one tested on a fake clock.
//!
//! **One round trip per check**: `EVALSHA`; only after Redis lost its script cache (a restart,
//! `SCRIPT FLUSH`) does `redis::Script` answer `NOSCRIPT` with one `EVAL` that reloads it.
//!
//! **Keys**: `{<prefix>ip:<client>}:rl:<class>`. The hash tag is the client, so every key of one
//! client sits in one Cluster slot and clients spread over the slots.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use redis::Script;

use super::memory::decision;
use super::window::Verdict;
use super::{Decision, Limit};
use crate::state::{RedisState, StateError};

/// The check. KEYS[1] = the window hash; ARGV = N, g (ms). Returns {allowed, remaining, wait_ms}.
const CHECK: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local max = tonumber(ARGV[1])
local g = tonumber(ARGV[2])
local nb = math.floor(now / g)
local first = nb - 20
local counts = {}
for k = 0, 20 do counts[k] = 0 end
local held, geom, stale = 0, nil, {}
local h = redis.call('HGETALL', KEYS[1])
for i = 1, #h, 2 do
  local f, v = h[i], tonumber(h[i + 1])
  if f == 'g' then
    geom = v
  else
    held = held + v
    local k = tonumber(f) - first
    if k < 0 then
      stale[#stale + 1] = f
    else
      if k > 20 then k = 20 end
      counts[k] = counts[k] + v
    end
  end
end
if geom ~= nil and geom ~= g then
  redis.call('DEL', KEYS[1])
  for k = 0, 20 do counts[k] = 0 end
  counts[20] = held
  if held > 0 then redis.call('HSET', KEYS[1], nb, held) end
  stale = {}
elseif #stale > 0 then
  redis.call('HDEL', KEYS[1], unpack(stale))
end
local total = 0
for k = 0, 20 do total = total + counts[k] end
local next_start = (nb + 1) * g
if total < max then
  counts[20] = counts[20] + 1
  redis.call('HINCRBY', KEYS[1], nb, 1)
  redis.call('HSET', KEYS[1], 'g', g)
  redis.call('PEXPIRE', KEYS[1], 21 * g)
  local k = 20
  for i = 0, 20 do
    if counts[i] ~= 0 then k = i break end
  end
  return {1, max - total - 1, next_start + k * g - now}
end
local need, dropped, k = total - max + 1, 0, 20
for i = 0, 20 do
  dropped = dropped + counts[i]
  if dropped >= need then k = i break end
end
return {0, 0, next_start + k * g - now}
"#;

/// The Redis-backed limiter. Cheap to clone.
#[derive(Clone)]
pub struct RedisLimiter {
    state: Arc<RedisState>,
    script: Arc<Script>,
}

impl std::fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl RedisLimiter {
    /// A limiter on `state`'s connection.
    pub fn new(state: Arc<RedisState>) -> Self {
        Self {
            state,
            script: Arc::new(Script::new(CHECK)),
        }
    }

    /// The connection it uses.
    pub fn state(&self) -> &Arc<RedisState> {
        &self.state
    }

    /// Decides one request of the client whose grouped address is `addr` (see
    /// `MemoryLimiter::group`) on the limiter key `class`, counting it when admitted.
    pub async fn check(
        &self,
        class: &str,
        addr: [u32; 4],
        limit: Limit,
    ) -> Result<Decision, StateError> {
        let key = self.key(class, addr);
        let script = self.script.clone();
        let (allowed, remaining, wait_ms): (u8, u64, i64) = self
            .state
            .call("rate_limit", |mut conn| async move {
                script
                    .key(key)
                    .arg(limit.max)
                    .arg(limit.bucket_ms())
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        let verdict = Verdict {
            allowed: allowed == 1,
            remaining: u32::try_from(remaining).unwrap_or(0),
            wait_ms: u64::try_from(wait_ms).unwrap_or(0),
        };
        Ok(decision(verdict, limit))
    }

    /// `{<prefix>ip:<client>}:rl:<class>`.
    fn key(&self, class: &str, addr: [u32; 4]) -> String {
        let bits = addr
            .iter()
            .fold(0u128, |acc, &w| (acc << 32) | u128::from(w));
        let ip = IpAddr::V6(Ipv6Addr::from(bits)).to_canonical();
        format!("{{{}ip:{ip}}}:rl:{class}", self.state.settings().prefix)
    }
}
