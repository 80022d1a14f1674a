//! Builds the web console (`web/`, docs/console.md) into the binary: installs its npm packages
//! with `npm ci` when `node_modules` is missing or older than `package-lock.json` (the only
//! step that needs the network), bundles it with esbuild (`node web/build.mjs`) into
//! `OUT_DIR/console` as gzip-compressed files, and writes `OUT_DIR/console_assets.rs`, the
//! list `src/api/console/assets.rs` embeds. Runs on the build host, so cross builds work
//! alike. Needs Node.js and npm (`scripts/install-deps` installs them).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    for watched in ["web", "package.json", "package-lock.json", "build.rs"] {
        println!("cargo:rerun-if-changed={watched}");
    }
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("console");

    if needs_install(&root) {
        run(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--silent"])
                .current_dir(&root),
            "npm ci (the console's packages from package-lock.json)",
        );
    }
    run(
        Command::new("node")
            .arg(root.join("web/build.mjs"))
            .arg(&out)
            .current_dir(&root),
        "node web/build.mjs (bundling the console with esbuild)",
    );

    let mut entries = Vec::new();
    for entry in std::fs::read_dir(&out).expect("the console's output directory") {
        let path = entry.expect("a console asset").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if let Some(asset) = name.strip_suffix(".gz") {
            entries.push(format!("    ({asset:?}, include_bytes!({path:?})),\n"));
        }
    }
    entries.sort();
    let list = format!(
        "/// The console's assets: (file name, gzip-compressed contents).\n\
         pub static ASSETS: &[(&str, &[u8])] = &[\n{}];\n",
        entries.concat()
    );
    let list_path = out.parent().expect("OUT_DIR").join("console_assets.rs");
    std::fs::write(&list_path, list).expect("writing console_assets.rs");
}

/// `node_modules` is missing, or older than the lock file (the packages changed).
fn needs_install(root: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (
        modified(&root.join("node_modules/.package-lock.json")),
        modified(&root.join("package-lock.json")),
    ) {
        (Some(installed), Some(lock)) => installed < lock,
        _ => true,
    }
}

fn run(command: &mut Command, what: &str) {
    let status = command.status().unwrap_or_else(|e| {
        panic!(
            "cannot run {what}: {e}. The console is built with Node.js and npm: \
             run scripts/install-deps (or install nodejs and npm) and build again."
        )
    });
    if !status.success() {
        panic!("{what} failed ({status}); see its output above");
    }
}
