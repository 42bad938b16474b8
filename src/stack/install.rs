//! Installing the local stack's programs when they are missing.
//!
//! Every step checks before it acts, so a second `spindle up` installs nothing:
//! - tansu and s3s-fs: `<tools>/bin/`, else copied from a prebuilt folder, else
//!   `cargo install --root <tools>` with the features and versions that work on rustc 1.95;
//! - redis-server: `PATH`, else Debian's package (`apt-get`);
//! - the ClickHouse engine: a venv in `<tools>/venv` with the `chdb-core` wheel from PyPI.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use super::Output;

/// The chDB wheel the ClickHouse adapter is checked against (engine 26.9).
pub(crate) const CHDB_PACKAGE: &str = "chdb-core==26.9.0";

/// A program built from crates.io.
pub(crate) struct CargoTool {
    pub(crate) binary: &'static str,
    pub(crate) install_args: &'static [&'static str],
}

pub(crate) const TANSU: CargoTool = CargoTool {
    binary: "tansu",
    // Without `dynostore,libsql` tansu has no storage engine; `--locked` keeps its tested lockfile.
    install_args: &["tansu@0.6.0", "--locked", "--features", "dynostore,libsql"],
};

pub(crate) const S3S_FS: CargoTool = CargoTool {
    binary: "s3s-fs",
    // Newer releases need a newer rustc than 1.95.
    install_args: &["s3s-fs@0.14.1", "--locked", "--features", "binary"],
};

/// Returns the path of a crates.io tool, installing it when missing.
pub(crate) fn cargo_tool(
    tool: &CargoTool,
    tools_dir: &Path,
    prebuilt_dirs: &[PathBuf],
    out: &mut Output,
) -> anyhow::Result<PathBuf> {
    let bin_dir = tools_dir.join("bin");
    let target = bin_dir.join(tool.binary);
    if is_executable(&target) {
        return Ok(target);
    }
    std::fs::create_dir_all(&bin_dir)
        .with_context(|| format!("cannot create `{}`", bin_dir.display()))?;
    for dir in prebuilt_dirs {
        let candidate = dir.join(tool.binary);
        if is_executable(&candidate) {
            out.step(
                tool.binary,
                &format!("copying the prebuilt {}", candidate.display()),
            );
            let tmp = target.with_extension("partial");
            std::fs::copy(&candidate, &tmp)
                .with_context(|| format!("cannot copy `{}`", candidate.display()))?;
            std::fs::rename(&tmp, &target)?;
            return Ok(target);
        }
    }
    out.step(
        tool.binary,
        &format!(
            "installing with `cargo install {}` (several minutes on 2 cores)",
            tool.install_args.join(" ")
        ),
    );
    let status = Command::new("cargo")
        .arg("install")
        .args(tool.install_args)
        .arg("--root")
        .arg(tools_dir)
        .status()
        .context("cannot run `cargo install` (is cargo on PATH?)")?;
    if !status.success() || !is_executable(&target) {
        bail!(
            "`cargo install {}` failed ({status})",
            tool.install_args.join(" ")
        );
    }
    Ok(target)
}

/// Returns the path of `redis-server`, installing Debian's package when missing.
pub(crate) fn redis_server(out: &mut Output) -> anyhow::Result<PathBuf> {
    if let Some(path) = find_on_path("redis-server") {
        return Ok(path);
    }
    out.step("redis", "installing Debian's redis-server package");
    apt_install(&["redis-server"])?;
    // The package's own service is not wanted: the stack runs its own instance.
    find_on_path("redis-server").context("redis-server is still missing after apt-get install")
}

/// Returns the paths of Debian's `chromium` and `chromedriver`, installing both packages when
/// either is missing (the browser end-to-end test drives the web app through WebDriver).
pub(crate) fn browser() -> anyhow::Result<(PathBuf, PathBuf)> {
    if let (Some(chromium), Some(driver)) = (find_on_path("chromium"), find_on_path("chromedriver"))
    {
        return Ok((chromium, driver));
    }
    apt_install(&["chromium", "chromium-driver"])?;
    Ok((
        find_on_path("chromium").context("chromium is still missing after apt-get install")?,
        find_on_path("chromedriver")
            .context("chromedriver is still missing after apt-get install")?,
    ))
}

/// Returns the venv's Python with chDB importable, creating the venv when missing.
pub(crate) fn chdb_python(tools_dir: &Path, out: &mut Output) -> anyhow::Result<PathBuf> {
    let venv = tools_dir.join("venv");
    let python = venv.join("bin/python");
    if is_executable(&python) && imports_chdb(&python) {
        return Ok(python);
    }
    if !is_executable(&python) {
        out.step("clickhouse", "creating a Python venv for the chDB engine");
        let system_python = find_on_path("python3").context(
            "python3 is missing: install Python 3.9+ (Debian: `apt-get install python3 python3-venv`)",
        )?;
        let create = || {
            run(
                Command::new(&system_python)
                    .arg("-m")
                    .arg("venv")
                    .arg(&venv),
                "python3 -m venv",
            )
        };
        if create().is_err() {
            // Debian's python3 ships venv separately.
            out.step("clickhouse", "installing Debian's python3-venv package");
            std::fs::remove_dir_all(&venv).ok();
            apt_install(&["python3-venv"])?;
            create()?;
        }
    }
    out.step(
        "clickhouse",
        &format!("installing the ClickHouse engine (`pip install {CHDB_PACKAGE}`, ~180 MB)"),
    );
    run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .arg(CHDB_PACKAGE),
        "pip install chdb-core",
    )?;
    if !imports_chdb(&python) {
        bail!("chDB does not import after installing {CHDB_PACKAGE}");
    }
    Ok(python)
}

fn imports_chdb(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import chdb.state"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    let root = nix::unistd::geteuid().is_root();
    let sudo = find_on_path("sudo");
    if !root && sudo.is_none() {
        bail!(
            "{} is missing and this user cannot install packages: run `sudo apt-get install {}`",
            packages.join(", "),
            packages.join(" ")
        );
    }
    let apt = |args: &[&str]| {
        let mut command = if root {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.arg("apt-get");
            c
        };
        command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        command
    };
    run(&mut apt(&["update", "-qq"]), "apt-get update")?;
    let mut install = vec!["install", "-y", "-qq", "--no-install-recommends"];
    install.extend_from_slice(packages);
    run(&mut apt(&install), "apt-get install")
}

fn run(command: &mut Command, what: &str) -> anyhow::Result<()> {
    let output = command
        .output()
        .with_context(|| format!("cannot run `{what}`"))?;
    if !output.status.success() {
        bail!(
            "`{what}` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Looks a program up on `PATH` (and the sbin folders, where Debian puts servers).
#[allow(
    clippy::disallowed_methods,
    reason = "PATH is how the OS finds programs, not a Spindle setting"
)]
pub(crate) fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}
