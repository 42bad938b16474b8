//! Detached service processes and their pid files.
//!
//! A pid file records the pid and the process's start time (field 22 of `/proc/<pid>/stat`),
//! so `spindle down` never signals an unrelated process that reused the pid.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// How to start one service.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<OsString>,
    pub(crate) cwd: PathBuf,
    pub(crate) env: Vec<(String, String)>,
    /// For roles: the binary's fingerprint, recorded in the pid file.
    pub(crate) fingerprint: Option<String>,
}

/// The content of a pid file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PidRecord {
    pub(crate) pid: i32,
    pub(crate) start_ticks: u64,
}

/// What a pid file holds: the process, and for roles the binary it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PidFile {
    #[serde(flatten)]
    record: PidRecord,
    #[serde(default)]
    binary: Option<String>,
}

/// Identifies a build of a program: path, size and modification time. A role whose binary
/// changed since it started is restarted by `spindle up`.
pub(crate) fn fingerprint(program: &Path) -> Option<String> {
    let meta = fs::metadata(program).ok()?;
    let modified = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos();
    Some(format!("{}:{}:{modified}", program.display(), meta.len()))
}

/// Starts `launch` in its own process group, stdout and stderr appended to `log`, and records
/// it in `pid_file`. The process outlives `spindle up`.
pub(crate) fn spawn(launch: &Launch, log: &Path, pid_file: &Path) -> anyhow::Result<PidRecord> {
    let log_file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open log file `{}`", log.display()))?;
    let child = Command::new(&launch.program)
        .args(&launch.args)
        .current_dir(&launch.cwd)
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start `{}`", launch.program.display()))?;
    let pid = i32::try_from(child.id()).context("pid out of range")?;
    let record = PidRecord {
        pid,
        start_ticks: start_ticks(pid).context("the process exited at once")?,
    };
    write_pid_file(
        pid_file,
        &PidFile {
            record,
            binary: launch.fingerprint.clone(),
        },
    )?;
    // The child is not waited on: it belongs to the stack, not to this command.
    drop(child);
    Ok(record)
}

fn write_pid_file(path: &Path, file: &PidFile) -> anyhow::Result<()> {
    let tmp = path.with_extension("pid.tmp");
    fs::write(&tmp, serde_json::to_vec(file)?)?;
    fs::rename(&tmp, path)?;
    Ok(())
}

/// Reads a pid file; `None` when there is none.
pub(crate) fn read_pid_file(path: &Path) -> anyhow::Result<Option<PidRecord>> {
    Ok(read(path)?.map(|f| f.record))
}

/// The binary fingerprint a pid file recorded, if any.
pub(crate) fn recorded_binary(path: &Path) -> anyhow::Result<Option<String>> {
    Ok(read(path)?.and_then(|f| f.binary))
}

fn read(path: &Path) -> anyhow::Result<Option<PidFile>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
            format!("corrupt pid file `{}`: delete it", path.display())
        })?)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read `{}`", path.display())),
    }
}

/// True when the recorded process still runs (not a zombie, not a reused pid).
pub(crate) fn is_alive(record: PidRecord) -> bool {
    match proc_stat(record.pid) {
        Some((state, ticks)) => state != 'Z' && state != 'X' && ticks == record.start_ticks,
        None => false,
    }
}

fn start_ticks(pid: i32) -> Option<u64> {
    proc_stat(pid).map(|(_, ticks)| ticks)
}

/// The state letter and start time of a process, from `/proc/<pid>/stat`.
fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: split after the last `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let ticks = fields.get(19)?.parse().ok()?;
    Some((state, ticks))
}

/// Stops a recorded process: SIGTERM to its group, SIGKILL after `grace`. Returns whether it
/// had to be killed.
pub(crate) fn stop(record: PidRecord, grace: Duration) -> anyhow::Result<bool> {
    if !is_alive(record) {
        return Ok(false);
    }
    signal_group(record.pid, Signal::SIGTERM)?;
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if !is_alive(record) {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    signal_group(record.pid, Signal::SIGKILL)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while is_alive(record) {
        if Instant::now() > deadline {
            bail!("pid {} survived SIGKILL", record.pid);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(true)
}

fn signal_group(pid: i32, signal: Signal) -> anyhow::Result<()> {
    // The service leads its own process group (spawned with `process_group(0)`).
    match kill(Pid::from_raw(-pid), signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot send {signal} to pid {pid}")),
    }
}

/// Fails with a message naming the port when something already listens on it.
pub(crate) fn ensure_port_free(
    addr: SocketAddr,
    service: &str,
    setting: &str,
) -> anyhow::Result<()> {
    match TcpListener::bind(addr) {
        Ok(listener) => {
            drop(listener);
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => bail!(
            "port {} is already in use, so {service} cannot start on {addr}; stop whatever listens \
             there or move {service} to another port with `{setting}`",
            addr.port()
        ),
        Err(e) => {
            Err(e).with_context(|| format!("cannot check port {} for {service}", addr.port()))
        }
    }
}

/// The last lines of a log file, to show why a service did not come up.
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
