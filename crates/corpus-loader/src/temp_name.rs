//! The names of the cache's temporary files: made by the cache writer,
//! skipped by the directory walk (a cache inside the corpus tree is not
//! corpus).

const TEMP_MARK: &[u8] = b".tmp-";

/// The name of a temporary file of the cache named `cache_name`; `unique`
/// tells concurrent writers apart.
pub(crate) fn temp_name(cache_name: &[u8], unique: &str) -> Vec<u8> {
    let mut name = cache_name.to_vec();
    name.extend_from_slice(TEMP_MARK);
    name.extend_from_slice(unique.as_bytes());
    name
}

/// True if `name` is a temporary file of the cache named `cache_name`.
pub(crate) fn is_temp_name(cache_name: &[u8], name: &[u8]) -> bool {
    name.len() > cache_name.len()
        && name.starts_with(cache_name)
        && name[cache_name.len()..].starts_with(TEMP_MARK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_are_recognised_and_only_them() {
        assert!(is_temp_name(b"c.cache", &temp_name(b"c.cache", "12-0")));
        assert!(is_temp_name(b"c.cache", b"c.cache.tmp-12-0"));
        assert!(!is_temp_name(b"c.cache", b"c.cache"));
        assert!(!is_temp_name(b"c.cache", b"c.cache.tmp"));
        assert!(!is_temp_name(b"c.cache", b"d.cache.tmp-1-1"));
    }
}
