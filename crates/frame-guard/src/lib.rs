//! Frame-loop timing, slow-frame watchdog and emergency stop, monitoring rows.
