//! The `exe` binary: everything happens in [`executioner::run`].
//!
//! Memory comes from mimalloc rather than glibc's malloc: `exe plan` of 100,000 jobs spent
//! about a third of its time in glibc's free-list upkeep (`docs/decisions.md`). Two of its
//! options are set before the first allocation, so that exe's peak memory stays what it
//! was with glibc: arenas are committed as they are used, not all at once, and freed
//! memory goes back to the system at once rather than after a delay.

#![allow(unsafe_code)] // the allocator's options: two calls into its C API, before `main`

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's option ids (`mi_option_e` in the `mimalloc.h` of the v3 that
/// libmimalloc-sys builds; the crate's own constants are v2's numbers).
const ARENA_EAGER_COMMIT: i32 = 4;
const PURGE_DELAY: i32 = 15;

extern "C" fn configure_allocator() {
    // SAFETY: `mi_option_set` only stores an integer in mimalloc's option table.
    unsafe {
        libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
        libmimalloc_sys::mi_option_set(PURGE_DELAY, 0);
    }
}

/// Runs [`configure_allocator`] as the program is loaded, before the Rust runtime's first
/// allocation (which reserves mimalloc's first arena, under the options of that moment).
#[used]
#[unsafe(link_section = ".init_array")]
static CONFIGURE_ALLOCATOR: extern "C" fn() = configure_allocator;

fn main() {
    std::process::exit(executioner::run(std::env::args_os()));
}

#[cfg(test)]
mod tests {
    use super::{ARENA_EAGER_COMMIT, PURGE_DELAY};

    fn option(id: i32) -> std::ffi::c_long {
        // SAFETY: reads mimalloc's option table.
        unsafe { libmimalloc_sys::mi_option_get(id) }
    }

    /// The two options were set before the test harness started (the constructor runs in
    /// every binary of this crate), and the ids are the ones meant: their neighbours keep
    /// their documented defaults, which a shifted numbering would not.
    #[test]
    fn the_allocator_options_are_set_on_the_right_ids() {
        assert_eq!(option(ARENA_EAGER_COMMIT), 0);
        assert_eq!(option(PURGE_DELAY), 0);
        assert_eq!(
            option(ARENA_EAGER_COMMIT + 1),
            1,
            "purge_decommits defaults to 1"
        );
        assert_eq!(
            option(ARENA_EAGER_COMMIT + 2),
            0,
            "allow_large_os_pages defaults to 0"
        );
        assert_eq!(
            option(PURGE_DELAY - 1),
            1,
            "eager_commit_delay defaults to 1"
        );
        assert_eq!(option(PURGE_DELAY + 4), 32, "max_errors defaults to 32");
    }
}
