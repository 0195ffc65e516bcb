//! `memory::limit_arenas` keeps every thread's allocations in the arenas it allows. Its own
//! test binary: the limit is process-wide and must be set before threads allocate.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn threads_allocating_at_once_share_one_arena() {
    /// The number of arenas glibc reports (`<heap nr=...>` elements of `malloc_info`).
    fn arenas() -> usize {
        let mut buf: *mut libc::c_char = std::ptr::null_mut();
        let mut len: libc::size_t = 0;
        // SAFETY: open_memstream allocates the buffer it reports; it is read after fclose and
        // freed with free, as its manual says.
        let xml = unsafe {
            let stream = libc::open_memstream(&mut buf, &mut len);
            assert!(!stream.is_null(), "open_memstream");
            assert_eq!(libc::malloc_info(0, stream), 0, "malloc_info");
            libc::fclose(stream);
            let text = std::slice::from_raw_parts(buf as *const u8, len).to_vec();
            libc::free(buf.cast());
            String::from_utf8(text).unwrap()
        };
        xml.matches("<heap nr=").count()
    }

    fn contend() {
        let threads: Vec<_> = (0..8)
            .map(|t| {
                std::thread::spawn(move || {
                    let mut kept = Vec::new();
                    for i in 0..200_000usize {
                        kept.push(vec![t as u8; 16 + i % 512]);
                        if kept.len() > 64 {
                            kept.swap_remove(i % 64);
                        }
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
    }

    // The test harness' own threads already have their arenas; with the limit reached, new
    // threads (each of which glibc would otherwise give a fresh arena, up to eight per core)
    // get none.
    sourcebuild::memory::limit_arenas(sourcebuild::memory::CONTROLLER_ARENAS);
    let before = arenas();
    contend();
    assert_eq!(
        arenas(),
        before,
        "eight threads allocating at once got arenas of their own"
    );
}
