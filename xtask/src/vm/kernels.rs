//! Debian kernel images for the VM tests: the newest package of each series
//! from Debian's package index (a private apt configuration under
//! `.cache/vm/apt`, so the machine's own apt sources are untouched), cached
//! as `vmlinuz` + `config` under `.cache/vm/kernels/`.
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, SystemTime},
};

use anyhow::{Context, Result, bail};

/// A kernel series the harness boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Series {
    V5_10,
    V6_1,
    V6_12,
}

impl Series {
    pub const ALL: [Series; 3] = [Series::V5_10, Series::V6_1, Series::V6_12];

    pub fn name(self) -> &'static str {
        match self {
            Series::V5_10 => "5.10",
            Series::V6_1 => "6.1",
            Series::V6_12 => "6.12",
        }
    }

    pub fn parse(name: &str) -> Option<Series> {
        Series::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Sort key of a package name of this series, `None` for other packages
    /// (other series, -dbg, -unsigned, -rt, -cloud and backport-ABI images).
    ///
    /// 5.10 and 6.1 are `linux-image-5.10.0-N-amd64`, `linux-image-6.1.0-N-amd64`;
    /// 6.12 in bookworm is `linux-image-6.12.N+deb12[.R]-amd64`.
    pub fn package_key(self, package: &str) -> Option<Vec<u64>> {
        let rest = package
            .strip_prefix("linux-image-")?
            .strip_suffix("-amd64")?;
        let number = |s: &str| -> Option<u64> {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse().ok())
                .flatten()
        };
        match self {
            Series::V5_10 => Some(vec![number(rest.strip_prefix("5.10.0-")?)?]),
            Series::V6_1 => Some(vec![number(rest.strip_prefix("6.1.0-")?)?]),
            Series::V6_12 => {
                let (patch, deb) = rest.strip_prefix("6.12.")?.split_once("+deb12")?;
                let revision = match deb {
                    "" => 0,
                    _ => number(deb.strip_prefix('.')?)?,
                };
                Some(vec![number(patch)?, revision])
            }
        }
    }
}

/// Suites that hold the three series (bullseye for 5.10, bookworm and its
/// security and backports suites for 6.1 and 6.12).
const SOURCES: &str = "\
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bullseye main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bullseye-security main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bookworm-security main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-backports main
";

/// The package index is refreshed when older than this.
const INDEX_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// A kernel ready to boot.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub series: Series,
    pub package: String,
    pub version: String,
    pub vmlinuz: PathBuf,
    pub config: PathBuf,
}

impl Kernel {
    /// Whether the kernel has the cgroup-v1 memory controller (6.12 in Debian
    /// is built without CONFIG_MEMCG_V1; older kernels have no such option).
    pub fn has_memcg_v1(&self) -> Result<bool> {
        let config = fs::read_to_string(&self.config)
            .with_context(|| format!("reading {}", self.config.display()))?;
        Ok(!config.lines().any(|l| l == "# CONFIG_MEMCG_V1 is not set"))
    }
}

pub struct KernelCache {
    root: PathBuf,
    index_refreshed: bool,
}

impl KernelCache {
    pub fn new(root: PathBuf) -> Self {
        Self {
            root,
            index_refreshed: false,
        }
    }

    fn apt_dir(&self) -> PathBuf {
        self.root.join("apt")
    }

    fn kernels_dir(&self) -> PathBuf {
        self.root.join("kernels")
    }

    fn apt(&self, program: &str) -> Command {
        let apt = self.apt_dir();
        let mut command = Command::new(program);
        command
            .arg(format!(
                "-oDir::Etc::SourceList={}",
                apt.join("sources.list").display()
            ))
            .arg("-oDir::Etc::SourceParts=/dev/null")
            .arg(format!(
                "-oDir::State::Lists={}",
                apt.join("lists").display()
            ))
            .arg(format!("-oDir::Cache={}", apt.join("cache").display()))
            .arg("-oAPT::Architectures=amd64")
            .arg("-oAcquire::Languages=none");
        if crate::is_root() {
            // Root apt downloads as _apt, which cannot write into this cache.
            command.arg("-oAPT::Sandbox::User=root");
        }
        command
    }

    /// `apt-get update` on the private lists, at most once a day.
    fn refresh_index(&mut self) -> Result<()> {
        if self.index_refreshed {
            return Ok(());
        }
        let apt = self.apt_dir();
        for dir in ["lists/partial", "cache/archives/partial"] {
            fs::create_dir_all(apt.join(dir))?;
        }
        fs::write(apt.join("sources.list"), SOURCES)?;
        let stamp = apt.join("updated");
        let fresh = fs::metadata(&stamp)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age < INDEX_MAX_AGE);
        if !fresh {
            let mut update = self.apt("apt-get");
            update.args(["-q", "update"]).stdout(Stdio::null());
            match crate::run(&mut update) {
                Ok(()) => fs::write(&stamp, "")?,
                // An older index still names kernels, all cached once used.
                Err(error) if stamp.exists() => {
                    eprintln!(
                        "xtask: warning: {error:#}; using the package index from an earlier run"
                    )
                }
                Err(error) => {
                    return Err(error.context("updating the private Debian package index"));
                }
            }
        }
        self.index_refreshed = true;
        Ok(())
    }

    /// The newest kernel package of `series` in the index, with its version.
    fn newest(&mut self, series: Series) -> Result<(String, String)> {
        self.refresh_index()?;
        let output = self
            .apt("apt-cache")
            .args(["search", "--names-only", "^linux-image-[0-9]"])
            .output()
            .context("running apt-cache search")?;
        if !output.status.success() {
            bail!(
                "apt-cache search failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let text = String::from_utf8_lossy(&output.stdout);
        let package = text
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter_map(|p| Some((series.package_key(p)?, p.to_owned())))
            .max()
            .map(|(_, p)| p)
            .with_context(|| {
                format!(
                    "no linux-image package of the {} series in the index",
                    series.name()
                )
            })?;
        let show = self
            .apt("apt-cache")
            .args(["show", "--no-all-versions", &package])
            .output()
            .context("running apt-cache show")?;
        let version = String::from_utf8_lossy(&show.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("Version: "))
            .map(str::to_owned)
            .with_context(|| format!("apt-cache show {package}: no version"))?;
        Ok((package, version))
    }

    /// The newest kernel of `series`, downloaded and unpacked unless cached.
    pub fn get(&mut self, series: Series) -> Result<Kernel> {
        let (package, version) = self.newest(series)?;
        let dir = self.kernels_dir().join(format!("{package}_{version}"));
        let kernel = Kernel {
            series,
            package: package.clone(),
            version: version.clone(),
            vmlinuz: dir.join("vmlinuz"),
            config: dir.join("config"),
        };
        if kernel.vmlinuz.exists() && kernel.config.exists() {
            return Ok(kernel);
        }
        let staging = self.kernels_dir().join(format!(".download-{package}"));
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir_all(&staging)?;
        let mut download = self.apt("apt-get");
        download
            .args(["-q", "download", &format!("{package}={version}")])
            .current_dir(&staging)
            .stdout(Stdio::null());
        crate::run(&mut download)?;
        let deb = fs::read_dir(&staging)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "deb"))
            .with_context(|| format!("apt-get download left no .deb in {}", staging.display()))?;
        extract_boot(&deb, &staging)?;
        let boot = staging.join("boot");
        let find = |prefix: &str| -> Result<PathBuf> {
            fs::read_dir(&boot)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .find(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(prefix))
                })
                .with_context(|| format!("{prefix}* missing from {}", deb.display()))
        };
        fs::rename(find("vmlinuz-")?, staging.join("vmlinuz"))?;
        fs::rename(find("config-")?, staging.join("config"))?;
        fs::remove_dir_all(&boot)?;
        fs::remove_file(&deb)?;
        let _ = fs::remove_dir_all(&dir);
        fs::rename(&staging, &dir)?;
        Ok(kernel)
    }
}

/// Unpacks only `./boot` of a kernel package (the modules are not needed:
/// everything the tests use is built in).
fn extract_boot(deb: &Path, into: &Path) -> Result<()> {
    eprintln!("xtask: unpacking {}", deb.display());
    let mut dpkg = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdout(Stdio::piped())
        .spawn()
        .context("starting dpkg-deb")?;
    let tar = Command::new("tar")
        .args(["-x", "-C"])
        .arg(into)
        .args(["--wildcards", "./boot/*"])
        .stdin(dpkg.stdout.take().context("dpkg-deb stdout")?)
        .status()
        .context("starting tar")?;
    let dpkg = dpkg.wait()?;
    if !dpkg.success() || !tar.success() {
        bail!(
            "unpacking {} failed (dpkg-deb {dpkg}, tar {tar})",
            deb.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names_select_one_series_and_no_variants() {
        assert_eq!(
            Series::V5_10.package_key("linux-image-5.10.0-46-amd64"),
            Some(vec![46])
        );
        assert_eq!(
            Series::V6_1.package_key("linux-image-6.1.0-56-amd64"),
            Some(vec![56])
        );
        assert_eq!(
            Series::V6_12.package_key("linux-image-6.12.117+deb12-amd64"),
            Some(vec![117, 0])
        );
        assert_eq!(
            Series::V6_12.package_key("linux-image-6.12.90+deb12.1-amd64"),
            Some(vec![90, 1])
        );
        for other in [
            "linux-image-5.10.0-46-amd64-dbg",
            "linux-image-5.10.0-46-amd64-unsigned",
            "linux-image-5.10.0-46-rt-amd64",
            "linux-image-5.10.0-46-cloud-amd64",
            "linux-image-6.1.0-0.deb11.52-amd64",
            "linux-image-6.12.117+deb12-cloud-amd64",
            "linux-image-6.12.117+deb13-amd64",
            "linux-image-amd64",
        ] {
            for series in Series::ALL {
                assert_eq!(series.package_key(other), None, "{other}");
            }
        }
        assert_eq!(
            Series::V6_1.package_key("linux-image-5.10.0-46-amd64"),
            None
        );
        // Newest by number, not by string order.
        assert!(
            Series::V6_12.package_key("linux-image-6.12.117+deb12-amd64")
                > Series::V6_12.package_key("linux-image-6.12.95+deb12-amd64")
        );
    }
}
