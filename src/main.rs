// glibc's allocator spends much of an import or reconcile in `malloc_consolidate` and in freeing rows on
// another thread than the one that parsed them; mimalloc keeps per-thread heaps and frees across threads
// cheaply.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    promptctl::cli::main()
}
