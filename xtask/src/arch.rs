//! The machine architectures the VM tests boot, and each one's table: its
//! Debian name, its kernel series, the QEMU that runs it and the devices
//! the guest sees.
use std::{path::Path, process::Command};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Arch {
    #[default]
    X86_64,
    /// aarch64 under `qemu-system-aarch64 -machine virt -cpu max` (TCG).
    Arm64,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }

    /// `x86_64`/`amd64`, `arm64`/`aarch64`.
    pub fn parse(name: &str) -> Option<Arch> {
        match name {
            "x86_64" | "amd64" => Some(Arch::X86_64),
            "arm64" | "aarch64" => Some(Arch::Arm64),
            _ => None,
        }
    }

    /// Debian's architecture name: package names end in it.
    pub fn debian(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    /// The Rust target oomtrace is cross-built for; `None`: the host's.
    pub fn rust_target(self) -> Option<&'static str> {
        match self {
            Arch::X86_64 => None,
            Arch::Arm64 => Some("aarch64-unknown-linux-gnu"),
        }
    }

    /// `readelf -h`'s `Machine:` for this architecture's binaries.
    pub fn elf_machine(self) -> &'static str {
        match self {
            Arch::X86_64 => "Advanced Micro Devices X86-64",
            Arch::Arm64 => "AArch64",
        }
    }

    pub fn qemu(self) -> &'static str {
        match self {
            Arch::X86_64 => "qemu-system-x86_64",
            Arch::Arm64 => "qemu-system-aarch64",
        }
    }

    /// Debian packages the host needs to boot this architecture's guests.
    pub fn qemu_package(self) -> &'static str {
        match self {
            Arch::X86_64 => "qemu-system-x86",
            Arch::Arm64 => "qemu-system-arm",
        }
    }

    /// `-cpu`: QEMU's most capable CPU. On arm64 with pointer
    /// authentication's cheap implementation-defined algorithm: TCG spends
    /// most of an arm64 kernel's time in the architected one (QARMA).
    pub fn cpu(self) -> &'static str {
        match self {
            Arch::X86_64 => "max",
            Arch::Arm64 => "max,pauth-impdef=on",
        }
    }

    /// How many times longer than x86_64 its guests take under TCG, for
    /// the timeouts (arm64: boot to /init 20 s on an idle host, 60 s on a
    /// busy one, against 10-20 s).
    pub fn slowdown(self) -> u32 {
        match self {
            Arch::X86_64 => 1,
            Arch::Arm64 => 3,
        }
    }

    /// The guest's console device (first serial port).
    pub fn console(self) -> &'static str {
        match self {
            Arch::X86_64 => "ttyS0",
            Arch::Arm64 => "ttyAMA0",
        }
    }

    /// The guest's device for the results (tests/vm/init's
    /// `oomtrace_vm.results`): the second serial port. QEMU's arm `virt`
    /// machine has one PL011, so arm64 guests get a 16550 on PCI, which
    /// the 8250 driver names ttyS0.
    pub fn results_device(self) -> &'static str {
        match self {
            Arch::X86_64 => "ttyS1",
            Arch::Arm64 => "ttyS0",
        }
    }

    /// `qemu-system-*` with the machine, the console written to `console`
    /// and the results port to `results`.
    pub fn qemu_command(self, console: &Path, results: &Path) -> Command {
        let mut command = Command::new(self.qemu());
        command.args(["-nodefaults", "-display", "none", "-no-reboot"]);
        match self {
            Arch::X86_64 => {
                command
                    .arg("-serial")
                    .arg(format!("file:{}", console.display()))
                    .arg("-serial")
                    .arg(format!("file:{}", results.display()));
            }
            Arch::Arm64 => {
                command
                    .args(["-machine", "virt"])
                    .arg("-serial")
                    .arg(format!("file:{}", console.display()))
                    .arg("-chardev")
                    .arg(format!("file,id=results,path={}", results.display()))
                    .args(["-device", "pci-serial,chardev=results"]);
            }
        }
        command
    }
}
