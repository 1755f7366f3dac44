//! Debian kernel images for the VM tests: the newest package of each series
//! from Debian's package index (a private apt configuration under
//! `.cache/vm/apt`, so the machine's own apt sources are untouched, reaching
//! Debian through the mirror those sources name), cached as `vmlinuz` +
//! `config` under `.cache/vm/kernels/`.
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, SystemTime},
};

use anyhow::{Context, Result, bail, ensure};

use crate::arch::Arch;

/// A kernel series the harness boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Series {
    V5_10,
    V6_1,
    V6_12,
    /// Debian's newest kernel in any suite the harness reads (backports,
    /// unstable): `linux-image-7.3.4+deb13-amd64` today.
    Newest,
    /// The same, in the `-cloud-amd64` flavour (a smaller configuration
    /// for virtual machines).
    NewestCloud,
    /// The same, in arm64's `-arm64-16k` flavour (16 KiB pages).
    Newest16k,
}

impl Series {
    pub const ALL: [Series; 6] = [
        Series::V5_10,
        Series::V6_1,
        Series::V6_12,
        Series::Newest,
        Series::NewestCloud,
        Series::Newest16k,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Series::V5_10 => "5.10",
            Series::V6_1 => "6.1",
            Series::V6_12 => "6.12",
            Series::Newest => "newest",
            Series::NewestCloud => "newest-cloud",
            Series::Newest16k => "newest-16k",
        }
    }

    pub fn parse(name: &str) -> Option<Series> {
        Series::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The names `parse` knows, for messages.
    pub fn names() -> String {
        Series::ALL.map(Series::name).join(", ")
    }

    /// Sort key of a package name of this series on `arch`, `None` for
    /// other packages (other series, -dbg, -unsigned, -rt and backport-ABI
    /// images; other flavours than the series' own, see [`Arch::flavour`]).
    ///
    /// 5.10 and 6.1 are `linux-image-5.10.0-N-amd64`, `linux-image-6.1.0-N-amd64`;
    /// 6.12 in bookworm is `linux-image-6.12.N+deb12[.R]-amd64`; the newest
    /// are `linux-image-X.Y.Z+debN[.R]-<flavour>` of any suite, the
    /// highest X.Y.Z (then R) first. arm64 alike with `arm64` flavours.
    pub fn package_key(self, arch: Arch, package: &str) -> Option<Vec<u64>> {
        let rest = package
            .strip_prefix("linux-image-")?
            .strip_suffix(arch.flavour(self).as_str())?
            .strip_suffix('-')?;
        let number = |s: &str| -> Option<u64> {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse().ok())
                .flatten()
        };
        // "X.Y.Z+debN[.R]" as [X, Y, Z, R, N].
        let release = |rest: &str| -> Option<Vec<u64>> {
            let (version, deb) = rest.split_once("+deb")?;
            let (abi, revision) = match deb.split_once('.') {
                Some((abi, revision)) => (abi, number(revision)?),
                None => (deb, 0),
            };
            let mut key = version
                .split('.')
                .map(number)
                .collect::<Option<Vec<u64>>>()?;
            (key.len() == 3).then_some(())?;
            key.extend([revision, number(abi)?]);
            Some(key)
        };
        match self {
            Series::V5_10 => Some(vec![number(rest.strip_prefix("5.10.0-")?)?]),
            Series::V6_1 => Some(vec![number(rest.strip_prefix("6.1.0-")?)?]),
            Series::V6_12 => {
                let key = release(rest)?;
                (key[..2] == [6, 12] && key[4] == 12).then_some(key)
            }
            Series::Newest | Series::NewestCloud | Series::Newest16k => release(rest),
        }
    }
}

/// Suites of the Debian archive the series come from: bullseye for 5.10,
/// bookworm and its backports for 6.1 and 6.12, trixie-backports and
/// unstable for the newest.
const ARCHIVE_SUITES: &[&str] = &[
    "bullseye",
    "bookworm",
    "bookworm-backports",
    "trixie-backports",
    "sid",
];
/// Suites of the security archive.
const SECURITY_SUITES: &[&str] = &["bullseye-security", "bookworm-security"];
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// One `deb` entry of the machine's apt sources.
#[derive(Debug, Clone, PartialEq)]
struct AptSource {
    uri: String,
    suites: Vec<String>,
}

/// The `deb` entries of apt sources, deb822 (`.sources`) or one-line
/// (`.list`) format.
fn apt_sources(text: &str, deb822: bool) -> Vec<AptSource> {
    let mut out = Vec::new();
    if deb822 {
        for stanza in text.split("\n\n") {
            let field = |name: &str| {
                stanza
                    .lines()
                    .filter(|l| !l.starts_with('#'))
                    .find_map(|l| {
                        let (key, value) = l.split_once(':')?;
                        key.trim()
                            .eq_ignore_ascii_case(name)
                            .then(|| value.split_whitespace().map(str::to_owned).collect())
                    })
            };
            let types: Vec<String> = field("Types").unwrap_or_default();
            let enabled: Vec<String> = field("Enabled").unwrap_or_default();
            if !types.iter().any(|t| t == "deb") || enabled.iter().any(|e| e == "no") {
                continue;
            }
            let suites: Vec<String> = field("Suites").unwrap_or_default();
            for uri in field("URIs").unwrap_or_default() {
                out.push(AptSource {
                    uri,
                    suites: suites.clone(),
                });
            }
        }
    } else {
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or_default().trim();
            let Some(rest) = line
                .strip_prefix("deb")
                .filter(|r| r.starts_with([' ', '\t']))
            else {
                continue;
            };
            // Options, "[signed-by=...]", may hold spaces.
            let rest = match rest.trim_start().strip_prefix('[') {
                Some(options) => options.split_once(']').map_or("", |(_, r)| r),
                None => rest,
            };
            if let [uri, suite, ..] = rest.split_whitespace().collect::<Vec<_>>().as_slice() {
                out.push(AptSource {
                    uri: (*uri).to_owned(),
                    suites: vec![(*suite).to_owned()],
                });
            }
        }
    }
    out
}

/// Debian's suite names (codenames and aliases), which tell a Debian source
/// from another distribution's whatever its mirror's URI looks like.
const DEBIAN_SUITES: &[&str] = &[
    "buster",
    "bullseye",
    "bookworm",
    "trixie",
    "forky",
    "duke",
    "sid",
    "oldoldstable",
    "oldstable",
    "stable",
    "testing",
    "unstable",
    "experimental",
];

/// The Debian archive and security archive URIs the machine's apt sources
/// use: the archive is the source of a Debian suite that is not
/// `-security`, the security archive that of a `-security` one.
fn debian_mirrors(sources: &[AptSource]) -> Result<(String, String)> {
    let is_security = |s: &AptSource| s.suites.iter().any(|x| x.ends_with("-security"));
    let is_debian = |s: &AptSource| {
        s.suites.iter().any(|suite| {
            let base = suite.split(['-', '/']).next().unwrap_or_default();
            DEBIAN_SUITES.contains(&base)
        })
    };
    let archive = sources
        .iter()
        .find(|s| is_debian(s) && !is_security(s))
        .context("the machine's apt sources name no Debian suite (bookworm, trixie, ...): no mirror to read Debian's kernels from")?;
    let security = sources
        .iter()
        .find(|s| is_debian(s) && is_security(s))
        .map(|s| s.uri.clone())
        // The usual layout: debian-security beside debian.
        .unwrap_or_else(|| format!("{}-security", archive.uri.trim_end_matches('/')));
    Ok((
        archive.uri.trim_end_matches('/').to_owned(),
        security.trim_end_matches('/').to_owned(),
    ))
}

/// The machine's apt sources (`/etc/apt/sources.list` and
/// `/etc/apt/sources.list.d/*.{list,sources}`).
fn machine_apt_sources() -> Vec<AptSource> {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut parts: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
        parts.sort();
        files.extend(parts);
    }
    let mut sources = Vec::new();
    for file in files {
        let deb822 = file.extension().is_some_and(|x| x == "sources");
        if !(deb822 || file.extension().is_some_and(|x| x == "list")) {
            continue;
        }
        if let Ok(text) = fs::read_to_string(&file) {
            sources.extend(apt_sources(&text, deb822));
        }
    }
    sources
}

/// The private sources.list: every suite the series need, through the
/// machine's own Debian mirror.
fn private_sources_list(archive: &str, security: &str) -> String {
    let line = |uri: &str, suite: &str| format!("deb [signed-by={KEYRING}] {uri} {suite} main\n");
    ARCHIVE_SUITES
        .iter()
        .map(|suite| line(archive, suite))
        .chain(SECURITY_SUITES.iter().map(|suite| line(security, suite)))
        .collect()
}

/// The package index is refreshed when older than this.
const INDEX_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// A kernel ready to boot.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub arch: Arch,
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
        let config = self.read_config()?;
        Ok(!config.lines().any(|l| l == "# CONFIG_MEMCG_V1 is not set"))
    }

    /// Whether the kernel is built with `option` (`CONFIG_KPROBES`), as
    /// `=y` or `=m`.
    pub fn has(&self, option: &str) -> Result<bool> {
        let config = self.read_config()?;
        Ok(config.lines().any(|l| {
            l.strip_prefix(option)
                .is_some_and(|v| v == "=y" || v == "=m")
        }))
    }

    fn read_config(&self) -> Result<String> {
        fs::read_to_string(&self.config)
            .with_context(|| format!("reading {}", self.config.display()))
    }
}

pub struct KernelCache {
    root: PathBuf,
    arch: Arch,
    index_refreshed: bool,
}

impl KernelCache {
    pub fn new(root: PathBuf, arch: Arch) -> Self {
        Self {
            root,
            arch,
            index_refreshed: false,
        }
    }

    /// One package index per architecture (amd64's keeps its old place).
    fn apt_dir(&self) -> PathBuf {
        match self.arch {
            Arch::X86_64 => self.root.join("apt"),
            arch => self.root.join(format!("apt-{}", arch.debian())),
        }
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
            .arg(format!("-oAPT::Architectures={}", self.arch.debian()))
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
        let (archive, security) = debian_mirrors(&machine_apt_sources())?;
        let sources = private_sources_list(&archive, &security);
        fs::write(apt.join("sources.list"), &sources)?;
        // The stamp holds the sources it was updated from: a new suite
        // refreshes the index at once.
        let stamp = apt.join("updated");
        let fresh = fs::read_to_string(&stamp).is_ok_and(|s| s == sources)
            && fs::metadata(&stamp)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age < INDEX_MAX_AGE);
        if !fresh {
            let mut update = self.apt("apt-get");
            update.args(["-q", "update"]).stdout(Stdio::null());
            match crate::run(&mut update) {
                Ok(()) => fs::write(&stamp, &sources)?,
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

    /// The newest kernel package of `series` in the index, with its version
    /// and its `Depends`.
    fn newest(&mut self, series: Series) -> Result<(String, String, String)> {
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
            .filter_map(|p| Some((series.package_key(self.arch, p)?, p.to_owned())))
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
        let show = String::from_utf8_lossy(&show.stdout);
        let field = |name: &str| {
            show.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
                .map(str::to_owned)
        };
        let version =
            field("Version").with_context(|| format!("apt-cache show {package}: no version"))?;
        Ok((package, version, field("Depends").unwrap_or_default()))
    }

    /// The newest kernel of `series`, downloaded and unpacked unless cached.
    pub fn get(&mut self, series: Series) -> Result<Kernel> {
        let (package, version, depends) = self.newest(series)?;
        let dir = self.kernels_dir().join(format!("{package}_{version}"));
        let kernel = Kernel {
            arch: self.arch,
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
        let packages = file_packages(&package, &depends);
        let mut download = self.apt("apt-get");
        download
            .args(["-q", "download"])
            .args(packages.iter().map(|p| format!("{p}={version}")))
            .current_dir(&staging)
            .stdout(Stdio::null());
        crate::run(&mut download)?;
        let release = package
            .strip_prefix("linux-image-")
            .expect("a linux-image package");
        let mut found = [None, None];
        for name in &packages {
            let deb = fs::read_dir(&staging)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .find(|p| {
                    p.extension().is_some_and(|x| x == "deb")
                        && p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with(&format!("{name}_")))
                })
                .with_context(|| {
                    format!("apt-get download left no {name} in {}", staging.display())
                })?;
            let members = deb_members(&deb)?;
            let mut wanted = Vec::new();
            for (slot, file) in found.iter_mut().zip(["vmlinuz", "config"]) {
                if slot.is_none()
                    && let Some(member) = kernel_file(&members, release, file)
                {
                    *slot = Some(staging.join(member.trim_start_matches("./")));
                    wanted.push(member);
                }
            }
            if !wanted.is_empty() {
                extract(&deb, &staging, &wanted)?;
            }
            fs::remove_file(&deb)?;
        }
        for (path, file) in found.iter().zip(["vmlinuz", "config"]) {
            let path = path
                .as_ref()
                .with_context(|| format!("no {file} of {release} in {}", packages.join(", ")))?;
            fs::rename(path, staging.join(file))?;
        }
        for unpacked in ["boot", "usr"] {
            let _ = fs::remove_dir_all(staging.join(unpacked));
        }
        let _ = fs::remove_dir_all(&dir);
        fs::rename(&staging, &dir)?;
        Ok(kernel)
    }

    /// The kernel module `name` (`brd`, ...) of `kernel`, uncompressed, from
    /// its packages (downloaded again the first time: `get` keeps only
    /// `vmlinuz` and `config`; from 6.19 the modules are in
    /// `linux-modules-<release>`, see [`module_packages`]). The guests load
    /// it with busybox `insmod`.
    pub fn module(&mut self, kernel: &Kernel, name: &str) -> Result<PathBuf> {
        let dir = kernel
            .vmlinuz
            .parent()
            .context("kernel directory")?
            .join("modules");
        let module = dir.join(format!("{name}.ko"));
        if module.exists() {
            return Ok(module);
        }
        let staging = self
            .kernels_dir()
            .join(format!(".download-{}-{name}", kernel.package));
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir_all(&staging)?;
        let (_, _, depends) = self.newest(kernel.series)?;
        let packages = module_packages(&kernel.package, &depends);
        let mut download = self.apt("apt-get");
        download
            .args(["-q", "download"])
            .args(packages.iter().map(|p| format!("{p}={}", kernel.version)))
            .current_dir(&staging)
            .stdout(Stdio::null());
        crate::run(&mut download)?;
        let debs: Vec<PathBuf> = fs::read_dir(&staging)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "deb"))
            .collect();
        let is_module = |member: &str| {
            let file = member.rsplit('/').next().unwrap_or_default();
            member.contains("/lib/modules/")
                && (file == format!("{name}.ko") || file.starts_with(&format!("{name}.ko.")))
        };
        let mut found = None;
        for deb in &debs {
            if let Some(member) = deb_members(deb)?.into_iter().find(|m| is_module(m)) {
                found = Some((deb, member));
                break;
            }
        }
        let (deb, member) =
            found.with_context(|| format!("{name}.ko* missing from {}", packages.join(", ")))?;
        extract(deb, &staging, std::slice::from_ref(&member))?;
        let found = staging.join(member.trim_start_matches("./"));
        let data = match found.extension().and_then(|x| x.to_str()) {
            Some("ko") => fs::read(&found)?,
            Some("xz") => decompress("xz", &found)?,
            Some("zst") => decompress("zstd", &found)?,
            other => bail!("{}: unknown module compression {other:?}", found.display()),
        };
        fs::create_dir_all(&dir)?;
        fs::write(&module, data)?;
        fs::remove_dir_all(&staging)?;
        Ok(module)
    }
}

/// Debian's busybox-static for a guest architecture: the build of the same
/// source version as the host's (`host_version`, a binNMU suffix `+bN`
/// aside), so the host's busybox can list its applets and check the init
/// script's syntax for it.
impl KernelCache {
    pub fn busybox(&mut self, host_version: &str) -> Result<PathBuf> {
        self.refresh_index()?;
        // The index holds the host's architecture too: name the package's.
        let package = format!("busybox-static:{}", self.arch.debian());
        let show = crate::run_output(self.apt("apt-cache").args(["show", &package]))?;
        let source = |v: &str| v.split("+b").next().unwrap_or(v).to_owned();
        let versions: Vec<&str> = show
            .lines()
            .filter_map(|l| l.strip_prefix("Version: "))
            .collect();
        let version = versions
            .iter()
            .find(|v| **v == host_version)
            .or_else(|| versions.iter().find(|v| source(v) == source(host_version)))
            .with_context(|| {
                format!(
                    "no busybox-static:{} of the host's version {host_version} in the index (has {})",
                    self.arch.debian(),
                    versions.join(", ")
                )
            })?;
        let dir = self
            .root
            .join(format!("busybox/{}_{version}", self.arch.debian()));
        let busybox = dir.join("busybox");
        if busybox.exists() {
            return Ok(busybox);
        }
        let staging = self
            .root
            .join(format!(".download-busybox-{}", self.arch.debian()));
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir_all(&staging)?;
        crate::run(
            self.apt("apt-get")
                .args(["-q", "download", &format!("{package}={version}")])
                .current_dir(&staging)
                .stdout(Stdio::null()),
        )?;
        let deb = fs::read_dir(&staging)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "deb"))
            .with_context(|| format!("apt-get download left no .deb in {}", staging.display()))?;
        extract(&deb, &staging, &["./bin/busybox".to_owned()])?;
        fs::create_dir_all(&dir)?;
        fs::rename(staging.join("bin/busybox"), &busybox)?;
        fs::remove_dir_all(&staging)?;
        Ok(busybox)
    }
}

/// The packages that hold a kernel's modules: the image package up to
/// 6.18; from 6.19, `linux-modules-<release>` among its `Depends`.
fn module_packages(image: &str, depends: &str) -> Vec<String> {
    let release = image.strip_prefix("linux-image-").unwrap_or(image);
    let modules = format!("linux-modules-{release}");
    let depended = depends
        .split([',', '|'])
        .filter_map(|d| d.split_whitespace().next())
        .any(|d| d == modules);
    match depended {
        true => vec![modules],
        false => vec![image.to_owned()],
    }
}

/// `tool -dc file` (xz, zstd) into memory.
fn decompress(tool: &str, file: &Path) -> Result<Vec<u8>> {
    crate::run_stdout(Command::new(tool).arg("-dc").arg(file))
}

/// The packages that hold a kernel's files. Up to 6.18 the image package
/// has `/boot/vmlinuz-<release>` and `/boot/config-<release>`; from 6.19 it
/// is only a meta package, and the kernel is in `linux-binary-<release>`
/// (`/usr/lib/modules/<release>/vmlinuz`), its config in `linux-base-<release>`
/// (`/usr/lib/modules/<release>/config`), both among its `Depends`.
fn file_packages(image: &str, depends: &str) -> Vec<String> {
    let release = image.strip_prefix("linux-image-").unwrap_or(image);
    let parts = [
        format!("linux-binary-{release}"),
        format!("linux-base-{release}"),
    ];
    let depended: Vec<&str> = depends
        .split([',', '|'])
        .filter_map(|d| d.split_whitespace().next())
        .collect();
    std::iter::once(image.to_owned())
        .chain(parts.into_iter().filter(|p| depended.contains(&p.as_str())))
        .collect()
}

/// The member of a kernel package that is the kernel's `vmlinuz` or `config`,
/// in either layout.
fn kernel_file(members: &[String], release: &str, file: &str) -> Option<String> {
    let wanted = [
        format!("./boot/{file}-{release}"),
        format!("./usr/lib/modules/{release}/{file}"),
    ];
    members.iter().find(|m| wanted.contains(m)).cloned()
}

/// The paths in a .deb's data archive.
fn deb_members(deb: &Path) -> Result<Vec<String>> {
    let mut dpkg = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdout(Stdio::piped())
        .spawn()
        .context("starting dpkg-deb")?;
    let tar = Command::new("tar")
        .arg("-t")
        .stdin(dpkg.stdout.take().context("dpkg-deb stdout")?)
        .output()
        .context("starting tar")?;
    let dpkg = dpkg.wait()?;
    ensure!(
        dpkg.success() && tar.status.success(),
        "listing {} failed (dpkg-deb {dpkg}, tar {})",
        deb.display(),
        tar.status
    );
    Ok(String::from_utf8_lossy(&tar.stdout)
        .lines()
        .map(str::to_owned)
        .collect())
}

/// Unpacks members of a kernel package (the modules are not needed:
/// everything the tests use is built in).
fn extract(deb: &Path, into: &Path, members: &[String]) -> Result<()> {
    eprintln!(
        "xtask: unpacking {} from {}",
        members.join(" "),
        deb.display()
    );
    let mut dpkg = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdout(Stdio::piped())
        .spawn()
        .context("starting dpkg-deb")?;
    let tar = Command::new("tar")
        .args(["-x", "-C"])
        .arg(into)
        .args(members)
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

/// Each architecture's kernel table (here, beside [`Series`], so that
/// `arch.rs` needs nothing of this file).
impl Arch {
    /// The series `--kernel all` boots. arm64: no cloud flavour (its
    /// config is the generic one's minus drivers), and the 16 KiB-page
    /// flavour, which proves page sizes are read from the kernel.
    pub fn series(self) -> &'static [Series] {
        match self {
            Arch::X86_64 => &[
                Series::V5_10,
                Series::V6_1,
                Series::V6_12,
                Series::Newest,
                Series::NewestCloud,
            ],
            Arch::Arm64 => &[
                Series::V6_1,
                Series::V6_12,
                Series::Newest,
                Series::Newest16k,
            ],
        }
    }

    /// The kernel flavour `series` is packaged as: `linux-image-<release>-<flavour>`.
    pub fn flavour(self, series: Series) -> String {
        match series {
            Series::NewestCloud => format!("cloud-{}", self.debian()),
            Series::Newest16k => format!("{}-16k", self.debian()),
            _ => self.debian().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names_select_one_series_and_no_variants() {
        assert_eq!(
            Series::V5_10.package_key(Arch::X86_64, "linux-image-5.10.0-46-amd64"),
            Some(vec![46])
        );
        assert_eq!(
            Series::V6_1.package_key(Arch::X86_64, "linux-image-6.1.0-56-amd64"),
            Some(vec![56])
        );
        assert_eq!(
            Series::V6_12.package_key(Arch::X86_64, "linux-image-6.12.117+deb12-amd64"),
            Some(vec![6, 12, 117, 0, 12])
        );
        assert_eq!(
            Series::V6_12.package_key(Arch::X86_64, "linux-image-6.12.90+deb12.1-amd64"),
            Some(vec![6, 12, 90, 1, 12])
        );
        assert_eq!(
            Series::Newest.package_key(Arch::X86_64, "linux-image-7.3.4+deb13-amd64"),
            Some(vec![7, 3, 4, 0, 13])
        );
        assert_eq!(
            Series::NewestCloud.package_key(Arch::X86_64, "linux-image-7.3.4+deb13-cloud-amd64"),
            Some(vec![7, 3, 4, 0, 13])
        );
        for other in [
            "linux-image-5.10.0-46-amd64-dbg",
            "linux-image-5.10.0-46-amd64-unsigned",
            "linux-image-5.10.0-46-rt-amd64",
            "linux-image-5.10.0-46-cloud-amd64",
            "linux-image-6.1.0-0.deb11.52-amd64",
            "linux-image-7.3.4+deb13-rt-amd64",
            "linux-image-7.3.4+deb13-amd64-dbg",
            "linux-image-7.3.4+deb13-amd64-unsigned",
            "linux-image-amd64",
            "linux-image-cloud-amd64",
        ] {
            for series in Series::ALL {
                assert_eq!(series.package_key(Arch::X86_64, other), None, "{other}");
            }
        }
        for (package, series) in [
            ("linux-image-5.10.0-46-amd64", Series::V6_1),
            ("linux-image-6.12.117+deb13-amd64", Series::V6_12),
            ("linux-image-6.12.117+deb12-cloud-amd64", Series::V6_12),
            ("linux-image-7.3.4+deb13-cloud-amd64", Series::Newest),
            ("linux-image-7.3.4+deb13-amd64", Series::NewestCloud),
        ] {
            assert_eq!(series.package_key(Arch::X86_64, package), None, "{package}");
        }
        // Newest by number, not by string order; the release before the ABI.
        let key = |series: Series, p: &str| series.package_key(Arch::X86_64, p).unwrap();
        assert!(
            key(Series::V6_12, "linux-image-6.12.117+deb12-amd64")
                > key(Series::V6_12, "linux-image-6.12.95+deb12-amd64")
        );
        assert!(
            key(Series::Newest, "linux-image-7.3.4+deb13-amd64")
                > key(Series::Newest, "linux-image-7.2.13+deb14-amd64")
        );
        assert!(
            key(Series::Newest, "linux-image-7.10.1+deb13-amd64")
                > key(Series::Newest, "linux-image-7.3.4+deb13-amd64")
        );
        assert_eq!(Series::parse("newest-cloud"), Some(Series::NewestCloud));
    }

    #[test]
    fn arm64_packages_of_each_series_and_flavour() {
        let key = |series: Series, p: &str| series.package_key(Arch::Arm64, p);
        assert_eq!(
            key(Series::V6_1, "linux-image-6.1.0-56-arm64"),
            Some(vec![56])
        );
        assert_eq!(
            key(Series::V6_12, "linux-image-6.12.117+deb12-arm64"),
            Some(vec![6, 12, 117, 0, 12])
        );
        assert_eq!(
            key(Series::Newest16k, "linux-image-7.3.4+deb13-arm64-16k"),
            Some(vec![7, 3, 4, 0, 13])
        );
        for (package, series) in [
            ("linux-image-6.12.117+deb12-amd64", Series::V6_12),
            ("linux-image-7.3.4+deb13-arm64-16k", Series::Newest),
            ("linux-image-7.3.4+deb13-arm64", Series::Newest16k),
            ("linux-image-7.3.4+deb13-cloud-arm64", Series::Newest),
            ("linux-image-7.3.4+deb13-rt-arm64", Series::Newest),
            ("linux-image-7.3.4+deb13-arm64-16k-dbg", Series::Newest16k),
        ] {
            assert_eq!(key(series, package), None, "{package}");
        }
    }

    #[test]
    fn the_mirror_comes_from_the_machines_apt_sources() {
        let deb822 = "\
Types: deb
# a comment: with a colon
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm

Types: deb
URIs: http://mirror.example/debian-security/
Suites: bookworm-security
Components: main
";
        let sources = apt_sources(deb822, true);
        assert_eq!(sources.len(), 2, "{sources:?}");
        assert_eq!(
            debian_mirrors(&sources).unwrap(),
            (
                "http://mirror.example/debian".to_owned(),
                "http://mirror.example/debian-security".to_owned()
            )
        );
        let list = "\
# deb http://old.example/debian buster main
deb [arch=amd64 signed-by=/k.gpg] http://list.example/debian trixie main
deb-src http://list.example/debian trixie main
";
        let sources = apt_sources(list, false);
        assert_eq!(
            sources,
            [AptSource {
                uri: "http://list.example/debian".into(),
                suites: vec!["trixie".into()]
            }]
        );
        // No security entry: debian-security beside the archive.
        assert_eq!(
            debian_mirrors(&sources).unwrap().1,
            "http://list.example/debian-security"
        );
        assert!(
            debian_mirrors(&apt_sources(
                "deb http://x.example/ubuntu noble main",
                false
            ))
            .is_err()
        );
        // Any URI shape: the suites say Debian.
        let proxied = "deb http://proxy.example:3142/repos/deb-main trixie main\n\
                       deb http://proxy.example:3142/repos/deb-sec trixie-security main\n";
        assert_eq!(
            debian_mirrors(&apt_sources(proxied, false)).unwrap(),
            (
                "http://proxy.example:3142/repos/deb-main".to_owned(),
                "http://proxy.example:3142/repos/deb-sec".to_owned()
            )
        );
        let private = private_sources_list(
            "http://m.example/debian",
            "http://m.example/debian-security",
        );
        assert!(private.contains(" http://m.example/debian trixie-backports main\n"));
        assert!(private.contains(" http://m.example/debian sid main\n"));
        assert!(private.contains(" http://m.example/debian-security bookworm-security main\n"));
    }

    #[test]
    fn kernel_files_in_both_package_layouts() {
        // Up to 6.18: one package, /boot.
        let image = "linux-image-6.12.117+deb12-amd64";
        assert_eq!(file_packages(image, "kmod, linux-base (>= 4.3~)"), [image]);
        let members: Vec<String> = [
            "./boot/",
            "./boot/System.map-6.12.117+deb12-amd64",
            "./boot/config-6.12.117+deb12-amd64",
            "./boot/vmlinuz-6.12.117+deb12-amd64",
            "./usr/lib/modules/6.12.117+deb12-amd64/kernel/fs/ext4/ext4.ko.xz",
        ]
        .map(String::from)
        .to_vec();
        let release = "6.12.117+deb12-amd64";
        assert_eq!(
            kernel_file(&members, release, "vmlinuz").as_deref(),
            Some("./boot/vmlinuz-6.12.117+deb12-amd64")
        );
        assert_eq!(
            kernel_file(&members, release, "config").as_deref(),
            Some("./boot/config-6.12.117+deb12-amd64")
        );
        // From 6.19: a meta package; vmlinuz and config in two others.
        let image = "linux-image-7.3.4+deb13-cloud-amd64";
        let depends = "dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, \
            linux-base-7.3.4+deb13-cloud-amd64 (= 7.3.4-1~bpo13+1), \
            linux-binary-7.3.4+deb13-cloud-amd64 (= 7.3.4-1~bpo13+1), \
            linux-modules-7.3.4+deb13-cloud-amd64 (= 7.3.4-1~bpo13+1)";
        assert_eq!(
            file_packages(image, depends),
            [
                image,
                "linux-binary-7.3.4+deb13-cloud-amd64",
                "linux-base-7.3.4+deb13-cloud-amd64"
            ]
        );
        // Its modules (brd) are in a third.
        assert_eq!(
            module_packages(image, depends),
            ["linux-modules-7.3.4+deb13-cloud-amd64"]
        );
        assert_eq!(
            module_packages("linux-image-6.12.117+deb12-amd64", "kmod"),
            ["linux-image-6.12.117+deb12-amd64"]
        );
        let release = "7.3.4+deb13-cloud-amd64";
        let binary = vec![
            "./usr/lib/modules/7.3.4+deb13-cloud-amd64/".to_owned(),
            "./usr/lib/modules/7.3.4+deb13-cloud-amd64/vmlinuz".to_owned(),
        ];
        let base = vec![
            "./usr/lib/modules/7.3.4+deb13-cloud-amd64/System.map".to_owned(),
            "./usr/lib/modules/7.3.4+deb13-cloud-amd64/config".to_owned(),
        ];
        assert_eq!(
            kernel_file(&binary, release, "vmlinuz").as_deref(),
            Some("./usr/lib/modules/7.3.4+deb13-cloud-amd64/vmlinuz")
        );
        assert_eq!(kernel_file(&binary, release, "config"), None);
        assert_eq!(
            kernel_file(&base, release, "config").as_deref(),
            Some("./usr/lib/modules/7.3.4+deb13-cloud-amd64/config")
        );
    }
}
