//! The `pulp-rs` binary: parses the command line and runs it (see `cli`).

mod cli;

/// jemalloc instead of glibc's malloc (capped at 2 arenas below, for memory): a sync makes and
/// drops many small values per unit (JSON fields, keys, URLs) on several threads. Tuned by
/// [`JEMALLOC_CONF`]. Measured on 2 cores against glibc (`bench --resync`, medians of 3): a
/// 10,000 x 4 KiB sync 0.84x the time on SQLite and 0.89x on PostgreSQL, 2,000 x 256 KiB 0.82x
/// and 0.94x; a Debian sync of 4,000 packages 0.87x. mimalloc was faster still but held 4-8x
/// the memory (186 MiB against 42 for the same bench).
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read at its first allocation (`_RJEM_MALLOC_CONF` in the environment
/// still overrides them): two arenas instead of four per core, dirty pages returned after a
/// second instead of ten, and none kept "muzzy". Peak RSS of a 2,000 x 256 KiB bench: 43-45
/// MiB with glibc, 60-65 with jemalloc's defaults, 49-54 with these.
#[used]
#[export_name = "_rjem_malloc_conf"]
static JEMALLOC_CONF: ConfString =
    ConfString(c"narenas:2,dirty_decay_ms:1000,muzzy_decay_ms:0".as_ptr());

/// A C string pointer that can be a `static` (jemalloc reads it as `const char *malloc_conf`).
#[repr(transparent)]
struct ConfString(*const std::ffi::c_char);
// SAFETY: it points at a constant byte string that nothing ever writes.
unsafe impl Sync for ConfString {}

fn main() -> std::process::ExitCode {
    limit_malloc_arenas();
    cli::main()
}

/// glibc's malloc (still behind SQLite's and other C libraries' allocations) gives each thread
/// that contends for it an arena of its own (up to eight per core), and memory freed into an
/// arena stays there: with the runtime's worker and blocking threads and one thread per SQLite
/// connection, a server's RSS grew by a third for nothing (`pulp-rs serve` syncing 4,000
/// Debian packages: 84 MiB, 60 MiB with two arenas, no slower).
/// Two arenas, unless `MALLOC_ARENA_MAX` says otherwise. Called before any thread starts.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a tunable of the allocator; no other thread exists yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}
