//! The web app: `frontend/` built for wasm32 and bound with `wasm-bindgen` into
//! `<data dir>/web` (or `graphql.web_dir`), which `spindle graphql` serves at `/`.
//!
//! Nothing is downloaded at build time beyond crates.io: the wasm target comes from rustup, and
//! `wasm-bindgen-cli` must equal the `wasm-bindgen` version in Cargo.lock, so it is taken from a
//! prebuilt copy (`stack.prebuilt_dirs`) or `cargo install`ed at exactly that version into the
//! tools dir. A fingerprint of the sources skips the build when nothing changed.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use super::Output;
use crate::config::Config;

const FINGERPRINT: &str = ".fingerprint";

/// Where the built app lives.
pub fn dir(config: &Config) -> anyhow::Result<PathBuf> {
    if config.graphql.web_dir.as_os_str().is_empty() {
        Ok(super::data_dir(config)?.join("web"))
    } else {
        Ok(config.graphql.web_dir.clone())
    }
}

/// The source checkout this binary was built from.
fn source_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Builds the app when its sources changed since the last build; returns the served folder.
pub fn build(config: &Config, out: &mut Output) -> anyhow::Result<PathBuf> {
    let root = source_root();
    let frontend = root.join("frontend");
    if !frontend.join("Cargo.toml").is_file() {
        bail!(
            "the web app is built from a source checkout; `{}` has none",
            root.display()
        );
    }
    let target = dir(config)?;
    let fingerprint = fingerprint(&root)?;
    let stamp = std::fs::read_to_string(target.join(FINGERPRINT)).unwrap_or_default();
    if stamp == fingerprint && target.join("index.html").is_file() {
        out.step("web app", "built, sources unchanged");
        return Ok(target);
    }
    wasm_target(out)?;
    let version = wasm_bindgen_version(&root.join("Cargo.lock"))?;
    let bindgen = wasm_bindgen(config, &version, out)?;
    out.step("web app", "building `frontend/` for wasm32 (release)");
    let status = Command::new("cargo")
        .current_dir(&root)
        .args([
            "build",
            "--quiet",
            "-p",
            "spindle-frontend",
            "--target",
            "wasm32-unknown-unknown",
            "--release",
        ])
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("building `spindle-frontend` for wasm32 failed ({status})");
    }
    let wasm = target_dir(&root)?.join("wasm32-unknown-unknown/release/spindle_frontend.wasm");
    let staging = target.with_extension("partial");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)
        .with_context(|| format!("cannot create `{}`", staging.display()))?;
    let status = Command::new(&bindgen)
        .args([
            "--target",
            "web",
            "--no-typescript",
            "--out-name",
            "spindle_frontend",
            "--out-dir",
        ])
        .arg(&staging)
        .arg(&wasm)
        .status()
        .with_context(|| format!("cannot run `{}`", bindgen.display()))?;
    if !status.success() {
        bail!("`wasm-bindgen` failed on `{}` ({status})", wasm.display());
    }
    for asset in ["index.html", "style.css"] {
        let source = frontend.join(asset);
        if source.is_file() {
            std::fs::copy(&source, staging.join(asset))
                .with_context(|| format!("cannot copy `{}`", source.display()))?;
        }
    }
    if !staging.join("index.html").is_file() {
        bail!("`frontend/index.html` is missing");
    }
    std::fs::write(staging.join(FINGERPRINT), &fingerprint)?;
    let _ = std::fs::remove_dir_all(&target);
    std::fs::rename(&staging, &target)
        .with_context(|| format!("cannot move the build to `{}`", target.display()))?;
    out.step("web app", &format!("built into {}", target.display()));
    Ok(target)
}

/// A hash of every file under `frontend/` (path, size, modification time) and of Cargo.lock.
fn fingerprint(root: &Path) -> anyhow::Result<String> {
    let mut files = Vec::new();
    collect(&root.join("frontend"), &mut files)?;
    files.push(root.join("Cargo.lock"));
    files.sort();
    let mut hasher = DefaultHasher::new();
    for file in files {
        let meta = std::fs::metadata(&file)
            .with_context(|| format!("cannot read `{}`", file.display()))?;
        file.hash(&mut hasher);
        meta.len().hash(&mut hasher);
        meta.modified().ok().hash(&mut hasher);
    }
    Ok(format!("{:016x}", hasher.finish()))
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in
        std::fs::read_dir(dir).with_context(|| format!("cannot list `{}`", dir.display()))?
    {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, files)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}

fn wasm_target(out: &mut Output) -> anyhow::Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("cannot run rustup")?;
    if String::from_utf8_lossy(&installed.stdout).contains("wasm32-unknown-unknown") {
        return Ok(());
    }
    out.step(
        "web app",
        "adding the wasm32-unknown-unknown target (rustup)",
    );
    let status = Command::new("rustup")
        .args(["target", "add", "wasm32-unknown-unknown"])
        .status()
        .context("cannot run rustup")?;
    if !status.success() {
        bail!("`rustup target add wasm32-unknown-unknown` failed ({status})");
    }
    Ok(())
}

/// The `wasm-bindgen` version Cargo.lock pins.
pub(crate) fn wasm_bindgen_version(lock: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(lock)
        .with_context(|| format!("cannot read `{}`", lock.display()))?;
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "name = \"wasm-bindgen\""
            && let Some(version) = lines
                .next()
                .and_then(|l| l.trim().strip_prefix("version = "))
        {
            return Ok(version.trim_matches('"').to_owned());
        }
    }
    bail!("`{}` pins no `wasm-bindgen`", lock.display())
}

/// `wasm-bindgen` of exactly `version`: installed before, a prebuilt copy, or `cargo install`.
fn wasm_bindgen(config: &Config, version: &str, out: &mut Output) -> anyhow::Result<PathBuf> {
    let tools = &config.stack.tools_dir;
    let name = format!("wasm-bindgen-{version}");
    let target = tools.join("bin").join(&name);
    if target.is_file() {
        return Ok(target);
    }
    std::fs::create_dir_all(tools.join("bin"))?;
    for dir in &config.stack.prebuilt_dirs {
        let candidate = dir.join(&name);
        if candidate.is_file() {
            out.step(
                "web app",
                &format!("copying the prebuilt {}", candidate.display()),
            );
            let partial = target.with_extension("partial");
            std::fs::copy(&candidate, &partial)
                .with_context(|| format!("cannot copy `{}`", candidate.display()))?;
            std::fs::rename(&partial, &target)?;
            return Ok(target);
        }
    }
    out.step(
        "web app",
        &format!("installing wasm-bindgen-cli {version} (`cargo install`, a few minutes)"),
    );
    let root = tools.join(&name);
    // Not `--locked`: its lockfile pins a `webpki-roots` release the registry no longer serves.
    let status = Command::new("cargo")
        .args([
            "install",
            "wasm-bindgen-cli",
            "--version",
            version,
            "--root",
        ])
        .arg(&root)
        .status()
        .context("cannot run `cargo install`")?;
    let installed = root.join("bin/wasm-bindgen");
    if !status.success() || !installed.is_file() {
        bail!("`cargo install wasm-bindgen-cli --version {version}` failed ({status})");
    }
    std::fs::copy(&installed, &target)?;
    Ok(target)
}

/// Cargo's target directory for this checkout (it honours `CARGO_TARGET_DIR`).
fn target_dir(root: &Path) -> anyhow::Result<PathBuf> {
    let output = Command::new("cargo")
        .current_dir(root)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .context("cannot run `cargo metadata`")?;
    if !output.status.success() {
        bail!(
            "`cargo metadata` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("`cargo metadata` printed no JSON")?;
    metadata["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("`cargo metadata` names no target directory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pinned_wasm_bindgen_version_is_read_from_the_lock() {
        let dir = tempfile::tempdir().expect("dir");
        let lock = dir.path().join("Cargo.lock");
        std::fs::write(
            &lock,
            "[[package]]\nname = \"wasm-bindgen-macro\"\nversion = \"1.0.0\"\n\n[[package]]\nname = \"wasm-bindgen\"\nversion = \"0.2.130\"\n",
        )
        .expect("written");
        assert_eq!(wasm_bindgen_version(&lock).expect("found"), "0.2.130");
        std::fs::write(&lock, "").expect("written");
        assert!(wasm_bindgen_version(&lock).is_err());
    }
}
