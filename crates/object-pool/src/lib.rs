//! Sharded pool of reusable objects with per-thread caches.
