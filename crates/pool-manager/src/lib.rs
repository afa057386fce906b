//! Named role pools sized from the core count: queues, metrics, health, recovery, resizing, scheduling.
