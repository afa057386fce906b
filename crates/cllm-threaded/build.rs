//! Gives the shared library a SONAME carrying the major version
//! (`libcllm_threaded.so.<major>`), so that programs linked against it record that name and
//! `make install` can ship `libcllm_threaded.so.<major>.<minor>.<patch>` with the usual links.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        let major =
            std::env::var("CARGO_PKG_VERSION_MAJOR").expect("cargo sets CARGO_PKG_VERSION_MAJOR");
        // Not rustc-cdylib-link-arg: cargo 1.95 passes that one on to the
        // cdylib of every dependent crate too, and the drop-in library then got
        // this SONAME. rustc-link-arg stays in this package (its test binaries
        // get the harmless extra -soname).
        println!("cargo:rustc-link-arg=-Wl,-soname,libcllm_threaded.so.{major}");
    }
}
