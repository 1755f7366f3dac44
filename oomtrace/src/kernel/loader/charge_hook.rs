//! The fexit on the charge function (`try_charge_memcg`, `try_charge` before
//! 5.15): it sees charge failures that never reach the OOM killer. Attached,
//! it runs on every charge, so it is loaded (verified) at start and attached
//! only on demand (when: `commands/run/charge_hook.rs`).
use aya::{
    Ebpf,
    programs::{FExit, fexit::FExitLinkId},
};

use oomtrace_core::base::hooks::HookStatus;

use super::{
    attach::{Targets, program_mut},
    error::AttachError,
    hooks::{CHARGE_FUNCTIONS, CHARGE_HOOK_PROGRAM},
};

pub(super) struct ChargeHook {
    pub function: &'static str,
    link: Option<FExitLinkId>,
}

impl ChargeHook {
    /// Loads the program without attaching it; the status names the hook
    /// `fexit/<function> (on demand)`.
    pub fn load(ebpf: &mut Ebpf, targets: &mut Targets) -> (Option<Self>, HookStatus) {
        // The first function this kernel has; the first name when none, so
        // that the status says which is missing.
        let function = CHARGE_FUNCTIONS
            .iter()
            .copied()
            .find(|f| targets.signatures().params(f).is_some())
            .unwrap_or(CHARGE_FUNCTIONS[0]);
        let outcome = Self::load_for(ebpf, targets, function);
        let status = HookStatus {
            hook: format!("fexit/{function} (on demand)"),
            attached: outcome.is_ok(),
            required: false,
            error: outcome.as_ref().err().map(ToString::to_string),
        };
        (outcome.ok(), status)
    }

    fn load_for(
        ebpf: &mut Ebpf,
        targets: &mut Targets,
        function: &'static str,
    ) -> Result<Self, AttachError> {
        let btf = targets.fentry_btf(function)?;
        let program: &mut FExit = program_mut(ebpf, CHARGE_HOOK_PROGRAM)?;
        program
            .load(function, btf)
            .map_err(AttachError::program(CHARGE_HOOK_PROGRAM))?;
        Ok(Self {
            function,
            link: None,
        })
    }

    pub fn is_armed(&self) -> bool {
        self.link.is_some()
    }

    /// Attaches (`armed`) or detaches the program. Nothing to do when it
    /// already is as asked.
    pub fn set_armed(&mut self, ebpf: &mut Ebpf, armed: bool) -> Result<(), AttachError> {
        if self.is_armed() == armed {
            return Ok(());
        }
        let program: &mut FExit = program_mut(ebpf, CHARGE_HOOK_PROGRAM)?;
        let failed = AttachError::program(CHARGE_HOOK_PROGRAM);
        if armed {
            self.link = Some(program.attach().map_err(failed)?);
            return Ok(());
        }
        match self.link.take() {
            Some(link) => program.detach(link).map_err(failed),
            None => Ok(()),
        }
    }
}
