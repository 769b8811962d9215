//! The executor binary: rukong's executor with this crate's functions added. It takes
//! exactly `rukong executor`'s flags, `RUKONG_*` variables and settings file, so
//! `rukong up --executor-bin target/debug/custom-executor` can start it.

fn main() -> std::process::ExitCode {
    rukong_client::executor_main(custom_executor::registry())
}
