//! The process's resident memory, for the memory rule.

/// The resident set size of this process in bytes, from `/proc/self/statm`
/// (second field, in pages). `None` where that file does not exist.
pub fn resident_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages.saturating_mul(thread_support::page_size() as u64))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn resident_memory_grows_when_pages_are_touched() {
        let before = resident_bytes().expect("/proc/self/statm on Linux");
        assert!(before > 0);
        let block = vec![1u8; 64 << 20];
        std::hint::black_box(&block);
        let after = resident_bytes().unwrap();
        assert!(
            after >= before + (48 << 20),
            "before {before} after {after}"
        );
    }
}
