//! Gives the shared library a SONAME carrying the major version
//! (`libcllm_training_threaded.so.<major>`), so that programs linked against it record that name and
//! `make install` can ship `libcllm_training_threaded.so.<major>.<minor>.<patch>` with the usual links.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        let major =
            std::env::var("CARGO_PKG_VERSION_MAJOR").expect("cargo sets CARGO_PKG_VERSION_MAJOR");
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libcllm_training_threaded.so.{major}");
    }
}
