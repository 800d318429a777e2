fn main() -> std::process::ExitCode {
    promptctl::cli::main()
}
