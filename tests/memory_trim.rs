//! `memory::trim` hands freed heap back to the system (glibc keeps it resident otherwise).
//! Its own test binary: one test, so no other test allocates in between.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn trim_returns_freed_heap_to_the_system() {
    fn rss_anon_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("RssAnon:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap()
    }
    // 96 MiB of small objects, like a cache of watched objects, written so the pages are
    // resident; then all but the last one are freed. The live one at the top of the heap
    // keeps glibc from giving anything back by itself.
    let mut objects: Vec<Box<[u8; 1024]>> = (0..96 * 1024).map(|_| Box::new([7u8; 1024])).collect();
    let pin = objects.pop().unwrap();
    let before_free = rss_anon_kib();
    drop(objects);
    let freed_but_resident = rss_anon_kib();
    sourcebuild::memory::trim();
    let after_trim = rss_anon_kib();
    assert!(
        freed_but_resident > before_free - 16 * 1024,
        "glibc already returned the memory without a trim ({before_free} -> {freed_but_resident} KiB): this test shows nothing"
    );
    assert!(
        after_trim + 64 * 1024 < freed_but_resident,
        "trim returned too little: {freed_but_resident} -> {after_trim} KiB"
    );
    assert_eq!(pin[0], 7);
}
