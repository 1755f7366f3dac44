//! The decision model: I/O-free logic that turns kernel events and the
//! kernel's report into decisions, charge failures and stalls. It reaches
//! the host only through `decision::Environment`.
pub mod arming;
pub mod charge;
pub mod decision;
pub mod episode;
pub mod exact;
pub mod pagefault;
pub mod risk;
pub mod runtime_heap;
pub mod score;
pub mod stall;
